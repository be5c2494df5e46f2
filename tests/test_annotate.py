"""Question annotation: tokens, numbers, dates, string entities on real WTQ questions and tables."""

import pytest

from mapo_jax.data.annotate import (
    AnnotationOptions,
    annotate,
    entity_summary,
    find_numbers_and_dates,
    tokenize,
)
from mapo_jax.data.example import DATETIME_LIST, NUM_LIST, STRING_LIST
from mapo_jax.data.tables import Cell, build_table, read_tagged_table


@pytest.mark.parametrize(
    "text, tokens",
    [
        ("in what city did piotr's last 1st place finish occur?",
         ["in", "what", "city", "did", "piotr", "'s", "last", "1st", "place", "finish", "occur", "?"]),
        ("Who didn't win 12,467 or 3.5 points (in 1989/90)?",
         ["who", "did", "n't", "win", "12,467", "or", "3.5", "points", "(", "in", "1989/90", ")", "?"]),
        ("the u.s. team’s o'neill, usl a-league.", ["the", "u.s.", "team", "'s", "o'neill", ",", "usl", "a-league", "."]),
        ("a \u201cquoted\u201d -4", ["a", '"', "quoted", '"', "-4"]),
    ],
)
def test_tokenize(text, tokens):
    assert tokenize(text) == tokens


def _mentions(text, **options):
    return [(e.type, e.value, e.start, e.end) for e in find_numbers_and_dates(tokenize(text), AnnotationOptions(**options))]


@pytest.mark.parametrize(
    "text, expected",
    [
        ("more than 2,365 fans", [(NUM_LIST, (2365.0,), 2, 3)]),
        ("at least 3.5 or -4", [(NUM_LIST, (3.5,), 2, 3), (NUM_LIST, (-4.0,), 4, 5)]),
        ("twenty-one and twenty one games", [(NUM_LIST, (21.0,), 0, 1), (NUM_LIST, (21.0,), 2, 4)]),
        ("over 2 million people", [(NUM_LIST, (2000000.0,), 1, 3)]),
        ("who finished 3rd", [(NUM_LIST, (3.0,), 2, 3)]),
        ("the second one", [(NUM_LIST, (1.0,), 2, 3)]),
        ("on january 23, 1984", [(DATETIME_LIST, ("1984-01-23",), 1, 5)]),
        ("on 23 january 1984", [(DATETIME_LIST, ("1984-01-23",), 1, 4)]),
        ("in june 2008", [(DATETIME_LIST, ("2008-06-xx",), 1, 3)]),
        ("on june 25", [(DATETIME_LIST, ("xxxx-06-25",), 1, 3)]),
        ("in december", [(DATETIME_LIST, ("xxxx-12-xx",), 1, 2)]),
        ("he may win", []),
        ("since 1984", [(NUM_LIST, (1984.0,), 1, 2), (DATETIME_LIST, ("1984-xx-xx",), 1, 2)]),
    ],
)
def test_numbers_and_dates(text, expected):
    assert _mentions(text) == expected


def test_word_ordinals_are_an_option():
    assert _mentions("the second one", word_ordinals=True)[0] == (NUM_LIST, (2.0,), 1, 2)


@pytest.fixture(scope="module")
def lakes(wtq_root):
    return read_tagged_table(wtq_root / "tagged/204-tagged/341.tagged")


def test_string_entity_on_a_real_question(wtq_root):
    table = read_tagged_table(wtq_root / "tagged/204-tagged/772.tagged")
    annotation = annotate("which team won previous to crettyard?", table)
    assert entity_summary(annotation.entities) == ["string_list:['crettyard']@5-6"]
    assert annotation.in_table == (0, 0, 0, 0, 0, 1, 0)
    features = dict(zip([c.name for c in table.columns], annotation.column_features))
    assert features["r.team-string"] == 1.0 and features["r.county-string"] == 0.0


def test_expansion_and_or_conjunction_on_a_real_question(lakes):
    annotation = annotate("which is deeper, lake tuz or lake palas tuzla?", lakes)
    assert entity_summary(annotation.entities) == ["string_list:['lake tuz', 'lake palas tuzla']@4-10"]
    assert annotation.in_table[4:10] == (1,) * 6
    plain = annotate("which is deeper, lake tuz or lake palas tuzla?", lakes,
                     AnnotationOptions(expand_entities=False, process_conjunction=False))
    assert [e.value for e in plain.entities][:2] == [("lake",), ("tuz",)]


def test_numbers_in_the_table_set_the_in_table_feature(wtq_root):
    table = read_tagged_table(wtq_root / "tagged/203-tagged/515.tagged")  # airport passengers, 2013
    annotation = annotate("how many more passengers flew to los angeles than to saskatoon in 2013?", table)
    kinds = {e.type for e in annotation.entities}
    assert kinds == {STRING_LIST, NUM_LIST, DATETIME_LIST}
    year = annotation.tokens.index("2013")
    assert annotation.in_table[year] == 0  # 2013 is not a cell value of this table
    angeles = annotation.tokens.index("angeles")
    assert annotation.in_table[angeles] == 1  # inside the expanded "los angeles"


def test_number_and_date_in_table():
    rows = [[Cell("Bob"), Cell("12", number=12.0), Cell("1999", number=1999.0, date="1999-xx-xx")],
            [Cell("Al"), Cell("7", number=7.0), Cell("2001", number=2001.0, date="2001-xx-xx")]]
    table = build_table("t", ["Name", "Goals", "Year"], rows)
    annotation = annotate("did bob score 12 goals in 1999 or 7 in 2004?", table)
    assert annotation.tokens[3] == "12" and annotation.in_table[3] == 1
    assert annotation.tokens[6] == "1999" and annotation.in_table[6] == 1
    assert annotation.tokens[10] == "2004" and annotation.in_table[10] == 0


def test_column_features_count_whole_tokens_only():
    rows = [[Cell("x"), Cell("1", number=1.0)]]
    table = build_table("t", ["Age", "Home games"], rows, bases=["age", "home_games"])
    annotation = annotate("which language has most home game wins?", table)
    features = dict(zip([c.name for c in table.columns], annotation.column_features))
    assert features["r.age-string"] == 0.0  # "age" inside "language" does not count
    assert features["r.home_games-string"] == 2.0  # "home" and "game" (plural-insensitive)


def test_stop_words_and_punctuation_are_never_entities(wtq_root):
    table = read_tagged_table(wtq_root / "tagged/200-tagged/0.tagged")
    annotation = annotate("what is the title of the album (uk)?", table)
    assert all(e.value[0] not in ("the", "(", ")", "?", "of") for e in annotation.entities)
