"""Stage 06 (notebook 06): GRPO on the composite self-supervised reward, with a held-out probe before and after.

The probe scores a fixed set of held-out curriculum prompts with the held-out scorer before training; training
runs in this process, or through ``accelerate launch`` when ``grpo.num_processes > 1`` (a Jupyter kernel cannot
host multi-process training); an adapter may be merged; the probe runs again on the trained policy, and the two
are compared pairwise. The logic is the :mod:`sif_lib.grpo` package.
"""

from __future__ import annotations

import time

from sif_lib.core.io import read_json, read_jsonl
from sif_lib.evaluation.thinking import compare_thinking, think_stats
from sif_lib.grpo.config import check_params
from sif_lib.grpo.launch import launch_command, run_streaming
from sif_lib.grpo.policy_export import export_merged, remove_stale_outputs
from sif_lib.grpo.probe import probe_comparison, probe_delta, probe_items, run_probe
from sif_lib.grpo.series import series_from_history, slope, timing, window_means
from sif_lib.grpo.trainer import train_grpo
from sif_lib.policy import models
from sif_lib.policy.answers import base_policy, grpo_dir, trained_policy
from sif_lib.reward_model.scorer import RewardScorer
from sif_lib.rm_service.clients import make_scorer
from sif_lib.runner import tracking
from sif_lib.runner.runs import RunContext
from sif_lib.runner.stage_table import stage_of_module

STAGE = stage_of_module(__name__)


def run(ctx: RunContext, echo=print) -> dict:
    """Probe before, train (in-process or via ``accelerate launch``), merge, probe after, metrics."""
    params = ctx.params
    g = params.grpo
    check_params(params)
    ctx.require("data", "curriculum.jsonl")
    ctx.require("data", "reasoning.jsonl")
    out = grpo_dir(ctx.root)
    out.mkdir(parents=True, exist_ok=True)
    began = time.perf_counter()
    scorer = make_scorer(params, ctx.root)
    # The same decoder before and after: an adapter run is probed with transformers on both sides.
    backend = params.rollouts.backend if (g.finetune == "full" or g.merge_adapter) else "hf"

    probe = probe_items(ctx)
    before = None
    if probe:
        echo(f"probe before training: {len(probe)} held-out prompts")
        before, _ = run_probe(ctx, "before", probe, scorer, base_policy(params), backend=backend, echo=echo)

    if g.num_processes > 1:
        # The launched processes load their own reward model; this one must not hold GPU memory meanwhile.
        scorer = None
        models.release_memory()
        (out / "train_result.json").unlink(missing_ok=True)
        cmd = launch_command(ctx)
        echo("launching: " + " ".join(cmd))
        run_streaming(cmd)
        result = read_json(out / "train_result.json", "the training launch wrote no result")
        params.mark_read(result.get("params_read", []))
        if probe:
            scorer = make_scorer(params, ctx.root)
    else:
        result = train_grpo(ctx, scorer=scorer)

    if g.merge_adapter and g.finetune != "full":
        echo("merging the adapter into the base policy")
        export_merged(ctx)
    remove_stale_outputs(out, g)

    after = None
    if probe:
        echo("probe after training")
        after, _ = run_probe(ctx, "after", probe, scorer, trained_policy(ctx.root, params), backend=backend,
                             echo=echo)

    series = series_from_history(result["log_history"])
    metrics = {
        "steps": result["global_step"],
        "max_steps": result["max_steps"],
        "resumed_from": result["resumed_from"],
        "steps_this_session": result["steps_this_session"],
        "wall_seconds": round(time.perf_counter() - began, 2),
        "train_seconds": result["train_seconds"],
        "seconds_per_step": result["seconds_per_step"],
        "settings": {"curriculum": g.curriculum, "staged_boundaries": g.staged_boundaries,
                     "soft_reward": g.soft_reward, "hard_reward": g.hard_reward,
                     "repetitive_penalty": g.repetitive_penalty, "degenerate_gate": g.degenerate_gate,
                     "degenerate_reward": g.degenerate_reward, "greedy_members": g.greedy_members,
                     "finetune": g.finetune,
                     "answer_mode": params.model.answer_mode, "policy": params.model.policy,
                     "num_processes": g.num_processes, "use_vllm": g.use_vllm, "beta": g.beta,
                     "learning_rate": g.learning_rate, "num_generations": g.num_generations,
                     "max_completion_length": g.max_completion_length},
        "layout": result["layout"],
        "precision": result.get("precision"),
        "data": result["data"],
        "timing": timing(series),
        "trend": window_means(series),
        "reward_slope": slope(series, "reward"),
        "series": series,
        "probe": {"size": len(probe), "before": before, "after": after, "delta": probe_delta(before, after),
                  **(probe_comparison(out, params.model.answer_mode, check_scorer(ctx),
                                      params.reward_model.bootstrap, params.run.seed, items=probe) if before and after
                     else {"hard_flips": None, "repetition": None, "degenerate": None, "soft_check": None}),
                  "thinking": probe_thinking(out) if before and after else None},
        "artifacts": {name: f"grpo/{name}" for name in ("adapter", "merged", "model") if (out / name).is_dir()},
        # The runner copies this into the stage's record in manifest.json.
        "manifest_record": {"grpo_config": read_json(out / "grpo_config.json", f"rerun stage {STAGE.name}")},
    }
    ctx.write_metrics(STAGE.name, metrics)
    points = probe_points(metrics)
    if points:
        tracking.write_scalars(params, tracking.log_dir(ctx.root, STAGE.name) / "probe", points)
    return metrics


