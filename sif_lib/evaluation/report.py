"""The shareable evaluation report: tables, figures and the standalone ``report.html``.

Notebook 07 displays what this module builds from ``eval/summary.json``: the before/after table with the
paper's numbers alongside (for scale only: the paper's policies are 1.5B to 8B reasoning models trained on 8 GPUs
per node; the default here is a 135M model trained for minutes on a CPU), the per-category IFEval deltas, the
per-level hold-out satisfaction, the instruction-following against reasoning scatter, and IFEval prompts whose
verdict flipped; IFBench's four figures join the table when the run evaluated it. The degenerate-answer rows, the
clean-prompt columns and the gallery of answers that gained checks by turning degenerate are
:mod:`sif_lib.evaluation.degenerate_report`'s.

:func:`export_report` turns the run's executed notebook into one HTML file. The notebooks render plotly figures
with plotly.js embedded in the output (:mod:`sif_lib.core.plots`), so the export is interactive without a network;
code cells stay in the file, folded under a "code" toggle.
"""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any

from sif_lib.core.display import delta_points, percent, points
from sif_lib.core.errors import InputError
from sif_lib.core.io import atomic_write_text, iter_jsonl, read_json
from sif_lib.evaluation import degenerate_report
from sif_lib.evaluation.degenerate_report import CLEAN_COLUMN, CLEAN_DELTA, clean_cells, degenerate_rows
from sif_lib.evaluation.math_accuracy import accuracy_text, math_modes

REPORT_FILE = "report.html"
NOTEBOOK = Path("notebooks") / "07_evaluate.ipynb"

IFEVAL_LABELS = {
    "prompt_strict": "IFEval prompt-level strict",
    "inst_strict": "IFEval instruction-level strict",
    "prompt_loose": "IFEval prompt-level loose, Pr(L)",
    "inst_loose": "IFEval instruction-level loose",
}
IFBENCH_LABELS = {metric: label.replace("IFEval", "IFBench") for metric, label in IFEVAL_LABELS.items()}
# The groups of instruction ids of :mod:`sif_lib.evaluation.id_groups` the tables show (``all`` is the headline).
ID_GROUP_LABELS = {"trained": "trained ids", "untrained": "untrained ids",
                   "held_out": "held-out ids (kept out of training by design)"}

# METHOD.md section 7 (the paper's main results): before -> after training.
PAPER_RESULTS = [
    {"model": "R1-Distill-Qwen-1.5B", "ifeval_pr_loose": (42.3, 58.8), "cfbench_isr": (17, 20),
     "followbench_hsr": (22.7, 26.4)},
    {"model": "R1-Distill-Qwen-7B", "ifeval_pr_loose": (61.7, 71.7), "cfbench_isr": (36, 42),
     "followbench_hsr": (41.7, 49.1)},
    {"model": "R1-0528-Qwen3-8B", "ifeval_pr_loose": (79.7, 87.1), "cfbench_isr": (66, 68),
     "followbench_hsr": (60.4, 63.8)},
    {"model": "Qwen2.5-7B-Instruct (cold-start SFT first)", "ifeval_pr_loose": (73.9, 83.9), "cfbench_isr": (38, 40),
     "followbench_hsr": (55.1, 52.7)},
]
PAPER_REASONING_7B = {"model": "R1-Distill-Qwen-7B", "before": 52.0, "after": 52.0,
                      "what": "average of GPQA-D, BBEH, AIME24/25, FOLIO, MMLU-Pro"}



def _arrow(before: float, after: float, digits: int | None = None) -> str:
    """``before → after (delta)``, numbers as the paper prints them unless ``digits`` is given."""
    fmt = (lambda v: f"{v:.{digits}f}") if digits is not None else (lambda v: f"{v:g}")
    return f"{fmt(before)} → {fmt(after)} ({after - before:+.1f})"


def load_summary(run_dir: str | Path) -> dict:
    return read_json(Path(run_dir) / "eval" / "summary.json", f"run stage 07_evaluate on {Path(run_dir)} first")


# ---------------------------------------------------------------------------------------------------------------
# Tables.

def reasoning_key(summary: dict) -> str | None:
    """The reasoning figure that stands for the run: GSM8K when it was scored, else the synthetic items."""
    reasoning = summary.get("reasoning") or {}
    for key in ("gsm8k", "synthetic"):
        if key in reasoning:
            return key
    return None


