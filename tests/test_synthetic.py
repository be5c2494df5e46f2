"""The embedded toy dataset: deterministic, split by table, answerable, and learnable from wording.

Answers are re-derived here from the *readable* gold programs twice: by a small evaluator written
independently of the project's interpreter (which the generator uses), and by that interpreter
replaying them in the context exploration sees; both are compared with the official matching rules.
"""

import ast
import collections
import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from mapo_jax.data import synthetic
from mapo_jax.data.example import DATETIME_LIST, NUM_LIST, STRING_LIST, Dataset, Entity
from mapo_jax.data.synthetic import (
    FAMILIES,
    TEMPLATES,
    Const,
    Expr,
    ProgramError,
    ToyConfig,
    ToyGenerationError,
    Var,
    format_program,
    load_toy,
    parse_program,
    question_family,
)
from mapo_jax.data.tables import Cell, build_table
from mapo_jax.data.values import (
    check_denotation,
    denotation_values,
    format_prediction,
    normalize,
    to_value_list,
)
from mapo_jax.lisp import interpreter
from mapo_jax.lisp.interpreter import ProgramContext

REPO = Path(__file__).resolve().parents[1]
DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


@pytest.fixture(scope="module")
def train() -> Dataset:
    return load_toy("train")


@pytest.fixture(scope="module")
def dev() -> Dataset:
    return load_toy("dev")


