"""Stage 05 (notebook 05): how well the reward model ranks responses, and what it costs against a judge.

Ranking agreement with the verifier's truth (Kendall tau-b, position consistency; the paper's Table 6), on
groups built from the run's rollouts (:mod:`sif_lib.stages.s05_analysis.ranking`), and the same groups scored by a
generative judge on the policy's backbone (:mod:`sif_lib.stages.s05_analysis.judge`) for the latency comparison.
Both sit beside this module, in :mod:`sif_lib.stages.s05_analysis`. Writes only metrics.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from sif_lib.core.stats import kendall_tau_b
from sif_lib.rm_service.clients import make_scorer
from sif_lib.runner.runs import RunContext
from sif_lib.runner.stage_table import stage_of_module
from sif_lib.stages.s05_analysis.judge import GenerativeJudge
from sif_lib.stages.s05_analysis.ranking import (
    Group,
    GroupScores,
    agreement,
    build_groups,
    load_run_responses,
    score_groups,
)

STAGE = stage_of_module(__name__)


def run(ctx: RunContext, scorer: Any = None, progress: bool = True) -> dict:
    """Ranking agreement of the RM with the verifier, and its cost against a generative judge."""
    params = ctx.params
    instructions, responses = load_run_responses(ctx)
    sc = params.scoring
    groups, stats = build_groups(instructions, responses, sc.n_groups, params.model.answer_mode,
                                 group_size=sc.group_size)
    boot = {"n_resamples": sc.bootstrap, "seed": params.run.seed}
    scorer = scorer or make_scorer(params, ctx.root)
    say = print if progress else (lambda *a, **k: None)
    say(f"{stats.used} ranking groups (of {stats.eligible} eligible; sizes {dict(sorted(stats.sizes.items()))})")

    metrics: dict[str, Any] = {
        "n_groups": stats.used,
        "groups_eligible": stats.eligible,
        "instructions_with_2plus_hard": stats.with_two_hard,
        "group_size": sc.group_size,
        "group_sizes": {str(k): v for k, v in sorted(stats.sizes.items())},
        "group_distinct_truth_counts": _distinct_counts(groups),
        "scorer": "http" if params.scoring.rm_url else "in-process",
    }
    if groups:
        scorer.score([(groups[0].responses[0], groups[0].constraints[0].get("description", ""))])  # warm-up, untimed
    rm_results = score_groups(groups, scorer.score)
    rm = agreement(groups, rm_results, **boot)
    # Groups from instructions the RM never trained on are the fair test; report them apart.
    heldout = _rm_heldout_parents(ctx.root / "rm")
    fresh = [i for i, g in enumerate(groups) if heldout is not None and g.instruction_id in heldout]
    rm_fresh = agreement([groups[i] for i in fresh], [rm_results[i] for i in fresh], **boot)
    metrics.update({
        "kendall_tau": rm["kendall_tau"],
        "kendall_tau_ci95": rm["kendall_tau_ci95"],
        "position_consistency": rm["position_consistency"],
        "position_consistency_ci95": rm["position_consistency_ci95"],
        "rm_truth_accuracy": rm["truth_accuracy"],
        "rm_pairs": rm["pairs"],
        "n_groups_rm_heldout": len(fresh) if heldout is not None else None,
        "kendall_tau_rm_heldout": rm_fresh["kendall_tau"],
        "kendall_tau_rm_heldout_ci95": rm_fresh["kendall_tau_ci95"],
        "position_consistency_rm_heldout": rm_fresh["position_consistency"],
    })

    judged = groups[:max(0, params.scoring.judge_groups)]
    rm_judged = agreement(judged, rm_results[:len(judged)], **boot)
    judge_summary: dict[str, Any] = {"groups": 0}
    judge_unparsable = None
    judge_results: list[GroupScores] = []
    if judged:
        judge = GenerativeJudge.from_params(params)
        say(f"judging {len(judged)} groups with a generative judge on {params.model.policy}")
        judge.score([(judged[0].responses[0], judged[0].constraints[0].get("description", ""))])  # warm-up, untimed
        judge.unparsable = judge.judged = 0
        judge_results = score_groups(judged, judge.score)
        judge_summary = agreement(judged, judge_results, **boot)
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
        "rm_kendall_tau_judged_ci95": rm_judged["kendall_tau_ci95"],
        "judge_kendall_tau": judge_summary.get("kendall_tau"),
        "judge_kendall_tau_ci95": judge_summary.get("kendall_tau_ci95"),
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
    ctx.write_metrics(STAGE.name, metrics)
    return metrics


def _distinct_counts(groups: list[Group]) -> dict[str, int]:
    """How many groups have 2, 3, ... distinct truth counts: how far they are from the paper's 1..5 spread."""
    return dict(sorted(Counter(str(len(set(g.truth))) for g in groups).items()))


def _rm_heldout_parents(rm_dir: Path) -> set[str] | None:
    """Instructions held out of the RM's training, from its ``sif_rm.json``; None when unknown."""
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


# ---------------------------------------------------------------------------------------------------------------
# What notebook 05 shows


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "n/a"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def _ci(interval: Any) -> str:
    return f"[{interval[0]:.3f}, {interval[1]:.3f}]" if interval else "n/a"


def ranking_table(metrics: dict):
    """Kendall tau, position consistency and truth accuracy of each scorer, next to the paper's Table 6 row."""
    import pandas as pd  # heavy: only where a table is shown

    def row(scorer, tau, tau_ci, consistency, accuracy):
        return {"scorer": scorer, "Kendall tau": tau, "tau 95% CI": _ci(tau_ci), "position consistency": consistency,
                "pair accuracy vs verifier": accuracy}

    m = metrics
    rows = [
        row(f"reward model, all {m['n_groups']} groups", m["kendall_tau"], m.get("kendall_tau_ci95"),
            m["position_consistency"], m["rm_truth_accuracy"]),
        row(f"reward model, {m.get('n_groups_rm_heldout') or 0} groups held out of its training",
            m.get("kendall_tau_rm_heldout"), m.get("kendall_tau_rm_heldout_ci95"),
            m.get("position_consistency_rm_heldout"), None),
        row(f"reward model, {m['judge_groups']} judged groups", m["rm_kendall_tau_judged"],
            m.get("rm_kendall_tau_judged_ci95"), m["rm_position_consistency_judged"], m["rm_truth_accuracy_judged"]),
        row(f"generative judge, {m['judge_groups']} judged groups", m["judge_kendall_tau"],
            m.get("judge_kendall_tau_ci95"), m["judge_position_consistency"], m["judge_truth_accuracy"]),
        row("paper: constraint-wise binary RM (human truth)", 0.612, None, 0.834, None),
    ]
    return pd.DataFrame(rows).set_index("scorer").map(_fmt)


def latency_table(metrics: dict):
    """Seconds per group and pairs per second of the RM and the judge on the same groups."""
    import pandas as pd  # heavy: only where a table is shown

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
    import pandas as pd  # heavy: only where a table is shown

    return pd.DataFrame([{
        "instruction": g["instruction_id"], "RM held-out": g.get("rm_heldout"),
        "responses": ", ".join(g["sources"]), "satisfied (truth)": g["truth"],
        "RM score": g["rm_scores"], "RM tau": _fmt(g["rm_tau"]), "judge score": g["judge_scores"],
    } for g in metrics.get("groups", [])])
