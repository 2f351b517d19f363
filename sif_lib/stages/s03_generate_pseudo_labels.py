"""Stage 03 (notebook 03): the policy answers every level of the curriculum ladders, and the answers become
self-supervised pseudo-labels, audited against the verifier on hard constraints.

Writes ``data/rollouts.jsonl`` and ``data/pseudo_labels.jsonl``. The logic is :mod:`sif_lib.labels.rollouts`
(resumable generation) and :mod:`sif_lib.labels.pseudo_labels` (pairs and audit).
"""

from __future__ import annotations

import html
import math

from sif_lib.core.display import percent
from sif_lib.core.errors import InputError
from sif_lib.core.io import write_jsonl
from sif_lib.labels.pseudo_labels import PSEUDO_LABELS, audit_hard_pseudo_labels, build_pairs, pair_counts
from sif_lib.labels.rollouts import CURRICULUM, load_rollouts, read_ladders, run_rollouts
from sif_lib.runner.runs import RunContext
from sif_lib.runner.stage_table import stage_of_module

STAGE = stage_of_module(__name__)


def generate_rollouts(ctx: RunContext, generator=None, progress: bool = True) -> dict:
    """Part 1: answer every pending (sub-instruction, sample) of the selected ladders (resumable)."""
    return run_rollouts(ctx, generator=generator, progress=progress)


def make_pseudo_labels(ctx: RunContext, rollout_summary: dict | None = None) -> dict:
    """Build ``data/pseudo_labels.jsonl`` from the rollouts, audit it, write the stage metrics, return them.

    ``rollout_summary`` is what ``run_rollouts`` returned in this session (timing included); without it only
    counts read back from the file are reported.
    """
    params = ctx.params
    ladders = read_ladders(ctx.require(*CURRICULUM))
    rollouts = load_rollouts(ctx)
    pairs, skipped = build_pairs(ladders, rollouts, hard_pairs=params.rollouts.hard_pairs,
                                 answer_mode=params.model.answer_mode)
    if not pairs:
        raise InputError(f"{ctx.root / 'data' / 'rollouts.jsonl'}: no pseudo-label pairs could be built "
                         f"({len(rollouts)} rollout rows, skipped: {skipped or 'none'})")
    write_jsonl(ctx.path(*PSEUDO_LABELS), pairs)
    audit = audit_hard_pseudo_labels(pairs)
    counts = pair_counts(pairs)
    metrics = {
        "rollouts": rollout_summary if rollout_summary is not None else {
            "rows": len(rollouts), "ladders": len({r["ladder"] for r in rollouts})},
        "pairs": {"rows": len(pairs), "pairs": len(pairs) // 2, "skipped": skipped,
                  "by_kind": counts["by_kind"], "by_level": counts["by_level"], "parents": counts["parents"]},
        "label_balance": counts["total"],
        "hard_pairs": params.rollouts.hard_pairs,
        "answer_mode": params.model.answer_mode,
        "audit": audit,
    }
    ctx.write_metrics(STAGE.name, metrics)
    return metrics


def run(ctx: RunContext) -> dict:
    """The whole stage: rollouts, then pseudo-labels and their audit."""
    return make_pseudo_labels(ctx, generate_rollouts(ctx))


# ---------------------------------------------------------------------------------------------------------------
# What notebook 03 shows


def _rate_html(value: float | None, ci: list[float] | None = None) -> str:
    """A rate in percent, with its interval in small print when there is one."""
    if value is None:
        return "–"
    text = f"{percent(value)}%"
    return text + (f" <small>[{100 * ci[0]:.0f}, {100 * ci[1]:.0f}]</small>" if ci else "")


