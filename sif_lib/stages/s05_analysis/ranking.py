"""Ranking agreement of reward scorers with the verifier's truth (stage 05, after the paper's Table 6).

The paper builds 50 groups, each an instruction with 5 constraints and 5 responses that satisfy 1..5 of them,
ranks each group's responses with a scorer, and compares that ranking with the human one. Here the truth
comes from the hard-constraint verifiers, which needs no annotator:

* **Groups.** For an instruction with k >= 2 hard constraints, every distinct response the policy wrote on its
  curriculum ladder (levels L0..Ln, all samples; stage 03's rollouts and pseudo-label responses) is checked
  against those k constraints. A group takes ``scoring.group_size`` responses (5, as in the paper): first one
  per distinct number of satisfied constraints, then more, round-robin over the counts, so that the group spreads
  as widely as the rollouts allow. The paper's 5 responses satisfy 1..5 of 5 constraints, so its truth ranking
  has no ties; here an instruction has 2-4 hard constraints and the policy's responses rarely span them all, so
  a group's truth counts can tie (Kendall tau-b handles ties in both rankings). An instruction needs at least
  two distinct counts and ``group_size`` distinct responses; groups with more distinct counts are used first,
  and ``scoring.n_groups`` caps the number. (``group_size: 0`` keeps one response per distinct count instead:
  no truth ties, smaller groups.)
* **A scorer's ranking.** A response's score is the mean, over the instruction's hard constraints, of the
  scorer's per-constraint score: the RM probability (the paper's R if the RM judged hard constraints too) or
  the judge's 0/1 verdict.
* **Kendall tau-b** between the scorer's scores and the truth counts, averaged over groups. A group where the
  scorer gives every response the same score has an undefined tau; it counts as 0 (no ordering information).
  Its 95% interval is a percentile bootstrap over groups (:func:`~sif_lib.core.stats.mean_ci`).
* **Position consistency**: the share of responses whose rank position under the scorer equals their position
  under the truth. Positions are 1-based in descending order; tied scores share the mean of the positions they
  span (so a tie never matches a distinct truth position: a scorer gets no credit for failing to separate).

The groups' responses may have been RM training pairs (stage 03 makes pairs from the same rollouts), which the
paper's separate test set avoids. The figures are therefore also reported on the groups whose instruction was
held out of the RM's training (``rm/sif_rm.json`` lists those instructions).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from sif_lib.constraints import check_constraints, extract_answer
from sif_lib.core.errors import InputError
from sif_lib.core.io import iter_jsonl
from sif_lib.core.stats import kendall_tau_b, mean_ci, position_consistency
from sif_lib.runner import progress
from sif_lib.runner.runs import RunContext
from sif_lib.runner.stage_table import producer

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
    return check_constraints


def _pick(by_count: dict[int, list[tuple[str, str, list[bool]]]], size: int) -> list[tuple[str, str, list[bool]]]:
    """``size`` responses, round-robin over the satisfied counts (highest count first, level order within a
    count), sorted by count descending; all one-per-count picks when ``size`` is 0."""
    counts = sorted(by_count, reverse=True)
    if size <= 0:
        return [by_count[c][0] for c in counts]
    picked: list[tuple[int, tuple[str, str, list[bool]]]] = []
    depth = 0
    while len(picked) < size:
        for c in counts:
            if depth < len(by_count[c]) and len(picked) < size:
                picked.append((c, by_count[c][depth]))
        depth += 1
    return [item for _, item in sorted(picked, key=lambda p: -p[0])]


def build_groups(instructions: Iterable[dict], responses: dict[str, list[tuple[str, str]]], n_groups: int,
                 answer_mode: str = "after_think", check: Callable | None = None,
                 group_size: int = 0) -> tuple[list[Group], GroupStats]:
    """Ranking groups from instructions (with their constraints) and ``{instruction id: [(source, response)]}``.

    ``check(response, hard_constraints, answer_mode) -> list[bool]`` defaults to the hard-constraint verifiers.
    ``group_size`` responses per group (see the module docstring); 0 keeps one per distinct count.
    """
    check = check or _default_check()
    stats = GroupStats()
    eligible: list[Group] = []
    for inst in instructions:
        stats.instructions += 1
        hard = [c for c in inst.get("constraints", []) if c.get("kind") == "hard"]
        if len(hard) < 2:
            continue
        stats.with_two_hard += 1
        by_count: dict[int, list[tuple[str, str, list[bool]]]] = {}
        seen = set()
        for source, response in responses.get(inst["id"], []):
            if response in seen:
                continue
            seen.add(response)
            try:
                verdicts = [bool(v) for v in check(response, hard, answer_mode)]
            except ValueError as err:  # an unknown constraint id or bad arguments in the instructions file
                raise InputError(f"instruction {inst['id']}: {err}") from None
            by_count.setdefault(sum(verdicts), []).append((source, response, verdicts))
        if len(by_count) < 2 or len(seen) < group_size:
            continue
        kept = _pick(by_count, group_size)
        eligible.append(Group(
            instruction_id=inst["id"], constraints=hard, responses=[r for _, r, _ in kept],
            answers=[extract_answer(r, answer_mode) for _, r, _ in kept], sources=[s for s, _, _ in kept],
            satisfied=[v for _, _, v in kept], candidates=len(seen)))
    stats.eligible = len(eligible)
    eligible.sort(key=lambda g: (-len(set(g.truth)), -len(g.responses), g.instruction_id))
    used = eligible[:max(0, n_groups)]
    stats.used = len(used)
    for g in used:
        stats.sizes[len(g.responses)] = stats.sizes.get(len(g.responses), 0) + 1
    return used, stats


def load_run_responses(ctx: RunContext) -> tuple[list[dict], dict[str, list[tuple[str, str]]]]:
    """Instructions and every response the run holds for them (rollouts and pseudo-label responses)."""
    inst_path = ctx.require("data", "instructions.jsonl")
    instructions = []
    for number, row in enumerate(iter_jsonl(inst_path), start=1):
        if not isinstance(row.get("id"), str) or not isinstance(row.get("constraints"), list):
            raise InputError(f"{inst_path}:{number}: keys 'id' (string) and 'constraints' (list) are required")
        instructions.append(row)
    responses: dict[str, list[tuple[str, str]]] = {}
    rollouts = ctx.root / "data" / "rollouts.jsonl"
    labels = ctx.root / "data" / "pseudo_labels.jsonl"
    if not rollouts.is_file() and not labels.is_file():
        raise InputError(f"{rollouts}: missing input: run stage {producer('data/rollouts.jsonl').name} first")
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


def score_groups(groups: Sequence[Group],
                 score_pairs: Callable[[list[tuple[str, str]]], list[float]]) -> list[GroupScores]:
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
        progress.update(len(results), len(groups), "groups")
    return results


def agreement(groups: Sequence[Group], results: Sequence[GroupScores], threshold: float = 0.5,
              n_resamples: int = 1000, seed: int = 0) -> dict:
    """Mean Kendall tau-b (with its bootstrap 95% interval over groups), mean position consistency and per-pair
    accuracy against the verifier."""
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
        "kendall_tau_ci95": mean_ci(taus, n_resamples, seed),
        "position_consistency": sum(consistencies) / n if n else None,
        "position_consistency_ci95": mean_ci(consistencies, n_resamples, seed),
        "truth_accuracy": correct / total if total else None,
        "pairs": total,
        "groups": n,
        "seconds_per_group": sum(seconds) / n if n else None,
        "pairs_per_second": total / sum(seconds) if n and sum(seconds) > 0 else None,
    }
