"""Choice options of the command line as Enums, built from the config's ``Literal`` types.

Typer lists an Enum option's values in ``--help`` and rejects any other value with a usage error
naming them, before a config model is built (so no pydantic error text reaches the user). Taking
the values from the config field keeps one source of truth.
"""

from __future__ import annotations

import typing
from enum import Enum
from typing import Iterable


def choice_enum(name: str, values: Iterable[str]) -> type[Enum]:
    """A ``str`` Enum whose members' names and values are ``values``."""
    return Enum(name, {v: v for v in values}, type=str)


def literal_choices(name: str, model: type, field: str) -> type[Enum]:
    """The values of ``model.field`` (typed ``Literal[...]``) as a :func:`choice_enum`."""
    values = typing.get_args(model.model_fields[field].annotation)
    if not values or not all(isinstance(v, str) for v in values):
        raise TypeError(f"{model.__name__}.{field} is not a Literal of strings")
    return choice_enum(name, values)