def summary_rows(summary: dict) -> list[dict]:
    """Rows of the before/after table (values in percent, as text): the degenerate shares first, then every
    figure; beside each IFEval and hold-out headline figure, the same figure on the clean prompts."""
    paper_7b = PAPER_RESULTS[1]
    rows = []

    def add(benchmark: str, base: str, trained: str, delta: str, clean: tuple = ("", ""), paper: str = "") -> None:
        rows.append({"benchmark": benchmark, "base": base, "trained": trained, "Δ points": delta,
                     CLEAN_COLUMN: clean[0], CLEAN_DELTA: clean[1], "paper, R1-Distill-Qwen-7B": paper})

    for row in degenerate_rows(summary):
        add(*row)
    ifeval = summary["ifeval"]
    for metric, label in IFEVAL_LABELS.items():
        add(f"{label} (n={ifeval['n_prompts']})", percent(ifeval["base"][metric]), percent(ifeval["trained"][metric]),
            delta_points(ifeval["delta"][metric], (ifeval.get("delta_ci95") or {}).get(metric)),
            clean_cells(summary, "ifeval", metric),
            _arrow(*paper_7b["ifeval_pr_loose"]) if metric == "prompt_loose" else "")
    for name, group in id_group_sections(ifeval):
        add(f"IFEval instruction-level loose, {ID_GROUP_LABELS[name]} ({len(group['ids'])} ids, "
            f"n={group['n_instructions']} instructions)", percent(group["base"]["inst_loose"]),
            percent(group["trained"]["inst_loose"]),
            delta_points(group["delta"]["inst_loose"], group["delta_ci95"]["inst_loose"]))
    ifbench = summary.get("ifbench")
    for metric, label in (IFBENCH_LABELS.items() if ifbench else ()):
        add(f"{label} (n={ifbench['n_prompts']})", percent(ifbench["base"][metric]),
            percent(ifbench["trained"][metric]),
            delta_points(ifbench["delta"][metric], (ifbench.get("delta_ci95") or {}).get(metric)),
            clean_cells(summary, "ifbench", metric))
    holdout = summary.get("holdout")
    if holdout:
        for level in holdout["base"]["levels"]:
            b, t = holdout["base"]["levels"][level], holdout["trained"]["levels"].get(level, {})
            add(f"Hold-out {level} composite reward (n={b['n_prompts']})", percent(b["composite"]),
                percent(t.get("composite")), delta_points(holdout["delta"]["levels"][level]["composite"],
                                                 ((holdout.get("delta_ci95") or {}).get("levels") or {}).get(level)))
        for key, label in (("hard", "hard constraints satisfied (verifier)"),
                           ("soft", "soft constraints, mean RM probability"),
                           ("composite", "composite reward, all levels")):
            add(f"Hold-out {label}", percent(holdout["base"][key]), percent(holdout["trained"][key]),
                delta_points(holdout["delta"][key], (holdout.get("delta_ci95") or {}).get(key)),
                clean_cells(summary, "holdout", key))
    repetition = summary.get("repetition") or {}
    for key, label in (("ifeval", "IFEval"), ("holdout", "hold-out")):
        b, t = (repetition.get(name, {}).get(key) for name in ("base", "trained"))
        if b and t and b["n"] and t["n"]:
            add(f"Repetitive answers, {label} (share; lower is better)", percent(b["repetitive_share"]),
                percent(t["repetitive_share"]), points(t["repetitive_share"] - b["repetitive_share"]))
    paper_reasoning = (f"{_arrow(PAPER_REASONING_7B['before'], PAPER_REASONING_7B['after'], 1)} "
                       f"({PAPER_REASONING_7B['what']})")
    for name, entry in (summary.get("reasoning") or {}).items():
        label = "held-out synthetic math" if name == "synthetic" else "GSM8K"
        for mode, figures in math_modes(entry):
            add(f"Reasoning: {label} accuracy, {mode} (n={entry['n']})", accuracy_text(figures["base"]),
                accuracy_text(figures["trained"]), delta_points(figures["delta"], figures.get("delta_ci95")),
                paper=paper_reasoning if name == reasoning_key(summary) and mode == "strict" else "")
    return rows


