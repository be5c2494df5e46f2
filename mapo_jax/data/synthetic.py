"""The embedded toy dataset: generated tables and templated questions, no download needed.

Why it exists: the whole training system (exploration, MAPO, evaluation) must run end to end on a
laptop in minutes, and its tests need data that is always there. The toy dataset is a small themed
world (football clubs, athletes, cities, films) of generated tables, with questions written from
templates whose answers are computed by DSL programs (`mapo_jax.lisp.functions`), run by the project's
interpreter (`mapo_jax.lisp.interpreter`, the one exploration and evaluation use) with the
question's annotated entities as constants. It is built to be *learnable by weak supervision*: a
question's wording determines its program family (one template per family, see `TEMPLATES`), and
everything the gold program needs (names, countries, numbers, dates) is mentioned in the question
and found by the same annotation pipeline as WTQ's (`annotate.annotate`), so entities, features and
everything downstream are shared with the real dataset.

Design rules that keep the data clean (each checked, see `_check_table` and `_annotate_checked`):

* every name is a made-up single word, unique in its table, and no name or country is a substring
  of another cell (or contains a question-template word), so string-entity matching is unambiguous
  and `filter_str_contain_any` on a name selects exactly one row;
* number columns hold distinct integers (argmax / argmin are unique, differences are non-zero);
  dates are full `yyyy-mm-dd` dates, distinct, with days 1-28 so that the interpreter's date order
  (year, month, day) and the original's argmax date key `Y*365 + M*30 + D` agree and never tie;
* a question whose answer would be empty or ambiguous, or whose gold program the interpreter's code
  assistance refuses (e.g. a filter that keeps every row), is not emitted (another is drawn, still
  deterministically);
* generation is deterministic: one `random.Random` per table seeded from `random.Random(seed)`,
  never the global RNG, never set iteration order.

Train and dev use disjoint tables (as WTQ's random splits do).
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import random
import re
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple, Union

from mapo_jax.data.annotate import Annotation, TableIndex, annotate, stop_words, tokenize
from mapo_jax.data.example import DATETIME_LIST, NUM_LIST, STRING_LIST, Dataset, Example
from mapo_jax.data.tables import Cell, Table, build_table, property_name
from mapo_jax.data.values import MONTHS, normalize
from mapo_jax.errors import UserInputError
from mapo_jax.lisp.functions import TableView, date_sort_key
from mapo_jax.lisp.interpreter import ProgramContext, ProgramError

__all__ = [
    "ToyConfig",
    "load_toy",
    "SPLITS",
    "FAMILIES",
    "TEMPLATES",
    "question_family",
    "Var",
    "Const",
    "Expr",
    "Program",
    "ProgramError",
    "ToyGenerationError",
    "format_program",
    "parse_program",
]

SPLITS = ("train", "dev")


@dataclass(frozen=True)
class ToyConfig:
    """Size and seed of the toy dataset; equal configs give identical datasets."""

    seed: int = 0
    n_tables: int = 40
    questions_per_table: int = 20
    dev_fraction: float = 0.2
    min_rows: int = 5
    max_rows: int = 15

    def __post_init__(self):
        if self.n_tables < 2:
            raise ValueError(f"n_tables must be >= 2 (one train and one dev table), got {self.n_tables}")
        if self.questions_per_table < 1:
            raise ValueError(f"questions_per_table must be >= 1, got {self.questions_per_table}")
        if not 0.0 < self.dev_fraction < 1.0:
            raise ValueError(f"dev_fraction must be in (0, 1), got {self.dev_fraction}")
        if not 3 <= self.min_rows <= self.max_rows <= 40:
            raise ValueError(
                f"need 3 <= min_rows <= max_rows <= 40, got min_rows={self.min_rows}, "
                f"max_rows={self.max_rows}"
            )


# ---------------------------------------------------------------------------------------------
# Programs: a tiny typed representation and its readable form; the real interpreter runs them
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Var:
    """The result of the `index`-th expression of the same program (readable form `v<index>`)."""

    index: int


@dataclass(frozen=True)
class Const:
    """A question-entity constant: its value list (normalised strings, floats or date strings)."""

    values: tuple


Arg = Union[Var, Const, str]  # str: `all_rows` or a property name such as `r.points-number`


@dataclass(frozen=True)
class Expr:
    """One flat expression `(function arg ...)`; arguments are never nested."""

    function: str
    args: Tuple[Arg, ...]


Program = Tuple[Expr, ...]


class ToyGenerationError(RuntimeError):
    """A generated question failed a consistency check: a bug in the generator, never bad luck."""


def _format_number(x: float) -> str:
    """Numbers as a person writes them: `12`, `3.5` (answers and readable constants)."""
    return str(int(x)) if float(x).is_integer() else repr(float(x))


def _format_arg(arg: Arg) -> str:
    if isinstance(arg, Var):
        return f"v{arg.index}"
    if isinstance(arg, Const):
        items = [_format_number(v) if isinstance(v, float) else repr(v) for v in arg.values]
        return "[" + ", ".join(items) + "]"
    return arg


def format_program(program: Sequence[Expr]) -> str:
    """Readable form, e.g. `(filter_str_contain_any all_rows ['peru'] r.nation-string) (hop v0 ...)`.

    Convention: `v<k>` is the result of the program's k-th expression (counting only computed
    variables, from 0), *not* the interpreter's namespace name (which also numbers column and entity
    constants); constants are written by value (`['peru']`, `[40]`, `['1999-03-03']`). This is the
    form `ProgramContext.tokens_from_text` reads.
    """
    return " ".join(
        "(" + " ".join([expr.function] + [_format_arg(a) for a in expr.args]) + ")"
        for expr in program
    )


_PROGRAM_TOKEN = re.compile(r"\(|\)|\[[^\]]*\]|[^\s()\[\]]+")
_VAR = re.compile(r"^v(\d+)$")


def parse_program(text: str) -> Program:
    """Inverse of `format_program` (numbers in constants become floats)."""
    program: List[Expr] = []
    current: Optional[List[str]] = None
    for token in _PROGRAM_TOKEN.findall(text):
        if token == "(":
            if current is not None:
                raise ProgramError(f"nested '(' in {text!r}")
            current = []
        elif token == ")":
            if not current:
                raise ProgramError(f"empty or unopened expression in {text!r}")
            program.append(Expr(current[0], tuple(_parse_arg(t) for t in current[1:])))
            current = None
        elif current is None:
            raise ProgramError(f"token {token!r} outside an expression in {text!r}")
        else:
            current.append(token)
    if current is not None:
        raise ProgramError(f"unclosed expression in {text!r}")
    return tuple(program)


def _parse_arg(token: str) -> Arg:
    if token.startswith("["):
        values = ast.literal_eval(token)
        return Const(tuple(float(v) if isinstance(v, (int, float)) else v for v in values))
    match = _VAR.match(token)
    if match:
        return Var(int(match.group(1)))
    return token


# ---------------------------------------------------------------------------------------------
# The world: themes, names, countries
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _NumberColumn:
    header: str
    low: int
    high: int
    step: int = 1


@dataclass(frozen=True)
class _Theme:
    noun: str  # singular, also the name column's header (lower-cased)
    nouns: str  # plural
    category: str  # header of the country column
    numbers: Tuple[_NumberColumn, ...]
    date: str  # header of the date column, a past participle ("founded")
    years: Tuple[int, int]


_THEMES = (
    _Theme("club", "clubs", "Country",
           (_NumberColumn("Points", 10, 99), _NumberColumn("Goals", 5, 150), _NumberColumn("Wins", 0, 60)),
           "Founded", (1860, 1995)),
    _Theme("athlete", "athletes", "Nation",
           (_NumberColumn("Medals", 0, 45), _NumberColumn("Races", 10, 400)),
           "Born", (1950, 2004)),
    _Theme("city", "cities", "Country",
           (_NumberColumn("Population", 50, 9900, 100), _NumberColumn("Elevation", 2, 2900)),
           "Chartered", (1650, 1950)),
    _Theme("film", "films", "Country",
           (_NumberColumn("Budget", 1, 250), _NumberColumn("Gross", 1, 990)),
           "Released", (1940, 2020)),
)

# Real country names; none is a substring of another (checked below at import time).
_COUNTRIES = (
    "Peru", "Chile", "Norway", "Kenya", "Japan", "Brazil", "Spain", "Egypt", "Canada", "Mexico",
    "Ghana", "Italy", "France", "Poland", "Sweden", "Portugal", "Greece", "Morocco", "Vietnam",
    "Finland",
)

_ONSETS = ("b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z",
           "br", "dr", "gr", "kr", "st", "tr", "sh", "th")
_VOWELS = ("a", "e", "i", "o", "u", "ai", "ou")
_CODAS = ("", "", "", "n", "r", "s", "l", "th")

_MONTH_NAMES = ("January", "February", "March", "April", "May", "June", "July", "August",
                "September", "October", "November", "December")

# ---------------------------------------------------------------------------------------------
# Families and their question templates
# ---------------------------------------------------------------------------------------------

# One wording per family: the wording alone tells which program family answers a question.
TEMPLATES: Dict[str, str] = {
    "lookup": "what is the {column} of {name}?",
    "argmax": "which {noun} has the highest {column}?",
    "argmin": "which {noun} has the lowest {column}?",
    "count_category": "how many {nouns} are from {category}?",
    "list_category": "which {nouns} are from {category}?",
    "count_greater": "how many {nouns} have {column} more than {number}?",
    "count_less": "how many {nouns} have {column} less than {number}?",
    "next": "which {noun} is listed after {name}?",
    "previous": "which {noun} is listed before {name}?",
    "first": "which {noun} is listed first?",
    "last": "which {noun} is listed last?",
    "diff": "what is the difference in {column} between {name} and {other}?",
    "date_lookup": "which {noun} was {date_column} on {date}?",
    "earliest": "which {noun} was {date_column} earliest?",
    "latest": "which {noun} was {date_column} latest?",
}
FAMILIES: Tuple[str, ...] = tuple(TEMPLATES)


def _template_regex(template: str) -> "re.Pattern":
    parts = re.split(r"\{\w+\}", template)
    return re.compile("^" + "(.+?)".join(re.escape(p) for p in parts) + "$", re.IGNORECASE)


_TEMPLATE_REGEXES = tuple((family, _template_regex(t)) for family, t in TEMPLATES.items())


def question_family(question: str) -> str:
    """The program family a toy question's wording belongs to (ValueError if none or several).

    This is the property that makes the dataset learnable by weak supervision; tests check it on
    every generated question.
    """
    matches = [family for family, regex in _TEMPLATE_REGEXES if regex.match(question.strip())]
    if len(matches) != 1:
        raise ValueError(f"question {question!r} matches families {matches}, expected exactly one")
    return matches[0]


def _reserved_words() -> Tuple[str, ...]:
    """Non-stop words of the templates and themes: no cell may contain one (no stray entities)."""
    words = []
    texts = [re.sub(r"\{\w+\}", " ", t) for t in TEMPLATES.values()]
    for theme in _THEMES:
        texts += [theme.noun, theme.nouns, theme.category, theme.date] + [c.header for c in theme.numbers]
    stops = stop_words()
    for text in texts:
        for token in tokenize(text):
            if token not in stops and token.isalpha() and token not in words:
                words.append(token)
    return tuple(words)


_RESERVED = _reserved_words()


def _check_world() -> None:
    lowered = [c.lower() for c in _COUNTRIES]
    for a in lowered:
        for b in lowered:
            if a != b and a in b:
                raise ToyGenerationError(f"country {a!r} is a substring of {b!r}")
        for word in _RESERVED:
            if word in a:
                raise ToyGenerationError(f"country {a!r} contains the template word {word!r}")


_check_world()


# ---------------------------------------------------------------------------------------------
# Tables
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _ToyTable:
    """A generated table plus what question generation needs to know about it."""

    table: Table
    theme: _Theme
    name_prop: str
    category_prop: str
    number_props: Tuple[Tuple[str, str], ...]  # (header word, property)
    date_prop: str
    names: Tuple[str, ...]  # display text per row
    countries: Tuple[str, ...]  # display text per row
    date_texts: Tuple[str, ...]  # display text per row


def _make_name(rng: random.Random) -> str:
    syllables = rng.choice((2, 2, 3))
    word = "".join(rng.choice(_ONSETS) + rng.choice(_VOWELS) for _ in range(syllables))
    return (word + rng.choice(_CODAS)).capitalize()


def _name_ok(name: str, taken: Sequence[str]) -> bool:
    low = name.lower()
    if len(low) < 5 or low in stop_words() or low in MONTHS or normalize(name) != low:
        return False
    if any(word in low for word in _RESERVED) or any(c.lower() in low for c in _COUNTRIES):
        return False
    return all(low not in t.lower() and t.lower() not in low for t in taken)


def _make_names(rng: random.Random, n: int) -> List[str]:
    names: List[str] = []
    while len(names) < n:
        name = _make_name(rng)
        if _name_ok(name, names):
            names.append(name)
    return names


def _make_dates(rng: random.Random, n: int, years: Tuple[int, int]) -> List[Tuple[int, int, int]]:
    dates: List[Tuple[int, int, int]] = []
    while len(dates) < n:
        date = (rng.randint(*years), rng.randint(1, 12), rng.randint(1, 28))
        if date not in dates:
            dates.append(date)
    return dates


def _make_table(index: int, name: str, rng: random.Random, config: ToyConfig) -> _ToyTable:
    theme = _THEMES[index % len(_THEMES)]
    n = rng.randint(config.min_rows, config.max_rows)
    names = _make_names(rng, n)
    chosen = rng.sample(_COUNTRIES, rng.randint(2, min(4, n - 1)))
    countries = list(chosen) + [rng.choice(chosen) for _ in range(n - len(chosen))]
    rng.shuffle(countries)
    numbers = {
        c.header: [v * c.step for v in rng.sample(range(c.low, c.high + 1), n)] for c in theme.numbers
    }
    dates = _make_dates(rng, n, theme.years)
    date_texts = [f"{_MONTH_NAMES[m - 1]} {d}, {y}" for y, m, d in dates]

    # The name column first, the others in a per-table order (column positions carry no meaning).
    others = [theme.category] + [c.header for c in theme.numbers] + [theme.date]
    rng.shuffle(others)
    headers = [theme.noun.capitalize()] + others
    rows = []
    for r in range(n):
        row = []
        for header in headers:
            if header == headers[0]:
                row.append(Cell(text=names[r], n_tokens=1))
            elif header == theme.category:
                row.append(Cell(text=countries[r], n_tokens=1))
            elif header == theme.date:
                y, m, d = dates[r]
                row.append(Cell(text=date_texts[r], n_tokens=4, date=f"{y:04d}-{m:02d}-{d:02d}"))
            else:
                value = numbers[header][r]
                row.append(Cell(text=str(value), n_tokens=1, number=float(value)))
        rows.append(row)
    bases = [h.lower() for h in headers]
    table = build_table(name, headers, rows, bases=bases)
    toy = _ToyTable(
        table=table,
        theme=theme,
        name_prop=property_name(bases[0], "string"),
        category_prop=property_name(theme.category.lower(), "string"),
        number_props=tuple(
            (c.header.lower(), property_name(c.header.lower(), "number")) for c in theme.numbers
        ),
        date_prop=property_name(theme.date.lower(), "date"),
        names=tuple(names),
        countries=tuple(countries),
        date_texts=tuple(date_texts),
    )
    _check_table(toy)
    return toy


def _check_table(toy: _ToyTable) -> None:
    """Names and countries must select exactly their own rows by substring (entity matching)."""
    table = toy.table
    cells = table.searchable_strings()
    for name in toy.names:
        hits = [c for c in cells if normalize(name) in c]
        if hits != [normalize(name)]:
            raise ToyGenerationError(f"{table.name}: name {name!r} occurs in cells {hits}")
    for country in sorted(set(toy.countries)):
        hits = sorted({c for c in cells if normalize(country) in c})
        if hits != [normalize(country)]:
            raise ToyGenerationError(f"{table.name}: country {country!r} occurs in cells {hits}")
    for _, prop in toy.number_props:
        values = [v for v in table.values[prop] if v is not None]
        if len(values) != table.n_rows or len(set(values)) != len(values):
            raise ToyGenerationError(f"{table.name}: {prop} values are missing or not distinct")
    dates = table.values[toy.date_prop]
    if len({date_sort_key(d) for d in dates}) != table.n_rows:
        raise ToyGenerationError(f"{table.name}: {toy.date_prop} date keys are not distinct")


# ---------------------------------------------------------------------------------------------
# Questions
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Question:
    family: str
    text: str
    program: Program
    needed: Tuple[Tuple[str, tuple], ...]  # (entity type, value) the program's constants need


def _filter_name(toy: _ToyTable, row: int) -> Expr:
    return Expr("filter_str_contain_any", ("all_rows", Const((normalize(toy.names[row]),)), toy.name_prop))


def _draw_question(family: str, toy: _ToyTable, rng: random.Random) -> Optional[_Question]:
    """One question of `family`, or None when this draw would be degenerate (caller moves on)."""
    theme, table = toy.theme, toy.table
    n = table.n_rows
    slots = {"noun": theme.noun, "nouns": theme.nouns, "date_column": theme.date.lower()}
    column, prop = rng.choice(toy.number_props)
    row = rng.randrange(n)
    name = toy.names[row]
    needed: List[Tuple[str, tuple]] = []
    hop_name = lambda k: Expr("hop", (Var(k), toy.name_prop))  # noqa: E731

    if family == "lookup":
        slots.update(column=column, name=name)
        program = (_filter_name(toy, row), Expr("hop", (Var(0), prop)))
        needed.append((STRING_LIST, (normalize(name),)))
    elif family in ("argmax", "argmin"):
        slots.update(column=column)
        program = (Expr(family, ("all_rows", prop)), hop_name(0))
    elif family in ("count_category", "list_category"):
        country = toy.countries[row]
        slots.update(category=country)
        selected = Expr("filter_str_contain_any", ("all_rows", Const((normalize(country),)), toy.category_prop))
        last = Expr("count", (Var(0),)) if family == "count_category" else hop_name(0)
        program = (selected, last)
        needed.append((STRING_LIST, (normalize(country),)))
        # A country of every row does not discriminate: the interpreter refuses that filter.
    elif family in ("count_greater", "count_less"):
        values = sorted(v for v in table.values[prop] if v is not None)
        if family == "count_greater":  # some row above, some row not: 1 <= count <= n - 1
            number = rng.randint(int(values[0]), int(values[-1]) - 1)
        else:
            number = rng.randint(int(values[0]) + 1, int(values[-1]))
        slots.update(column=column, number=str(number))
        function = "filter_greater" if family == "count_greater" else "filter_less"
        program = (Expr(function, ("all_rows", Const((float(number),)), prop)), Expr("count", (Var(0),)))
        needed.append((NUM_LIST, (float(number),)))
    elif family in ("next", "previous"):
        if (family == "next" and row == n - 1) or (family == "previous" and row == 0):
            return None
        slots.update(name=name)
        program = (_filter_name(toy, row), Expr(family, (Var(0),)), hop_name(1))
        needed.append((STRING_LIST, (normalize(name),)))
    elif family in ("first", "last"):
        program = (Expr(family, ("all_rows",)), hop_name(0))
    elif family == "diff":
        other = rng.randrange(n - 1)
        other += other >= row  # a different row
        slots.update(column=column, name=name, other=toy.names[other])
        program = (_filter_name(toy, row), _filter_name(toy, other), Expr("diff", (Var(0), Var(1), prop)))
        needed += [(STRING_LIST, (normalize(name),)), (STRING_LIST, (normalize(toy.names[other]),))]
    elif family == "date_lookup":
        date = table.values[toy.date_prop][row]
        slots.update(date=toy.date_texts[row])
        program = (Expr("filter_eq", ("all_rows", Const((date,)), toy.date_prop)), hop_name(0))
        needed.append((DATETIME_LIST, (date,)))
    elif family in ("earliest", "latest"):
        function = "argmin" if family == "earliest" else "argmax"
        program = (Expr(function, ("all_rows", toy.date_prop)), hop_name(0))
    else:
        raise ValueError(f"unknown family {family!r}; known: {FAMILIES}")
    return _Question(family, TEMPLATES[family].format(**slots), program, tuple(needed))


def _answer(
    question: _Question, toy: _ToyTable, context: ProgramContext, label: str
) -> Optional[Tuple[str, ...]]:
    """Answer strings of a question, or None if degenerate (refused by the interpreter) or ambiguous.

    The gold program is replayed by the real interpreter in `context` (the table with the question's
    annotated entities as constants: what exploration sees). Names are given as displayed in the
    table (`Velora`), numbers as a person writes them (`12`). Only `list_category` may answer
    several names; every other question must have one answer.
    """
    try:
        state = context.replay(context.tokens_from_text(format_program(question.program)))
    except ProgramError:
        return None  # an empty result, a filter keeping every row, ...: not a question worth asking
    denotation = state.denotation()
    if not denotation or (len(denotation) != 1 and question.family != "list_category"):
        return None
    last = question.program[-1]
    if last.function == "hop" and last.args[1] == toy.name_prop:
        display = dict(zip(toy.table.values[toy.name_prop], toy.names))
        return tuple(display[value] for value in denotation)
    if not all(isinstance(value, float) for value in denotation):
        raise ToyGenerationError(
            f"{label}: unexpected result {denotation!r} of {format_program(question.program)}"
        )
    return tuple(_format_number(value) for value in denotation)


def _annotate_checked(question: _Question, toy: _ToyTable, index: TableIndex, label: str) -> Annotation:
    """Annotates a question with the shared pipeline and checks the gold program's entities are found."""
    annotation = annotate(question.text, toy.table, index=index)
    present = {(e.type, e.value) for e in annotation.entities}
    for entity_type, value in question.needed:
        if (entity_type, value) not in present:
            found = [(e.type, e.value) for e in annotation.entities]
            raise ToyGenerationError(
                f"{label} ({question.family}) {question.text!r}: the gold program "
                f"{format_program(question.program)} needs the {entity_type} entity {value!r}, "
                f"but annotation found only {found}"
            )
    return annotation


