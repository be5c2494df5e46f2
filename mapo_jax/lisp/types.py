"""The DSL's type hierarchy (docs/architecture.md#the-interpreter-and-programs).

A token fits an argument slot when its own type or one of its ancestors is among the slot's types.
`num` (results of count / sum / average / diff) has no ancestors, and no function takes it, so such
a result can only be a program's final answer.
"""

from __future__ import annotations

import functools
from typing import FrozenSet, Iterable

ENTITY_LIST = "entity_list"  # a set of table rows
STRING_LIST = "string_list"
NUM_LIST = "num_list"
DATETIME_LIST = "datetime_list"
ORDERED_LIST = "ordered_list"
ATOM_LIST = "atom_list"
LIST = "list"
NUM = "num"
STRING_PROPERTY = "string_property"
NUM_PROPERTY = "num_property"
DATETIME_PROPERTY = "datetime_property"
ORDERED_PROPERTY = "ordered_property"
ENTITY_PROPERTY = "entity_property"
ATOM_PROPERTY = "atom_property"
PROPERTY = "property"

PARENTS = {
    ENTITY_LIST: (ATOM_LIST,),
    NUM_LIST: (ORDERED_LIST,),
    DATETIME_LIST: (ORDERED_LIST,),
    ORDERED_LIST: (ATOM_LIST,),
    ATOM_LIST: (LIST,),
    STRING_LIST: (LIST,),
    LIST: (),
    NUM: (),
    STRING_PROPERTY: (PROPERTY,),
    NUM_PROPERTY: (ORDERED_PROPERTY,),
    DATETIME_PROPERTY: (ORDERED_PROPERTY,),
    ORDERED_PROPERTY: (ATOM_PROPERTY,),
    ENTITY_PROPERTY: (ATOM_PROPERTY,),
    ATOM_PROPERTY: (PROPERTY,),
    PROPERTY: (),
}

# Column kinds of typed tables -> property types, and the list type a property's values form.
PROPERTY_TYPE_OF_KIND = {
    "string": STRING_PROPERTY,
    "number": NUM_PROPERTY,
    "num2": NUM_PROPERTY,
    "date": DATETIME_PROPERTY,
}
LIST_TYPE_OF_PROPERTY = {
    STRING_PROPERTY: STRING_LIST,
    NUM_PROPERTY: NUM_LIST,
    DATETIME_PROPERTY: DATETIME_LIST,
    ENTITY_PROPERTY: ENTITY_LIST,
}


@functools.lru_cache(maxsize=None)
def ancestry(type_name: str) -> FrozenSet[str]:
    """The type and all its ancestors."""
    if type_name not in PARENTS:
        raise KeyError(f"unknown DSL type {type_name!r}")
    out = {type_name}
    for parent in PARENTS[type_name]:
        out |= ancestry(parent)
    return frozenset(out)


def fits(type_name: str, allowed: Iterable[str]) -> bool:
    """True if a value of `type_name` may fill a slot accepting `allowed` types."""
    return not ancestry(type_name).isdisjoint(allowed)
