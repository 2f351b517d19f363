"""Stage 01 (notebook 01): synthesize multi-constraint instructions and the math items of the reasoning mix.

Writes ``data/instructions.jsonl``, ``data/reasoning.jsonl`` and ``data/instructions/`` (a ``datasets`` copy).
The logic is :mod:`sif_lib.synthesis.instructions`, :mod:`~sif_lib.synthesis.math_items`,
:mod:`~sif_lib.synthesis.seeds` and the optional :mod:`~sif_lib.synthesis.paraphrase`.
"""

from __future__ import annotations

import html
from collections import Counter
from collections.abc import Callable

from sif_lib.cold_start.sft_set import cold_start_questions
from sif_lib.config.params import Params
from sif_lib.constraints.soft import SOFT_CATEGORIES
from sif_lib.core.display import badge_html
from sif_lib.core.io import write_jsonl
from sif_lib.runner.runs import RunContext
from sif_lib.runner.stage_table import stage_of_module
from sif_lib.synthesis.instructions import (
    compose_instructions,
    compose_reasoning,
    dataset_rows,
    reasoning_count,
    save_splits,
    synthesis_metrics,
)
from sif_lib.synthesis.params_checks import check_constraint_ids
from sif_lib.synthesis.paraphrase import paraphrase_instructions, policy_paraphraser
from sif_lib.synthesis.seeds import load_seeds

STAGE = stage_of_module(__name__)


def synthesize(params: Params, seeds, paraphraser: Callable[[list[str]], list[str]] | None = None
               ) -> tuple[list[dict], list[dict]]:
    """Instructions (train then held-out) and reasoning items (train then held-out).

    ``seeds`` is a :class:`~sif_lib.synthesis.seeds.SeedSet` or a list of seeds. With ``synthesis.paraphrase``
    on, ``paraphraser`` (default: the policy model) rewrites constraint sentences.
    """
    instructions, _ = compose_instructions(params, seeds)
    if params.synthesis.paraphrase:
        paraphrase_instructions(instructions, paraphraser or policy_paraphraser(params))
    rl_prompts = sum(r["n_constraints"] for r in instructions if r["split"] == "train")
    items, _ = compose_reasoning(params, reasoning_count(params.synthesis.reasoning_share, rl_prompts),
                                 params.evaluation.math_items, exclude_questions=cold_start_questions(params))
    return instructions, items


def run(ctx: RunContext) -> dict:
    """Load seeds, synthesize, write ``data/instructions.jsonl``, ``data/reasoning.jsonl``,
    ``data/instructions/`` and the stage metrics; returns the metrics."""
    params = ctx.params
    check_constraint_ids(params, str(ctx.params_file or "<params>"))  # a notebook may open any params file
    s = params.synthesis
    seed_set = load_seeds(s.seeds, s.seed_column, s.strict)
    instructions, info = compose_instructions(params, seed_set)
    paraphrase_info = {}
    if s.paraphrase:
        paraphrase_info = paraphrase_instructions(instructions, policy_paraphraser(params))
    rl_prompts = sum(r["n_constraints"] for r in instructions if r["split"] == "train")
    reasoning_items, math_info = compose_reasoning(params, reasoning_count(s.reasoning_share, rl_prompts),
                                                   params.evaluation.math_items,
                                                   exclude_questions=cold_start_questions(params))

    write_jsonl(ctx.path("data", "instructions.jsonl"), instructions)
    write_jsonl(ctx.path("data", "reasoning.jsonl"), reasoning_items)
    save_splits(dataset_rows(instructions), ctx.path("data", "instructions"))

    metrics = synthesis_metrics(instructions, reasoning_items)
    rl_total = rl_prompts + metrics["reasoning_items"]["train"]
    metrics.update({
        "seeds": {"source": seed_set.source, "loaded": len(seed_set), "skipped": len(seed_set.skipped),
                  "skipped_examples": seed_set.skipped[:5], "used_train": info["seeds_train"],
                  "used_heldout": info["seeds_heldout"]},
        "kind_fallbacks": info["kind_fallbacks"],
        "reasoning_share_achieved": round(metrics["reasoning_items"]["train"] / rl_total, 4) if rl_total else 0.0,
        **math_info,
        **paraphrase_info,
    })
    ctx.write_metrics(STAGE.name, metrics)
    return metrics


