"""A program explained expression by expression (mapo_jax/lisp/explain.py), on a hand-made table."""

import pytest

from mapo_jax.data.example import Entity
from mapo_jax.data.tables import Cell, build_table
from mapo_jax.lisp import types as T
from mapo_jax.lisp.explain import explain_program
from mapo_jax.lisp.interpreter import ProgramContext, ProgramError


@pytest.fixture(scope="module")
def context():
    """Four nations; constants v0..v5 are the properties, v6 the question's ['peru']."""
    rows = [("Peru", 5, "1990"), ("Chile", 3, "1994"), ("Peru North", 1, "1998"), ("Cuba", 5, "2002")]
    cells = [[Cell(n), Cell(str(g), number=float(g)), Cell(y, number=float(y), date=f"{y}-xx-xx")] for n, g, y in rows]
    table = build_table("medals", ["Nation", "Gold", "Year"], cells)
    context = ProgramContext(table, [Entity(T.STRING_LIST, ("peru",), 0, 1)])
    names = {v.name: v.value for v in context.constants}
    assert names["v0"] == "r.nation-string" and names["v2"] == "r.gold-number" and names["v6"] == ("peru",)
    return context


def test_rows_are_named_with_their_cells_in_the_expression_column(context):
    steps = explain_program(context, "( filter_str_contain_any all_rows v6 v0 ) ( hop v7 v2 ) <END>")
    assert steps == [
        ("v7 = (filter_str_contain_any all_rows ['peru'] r.nation-string)", "2 of 4 rows: row 1 (Peru), row 3 (Peru North)"),
        ("v8 = (hop v7 r.gold-number)", "values: 5, 1"),
    ]


def test_ties_counts_and_strings(context):
    steps = explain_program(context, "( argmax all_rows v2 ) ( hop v7 v0 ) <END>")
    assert steps == [("v7 = (argmax all_rows r.gold-number)", "2 of 4 rows: row 1 (5), row 4 (5)"),
                     ("v8 = (hop v7 r.nation-string)", "values: peru, cuba")]
    steps = explain_program(context, "( filter_str_contain_any all_rows v6 v0 ) ( count v7 ) <END>")
    assert steps[-1] == ("v8 = (count v7)", "number: 2")


def test_rows_without_a_column_and_long_results_are_cut(context):
    steps = explain_program(context, "( filter_str_contain_any all_rows v6 v0 ) ( next v7 ) ( hop v8 v0 ) <END>",
                            max_items=1)
    assert steps[1] == ("v8 = (next v7)", "2 of 4 rows: row 2, ... (1 more)")  # the rows after 1 and 3
    assert steps[2] == ("v9 = (hop v8 r.nation-string)", "values: chile, ... (1 more)")


def test_a_program_that_cannot_run_is_refused(context):
    with pytest.raises(ProgramError, match="may not follow"):
        explain_program(context, "( count v0 ) <END>")
