"""Stage 02 (notebook 02): decompose every instruction into its curriculum ladder L0..Ln.

Writes ``data/curriculum.jsonl`` and ``data/curriculum/``; the logic is :mod:`sif_lib.synthesis.curriculum`.
"""

from __future__ import annotations

import html

from sif_lib.core.display import badge_html
from sif_lib.core.io import read_jsonl, write_jsonl
from sif_lib.runner.runs import RunContext
from sif_lib.runner.stage_table import stage_of_module
from sif_lib.synthesis.curriculum import build_curriculum, check_instructions, dataset_rows, level_stats
from sif_lib.synthesis.instructions import save_splits

STAGE = stage_of_module(__name__)


def run(ctx: RunContext) -> dict:
    """Read ``data/instructions.jsonl``; write ``data/curriculum.jsonl``, ``data/curriculum/`` and the metrics."""
    source = ctx.require("data", "instructions.jsonl")
    instructions = read_jsonl(source)
    check_instructions(instructions, source)
    curriculum = build_curriculum(instructions)
    write_jsonl(ctx.path("data", "curriculum.jsonl"), curriculum)
    save_splits(dataset_rows(curriculum), ctx.path("data", "curriculum"))

    train = [r for r in curriculum if r["split"] == "train"]
    metrics = {
        "rows": len(curriculum),
        "ladders": {"train": sum(r["level"] == 0 for r in train),
                    "heldout": sum(r["level"] == 0 and r["split"] == "heldout" for r in curriculum)},
        "rl_instruction_prompts": sum(r["level"] >= 1 for r in train),
        "levels_train": level_stats(curriculum, "train"),
        "levels_heldout": level_stats(curriculum, "heldout"),
        "level_definition": "level k = sub-instructions carrying exactly k constraints (the first k of their "
                            "instruction); constraints = k x instructions, split by kind",
    }
    ctx.write_metrics(STAGE.name, metrics)
    return metrics


# ---------------------------------------------------------------------------------------------------------------
# What notebook 02 shows


def level_table_html(stats: list[dict]) -> str:
    """The per-level table with the paper's Table 1 columns beside this run's."""
    head = ("<tr><th>level</th><th>instructions</th><th>soft</th><th>hard</th><th>hard share</th>"
            "<th style='border-left:1px solid #ccc'>paper instructions</th><th>paper soft</th><th>paper hard</th>"
            "<th>paper hard share</th></tr>")

    def share(hard, soft):
        return f"{hard / (hard + soft):.0%}" if hard is not None and (hard or soft) else "–"

    def cell(v):
        return "–" if v is None else f"{v:,}"

    body = "".join(
        f"<tr><td>{html.escape(s['level'])}</td><td>{s['instructions']:,}</td><td>{s['soft']:,}</td>"
        f"<td>{s['hard']:,}</td><td>{share(s['hard'], s['soft'])}</td>"
        f"<td style='border-left:1px solid #ccc'>{cell(s['paper_instructions'])}</td><td>{cell(s['paper_soft'])}</td>"
        f"<td>{cell(s['paper_hard'])}</td><td>{share(s['paper_hard'], s['paper_soft'])}</td></tr>"
        for s in stats)
    return f"<table><thead>{head}</thead><tbody>{body}</tbody></table>"


def level_figure(stats: list[dict]):
    """Stacked soft/hard constraint bars per level, this run beside the paper's Table 1."""
    import plotly.graph_objects as go  # heavy: only where a figure is drawn
    from plotly.subplots import make_subplots

    stats = [s for s in stats if s["level"] != "L0"]
    levels = [s["level"] for s in stats]
    paper = [s for s in stats if s["paper_soft"] is not None]
    fig = make_subplots(rows=1, cols=2, subplot_titles=("this run (train split)", "paper, Table 1"))
    for col, rows, suffix in ((1, stats, ""), (2, paper, "paper_")):
        x = [s["level"] for s in rows]
        for kind, colour in (("soft", "#2471a3"), ("hard", "#c0392b")):
            fig.add_trace(go.Bar(x=x, y=[s[suffix + kind] for s in rows], name=kind, marker_color=colour,
                                 legendgroup=kind, showlegend=col == 1,
                                 customdata=[s[suffix + "instructions"] for s in rows],
                                 hovertemplate="%{x}: %{y} " + kind + " constraints<br>"
                                               "%{customdata} sub-instructions<extra></extra>"),
                          row=1, col=col)
    fig.update_layout(barmode="stack", height=420, title="Constraints per curriculum level",
                      margin=dict(l=10, r=10, t=70, b=40))
    fig.update_yaxes(title_text="constraints", row=1, col=1)
    fig.update_xaxes(categoryorder="array", categoryarray=levels)
    return fig


def ladder_html(curriculum: list[dict], parent: str) -> str:
    """One ladder L0..Ln as an HTML list (for static display; the explorer widget is interactive)."""
    rows = sorted((r for r in curriculum if r["parent"] == parent), key=lambda r: r["level"])
    if not rows:
        return f"<p>no ladder for {html.escape(parent)}</p>"
    items = []
    for r in rows:
        new = badge_html(r["constraints"][-1]) + " " if r["constraints"] else ""
        items.append(f"<li><b>L{r['level']}</b> {new}<span style='white-space:pre-wrap'>"
                     f"{html.escape(r['prompt'])}</span></li>")
    return f"<ul style='list-style:none;padding-left:0'>{''.join(items)}</ul>"
