"""Stage 04 (notebook 04): train the constraint-wise binary reward model on the pseudo-labels.

Writes ``rm/`` (the model, its tokenizer, ``sif_rm.json``, a model card, ``eval_scores.jsonl`` with each held-out
pair's probability and ``degenerate_scores.jsonl`` with those of held-out clean answers and their degenerate
variants), and with ``reward_model.check_model`` a second model trained on the other half of the instructions in
``rm_check/``. The logic is :mod:`sif_lib.reward_model.training`; its input is
:mod:`sif_lib.reward_model.rm_input`.
"""

from __future__ import annotations

import math
import shutil

from sif_lib.reward_model.degenerate_negatives import summary_rows
from sif_lib.reward_model.training import fmt as _fmt
from sif_lib.reward_model.training import load_pairs, train_reward_model
from sif_lib.runner import tracking
from sif_lib.runner.runs import RunContext
from sif_lib.runner.stage_table import stage_of_module

STAGE = stage_of_module(__name__)


def run(ctx: RunContext, progress: bool = True) -> dict:
    """Read ``data/pseudo_labels.jsonl``, write ``rm/`` and ``metrics/04_train_reward_model.json``."""
    rows = load_pairs(ctx.require("data", "pseudo_labels.jsonl"))
    check_dir = ctx.path("rm_check")
    if not ctx.params.reward_model.check_model and check_dir.exists():
        shutil.rmtree(check_dir)  # an earlier run's check model would no longer match this RM's data
    metrics = train_reward_model(rows, ctx.path("rm"), ctx.params, progress=progress,
                                 echo=print if progress else (lambda *_: None), check_dir=check_dir,
                                 log_dir=tracking.log_dir(ctx.root, STAGE.name))
    ctx.write_metrics(STAGE.name, metrics)
    return metrics


# ---------------------------------------------------------------------------------------------------------------
# What notebook 04 shows


def metrics_table(metrics: dict):
    """The headline figures as a two-column table."""
    import pandas as pd  # heavy: only where a table is shown

    counts = metrics["counts"]

    def ci(value, interval):
        return _fmt(value) + (f" [{interval[0]:.3f}, {interval[1]:.3f}]" if interval else "")

    rows = [
        ("backbone / method", f"{metrics['backbone']} / {metrics.get('method', 'finetune')}"
                              + (f" ({metrics['mode']})" if metrics.get("mode") else "")),
        ("labels of hard pairs", metrics.get("hard_labels", "pseudo")),
        ("training pairs (instructions)", f"{counts['train']['pairs']} ({counts['train']['parents']})"),
        ("held-out pairs (instructions)", f"{counts['eval']['pairs']} ({counts['eval']['parents']})"),
        ("hard-constraint share of pairs", _fmt(counts["all"]["hard_share"])),
        ("positive share (label balance)", _fmt(counts["all"]["positive_share"])),
        ("held-out accuracy", _fmt(metrics["eval_accuracy"])),
        ("held-out ROC-AUC vs pseudo-labels (95% CI)", ci(metrics["eval_auc"], metrics.get("eval_auc_ci95"))),
        ("soft pairs: ROC-AUC vs pseudo-labels", ci(metrics["eval_by_kind"]["soft"]["auc"],
                                                     metrics["eval_by_kind"]["soft"].get("auc_ci95"))),
        (f"hard pairs: ROC-AUC vs verifier truth ({metrics['hard_truth_pairs']})",
         ci(metrics.get("hard_truth_auc"), metrics.get("hard_truth_auc_ci95"))),
        ("held-out ECE", _fmt(metrics["eval_ece"])),
        ("held-out accuracy, soft pairs", _fmt(metrics["eval_by_kind"]["soft"]["accuracy"])),
        ("held-out accuracy, hard pairs (pseudo-labels)", _fmt(metrics["eval_by_kind"]["hard"]["accuracy"])),
        (f"hard pairs vs verifier truth ({metrics['hard_truth_pairs']})", _fmt(metrics["hard_truth_accuracy"])),
        ("pseudo-label = verifier on those pairs", _fmt(metrics["hard_pseudo_label_agreement"])),
        ("train steps / seconds", f"{metrics['train_steps']} / {metrics['train_seconds']}"),
        ("final train loss (ln 2 = 0.693 is chance)", _fmt(metrics["final_train_loss"], 4)),
        ("lowest loss a truth-knowing model could reach on the hard pairs' labels",
         _fmt((metrics.get("hard_label_noise_floor") or {}).get("loss_floor"), 4)),
        ("degenerate negatives added to training", (metrics.get("degenerate_negatives") or {}).get("added", 0)),
    ]
    degenerate = metrics.get("degenerate_eval") or {}
    for kind in ("soft", "hard"):
        block = degenerate.get(kind)
        if block:
            rows.append((f"{kind} pairs: ROC-AUC clean vs degenerate variant ({block['pairs']})",
                         ci(block["auc"], block["auc_ci95"])))
            rows.append((f"{kind} pairs: same, unseen kinds only ({block['unseen']['pairs']})",
                         ci(block["unseen"]["auc"], block["unseen"]["auc_ci95"])))
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


