"""Predictions files in the official format and their scoring.

A predictions file has one line per question: `id<TAB>answer<TAB>answer...` (answers TSV-escaped).
Scoring follows the official evaluator line by line: each line whose id has a gold answer is scored
(duplicates too), an unknown id is reported and skipped, and accuracy = correct / scored lines.
Questions of the split with no line are reported separately (the official script ignores them).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Dict, Iterable, List, NamedTuple, Sequence, Tuple, Union

from mapo_jax.data.values import check_denotation, format_prediction, to_value_list, tsv_escape

logger = logging.getLogger(__name__)


class ScoredLine(NamedTuple):
    id: str
    correct: bool
    targets: list
    predictions: list


class Score(NamedTuple):
    lines: List[ScoredLine]
    unknown_ids: List[str]  # prediction lines whose id has no gold answer (skipped)
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


def score_predictions(
    path: Union[str, Path], targets: Dict[str, list], expected_ids: Iterable[str] = ()
) -> Score:
    """Scores a predictions file against gold Values (`targets[id]`, e.g. from `wtq.read_targets`)."""
    scored, unknown, seen = [], [], set()
    for example_id, items in read_prediction_lines(path):
        if example_id not in targets:
            unknown.append(example_id)
            continue
        seen.add(example_id)
        gold = targets[example_id]
        predicted = to_value_list(items)
        scored.append(ScoredLine(example_id, check_denotation(gold, predicted), gold, predicted))
    missing = [i for i in expected_ids if i not in seen]
    return Score(scored, unknown, missing)


def prediction_line(example_id: str, denotation: Sequence[object]) -> str:
    """One predictions-file line for a program's denotation (floats printed as the release did)."""
    return "\t".join([example_id] + [tsv_escape(format_prediction(x)) for x in denotation])


def write_predictions(path: Union[str, Path], predictions: Dict[str, Sequence[object]]) -> None:
    """Writes `{id: denotation}` as an official-format predictions file."""
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        for example_id, denotation in predictions.items():
            f.write(prediction_line(example_id, denotation) + "\n")
