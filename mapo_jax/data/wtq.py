"""WikiTableQuestions release reader: question files, tagged tables, splits, cached preprocessing.

Layout expected under the data directory (the official release unpacked as is):

    <data_dir>/WikiTableQuestions/data/{training,random-split-K-train,random-split-K-dev}.tsv
    <data_dir>/WikiTableQuestions/tagged/2xx-tagged/N.tagged      (CoreNLP-tagged tables)
    <data_dir>/WikiTableQuestions/tagged/data/*.tagged             (optional tagged question files)

`<data_dir>` comes from `--data_dir`, else `$MAPO_DATA_DIR`, else `data/`. Question files of the
release format (`id, utterance, context, targetValue`, optionally `targetCanon`) are read by their
header, so a tagged question file (e.g. the test split's) works too and brings its `targetCanon`.
Bad question lines are skipped with a warning and counted in the stats. A tagged table that cannot
be read (the release has none) means a damaged copy of the release and is an error naming the file.
"""

from __future__ import annotations

import collections
import logging
import os
import re
import statistics
from dataclasses import asdict
from pathlib import Path
from typing import Dict, List, NamedTuple, Optional, Union

from mapo_jax.data import cache as cache_lib
from mapo_jax.data.annotate import AnnotationOptions, TableIndex, annotate, has_words
from mapo_jax.data.example import DATETIME_LIST, NUM_LIST, STRING_LIST, Dataset, Example
from mapo_jax.data.tables import Table, TableFormatError, read_tagged_table
from mapo_jax.data.values import (
    DateValue,
    NumberValue,
    infer_canon,
    target_values,
    tsv_unescape_list,
)
from mapo_jax.errors import UserInputError

logger = logging.getLogger(__name__)

RELEASE_URL = "https://github.com/ppasupat/WikiTableQuestions/releases/tag/v1.0.2"
DOWNLOAD_URL = (
    "https://github.com/ppasupat/WikiTableQuestions/releases/download/v1.0.2/"
    "WikiTableQuestions-1.0.2-compact.zip"
)
RELEASE_DIR = "WikiTableQuestions"
_RANDOM_SPLIT = re.compile(r"^(train|dev)([1-5])?$")
_NAMED_SPLITS = {
    "training": "data/training.tsv",
    "training-before300": "data/training-before300.tsv",
    "test": "data/pristine-unseen-tables.tsv",
}
REQUIRED_FIELDS = ("id", "utterance", "context", "targetValue")
_CONTEXT = re.compile(r"^csv/(\d+)-csv/(\d+)\.csv$")
MAX_LISTED_FAILURES = 100


class DataNotFoundError(FileNotFoundError):
    """The WTQ release is not where the data directory says; the message says how to fix it."""


class Question(NamedTuple):
    """One line of a question file, before annotation. `target_*` are the raw escaped fields."""

    id: str
    utterance: str
    context: str
    target_value: str
    target_canon: Optional[str]


def resolve_data_dir(data_dir: Optional[Union[str, Path]] = None) -> Path:
    """`data_dir`, else `$MAPO_DATA_DIR`, else `data/`."""
    return Path(data_dir or os.environ.get("MAPO_DATA_DIR") or "data").expanduser()


def release_root(data_dir: Optional[Union[str, Path]] = None) -> Path:
    """The release's root directory, checked; raises `DataNotFoundError` with instructions."""
    base = resolve_data_dir(data_dir)
    root = base / RELEASE_DIR
    if not (root / "data").is_dir() or not (root / "tagged").is_dir():
        raise DataNotFoundError(
            f"WikiTableQuestions not found: expected {root}/data and {root}/tagged.\n"
            f"Point --data_dir or the MAPO_DATA_DIR environment variable at the directory that "
            f"holds {RELEASE_DIR}/ (now: {base.resolve()}).\n"
            f"Download the official release from {DOWNLOAD_URL} (see {RELEASE_URL}) and unzip it "
            f"there, e.g.:  mkdir -p data && cd data && curl -LO {DOWNLOAD_URL} && unzip "
            f"WikiTableQuestions-1.0.2-compact.zip"
        )
    return root