def _table_questions(
    toy: _ToyTable, index: TableIndex, rng: random.Random, n_questions: int
) -> List["_Item"]:
    """Up to `n_questions` distinct valid questions, families visited round-robin in a shuffled order."""
    order = list(FAMILIES)
    rng.shuffle(order)
    view = TableView(toy.table)
    # One interpreter context per distinct entity list: questions with the same constants share its
    # memoised states (the context depends only on the table and the entities' types and values).
    contexts: Dict[tuple, ProgramContext] = {}
    out: List[_Item] = []
    seen: List[str] = []
    attempt = 0
    while len(out) < n_questions and attempt < 30 * n_questions:
        family = order[attempt % len(order)]
        attempt += 1
        question = _draw_question(family, toy, rng)
        if question is None or question.text in seen:
            continue
        label = f"{toy.table.name} #{len(out)}"
        annotation = _annotate_checked(question, toy, index, label)
        key = tuple((e.type, e.value) for e in annotation.entities)
        context = contexts.get(key)
        if context is None:
            context = contexts[key] = ProgramContext(
                toy.table, annotation.entities, example_id=toy.table.name, view=view
            )
        answer = _answer(question, toy, context, label)
        if answer is None:
            continue
        seen.append(question.text)
        out.append(_Item(question, answer, annotation))
    return out