# ---------------------------------------------------------------------------------------------------------------
# What notebook 01 shows


def counts_table_html(metrics: dict) -> str:
    """The per-category and per-id counts as two small HTML tables side by side."""
    def table(title: str, counts: dict) -> str:
        rows = "".join(f"<tr><td>{html.escape(str(k))}</td><td style='text-align:right'>{v}</td></tr>"
                       for k, v in counts.items())
        return (f"<table style='display:inline-table;margin-right:2em;vertical-align:top'>"
                f"<thead><tr><th>{html.escape(title)}</th><th>count</th></tr></thead><tbody>{rows}</tbody></table>")

    summary = {
        "instructions (train / held-out)": f"{metrics['instructions']['train']} / {metrics['instructions']['heldout']}",
        "constraints": metrics["constraints"],
        "hard share": f"{metrics['hard_share']:.1%}",
        "soft categories covered": f"{metrics['soft_categories_covered']} / 25",
        "hard ids covered": metrics["hard_ids_covered"],
        "math items (train / held-out)":
            f"{metrics['reasoning_items']['train']} / {metrics['reasoning_items']['heldout']}",
    }
    if "seeds" in metrics:
        summary["seeds loaded / skipped"] = f"{metrics['seeds']['loaded']} / {metrics['seeds']['skipped']}"
    per_n = {f"n = {k}": v for k, v in metrics["per_n"].items()}
    return (table("summary", summary) + table("constraints per instruction", per_n)
            + table("soft category", metrics["per_soft_category"]) + table("hard id", metrics["per_hard_id"]))


def render_instruction_html(instruction: dict) -> str:
    """One instruction: the seed, then each constraint with a HARD/SOFT badge and its category."""
    items = "".join(
        f"<li>{badge_html(c)} {html.escape(c['description'])}</li>" for c in instruction["constraints"])
    return (f"<div style='margin:0.6em 0'><b>{html.escape(instruction['id'])}</b> "
            f"<span style='color:#666'>({html.escape(instruction['split'])}, {html.escape(instruction['domain'])}, "
            f"n = {instruction['n_constraints']})</span><br>{html.escape(instruction['seed'])}<ol>{items}</ol></div>")


def examples_html(instructions: list[dict], k: int = 4) -> str:
    """``k`` training instructions with different constraint counts, fewest first."""
    by_n: dict[int, dict] = {}
    for r in instructions:
        if r["split"] == "train":
            by_n.setdefault(r["n_constraints"], r)
    picks = [by_n[n] for n in sorted(by_n)]
    step = max(1, len(picks) // k) if picks else 1
    return "".join(render_instruction_html(r) for r in picks[::step][:k])


def type_mix_figure(instructions: list[dict]):
    """Bar chart of constraints per soft category and per hard id (this run's type mix)."""
    import plotly.graph_objects as go  # heavy: only where a figure is drawn
    from plotly.subplots import make_subplots

    constraints = [c for r in instructions for c in r["constraints"]]
    soft = Counter(c["category"] for c in constraints if c["kind"] == "soft")
    hard = Counter(c["id"] for c in constraints if c["kind"] == "hard")
    soft_names = [c.name for c in SOFT_CATEGORIES]
    hard_names = sorted(hard)
    n_soft, n_hard = sum(soft.values()), sum(hard.values())
    fig = make_subplots(rows=1, cols=2, column_widths=[0.5, 0.5], horizontal_spacing=0.28,
                        subplot_titles=(f"soft: {n_soft} constraints in {len(soft)} categories",
                                        f"hard: {n_hard} constraints over {len(hard)} ids"))
    fig.add_trace(go.Bar(y=soft_names, x=[soft.get(n, 0) for n in soft_names], orientation="h", name="soft",
                         marker_color="#2471a3"), row=1, col=1)
    fig.add_trace(go.Bar(y=hard_names, x=[hard[n] for n in hard_names], orientation="h", name="hard",
                         marker_color="#c0392b"), row=1, col=2)
    share = n_hard / (n_soft + n_hard) if constraints else 0.0
    fig.update_yaxes(autorange="reversed", tickfont_size=10)
    fig.update_xaxes(title_text="constraints")
    fig.update_layout(height=680, title=f"Constraint type mix ({share:.0%} hard)", showlegend=False,
                      margin=dict(l=10, r=10, t=70, b=40))
    return fig
