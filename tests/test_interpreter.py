"""The DSL: function semantics on a hand-made table, code assistance, limits, errors, rendering."""

import random

import pytest

from mapo_jax.data.example import Entity
from mapo_jax.data.tables import Cell, build_table, read_tagged_table
from mapo_jax.lisp import types as T
from mapo_jax.lisp.functions import TableView, WTQ_FUNCTIONS, compare_dates
from mapo_jax.lisp.interpreter import (
    END,
    Limits,
    ProgramContext,
    ProgramError,
    decoder_vocabulary,
)

F = {f.name: f for f in WTQ_FUNCTIONS}


@pytest.fixture(scope="module")
def medals():
    """Five nations: rank, gold, a date; two nations tie on gold."""
    rows = [
        ("Peru", 1, 5, "2001-03-04"),
        ("Chile", 2, 3, "1999-xx-xx"),
        ("Brazil", 3, 5, "2001-05-xx"),
        ("Peru North", 4, 1, "2003-01-02"),
        ("Cuba", 5, 2, "1998-12-31"),
    ]
    cells = [
        [Cell(n), Cell(str(r), number=float(r)), Cell(str(g), number=float(g)), Cell(d, date=d)]
        for n, r, g, d in rows
    ]
    return build_table("t", ["Nation", "Rank", "Gold", "Date"], cells)


@pytest.fixture(scope="module")
def view(medals):
    return TableView(medals)


def mask(*rows):
    return sum(1 << r for r in rows)


def test_vocabulary_matches_the_original_layout():
    wtq = decoder_vocabulary("wtq", 60)
    assert len(wtq) == 91 and wtq[:5] == ("<UNK>", "<START>", "<DECODE>", "<END>", "hop")
    assert wtq[26:32] == ("diff", "all_rows", "<ERROR>", "(", ")", "v0")
    wikisql = decoder_vocabulary("wikisql", 60)
    assert len(wikisql) == 78 and wikisql[14:18] == ("all_rows", "<ERROR>", "(", ")")


def test_type_hierarchy():
    assert T.fits(T.NUM_LIST, {T.ORDERED_LIST})
    assert T.fits(T.ENTITY_LIST, {T.ATOM_LIST})
    assert not T.fits(T.STRING_LIST, {T.ORDERED_LIST})
    assert not T.fits(T.NUM, {T.LIST, T.ORDERED_LIST, T.ATOM_LIST})
    assert T.fits(T.DATETIME_PROPERTY, {T.PROPERTY})


def test_row_functions(view):
    all_rows = view.all_rows
    assert F["hop"].apply(view, all_rows, "r.gold-number") == (5.0, 3.0, 1.0, 2.0)  # distinct, row order
    assert F["filter_eq"].apply(view, all_rows, (5.0,), "r.gold-number") == mask(0, 2)
    assert F["filter_not_eq"].apply(view, all_rows, (5.0,), "r.gold-number") == mask(1, 3, 4)
    assert F["argmax"].apply(view, all_rows, "r.gold-number") == mask(0, 2)  # ties kept
    assert F["argmin"].apply(view, all_rows, "r.date-date") == mask(4)
    assert F["same"].apply(view, mask(0), "r.gold-number") == mask(2)
    assert F["first"].apply(view, mask(1, 3)) == mask(1)
    assert F["last"].apply(view, mask(1, 3)) == mask(3)
    assert F["next"].apply(view, mask(1, 4)) == mask(2)  # no row after the last
    assert F["previous"].apply(view, mask(0, 3)) == mask(2)
    assert F["count"].apply(view, mask(0, 2, 3)) == (3.0,)
    assert F["filter_str_contain_any"].apply(view, all_rows, ("peru", "cuba"), "r.nation-string") == mask(0, 3, 4)
    assert F["filter_str_contain_not_any"].apply(view, all_rows, ("peru",), "r.nation-string") == mask(1, 2, 4)


def test_comparisons_and_aggregates(view):
    all_rows = view.all_rows
    assert F["filter_ge"].apply(view, all_rows, (3.0,), "r.gold-number") == mask(0, 1, 2)
    assert F["filter_greater"].apply(view, all_rows, (3.0,), "r.gold-number") == mask(0, 2)
    assert F["filter_le"].apply(view, all_rows, (2.0,), "r.gold-number") == mask(3, 4)
    assert F["filter_less"].apply(view, all_rows, (2.0,), "r.gold-number") == mask(3)
    assert F["maximum"].apply(view, all_rows, "r.gold-number") == (5.0,)
    assert F["minimum"].apply(view, all_rows, "r.date-date") == ("1998-12-31",)
    assert F["mode"].apply(view, all_rows, "r.gold-number") == (5.0,)
    assert F["average"].apply(view, all_rows, "r.gold-number") == (16.0 / 5,)  # duplicates kept
    assert F["sum"].apply(view, all_rows, "r.gold-number") == (16.0,)
    assert F["diff"].apply(view, mask(0), mask(3), "r.gold-number") == (4.0,)