def split_names() -> str:
    return "train, dev, train1..train5, dev1..dev5, training, training-before300, test"


def split_path(root: Path, split: str) -> Path:
    """The question file of a named split, or `split` itself if it is a file path.

    `train`/`dev` are the parts of random split 1, `trainK`/`devK` those of random split K.
    """
    match = _RANDOM_SPLIT.match(split)
    if match:
        relative = f"data/random-split-{match.group(2) or 1}-{match.group(1)}.tsv"
    elif split in _NAMED_SPLITS:
        relative = _NAMED_SPLITS[split]
    else:
        candidate = Path(split)
        if candidate.is_file():
            return candidate
        raise UserInputError(
            f"unknown split {split!r}: valid splits are {split_names()}, or the path of a "
            f"question file in the release format"
        )
    path = root / relative
    if not path.is_file():
        tagged = root / "tagged" / "data" / (Path(relative).stem + ".tagged")
        if tagged.is_file():
            return tagged
        hint = " (this copy of the release holds the test split back)" if split == "test" else ""
        raise DataNotFoundError(f"split {split!r}: {path} does not exist{hint}")
    return path


def table_path(root: Path, context: str) -> Path:
    """`csv/204-csv/590.csv` -> `<root>/tagged/204-tagged/590.tagged`."""
    match = _CONTEXT.match(context)
    if not match:
        raise ValueError(f"context {context!r} is not of the form csv/NNN-csv/N.csv")
    return root / "tagged" / f"{match.group(1)}-tagged" / f"{match.group(2)}.tagged"


def _context_of(path: Path) -> str:
    return f"csv/{path.parent.name.split('-')[0]}-csv/{path.stem}.csv"


def read_questions(path: Union[str, Path], failures: Optional[list] = None) -> List[Question]:
    """Reads a question file of the release format (.tsv or tagged .tagged) by its header.

    Lines with a wrong number of fields or an empty id are skipped and described in `failures`.
    """
    path = Path(path)
    failures = failures if failures is not None else []
    try:
        with open(path, encoding="utf-8", newline="") as f:
            lines = f.read().split("\n")
    except UnicodeDecodeError as error:
        raise UserInputError(f"{path}: not a question file (not UTF-8 text: {error})") from None
    header = lines[0].rstrip("\r").split("\t") if lines else []
    missing = [name for name in REQUIRED_FIELDS if name not in header]
    if missing:
        raise UserInputError(
            f"{path}: not a question file of the release format (header lacks {missing}; "
            f"expected columns {', '.join(REQUIRED_FIELDS)})"
        )
    index = {name: i for i, name in enumerate(header)}
    canon_index = index.get("targetCanon")
    questions = []
    for line_no, line in enumerate(lines[1:], start=2):
        line = line.rstrip("\r")
        if not line:
            continue
        fields = line.split("\t")
        if len(fields) != len(header):
            failures.append(f"{path.name}:{line_no}: {len(fields)} fields, expected {len(header)}")
            continue
        question = Question(
            id=fields[index["id"]],
            utterance=fields[index["utterance"]],
            context=fields[index["context"]],
            target_value=fields[index["targetValue"]],
            target_canon=fields[canon_index] if canon_index is not None else None,
        )
        if not question.id:
            failures.append(f"{path.name}:{line_no}: empty id")
            continue
        questions.append(question)
    return questions


# ---------------------------------------------------------------------------------------------
# Tables (all of the release's tagged tables, cached once for every split)
# ---------------------------------------------------------------------------------------------


class TableSet(NamedTuple):
    tables: Dict[str, Table]
    failures: List[str]  # tables that could not be read, with reasons (file and line)


def _table_files(root: Path) -> List[Path]:
    files = []
    for directory in sorted((root / "tagged").glob("*-tagged")):
        files.extend(sorted(directory.glob("*.tagged"), key=lambda p: (len(p.stem), p.stem)))
    return files


