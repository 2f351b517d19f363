"""``sif compare``: runs side by side, in the shape of the paper's ablation table (Table 5).

Each run directory must hold ``eval/summary.json`` (stage 07) and ``params.yaml``. The first run is the
reference: every other run is described by the parameters in which it differs, and its trained IFEval Pr(L) is
also shown relative to the reference's, which is how the paper reports its ablations (no curriculum −4.0 points,
binary soft rewards −1.8, the RM judging hard constraints −4.2). Where a run differs from the reference in exactly
one of those switches, the paper's figure is shown beside ours. When any run evaluated IFBench, its four figures
follow IFEval's ("n/a" for a run without them). Beside the IFEval and hold-out figures stand the share of
degenerate answers, the clean gain (the same figures on the prompts where neither answer is degenerate) and how many
of the IFEval instructions newly met came with a degenerate answer; a run evaluated before those existed shows
"n/a".

The table is printed, and an HTML page (the table and plotly charts, plotly.js inline, so it opens offline) is
written to ``--output`` or ``outputs/compare-<timestamp>.html``. When some runs differ only in their seed, both
also show each setting's mean ± standard deviation over its seeds and, between settings, paired tests across seeds
(:mod:`sif_lib.analysis.replicates`).
"""

from __future__ import annotations

import datetime as dt
import html
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sif_lib.analysis import replicates
from sif_lib.config.params import Params, load_params
from sif_lib.core.display import differing_keys as shared_differing_keys
from sif_lib.core.display import format_table, percent, points
from sif_lib.core.errors import InputError
from sif_lib.core.io import atomic_write_text, outputs_dir
from sif_lib.core.plots import TEMPLATE
from sif_lib.core.stats import difference
from sif_lib.evaluation.math_accuracy import math_accuracy_text, math_modes
from sif_lib.evaluation.report import (
    ID_GROUP_LABELS,
    IFBENCH_LABELS,
    IFEVAL_LABELS,
    gained_degenerate_text,
    id_group_sections,
    load_summary,
    reasoning_key,
)

METRICS = ("prompt_strict", "inst_strict", "prompt_loose", "inst_loose")
SHORT = {"prompt_strict": "Pr(S)", "inst_strict": "Ins(S)", "prompt_loose": "Pr(L)", "inst_loose": "Ins(L)"}

# The parameters that define an ablation, always shown: (column, dotted key).
KEY_PARAMS = (("model", "model.policy"), ("curriculum", "grpo.curriculum"), ("soft_reward", "grpo.soft_reward"),
              ("hard_reward", "grpo.hard_reward"), ("finetune", "grpo.finetune"), ("steps", "grpo.max_steps"))

# Paper, Table 5: IFEval points lost by each ablation of the full method.
PAPER_ABLATIONS = {("grpo.curriculum", "off"): ("w/o curriculum", -4.0),
                   ("grpo.soft_reward", "binary"): ("binary soft reward", -1.8),
                   ("grpo.hard_reward", "reward_model"): ("RM for hard constraints", -4.2)}
_IGNORED = {"description"}
# Degenerate answers and the clean gain: (column, summary section, benchmark, figure).
DEGENERATE_COLUMNS = (("degenerate IFEval", "degenerate", "ifeval", "share"),
                      ("degenerate hold-out", "degenerate", "holdout", "share"),
                      ("clean Ins(L)", "clean", "ifeval", "inst_loose"),
                      ("clean hold-out hard", "clean", "holdout", "hard"))


@dataclass
class RunRecord:
    run_dir: Path
    run_id: str
    params: Params
    flat: dict[str, Any]
    summary: dict


def load_run(run_dir: str | Path) -> RunRecord:
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise InputError(f"{run_dir}: not a run directory")
    summary = load_summary(run_dir)
    params_file = run_dir / "params.yaml"
    if not params_file.is_file():
        raise InputError(f"{params_file}: missing; is {run_dir} a run directory?")
    params = load_params(params_file)
    return RunRecord(run_dir, run_dir.name, params, params.flat(), summary)


