"""Question annotation: tokens, number and date mentions, entities matched against the table, features.

The original release read CoreNLP annotations of the questions; those exist only for the test split,
so this module is our own replacement, close to CoreNLP where it matters for programs:

* tokens: lower-cased, punctuation split off, possessives and contractions split (`piotr 's`,
  `do n't`), numbers with thousands separators and decimals kept whole (`12,467`, `3.5`);
* numbers: digits, `2,365`, decimals, negatives, digit ordinals (`3rd`), number words (`twenty one`,
  `twenty-one`), scales (`2 million`) -> `num_list` entities;
* dates: `month day, year`, `day month year`, `month year`, `month day`, a month alone, and years ->
  `datetime_list` entities with values as the evaluator prints dates (`1984-01-23`, `1984-xx-xx`,
  `xxxx-06-xx`). A year (4 digits, 1000-2999) yields both a number and a date entity;
* string entities: a non-stop-word token whose normalised form is a substring of some string (or
  date) cell, greedily expanded to the right while the joined span still occurs in a cell; two
  string entities at most two tokens either side of the first `or` merge into one two-value entity;
* `in_table`: 1 for tokens of string entities, and of number/date mentions whose value is in the
  table (the original never set it for numbers and dates);
* column features: per table column, how many of its name's words occur as whole question tokens
  (the original matched substrings of the raw question, so `age` matched `language`).
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from importlib import resources
from typing import Iterable, List, Optional, Sequence, Tuple

from mapo_jax.data.example import DATETIME_LIST, NUM_LIST, STRING_LIST, Entity
from mapo_jax.data.tables import Table
from mapo_jax.data.values import MONTHS, date_canon, normalize


@dataclass(frozen=True)
class AnnotationOptions:
    """Switches of the annotation pipeline; all of them enter the preprocessing cache key."""

    expand_entities: bool = True
    process_conjunction: bool = True
    word_ordinals: bool = False  # "second" -> 2; off: "first"/"last" are function words far more often
    min_year: int = 1000
    max_year: int = 2999


@dataclass(frozen=True)
class Annotation:
    tokens: Tuple[str, ...]
    entities: Tuple[Entity, ...]
    in_table: Tuple[int, ...]
    column_features: Tuple[float, ...]


@functools.lru_cache(maxsize=None)
def stop_words() -> frozenset:
    """The stop-word list published with the original release (shipped as package data)."""
    text = resources.files("mapo_jax.data").joinpath("resources/stop_words.json").read_text()
    return frozenset(json.loads(text))


# ---------------------------------------------------------------------------------------------
# Tokenisation
# ---------------------------------------------------------------------------------------------

_APOSTROPHES = re.compile("[\u2018\u2019\u00b4`]")
_DOUBLE_QUOTES = re.compile("[\u201c\u201d]")
_NEGATION = re.compile(r"(\w)n't\b")
_TOKEN = re.compile(
    r"""
      (?:[^\W\d_]\.){2,}                          # abbreviations: u.s. a.k.a.
    | (?<![\w.])-\d+(?:\.\d+)?(?![\w.])           # negative numbers: -4 -2.5
    | \d{1,3}(?:,\d{3})+(?:\.\d+)?(?![\w,])       # thousands separators: 12,467 1,234.5
    | n't
    | '(?:s|re|ll|ve|m|d)(?![\w])                 # possessive and contractions
    | \w+(?:(?:[-/.&]|'(?!(?:s|re|ll|ve|m|d)(?!\w)))\w+)*   # words, 3.5, a-league, 1989/90, o'neill
    | \S                                          # any other single character
    """,
    re.VERBOSE,
)


def tokenize(text: str) -> List[str]:
    """Lower-cased tokens, close to CoreNLP's PTB tokeniser for the forms questions use."""
    text = _APOSTROPHES.sub("'", text.lower())
    text = _DOUBLE_QUOTES.sub('"', text)
    text = _NEGATION.sub(r"\1 n't", text)
    return _TOKEN.findall(text)


def _is_punctuation(token: str) -> bool:
    return not any(ch.isalnum() for ch in token)


def has_words(tokens: Sequence[str]) -> bool:
    """Whether a question says anything: a question of punctuation only gives the model nothing."""
    return not all(_is_punctuation(token) for token in tokens)


# ---------------------------------------------------------------------------------------------
# Numbers and dates
# ---------------------------------------------------------------------------------------------

_UNITS = {
    w: i
    for i, w in enumerate(
        "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
        "fifteen sixteen seventeen eighteen nineteen".split()
    )
}
_TENS = {w: 10 * (i + 2) for i, w in enumerate("twenty thirty forty fifty sixty seventy eighty ninety".split())}
_SCALES = {"hundred": 100, "thousand": 1_000, "million": 1_000_000, "billion": 1_000_000_000}
_WORD_ORDINALS = {
    w: i + 2
    for i, w in enumerate("second third fourth fifth sixth seventh eighth ninth tenth".split())
}
_DIGITS = re.compile(r"^[+-]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?$")
_DIGIT_ORDINAL = re.compile(r"^(\d+)(?:st|nd|rd|th)$")
_YEAR = re.compile(r"^\d{4}$")
_DAY = re.compile(r"^(\d{1,2})(?:st|nd|rd|th)?$")
# Abbreviated month names and "may"/"march" count as months only inside a full date.
_STANDALONE_MONTHS = {
    name: number for name, number in MONTHS.items() if len(name) > 3 and name not in ("march",)
}


def _digit_number(token: str) -> Optional[float]:
    if _DIGITS.match(token):
        return float(token.replace(",", ""))
    match = _DIGIT_ORDINAL.match(token)
    if match:
        return float(match.group(1))
    return None


def _word_number(tokens: Sequence[str], i: int, word_ordinals: bool) -> Tuple[Optional[float], int]:
    """Parses number words starting at i (`twenty one`, `twenty-one`, `two hundred`)."""
    total, current, j, seen = 0, 0, i, False
    while j < len(tokens):
        parts = tokens[j].split("-")
        if not all(p in _UNITS or p in _TENS or p in _SCALES for p in parts):
            break
        for part in parts:
            if part in _UNITS:
                current += _UNITS[part]
            elif part in _TENS:
                current += _TENS[part]
            elif part == "hundred":
                current = max(current, 1) * 100
            else:
                total += max(current, 1) * _SCALES[part]
                current = 0
        seen = True
        j += 1
    if seen and not (j == i + 1 and tokens[i] in _SCALES):  # a lone "hundred" is no number
        return float(total + current), j
    if word_ordinals and tokens[i] in _WORD_ORDINALS:
        return float(_WORD_ORDINALS[tokens[i]]), i + 1
    return None, i


def _number_at(tokens: Sequence[str], i: int, options: AnnotationOptions) -> Tuple[Optional[float], int]:
    """A number mention starting at token i: (value, end) or (None, i)."""
    value = _digit_number(tokens[i])
    if value is not None:
        end = i + 1
        if end < len(tokens) and tokens[end] in ("million", "billion", "thousand"):
            value, end = value * _SCALES[tokens[end]], end + 1
        return value, end
    return _word_number(tokens, i, options.word_ordinals)


def _month(token: str, standalone: bool) -> Optional[int]:
    token = token.rstrip(".")
    return (_STANDALONE_MONTHS if standalone else MONTHS).get(token)


def _day(token: str) -> Optional[int]:
    match = _DAY.match(token)
    if match and 1 <= int(match.group(1)) <= 31:
        return int(match.group(1))
    return None


def _year(token: str, options: AnnotationOptions) -> Optional[int]:
    if _YEAR.match(token) and options.min_year <= int(token) <= options.max_year:
        return int(token)
    return None


def _date_at(tokens: Sequence[str], i: int, options: AnnotationOptions) -> Tuple[Optional[str], int]:
    """A month-name date starting at token i: (`yyyy-mm-dd` with xx, end) or (None, i)."""
    n = len(tokens)
    at = lambda k: tokens[k] if k < n else ""  # noqa: E731
    month = _month(at(i), standalone=False)
    if month is not None:
        day = _day(at(i + 1))
        if day is not None:
            k = i + 3 if at(i + 2) == "," else i + 2
            year = _year(at(k), options)
            if year is not None:
                return date_canon(year, month, day), k + 1
            return date_canon(-1, month, day), i + 2
        k = i + 2 if at(i + 1) == "," else i + 1
        year = _year(at(k), options)
        if year is not None:
            return date_canon(year, month, -1), k + 1
        if _month(at(i), standalone=True) is not None:
            return date_canon(-1, month, -1), i + 1
        return None, i
    day = _day(at(i))
    if day is not None:
        k = i + 2 if at(i + 1) == "of" else i + 1
        month = _month(at(k), standalone=False)
        if month is not None:
            j = k + 2 if at(k + 1) == "," else k + 1
            year = _year(at(j), options)
            if year is not None:
                return date_canon(year, month, day), j + 1
            return date_canon(-1, month, day), k + 1
    return None, i


def find_numbers_and_dates(tokens: Sequence[str], options: AnnotationOptions) -> List[Entity]:
    """Number and date mentions, left to right; a year gives a number and a date entity."""
    entities, i = [], 0
    while i < len(tokens):
        date, end = _date_at(tokens, i, options)
        if date is not None:
            entities.append(Entity(DATETIME_LIST, (date,), i, end))
            i = end
            continue
        value, end = _number_at(tokens, i, options)
        if value is not None:
            entities.append(Entity(NUM_LIST, (value,), i, end))
            year = _year(tokens[i], options) if end == i + 1 else None
            if year is not None:
                entities.append(Entity(DATETIME_LIST, (date_canon(year, -1, -1),), i, end))
            i = end
            continue
        i += 1
    return entities


# ---------------------------------------------------------------------------------------------
# Table matching
# ---------------------------------------------------------------------------------------------


class TableIndex:
    """What annotation asks of a table, precomputed: substring search over cells, value sets."""

    def __init__(self, table: Table):
        # "\x00" never occurs in a token, so a hit never spans two cells.
        self.text = "\x00".join(table.searchable_strings())
        self.numbers = set()
        self.dates = set()
        self.years = set()
        for column in table.columns:
            values = [v for v in table.values[column.name] if v is not None]
            if column.kind in ("number", "num2"):
                self.numbers.update(values)
            elif column.kind == "date":
                self.dates.update(values)
                self.years.update(v[:4] for v in values)

    def contains_string(self, text: str) -> bool:
        return bool(text) and text in self.text

    def contains_entity(self, entity: Entity) -> bool:
        value = entity.value[0]
        if entity.type == NUM_LIST:
            return any(abs(value - x) < 1e-6 for x in self.numbers)
        if entity.type == DATETIME_LIST:
            if value in self.dates:
                return True
            if value.endswith("-xx-xx"):  # a year also matches dates of that year and year numbers
                return value[:4] in self.years or float(value[:4]) in self.numbers
        return False


def _string_entities(tokens: Sequence[str], index: TableIndex) -> List[Entity]:
    stops = stop_words()
    entities = []
    for i, token in enumerate(tokens):
        if token in stops or _is_punctuation(token):
            continue
        value = normalize(token)
        if index.contains_string(value):
            entities.append(Entity(STRING_LIST, (value,), i, i + 1))
    return entities


def _expand(entities: List[Entity], tokens: Sequence[str], index: TableIndex) -> List[Entity]:
    """Greedily extends each string entity rightwards while the joined text occurs in a cell."""
    expanded: List[Entity] = []
    for entity in entities:
        if expanded and entity.end <= expanded[-1].end:
            continue  # already inside the previous expanded entity
        text, end = tokens[entity.start], entity.end
        while end < len(tokens):
            nxt = tokens[end]
            candidate = None
            for left in dict.fromkeys((text, normalize(text))):
                for right in dict.fromkeys((nxt, normalize(nxt))):
                    for joiner in (" ", "-", ""):
                        if index.contains_string(left + joiner + right):
                            candidate = left + joiner + right
                            break
                    if candidate:
                        break
                if candidate:
                    break
            if candidate is None:
                break
            text, end = candidate, end + 1
        expanded.append(Entity(STRING_LIST, (normalize(text),), entity.start, end))
    return expanded


def _merge_or(entities: List[Entity], tokens: Sequence[str]) -> List[Entity]:
    """`a or b`: two string entities within two tokens of the first `or` become one entity."""
    if "or" not in tokens:
        return entities
    k = tokens.index("or")
    before = [e for e in entities if e.end <= k and k - e.end <= 2]
    after = [e for e in entities if e.start > k and e.start - k <= 2]
    if not before or not after:
        return entities
    left, right = before[-1], after[0]
    merged = Entity(STRING_LIST, left.value + right.value, left.start, right.end)
    out = []
    for entity in entities:
        if entity is left:
            out.append(merged)
        elif entity is not right:
            out.append(entity)
    return out


def _column_features(table: Table, tokens: Sequence[str]) -> Tuple[float, ...]:
    stops = stop_words()
    token_set = set(tokens)
    features = []
    for column in table.columns:
        count = 0
        for word in column.words:
            if word in stops:
                continue
            forms = {word, word + "s", word + "es", word[:-1] if word.endswith("s") else word}
            if forms & token_set:
                count += 1
        features.append(float(count))
    return tuple(features)


def annotate(
    question: str,
    table: Table,
    options: AnnotationOptions = AnnotationOptions(),
    index: Optional[TableIndex] = None,
) -> Annotation:
    """Annotates one question against its table (see the module docstring for the rules)."""
    tokens = tokenize(question)
    index = index or TableIndex(table)
    strings = _string_entities(tokens, index)
    if options.expand_entities:
        strings = _expand(strings, tokens, index)
    if options.process_conjunction:
        strings = _merge_or(strings, tokens)
    others = find_numbers_and_dates(tokens, options)
    in_table = [0] * len(tokens)
    for entity in strings:
        for k in range(entity.start, entity.end):
            in_table[k] = 1
    for entity in others:
        if index.contains_entity(entity):
            for k in range(entity.start, entity.end):
                in_table[k] = 1
    return Annotation(
        tokens=tuple(tokens),
        entities=tuple(strings) + tuple(others),
        in_table=tuple(in_table),
        column_features=_column_features(table, tokens),
    )


def entity_summary(entities: Iterable[Entity]) -> List[str]:
    """Readable entity list for logs and tests: `string_list:['peru']@3-4`."""
    return [f"{e.type}:{list(e.value)}@{e.start}-{e.end}" for e in entities]