def _read_all_tables(files: List[Path], table_options: dict) -> TableSet:
    tables, failures = {}, []
    for path in files:
        name = _context_of(path)
        try:
            tables[name] = read_tagged_table(path, name=name, **table_options)
        except TableFormatError as error:
            failures.append(str(error))
    return TableSet(tables, failures)


def check_tables(table_set: TableSet, root: Path) -> None:
    """Every table of the release reads cleanly, so one that does not means a damaged copy: refused,
    naming the files, rather than losing its questions without a word."""
    if table_set.failures:
        listed = "\n  ".join(table_set.failures[:5])
        more = f"\n  ... and {len(table_set.failures) - 5} more" if len(table_set.failures) > 5 else ""
        raise TableFormatError(
            f"{len(table_set.failures)} tagged tables under {root / 'tagged'} cannot be read; this copy "
            f"of the release is damaged (unzip it again from {DOWNLOAD_URL}):\n  {listed}{more}")


def load_tables(
    root: Path,
    table_options: Optional[dict] = None,
    cache_dir: Optional[Union[str, Path]] = None,
    use_cache: bool = True,
) -> tuple:
    """All tagged tables of the release: `(TableSet, cache_key, cache_hit)`."""
    table_options = dict(table_options or {})
    files = _table_files(root)
    if not files:
        raise DataNotFoundError(f"no tagged tables under {root / 'tagged'}")
    key = cache_lib.cache_key(
        "wtq-tables", table_options, [cache_lib.file_signature(p) for p in files]
    )
    table_set, hit = cache_lib.cached(
        "wtq-tables", key, lambda: _read_all_tables(files, table_options), cache_dir, use_cache
    )
    return table_set, key, hit


# ---------------------------------------------------------------------------------------------
# Examples
# ---------------------------------------------------------------------------------------------


def make_example(
    question: Question, table: Table, options: AnnotationOptions, index: TableIndex,
    infer: bool = True,
) -> Example:
    """Annotates one question against its table."""
    answer = tuple(tsv_unescape_list(question.target_value))
    if question.target_canon is not None:
        canon = tuple(tsv_unescape_list(question.target_canon))
    elif infer:
        canon = tuple(infer_canon(x) or x for x in answer)
    else:
        canon = None
    annotation = annotate(question.utterance, table, options, index)
    return Example(
        id=question.id,
        question=question.utterance,
        table=question.context,
        answer=answer,
        answer_canon=canon,
        tokens=annotation.tokens,
        entities=annotation.entities,
        in_table=annotation.in_table,
        column_features=annotation.column_features,
    )


def _answer_type(example: Example) -> str:
    try:
        values = example.gold_values()
    except ValueError:
        return "unparseable"
    if len(values) > 1:
        return "list"
    if not values:
        return "empty"
    if isinstance(values[0], NumberValue):
        return "number"
    if isinstance(values[0], DateValue):
        return "date"
    return "string"


def example_stats(examples: List[Example]) -> dict:
    """Entity and answer statistics of annotated examples (what a researcher checks first)."""
    n = max(len(examples), 1)
    per_type = {t: [sum(e.type == t for e in ex.entities) for ex in examples] for t in (STRING_LIST, NUM_LIST, DATETIME_LIST)}
    answer_types = collections.Counter(_answer_type(ex) for ex in examples)
    return {
        "mean_entities_per_question": sum(len(ex.entities) for ex in examples) / n,
        "mean_tokens_per_question": sum(len(ex.tokens) for ex in examples) / n,
        "fraction_with_string_entity": sum(c > 0 for c in per_type[STRING_LIST]) / n,
        "fraction_with_number": sum(c > 0 for c in per_type[NUM_LIST]) / n,
        "fraction_with_date": sum(c > 0 for c in per_type[DATETIME_LIST]) / n,
        "median_entities_per_question": statistics.median([len(ex.entities) for ex in examples]) if examples else 0,
        "answer_types": dict(sorted(answer_types.items())),
        "questions_without_words": sum(not has_words(ex.tokens) for ex in examples),
    }


