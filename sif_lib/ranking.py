"""Ranking agreement of reward scorers with the verifier's truth (stage 05, after the paper's Table 6).

The paper builds 50 groups, each an instruction with 5 constraints and 5 responses that satisfy 1..5 of them,
ranks each group's responses with a scorer, and compares that ranking with the human one. Here the truth
comes from the hard-constraint verifiers, which needs no annotator:

* **Groups.** For an instruction with k >= 2 hard constraints, every response the policy wrote on its
  curriculum ladder (levels L0..Ln, all samples; stage 03's rollouts and pseudo-label responses) is checked
  against those k constraints. The group keeps one response per distinct number of satisfied constraints
  (the first in level order), so the truth ranking has no ties. The paper's groups span 1..5; we take what the
  rollouts offer. Groups with the most distinct counts are used first, so groups of at least 3 responses are
  preferred and 2-response groups only fill up when too few larger ones exist. ``scoring.n_groups`` caps the
  number.
* **A scorer's ranking.** A response's score is the mean, over the instruction's hard constraints, of the
  scorer's per-constraint score: the RM probability (the paper's R if the RM judged hard constraints too) or
  the judge's 0/1 verdict.
* **Kendall tau-b** between the scorer's scores and the truth counts, averaged over groups. A group where the
  scorer gives every response the same score has an undefined tau; it counts as 0 (no ordering information).
* **Position consistency**: the share of responses whose rank position under the scorer equals their position
  under the truth. Positions are 1-based in descending order; tied scores share the mean of the positions they
  span (so a tie never matches a distinct truth position: a scorer gets no credit for failing to separate).

The groups' responses may have been RM training pairs (stage 03 makes pairs from the same rollouts), which the
paper's separate test set avoids. The figures are therefore also reported on the groups whose instruction was
held out of the RM's training (``rm/sif_rm.json`` lists those instructions).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from sif_lib.errors import InputError

STAGE = "05_score_rewards"


# ---------------------------------------------------------------------------------------------------------------
# Agreement statistics


def kendall_tau_b(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Kendall's tau-b: (C - D) / sqrt((n0 - n1)(n0 - n2)), ties counted per variable.

    C and D are the concordant and discordant pairs, n0 = n(n-1)/2, n1 and n2 the pairs tied in x and in y.
    ``None`` when either variable is constant (the denominator is 0) or there are fewer than 2 items.
    O(n^2), which is fine for groups of a handful of responses.
    """
    if len(x) != len(y):
        raise ValueError("kendall_tau_b: sequences differ in length")
    n = len(x)
    concordant = discordant = ties_x = ties_y = 0
    for i in range(n):
        for j in range(i + 1, n):
            dx = (x[i] > x[j]) - (x[i] < x[j])
            dy = (y[i] > y[j]) - (y[i] < y[j])
            if dx == 0:
                ties_x += 1
            if dy == 0:
                ties_y += 1
            if dx and dy:
                if dx == dy:
                    concordant += 1
                else:
                    discordant += 1
    n0 = n * (n - 1) // 2
    denominator = math.sqrt((n0 - ties_x) * (n0 - ties_y))
    if denominator == 0:
        return None
    return (concordant - discordant) / denominator