def probe_points(metrics: dict) -> dict[int, dict]:
    """The probe's figures as scalars at step 0 (the untrained policy) and at the last step, for TensorBoard:
    reward, hard satisfaction, soft probability and the degenerate share; empty without a probe."""
    probe = metrics["probe"]
    if not (probe["before"] and probe["after"]):
        return {}
    degenerate = probe.get("degenerate") or {}
    return {step: {"probe/reward": side.get("reward"), "probe/hard_satisfaction": side.get("hard_satisfaction"),
                   "probe/soft_prob": side.get("soft_prob"),
                   "probe/degenerate_share": (degenerate.get(name) or {}).get("share")}
            for step, side, name in ((0, probe["before"], "before"), (metrics["steps"], probe["after"], "after"))}


def probe_thinking(out) -> dict:
    """Closed-``</think>`` share and thinking length (words) of the probe's raw completions, before and after."""
    stats = {when: think_stats([row["completion"] for row in read_jsonl(out / f"probe_{when}.jsonl")])
             for when in ("before", "after")}
    return {**stats, "delta": compare_thinking(stats["before"], stats["after"])}


def check_scorer(ctx: RunContext):
    """The check reward model of stage 04 (``rm_check/``, with ``reward_model.check_model``), or None."""
    path = ctx.root / "rm_check"
    if not (path / "config.json").is_file():
        return None
    return RewardScorer.from_dir(path, device=ctx.params.run.device, batch_size=ctx.params.scoring.batch_size)


# ---------------------------------------------------------------------------------------------------------------
# What notebook 06 shows


_COMPONENTS = [("reward", "composite reward"), ("components/hard", "hard (scored)"),
               ("components/hard_verifier", "hard (verifier)"), ("components/soft", "soft"),
               ("components/reasoning_accuracy", "reasoning accuracy"), ("components/no_answer", "no answer"),
               ("components/repetitive", "repetitive share")]


def reward_figure(metrics: dict):
    """Reward and its components per step."""
    import plotly.graph_objects as go  # heavy: only where a figure is drawn

    series = metrics["series"]
    fig = go.Figure()
    for key, label in _COMPONENTS:
        if key in series:
            fig.add_trace(go.Scatter(x=series["step"], y=series[key], mode="lines+markers", name=label,
                                     connectgaps=True))
    fig.update_layout(title="GRPO reward per component", xaxis_title="step", yaxis_title="mean over the batch",
                      yaxis_range=[0, 1.02], height=380)
    return fig


def level_figure(metrics: dict):
    """Composite reward per curriculum level per step (a level absent from a step's batch leaves a gap)."""
    import plotly.graph_objects as go  # heavy: only where a figure is drawn

    series = metrics["series"]
    fig = go.Figure()
    for key in sorted((k for k in series if k.startswith("levels/L")), key=lambda k: int(k.split("L")[-1])):
        fig.add_trace(go.Scatter(x=series["step"], y=series[key], mode="lines+markers", name=key.split("/")[-1],
                                 connectgaps=True))
    fig.update_layout(title="GRPO reward per curriculum level", xaxis_title="step", yaxis_title="mean reward",
                      yaxis_range=[0, 1.02], height=380)
    return fig


def probe_table(metrics: dict):
    """Held-out probe before and after training: overall and per level."""
    import pandas as pd  # heavy: only where a table is shown

    probe = metrics.get("probe") or {}
    before, after = probe.get("before") or {}, probe.get("after") or {}
    rows = []

    def add(label, b, a):
        row = {"set": label, "n": (a or b or {}).get("n")}
        for key in ("reward", "hard_satisfaction", "soft_prob"):
            row[f"{key} before"] = (b or {}).get(key)
            row[f"{key} after"] = (a or {}).get(key)
        rows.append(row)

    add("all", before, after)
    levels = sorted(set(before.get("per_level", {})) | set(after.get("per_level", {})), key=int)
    for level in levels:
        add(f"L{level}", before.get("per_level", {}).get(level), after.get("per_level", {}).get(level))
    return pd.DataFrame(rows).set_index("set").round(3)