def id_group_sections(section: dict) -> list[tuple[str, dict]]:
    """``(name, figures)`` of the id groups of an ``ifeval`` or ``ifbench`` summary section that hold an
    instruction, in :data:`ID_GROUP_LABELS` order (none for a run evaluated before stage 07 reported them)."""
    groups = section.get("id_groups") or {}
    return [(name, groups[name]) for name in ID_GROUP_LABELS if (groups.get(name) or {}).get("n_instructions")]


GAINED_DEGENERATE = "newly met by a degenerate answer"


def gained_degenerate_text(counts: dict | None) -> str:
    """``5 of 11``: of an id's instructions newly met, those the trained policy met with a degenerate answer."""
    return f"{counts['gained_degenerate']} of {counts['gained']}" if counts else "0 of 0"


def id_table(summary: dict, benchmark: str = "ifeval"):
    """Instruction-level loose accuracy per instruction id, trained ids first (percent; Δ in points with its paired
    95% interval over the prompts that ask for the id), and how many of the id's newly met instructions the
    trained policy met with a degenerate answer (for a run evaluated since stage 07 counts them)."""
    import pandas as pd

    section = summary.get(benchmark) or {}
    held_out = set(((section.get("id_groups") or {}).get("held_out") or {}).get("ids") or ())
    gains = (((summary.get("degenerate") or {}).get(benchmark) or {}).get("gains") or {}).get("by_id")
    rows = [{"instruction id": iid,
             "training": "held out" if iid in held_out else "trained" if fig["in_training"] else "untrained",
             "instructions": fig["n_instructions"], "base": percent(fig["base"]["inst_loose"]),
             "trained": percent(fig["trained"]["inst_loose"]),
             "Δ points": delta_points(fig["delta"]["inst_loose"], fig["delta_ci95"]["inst_loose"]),
             **({GAINED_DEGENERATE: gained_degenerate_text(gains.get(iid))} if gains is not None else {})}
            for iid, fig in (section.get("by_id") or {}).items()]
    if not rows:
        return "This run was evaluated before stage 07 reported figures per instruction id."
    order = {"trained": 0, "held out": 1, "untrained": 2}
    return pd.DataFrame(sorted(rows, key=lambda r: (order[r["training"]], r["instruction id"]))).set_index(
        "instruction id")


def summary_table(summary: dict):
    """The before/after table as a DataFrame (percent; Δ in points)."""
    import pandas as pd

    return pd.DataFrame(summary_rows(summary)).set_index("benchmark")


def holdout_category_table(summary: dict):
    """Hold-out satisfaction per constraint category (hard: verifier pass rate; soft: mean RM probability)."""
    import pandas as pd

    holdout = summary["holdout"]
    base, trained = holdout["base"]["categories"], holdout["trained"]["categories"]
    rows = []
    for name, b in base.items():
        t = trained.get(name, {})
        delta = None if b["mean"] is None or t.get("mean") is None else t["mean"] - b["mean"]
        rows.append({"category": name, "kind": b["kind"], "constraints": b["n"], "base": percent(b["mean"]),
                     "trained": percent(t.get("mean")), "Δ points": points(delta)})
    return pd.DataFrame(rows).sort_values(["kind", "category"]).set_index("category")


def paper_table():
    """The paper's main results (METHOD.md section 7), before → after, for scale."""
    import pandas as pd

    return pd.DataFrame([{"model": r["model"], "IFEval Pr(L)": _arrow(*r["ifeval_pr_loose"]),
                          "CFBench ISR": _arrow(*r["cfbench_isr"]), "FollowBench HSR": _arrow(*r["followbench_hsr"])}
                         for r in PAPER_RESULTS]).set_index("model")


