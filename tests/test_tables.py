"""Typed tables read from real CoreNLP-tagged WTQ tables, and malformed-input handling."""

import pytest

from mapo_jax.data.tables import TAGGED_FIELDS, Cell, TableFormatError, build_table, read_tagged_table


@pytest.fixture(scope="module")
def discography(wtq_root):
    return read_tagged_table(wtq_root / "tagged/200-tagged/0.tagged", name="csv/200-csv/0.csv")


def test_columns_in_table_order_with_kinds(discography):
    names = [c.name for c in discography.columns]
    assert names == [
        "r.year-string", "r.year-number", "r.year-date", "r.title-string",
        "r.chart_positions_uk-string", "r.chart_positions_uk-number",
        "r.chart_positions_us-string", "r.chart_positions_us-number",
        "r.chart_positions_nl-string", "r.comments-string",
    ]
    assert [c.index for c in discography.columns][:4] == [0, 0, 0, 1]
    assert discography.headers[2] == "Chart-Positions\nUK"  # TSV escape undone


def test_cell_values_are_typed(discography):
    assert discography.n_rows == 13
    assert discography.values["r.year-string"][0] == "1969"
    assert discography.values["r.year-number"][0] == 1969.0
    assert discography.values["r.year-date"][0] == "1969-xx-xx"
    assert discography.values["r.title-string"][0] == "renaissance"  # normalised
    assert discography.values["r.chart_positions_uk-string"][1] == "-"  # en dash normalised
    assert discography.values["r.chart_positions_uk-number"][1] is None


def test_ten_token_rule_drops_numbers_of_long_cells(discography):
    # Row 6, column 5 is a 21-token comment that CoreNLP tagged with the number 1977.
    assert discography.cells[6][5].startswith("1977 (January in US")
    assert "r.comments-number" not in discography.values


def test_sparse_ordered_columns_are_dropped_not_offered(discography):
    # chart_positions_nl has a number in fewer than 20% of rows: gone from rows and constants.
    assert "r.chart_positions_nl-number" in discography.dropped
    assert all(c.name != "r.chart_positions_nl-number" for c in discography.columns)


def test_num2_from_ranges(wtq_root):
    table = read_tagged_table(wtq_root / "tagged/200-tagged/41.tagged")
    assert table.cells[2][0] == "3 = 21 + 1"
    assert table.values["r.number-number"][2] == 3.0
    assert table.values["r.number-num2"][2] == 21.0
    # One "1989/90" season in a mostly plain year column: its num2 is too sparse to keep.
    seasons = read_tagged_table(wtq_root / "tagged/200-tagged/12.tagged")
    assert "r.year-num2" in seasons.dropped


def test_every_release_table_parses(wtq_root):
    files = sorted((wtq_root / "tagged").glob("*-tagged/*.tagged"))
    assert len(files) == 2108
    for path in files[::50]:  # a spread sample; launch/preprocess.py reads them all
        table = read_tagged_table(path)
        assert table.n_rows > 0 and table.columns


TAGGED_HEADER = "\t".join(TAGGED_FIELDS)


def _tagged_lines(n_rows):
    """A well-formed tagged table of two columns (name, points) as lines."""
    lines = [TAGGED_HEADER, "-1\t0\tfb:row.row.name\tName" + "\t" * 10, "-1\t1\tfb:row.row.points\tPoints" + "\t" * 10]
    for r in range(n_rows):
        lines.append(f"{r}\t0\tfb:cell.n{r}\tName {r}\tname|{r}" + "\t" * 9)
        lines.append(f"{r}\t1\tfb:cell.{r}\t{r}\t{r}\t\t\t\t\t{r}.0\t\t\t\t")
    return lines


def test_a_well_formed_tagged_table_reads_every_row(tmp_path):
    path = tmp_path / "t.tagged"
    path.write_text("\n".join(_tagged_lines(4)) + "\n")
    table = read_tagged_table(path)
    assert table.n_rows == 4 and table.values["r.points-number"] == (0.0, 1.0, 2.0, 3.0)


def test_a_table_cut_off_mid_line_is_an_error_naming_file_and_line(tmp_path):
    """Cut in the middle of row 2's points cell: reading used to keep rows 0-2 and lose row 3 with
    only an anonymous warning count."""
    text = "\n".join(_tagged_lines(4)) + "\n"
    path = tmp_path / "t.tagged"
    cut = "2\t1\tfb:cell.2\t2"  # row 2's points line (line 9), cut after its content field
    path.write_text(text[: text.index(cut) + len(cut)])
    with pytest.raises(TableFormatError, match=r"t\.tagged:9: 4 fields, the header has 14 .*cut off"):
        read_tagged_table(path)


def test_a_malformed_or_missing_cell_line_is_an_error(tmp_path):
    lines = _tagged_lines(3)
    path = tmp_path / "t.tagged"
    path.write_text("\n".join(lines[:5] + ["x\ty" + "\t" * 12] + lines[5:]) + "\n")
    with pytest.raises(TableFormatError, match=r"t\.tagged:6: row/col are not integers"):
        read_tagged_table(path)
    path.write_text("\n".join(lines[:5] + lines[6:]) + "\n")  # row 1's name cell is gone
    with pytest.raises(TableFormatError, match=r"t\.tagged: no line for the cell of row 1, column 0"):
        read_tagged_table(path)


def test_unusable_table_raises_a_clear_error(tmp_path):
    path = tmp_path / "bad.tagged"
    path.write_text("not a header\n")
    with pytest.raises(TableFormatError, match="bad.tagged"):
        read_tagged_table(path)
    with pytest.raises(TableFormatError, match="cannot read"):
        read_tagged_table(tmp_path / "missing.tagged")


def test_build_table_deduplicates_column_names():
    rows = [[Cell("a"), Cell("1", number=1.0)], [Cell("b"), Cell("2", number=2.0)]]
    table = build_table("t", ["Name", "Name"], rows)
    assert [c.name for c in table.columns] == ["r.name-string", "r.name_2-string", "r.name_2-number"]
