"""Answer values and the official WikiTableQuestions matching rules.

The reward and every accuracy figure hinge on these rules, so they follow the official evaluator
(Pasupat & Liang, `evaluator.py`) exactly: the same string normaliser, the same number/date parsing
of the *canonical* string, the same de-duplication and the same order-free set comparison.
Python 2 details that change results are reproduced on purpose:

* numbers and dates are parsed as Python 2's `int()`/`float()` parsed a *unicode* field (the
  evaluator reads its files as UTF-8): any Unicode whitespace and decimal digits count (Arabic-Indic
  `١٢` is 12), `int()` allows blanks after the sign (`- 5`), and `1_000` underscores (Python 3 only)
  do not parse;
* the citation pattern's digits are ASCII-only (Python 2 without `re.U`), and lower-casing ignores
  Python 3's final-sigma rule (Python 2 lower-cased `Σ` to `σ` everywhere);
* predicted floats are printed the way Python 2's `unicode(float)` printed them (`%.12g`, plus `.0`
  when the result looks integral, the exponent form from 12 integral digits on), see
  `format_prediction`.
"""

from __future__ import annotations

import math
import re
import unicodedata
from dataclasses import dataclass, field
from typing import Iterable, Optional, Sequence, Union

__all__ = [
    "Value",
    "StringValue",
    "NumberValue",
    "DateValue",
    "normalize",
    "to_value",
    "to_value_list",
    "check_denotation",
    "tsv_unescape",
    "tsv_unescape_list",
    "format_prediction",
    "infer_canon",
    "target_values",
]

# ---------------------------------------------------------------------------------------------
# String normalisation
# ---------------------------------------------------------------------------------------------

_SINGLE_QUOTES = re.compile("[\u2018\u2019\u00b4`]")
_DOUBLE_QUOTES = re.compile("[\u201c\u201d]")
_DASHES = re.compile("[\u2010\u2011\u2012\u2013\u2014\u2212]")
# Trailing citations: "[1]", "[note 2]" (not at the very start), or footnote marks.
# `[0-9]`, not `\d`: the official pattern had no re.U flag, so Python 2's `\d` was ASCII-only.
_TRAILING_CITATIONS = re.compile(r"((?<!^)\[[^\]]*\]|\[[0-9]+\]|[\u2022\u2666\u2020\u2021*#+])*$")
# Trailing parenthesised details: "Paris (France)" -> "Paris" (not when the string starts with them).
_TRAILING_PARENS = re.compile(r"(?<!^)( \([^)]*\))*$")
_ENCLOSING_QUOTES = re.compile(r'^"([^"]*)"$')
_WHITESPACE = re.compile(r"\s+")


def normalize(text: str) -> str:
    """Normalises a string the way the official WTQ evaluator does before comparing.

    Drops diacritics, unifies quotes and dashes, strips trailing citations, parenthesised details and
    one pair of enclosing quotes (repeated until stable), drops a final '.', collapses whitespace and
    lower-cases.
    """
    text = "".join(
        ch for ch in unicodedata.normalize("NFKD", text) if unicodedata.category(ch) != "Mn"
    )
    text = _SINGLE_QUOTES.sub("'", text)
    text = _DOUBLE_QUOTES.sub('"', text)
    text = _DASHES.sub("-", text)
    while True:
        before = text
        text = _TRAILING_CITATIONS.sub("", text.strip())
        text = _TRAILING_PARENS.sub("", text.strip())
        text = _ENCLOSING_QUOTES.sub(r"\1", text.strip())
        if text == before:
            break
    if text and text[-1] == ".":
        text = text[:-1]
    text = _WHITESPACE.sub(" ", text)
    # Python 3 lower-cases a word-final capital sigma to "ς"; Python 2 (simple mapping) gave "σ".
    text = "".join(ch.lower() for ch in text) if "\u03a3" in text else text.lower()
    return text.strip()


# ---------------------------------------------------------------------------------------------
# Values
# ---------------------------------------------------------------------------------------------


class Value:
    """A typed answer value; `normalized` is the string used for exact matching."""

    normalized: str

    def match(self, other: "Value") -> bool:  # pragma: no cover - overridden
        raise NotImplementedError


@dataclass(frozen=True, eq=False)
class StringValue(Value):
    """Any answer that parses as neither a number nor a date."""

    original: str
    normalized: str = field(init=False)

    def __post_init__(self):
        object.__setattr__(self, "normalized", normalize(self.original))

    def __eq__(self, other):
        return isinstance(other, StringValue) and self.normalized == other.normalized

    def __hash__(self):
        return hash(("s", self.normalized))

    def match(self, other: Value) -> bool:
        return self.normalized == other.normalized


