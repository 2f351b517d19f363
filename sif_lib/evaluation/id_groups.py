"""Did a gain travel beyond the constraint types trained on? IFEval (and IFBench) figures per instruction id and
per group of ids.

A run's *trained ids* are the hard-constraint ids of its training data: the ``train`` split of
``data/instructions.jsonl`` (the curriculum and the RL set are built from it) and ``data/cold_start.jsonl`` when
stage 00 ran. The groups, over the ids the benchmark's prompts ask for:

* ``trained``: ids in the training data;
* ``untrained``: every other id (types the policy never practised, whether by choice or because synthesis was
  told to draw from fewer ids);
* ``held_out``: the ids ``synthesis.heldout_ids`` names, kept out of synthesis on purpose (so also untrained);
  present only when it names some;
* ``all``: every instruction.

Each figure is instruction-level accuracy (strict and loose) over the group's instructions, base and trained,
with a paired bootstrap interval of the change over the prompts that hold one of them: the pool of a prompt's
instructions in the group is resampled with the prompt (:func:`sif_lib.evaluation.paired.pooled_ci`, as for the
whole benchmark). A held-out id found in the training data is listed under ``leaked`` (it should never happen: synthesis
never deals those ids).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from statistics import fmean

from sif_lib.core.io import iter_jsonl
from sif_lib.core.stats import difference
from sif_lib.evaluation.paired import pooled_ci

TRAINING_DATA = (("data", "instructions.jsonl"), ("data", "cold_start.jsonl"))
MODES = ("inst_strict", "inst_loose")


def trained_ids(run_dir: str | Path) -> set[str]:
    """The hard-constraint ids the run's training data holds (see the module's docstring for which files)."""
    found: set[str] = set()
    for parts in TRAINING_DATA:
        path = Path(run_dir).joinpath(*parts)
        if not path.is_file():
            continue
        for row in iter_jsonl(path):
            if parts[-1] == "instructions.jsonl" and row.get("split") != "train":
                continue
            found.update(c["id"] for c in row.get("constraints") or () if c.get("kind") == "hard" and c.get("id"))
    return found


def _pools(rows: Sequence, ids: set[str]) -> dict[str, list[list[float]]]:
    """Per mode, each prompt's verdicts (1.0/0.0) on its instructions whose id is in ``ids``."""
    return {mode: [[float(v) for iid, v in zip(r.instruction_id_list, getattr(r, mode.removeprefix("inst_")))
                    if iid in ids] for r in rows] for mode in MODES}


def group_figures(base_rows: Sequence, trained_rows: Sequence, ids: Iterable[str], n_resamples: int = 1000,
                  seed: int = 0) -> dict:
    """Instruction-level strict and loose accuracy over the instructions whose id is in ``ids``: ``base``,
    ``trained``, ``delta`` and ``delta_ci95`` per mode, ``n_instructions`` and ``n_prompts`` (None figures when the
    benchmark asks for none of them). The rows are :class:`~sif_lib.evaluation.ifeval_scoring.PromptResult`
    lists of the same prompts in the same order."""
    ids = set(ids)
    before, after = _pools(base_rows, ids), _pools(trained_rows, ids)
    units = [i for i, pool in enumerate(before["inst_loose"]) if pool]  # prompts that hold one of the ids
    out: dict = {"n_instructions": sum(len(before["inst_loose"][i]) for i in units), "n_prompts": len(units),
                 "base": {}, "trained": {}, "delta": {}, "delta_ci95": {}}
    for mode in MODES:
        b = [before[mode][i] for i in units]
        a = [after[mode][i] for i in units]
        out["base"][mode] = round(fmean(v for pool in b for v in pool), 6) if b else None
        out["trained"][mode] = round(fmean(v for pool in a for v in pool), 6) if a else None
        out["delta"][mode] = difference(out["base"][mode], out["trained"][mode])
        out["delta_ci95"][mode] = pooled_ci(b, a, n_resamples, seed)
    return out


def id_breakdown(base_rows: Sequence, trained_rows: Sequence, trained: set[str], held_out: Sequence[str] = (),
                 n_resamples: int = 1000, seed: int = 0) -> dict:
    """``{"groups": {name: figures, ...}, "by_id": {id: figures}, "leaked": [...]}`` (see the module's docstring);
    each group's figures also list its ``ids`` (those the benchmark asks for), each id's say ``in_training``."""
    asked = sorted({iid for r in base_rows for iid in r.instruction_id_list})
    members = {"trained": [i for i in asked if i in trained], "untrained": [i for i in asked if i not in trained]}
    if held_out:
        members["held_out"] = [i for i in asked if i in set(held_out)]
    members["all"] = asked
    groups = {name: {"ids": ids, **group_figures(base_rows, trained_rows, ids, n_resamples, seed)}
              for name, ids in members.items()}
    by_id = {iid: {"in_training": iid in trained, **group_figures(base_rows, trained_rows, [iid], n_resamples, seed)}
             for iid in asked}
    return {"groups": groups, "by_id": by_id, "leaked": sorted(set(held_out) & trained)}
