"""The held-out probe of stage 06: a fixed set of held-out curriculum prompts answered greedily before and after
training, scored by the held-out scorer, and compared pairwise (hard checks gained and lost, with a sign test),
with the degenerate answers (:mod:`sif_lib.constraints.degenerate`) counted before and after.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sif_lib.constraints.degenerate import degeneration
from sif_lib.constraints.repetition import is_repetitive, repetition_summary
from sif_lib.core.io import read_jsonl
from sif_lib.core.stats import mean_ci, paired_flips, wilcoxon_p
from sif_lib.grpo.rl_set import curriculum_items
from sif_lib.policy.answers import Policy, PolicyRunner, answer_store, grpo_dir
from sif_lib.policy.generation import Sampling
from sif_lib.reward import heldout
from sif_lib.reward.composite import extract, summarize
from sif_lib.runner.runs import RunContext


def probe_items(ctx: RunContext) -> list[dict]:
    """A fixed set of held-out curriculum prompts (levels >= 1): ``grpo.probe_size`` of them, spread evenly over
    the levels, chosen by a seeded shuffle of the id-sorted rows."""
    path = ctx.require("data", "curriculum.jsonl")
    size = ctx.params.grpo.probe_size
    if size <= 0:
        return []
    rng = random.Random(ctx.params.run.seed)
    by_level: dict[int, list[dict]] = {}
    for it in sorted(curriculum_items(path, "heldout"), key=lambda it: it["id"]):
        by_level.setdefault(it["level"], []).append(it)
    for level in by_level:
        rng.shuffle(by_level[level])
    chosen: list[dict] = []
    while len(chosen) < size and any(by_level.values()):
        for level in sorted(by_level):
            if by_level[level] and len(chosen) < size:
                chosen.append(by_level[level].pop())
    return chosen


def run_probe(ctx: RunContext, which: str, items: Sequence[dict], scorer: Any, policy: Policy, backend: str = "hf",
              echo=print) -> tuple[dict, list[dict]]:
    """Answer the probe greedily with ``policy`` and score the answers with the held-out scorer
    (:mod:`sif_lib.reward.heldout`: the run's reward function). Answers are cached in ``grpo/probe_<which>/``
    (keyed by policy, adapter weights, decoding and prompts) and scores in ``grpo/probe_<which>.jsonl`` (keyed
    by the answers, the reward settings and the reward model), so a rerun reuses exactly what is still valid.
    Returns the summary (:func:`~sif_lib.reward.composite.summarize`) and the rows. Its ``reward`` is the run's
    training reward, so a ``grpo.repetitive_penalty`` counts in it; hard satisfaction and the soft RM probability
    do not depend on it, and compare across runs."""
    params = ctx.params
    out = grpo_dir(ctx.root)
    runner = PolicyRunner(policy, params, echo, backend=backend, store=answer_store(ctx.root, params))
    try:
        completions = runner.answer(out / f"probe_{which}", [it["prompt"] for it in items],
                                    Sampling(max_new_tokens=params.grpo.max_completion_length, temperature=0.0,
                                             seed=params.run.seed),
                                    params.evaluation.batch_size, extra=[{"id": it["id"]} for it in items])
    finally:
        runner.close()
    rows = heldout.score_cached(out / f"probe_{which}.jsonl", params, items, completions, scorer)
    return summarize(heldout.item_scores(rows)), rows


def probe_delta(before: dict | None, after: dict | None) -> dict:
    if not before or not after:
        return {}
    return {k: round(after[k] - before[k], 4) for k in ("reward", "hard_satisfaction", "soft_prob")
            if before.get(k) is not None and after.get(k) is not None}


def hard_check_flips(before_rows: Sequence[dict], after_rows: Sequence[dict]) -> dict:
    """The probe's hard constraints paired before/after: how many went from failed to met (``gained``) and back
    (``lost``), and the exact two-sided sign-test p-value of that split. A paired test, because the same prompt
    and constraint are scored twice: it separates a real change from noise far better than two independent
    proportions of a few hundred checks."""
    after_by_id = {r["id"]: r for r in after_rows}
    before, after = [], []
    for row in before_rows:
        other = after_by_id.get(row["id"])
        if other is None:
            continue
        for b, a in zip(row["constraints"], other["constraints"]):
            if b["kind"] == "hard" and b["id"] == a["id"]:
                before.append(bool(b["verdict"]))
                after.append(bool(a["verdict"]))
    return paired_flips(before, after)


def _hard_rates(pairs: Sequence[tuple[dict, dict]]) -> dict:
    """Hard satisfaction before and after over some probe pairs, with the paired flips of their checks."""
    def met(rows) -> int:
        return sum(bool(c["verdict"]) for r in rows for c in r["constraints"] if c["kind"] == "hard")

    checks = sum(c["kind"] == "hard" for _, a in pairs for c in a["constraints"])
    return {"prompts": len(pairs), "hard_checks": checks,
            "hard_before": round(met(b for b, _ in pairs) / checks, 4) if checks else None,
            "hard_after": round(met(a for _, a in pairs) / checks, 4) if checks else None,
            **hard_check_flips([b for b, _ in pairs], [a for _, a in pairs])}


def probe_repetition(before_rows: Sequence[dict], after_rows: Sequence[dict], answer_mode: str = "whole") -> dict:
    """Repetitive answers on the probe before and after training (``repetition.repetition_summary``), and the
    paired hard checks restricted to prompts where neither answer is repetitive. A policy can meet rule checks
    with degenerate loops ("1. 1. 1." has no comma); the ``fluent`` figures show whether a rise survives
    without them. Like the reward, it reads the scored answer (``model.answer_mode``), not a model's thinking."""
    def answer(row: dict) -> str:
        return extract(row["completion"], answer_mode) or ""

    before_by_id = {r["id"]: r for r in before_rows}
    pairs = [(before_by_id[r["id"]], r) for r in after_rows if r["id"] in before_by_id]
    fluent = [(b, a) for b, a in pairs if not is_repetitive(answer(b)) and not is_repetitive(answer(a))]
    return {"before": repetition_summary(answer(b) for b, _ in pairs),
            "after": repetition_summary(answer(a) for _, a in pairs),
            "fluent": _hard_rates(fluent)}


def check_model_shift(before_rows: Sequence[dict], after_rows: Sequence[dict], check_scorer: Any,
                      answer_mode: str = "whole", n_resamples: int = 1000, seed: int = 0) -> dict:
    """The probe's soft constraints paired before/after, scored by the *check* reward model (trained on the
    other half of the instructions, never a training reward), next to the training RM's probabilities on the
    same pairs. A soft gain that shows under the training RM but not under the check RM is the policy learning
    that RM's quirks rather than the constraints. A missing answer scores 0, as in the reward."""
    after_by_id = {r["id"]: r for r in after_rows}
    keys, asks = [], {"before": [], "after": []}
    trained = {"before": [], "after": []}
    for row in before_rows:
        other = after_by_id.get(row["id"])
        if other is None:
            continue
        for b, a in zip(row["constraints"], other["constraints"]):
            if b["kind"] != "soft" or b.get("id") != a.get("id"):
                continue
            keys.append((row["id"], b.get("id")))
            for side, r, c in (("before", row, b), ("after", other, a)):
                asks[side].append((extract(r["completion"], answer_mode), c.get("description", "")))
                trained[side].append(float(c["prob"]) if c.get("prob") is not None else 0.0)
    if not keys:
        return {"pairs": 0}
    checked = {}
    for side, pairs in asks.items():
        present = [(i, (answer, d)) for i, (answer, d) in enumerate(pairs) if answer is not None]
        probs = check_scorer.score([p for _, p in present]) if present else []
        values = [0.0] * len(pairs)
        for (i, _), p in zip(present, probs):
            values[i] = float(p)
        checked[side] = values

    def shift(before: list[float], after: list[float]) -> dict:
        diffs = [a - b for b, a in zip(before, after)]
        return {"before": round(sum(before) / len(before), 4), "after": round(sum(after) / len(after), 4),
                "delta": round(sum(diffs) / len(diffs), 4), "delta_ci95": mean_ci(diffs, n_resamples, seed),
                "wilcoxon_p": wilcoxon_p(diffs)}

    return {"pairs": len(keys), "prompts": len({k[0] for k in keys}),
            "check_rm": shift(checked["before"], checked["after"]),
            "training_rm": shift(trained["before"], trained["after"])}


def _soft_probs(before: dict, after: dict) -> list[tuple[float, float]]:
    """The (before, after) RM probability of each soft constraint scored on both sides (0 for a missing answer,
    as in the reward); none without a reward model."""
    return [(float(b.get("prob") or 0.0), float(a.get("prob") or 0.0))
            for b, a in zip(before["constraints"], after["constraints"])
            if b["kind"] == "soft" and b.get("id") == a.get("id")
            and b.get("score") is not None and a.get("score") is not None]


def probe_degenerate(before_rows: Sequence[dict], after_rows: Sequence[dict], answer_mode: str = "whole",
                     constraints: dict | None = None, n_resamples: int = 1000, seed: int = 0) -> dict:
    """Degenerate answers on the probe, before against after training (the scored answer, ``model.answer_mode``;
    a missing answer is degenerate, ``near_empty``):

    * ``before``/``after``: :func:`~sif_lib.constraints.degenerate.degenerate_summary` (exact 95% interval);
      ``delta`` (a fraction) with its 95% bootstrap interval over prompts; ``flips``: prompts that turned
      degenerate and turned clean, with the exact sign test;
    * ``clean``: hard satisfaction and paired hard-check flips on the prompts where neither answer is degenerate;
    * ``soft_turned_degenerate``: the RM's mean soft probability before and after on the prompts whose answer
      turned degenerate (clean before, degenerate after), over ``n`` soft constraints. Acceptance: it must not
      rise, or the reward model pays for degenerate text.

    ``constraints`` maps a prompt id to its constraints (with ``kwargs``), so that a required phrase stuffed is
    seen; without it the detector reads the text alone."""
    constraints = constraints or {}
    before_by_id = {r["id"]: r for r in before_rows}
    pairs = [(before_by_id[r["id"]], r) for r in after_rows if r["id"] in before_by_id]
    cons = [constraints.get(b["id"]) for b, _ in pairs]
    answers = {side: [extract(row["completion"], answer_mode) for row in rows]
               for side, rows in (("before", [b for b, _ in pairs]), ("after", [a for _, a in pairs]))}
    found = {side: [degeneration(t, c) for t, c in zip(texts, cons)] for side, texts in answers.items()}
    bad = {side: [v.degenerate for v in verdicts] for side, verdicts in found.items()}
    change = heldout.degenerate_change(found["before"], found["after"], ("before", "after"), n_resamples, seed)
    soft = [p for (b, a), was, now in zip(pairs, bad["before"], bad["after"]) if now and not was
            for p in _soft_probs(b, a)]
    mean = (lambda values: round(sum(values) / len(values), 4) if values else None)  # noqa: E731
    soft_before, soft_after = mean([b for b, _ in soft]), mean([a for _, a in soft])
    return {**change,
            "clean": _hard_rates([p for p, b, a in zip(pairs, bad["before"], bad["after"]) if not (b or a)]),
            "soft_turned_degenerate": {
                "prompts": change["flips"]["became_degenerate"], "n": len(soft),
                "before": soft_before, "after": soft_after,
                "delta": None if soft_before is None else round(soft_after - soft_before, 4)}}


def probe_comparison(out: Path, answer_mode: str, check_scorer: Any = None, n_resamples: int = 1000,
                     seed: int = 0, items: Sequence[dict] | None = None) -> dict:
    """The saved probes paired: hard checks gained and lost, repetition, degenerate answers (the detector given
    each prompt's constraints from ``items``), and (with a check RM) the soft shift under both reward models."""
    before, after = read_jsonl(out / "probe_before.jsonl"), read_jsonl(out / "probe_after.jsonl")
    constraints = {str(it["id"]): it.get("constraints") for it in items or ()}
    return {"hard_flips": hard_check_flips(before, after),
            "repetition": probe_repetition(before, after, answer_mode),
            "degenerate": probe_degenerate(before, after, answer_mode, constraints, n_resamples, seed),
            "soft_check": (check_model_shift(before, after, check_scorer, answer_mode, n_resamples, seed)
                           if check_scorer is not None else None)}
