"""Predictions files in the official format and their scoring.

A predictions file has one line per question: `id<TAB>answer<TAB>answer...` (answers TSV-escaped;
a line of the id alone is an empty answer). Each line is scored as the official evaluator scores it,
and accuracy = correct / scored lines. Where the official script would print a number that means
nothing, the file is refused instead (`UserInputError`, naming the lines): an id on two lines (it
would be scored twice), an id the gold answers do not have (a file for another split would be
scored on the few ids the two splits share), a line without a tab whose text is no known id (most
likely separated by spaces). Questions of the split with no line are reported separately (the
official script ignores them).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Dict, Iterable, List, NamedTuple, Sequence, Tuple, Union

from mapo_jax.data.values import check_denotation, format_prediction, to_value_list, tsv_escape
from mapo_jax.errors import UserInputError

logger = logging.getLogger(__name__)


class ScoredLine(NamedTuple):
    id: str
    correct: bool
    targets: list
    predictions: list


class Score(NamedTuple):
    lines: List[ScoredLine]
    missing_ids: List[str]  # gold ids without a prediction line (not scored)

    @property
    def n_correct(self) -> int:
        return sum(line.correct for line in self.lines)

    @property
    def n_scored(self) -> int:
        return len(self.lines)

    @property
    def accuracy(self) -> float:
        return self.n_correct / self.n_scored if self.lines else 0.0


def read_prediction_lines(path: Union[str, Path]) -> List[Tuple[str, List[str]]]:
    """(id, raw answer items) per line, split exactly as the official evaluator splits them.

    Lines are split on '\\n' only and fields on tabs; bytes that are not UTF-8 are dropped, as the
    evaluator's normaliser drops them.
    """
    with open(path, "rb") as f:
        data = f.read()
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    out = []
    for raw in lines:
        fields = raw.decode("utf-8", errors="ignore").split("\t")
        out.append((fields[0], fields[1:]))
    return out


def _check_lines(path: Union[str, Path], lines: Dict[int, Tuple[str, List[str]]], targets: Dict[str, list],
                 gold_name: str) -> None:
    """Refuses a file whose score would mislead (the rules in the module doc)."""
    line_of: Dict[str, int] = {}
    repeated, unknown = [], []
    for line_no, (example_id, items) in lines.items():
        if example_id not in targets:
            if not items:  # the line has no tab
                raise UserInputError(f"{path}:{line_no}: {example_id[:60]!r} is no question id of {gold_name}, "
                                     f"and the line has no tab: a line is id<TAB>answer<TAB>answer...")
            unknown.append((line_no, example_id))
        elif example_id in line_of:
            repeated.append((line_of[example_id], line_no, example_id))
        else:
            line_of[example_id] = line_no
    if unknown:
        line_no, example_id = unknown[0]
        raise UserInputError(
            f"{path}: {len(unknown)} of {len(lines)} prediction ids are not in {gold_name} (first: {example_id!r} "
            f"on line {line_no}); is the file for another split?")
    if repeated:
        first, again, example_id = repeated[0]
        raise UserInputError(f"{path}: {len(repeated)} ids have more than one line, e.g. {example_id!r} on lines "
                             f"{first} and {again}; a question must have one prediction")


def score_predictions(
    path: Union[str, Path], targets: Dict[str, list], expected_ids: Iterable[str] = (),
    gold_name: str = "the gold answers",
) -> Score:
    """Scores a predictions file against gold Values (`targets[id]`, e.g. from `wtq.read_targets`);
    a file whose score would mislead raises `UserInputError` (`gold_name` names the gold in it)."""
    lines = {line_no: line for line_no, line in enumerate(read_prediction_lines(path), start=1)
             if line != ("", [])}  # an empty line holds no prediction
    _check_lines(path, lines, targets, gold_name)
    scored = []
    for example_id, items in lines.values():
        gold = targets[example_id]
        predicted = to_value_list(items)
        scored.append(ScoredLine(example_id, check_denotation(gold, predicted), gold, predicted))
    seen = {line.id for line in scored}
    missing = [i for i in expected_ids if i not in seen]
    return Score(scored, missing)


def prediction_line(example_id: str, denotation: Sequence[object]) -> str:
    """One predictions-file line for a program's denotation (floats printed as the release did)."""
    return "\t".join([example_id] + [tsv_escape(format_prediction(x)) for x in denotation])


def write_predictions(path: Union[str, Path], predictions: Dict[str, Sequence[object]]) -> None:
    """Writes `{id: denotation}` as an official-format predictions file."""
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        for example_id, denotation in predictions.items():
            f.write(prediction_line(example_id, denotation) + "\n")
