"""A program executed expression by expression, each result in words: why an answer came out.

`explain_program(context, program)` replays a program with the interpreter (the same checks as
everywhere) and returns one `(expression, result)` pair of strings per expression, e.g.::

    v7 = (filter_str_contain_any all_rows ['peru'] r.nation-string)   2 of 5 rows: row 1 (Peru), row 4 (Peru North)
    v8 = (hop v7 r.gold-number)                                        values: 5, 1

A row set names its rows (1 = the table's first row) with their cells in the column the
expression is about (its property argument, if it has one); lists show their values. Long results
are cut after `max_items` items. Pure: no JAX, no printing.
"""

from __future__ import annotations

from typing import List, Optional, Sequence, Tuple, Union

from mapo_jax.data.values import format_prediction
from mapo_jax.lisp import types as T
from mapo_jax.lisp.functions import iter_rows
from mapo_jax.lisp.interpreter import CLOSE, OPEN, ProgramContext, Variable

MAX_ITEMS = 10


def explain_program(context: ProgramContext, program: Union[str, Sequence[str]],
                    max_items: int = MAX_ITEMS) -> List[Tuple[str, str]]:
    """(`vK = (expression)`, description of its value) for each expression of `program`."""
    tokens = program.split() if isinstance(program, str) else list(program)
    state = context.initial_state()
    steps, opened = [], 0
    for position, token in enumerate(tokens):
        state = state.step(token)
        if token == OPEN:
            opened = position
        elif token == CLOSE:
            expression = tokens[opened: position + 1]
            variable = state.variables[-1]
            column = _property_argument(state, expression[2:-1])
            steps.append((f"{variable.name} = {context.program_text(expression)}",
                          describe_value(context, variable, column, max_items)))
    return steps


def _property_argument(state, names: Sequence[str]) -> Optional[str]:
    """The first property among an expression's arguments: the column its rows are about."""
    for name in names:
        variable = state.lookup(name)
        if T.fits(variable.type, {T.PROPERTY}):
            return variable.value
    return None


def describe_value(context: ProgramContext, variable: Variable, column: Optional[str] = None,
                   max_items: int = MAX_ITEMS) -> str:
    """A computed value in words: rows (with their cells in `column`), a list's values, a number."""
    if variable.type == T.ENTITY_LIST:
        return _describe_rows(context, variable.value, column, max_items)
    values = [_show(v) for v in variable.value]
    if variable.type == T.NUM:
        return f"number: {values[0]}" if len(values) == 1 else f"numbers: {', '.join(values)}"
    return f"value{'s' if len(values) != 1 else ''}: {_cut(values, max_items)}"


def _describe_rows(context: ProgramContext, mask: int, column: Optional[str], max_items: int) -> str:
    table = context.view.table
    rows = list(iter_rows(mask))
    index = table.column(column).index if column is not None else None
    items = [f"row {r + 1}" + (f" ({table.cells[r][index]})" if index is not None else "") for r in rows]
    return f"{len(rows)} of {table.n_rows} row{'s' if table.n_rows != 1 else ''}: {_cut(items, max_items)}"


def _show(value) -> str:
    """A value as a person writes it: 5 rather than 5.0; otherwise as the predictions file has it."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return format_prediction(value)


def _cut(items: List[str], max_items: int) -> str:
    shown = ", ".join(items[:max_items])
    return shown if len(items) <= max_items else f"{shown}, ... ({len(items) - max_items} more)"
