"""The params checks that need the constraint registries: each id that ``synthesis.hard_ids`` and
``synthesis.ifbench_ids`` name must be one synthesis draws, and its check must be able to run here.

Loading params (:mod:`sif_lib.config.params`) checks keys, types and the rules between fields, and knows no
constraint. These checks sit above both, and run where params are put to use: ``sif params`` loads with
:func:`load_checked_params`; ``sif run`` hands :func:`check_constraint_ids` to the runner, which runs it on the
params it loads, before it writes anything; stage 01 runs it before it draws. A refusal is an ``InputError`` whose
one line names the params source, the key and the id, as a refusal of the loader does.
"""

from __future__ import annotations

import difflib
from pathlib import Path

from sif_lib.config.params import Params, load_params
from sif_lib.constraints import EXCLUDED_IFBENCH_IDS, HARD_CONSTRAINTS, IFBENCH_CONSTRAINTS, usable_hard_ids
from sif_lib.constraints.ifbench import missing_resources
from sif_lib.core.errors import InputError


def load_checked_params(path: str | Path, overrides: dict | None = None) -> Params:
    """:func:`~sif_lib.config.params.load_params`, then :func:`check_constraint_ids` under the same source name."""
    params = load_params(path, overrides)
    check_constraint_ids(params, str(Path(path)))
    return params


def check_constraint_ids(params: Params, source: str) -> None:
    """Refuse an id of ``synthesis.hard_ids`` that is not a usable IFEval id, and an id of
    ``synthesis.ifbench_ids`` that is IFEval's, unknown, never drawn or whose check cannot run here. The fields
    are not counted as read (:meth:`~sif_lib.config.params.Params.reads`)."""
    hard_ids = params.value("synthesis.hard_ids")
    if hard_ids is not None:
        usable = usable_hard_ids()
        unknown = [hid for hid in hard_ids if hid not in usable]
        if unknown:
            close = difflib.get_close_matches(unknown[0], usable, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise InputError(f"{source}: key 'synthesis.hard_ids': {unknown[0]!r} "
                             f"is not a usable hard constraint id{hint}")
    ifbench_ids = params.value("synthesis.ifbench_ids")
    if ifbench_ids is not None:
        _check_ifbench_ids(ifbench_ids, source)
    _check_heldout_ids(params.value("synthesis.heldout_ids") or [], hard_ids, ifbench_ids, source)


def _check_heldout_ids(ids: list[str], hard_ids: list[str] | None, ifbench_ids: list[str] | None,
                       source: str) -> None:
    """Each held-out id is a known IFEval or IFBench id, and not one the same file asks synthesis to draw."""
    key = f"{source}: key 'synthesis.heldout_ids'"
    known = list(HARD_CONSTRAINTS) + list(IFBENCH_CONSTRAINTS)
    for instruction_id in ids:
        if instruction_id not in known:
            close = difflib.get_close_matches(instruction_id, known, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise InputError(f"{key}: {instruction_id!r} is not an IFEval or IFBench constraint id{hint}")
        for other, drawn in (("hard_ids", hard_ids), ("ifbench_ids", ifbench_ids)):
            if drawn and instruction_id in drawn:
                raise InputError(f"{key}: {instruction_id!r} is also in 'synthesis.{other}': an id is trained on "
                                 "or held out, not both")


def _check_ifbench_ids(ids: list[str], source: str) -> None:
    """Each id is IFBench's, one synthesis draws, and its check can run here."""
    key = f"{source}: key 'synthesis.ifbench_ids'"
    for instruction_id in ids:
        if instruction_id in HARD_CONSTRAINTS:
            raise InputError(f"{key}: {instruction_id!r} is an IFEval id; name it in 'synthesis.hard_ids'")
        if instruction_id not in IFBENCH_CONSTRAINTS:
            close = difflib.get_close_matches(instruction_id, list(IFBENCH_CONSTRAINTS), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise InputError(f"{key}: {instruction_id!r} is not an IFBench constraint id{hint}")
        if instruction_id in EXCLUDED_IFBENCH_IDS:
            why = EXCLUDED_IFBENCH_IDS[instruction_id]
            raise InputError(f"{key}: {instruction_id!r} is never drawn by synthesis: {why}")
    missing = missing_resources(ids)
    if missing:  # the message names the id and what its check needs
        raise InputError(f"{key}: {next(iter(missing.values()))}")