def _digest(dataset: Dataset) -> str:
    """Everything a consumer sees of a split, hashed (tables, examples, programs, stats)."""
    payload = {
        "tables": {name: table.to_json() for name, table in sorted(dataset.tables.items())},
        "examples": [repr(ex) for ex in dataset.examples],
        "programs": dataset.programs,
        "stats": dataset.stats,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


# ---------------------------------------------------------------------------------------------
# A tiny independent evaluator of readable programs (the DSL semantics of mapo_jax/lisp/functions.py)
# ---------------------------------------------------------------------------------------------


def evaluate(program: str, table) -> list:
    variables = []
    for body in re.findall(r"\(([^()]*)\)", program):
        function, *raw = re.findall(r"\[[^\]]*\]|\S+", body)
        args = []
        for token in raw:
            if token == "all_rows":
                args.append(list(range(table.n_rows)))
            elif re.fullmatch(r"v\d+", token):
                args.append(variables[int(token[1:])])
            elif token.startswith("["):
                args.append(list(ast.literal_eval(token)))
            else:
                assert token in table.values, f"unknown property {token} in {program}"
                args.append(table.values[token])  # a property: its column
        variables.append(_apply(function, args, table.n_rows))
    return variables[-1]


def _apply(function, args, n_rows):
    if function == "hop":
        rows, column = args
        out = []
        for r in rows:
            if column[r] not in out:
                out.append(column[r])
        return out
    if function == "filter_str_contain_any":
        rows, strings, column = args
        return [r for r in rows if any(s in column[r] for s in strings)]
    if function == "filter_eq":
        rows, values, column = args
        return [r for r in rows if [column[r]] == values]
    if function in ("filter_greater", "filter_less"):
        rows, (x,), column = args
        return [r for r in rows if (column[r] > x if function == "filter_greater" else column[r] < x)]
    if function in ("argmax", "argmin"):
        rows, column = args  # full yyyy-mm-dd dates order like the calendar as strings
        best = (max if function == "argmax" else min)(column[r] for r in rows)
        return [r for r in rows if column[r] == best]
    if function in ("first", "last"):
        (rows,) = args
        assert len(rows) > 1
        return [min(rows) if function == "first" else max(rows)]
    if function in ("next", "previous"):
        (rows,) = args
        step = 1 if function == "next" else -1
        return [r + step for r in rows if 0 <= r + step < n_rows]
    if function == "count":
        return [len(args[0])]
    if function == "diff":
        (a,), (b,), column = args
        return [abs(column[a] - column[b])]
    raise AssertionError(f"test evaluator lacks {function}")


def _constants(program: str) -> list:
    """(entity type, value tuple) of every constant in a readable program."""
    out = []
    for token in re.findall(r"\[[^\]]*\]", program):
        values = tuple(ast.literal_eval(token))
        if all(isinstance(v, (int, float)) for v in values):
            out.append((NUM_LIST, tuple(float(v) for v in values)))
        elif all(DATE.match(v) for v in values):
            out.append((DATETIME_LIST, values))
        else:
            out.append((STRING_LIST, values))
    return out


def replay(program: str, table, entities=None) -> list:
    """The project interpreter's denotation of a readable program (entities: its constants)."""
    if entities is None:
        entities = [Entity(t, v, 0, 1) for t, v in _constants(program)]
    context = ProgramContext(table, entities)
    return context.replay(context.tokens_from_text(program)).denotation()


def _signature(program: str, table) -> tuple:
    """Program skeleton: functions with the kinds of their property arguments, constants elided."""
    out = []
    for body in re.findall(r"\(([^()]*)\)", program):
        function, *args = re.findall(r"\[[^\]]*\]|\S+", body)
        kinds = tuple(table.column(a).kind for a in args if a.startswith("r."))
        out.append((function,) + kinds)
    return tuple(out)


# What each family's program must look like, written out by hand (not taken from the module).
EXPECTED_SKELETONS = {
    "lookup": (("filter_str_contain_any", "string"), ("hop", "number")),
    "argmax": (("argmax", "number"), ("hop", "string")),
    "argmin": (("argmin", "number"), ("hop", "string")),
    "count_category": (("filter_str_contain_any", "string"), ("count",)),
    "list_category": (("filter_str_contain_any", "string"), ("hop", "string")),
    "count_greater": (("filter_greater", "number"), ("count",)),
    "count_less": (("filter_less", "number"), ("count",)),
    "next": (("filter_str_contain_any", "string"), ("next",), ("hop", "string")),
    "previous": (("filter_str_contain_any", "string"), ("previous",), ("hop", "string")),
    "first": (("first",), ("hop", "string")),
    "last": (("last",), ("hop", "string")),
    "diff": (("filter_str_contain_any", "string"), ("filter_str_contain_any", "string"), ("diff", "number")),
    "date_lookup": (("filter_eq", "date"), ("hop", "string")),
    "earliest": (("argmin", "date"), ("hop", "string")),
    "latest": (("argmax", "date"), ("hop", "string")),
}


# ---------------------------------------------------------------------------------------------
# Determinism, sizes, splits
# ---------------------------------------------------------------------------------------------


def test_default_sizes(train, dev):
    assert (train.name, train.split, dev.split) == ("toy", "train", "dev")
    assert len(train.tables) == 32 and len(dev.tables) == 8
    assert len(train.examples) == 32 * 20 and len(dev.examples) == 8 * 20
    assert train.stats["examples"] == len(train.examples) and train.stats["tables"] == 32
    assert sum(train.stats["families"].values()) == len(train.examples)


def test_same_config_gives_identical_dataset(train):
    synthetic._generate.cache_clear()  # regenerate from scratch, not from the cache
    again = load_toy("train")
    assert again.examples is not train.examples
    assert again.examples == train.examples
    assert again.programs == train.programs
    assert _digest(again) == _digest(train)


def test_identical_in_a_fresh_process_with_another_hash_seed(train, dev):
    """No dependence on set/dict iteration order of strings (hash randomisation)."""
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); "
        "from tests.test_synthetic import _digest; from mapo_jax.data.synthetic import load_toy; "
        "print(_digest(load_toy('train')), _digest(load_toy('dev')))"
    )
    env = dict(os.environ, PYTHONHASHSEED="12345")
    out = subprocess.run(
        [sys.executable, "-c", code, str(REPO)], cwd=REPO, env=env, capture_output=True, text=True,
        check=True,
    ).stdout.split()
    assert out == [_digest(train), _digest(dev)]


def test_other_seed_gives_other_dataset(train):
    other = load_toy("train", ToyConfig(seed=1))
    assert [ex.question for ex in other.examples] != [ex.question for ex in train.examples]
    names = lambda d: sorted(c for t in d.tables.values() for row in t.cells for c in row)  # noqa: E731
    assert names(other) != names(train)


def test_train_and_dev_tables_are_disjoint(train, dev):
    assert set(train.tables).isdisjoint(dev.tables)
    assert len(set(train.tables) | set(dev.tables)) == 40
    for dataset in (train, dev):
        assert {ex.table for ex in dataset.examples} == set(dataset.tables)  # only tables used
        for name, table in dataset.tables.items():
            assert re.fullmatch(r"toy/table_\d{3}", name) and table.name == name