def summary_markdown(summary: dict) -> str:
    """``eval/summary.md``: what was evaluated and the before/after table."""
    pol = summary["policies"]
    trained = pol["trained"]["spec"] + (f" + LoRA adapter {pol['trained']['adapter']}" if pol["trained"].get("adapter")
                                        else "")
    dec = summary["decoding"]
    lines = [
        f"# Evaluation of run `{summary['run_id']}`",
        "",
        f"- base policy: `{pol['base']['spec']}`",
        f"- trained policy: `{trained}`",
        f"- decoding: greedy; {dec['ifeval']['max_new_tokens']} new tokens for IFEval and the hold-out, "
        f"{dec['math']['max_new_tokens']} for math; batch size {summary['batch_size']}",
        f"- IFEval prompts: the first {summary['ifeval']['n_prompts']} of {summary['ifeval']['source']}",
        *ifbench_lines(summary),
        "",
    ]
    rows = summary_rows(summary)
    header = list(rows[0])
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "|".join("---" if i == 0 else "---:" for i in range(len(header))) + "|")
    for row in rows:
        lines.append("| " + " | ".join(str(row[h]).replace("|", "\\|") for h in header) + " |")
    if summary.get("holdout", {}).get("note"):
        lines += ["", f"Note: {summary['holdout']['note']}."]
    lines += ["", "Values are percentages; Δ is trained minus base in points, with its paired 95% bootstrap interval "
              "(over prompts; over items for math). The paper's column is for scale only.", ""]
    lines += degenerate_report.markdown_lines(summary)
    if summary.get("reasoning"):
        lines += ["Math: strict reads the last \\boxed{} answer (as the RL reward does), flexible the last number of "
                  "the answer (lm-eval's GSM8K flexible-extract); each accuracy has its exact (Clopper-Pearson) 95% "
                  "interval in brackets.", ""]
    flipped = flips_lines(summary)
    if flipped:
        lines += ["Paired pass/fail changes (gained, lost, exact sign test):", ""] + [f"- {x}" for x in flipped] + [""]
    lines += thinking_markdown(summary)
    return "\n".join(lines)


def ifbench_lines(summary: dict) -> list[str]:
    """The summary's line on the IFBench prompts, and one on what was left out (none without IFBench)."""
    ifbench = summary.get("ifbench")
    if not ifbench:
        return []
    left = ifbench.get("left_out") or {}
    skipped = ", ".join(f"{n} {i}" for i, n in (left.get("instructions") or {}).items())
    return [f"- IFBench prompts: {ifbench['n_prompts']} evaluated, from {ifbench['source']}"] + (
        [f"- IFBench left out: {skipped} instructions (their check cannot run here), {left.get('prompts', 0)} "
         f"prompts with no other"] if skipped else [])


def flips_lines(summary: dict) -> list[str]:
    """One line per paired pass/fail figure: IFEval (and IFBench) prompts, hold-out hard constraints, math items."""
    found = []
    for bench, name in (("ifeval", "IFEval"), ("ifbench", "IFBench")):
        for key, mode in (("prompt_strict", "strict"), ("prompt_loose", "loose")):
            if summary.get(bench):
                found.append((f"{name} prompts, {mode}", (summary[bench].get("flips") or {}).get(key)))
    found.append(("hold-out hard constraints", ((summary.get("holdout") or {}).get("flips") or {}).get("hard")))
    for name, entry in (summary.get("reasoning") or {}).items():
        label = "synthetic math" if name == "synthetic" else "GSM8K"
        found += [(f"{label} items, {mode}", figures.get("flips")) for mode, figures in math_modes(entry)]
    return [f"{label}: {f['gained']} gained, {f['lost']} lost of {f['paired']} (p = {f['sign_test_p']:.3g})"
            for label, f in found if f]


# ---------------------------------------------------------------------------------------------------------------
# Thinking (summary["thinking"], from :mod:`sif_lib.evaluation.thinking`).

def thinking_rows(summary: dict) -> list[dict] | str | None:
    """Per set: closed ``</think>`` share (%, exact 95% interval) and mean thinking length, base → trained; one
    line instead when no output of either policy contains ``</think>``; None for a summary without the figures."""
    sets = summary.get("thinking")
    if not sets:
        return None
    if not any(e[p]["closed"] for e in sets.values() for p in ("base", "trained")):
        return ("The policy does not think: no output of either policy contains `</think>` "
                f"(answer_mode: {summary.get('answer_mode', '?')}).")

    def share(s: dict) -> str:
        ci = s["closed_share_ci95"]
        return percent(s["closed_share"]) + (f" [{percent(ci[0])}, {percent(ci[1])}]" if ci else "")

    def length(e: dict, key: str) -> str:
        return " → ".join("–" if e[p][key] is None else f"{e[p][key]:.1f}" for p in ("base", "trained"))

    labels = {"ifeval": "IFEval", "ifbench": "IFBench", "holdout": "hold-out"}
    return [{"set": f"{labels.get(name, name)} (n={e['base']['n']})",
             "closed </think> %, base → trained": f"{share(e['base'])} → {share(e['trained'])}",
             "Δ points": points(e["delta"]["closed_share"]),
             f"mean thinking ({e['base']['unit']}), closed outputs": length(e, "mean_think_tokens"),
             f"mean thinking ({e['base']['unit']}), all outputs": length(e, "mean_think_tokens_all")}
            for name, e in sets.items()]


