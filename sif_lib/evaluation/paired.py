"""Paired intervals for stage 07's before/after deltas: is a change more than the noise of the sample?

Base and trained answer the same prompts, so each delta is paired: a bootstrap resamples the *units* (IFEval
prompts, hold-out prompts, math items) and recomputes after minus before on the same resample
(:func:`~sif_lib.core.stats.paired_bootstrap_ci`). Where a unit's outcome is a pass or a fail (an IFEval prompt, a
hard hold-out constraint, a math item), the pairs that flipped also get the exact sign test
(:func:`~sif_lib.core.stats.sign_test_p`). Statistics are recomputed exactly as the point figures are: prompt level
as a share of prompts, instruction level as a share of all instructions, the hold-out composite as a mean over
prompts of each prompt's mean.
"""

from __future__ import annotations

from collections import defaultdict
from statistics import fmean
from typing import Callable, Sequence

from sif_lib.core.stats import paired_bootstrap_ci, sign_test_p
from sif_lib.evaluation.holdout import level_name


def flips(before: Sequence[bool], after: Sequence[bool]) -> dict:
    """Paired pass/fail outcomes: how many became passes, how many became fails, and the sign test's p."""
    gained = sum(1 for b, a in zip(before, after) if a and not b)
    lost = sum(1 for b, a in zip(before, after) if b and not a)
    return {"paired": len(before), "gained": gained, "lost": lost, "sign_test_p": sign_test_p(gained, lost)}


def _difference(before: Callable, after: Callable) -> Callable:
    def statistic(index) -> float:
        return after(index) - before(index)
    return statistic


def ifeval_intervals(base_rows: Sequence, trained_rows: Sequence, n_resamples: int = 1000, seed: int = 0) -> dict:
    """Intervals of the four IFEval deltas (fractions) over prompts, and the prompt-level flips. The rows are
    :class:`~sif_lib.evaluation.ifeval.PromptResult` lists in the same prompt order."""
    if [r.key for r in base_rows] != [r.key for r in trained_rows]:
        raise ValueError("IFEval: base and trained results cover different prompts")
    n = len(base_rows)
    out: dict = {"intervals": {}, "flips": {}}
    for mode in ("strict", "loose"):
        def prompt_level(rows):
            passed = [all(getattr(r, mode)) for r in rows]
            return lambda index: sum(passed[i] for i in index) / len(index)

        def instruction_level(rows):
            followed = [sum(getattr(r, mode)) for r in rows]
            total = [len(getattr(r, mode)) for r in rows]
            return lambda index: sum(followed[i] for i in index) / max(1, sum(total[i] for i in index))

        out["intervals"][f"prompt_{mode}"] = paired_bootstrap_ci(
            _difference(prompt_level(base_rows), prompt_level(trained_rows)), n, n_resamples, seed)
        out["intervals"][f"inst_{mode}"] = paired_bootstrap_ci(
            _difference(instruction_level(base_rows), instruction_level(trained_rows)), n, n_resamples, seed)
        out["flips"][f"prompt_{mode}"] = flips([all(getattr(r, mode)) for r in base_rows],
                                               [all(getattr(r, mode)) for r in trained_rows])
    return out


def holdout_intervals(base: Sequence[dict], trained: Sequence[dict], n_resamples: int = 1000, seed: int = 0) -> dict:
    """Intervals of the hold-out's hard, soft and composite deltas over prompts, and the flips of hard
    constraints. ``base`` and ``trained`` are the verdict rows of :func:`~sif_lib.evaluation.holdout.constraint_verdicts`."""
    def by_prompt(verdicts):
        grouped: dict[str, list[dict]] = defaultdict(list)
        for v in verdicts:
            grouped[v["id"]].append(v)
        return grouped

    before, after = by_prompt(base), by_prompt(trained)
    if sorted(before) != sorted(after):
        raise ValueError("hold-out: base and trained verdicts cover different prompts")
    ids = sorted(before)

    def pooled(groups, kind):
        def statistic(index):
            scores = [v["score"] for i in index for v in groups[ids[i]] if v["kind"] == kind and v["score"] is not None]
            return fmean(scores) if scores else 0.0
        return statistic

    def composite(groups):
        means = [[v["score"] for v in groups[pid] if v["score"] is not None] for pid in ids]
        return lambda index: fmean(fmean(means[i]) if means[i] else 0.0 for i in index)

    intervals = {}
    for kind in ("hard", "soft"):
        has_kind = any(v["kind"] == kind and v["score"] is not None for v in base)
        intervals[kind] = (paired_bootstrap_ci(_difference(pooled(before, kind), pooled(after, kind)), len(ids),
                                               n_resamples, seed) if has_kind else None)
    intervals["composite"] = paired_bootstrap_ci(_difference(composite(before), composite(after)), len(ids),
                                                 n_resamples, seed)
    intervals["levels"] = {}
    for level in sorted({v["level"] for v in base}):
        subset = [pid for pid in ids if before[pid][0]["level"] == level]
        part_before, part_after = {pid: before[pid] for pid in subset}, {pid: after[pid] for pid in subset}
        intervals["levels"][level_name(level)] = holdout_intervals(
            [v for pid in subset for v in part_before[pid]], [v for pid in subset for v in part_after[pid]],
            n_resamples, seed)["intervals"]["composite"] if len(subset) < len(ids) else intervals["composite"]
    hard_pairs = [(b["score"] == 1.0, a["score"] == 1.0)
                  for pid in ids for b, a in zip(before[pid], after[pid]) if b["kind"] == "hard"]
    return {"intervals": intervals,
            "flips": {"hard": flips([b for b, _ in hard_pairs], [a for _, a in hard_pairs])}}


def accuracy_intervals(base: Sequence[bool], trained: Sequence[bool], n_resamples: int = 1000, seed: int = 0) -> dict:
    """The interval of an accuracy delta over items, and the items' flips (math)."""
    statistic = _difference(lambda index: sum(base[i] for i in index) / len(index),
                            lambda index: sum(trained[i] for i in index) / len(index))
    return {"interval": paired_bootstrap_ci(statistic, len(base), n_resamples, seed), "flips": flips(base, trained)}