def test_example_ids_and_fields(train, dev):
    for dataset in (train, dev):
        assert [ex.id for ex in dataset.examples] == [
            f"toy-{dataset.split}-{n}" for n in range(len(dataset.examples))
        ]
        assert set(dataset.programs) == {ex.id for ex in dataset.examples}
        for ex in dataset.examples:
            assert ex.answer and all(isinstance(a, str) and a for a in ex.answer)
            assert ex.answer_canon is None
            assert len(ex.in_table) == len(ex.tokens)
            assert len(ex.column_features) == len(dataset.tables[ex.table].columns)
    # questions are not repeated on the same table
    pairs = [(ex.table, ex.question) for ex in train.examples]
    assert len(pairs) == len(set(pairs))


def test_unknown_split_raises_naming_valid_splits():
    with pytest.raises(ValueError, match="train, dev"):
        load_toy("test")


@pytest.mark.parametrize(
    "kwargs",
    [dict(n_tables=1), dict(dev_fraction=0.0), dict(dev_fraction=1.0), dict(min_rows=6, max_rows=5),
     dict(min_rows=2), dict(questions_per_table=0)],
)
def test_bad_config_is_rejected(kwargs):
    with pytest.raises(ValueError):
        ToyConfig(**kwargs)


# ---------------------------------------------------------------------------------------------
# Tables
# ---------------------------------------------------------------------------------------------


def test_tables_have_the_promised_shape(train, dev):
    for table in list(train.tables.values()) + list(dev.tables.values()):
        assert 5 <= table.n_rows <= 15
        kinds = collections.Counter(c.kind for c in table.columns)
        assert kinds["string"] >= 2 and kinds["number"] >= 2 and kinds["date"] == 1
        assert not table.dropped
        for column in table.columns:
            values = table.values[column.name]
            assert all(v is not None for v in values)
            if column.kind in ("number", "date"):
                assert len(set(values)) == len(values), f"{table.name}: {column.name} has ties"
            if column.kind == "date":
                assert all(DATE.match(v) for v in values)
                # the interpreter orders dates by (y, m, d); the original's argmax key Y*365+M*30+D
                # must not tie either, so that the data means the same under both semantics
                keys = [int(v[:4]) * 365 + int(v[5:7]) * 30 + int(v[8:]) for v in values]
                assert len(set(keys)) == len(keys), f"{table.name}: {column.name} date keys tie"
        # the name column (first) holds unique single words, none inside another cell
        names = table.values[table.columns[0].name]
        cells = table.searchable_strings()
        for name in names:
            assert re.fullmatch(r"[a-z]{5,}", name)
            assert [c for c in cells if name in c] == [name], f"{table.name}: {name} is ambiguous"


def test_row_counts_follow_config():
    dataset = load_toy("train", ToyConfig(n_tables=6, questions_per_table=5, min_rows=7, max_rows=8))
    assert {t.n_rows for t in dataset.tables.values()} <= {7, 8}
    assert len(dataset.tables) == 5 and len(dataset.examples) == 25


# ---------------------------------------------------------------------------------------------
# Questions, programs, answers
# ---------------------------------------------------------------------------------------------


def test_every_family_present_in_train_and_counted(train):
    counts = collections.Counter(question_family(ex.question) for ex in train.examples)
    assert set(counts) == set(FAMILIES)
    assert train.stats["families"] == {f: counts[f] for f in FAMILIES}
    assert min(counts.values()) >= 20


def test_wording_determines_program_family(train, dev):
    """The learnability property: one template per family, one program skeleton per template."""
    for dataset in (train, dev):
        for ex in dataset.examples:
            family = question_family(ex.question)
            program = dataset.programs[ex.id]
            assert _signature(program, dataset.tables[ex.table]) == EXPECTED_SKELETONS[family], (
                ex.question, program)


def test_needed_entities_are_found_by_annotation(train, dev):
    for dataset in (train, dev):
        for ex in dataset.examples:
            found = {(e.type, e.value) for e in ex.entities}
            for needed in _constants(dataset.programs[ex.id]):
                assert needed in found, (ex.question, dataset.programs[ex.id], ex.entities)