@dataclass(frozen=True, eq=False)
class NumberValue(Value):
    """A number; integral amounts (within 1e-6) are stored as int, as the official evaluator does."""

    amount: Union[int, float]
    original: Optional[str] = None
    normalized: str = field(init=False)

    def __post_init__(self):
        amount = self.amount
        if abs(amount - round(amount)) < 1e-6:
            amount = int(amount)  # truncation, as the official evaluator (2.9999999 -> 2)
        else:
            amount = float(amount)
        object.__setattr__(self, "amount", amount)
        text = normalize(self.original) if self.original else _py2_str(amount)
        object.__setattr__(self, "normalized", text)

    def __eq__(self, other):
        return isinstance(other, NumberValue) and self.amount == other.amount

    def __hash__(self):
        return hash(self.amount)

    def match(self, other: Value) -> bool:
        if self.normalized == other.normalized:
            return True
        return isinstance(other, NumberValue) and abs(self.amount - other.amount) < 1e-6


@dataclass(frozen=True, eq=False)
class DateValue(Value):
    """A date with possibly unknown parts (-1 = unknown); never all three unknown."""

    year: int
    month: int
    day: int
    original: Optional[str] = None
    normalized: str = field(init=False)

    def __post_init__(self):
        if self.year == self.month == self.day == -1:
            raise ValueError("a date needs at least one known part")
        if not (self.month == -1 or 1 <= self.month <= 12):
            raise ValueError(f"bad month {self.month}")
        if not (self.day == -1 or 1 <= self.day <= 31):
            raise ValueError(f"bad day {self.day}")
        if self.original:
            text = normalize(self.original)
        else:
            # The official fallback prints an unknown day as "-1" (it compares the int with '-1');
            # kept so that `normalized` agrees with it, although it is only used without an original.
            year = self.year if self.year != -1 else "xx"
            month = self.month if self.month != -1 else "xx"
            text = f"{year}-{month}-{self.day}"
        object.__setattr__(self, "normalized", text)

    @property
    def ymd(self) -> tuple:
        return (self.year, self.month, self.day)

    def __eq__(self, other):
        return isinstance(other, DateValue) and self.ymd == other.ymd

    def __hash__(self):
        return hash(self.ymd)

    def match(self, other: Value) -> bool:
        if self.normalized == other.normalized:
            return True
        return isinstance(other, DateValue) and self.ymd == other.ymd


# ---------------------------------------------------------------------------------------------
# Parsing (Python 2 semantics: bytes, ASCII only)
# ---------------------------------------------------------------------------------------------


_ASCII_SPACES = str.maketrans({ch: " " for ch in "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f"})


def _py2_decimal_text(text: str) -> Optional[str]:
    """The buffer Python 2's `int(unicode)`/`float(unicode)` parsed, or None where it raised.

    Python 2 first rewrote the string: any Unicode whitespace became ' ', any Unicode decimal digit
    its ASCII digit, other characters below U+0100 were kept and anything else failed to encode.
    """
    if text.isascii():  # fast path, same result
        return None if "\x00" in text else text.translate(_ASCII_SPACES)
    chars = []
    for ch in text:
        if ch.isspace():
            chars.append(" ")
            continue
        digit = unicodedata.decimal(ch, None)
        if digit is not None:
            chars.append(str(digit))
        elif 0 < ord(ch) < 256:
            chars.append(ch)
        else:
            return None
    return "".join(chars)


# Python 2's int(): blanks around the number *and between the sign and the digits*; no underscores.
_PY2_INT = re.compile(r" *([+-]?) *([0-9]+) *")


def _py2_int(text: str) -> Optional[int]:
    buffer = _py2_decimal_text(text)
    match = _PY2_INT.fullmatch(buffer) if buffer is not None else None
    return int(match.group(1) + match.group(2)) if match else None


def _parse_number(text: str) -> Optional[Union[int, float]]:
    amount = _py2_int(text)
    if amount is not None:
        return amount
    buffer = _py2_decimal_text(text)
    if buffer is None or "_" in buffer:  # Python 3 accepts "1_000.5"; Python 2 did not.
        return None
    try:
        amount = float(buffer)
    except ValueError:
        return None
    if math.isnan(amount) or math.isinf(amount):
        return None
    return amount