def learning_curve_figure(metrics: dict):
    """Held-out ROC-AUC against the number of training pairs: on hard pairs against the verifier's truth, on soft
    pairs against the pseudo-labels, with 95% bootstrap intervals; 0.5 is chance."""
    import plotly.graph_objects as go  # heavy: only where a figure is drawn

    points = metrics.get("learning_curve") or []
    fig = go.Figure()
    for key, name, colour in (("hard_truth_auc", "hard pairs vs verifier truth", "#c0392b"),
                              ("soft_auc", "soft pairs vs pseudo-labels", "#2471a3")):
        shown = [p for p in points if p[key] is not None]
        lows = [p[key] - p[key + "_ci95"][0] if p[key + "_ci95"] else 0 for p in shown]
        highs = [p[key + "_ci95"][1] - p[key] if p[key + "_ci95"] else 0 for p in shown]
        fig.add_trace(go.Scatter(x=[p["pairs"] for p in shown], y=[p[key] for p in shown], name=name,
                                 mode="lines+markers", line_color=colour,
                                 error_y=dict(type="data", array=highs, arrayminus=lows, visible=True)))
    fig.add_hline(y=0.5, line_dash="dot", line_color="#888", annotation_text="chance")
    fig.update_layout(title="Reward model: held-out ROC-AUC by training pairs", xaxis_title="training pairs",
                      xaxis_type="log", yaxis_title="ROC-AUC", yaxis_range=[0.3, 1.0], height=400)
    return fig


def degenerate_table(metrics: dict):
    """Held-out clean answers against their degenerate variants, per constraint kind and variant kind: pairs,
    ROC-AUC (clean = 1) with its 95% interval, and the share of pairs the clean answer wins."""
    import pandas as pd  # heavy: only where a table is shown

    rows = [(kind, name, trained, pairs, _fmt(auc) + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else ""), _fmt(wins))
            for kind, name, trained, pairs, auc, ci, wins in summary_rows(metrics.get("degenerate_eval"))]
    return pd.DataFrame(rows, columns=["constraints", "variant", "trained on", "pairs", "ROC-AUC (95% CI)",
                                       "clean wins"])


def degenerate_figure(metrics: dict):
    """ROC-AUC of clean answers against each kind of degenerate variant, soft and hard constraints, with 95%
    bootstrap intervals; below 0.5 the reward model pays the degenerate text more."""
    import plotly.graph_objects as go  # heavy: only where a figure is drawn

    fig = go.Figure()
    found = metrics.get("degenerate_eval") or {}
    for kind, colour in (("soft", "#2471a3"), ("hard", "#c0392b")):
        block = found.get(kind)
        if not block:
            continue
        shown = [(v, f) for v, f in block["by_variant"].items() if f["auc"] is not None]
        fig.add_trace(go.Bar(
            x=[v + ("" if f["trained"] else " (unseen)") for v, f in shown], y=[f["auc"] for v, f in shown],
            name=f"{kind} constraints", marker_color=colour,
            error_y=dict(type="data", visible=True,
                         array=[f["auc_ci95"][1] - f["auc"] if f["auc_ci95"] else 0 for _, f in shown],
                         arrayminus=[f["auc"] - f["auc_ci95"][0] if f["auc_ci95"] else 0 for _, f in shown])))
    fig.add_hline(y=0.5, line_dash="dot", line_color="#888", annotation_text="chance")
    fig.update_layout(title="Held-out clean answers vs their degenerate variants (ROC-AUC, clean = 1)",
                      xaxis_title="variant kind", yaxis_title="ROC-AUC", yaxis_range=[0, 1], barmode="group",
                      height=400)
    return fig
