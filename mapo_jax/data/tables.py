"""Typed tables: the knowledge graph the interpreter executes programs on.

A table is column-major: each *property* (`r.<column>-<kind>`, kind in string / number / num2 / date)
maps to one value per row, or None where that row has no value of that kind. The properties offered
to programs are listed in `Table.columns` in table order (per source column: string, number, num2,
date). The order must be deterministic (the original used Python 2 set order) because positions
define the variable names `v0, v1, ...` that saved programs refer to.

Typing rules (the original release's, with the fix stated in the last point):
* every cell gets a string value, the official normaliser applied to its content;
* a cell with fewer than `max_tokens_for_number` (10) tokens gets its CoreNLP `number` / `num2`;
* a cell gets its CoreNLP `date` (`yyyy-mm-dd` with `xx` unknown parts) regardless of length;
* a number/num2/date property present in fewer than `min_fraction_for_ordered` (20%) of the rows is
  dropped entirely: from the rows *and* from the offered columns (the original kept it as a column
  that no row has, which only produced empty results).
"""

from __future__ import annotations

import dataclasses
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Optional, Sequence, Union

from mapo_jax.data.values import normalize, tsv_unescape
from mapo_jax.errors import UserInputError

logger = logging.getLogger(__name__)

KINDS = ("string", "number", "num2", "date")
ORDERED_KINDS = ("number", "num2", "date")
TAGGED_FIELDS = (
    "row", "col", "id", "content", "tokens", "lemmaTokens", "posTags", "nerTags", "nerValues",
    "number", "date", "num2", "list", "listId",
)

Number = float
CellValue = Union[str, float]


class TableFormatError(UserInputError):
    """A table file that cannot be turned into a typed table (the message names file and line)."""


@dataclass(frozen=True)
class Cell:
    """One cell as tagged by CoreNLP: its text and the recognised number / second number / date."""

    text: str
    n_tokens: int = 1
    number: Optional[float] = None
    num2: Optional[float] = None
    date: Optional[str] = None


@dataclass(frozen=True)
class Column:
    """One property offered to programs, e.g. `r.points-number`."""

    name: str  # property name, `r.<base>-<kind>`
    base: str  # column identifier, e.g. `points` or `chart_positions_uk`
    kind: str  # string | number | num2 | date
    index: int  # position of the source column in the table

    @property
    def words(self) -> tuple:
        """Words of the column name, used for column-name overlap features."""
        return tuple(w for w in self.base.split("_") if w)


@dataclass(frozen=True)
class Table:
    """A typed table. `values[prop][i]` is row i's value of property `prop` (None if absent)."""

    name: str
    headers: tuple  # display headers, one per source column
    bases: tuple  # column identifiers, one per source column
    cells: tuple  # rows x source columns of raw cell text, for display
    columns: tuple  # offered properties (Column), deterministic order
    values: Mapping[str, tuple]
    dropped: tuple = ()  # properties removed by the sparse-column rule

    @property
    def n_rows(self) -> int:
        return len(self.cells)

    def column(self, name: str) -> Column:
        for column in self.columns:
            if column.name == name:
                return column
        raise KeyError(f"table {self.name} has no property {name!r}")

    def searchable_strings(self) -> tuple:
        """Every string-valued cell (string and date properties), as entity matching sees them."""
        out = []
        for column in self.columns:
            if column.kind in ("string", "date"):
                out.extend(v for v in self.values[column.name] if v is not None)
        return tuple(out)

    def to_json(self) -> dict:
        return {
            "name": self.name,
            "headers": list(self.headers),
            "bases": list(self.bases),
            "cells": [list(row) for row in self.cells],
            "columns": [dataclasses.astuple(c) for c in self.columns],
            "values": {k: list(v) for k, v in self.values.items()},
            "dropped": list(self.dropped),
        }

    @classmethod
    def from_json(cls, data: dict) -> "Table":
        return cls(
            name=data["name"],
            headers=tuple(data["headers"]),
            bases=tuple(data["bases"]),
            cells=tuple(tuple(row) for row in data["cells"]),
            columns=tuple(Column(*c) for c in data["columns"]),
            values={k: tuple(v) for k, v in data["values"].items()},
            dropped=tuple(data["dropped"]),
        )


def property_name(base: str, kind: str) -> str:
    return f"r.{base}-{kind}"


def column_base(identifier: str, header: str, index: int) -> str:
    """Column identifier from a tagged header id (`fb:row.row.year_built` -> `year_built`)."""
    base = identifier[len("fb:row.row."):] if identifier.startswith("fb:row.row.") else ""
    if not base:  # fall back to the header text, then to the position
        base = re.sub(r"[^0-9a-z]+", "_", normalize(header)).strip("_")
    return base or f"column_{index}"