def thinking_table(summary: dict):
    """The Thinking table as a DataFrame, or the one line of :func:`thinking_rows` as Markdown."""
    import pandas as pd
    from IPython.display import Markdown

    rows = thinking_rows(summary)
    if not isinstance(rows, list):
        return Markdown(rows or "This summary has no thinking figures (written before they were added).")
    return pd.DataFrame(rows).set_index("set")


def thinking_markdown(summary: dict) -> list[str]:
    """The Thinking section of ``eval/summary.md`` (nothing for a summary without the figures)."""
    rows = thinking_rows(summary)
    if not isinstance(rows, list):
        return ["## Thinking", "", rows, ""] if rows else []
    header = " | ".join(rows[0]).replace("</think>", "`</think>`")
    return (["## Thinking", "", f"| {header} |", "|---" + "|---:" * (len(rows[0]) - 1) + "|"]
            + ["| " + " | ".join(row.values()) + " |" for row in rows]
            + ["", "Closed: outputs that contain `</think>` (exact 95% interval). Thinking: the text before the "
               "last `</think>`; over all outputs, an unclosed one counts whole.", ""])


# ---------------------------------------------------------------------------------------------------------------
# Figures.

def ifeval_category_figure(summary: dict):
    """Trained − base instruction-level accuracy per IFEval category (strict and loose)."""
    import plotly.graph_objects as go

    base, trained = summary["ifeval"]["base"]["categories"], summary["ifeval"]["trained"]["categories"]
    cats = sorted(base)
    fig = go.Figure()
    for mode in ("strict", "loose"):
        fig.add_bar(name=mode, x=cats,
                    y=[100 * (trained[c][f"inst_{mode}"] - base[c][f"inst_{mode}"]) for c in cats],
                    customdata=[[base[c]["n"], 100 * base[c][f"inst_{mode}"], 100 * trained[c][f"inst_{mode}"]]
                                for c in cats],
                    hovertemplate="%{x}<br>n=%{customdata[0]} instructions<br>%{customdata[1]:.1f} → "
                                  "%{customdata[2]:.1f}<br>Δ %{y:+.1f} points<extra>" + mode + "</extra>")
    fig.update_layout(title="IFEval: trained − base, instruction-level accuracy per category", barmode="group",
                      yaxis_title="Δ points", xaxis_title="instruction category", height=420)
    fig.add_hline(y=0, line_color="grey", line_width=1)
    return fig


def holdout_level_figure(summary: dict):
    """Per-level satisfaction on the curriculum hold-out, base against trained."""
    from plotly.subplots import make_subplots

    holdout = summary["holdout"]
    panels = [("hard", "hard: verifier pass rate"), ("soft", "soft: mean RM probability"),
              ("composite", "composite reward")]
    fig = make_subplots(rows=1, cols=3, subplot_titles=[t for _, t in panels], shared_yaxes=True)
    colors = {"base": "#8c8c8c", "trained": "#1f77b4"}
    for col, (key, _) in enumerate(panels, start=1):
        for name in ("base", "trained"):
            levels = holdout[name]["levels"]
            fig.add_bar(x=list(levels), y=[None if v[key] is None else 100 * v[key] for v in levels.values()],
                        name=name, marker_color=colors[name], showlegend=col == 1, legendgroup=name,
                        hovertemplate="%{x}: %{y:.1f}<extra>" + name + "</extra>", row=1, col=col)
    fig.update_layout(title=f"Curriculum hold-out ({holdout['n_prompts']} prompts): satisfaction per level",
                      barmode="group", height=400, yaxis_title="%")
    fig.update_yaxes(range=[0, 100])
    return fig