def _parse_date(text: str) -> Optional[tuple]:
    parts = text.lower().split("-")
    if len(parts) != 3:
        return None
    year = -1 if parts[0] in ("xx", "xxxx") else _py2_int(parts[0])
    month = -1 if parts[1] == "xx" else _py2_int(parts[1])
    day = -1 if parts[2] == "xx" else _py2_int(parts[2])
    if year is None or month is None or day is None:
        return None
    if year == month == day == -1:
        return None
    if not (month == -1 or 1 <= month <= 12) or not (day == -1 or 1 <= day <= 31):
        return None
    return (year, month, day)


def to_value(original: Union[str, Value], canon: Optional[str] = None) -> Value:
    """Converts an answer string to a Value, parsing `canon` (default: the string itself).

    Numbers first, then `yyyy-mm-dd` dates with `xx` wildcards (a year-only date is a number),
    else a string. The original string is kept for exact normalised matching.
    """
    if isinstance(original, Value):
        return original
    if not canon:
        canon = original
    amount = _parse_number(canon)
    if amount is not None:
        return NumberValue(amount, original)
    ymd = _parse_date(canon)
    if ymd is not None:
        if ymd[1] == ymd[2] == -1:
            return NumberValue(ymd[0], original)
        return DateValue(ymd[0], ymd[1], ymd[2], original)
    return StringValue(original)


def to_value_list(
    originals: Sequence[Union[str, Value]], canons: Optional[Sequence[str]] = None
) -> list:
    """Converts a list of answers to a de-duplicated list of Values (order carries no meaning)."""
    if canons is not None:
        if len(canons) != len(originals):
            raise ValueError(
                f"{len(originals)} answers but {len(canons)} canonical strings: {originals!r}"
            )
        values = [to_value(x, y) for x, y in zip(originals, canons)]
    else:
        values = [to_value(x) for x in originals]
    unique = []
    seen = set()
    for value in values:  # ordered de-duplication: same set as the evaluator, stable order
        if value not in seen:
            seen.add(value)
            unique.append(value)
    return unique


def check_denotation(targets: Sequence[Value], predictions: Sequence[Value]) -> bool:
    """True iff both lists have the same size and every target matches some prediction."""
    if len(targets) != len(predictions):
        return False
    return all(any(t.match(p) for p in predictions) for t in targets)


# ---------------------------------------------------------------------------------------------
# TSV escapes and prediction formatting
# ---------------------------------------------------------------------------------------------


def tsv_unescape(text: str) -> str:
    """Undoes the release's TSV escapes (`\\n`, `\\p` for '|', `\\\\`), in the evaluator's order."""
    return text.replace(r"\n", "\n").replace(r"\p", "|").replace("\\\\", "\\")


def tsv_unescape_list(text: str) -> list:
    return [tsv_unescape(item) for item in text.split("|")]


def tsv_escape(text: str) -> str:
    """Escapes one answer item for a predictions file (inverse of `tsv_unescape` for clean text)."""
    return (
        text.replace("\\", "\\\\").replace("\n", r"\n").replace("|", r"\p").replace("\t", " ")
    )


def _py2_str(amount: Union[int, float]) -> str:
    """Python 2's `str()` of an int or float: floats use 12 significant digits and keep a '.0'."""
    if isinstance(amount, bool) or not isinstance(amount, float):
        return str(amount)
    if math.isnan(amount) or math.isinf(amount):
        return repr(amount)
    if amount.is_integer() and abs(amount) < 1e15:
        digits = str(abs(int(amount)))
        tie = len(digits) > 12 and digits[12:] == "5".ljust(len(digits) - 12, "0")
        if tie and digits[11] in "02468":
            # Python 2's dtoa (small-integer path, before bpo-40780) kept the trailing zeros of an
            # exact tie rounded down to even: unicode(2384440561105.0) == "2.38444056110e+12".
            sign = "-" if amount < 0 else ""
            return f"{sign}{digits[0]}.{digits[1:12]}e+{len(digits) - 1:02d}"
    text = "%.12g" % amount
    if "." not in text and "e" not in text:
        if len(text.lstrip("-")) >= 12:
            # Python 2 keeps room for the ".0": 12 integral digits already switch to exponent form
            # (unicode(123456789012.0) == "1.23456789012e+11").
            mantissa, exponent = ("%.11e" % amount).split("e")
            text = mantissa.rstrip("0").rstrip(".") + "e" + exponent
        else:
            text += ".0"
    return text


def format_prediction(item: object) -> str:
    """Formats one predicted denotation element as the original release wrote it for scoring."""
    if isinstance(item, (int, float)) and not isinstance(item, bool):
        return _py2_str(item)
    return str(item)