def build_table(
    name: str,
    headers: Sequence[str],
    rows: Sequence[Sequence[Cell]],
    bases: Optional[Sequence[str]] = None,
    max_tokens_for_number: int = 10,
    min_fraction_for_ordered: float = 0.2,
) -> Table:
    """Types a grid of tagged cells (rows x columns) into a `Table` (rules in the module doc)."""
    n_cols = len(headers)
    if bases is None:
        bases = [column_base("", h, i) for i, h in enumerate(headers)]
    bases = _deduplicate(list(bases))
    for r, row in enumerate(rows):
        if len(row) != n_cols:
            raise TableFormatError(f"{name}: row {r} has {len(row)} cells, header has {n_cols}")
    n_rows = len(rows)
    per_column = {}
    for c in range(n_cols):
        column_cells = [row[c] for row in rows]
        kinds = {
            "string": [normalize(cell.text) for cell in column_cells],
            "number": [
                cell.number if cell.n_tokens < max_tokens_for_number else None
                for cell in column_cells
            ],
            "num2": [
                cell.num2 if cell.n_tokens < max_tokens_for_number else None
                for cell in column_cells
            ],
            "date": [cell.date for cell in column_cells],
        }
        per_column[c] = kinds
    columns, values, dropped = [], {}, []
    for c in range(n_cols):
        for kind in KINDS:
            column_values = per_column[c][kind]
            present = sum(v is not None for v in column_values)
            if present == 0:
                continue
            prop = property_name(bases[c], kind)
            if kind in ORDERED_KINDS and present < min_fraction_for_ordered * n_rows:
                dropped.append(prop)
                continue
            columns.append(Column(prop, bases[c], kind, c))
            values[prop] = tuple(column_values)
    return Table(
        name=name,
        headers=tuple(headers),
        bases=tuple(bases),
        cells=tuple(tuple(cell.text for cell in row) for row in rows),
        columns=tuple(columns),
        values=values,
        dropped=tuple(dropped),
    )


def _deduplicate(names: list) -> list:
    seen = {}
    out = []
    for name in names:
        if name in seen:
            seen[name] += 1
            candidate = f"{name}_{seen[name]}"
            while candidate in seen:
                seen[name] += 1
                candidate = f"{name}_{seen[name]}"
            name = candidate
        seen[name] = 1
        out.append(name)
    return out


def _float_or_none(text: str) -> Optional[float]:
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    return value if value == value and abs(value) != float("inf") else None


def read_tagged_table(
    path: Union[str, Path],
    name: Optional[str] = None,
    max_tokens_for_number: int = 10,
    min_fraction_for_ordered: float = 0.2,
) -> Table:
    """Reads a CoreNLP-tagged table (`tagged/2xx-tagged/N.tagged`) into a `Table`.

    Every line of the release's tables is well formed, so a malformed line or a missing cell means
    a damaged file (typically cut off mid-line): it raises `TableFormatError` naming the file and
    line rather than losing rows without a word.
    """
    path = Path(path)
    name = name or path.name
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise TableFormatError(f"{path}: cannot read: {error}") from error
    lines = text.split("\n")
    header = lines[0].rstrip("\r").split("\t") if lines else []
    if header[:4] != list(TAGGED_FIELDS[:4]):
        raise TableFormatError(f"{path}: line 1 is not a tagged-table header: {lines[0][:80]!r}")
    field_index = {f: i for i, f in enumerate(header)}
    missing = [f for f in ("tokens", "number", "date", "num2") if f not in field_index]
    if missing:
        raise TableFormatError(f"{path}: header lacks fields {missing}")
    heads: dict = {}
    grid: dict = {}
    for line_no, line in enumerate(lines[1:], start=2):
        line = line.rstrip("\r")
        if not line:
            continue
        parts = line.split("\t")
        if len(parts) != len(header):
            raise TableFormatError(f"{path}:{line_no}: {len(parts)} fields, the header has {len(header)} "
                                   f"(the file is cut off or damaged)")
        try:
            row, col = int(parts[0]), int(parts[1])
        except ValueError:
            raise TableFormatError(f"{path}:{line_no}: row/col are not integers: {parts[:2]}") from None
        get = lambda f: parts[field_index[f]]  # noqa: E731
        if row == -1:
            heads[col] = (get("id"), tsv_unescape(get("content")))
            continue
        tokens = get("tokens")
        grid[(row, col)] = Cell(
            text=tsv_unescape(get("content")),
            n_tokens=len(tokens.split("|")) if tokens else 0,
            number=_float_or_none(get("number")),
            num2=_float_or_none(get("num2")),
            date=get("date") or None,
        )
    if not heads:
        raise TableFormatError(f"{path}: no header cells (row -1)")
    n_cols = max(heads) + 1
    if sorted(heads) != list(range(n_cols)):
        raise TableFormatError(f"{path}: header columns {sorted(heads)} are not 0..{n_cols - 1}")
    n_rows = max((r for r, _ in grid), default=-1) + 1
    rows = []
    for r in range(n_rows):
        row = []
        for c in range(n_cols):
            cell = grid.get((r, c))
            if cell is None:
                raise TableFormatError(f"{path}: no line for the cell of row {r}, column {c} "
                                       f"(the file is cut off or damaged)")
            row.append(cell)
        rows.append(row)
    bases = [column_base(heads[c][0], heads[c][1], c) for c in range(n_cols)]
    return build_table(
        name,
        [heads[c][1] for c in range(n_cols)],
        rows,
        bases=bases,
        max_tokens_for_number=max_tokens_for_number,
        min_fraction_for_ordered=min_fraction_for_ordered,
    )
