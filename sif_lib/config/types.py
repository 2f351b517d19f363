"""Checking YAML values against the type annotations of params fields and of TRL's ``GRPOConfig``."""

from __future__ import annotations

import types
import typing
from typing import Any, Literal


def type_name(tp: Any) -> str:
    """How a type reads in an error message: ``'mixed' | 'staged'``, ``int | NoneType``."""
    origin = typing.get_origin(tp)
    if origin is Literal:
        return " | ".join(repr(a) for a in typing.get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return " | ".join(type_name(a) for a in typing.get_args(tp))
    return getattr(tp, "__name__", str(tp))


def check_value(tp: Any, value: Any) -> bool:
    """Whether a value read from YAML fits a field's annotation (bools are not ints; ints are floats)."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
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
