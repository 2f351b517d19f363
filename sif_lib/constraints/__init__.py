"""The verifiers every stage checks responses with: IFEval-exact hard constraints (:mod:`~sif_lib.constraints.hard`),
IFBench's (:mod:`~sif_lib.constraints.ifbench`) and their conflicts, the soft-constraint library
(:mod:`~sif_lib.constraints.soft`), answer extraction for reasoning models (:mod:`~sif_lib.constraints.extraction`),
math answers (:mod:`~sif_lib.constraints.math_answer`) and degenerate repetition
(:mod:`~sif_lib.constraints.repetition`).

The one entry point for training rewards and evaluation is :func:`check_constraints`::

    check_constraints(model_output, [{"id": "punctuation:no_comma", "kwargs": {}},
                                     {"id": "length_constraints:number_words",
                                      "kwargs": {"num_words": 50, "relation": "at least"}}])
    -> [True, False]

A hard constraint's id is IFEval's or IFBench's: the two registries share no id, and :func:`get_constraint_class`
looks in IFEval's first, then IFBench's, so every reward, label and check resolves both.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any

from sif_lib.constraints.conflicts import compatible, conflicts
from sif_lib.constraints.extraction import answer_text, extract_answer
from sif_lib.constraints.hard import HARD_CONSTRAINTS, HardConstraint, category_of
from sif_lib.constraints.ifbench import IFBENCH_CONSTRAINTS

# Hard ids that synthesis never draws, and why.
EXCLUDED_HARD_IDS = {
    "detectable_format:constrained_response":
        "answers one of 'My answer is yes/no/maybe.', which only fits a yes/no question, not an open-ended seed task",
}

# IFBench ids that synthesis never draws, and why: each makes the response something other than an answer to the
# seed task, or needs a text that the seed does not provide.
EXCLUDED_IFBENCH_IDS = {
    **{instruction_id: "a task of its own (a fixed question or data to produce), which replaces the seed task"
       for instruction_id in IFBENCH_CONSTRAINTS if instruction_id.startswith("custom:")},
    "repeat:repeat_simple": "the response is the instruction sentence itself, not an answer to the seed task",
    "repeat:repeat_change": "the response is the request with its first word changed, not an answer to it",
    "repeat:repeat_span": "the response is a span of characters copied from the request, not an answer to it",
    "format:options": "answers one of a few fixed options (yes/no/maybe), which only fits a question with those "
                      "answers, not an open-ended seed task",
    "ratio:overlap": "measures the overlap with a reference text that the seed task does not provide",
}

__all__ = [
    "EXCLUDED_HARD_IDS",
    "EXCLUDED_IFBENCH_IDS",
    "HARD_CONSTRAINTS",
    "IFBENCH_CONSTRAINTS",
    "HardConstraint",
    "answer_text",
    "category_of",
    "check_constraint",
    "check_constraints",
    "compatible",
    "conflicts",
    "extract_answer",
    "get_checker",
    "get_constraint_class",
    "usable_hard_ids",
    "usable_ifbench_ids",
]


def usable_hard_ids() -> list[str]:
    """Hard ids synthesis draws from: the registry minus :data:`EXCLUDED_HARD_IDS`, in registry order."""
    return [hid for hid in HARD_CONSTRAINTS if hid not in EXCLUDED_HARD_IDS]


def usable_ifbench_ids() -> list[str]:
    """IFBench ids synthesis may draw (when ``synthesis.ifbench_ids`` names them): the IFBench registry minus
    :data:`EXCLUDED_IFBENCH_IDS`, in registry order.  Whether a check's resource is installed is not asked here
    (:func:`~sif_lib.constraints.ifbench.missing_resources` does)."""
    return [hid for hid in IFBENCH_CONSTRAINTS if hid not in EXCLUDED_IFBENCH_IDS]


def get_constraint_class(instruction_id: str) -> type[HardConstraint]:
    """The verifier class for an IFEval or IFBench id; ValueError naming the id when it is neither."""
    cls = HARD_CONSTRAINTS.get(instruction_id) or IFBENCH_CONSTRAINTS.get(instruction_id)
    if cls is None:
        raise ValueError(f"unknown hard constraint id {instruction_id!r} (neither IFEval's nor IFBench's)")
    return cls


@lru_cache(maxsize=8192)
def _cached_checker(instruction_id: str, frozen_kwargs: str) -> HardConstraint:
    return get_constraint_class(instruction_id).from_args(json.loads(frozen_kwargs))


def get_checker(instruction_id: str, kwargs: Mapping[str, Any] | None = None) -> HardConstraint:
    """A built verifier for ``instruction_id`` with ``kwargs``, shared between calls with the same arguments.

    Verifiers do not change after ``build_description``, so one instance per (id, kwargs) serves every call;
    building one (compiling its patterns) happens once.  Arguments left out or None are drawn from a fixed seed,
    so the same call always gets the same verifier.  The id is IFEval's or IFBench's (:func:`get_constraint_class`).
    ValueError for an unknown id or bad arguments.
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
