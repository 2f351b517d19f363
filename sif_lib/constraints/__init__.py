"""The verifiers every stage checks responses with: IFEval-exact hard constraints (:mod:`~sif_lib.constraints.hard`)
and their conflicts, the soft-constraint library (:mod:`~sif_lib.constraints.soft`), answer extraction for
reasoning models (:mod:`~sif_lib.constraints.extraction`), math answers (:mod:`~sif_lib.constraints.math_answer`)
and degenerate repetition (:mod:`~sif_lib.constraints.repetition`).

The one entry point for training rewards and evaluation is :func:`check_constraints`::

    check_constraints(model_output, [{"id": "punctuation:no_comma", "kwargs": {}},
                                     {"id": "length_constraints:number_words",
                                      "kwargs": {"num_words": 50, "relation": "at least"}}])
    -> [True, False]
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any

from sif_lib.constraints.conflicts import compatible, conflicts
from sif_lib.constraints.extraction import answer_text, extract_answer
from sif_lib.constraints.hard import HARD_CONSTRAINTS, HardConstraint, category_of, get_constraint_class

# Hard ids that synthesis never draws, and why.
EXCLUDED_HARD_IDS = {
    "detectable_format:constrained_response":
        "answers one of 'My answer is yes/no/maybe.', which only fits a yes/no question, not an open-ended seed task",
}

__all__ = [
    "EXCLUDED_HARD_IDS",
    "HARD_CONSTRAINTS",
    "HardConstraint",
    "answer_text",
    "category_of",
    "check_constraint",
    "check_constraints",
    "compatible",
    "conflicts",
    "extract_answer",
    "get_checker",
    "usable_hard_ids",
]


def usable_hard_ids() -> list[str]:
    """Hard ids synthesis draws from: the registry minus :data:`EXCLUDED_HARD_IDS`, in registry order."""
    return [hid for hid in HARD_CONSTRAINTS if hid not in EXCLUDED_HARD_IDS]


@lru_cache(maxsize=8192)
def _cached_checker(instruction_id: str, frozen_kwargs: str) -> HardConstraint:
    return get_constraint_class(instruction_id).from_args(json.loads(frozen_kwargs))


def get_checker(instruction_id: str, kwargs: Mapping[str, Any] | None = None) -> HardConstraint:
    """A built verifier for ``instruction_id`` with ``kwargs``, shared between calls with the same arguments.

    Verifiers do not change after ``build_description``, so one instance per (id, kwargs) serves every call;
    building one (compiling its patterns) happens once.  Arguments left out or None are drawn from a fixed seed,
    so the same call always gets the same verifier.  ValueError for an unknown id or bad arguments.
    """
    cls = get_constraint_class(instruction_id)
    kwargs = dict(kwargs or {})
    try:
        frozen = json.dumps(kwargs, sort_keys=True)
    except (TypeError, ValueError):
        frozen = None  # not JSON-like: build an uncached verifier
    try:
        if frozen is None:
            return cls.from_args(kwargs)
        return _cached_checker(instruction_id, frozen)
    except TypeError as exc:  # unexpected argument names
        raise ValueError(str(exc)) from None


def check_constraint(answer: str | None, instruction_id: str, kwargs: Mapping[str, Any] | None = None) -> bool:
    """Verdict of one hard constraint on an already extracted answer.  An empty or blank answer fails."""
    checker = get_checker(instruction_id, kwargs)
    if answer is None or not answer.strip():
        return False
    return checker.check_following(answer)


def check_constraints(response: str | None, constraints: Iterable[Mapping[str, Any]],
                      answer_mode: str = "after_think") -> list[bool]:
    """One verdict per constraint for a model output.

    ``constraints`` holds dicts ``{"id": "<instruction id>", "kwargs": {...}}``; other keys are ignored.  The answer
    is extracted first (:func:`extract_answer` with ``answer_mode``); an empty answer, or None (no ``</think>``
    under ``"require_think"``), fails every constraint.  Every id is validated even then: an unknown one raises
    ValueError naming it.
    """
    checkers = []
    for item in constraints:
        try:
            instruction_id = item["id"]
        except (KeyError, TypeError):
            raise ValueError(f"constraint {item!r} has no 'id'") from None
        checkers.append(get_checker(instruction_id, item.get("kwargs")))
    answer = extract_answer(response, answer_mode)
    if answer is None or not answer.strip():
        return [False] * len(checkers)
    return [checker.check_following(answer) for checker in checkers]
