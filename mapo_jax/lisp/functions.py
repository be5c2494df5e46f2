"""The DSL functions over a typed table and their code-assistance rules
(docs/architecture.md#the-interpreter-and-programs).

Values inside the interpreter:
* a set of rows (`entity_list`) is an int bit mask, bit i = row i: filters are `&`, next/previous
  are shifts, count is a popcount, which keeps the pure-Python interpreter fast;
* string / number / date lists are tuples (`date` values are `yyyy-mm-dd` strings with `xx` parts);
* a property is its name (`r.points-number`); a `num` result is a 1-tuple of float.

Deliberate differences from the original: comparisons never mix numbers and dates
(a number list only meets number properties, a date list only date properties); dates compare and
match on the parts both dates know (`1984-xx-xx` equals `1984-05-02`, and is less than
`1985-01-01`); every output order is deterministic (row order, first occurrence).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, Optional, Tuple

from mapo_jax.data.tables import Table
from mapo_jax.lisp import types as T

# ---------------------------------------------------------------------------------------------
# Table view: the table's columns with the indexes the functions need
# ---------------------------------------------------------------------------------------------


def parse_date(text: str) -> Tuple[int, int, int]:
    """`yyyy-mm-dd` with `x` wildcards -> (year, month, day), -1 for an unknown part."""
    parts = text.split("-")
    if len(parts) != 3:
        return (-1, -1, -1)
    out = []
    for part in parts:
        try:
            out.append(int(part))
        except ValueError:
            out.append(-1)
    return tuple(out)


def compare_dates(a: str, b: str) -> int:
    """-1/0/1 comparing on the parts both dates know (year, then month, then day)."""
    for x, y in zip(parse_date(a), parse_date(b)):
        if x == -1 or y == -1:
            continue
        if x != y:
            return -1 if x < y else 1
    return 0


def date_sort_key(text: str) -> Tuple[int, int, int]:
    """A total order for argmax/maximum: unknown parts count as 0 (the original's day count)."""
    return tuple(max(p, 0) for p in parse_date(text))


def iter_rows(mask: int):
    """Row indices of a bit mask, ascending."""
    while mask:
        low = mask & -mask
        yield low.bit_length() - 1
        mask ^= low


class TableView:
    """A table seen by the functions: per property its column, kind, presence mask and indexes."""

    def __init__(self, table: Table):
        self.table = table
        self.n_rows = table.n_rows
        self.all_rows = (1 << self.n_rows) - 1
        self.columns: Dict[str, tuple] = {}
        self.property_type: Dict[str, str] = {}
        self.present: Dict[str, int] = {}
        for column in table.columns:
            values = table.values[column.name]
            self.columns[column.name] = values
            self.property_type[column.name] = T.PROPERTY_TYPE_OF_KIND[column.kind]
            self.present[column.name] = sum(1 << i for i, v in enumerate(values) if v is not None)
        self._equal_masks: Dict[tuple, int] = {}

    def is_date(self, prop: str) -> bool:
        return self.property_type[prop] == T.DATETIME_PROPERTY

    def equal_mask(self, prop: str, value) -> int:
        """Rows whose value of `prop` equals `value` (dates: on the parts both know). Cached."""
        key = (prop, value)
        mask = self._equal_masks.get(key)
        if mask is None:
            column = self.columns[prop]
            if self.is_date(prop):
                mask = sum(
                    1 << i for i, v in enumerate(column) if v is not None and compare_dates(v, value) == 0
                )
            else:
                mask = sum(1 << i for i, v in enumerate(column) if v is not None and v == value)
            self._equal_masks[key] = mask
        return mask

    def values(self, rows: int, prop: str) -> list:
        column = self.columns[prop]
        return [column[i] for i in iter_rows(rows & self.present[prop])]

    def sort_key(self, prop: str) -> Callable:
        return date_sort_key if self.is_date(prop) else float

    def compare(self, prop: str, a, b) -> int:
        if self.is_date(prop):
            return compare_dates(a, b)
        return (a > b) - (a < b)


# ---------------------------------------------------------------------------------------------
# Function implementations: f(view, *args) -> value
# ---------------------------------------------------------------------------------------------


def _distinct(values) -> tuple:
    return tuple(dict.fromkeys(values))


def _hop(view, rows, prop):
    return _distinct(view.values(rows, prop))


def _hop_keep_duplicates(view, rows, prop):
    return tuple(view.values(rows, prop))


def _single(values: tuple):
    """The one distinct value of a list, or a sentinel that equals nothing."""
    distinct = _distinct(values)
    return distinct[0] if len(distinct) == 1 else _NOTHING


_NOTHING = object()


def _filter_eq(view, rows, values, prop):
    value = _single(values)
    return 0 if value is _NOTHING else rows & view.equal_mask(prop, value)


def _filter_not_eq(view, rows, values, prop):
    value = _single(values)
    return rows if value is _NOTHING else rows & ~view.equal_mask(prop, value)


def _arg_extreme(pick):
    def apply(view, rows, prop):
        column, key = view.columns[prop], view.sort_key(prop)
        candidates = list(iter_rows(rows & view.present[prop]))
        if not candidates:
            return 0
        best = pick(key(column[i]) for i in candidates)
        return sum(1 << i for i in candidates if key(column[i]) == best)

    return apply


def _same(view, rows, prop):
    (row,) = iter_rows(rows)
    value = view.columns[prop][row]
    if value is None:
        return 0
    return view.equal_mask(prop, value) & ~rows


def _first(view, rows):
    return rows & -rows


def _last(view, rows):
    return 1 << (rows.bit_length() - 1)


def _next(view, rows):
    return (rows << 1) & view.all_rows


def _previous(view, rows):
    return rows >> 1


def _count(view, rows):
    return (float(rows.bit_count()),)


def _contains(keep_if_any: bool):
    def apply(view, rows, strings, prop):
        column = view.columns[prop]
        out = 0
        for i in iter_rows(rows & view.present[prop]):
            hit = any(s in column[i] for s in strings)
            if hit == keep_if_any:
                out |= 1 << i
        return out

    return apply


def _comparison(test: Callable[[int], bool]):
    def apply(view, rows, values, prop):
        column = view.columns[prop]
        out = 0
        for i in iter_rows(rows & view.present[prop]):
            if all(test(view.compare(prop, column[i], x)) for x in values):
                out |= 1 << i
        return out

    return apply


def _extreme_value(pick):
    def apply(view, rows, prop):
        values = _distinct(view.values(rows, prop))
        if not values:
            return ()
        return (pick(values, key=view.sort_key(prop)),)

    return apply


def _mode(view, rows, prop):
    counts: Dict[object, int] = {}
    for value in view.values(rows, prop):
        counts[value] = counts.get(value, 0) + 1
    if not counts:
        return ()
    top = max(counts.values())
    return tuple(v for v, c in counts.items() if c == top)


def _average(view, rows, prop):
    values = view.values(rows, prop)
    return (sum(values) / len(values),) if values else ()


def _sum(view, rows, prop):
    return (float(sum(view.values(rows, prop))),)


def _diff(view, rows_a, rows_b, prop):
    column = view.columns[prop]
    (a,), (b,) = iter_rows(rows_a), iter_rows(rows_b)
    if column[a] is None or column[b] is None:
        return ()
    return (abs(column[a] - column[b]),)


# ---------------------------------------------------------------------------------------------
# Code assistance: may `candidate` fill argument `position` after `args`?
# (Non-empty results and completability are checked by the interpreter for every function.)
# ---------------------------------------------------------------------------------------------


def _popcount(mask: int) -> int:
    return mask.bit_count()


def _present_in(view, rows, prop):
    return bool(view.present[prop] & rows)


def _kind_matches(list_type: str, property_type: str) -> bool:
    return (list_type, property_type) in (
        (T.NUM_LIST, T.NUM_PROPERTY),
        (T.DATETIME_LIST, T.DATETIME_PROPERTY),
        (T.STRING_LIST, T.STRING_PROPERTY),
    )


def _check_hop(view, position, args, value, type_):
    return True if position == 0 else _present_in(view, args[0][0], value)


def _check_several_rows_then_present(view, position, args, value, type_):
    if position == 0:
        return _popcount(value) > 1
    return _present_in(view, args[0][0], value)


def _check_equality(view, position, args, value, type_):
    if position == 0:
        return _popcount(value) > 1
    if position == 1:
        single = _single(value)
        if single is _NOTHING:
            return False
        rows = args[0][0]
        return any(
            _kind_matches(type_, ptype) and rows & view.equal_mask(prop, single)
            for prop, ptype in view.property_type.items()
        )
    return _kind_matches(args[1][1], type_)


def _check_same(view, position, args, value, type_):
    if position == 0:
        return _popcount(value) == 1
    return _present_in(view, args[0][0], value)


def _check_several_rows(view, position, args, value, type_):
    return _popcount(value) > 1


def _check_next_previous(view, position, args, value, type_):
    return value != 0 and value != view.all_rows


def _check_any(view, position, args, value, type_):
    return True


def _check_contains(view, position, args, value, type_):
    if position == 0:
        return _popcount(value) > 1
    if position == 1:
        return len(value) > 0
    return True


def _check_comparison(view, position, args, value, type_):
    if position == 2:
        return _kind_matches(args[1][1], type_)
    return True


def _check_diff(view, position, args, value, type_):
    if position == 0:
        return _popcount(value) == 1
    if position == 1:
        return _popcount(value) == 1 and value != args[0][0]
    return _present_in(view, args[0][0], value) and _present_in(view, args[1][0], value)


# ---------------------------------------------------------------------------------------------
# Signatures
# ---------------------------------------------------------------------------------------------

ROWS = frozenset({T.ENTITY_LIST})
ANY_PROPERTY = frozenset({T.PROPERTY})
ORDERED_PROPERTY = frozenset({T.ORDERED_PROPERTY})
NUM_PROPERTY = frozenset({T.NUM_PROPERTY})
STRING_PROPERTY = frozenset({T.STRING_PROPERTY})
ORDERED_LIST = frozenset({T.ORDERED_LIST})
STRING_LIST = frozenset({T.STRING_LIST})
FROM_PROPERTY = None  # return type = the list type of the property argument


@dataclass(frozen=True)
class Function:
    """A DSL function: argument slots, return type, implementation and code-assistance rule."""

    name: str
    slots: Tuple[frozenset, ...]
    returns: Optional[str]
    apply: Callable
    check: Callable

    arity: int = 0  # set from `slots`

    def __post_init__(self):
        object.__setattr__(self, "arity", len(self.slots))

    def return_type(self, arg_types: Tuple[str, ...]) -> str:
        if self.returns is not FROM_PROPERTY:
            return self.returns
        return T.LIST_TYPE_OF_PROPERTY[arg_types[-1]]


def _fn(name, slots, returns, apply, check):
    return Function(name, tuple(slots), returns, apply, check)


_ROW_FILTER = (ROWS, ORDERED_LIST, ORDERED_PROPERTY)

WTQ_FUNCTIONS: Tuple[Function, ...] = (
    _fn("hop", (ROWS, ANY_PROPERTY), FROM_PROPERTY, _hop, _check_hop),
    _fn("filter_eq", _ROW_FILTER, T.ENTITY_LIST, _filter_eq, _check_equality),
    _fn("filter_not_eq", _ROW_FILTER, T.ENTITY_LIST, _filter_not_eq, _check_equality),
    _fn("argmax", (ROWS, ORDERED_PROPERTY), T.ENTITY_LIST, _arg_extreme(max), _check_several_rows_then_present),
    _fn("argmin", (ROWS, ORDERED_PROPERTY), T.ENTITY_LIST, _arg_extreme(min), _check_several_rows_then_present),
    _fn("same", (ROWS, ANY_PROPERTY), T.ENTITY_LIST, _same, _check_same),
    _fn("first", (ROWS,), T.ENTITY_LIST, _first, _check_several_rows),
    _fn("last", (ROWS,), T.ENTITY_LIST, _last, _check_several_rows),
    _fn("next", (ROWS,), T.ENTITY_LIST, _next, _check_next_previous),
    _fn("previous", (ROWS,), T.ENTITY_LIST, _previous, _check_next_previous),
    _fn("count", (ROWS,), T.NUM, _count, _check_any),
    _fn("filter_str_contain_any", (ROWS, STRING_LIST, STRING_PROPERTY), T.ENTITY_LIST, _contains(True), _check_contains),
    _fn("filter_str_contain_not_any", (ROWS, STRING_LIST, STRING_PROPERTY), T.ENTITY_LIST, _contains(False), _check_contains),
    _fn("filter_ge", _ROW_FILTER, T.ENTITY_LIST, _comparison(lambda c: c >= 0), _check_comparison),
    _fn("filter_greater", _ROW_FILTER, T.ENTITY_LIST, _comparison(lambda c: c > 0), _check_comparison),
    _fn("filter_le", _ROW_FILTER, T.ENTITY_LIST, _comparison(lambda c: c <= 0), _check_comparison),
    _fn("filter_less", _ROW_FILTER, T.ENTITY_LIST, _comparison(lambda c: c < 0), _check_comparison),
    _fn("maximum", (ROWS, ORDERED_PROPERTY), FROM_PROPERTY, _extreme_value(max), _check_several_rows_then_present),
    _fn("minimum", (ROWS, ORDERED_PROPERTY), FROM_PROPERTY, _extreme_value(min), _check_several_rows_then_present),
    _fn("mode", (ROWS, ANY_PROPERTY), FROM_PROPERTY, _mode, _check_several_rows_then_present),
    _fn("average", (ROWS, NUM_PROPERTY), T.NUM, _average, _check_several_rows_then_present),
    _fn("sum", (ROWS, NUM_PROPERTY), T.NUM, _sum, _check_several_rows_then_present),
    _fn("diff", (ROWS, ROWS, NUM_PROPERTY), T.NUM, _diff, _check_diff),
)

_BY_NAME = {f.name: f for f in WTQ_FUNCTIONS}

# WikiSQL: a subset; `hop` keeps duplicates and row order (answers are compared as ordered lists).
WIKISQL_FUNCTIONS: Tuple[Function, ...] = (
    _fn("hop", (ROWS, ANY_PROPERTY), FROM_PROPERTY, _hop_keep_duplicates, _check_hop),
    _BY_NAME["filter_eq"],
    _BY_NAME["filter_str_contain_any"],
    _BY_NAME["filter_greater"],
    _BY_NAME["filter_less"],
    _BY_NAME["count"],
    _BY_NAME["maximum"],
    _BY_NAME["minimum"],
    _BY_NAME["average"],
    _BY_NAME["sum"],
)

FUNCTION_SETS = {"wtq": WTQ_FUNCTIONS, "wikisql": WIKISQL_FUNCTIONS}