def slope_text(fit: dict | None) -> str:
    """``+0.0012 [-0.004, +0.006] per step (+0.03 over the run, n=26)``; "–" for a run without the figure."""
    if not fit:
        return "–"
    lo, hi = fit["per_step_ci95"]
    return f"{fit['per_step']:+.4f} [{lo:+.4f}, {hi:+.4f}] per step ({fit['over_run']:+.3f} over the run, n={fit['n']})"


def degenerate_rows(found: dict | None) -> dict[str, str]:
    """The probe's degenerate answers (:func:`~sif_lib.grpo.probe.probe_degenerate`) as summary lines."""
    if not found:
        return {}

    def share(s: dict) -> str:
        ci = s["share_ci95"]
        return f"{s['degenerate']} of {s['n']}" + (f" [{100 * ci[0]:.1f}%, {100 * ci[1]:.1f}%]" if ci else "")

    f, clean, soft = found["flips"], found["clean"], found["soft_turned_degenerate"]
    return {
        "probe degenerate answers before → after": (
            f"{share(found['before'])} → {share(found['after'])} ({f['became_degenerate']} turned degenerate, "
            f"{f['became_clean']} turned clean; sign test p = {f['sign_test_p']})"),
        "probe hard, pairs with neither answer degenerate": (
            f"{clean['hard_before']} → {clean['hard_after']} ({clean['prompts']} prompts, {clean['gained']} gained / "
            f"{clean['lost']} lost, sign test p = {clean['sign_test_p']})"),
        "probe soft P(adheres) on answers that turned degenerate (must not rise)": (
            f"{soft['before']} → {soft['after']} ({soft['n']} soft constraints on {soft['prompts']} prompts)"),
    }


def summary_table(metrics: dict):
    """The stage's headline figures."""
    import pandas as pd  # heavy: only where a table is shown

    t = metrics.get("trend", {})
    rows = {
        "steps": metrics["steps"],
        "resumed from step": metrics["resumed_from"],
        "seconds per step": metrics["seconds_per_step"],
        "rollout tokens/s": metrics["timing"].get("rollout_tokens_per_second"),
        "curriculum": metrics["settings"]["curriculum"],
        "soft / hard reward": f"{metrics['settings']['soft_reward']} / {metrics['settings']['hard_reward']}",
        "reward, first → last quarter": f"{t.get('reward', {}).get('first')} → {t.get('reward', {}).get('last')}",
        "reward slope per step [95% CI] (change over the run)": slope_text(metrics.get("reward_slope")),
        "probe reward before → after": f"{(metrics['probe']['before'] or {}).get('reward')} → "
                                       f"{(metrics['probe']['after'] or {}).get('reward')}",
    }
    flips = metrics["probe"].get("hard_flips")
    if flips:
        rows["probe hard checks gained / lost"] = (f"{flips['gained']} / {flips['lost']} of {flips['paired']} "
                                                   f"(sign test p = {flips['sign_test_p']})")
    rows.update(degenerate_rows(metrics["probe"].get("degenerate")))
    repetition = metrics["probe"].get("repetition")
    if repetition:
        fluent = repetition["fluent"]
        rows["probe repetitive answers before → after"] = (f"{repetition['before']['repetitive']} → "
                                                           f"{repetition['after']['repetitive']} of "
                                                           f"{repetition['after']['n']}")
        rows["probe hard, non-repetitive pairs before → after"] = (
            f"{fluent['hard_before']} → {fluent['hard_after']} ({fluent['prompts']} prompts, "
            f"{fluent['gained']} gained / {fluent['lost']} lost)")
    soft = metrics["probe"].get("soft_check")
    if soft and soft.get("pairs"):
        for name, key in (("training RM", "training_rm"), ("check RM (never trained against)", "check_rm")):
            s = soft[key]
            ci = s["delta_ci95"]
            rows[f"probe soft P(adheres), {name}"] = (
                f"{s['before']} → {s['after']} (Δ {s['delta']:+.4f}, 95% CI "
                f"{'n/a' if not ci else f'[{ci[0]:+.4f}, {ci[1]:+.4f}]'}, Wilcoxon p = {s['wilcoxon_p']}; "
                f"{soft['pairs']} pairs)")
    return pd.DataFrame({"value": [str(v) for v in rows.values()]}, index=list(rows))