def test_dates_compare_on_the_parts_both_know(view):
    assert compare_dates("2001-xx-xx", "2001-05-03") == 0
    assert compare_dates("1999-xx-xx", "2001-01-01") == -1
    assert compare_dates("xxxx-06-25", "2008-07-01") == -1
    # "in 2001": both 2001 dates match a year-only date
    assert F["filter_eq"].apply(view, view.all_rows, ("2001-xx-xx",), "r.date-date") == mask(0, 2)
    assert F["filter_greater"].apply(view, view.all_rows, ("2000-xx-xx",), "r.date-date") == mask(0, 2, 3)


def _context(table, entities=(), **limits):
    return ProgramContext(table, entities, limits=Limits(**limits), example_id="ex-1")


def test_namespace_and_code_assistance(medals):
    peru = Entity(T.STRING_LIST, ("peru",), 3, 4)
    three = Entity(T.NUM_LIST, (3.0,), 6, 7)
    ctx = _context(medals, [peru, three])
    assert [(v.name, v.value) for v in ctx.constants] == [
        ("v0", "r.nation-string"), ("v1", "r.rank-string"), ("v2", "r.rank-number"),
        ("v3", "r.gold-string"), ("v4", "r.gold-number"), ("v5", "r.date-string"),
        ("v6", "r.date-date"), ("v7", ("peru",)), ("v8", (3.0,)),
    ]
    state = ctx.initial_state()
    assert state.valid_tokens() == ("(",)
    state = state.step("(")
    assert "filter_eq" in state.valid_tokens()
    assert "diff" not in state.valid_tokens()  # needs two single-row sets, none exist yet
    state = state.step("filter_eq").step("all_rows")
    assert state.valid_tokens() == ("v8",)  # only a number that occurs in some row
    state = state.step("v8")
    assert state.valid_tokens() == ("v2", "v4")  # number columns holding a 3 (rank, gold)
    state = state.step("v4").step(")")
    assert state.variables[-1].value == mask(1)
    # A row set cannot be the answer, so the program must go on.
    assert state.valid_tokens() == ("(",)


def test_every_offered_program_executes_and_can_end(wtq_root):
    """Random walks over offered tokens on real tables: no dead end, no empty row set, no error."""
    rng = random.Random(0)
    paths = sorted((wtq_root / "tagged").glob("*-tagged/*.tagged"))[::60]
    for path in paths:
        ctx = _context(read_tagged_table(path))
        for _ in range(30):
            state = ctx.initial_state()
            while not state.done:
                valid = state.valid_tokens()
                assert valid, f"dead end after {state.tokens} in {path}"
                state = state.step(rng.choice(valid))
                for var in state.variables:
                    assert var.value not in (0, ()), f"empty result in {state.tokens}"
            assert state.result.type != T.ENTITY_LIST and not state.unused_variables()


def test_limits(medals):
    ctx = _context(medals, max_n_exp=1)
    # One expression: it must give the answer, so row-set functions are not offered.
    assert ctx.initial_state().step("(").valid_tokens() == (
        "hop", "count", "maximum", "minimum", "mode", "average", "sum")
    state = ctx.replay("( count all_rows )".split())
    assert state.valid_tokens() == (END,)
    small = _context(medals, [Entity(T.STRING_LIST, ("peru",), 0, 1)], max_mem=6, max_n_exp=3)
    assert len(small.constants) == 3 and small.n_dropped_constants == 5


def test_errors_name_the_example_and_the_token(medals):
    ctx = _context(medals)
    with pytest.raises(ProgramError, match=r"example ex-1: token 'hop' may not follow '<start>'"):
        ctx.initial_state().step("hop")
    with pytest.raises(ProgramError, match="no function, constant or variable"):
        ctx.tokens_from_text("(hop all_rows r.nope-string)")
    with pytest.raises(ProgramError, match="comes after <END>"):
        ctx.replay("( count all_rows ) <END> (".split())


def test_rendering_round_trip(wtq_root):
    table = read_tagged_table(wtq_root / "tagged/204-tagged/772.tagged")
    ctx = _context(table, [Entity(T.STRING_LIST, ("crettyard",), 5, 6)])
    text = "(filter_str_contain_any all_rows ['crettyard'] r.team-string) (previous v8) (hop v9 r.team-string)"
    tokens = ctx.tokens_from_text(text)
    assert tokens == ["(", "filter_str_contain_any", "all_rows", "v7", "v0", ")", "(", "previous", "v8",
                      ")", "(", "hop", "v9", "v0", ")", "<END>"]
    state = ctx.replay(tokens)
    assert ctx.program_text(state.tokens) == text
    assert state.denotation() == ["confey"]
    # expression-indexed variables (v0 = first result) read the same
    assert ctx.tokens_from_text(
        "(filter_str_contain_any all_rows ['crettyard'] r.team-string) (previous v0) (hop v1 r.team-string)"
    ) == tokens


def test_memoised_states_are_shared(medals):
    ctx = _context(medals)
    a = ctx.initial_state().step("(").step("count")
    b = ctx.initial_state().step("(").step("count")
    assert a is b  # the trie: the same prefix is the same state
