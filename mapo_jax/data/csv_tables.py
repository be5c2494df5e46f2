"""Any CSV table as a typed `Table`: our own cell tagging in place of the release's CoreNLP tags.

The WTQ release ships every table CoreNLP-tagged (`number`, `num2`, `date` per cell). A user's own
table has no tags, so each cell is tagged with the question annotator's number and date recogniser
(`annotate.find_numbers_and_dates`), approximating CoreNLP:

* `number`: the first number mentioned in the cell (`1,234` -> 1234, `3rd` -> 3, `two` -> 2);
* `num2`: the second number of a range or score written `a-b` / `a–b` (`2–1`, `1990-1995`);
* `date`: the first date mentioned (`June 4, 1990` -> `1990-06-04`, `1990` -> `1990-xx-xx`).

Columns are then typed by the same rules as a tagged table (`tables.build_table`).
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Optional, Union

from mapo_jax.data.annotate import AnnotationOptions, find_numbers_and_dates, tokenize
from mapo_jax.data.example import DATETIME_LIST, NUM_LIST
from mapo_jax.data.tables import Cell, Table, TableFormatError, build_table

_RANGE_SEPARATORS = {"-", "–", "—", "−", "to"}


def tag_cell(text: str, options: AnnotationOptions = AnnotationOptions()) -> Cell:
    """A cell's text with the number / second number / date our recogniser finds in it."""
    tokens = tokenize(text)
    mentions = find_numbers_and_dates(tokens, options)
    numbers = [m for m in mentions if m.type == NUM_LIST]
    dates = [m for m in mentions if m.type == DATETIME_LIST]
    number = float(numbers[0].value[0]) if numbers else None
    num2 = None
    if len(numbers) >= 2:
        first, second = numbers[0], numbers[1]
        between = tokens[first.end: second.start]
        if len(between) == 1 and between[0] in _RANGE_SEPARATORS:
            num2 = float(second.value[0])
    date = dates[0].value[0] if dates else None
    return Cell(text=text, n_tokens=max(len(tokens), 1), number=number, num2=num2, date=date)


def read_csv_table(path: Union[str, Path], name: Optional[str] = None, max_tokens_for_number: int = 10,
                   min_fraction_for_ordered: float = 0.2) -> Table:
    """Reads a CSV file whose first row is the header; every row must have the header's width."""
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = [row for row in csv.reader(f) if row]
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise TableFormatError(f"{path}: cannot read as CSV: {error}") from error
    if len(rows) < 2:
        raise TableFormatError(f"{path}: a table needs a header row and at least one row")
    header, body = rows[0], rows[1:]
    for number, row in enumerate(body, start=2):
        if len(row) != len(header):
            raise TableFormatError(f"{path}: line {number} has {len(row)} cells, the header has {len(header)}")
    cells = [[tag_cell(text.strip()) for text in row] for row in body]
    return build_table(name or path.name, [h.strip() for h in header], cells,
                       max_tokens_for_number=max_tokens_for_number, min_fraction_for_ordered=min_fraction_for_ordered)
