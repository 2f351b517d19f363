"""Paired intervals for stage 07's before/after deltas: is a change more than the noise of the sample?

Base and trained answer the same prompts, so each delta is paired: a bootstrap resamples the *units* (IFEval
prompts, hold-out prompts, math items) and recomputes after minus before on the same resample. Where the figure is
a mean over units (prompt-level IFEval, the hold-out composite, math accuracy), its delta is the mean of the
per-unit differences, and the interval is that mean's (:func:`~sif_lib.core.stats.mean_ci`). Where it is a share
of a pool whose size varies by unit (instruction-level IFEval, the hold-out's hard and soft constraints), the pool
is recomputed on each resample (:func:`~sif_lib.core.stats.paired_bootstrap_ci`). Where a unit's outcome is a pass
or a fail (an IFEval prompt, a hard hold-out constraint, a math item), the pairs that flipped also get the exact
sign test (:func:`~sif_lib.core.stats.paired_flips`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from statistics import fmean

from sif_lib.core.stats import mean_ci, paired_bootstrap_ci, paired_flips
from sif_lib.evaluation.curriculum_holdout import level_name


def pooled_ci(before: list[list[float]], after: list[list[float]], n_resamples: int, seed: int) -> list | None:
    """Interval of the change in the mean of all values pooled over units (``before[i]``: unit i's values)."""
    def share(values, index) -> float:
        pooled = [v for i in index for v in values[i]]
        return fmean(pooled) if pooled else 0.0

    return paired_bootstrap_ci(lambda index: share(after, index) - share(before, index), len(before),
                               n_resamples, seed)


def ifeval_intervals(base_rows: Sequence, trained_rows: Sequence, n_resamples: int = 1000, seed: int = 0) -> dict:
    """Intervals of the four IFEval deltas (fractions) over prompts, and the prompt-level flips. The rows are
    :class:`~sif_lib.evaluation.ifeval_scoring.PromptResult` lists in the same prompt order."""
    if [r.key for r in base_rows] != [r.key for r in trained_rows]:
        raise ValueError("IFEval: base and trained results cover different prompts")
    out: dict = {"intervals": {}, "flips": {}}
    for mode in ("strict", "loose"):
        before = [[float(v) for v in getattr(r, mode)] for r in base_rows]
        after = [[float(v) for v in getattr(r, mode)] for r in trained_rows]
        passed_before, passed_after = [all(v) for v in before], [all(v) for v in after]
        out["intervals"][f"prompt_{mode}"] = mean_ci([a - b for b, a in zip(passed_before, passed_after)],
                                                     n_resamples, seed)
        out["intervals"][f"inst_{mode}"] = pooled_ci(before, after, n_resamples, seed)
        out["flips"][f"prompt_{mode}"] = paired_flips(passed_before, passed_after)
    return out


def holdout_intervals(base: Sequence[dict], trained: Sequence[dict], n_resamples: int = 1000, seed: int = 0) -> dict:
    """Intervals of the hold-out's hard, soft, composite and per-level composite deltas over prompts, and the
    flips of hard constraints. ``base`` and ``trained`` are the verdict rows of
    :func:`~sif_lib.evaluation.curriculum_holdout.holdout_verdicts`."""
    def by_prompt(verdicts):
        grouped: dict[str, list[dict]] = defaultdict(list)
        for v in verdicts:
            grouped[v["id"]].append(v)
        return grouped

    before, after = by_prompt(base), by_prompt(trained)
    if sorted(before) != sorted(after):
        raise ValueError("hold-out: base and trained verdicts cover different prompts")
    ids = sorted(before)

    def scores(groups, pid, kind=None) -> list[float]:
        return [v["score"] for v in groups[pid] if v["score"] is not None and kind in (None, v["kind"])]

    intervals = {}
    for kind in ("hard", "soft"):
        has_kind = any(scores(before, pid, kind) for pid in ids)
        intervals[kind] = (pooled_ci([scores(before, pid, kind) for pid in ids],
                                      [scores(after, pid, kind) for pid in ids], n_resamples, seed)
                           if has_kind else None)
    # The composite is a mean over prompts of each prompt's mean: its delta is the mean of per-prompt changes.
    change = {pid: (fmean(scores(after, pid)) if scores(after, pid) else 0.0)
              - (fmean(scores(before, pid)) if scores(before, pid) else 0.0) for pid in ids}
    intervals["composite"] = mean_ci([change[pid] for pid in ids], n_resamples, seed)
    intervals["levels"] = {level_name(level): mean_ci([change[pid] for pid in ids if before[pid][0]["level"] == level],
                                                      n_resamples, seed)
                           for level in sorted({v["level"] for v in base})}
    hard_pairs = [(b["score"] == 1.0, a["score"] == 1.0)
                  for pid in ids for b, a in zip(before[pid], after[pid]) if b["kind"] == "hard"]
    return {"intervals": intervals,
            "flips": {"hard": paired_flips([b for b, _ in hard_pairs], [a for _, a in hard_pairs])}}


def accuracy_intervals(base: Sequence[bool], trained: Sequence[bool], n_resamples: int = 1000, seed: int = 0) -> dict:
    """The interval of an accuracy delta over items, and the items' flips (math)."""
    return {"interval": mean_ci([float(a) - float(b) for b, a in zip(base, trained)], n_resamples, seed),
            "flips": paired_flips(base, trained)}