def rank_positions(scores: Sequence[float]) -> list[float]:
    """1-based positions in descending score order; tied scores share the mean of their positions."""
    order = sorted(range(len(scores)), key=lambda i: -scores[i])
    positions = [0.0] * len(scores)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and scores[order[j + 1]] == scores[order[i]]:
            j += 1
        for k in range(i, j + 1):
            positions[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return positions


def position_consistency(truth: Sequence[float], scores: Sequence[float]) -> float | None:
    """Share of items whose position under ``scores`` equals their position under ``truth``."""
    if len(truth) != len(scores):
        raise ValueError("position_consistency: sequences differ in length")
    if not truth:
        return None
    a, b = rank_positions(truth), rank_positions(scores)
    return sum(p == q for p, q in zip(a, b)) / len(truth)


# ---------------------------------------------------------------------------------------------------------------
# Groups


@dataclass
class Group:
    """One instruction's hard constraints and responses with distinct satisfaction counts."""

    instruction_id: str
    constraints: list[dict]
    responses: list[str]
    answers: list[str | None]
    sources: list[str]
    satisfied: list[list[bool]]
    candidates: int = 0

    @property
    def truth(self) -> list[int]:
        return [sum(row) for row in self.satisfied]

    def pairs(self) -> list[tuple[int, int, str, str]]:
        """(response index, constraint index, answer, description) for every answer that exists."""
        return [(i, j, answer, c.get("description", "")) for i, answer in enumerate(self.answers) if answer is not None
                for j, c in enumerate(self.constraints)]


@dataclass
class GroupStats:
    instructions: int = 0
    with_two_hard: int = 0
    eligible: int = 0
    used: int = 0
    sizes: dict = field(default_factory=dict)


def _default_check() -> Callable[[str, list[dict], str], list[bool]]:
    from sif_lib.constraints import check_constraints

    return check_constraints


def build_groups(instructions: Iterable[dict], responses: dict[str, list[tuple[str, str]]], n_groups: int,
                 answer_mode: str = "after_think", check: Callable | None = None) -> tuple[list[Group], GroupStats]:
    """Ranking groups from instructions (with their constraints) and ``{instruction id: [(source, response)]}``.

    ``check(response, hard_constraints, answer_mode) -> list[bool]`` defaults to the hard-constraint verifiers.
    """
    from sif_lib.constraints import extract_answer

    check = check or _default_check()
    stats = GroupStats()
    eligible: list[Group] = []
    for inst in instructions:
        stats.instructions += 1
        hard = [c for c in inst.get("constraints", []) if c.get("kind") == "hard"]
        if len(hard) < 2:
            continue
        stats.with_two_hard += 1
        by_count: dict[int, tuple[str, str, list[bool]]] = {}
        seen = set()
        for source, response in responses.get(inst["id"], []):
            if response in seen:
                continue
            seen.add(response)
            try:
                verdicts = [bool(v) for v in check(response, hard, answer_mode)]
            except ValueError as err:  # an unknown constraint id or bad arguments in the instructions file
                raise InputError(f"instruction {inst['id']}: {err}") from None
            by_count.setdefault(sum(verdicts), (source, response, verdicts))
        if len(by_count) < 2:
            continue
        kept = [by_count[c] for c in sorted(by_count, reverse=True)]
        eligible.append(Group(
            instruction_id=inst["id"], constraints=hard, responses=[r for _, r, _ in kept],
            answers=[extract_answer(r, answer_mode) for _, r, _ in kept], sources=[s for s, _, _ in kept],
            satisfied=[v for _, _, v in kept], candidates=len(seen)))
    stats.eligible = len(eligible)
    eligible.sort(key=lambda g: (-len(g.responses), g.instruction_id))
    used = eligible[:max(0, n_groups)]
    stats.used = len(used)
    for g in used:
        stats.sizes[len(g.responses)] = stats.sizes.get(len(g.responses), 0) + 1
    return used, stats


def load_run_responses(ctx: Any) -> tuple[list[dict], dict[str, list[tuple[str, str]]]]:
    """Instructions and every response the run holds for them (rollouts and pseudo-label responses)."""
    from sif_lib.runs import iter_jsonl

    inst_path = ctx.require("data", "instructions.jsonl", stage="01_synthesize_constraints")
    instructions = []
    for number, row in enumerate(iter_jsonl(inst_path), start=1):
        if not isinstance(row.get("id"), str) or not isinstance(row.get("constraints"), list):
            raise InputError(f"{inst_path}:{number}: keys 'id' (string) and 'constraints' (list) are required")
        instructions.append(row)
    responses: dict[str, list[tuple[str, str]]] = {}
    rollouts = ctx.root / "data" / "rollouts.jsonl"
    labels = ctx.root / "data" / "pseudo_labels.jsonl"
    if not rollouts.is_file() and not labels.is_file():
        raise InputError(f"{rollouts}: missing input: run stage 03_generate_pseudo_labels first")
    if rollouts.is_file():
        rows = [r for r in iter_jsonl(rollouts, tolerate_torn_tail=True) if isinstance(r.get("response"), str)]
        rows.sort(key=lambda r: (int(r.get("level", 0) or 0), int(r.get("sample", 0) or 0)))
        for r in rows:
            parent = r.get("ladder") or r.get("parent")
            if isinstance(parent, str):
                responses.setdefault(parent, []).append((f"L{r.get('level', '?')}#{r.get('sample', 0)}", r["response"]))
    if labels.is_file():
        for r in iter_jsonl(labels):
            if isinstance(r.get("parent"), str) and isinstance(r.get("response"), str):
                level = r.get("source_level", r.get("level", "?"))
                responses.setdefault(r["parent"], []).append((f"L{level} (pair)", r["response"]))
    return instructions, responses


# ---------------------------------------------------------------------------------------------------------------
# Scoring groups


@dataclass
class GroupScores:
    """A scorer's output on one group: per-pair scores, per-response means, and the time it took."""

    pair_scores: list[list[float]]
    response_scores: list[float]
    seconds: float


def score_groups(groups: Sequence[Group], score_pairs: Callable[[list[tuple[str, str]]], list[float]]) -> list[GroupScores]:
    """Score every group with ``score_pairs`` (one call per group, timed). A missing answer scores 0."""
    results = []
    for g in groups:
        pairs = g.pairs()
        began = time.perf_counter()
        scores = score_pairs([(answer, description) for _, _, answer, description in pairs]) if pairs else []
        seconds = time.perf_counter() - began
        table = [[0.0] * len(g.constraints) for _ in g.responses]
        for (i, j, _, _), s in zip(pairs, scores):
            table[i][j] = float(s)
        means = [sum(row) / len(row) for row in table]
        results.append(GroupScores(table, means, seconds))
    return results


def agreement(groups: Sequence[Group], results: Sequence[GroupScores], threshold: float = 0.5) -> dict:
    """Mean Kendall tau-b, mean position consistency and per-pair accuracy against the verifier."""
    taus, consistencies, correct, total = [], [], 0, 0
    for g, r in zip(groups, results):
        tau = kendall_tau_b(g.truth, r.response_scores)
        taus.append(0.0 if tau is None else tau)
        consistencies.append(position_consistency(g.truth, r.response_scores))
        for truth_row, score_row in zip(g.satisfied, r.pair_scores):
            for t, s in zip(truth_row, score_row):
                correct += int((s >= threshold) == t)
                total += 1
    n = len(taus)
    seconds = [r.seconds for r in results]
    return {
        "kendall_tau": sum(taus) / n if n else None,
        "position_consistency": sum(consistencies) / n if n else None,
        "truth_accuracy": correct / total if total else None,
        "pairs": total,
        "groups": n,
        "seconds_per_group": sum(seconds) / n if n else None,
        "pairs_per_second": total / sum(seconds) if n and sum(seconds) > 0 else None,
    }


# ---------------------------------------------------------------------------------------------------------------
# Stage


def run_scoring_stage(ctx: Any, scorer: Any = None, progress: bool = True) -> dict:
    """Stage 05: ranking agreement of the RM with the verifier, and its cost against a generative judge."""
    from sif_lib.reward_model import make_scorer

    params = ctx.params
    instructions, responses = load_run_responses(ctx)
    groups, stats = build_groups(instructions, responses, params.scoring.n_groups, params.model.answer_mode)
    scorer = scorer or make_scorer(params, ctx.root)
    say = print if progress else (lambda *a, **k: None)
    say(f"{stats.used} ranking groups (of {stats.eligible} eligible; sizes {dict(sorted(stats.sizes.items()))})")

    metrics: dict[str, Any] = {
        "n_groups": stats.used,
        "groups_eligible": stats.eligible,
        "instructions_with_2plus_hard": stats.with_two_hard,
        "group_sizes": {str(k): v for k, v in sorted(stats.sizes.items())},
        "scorer": "http" if params.scoring.rm_url else "in-process",
    }
    if groups:
        scorer.score([(groups[0].responses[0], groups[0].constraints[0].get("description", ""))])  # warm-up, untimed
    rm_results = score_groups(groups, scorer.score)
    rm = agreement(groups, rm_results)
    # Groups from instructions the RM never trained on are the fair test; report them apart.
    heldout = _rm_heldout_parents(ctx.root / "rm")
    fresh = [i for i, g in enumerate(groups) if heldout is not None and g.instruction_id in heldout]
    rm_fresh = agreement([groups[i] for i in fresh], [rm_results[i] for i in fresh])
    metrics.update({
        "kendall_tau": rm["kendall_tau"],
        "position_consistency": rm["position_consistency"],
        "rm_truth_accuracy": rm["truth_accuracy"],
        "rm_pairs": rm["pairs"],
        "n_groups_rm_heldout": len(fresh) if heldout is not None else None,
        "kendall_tau_rm_heldout": rm_fresh["kendall_tau"],
        "position_consistency_rm_heldout": rm_fresh["position_consistency"],
    })

    judged = groups[:max(0, params.scoring.judge_groups)]
    rm_judged = agreement(judged, rm_results[:len(judged)])
    judge_summary: dict[str, Any] = {"groups": 0}
    judge_unparsable = None
    judge_results: list[GroupScores] = []
    if judged:
        from sif_lib.judge import GenerativeJudge

        judge = GenerativeJudge.from_params(params)
        say(f"judging {len(judged)} groups with a generative judge on {params.model.policy}")
        judge.score([(judged[0].responses[0], judged[0].constraints[0].get("description", ""))])  # warm-up, untimed
        judge.unparsable = judge.judged = 0
        judge_results = score_groups(judged, judge.score)
        judge_summary = agreement(judged, judge_results)
        judge_unparsable = judge.unparsable
    ratio = None
    if judge_summary.get("seconds_per_group") and rm_judged["seconds_per_group"]:
        ratio = judge_summary["seconds_per_group"] / rm_judged["seconds_per_group"]
    metrics.update({
        "judge_groups": len(judged),
        "judge_backbone": params.model.policy if judged else None,
        "rm_seconds_per_group": rm_judged["seconds_per_group"],
        "judge_seconds_per_group": judge_summary.get("seconds_per_group"),
        "ratio": ratio,
        "rm_pairs_per_second": rm_judged["pairs_per_second"],
        "judge_pairs_per_second": judge_summary.get("pairs_per_second"),
        # On the judged groups only, so that RM and judge are compared on the same pairs.
        "rm_truth_accuracy_judged": rm_judged["truth_accuracy"],
        "judge_truth_accuracy": judge_summary.get("truth_accuracy"),
        "rm_kendall_tau_judged": rm_judged["kendall_tau"],
        "judge_kendall_tau": judge_summary.get("kendall_tau"),
        "rm_position_consistency_judged": rm_judged["position_consistency"],
        "judge_position_consistency": judge_summary.get("position_consistency"),
        "judge_pairs": judge_summary.get("pairs", 0),
        "judge_unparsable": judge_unparsable,
        "groups": [_group_record(g, r, judge_results[i] if i < len(judge_results) else None,
                                 None if heldout is None else g.instruction_id in heldout)
                   for i, (g, r) in enumerate(zip(groups, rm_results))],
    })
    if not groups:
        metrics["note"] = ("no instruction has 2+ hard constraints with responses that satisfy different numbers of "
                           "them; agreement figures are undefined for this run")
    ctx.write_metrics(STAGE, metrics)
    return metrics


def _rm_heldout_parents(rm_dir: Path) -> set[str] | None:
    """Instructions held out of the RM's training, from its ``sif_rm.json``; None when unknown."""
    import json

    try:
        meta = json.loads((rm_dir / "sif_rm.json").read_text())
        parents = meta["data"]["eval_parents"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return set(parents) if isinstance(parents, list) else None


def _group_record(g: Group, rm: GroupScores, judge: GroupScores | None, rm_heldout: bool | None) -> dict:
    return {
        "instruction_id": g.instruction_id,
        "rm_heldout": rm_heldout,
        "hard_constraints": [c.get("id") for c in g.constraints],
        "sources": g.sources,
        "truth": g.truth,
        "rm_scores": [round(s, 4) for s in rm.response_scores],
        "rm_tau": kendall_tau_b(g.truth, rm.response_scores),
        "judge_scores": [round(s, 4) for s in judge.response_scores] if judge else None,
        "candidates": g.candidates,
    }


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "n/a"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def ranking_table(metrics: dict):
    """Kendall tau, position consistency and truth accuracy of each scorer, next to the paper's Table 6 row."""
    import pandas as pd

    rows = [
        {"scorer": f"reward model, all {metrics['n_groups']} groups", "Kendall tau": metrics["kendall_tau"],
         "position consistency": metrics["position_consistency"], "pair accuracy vs verifier": metrics["rm_truth_accuracy"]},
        {"scorer": f"reward model, {metrics.get('n_groups_rm_heldout') or 0} groups held out of its training",
         "Kendall tau": metrics.get("kendall_tau_rm_heldout"),
         "position consistency": metrics.get("position_consistency_rm_heldout"), "pair accuracy vs verifier": None},
        {"scorer": f"reward model, {metrics['judge_groups']} judged groups", "Kendall tau": metrics["rm_kendall_tau_judged"],
         "position consistency": metrics["rm_position_consistency_judged"],
         "pair accuracy vs verifier": metrics["rm_truth_accuracy_judged"]},
        {"scorer": f"generative judge, {metrics['judge_groups']} judged groups", "Kendall tau": metrics["judge_kendall_tau"],
         "position consistency": metrics["judge_position_consistency"],
         "pair accuracy vs verifier": metrics["judge_truth_accuracy"]},
        {"scorer": "paper: constraint-wise binary RM (human truth)", "Kendall tau": 0.612,
         "position consistency": 0.834, "pair accuracy vs verifier": None},
    ]
    return pd.DataFrame(rows).set_index("scorer").map(_fmt)


def latency_table(metrics: dict):
    """Seconds per group and pairs per second of the RM and the judge on the same groups."""
    import pandas as pd

    rows = [
        {"scorer": "reward model", "seconds per group": metrics["rm_seconds_per_group"],
         "pairs per second": metrics["rm_pairs_per_second"], "unparsable verdicts": None},
        {"scorer": "generative judge", "seconds per group": metrics["judge_seconds_per_group"],
         "pairs per second": metrics["judge_pairs_per_second"], "unparsable verdicts": metrics["judge_unparsable"]},
        {"scorer": "judge / RM time ratio", "seconds per group": metrics["ratio"], "pairs per second": None,
         "unparsable verdicts": None},
    ]
    return pd.DataFrame(rows).set_index("scorer").map(_fmt)


def groups_table(metrics: dict):
    """One row per group: truth counts and each scorer's response scores."""
    import pandas as pd

    return pd.DataFrame([{
        "instruction": g["instruction_id"], "RM held-out": g.get("rm_heldout"), "responses": ", ".join(g["sources"]), "satisfied (truth)": g["truth"],
        "RM score": g["rm_scores"], "RM tau": _fmt(g["rm_tau"]), "judge score": g["judge_scores"],
    } for g in metrics.get("groups", [])])
