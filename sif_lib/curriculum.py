"""Stage 02: the incremental constraint curriculum.

An instruction x with constraints c1..cn is decomposed into sub-instructions x_0..x_n, where x_k is the seed
followed by c1..ck (in the instruction's order) and x_0 is the bare seed. L1..Ln are the RL training prompts;
L0 is kept because stage 03 needs the response to the bare seed as the negative for c1.

As in the released configuration, every level is a training prompt and the levels are shuffled together at
training time (``grpo.curriculum: mixed``); this module only writes them, in ladder order.

What "level k" counts (:func:`level_stats`)
    The paper's Table 1 counts *sub-instructions* at level k: prompts that carry exactly k constraints,
    whichever instruction they were cut from. Its arithmetic shows it: soft + hard at level k is exactly k
    times the instructions at level k (L2: 3,203 + 2,287 = 2 x 2,745). So here, level k holds every
    sub-instruction x_k of every instruction with n >= k; "constraints" is k times that number, split into
    soft and hard by the kinds of c1..ck. The paper's level counts are nearly flat (2,806 ... 2,619), which
    means almost all of its instructions carried five constraints; synthesis here spreads n evenly over
    1..5, so level counts fall with k (in the 200-instruction default: 200, 160, 120, 80, 40).
"""

from __future__ import annotations

from collections import Counter

STAGE = "02_decompose_curriculum"

# The paper's Table 1: level -> (instructions, soft constraints, hard constraints).
PAPER_TABLE1 = {
    1: (2806, 1578, 1228),
    2: (2745, 3203, 2287),
    3: (2700, 4833, 3267),
    4: (2700, 6481, 4319),
    5: (2619, 8101, 4994),
}


def decompose(instruction: dict) -> list[dict]:
    """The ladder of one instruction: rows for levels 0..n, each holding the first k constraints."""
    from sif_lib.synthesis import compose_prompt

    constraints = instruction["constraints"]
    n = len(constraints)
    rows = []
    for k in range(n + 1):
        prefix = [dict(c) for c in constraints[:k]]
        rows.append({
            "id": f"{instruction['id']}-L{k}",
            "parent": instruction["id"],
            "level": k,
            "n_constraints": n,
            "constraints": prefix,
            "prompt": compose_prompt(instruction["seed"], [c["description"] for c in prefix]),
            "seed_prompt": instruction["seed"],
            "split": instruction["split"],
        })
    return rows


def build_curriculum(instructions: list[dict]) -> list[dict]:
    """Every instruction's ladder, in instruction order."""
    return [row for inst in instructions for row in decompose(inst)]


def level_stats(curriculum: list[dict], split: str | None = "train") -> list[dict]:
    """Per level: sub-instructions, constraints (soft, hard) and the paper's Table 1 numbers alongside.

    See the module docstring for what a level counts. ``split`` restricts the rows (None: all). Level 0 is
    included (no constraints; the paper has no such row).
    """
    rows = [r for r in curriculum if split is None or r["split"] == split]
    by_level: dict[int, list[dict]] = {}
    for r in rows:
        by_level.setdefault(r["level"], []).append(r)
    out = []
    for level in sorted(by_level):
        kinds = Counter(c["kind"] for r in by_level[level] for c in r["constraints"])
        paper = PAPER_TABLE1.get(level)
        out.append({
            "level": f"L{level}",
            "instructions": len(by_level[level]),
            "constraints": sum(len(r["constraints"]) for r in by_level[level]),
            "soft": kinds.get("soft", 0),
            "hard": kinds.get("hard", 0),
            "paper_instructions": paper[0] if paper else None,
            "paper_soft": paper[1] if paper else None,
            "paper_hard": paper[2] if paper else None,
        })
    return out


def run_curriculum_stage(ctx) -> dict:
    """Read ``data/instructions.jsonl``; write ``data/curriculum.jsonl``, ``data/curriculum/`` and the metrics."""
    from sif_lib.errors import InputError
    from sif_lib.runs import read_jsonl, write_jsonl
    from sif_lib.synthesis import save_splits

    source = ctx.require("data", "instructions.jsonl", stage="01_synthesize_constraints")
    instructions = read_jsonl(source)
    for number, inst in enumerate(instructions, start=1):
        missing = [k for k in ("id", "seed", "constraints", "split") if k not in inst]
        if missing:
            raise InputError(f"{source}:{number}: missing key(s) {', '.join(missing)}")
        if not isinstance(inst["constraints"], list):
            raise InputError(f"{source}:{number}: 'constraints' must be a list")
        for c in inst["constraints"]:
            if not isinstance(c, dict) or not {"id", "kind", "category", "description", "kwargs"} <= set(c):
                raise InputError(f"{source}:{number}: each constraint needs id, kind, category, description "
                                 "and kwargs")
    curriculum = build_curriculum(instructions)
    write_jsonl(ctx.path("data", "curriculum.jsonl"), curriculum)
    save_splits(_dataset_rows(curriculum), ctx.path("data", "curriculum"))

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
    ctx.write_metrics(STAGE, metrics)
    return metrics


def _dataset_rows(curriculum: list[dict]) -> list[dict]:
    """Curriculum rows with constraint ``kwargs`` as JSON text (one Arrow schema for every constraint id)."""
    import json

    out = []
    for r in curriculum:
        row = dict(r)
        row["constraints"] = [{"id": c["id"], "kind": c["kind"], "category": c["category"],
                               "description": c["description"],
                               "kwargs": json.dumps(c["kwargs"], ensure_ascii=False, sort_keys=True)}
                              for c in r["constraints"]]
        out.append(row)
    return out


# ---------------------------------------------------------------------------------------------------------------
# Display helpers for notebook 02


def level_table_html(stats: list[dict]) -> str:
    """The per-level table with the paper's Table 1 columns beside this run's."""
    import html

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
    import plotly.graph_objects as go
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
    import html

    from sif_lib.synthesis import badge_html

    rows = sorted((r for r in curriculum if r["parent"] == parent), key=lambda r: r["level"])
    if not rows:
        return f"<p>no ladder for {html.escape(parent)}</p>"
    items = []
    for r in rows:
        new = badge_html(r["constraints"][-1]) + " " if r["constraints"] else ""
        items.append(f"<li><b>L{r['level']}</b> {new}<span style='white-space:pre-wrap'>"
                     f"{html.escape(r['prompt'])}</span></li>")
    return f"<ul style='list-style:none;padding-left:0'>{''.join(items)}</ul>"