def test_no_stray_string_entities_from_template_words(train, dev):
    """String entities are the names/countries the question mentions, or spans of numbers/dates."""
    for ex in train.examples + dev.examples:
        programs = train.programs if ex.id in train.programs else dev.programs
        constants = set(_constants(programs[ex.id]))
        spans = [(e.start, e.end) for e in ex.entities if e.type != STRING_LIST]
        for entity in ex.entities:
            if entity.type != STRING_LIST:
                continue
            inside_number_or_date = any(s <= entity.start and entity.end <= e for s, e in spans)
            assert (STRING_LIST, entity.value) in constants or inside_number_or_date, (ex.question, entity)


def test_answers_match_independently_recomputed_programs(train, dev):
    for dataset in (train, dev):
        for ex in dataset.examples:
            table = dataset.tables[ex.table]
            program = dataset.programs[ex.id]
            denotation = evaluate(program, table)
            assert denotation, (ex.question, program)
            predicted = to_value_list([format_prediction(x) for x in denotation])
            assert check_denotation(ex.gold_values(), predicted), (ex.question, program, ex.answer, denotation)
            # and the project's interpreter agrees, in the context exploration sees (all entities)
            parsed = parse_program(program)
            assert format_program(parsed) == program
            real = replay(program, table, ex.entities)
            assert check_denotation(ex.gold_values(), denotation_values(real)), (ex.question, program, real)
            # answer strings: names as the table displays them, numbers written naturally
            assert len(real) == len(ex.answer)
            for answer, value in zip(ex.answer, real):
                if isinstance(value, str):  # the original cell text of the value
                    assert normalize(answer) == value and any(answer in row for row in table.cells)
                else:
                    assert answer == (str(int(value)) if value.is_integer() else repr(value))


def test_single_answers_except_list_family(train):
    multi = 0
    for ex in train.examples:
        if question_family(ex.question) == "list_category":
            multi += len(ex.answer) > 1
        else:
            assert len(ex.answer) == 1, ex
        assert not re.search(r"\.0$", ex.answer[0]), ex.answer  # numbers written naturally
    assert multi > 0


def test_readable_program_example_format(train):
    ex = next(e for e in train.examples if question_family(e.question) == "next")
    program = train.programs[ex.id]
    assert re.fullmatch(
        r"\(filter_str_contain_any all_rows \['[a-z]+'\] r\.[a-z]+-string\) \(next v0\) "
        r"\(hop v1 r\.[a-z]+-string\)",
        program,
    ), program
    ex = next(e for e in train.examples if question_family(e.question) == "count_greater")
    assert re.fullmatch(r"\(filter_greater all_rows \[\d+\] r\.[a-z]+-number\) \(count v0\)",
                        train.programs[ex.id])


def test_question_family_rejects_foreign_questions():
    assert question_family("Which club is listed first?") == "first"
    with pytest.raises(ValueError):
        question_family("who won the cup in 1999?")
    assert len(TEMPLATES) == len(FAMILIES) == len(set(TEMPLATES.values()))


def test_generator_refuses_questions_whose_entities_are_not_found(monkeypatch):
    """The answerability check is live: lose the entities and generation fails loudly."""
    real = synthetic.annotate

    def without_entities(question, table, index=None):
        annotation = real(question, table, index=index)
        return type(annotation)(annotation.tokens, (), annotation.in_table, annotation.column_features)

    monkeypatch.setattr(synthetic, "annotate", without_entities)
    with pytest.raises(ToyGenerationError, match="needs the"):
        load_toy("train", ToyConfig(seed=99, n_tables=4, questions_per_table=10))


# ---------------------------------------------------------------------------------------------
# Generation relies on the project's interpreter: its semantics on a hand-made table, its refusals
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_table():
    rows = [
        [Cell("Alpha"), Cell("10", number=10.0), Cell("January 31, 1999", 4, date="1999-01-31")],
        [Cell("Beta"), Cell("30", number=30.0), Cell("February 1, 1999", 4, date="1999-02-01")],
        [Cell("Gamma"), Cell("30", number=30.0), Cell("March 5, 1990", 4, date="1990-03-05")],
    ]
    return build_table("t", ["Name", "Score", "Day"], rows, bases=["name", "score", "day"])


