"""The example type shared by every dataset (WTQ, the toy dataset, WikiSQL).

An `Example` is one question, already annotated against its table, plus its gold answer. It is plain
data (tuples, strings, floats) so that it pickles into the preprocessing cache and crosses process
boundaries cheaply; everything downstream (interpreter, environment, model) reads only this type.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

from mapo_jax.data.tables import Table
from mapo_jax.data.values import to_value_list

# DSL types of question entities (the names of mapo_jax/lisp/types.py).
STRING_LIST = "string_list"
NUM_LIST = "num_list"
DATETIME_LIST = "datetime_list"
ENTITY_TYPES = (STRING_LIST, NUM_LIST, DATETIME_LIST)


@dataclass(frozen=True)
class Entity:
    """A question mention usable as a program constant.

    `value` is a tuple of normalised strings (string_list), floats (num_list) or `yyyy-mm-dd` strings
    with `xx` unknown parts (datetime_list). `start:end` is the token span (end exclusive).
    """

    type: str
    value: tuple
    start: int
    end: int


@dataclass(frozen=True)
class Example:
    """One annotated question with its gold answer.

    `column_features[k]` is the column-name overlap count of `table.columns[k]` (same order).
    `answer_canon` holds canonical strings for the answer items (a tagged file's `targetCanon`, or our
    own approximation, see `values.infer_canon`); None means "parse the answer items themselves".
    """

    id: str
    question: str
    table: str
    answer: Tuple[str, ...]
    answer_canon: Optional[Tuple[str, ...]]
    tokens: Tuple[str, ...]
    entities: Tuple[Entity, ...]
    in_table: Tuple[int, ...]
    column_features: Tuple[float, ...]

    def gold_values(self) -> list:
        """The gold answer as official-evaluator Values."""
        return to_value_list(list(self.answer), None if self.answer_canon is None else list(self.answer_canon))


@dataclass
class Dataset:
    """One split of a dataset: its examples, the tables they refer to, and preprocessing stats.

    `programs` holds known gold programs in readable form (id -> program), e.g. for the toy dataset
    whose questions are generated from programs; real datasets leave it empty.
    """

    name: str
    split: str
    tables: Dict[str, Table]
    examples: List[Example]
    stats: dict = field(default_factory=dict)
    programs: Dict[str, str] = field(default_factory=dict)