# ---------------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Item:
    question: _Question
    answer: Tuple[str, ...]
    annotation: Annotation


@dataclass(frozen=True)
class _Generated:
    tables: Tuple[_ToyTable, ...]
    items: Tuple[Tuple[_Item, ...], ...]  # per table
    dev_tables: Tuple[int, ...]


@functools.lru_cache(maxsize=8)
def _generate(config: ToyConfig) -> _Generated:
    """Everything for both splits, so that train and dev of one config always agree."""
    master = random.Random(config.seed)
    seeds = [master.getrandbits(64) for _ in range(config.n_tables)]  # table i depends on (seed, i) only
    width = max(3, len(str(config.n_tables - 1)))
    tables, items = [], []
    for i, table_seed in enumerate(seeds):
        rng = random.Random(table_seed)
        toy = _make_table(i, f"toy/table_{i:0{width}d}", rng, config)
        index = TableIndex(toy.table)
        tables.append(toy)
        items.append(tuple(_table_questions(toy, index, rng, config.questions_per_table)))
    n_dev = min(max(1, round(config.n_tables * config.dev_fraction)), config.n_tables - 1)
    order = list(range(config.n_tables))
    master.shuffle(order)
    return _Generated(tuple(tables), tuple(items), tuple(sorted(order[:n_dev])))