def differing_keys(runs: Sequence[RunRecord]) -> list[str]:
    """Every parameter whose value is not the same in all runs (beyond the key parameters)."""
    return shared_differing_keys([r.flat for r in runs], {key for _, key in KEY_PARAMS} | _IGNORED)


def paper_ablation(reference: RunRecord, run: RunRecord) -> str:
    """The paper's Table 5 figure for this run, when it differs from the reference in exactly one ablation switch."""
    changed = [key for _, key in KEY_PARAMS if reference.flat.get(key) != run.flat.get(key)]
    if len(changed) != 1:
        return ""
    found = PAPER_ABLATIONS.get((changed[0], run.flat.get(changed[0])))
    return f"{found[0]}: {found[1]:+.1f}" if found else ""



def _section_cell(summary: dict, section: str, benchmark: str, figure: str) -> str:
    """``base → trained (Δ)`` of one figure of the ``degenerate`` or ``clean`` section; "n/a" for a run evaluated
    before the section existed."""
    part = (summary.get(section) or {}).get(benchmark)
    if not part:
        return "n/a"
    b, t = ((part.get(name) or {}).get(figure) for name in ("base", "trained"))
    if b is None or t is None:
        return "–"
    return f"{percent(b)} → {percent(t)} ({points(difference(b, t))})"


def _change(section: dict, metric: str) -> str:
    """``base → trained (Δ)`` of one figure of the ``ifeval`` or ``ifbench`` section."""
    b, t = section["base"][metric], section["trained"][metric]
    return f"{percent(b)} → {percent(t)} ({points(difference(b, t))})"


def table_rows(runs: Sequence[RunRecord]) -> list[dict[str, str]]:
    """One row per run, values as text (percent; deltas in points)."""
    reference = runs[0]
    other = differing_keys(runs)
    ref_trained = reference.summary["ifeval"]["trained"]["prompt_loose"]
    rows = []
    for run in runs:
        s = run.summary
        row = {"run": run.run_id}
        for column, key in KEY_PARAMS:
            row[column] = str(run.flat.get(key))
        row["other params"] = ", ".join(f"{k}={run.flat.get(k)!r}" for k in other)
        row["IFEval n"] = str(s["ifeval"]["n_prompts"])
        for metric in METRICS:
            row[SHORT[metric]] = _change(s["ifeval"], metric)
        trained = s["ifeval"]["trained"]["prompt_loose"]
        row["Pr(L) vs ref"] = "ref" if run is reference else points(difference(ref_trained, trained))
        row["paper (Table 5)"] = "" if run is reference else paper_ablation(reference, run)
        if any(r.summary.get("ifbench") for r in runs):
            ifbench = s.get("ifbench")
            row["IFBench n"] = str(ifbench["n_prompts"]) if ifbench else "n/a"
            for metric in METRICS:
                row[f"IFBench {SHORT[metric]}"] = _change(ifbench, metric) if ifbench else "n/a"
            row["degenerate IFBench"] = _section_cell(s, "degenerate", "ifbench", "share")
            row["clean IFBench Ins(L)"] = _section_cell(s, "clean", "ifbench", "inst_loose")
        holdout = s.get("holdout") or {}
        if holdout:
            b, t = holdout["base"]["composite"], holdout["trained"]["composite"]
            row["hold-out composite"] = f"{percent(b)} → {percent(t)} ({points(difference(b, t))})"
        else:
            row["hold-out composite"] = "–"
        for column, section, benchmark, figure in DEGENERATE_COLUMNS:
            row[column] = _section_cell(s, section, benchmark, figure)
        gains = ((s.get("degenerate") or {}).get("ifeval") or {}).get("gains")
        row["IFEval gains by degenerate answers"] = gained_degenerate_text(gains) if gains else "n/a"
        groups = dict(id_group_sections(s["ifeval"]))
        for name in ID_GROUP_LABELS:
            if any(dict(id_group_sections(r.summary["ifeval"])).get(name) for r in runs):
                row[f"Ins(L) {name.replace('_', '-')} ids"] = (_change(groups[name], "inst_loose") if name in groups
                                                               else "n/a")
        key = reasoning_key(s)
        if key:
            row["reasoning"] = f"{key}: {math_accuracy_text(s['reasoning'][key])}"
        else:
            row["reasoning"] = "–"
        rows.append(row)
    if not other:
        for row in rows:
            del row["other params"]
    return rows