def tradeoff_figure(summary: dict):
    """Instruction following (IFEval Pr(L)) against reasoning accuracy: this run, and the paper's 7B for scale."""
    import plotly.graph_objects as go

    key = reasoning_key(summary)
    fig = go.Figure()
    if key is None:
        fig.update_layout(title="No reasoning items were evaluated")
        return fig
    reasoning = summary["reasoning"][key]
    points = {name: (100 * reasoning[name]["accuracy"], 100 * summary["ifeval"][name]["prompt_loose"])
              for name in ("base", "trained")}
    label = "synthetic math" if key == "synthetic" else "GSM8K"
    paper = (PAPER_REASONING_7B["before"], PAPER_RESULTS[1]["ifeval_pr_loose"][0]), \
            (PAPER_REASONING_7B["after"], PAPER_RESULTS[1]["ifeval_pr_loose"][1])
    series = [(f"this run ({label}, strict)", "#1f77b4", points["base"], points["trained"])]
    flexible = reasoning.get("flexible")
    if flexible:
        series.append((f"this run ({label}, flexible)", "#9ecae1",
                       *[(100 * flexible[name]["accuracy"], points[name][1]) for name in ("base", "trained")]))
    series.append((f"paper, {PAPER_REASONING_7B['model']} (reasoning average)", "#bbbbbb", *paper))
    for name, color, (x0, y0), (x1, y1) in series:
        fig.add_scatter(x=[x0, x1], y=[y0, y1], mode="markers+text", name=name, text=["base", "trained"],
                        textposition="top center", marker=dict(size=[10, 14], color=color),
                        hovertemplate="reasoning %{x:.1f}<br>IFEval Pr(L) %{y:.1f}<extra>" + name + "</extra>")
        fig.add_annotation(x=x1, y=y1, ax=x0, ay=y0, xref="x", yref="y", axref="x", ayref="y", showarrow=True,
                           arrowhead=3, arrowwidth=2, arrowcolor=color, text="")
    fig.update_layout(title="Beyond the trade-off? Instruction following against reasoning",
                      xaxis_title="reasoning accuracy (%)", yaxis_title="IFEval prompt-level loose (%)", height=450)
    fig.update_xaxes(range=[-2, 102])
    fig.update_yaxes(range=[-2, 102])
    return fig


# ---------------------------------------------------------------------------------------------------------------
# Responses that changed.

def _verdict_rows(path: Path) -> dict[str, dict]:
    return {row["prompt"]: row for row in iter_jsonl(path)}


def changed_examples(run_dir: str | Path, n: int = 4, mode: str = "loose") -> list[dict]:
    """IFEval prompts whose prompt-level verdict flipped between base and trained; gains first, then losses."""
    eval_dir = Path(run_dir) / "eval"
    base = _verdict_rows(eval_dir / "ifeval_base" / f"eval_results_{mode}.jsonl")
    trained = _verdict_rows(eval_dir / "ifeval_trained" / f"eval_results_{mode}.jsonl")
    gains, losses = [], []
    for prompt, b in base.items():
        t = trained.get(prompt)
        if t is None or bool(b["follow_all_instructions"]) == bool(t["follow_all_instructions"]):
            continue
        example = {"prompt": prompt, "instructions": b["instruction_id_list"],
                   "base_response": b["response"], "trained_response": t["response"],
                   "base_verdicts": b["follow_instruction_list"], "trained_verdicts": t["follow_instruction_list"],
                   "change": "gained" if t["follow_all_instructions"] else "lost"}
        (gains if example["change"] == "gained" else losses).append(example)
    first = (n + 1) // 2
    chosen = gains[:first] + losses[:n - min(first, len(gains))]
    return (chosen + gains[first:first + n - len(chosen)])[:n]


def _verdict_list(ids: list[str], verdicts: list[bool]) -> str:
    mark = {True: "<b style='color:#1a7f37'>✓</b>", False: "<b style='color:#c0392b'>✗</b>"}
    return "".join(f"<li>{mark[bool(ok)]} <code>{html.escape(i)}</code></li>" for i, ok in zip(ids, verdicts))