def load_toy(split: str, config: ToyConfig = ToyConfig()) -> Dataset:
    """One split of the toy dataset (generated in about a second, cached per config).

    Train and dev use disjoint tables. Example ids are `toy-<split>-<n>`; `Dataset.programs` maps
    each id to its gold program in the readable form of `format_program`; `Dataset.stats` counts
    examples, tables and examples per family. Tables and examples are shared between calls with
    the same config (examples are frozen; do not mutate a table's `values`).
    """
    if split not in SPLITS:
        raise UserInputError(f"unknown toy split {split!r}; valid splits: {', '.join(SPLITS)}")
    generated = _generate(config)
    dev = set(generated.dev_tables)
    wanted = [i for i in range(config.n_tables) if (i in dev) == (split == "dev")]
    examples: List[Example] = []
    programs: Dict[str, str] = {}
    families = {family: 0 for family in FAMILIES}
    tables: Dict[str, Table] = {}
    for i in wanted:
        toy = generated.tables[i]
        tables[toy.table.name] = toy.table
        for item in generated.items[i]:
            example_id = f"toy-{split}-{len(examples)}"
            examples.append(Example(
                id=example_id,
                question=item.question.text,
                table=toy.table.name,
                answer=item.answer,
                answer_canon=None,
                tokens=item.annotation.tokens,
                entities=item.annotation.entities,
                in_table=item.annotation.in_table,
                column_features=item.annotation.column_features,
            ))
            programs[example_id] = format_program(item.question.program)
            families[item.question.family] += 1
    stats = {
        "dataset": "toy",
        "split": split,
        "examples": len(examples),
        "tables": len(tables),
        "families": families,
        "config": dataclasses.asdict(config),
    }
    return Dataset(name="toy", split=split, tables=tables, examples=examples, stats=stats, programs=programs)