# ---------------------------------------------------------------------------------------------------------------
# Figures and the HTML page.

def figures(runs: Sequence[RunRecord]) -> list:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    ids = [r.run_id for r in runs]
    delta = go.Figure()
    for metric in METRICS:
        delta.add_bar(name=IFEVAL_LABELS[metric], x=ids,
                      y=[100 * difference(r.summary["ifeval"]["base"][metric], r.summary["ifeval"]["trained"][metric])
                         for r in runs])
    delta.update_layout(title="IFEval: trained − base (points)", barmode="group", yaxis_title="Δ points", height=420)
    shown = [delta]
    if any(r.summary.get("ifbench") for r in runs):
        ood = go.Figure()
        for metric in METRICS:
            ood.add_bar(name=IFBENCH_LABELS[metric], x=ids,
                        y=[100 * difference(r.summary["ifbench"]["base"][metric],
                                            r.summary["ifbench"]["trained"][metric])
                           if r.summary.get("ifbench") else None for r in runs])
        ood.update_layout(title="IFBench (out-of-distribution constraints): trained − base (points)",
                          barmode="group", yaxis_title="Δ points", height=420)
        shown.append(ood)

    levels = sorted({lv for r in runs if r.summary.get("holdout") for lv in r.summary["holdout"]["trained"]["levels"]},
                    key=lambda name: int(name[1:]))
    panels = make_subplots(rows=1, cols=3, subplot_titles=["IFEval Pr(L), base → trained",
                                                           "hold-out composite per level (trained)",
                                                           "reasoning accuracy (strict; flexible dashed)"])
    for i, r in enumerate(runs):
        s = r.summary
        panels.add_scatter(x=["base", "trained"], y=[100 * s["ifeval"]["base"]["prompt_loose"],
                                                     100 * s["ifeval"]["trained"]["prompt_loose"]],
                           name=r.run_id, legendgroup=r.run_id, mode="lines+markers", row=1, col=1,
                           marker_color=_color(i))
        if s.get("holdout"):
            lv = s["holdout"]["trained"]["levels"]
            panels.add_scatter(x=levels, y=[None if lv.get(name, {}).get("composite") is None
                                            else 100 * lv[name]["composite"] for name in levels],
                               name=r.run_id, legendgroup=r.run_id, showlegend=False, mode="lines+markers",
                               row=1, col=2, marker_color=_color(i))
        key = reasoning_key(s)
        if key:
            for mode, entry in math_modes(s["reasoning"][key]):  # strict solid, flexible dashed
                panels.add_scatter(x=["base", "trained"], y=[100 * entry["base"]["accuracy"],
                                                             100 * entry["trained"]["accuracy"]],
                                   name=f"{r.run_id} ({mode})", legendgroup=r.run_id, showlegend=False,
                                   mode="lines+markers", row=1, col=3, marker_color=_color(i),
                                   line_dash="solid" if mode == "strict" else "dash")
    panels.update_layout(height=420, title="Per run")
    panels.update_yaxes(title_text="%", range=[0, 100])
    return [*shown, panels]


def _color(i: int) -> str:
    import plotly.colors

    palette = plotly.colors.qualitative.Plotly
    return palette[i % len(palette)]


