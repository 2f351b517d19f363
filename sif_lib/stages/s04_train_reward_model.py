"""Stage 04 (notebook 04): train the constraint-wise binary reward model on the pseudo-labels.

Writes ``rm/`` (the model, its tokenizer, ``sif_rm.json`` and a model card). The logic is
:mod:`sif_lib.reward.training`; its input is :mod:`sif_lib.reward.rm_input`.
"""

from __future__ import annotations

import math

from sif_lib.core.stages import stage_of_module
from sif_lib.reward.training import fmt as _fmt
from sif_lib.reward.training import load_pairs, train_reward_model

STAGE = stage_of_module(__name__)


def run(ctx, progress: bool = True) -> dict:
    """Read ``data/pseudo_labels.jsonl``, write ``rm/`` and ``metrics/04_train_reward_model.json``."""
    rows = load_pairs(ctx.require("data", "pseudo_labels.jsonl"))
    metrics = train_reward_model(rows, ctx.path("rm"), ctx.params, progress=progress)
    ctx.write_metrics(STAGE.name, metrics)
    return metrics


# ---------------------------------------------------------------------------------------------------------------
# What notebook 04 shows


def metrics_table(metrics: dict):
    """The headline figures as a two-column table."""
    import pandas as pd  # heavy: only where a table is shown

    counts = metrics["counts"]
    rows = [
        ("backbone / mode", f"{metrics['backbone']} / {metrics['mode']}"),
        ("training pairs (instructions)", f"{counts['train']['pairs']} ({counts['train']['parents']})"),
        ("held-out pairs (instructions)", f"{counts['eval']['pairs']} ({counts['eval']['parents']})"),
        ("hard-constraint share of pairs", _fmt(counts["all"]["hard_share"])),
        ("positive share (label balance)", _fmt(counts["all"]["positive_share"])),
        ("held-out accuracy", _fmt(metrics["eval_accuracy"])),
        ("held-out ROC-AUC", _fmt(metrics["eval_auc"])),
        ("held-out ECE", _fmt(metrics["eval_ece"])),
        ("held-out accuracy, soft pairs", _fmt(metrics["eval_by_kind"]["soft"]["accuracy"])),
        ("held-out accuracy, hard pairs (pseudo-labels)", _fmt(metrics["eval_by_kind"]["hard"]["accuracy"])),
        (f"hard pairs vs verifier truth ({metrics['hard_truth_pairs']})", _fmt(metrics["hard_truth_accuracy"])),
        ("pseudo-label = verifier on those pairs", _fmt(metrics["hard_pseudo_label_agreement"])),
        ("train steps / seconds", f"{metrics['train_steps']} / {metrics['train_seconds']}"),
        ("final train loss", _fmt(metrics["final_train_loss"], 4)),
    ]
    return pd.DataFrame(rows, columns=["metric", "value"]).set_index("metric")


def reliability_figure(metrics: dict):
    """Reliability diagram: observed share of label 1 against mean predicted probability per bin."""
    import plotly.graph_objects as go  # heavy: only where a figure is drawn

    bins = [b for b in metrics["reliability"] if b["count"]]
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="perfect calibration",
                             line=dict(dash="dash", color="gray")))
    fig.add_trace(go.Scatter(
        x=[b["mean_prob"] for b in bins], y=[b["positive_rate"] for b in bins], mode="lines+markers",
        name="reward model", marker=dict(size=[6 + 24 * math.sqrt(b["count"] / max(1, metrics["eval_pairs"]))
                                              for b in bins]),
        text=[f"[{b['lower']:.1f}, {b['upper']:.1f}): {b['count']} pairs" for b in bins],
        hovertemplate="%{text}<br>mean P=%{x:.3f}<br>share of 1s=%{y:.3f}<extra></extra>"))
    fig.update_layout(title=f"Held-out reliability (ECE {_fmt(metrics['eval_ece'])})",
                      xaxis_title="mean predicted P(adheres)", yaxis_title="share labelled 1",
                      xaxis_range=[0, 1], yaxis_range=[0, 1], width=560, height=460)
    return fig


def loss_figure(metrics: dict):
    import plotly.graph_objects as go  # heavy: only where a figure is drawn

    curve = metrics["loss_curve"]
    fig = go.Figure(go.Scatter(x=[p["step"] for p in curve], y=[p["loss"] for p in curve], mode="lines+markers",
                               name="train loss"))
    fig.update_layout(title="Training loss (cross-entropy)", xaxis_title="optimizer step", yaxis_title="loss",
                      width=640, height=380)
    return fig