def changed_examples_html(run_dir: str | Path, n: int = 4, mode: str = "loose"):
    """The flipped examples side by side, as displayable HTML."""
    from IPython.display import HTML

    examples = changed_examples(run_dir, n, mode)
    if not examples:
        return HTML(f"<p>No IFEval prompt changed its {mode} prompt-level verdict between base and trained.</p>")
    cell = "vertical-align:top;border:1px solid #ddd;padding:6px;width:50%"
    pre = "white-space:pre-wrap;font-size:0.85em;max-height:22em;overflow:auto;margin:0"
    parts = []
    for ex in examples:
        parts.append(
            f"<h4>{'Gained' if ex['change'] == 'gained' else 'Lost'} ({mode})</h4>"
            f"<p style='white-space:pre-wrap'><b>Prompt:</b> {html.escape(ex['prompt'])}</p>"
            f"<table style='width:100%;border-collapse:collapse;table-layout:fixed'><tr>"
            f"<th style='{cell}'>base</th><th style='{cell}'>trained</th></tr><tr>"
            f"<td style='{cell}'><ul>{_verdict_list(ex['instructions'], ex['base_verdicts'])}</ul>"
            f"<pre style='{pre}'>{html.escape(ex['base_response'])}</pre></td>"
            f"<td style='{cell}'><ul>{_verdict_list(ex['instructions'], ex['trained_verdicts'])}</ul>"
            f"<pre style='{pre}'>{html.escape(ex['trained_response'])}</pre></td></tr></table>")
    return HTML("".join(parts))


# ---------------------------------------------------------------------------------------------------------------
# report.html.

# The lab template with code folded, minus every script it would fetch from a CDN: require.js, MathJax and mermaid
# (nothing here uses them) and the ipywidgets manager (notebook 07's only widgets are model-loading progress bars).
_TEMPLATE = """{%- extends 'lab/index.html.j2' -%}
{%- block html_head_js_requirejs -%}{%- endblock html_head_js_requirejs -%}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
{%- block jupyter_widgets -%}{%- endblock jupyter_widgets -%}
{% block extra_css %}
<style type="text/css">
details.sif-code > summary { cursor: pointer; color: #888; font-size: 0.8em; margin: 2px 0 2px 8px; }
details.sif-code[open] > summary { margin-bottom: 4px; }
</style>
{% endblock extra_css %}
{% block input_group -%}
<details class="sif-code"><summary>code</summary>
{{ super() }}
</details>
{%- endblock input_group %}
"""

# plotly figures ask for MathJax from a CDN in case a label holds LaTeX; none of ours does.
_REMOTE_MATHJAX = re.compile(
    r'<script[^>]*\ssrc="https://cdnjs\.cloudflare\.com/ajax/libs/mathjax/[^"]*"[^>]*>\s*</script>')


def plotly_bundle_marker() -> str:
    from plotly.offline import get_plotlyjs

    return get_plotlyjs()[:40]


def export_report(run_dir: str | Path, output: str | Path | None = None) -> Path:
    """Export the run's executed notebook 07 to a standalone ``report.html`` at the run root (or ``output``).

    plotly.js is normally already in the notebook's outputs; if figures are present without it (a notebook run
    with another renderer), the library is inlined into the page head so the file still works offline.
    """
    import jinja2
    import nbformat
    from nbconvert import HTMLExporter

    run_dir = Path(run_dir)
    source = run_dir / NOTEBOOK
    if not source.is_file():
        raise InputError(f"{source}: no executed evaluation notebook: run stage 07_evaluate first")
    nb = nbformat.read(source, as_version=4)
    exporter = HTMLExporter(template_name="lab", template_file="sif_report.html.j2",
                            extra_loaders=[jinja2.DictLoader({"sif_report.html.j2": _TEMPLATE})])
    body, _ = exporter.from_notebook_node(nb, resources={"metadata": {"name": f"{run_dir.name} · evaluation report"}})
    body = _REMOTE_MATHJAX.sub("", body)
    if "Plotly.newPlot" in body and plotly_bundle_marker() not in body:
        from plotly.offline import get_plotlyjs

        body = body.replace("</head>", f"<script type=\"text/javascript\">{get_plotlyjs()}</script>\n</head>", 1)
    target = Path(output) if output else run_dir / REPORT_FILE
    atomic_write_text(target, body)
    return target


def report_figures(summary: dict) -> list[Any]:
    """Every figure of the report, in display order (for scripts that want them outside the notebook)."""
    return [ifeval_category_figure(summary), holdout_level_figure(summary), tradeoff_figure(summary)]


def write_report(run_dir: str | Path) -> str:
    """The runner's finishing step for stage 07 (:mod:`sif_lib.runner.stage_table`): export ``report.html``."""
    return f"report: {export_report(run_dir)}"