def test_interpreter_semantics_the_toy_relies_on(small_table):
    run = lambda text: replay(text, small_table)  # noqa: E731
    # ties: all tied rows, in row order; hop de-duplicates
    assert run("(argmax all_rows r.score-number) (hop v0 r.name-string)") == ["beta", "gamma"]
    assert run("(argmax all_rows r.score-number) (hop v0 r.score-number)") == [30.0]
    # dates order by (y, m, d): Feb 1 is after Jan 31 (the original's key Y*365+M*30+D ties them,
    # which is why the toy's dates keep days 1-28)
    assert run("(argmax all_rows r.day-date) (hop v0 r.name-string)") == ["beta"]
    assert run("(argmin all_rows r.day-date) (hop v0 r.name-string)") == ["gamma"]
    assert run("(filter_greater all_rows [10] r.score-number) (count v0)") == [2.0]
    assert run("(filter_less all_rows [30] r.score-number) (hop v0 r.name-string)") == ["alpha"]
    name = "(filter_str_contain_any all_rows ['alpha'] r.name-string)"
    assert run("(filter_eq all_rows ['1990-03-05'] r.day-date) (previous v0) (hop v1 r.name-string)") == [
        "beta"
    ]
    assert run(name + " (next v0) (hop v1 r.name-string)") == ["beta"]
    assert run(name + " (hop v0 r.day-date)") == ["1999-01-31"]
    assert run("(first all_rows) (last all_rows) (diff v0 v1 r.score-number)") == [20.0]


@pytest.mark.parametrize(
    "program",
    [
        # next of the last row is empty
        "(filter_str_contain_any all_rows ['gamma'] r.name-string) (next v0) (hop v1 r.name-string)",
        # first of a single row
        "(filter_str_contain_any all_rows ['alpha'] r.name-string) (first v0) (hop v1 r.name-string)",
        "(filter_greater all_rows [5] r.score-number) (count v0)",  # the filter keeps every row
        "(argmax all_rows r.score-number)",  # a row set is no answer
        "(argmax all_rows r.name-string) (hop v0 r.name-string)",  # strings are not ordered
        "(hop v3 r.name-string)",  # no such variable
    ],
)
def test_interpreter_refuses_degenerate_programs(small_table, program):
    with pytest.raises(ProgramError):
        replay(program, small_table)


def test_program_format_round_trip_and_errors():
    assert synthetic.ProgramError is interpreter.ProgramError  # one error type for programs
    program = (Expr("filter_eq", ("all_rows", Const((3.5,)), "r.score-number")), Expr("count", (Var(0),)))
    text = "(filter_eq all_rows [3.5] r.score-number) (count v0)"
    assert format_program(program) == text and parse_program(text) == program
    assert format_program((Expr("filter_eq", ("all_rows", Const((40.0,)), "r.x-number")),)) == (
        "(filter_eq all_rows [40] r.x-number)"
    )
    for bad in ("(hop (v0 r.x-string))", "hop v0", "(count v0", "()"):
        with pytest.raises(ProgramError):
            parse_program(bad)


def test_questions_the_interpreter_refuses_are_skipped_deterministically(monkeypatch):
    """A refused gold program is a degenerate question: another is drawn in its place."""
    config = ToyConfig(seed=5, n_tables=6, questions_per_table=12)

    def families(cfg):
        datasets = [load_toy(split, cfg) for split in ("train", "dev")]
        return [question_family(ex.question) for d in datasets for ex in d.examples]

    assert "first" in families(config)  # the family occurs normally

    class RefusingFirst(ProgramContext):
        def replay(self, program):
            if "first" in program:
                raise ProgramError("refused for the test")
            return super().replay(program)

    monkeypatch.setattr(synthetic, "ProgramContext", RefusingFirst)
    try:
        synthetic._generate.cache_clear()
        refused = families(config)
        synthetic._generate.cache_clear()
        assert families(config) == refused  # deterministic
    finally:
        synthetic._generate.cache_clear()  # nothing generated under the patch stays cached
    assert "first" not in refused
    assert len(refused) == 6 * 12  # every table still gets its questions