# ---------------------------------------------------------------------------------------------
# Canonical strings for targets without CoreNLP annotations
# ---------------------------------------------------------------------------------------------

MONTHS = {
    name: index + 1
    for index, names in enumerate(
        [
            ("january", "jan"), ("february", "feb"), ("march", "mar"), ("april", "apr"),
            ("may",), ("june", "jun"), ("july", "jul"), ("august", "aug"),
            ("september", "sep", "sept"), ("october", "oct"), ("november", "nov"),
            ("december", "dec"),
        ]
    )
    for name in names
}
_MONTH_RE = "(" + "|".join(sorted(MONTHS, key=len, reverse=True)) + r")\.?"
_PLAIN_NUMBER = re.compile(r"^[+-]?\d+(\.\d+)?$")
_THOUSANDS = re.compile(r"^[+-]?\d{1,3}(,\d{3})+(\.\d+)?$")
_MONTH_DAY_YEAR = re.compile(rf"^{_MONTH_RE}\s+(\d{{1,2}})(?:st|nd|rd|th)?,?\s+(\d{{4}})$")
_DAY_MONTH_YEAR = re.compile(rf"^(\d{{1,2}})(?:st|nd|rd|th)?\s+{_MONTH_RE},?\s+(\d{{4}})$")
_MONTH_YEAR = re.compile(rf"^{_MONTH_RE},?\s+(\d{{4}})$")
_MONTH_DAY = re.compile(rf"^{_MONTH_RE}\s+(\d{{1,2}})(?:st|nd|rd|th)?$")
_DAY_MONTH = re.compile(rf"^(\d{{1,2}})(?:st|nd|rd|th)?\s+{_MONTH_RE}$")


def date_canon(year: int, month: int, day: int) -> Optional[str]:
    """`yyyy-mm-dd` with `xx` for unknown parts, or None if the parts cannot form a date."""
    if not (month == -1 or 1 <= month <= 12) or not (day == -1 or 1 <= day <= 31):
        return None
    y = "xxxx" if year == -1 else f"{year:04d}"
    m = "xx" if month == -1 else f"{month:02d}"
    d = "xx" if day == -1 else f"{day:02d}"
    return f"{y}-{m}-{d}"


def infer_canon(text: str) -> Optional[str]:
    """Approximates CoreNLP's canonical value of an answer string, or None to keep it as is.

    The release's `targetCanon` comes from CoreNLP, which we only have for the tagged test file.
    Without it a gold answer like `12,467` or `June 25, 2008` would be a string and could never match
    a computed number or date. This covers the unambiguous forms only: numbers with thousands
    separators, numbers left once the evaluator's normaliser strips trailing details (`1976 (UK)`,
    `12[3]`), and month-name dates (`June 25, 2008`, `25 June 2008`, `June 2008`, `June 25`).
    """
    s = normalize(text)  # "1976 (UK)" -> "1976": the evaluator compares normalised strings anyway
    if _PLAIN_NUMBER.match(s) and s != text.strip():
        return s
    if _THOUSANDS.match(s):
        return s.replace(",", "")
    for pattern, order in (
        (_MONTH_DAY_YEAR, "mdy"),
        (_DAY_MONTH_YEAR, "dmy"),
        (_MONTH_YEAR, "my"),
        (_MONTH_DAY, "md"),
        (_DAY_MONTH, "dm"),
    ):
        match = pattern.match(s)
        if not match:
            continue
        groups = dict(zip(order, match.groups()))
        month = MONTHS[groups["m"]]
        day = int(groups["d"]) if "d" in groups else -1
        year = int(groups["y"]) if "y" in groups else -1
        return date_canon(year, month, day)
    return None


def target_values(
    target_value: str, target_canon: Optional[str] = None, infer: bool = True
) -> list:
    """Gold Values from a release `targetValue` field (escaped, '|'-separated).

    With `target_canon` (a tagged file's `targetCanon` field) this is the official evaluator's
    reading. Without it, `infer=True` fills the canonical strings with `infer_canon`.
    """
    originals = tsv_unescape_list(target_value)
    if target_canon is not None:
        return to_value_list(originals, tsv_unescape_list(target_canon))
    if infer:
        return to_value_list(originals, [infer_canon(x) or x for x in originals])
    return to_value_list(originals)


def denotation_values(denotation: Iterable[object]) -> list:
    """Values of a predicted denotation (program result or predictions-file items)."""
    return to_value_list([format_prediction(x) for x in denotation])
