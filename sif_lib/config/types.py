"""Checking YAML values against the type annotations of params fields and of TRL's ``GRPOConfig``."""

from __future__ import annotations

import types
import typing
from typing import Any, Literal

# Optional[X] (typing.Union) and X | None (types.UnionType): the same type to a params file.
UNIONS = (typing.Union, types.UnionType)


def type_name(tp: Any) -> str:
    """How a type reads in an error message: ``'mixed' | 'staged'``, ``int | NoneType``."""
    origin = typing.get_origin(tp)
    if origin is Literal:
        return " | ".join(repr(a) for a in typing.get_args(tp))
    if origin in UNIONS:
        return " | ".join(type_name(a) for a in typing.get_args(tp))
    return getattr(tp, "__name__", str(tp))


def check_value(tp: Any, value: Any) -> bool:
    """Whether a value read from YAML fits a field's annotation (bools are not ints; ints are floats)."""
    origin = typing.get_origin(tp)
    if origin in UNIONS:
        return any(check_value(arg, value) for arg in typing.get_args(tp))
    if origin is Literal:
        return value in typing.get_args(tp)
    if origin is list:
        (item,) = typing.get_args(tp) or (Any,)
        return isinstance(value, list) and all(check_value(item, v) for v in value)
    if tp is type(None):
        return value is None
    if tp is bool:
        return isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if tp in (list, dict, str):
        return isinstance(value, tp)
    return True


def takes_float(tp: Any) -> bool:
    """Whether a field's annotation is float or a union holding float (YAML's ``1E2`` or ``3`` then means a float)."""
    return tp is float or (typing.get_origin(tp) in UNIONS and float in typing.get_args(tp))