def seed_sections(runs: Sequence[RunRecord]) -> list[tuple[list[str], list[dict[str, str]]]]:
    """The across-seeds view, as (lines above a table, its rows): per setting, then each paired comparison. Empty
    when no setting has more than one run."""
    settings = replicates.group_settings(runs)
    if not replicates.has_replicates(settings):
        return []
    heading = ("Settings across seeds: mean ± sample standard deviation (n runs); after in percent, Δ (after − "
               "before) in points with the t-based 95% interval of its mean.")
    sections = [([heading] + replicates.legend_lines(settings), replicates.settings_rows(settings))]
    for reference, other in replicates.comparisons(settings):
        sections.append(([replicates.paired_heading(reference, other)], replicates.paired_rows(reference, other)))
    return sections


def _html_table(rows: list[dict[str, str]]) -> str:
    header = "".join(f"<th>{html.escape(h)}</th>" for h in rows[0])
    body = "".join("<tr>" + "".join(f"<td>{html.escape(v)}</td>" for v in row.values()) + "</tr>" for row in rows)
    return f"<table><thead><tr>{header}</tr></thead><tbody>{body}</tbody></table>"


def render_html(runs: Sequence[RunRecord], rows: list[dict[str, str]], sections: Sequence = ()) -> str:
    from plotly.offline import get_plotlyjs

    seeds = "".join("".join(f"<p class=\"note\">{html.escape(line)}</p>" for line in lines) + _html_table(table)
                    for lines, table in sections)
    seeds = f"<h2>Across seeds</h2>{seeds}" if seeds else ""
    figs = figures(runs)
    for fig in figs:
        fig.update_layout(template=TEMPLATE)
    charts = "".join(fig.to_html(include_plotlyjs=False, full_html=False, include_mathjax=False,
                                 config={"responsive": True}) for fig in figs)
    dirs = "".join(f"<li><code>{html.escape(r.run_id)}</code>: {html.escape(str(r.run_dir.resolve()))}</li>"
                   for r in runs)
    created = dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>sif compare · {len(runs)} runs</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; font-size: 0.9em; }}
th, td {{ border: 1px solid #ddd; padding: 4px 8px; text-align: left; white-space: nowrap; }}
th {{ background: #f4f4f4; }} tr:first-child td {{ background: #fafafa; }}
p.note {{ color: #555; max-width: 60em; }}
</style>
<script type="text/javascript">{get_plotlyjs()}</script>
</head><body>
<h1>Run comparison</h1>
<p class="note">Made {created}. The first run is the reference. IFEval cells read base → trained (trained − base, in
points); "Pr(L) vs ref" is the trained prompt-level loose accuracy minus the reference's, the way the paper's
Table 5 reports ablations, whose figures stand beside ours where a run differs from the reference in exactly one
ablation switch. Runs evaluated on different IFEval subsets (column "IFEval n") are not directly comparable; nor
are IFBench cells over different subsets ("IFBench n"; "n/a": the run did not evaluate IFBench). The
degenerate columns give the share of degenerate answers (lower is better); the clean columns give IFEval
instruction-level loose and the hold-out's hard constraints on the prompts where neither answer is degenerate
("n/a": the run was evaluated before these figures existed). The reasoning cell gives math accuracy strict (the
last \\boxed{{}} answer) and flexible (the last number), each with its exact 95% interval.</p>
{_html_table(rows)}
{seeds}
{charts}
<h2>Runs</h2><ul>{dirs}</ul>
</body></html>
"""


def compare_runs(run_dirs: Sequence[str | Path], output: str | Path | None = None,
                 echo: Callable[[str], None] = print) -> Path:
    """Print the comparison table and write the HTML page; returns its path."""
    if not run_dirs:
        raise InputError("compare: name at least one run directory")
    runs = [load_run(d) for d in run_dirs]
    rows = table_rows(runs)
    echo(format_table(rows))
    sections = seed_sections(runs)
    for lines, table in sections:
        echo("\n".join(["", *lines, format_table(table)]))
    target = Path(output) if output else outputs_dir() / f"compare-{dt.datetime.now().strftime('%Y%m%d-%H%M%S')}.html"
    atomic_write_text(target, render_html(runs, rows, sections))
    echo(f"wrote {target}")
    return target