def _table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{h}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def audit_html(audit: dict) -> str:
    """The audit as HTML: per level, per hard constraint id, and the pairwise agreement."""
    if not audit["n_rows"]:
        return "<p>No hard-constraint pairs (rollouts.hard_pairs is off, or no ladder has a hard constraint).</p>"
    header = ["", "rows", "pseudo-label accuracy", "P(o_k meets c_k)", "P(o_{k-1} meets c_k)", "steering gap"]

    def line(name: str, s: dict) -> list[str]:
        gap = "–" if s["steering_gap"] is None else f"{100 * s['steering_gap']:+.1f} pts"
        return [name, str(s["n"]), _rate_html(s["accuracy"], s["accuracy_ci95"]),
                _rate_html(s["positive_rate"], s["positive_rate_ci95"]),
                _rate_html(s["negative_rate"], s["negative_rate_ci95"]), gap]

    levels = [line("<b>all levels</b>", audit["overall"])]
    levels += [line(f"L{k}", s) for k, s in audit["per_level"].items()]
    ids = [line(html.escape(cid), s) for cid, s in audit["per_constraint"].items()]
    pw = audit["pairwise"]
    tau = "–" if pw["tau"] is None else f"{pw['tau']:.3f}"
    pairwise = _table(
        ["pairs", "concordant", "tie (both met)", "tie (neither)", "discordant", "agreement (no contradiction)",
         "strict agreement", "tau (untied)"],
        [[str(pw["pairs"]), str(pw["concordant"]), str(pw["tie_both"]), str(pw["tie_neither"]), str(pw["discordant"]),
          _rate_html(pw["agreement"], pw["agreement_ci95"]), _rate_html(pw["strict_agreement"]), tau]])
    return ("<h4>Hard-constraint pseudo-labels against the verifier</h4>" + _table(header, levels)
            + "<p><small>Brackets: Wilson 95% intervals.</small></p>"
            + "<h4>By hard constraint</h4>" + _table(header, ids)
            + "<h4>Pairwise: does the verifier contradict “positive ≥ negative”?</h4>" + pairwise)


def satisfaction_figure(audit: dict):
    """Plotly bars: P(o_k meets c_k) and P(o_{k-1} meets c_k) per level, with Wilson intervals."""
    import plotly.graph_objects as go  # heavy: only where a figure is drawn

    levels = list(audit["per_level"])
    fig = go.Figure()
    for key, name in (("positive_rate", "positive: o_k (prompt holds c_k)"),
                      ("negative_rate", "negative: o_{k-1} (prompt lacks c_k)")):
        values = [audit["per_level"][k][key] for k in levels]
        cis = [audit["per_level"][k][key + "_ci95"] for k in levels]
        fig.add_bar(
            x=[f"L{k}" for k in levels], y=values, name=name,
            error_y=dict(type="data", symmetric=False,
                         array=[(c[1] - v) if c else 0 for v, c in zip(values, cis)],
                         arrayminus=[(v - c[0]) if c else 0 for v, c in zip(values, cis)]),
            customdata=[audit["per_level"][k]["n_positive" if key == "positive_rate" else "n_negative"]
                        for k in levels],
            hovertemplate="%{x}: %{y:.1%} of %{customdata} responses<extra></extra>")
    fig.update_layout(barmode="group", title="Hard constraints met, with and without the constraint in the prompt",
                      xaxis_title="constraint position k (level of the positive)", yaxis_title="share satisfied",
                      yaxis=dict(range=[0, 1], tickformat=".0%"), legend=dict(orientation="h", y=-0.2))
    return fig


def example_pairs(pairs: list[dict], n: int = 8, snippet: int = 240) -> list[dict]:
    """A few rows for display: hard and soft, positive and negative, taken evenly through the file."""
    groups = [[p for p in pairs if p["kind"] == kind and p["label"] == label]
              for kind in ("hard", "soft") for label in (1, 0)]
    groups = [g for g in groups if g]
    if not groups:
        return []
    per = math.ceil(n / len(groups))
    spread = [g if len(g) <= per else [g[j * len(g) // per] for j in range(per)] for g in groups]
    # Interleave the groups so that a short list still shows every kind and label.
    picked = [rows[j] for j in range(per) for rows in spread if j < len(rows)][:n]
    return [{"pair_id": p["pair_id"], "source_level": f"L{p['source_level']}", "constraint_level": f"c{p['level']}",
             "kind": p["kind"], "constraint": p["constraint"].get("description", p["constraint"].get("id")),
             "response": p["response"][:snippet] + ("…" if len(p["response"]) > snippet else ""),
             "label": p["label"], "verifier": p["verifier"]} for p in picked]


def examples_html(pairs: list[dict], n: int = 8) -> str:
    rows = example_pairs(pairs, n)
    verdict = {True: "met", False: "not met", None: "– (soft)"}
    return _table(["prompt level", "constraint", "kind", "response (start)", "pseudo-label", "verifier"],
                  [[r["source_level"], html.escape(str(r["constraint"])), r["kind"],
                    html.escape(r["response"]).replace("\n", "<br>"), str(r["label"]), verdict[r["verifier"]]]
                   for r in rows])