def _build_examples(
    questions: List[Question], table_set: TableSet, options: AnnotationOptions, infer: bool
) -> tuple:
    examples, failures = [], []
    indexes: Dict[str, TableIndex] = {}
    for question in questions:
        table = table_set.tables.get(question.context)
        if table is None:
            failures.append(f"{question.id}: table {question.context} missing or unreadable")
            continue
        index = indexes.get(question.context)
        if index is None:
            index = indexes[question.context] = TableIndex(table)
        try:
            examples.append(make_example(question, table, options, index, infer))
        except Exception as error:  # a bad line must not stop preprocessing; it is reported
            failures.append(f"{question.id}: annotation failed: {type(error).__name__}: {error}")
    return examples, failures


def load_wtq(
    split: str = "train",
    data_dir: Optional[Union[str, Path]] = None,
    options: AnnotationOptions = AnnotationOptions(),
    table_options: Optional[dict] = None,
    cache_dir: Optional[Union[str, Path]] = None,
    use_cache: bool = True,
    infer_canon_answers: bool = True,
) -> Dataset:
    """Loads one WTQ split, annotated and cached. `Dataset.stats` describes what was read/skipped.

    `infer_canon_answers`: for question files without `targetCanon` (every file but the tagged test
    file), approximate it with `values.infer_canon`, so `12,467` is a number as CoreNLP would say.
    """
    root = release_root(data_dir)
    path = split_path(root, split)
    table_set, tables_key, tables_hit = load_tables(root, table_options, cache_dir, use_cache)
    check_tables(table_set, root)
    key = cache_lib.cache_key(
        "wtq-examples", tables_key, asdict(options), infer_canon_answers,
        cache_lib.file_signature(path),
    )

    def build():
        line_failures: List[str] = []
        questions = read_questions(path, line_failures)
        examples, example_failures = _build_examples(questions, table_set, options, infer_canon_answers)
        return examples, line_failures, example_failures

    (examples, line_failures, example_failures), hit = cache_lib.cached(
        "wtq-examples", key, build, cache_dir, use_cache
    )
    for message in (line_failures + example_failures)[:10]:
        logger.warning("skipped: %s", message)
    wordless = [ex.id for ex in examples if not has_words(ex.tokens)]
    if wordless:
        logger.warning("%s: %d questions have no words (e.g. %s); their answers can only be guesses",
                       path, len(wordless), ", ".join(wordless[:5]))
    used = sorted({ex.table for ex in examples})
    stats = {
        "dataset": "wtq",
        "split": split,
        "split_file": str(path),
        "examples": len(examples),
        "lines_failed": len(line_failures),
        "examples_failed": len(example_failures),
        "failures": (line_failures + example_failures)[:MAX_LISTED_FAILURES],
        "tables_parsed": len(table_set.tables),
        "tables_failed": len(table_set.failures),
        "tables_used_by_split": len(used),
        "cache": {"tables": "hit" if tables_hit else "miss", "examples": "hit" if hit else "miss"},
        **example_stats(examples),
    }
    return Dataset(
        name="wtq",
        split=split,
        tables={name: table_set.tables[name] for name in used},
        examples=examples,
        stats=stats,
    )


def read_targets(path: Union[str, Path], infer: bool = True) -> Dict[str, list]:
    """Gold Values per question id from a question file (tagged: uses `targetCanon`).

    This is what `launch/evaluate.py` scores against; with a tagged file it is exactly the official
    evaluator's reading, without one `infer` approximates the canonical strings.
    """
    targets = {}
    for q in read_questions(path):
        try:
            targets[q.id] = target_values(q.target_value, q.target_canon, infer)
        except ValueError as error:  # e.g. a targetCanon with another number of items
            raise UserInputError(f"{path}: question {q.id}: {error}") from None
    return targets
