"""Stage 00 (notebook 00, optional): cold-start SFT of the policy into a thinking format.

Runs only with ``cold_start.enabled``; otherwise ``sif run`` records it as skipped. It builds the SFT set of
:mod:`sif_lib.cold_start.sft_set` (math think parts from the generator, instruction answers from the base policy
itself, sampled), holds back a few items of each kind as a check set, fine-tunes with
:mod:`sif_lib.cold_start.sft`, and answers the check set greedily before and after, to show whether the policy
now closes ``</think>``. Writes ``data/cold_start.jsonl`` and ``cold_start/`` (``policy/`` is the thinking policy
every later stage loads: :meth:`sif_lib.runner.runs.RunContext.use_cold_start_policy`).
"""

from __future__ import annotations

import hashlib
import html
import json
import random
from collections.abc import Callable

from sif_lib.cold_start.sft import train_sft
from sif_lib.cold_start.sft_set import (
    REWRITTEN_SOURCE,
    cold_start_math,
    instruction_rows,
    math_rows,
    sft_examples,
)
from sif_lib.constraints import check_constraints, extract_answer
from sif_lib.constraints.math_answer import score_flexible, score_reasoning
from sif_lib.core.io import read_json, write_json, write_jsonl
from sif_lib.evaluation.math_accuracy import accuracy
from sif_lib.evaluation.thinking import think_stats
from sif_lib.policy.answers import PolicyRunner, answer_store, spec_policy
from sif_lib.policy.generation import Sampling
from sif_lib.policy.models import load_tokenizer
from sif_lib.runner import tracking
from sif_lib.runner.runs import COLD_START_POLICY, RunContext
from sif_lib.runner.stage_table import stage_of_module
from sif_lib.synthesis import stepped_math
from sif_lib.synthesis.instructions import compose_cold_start
from sif_lib.synthesis.seeds import load_seeds

STAGE = stage_of_module(__name__)
CHECK_PER_KIND = 8   # items of each kind held back from the SFT set and answered before and after it
DATA = ("data", "cold_start.jsonl")


def build_rows(ctx: RunContext, echo: Callable[[str], None] = print) -> list[dict]:
    """Every cold-start row, split ``sft`` or ``check``; the base policy answers the instruction items."""
    params, cs = ctx.params, ctx.params.cold_start
    math = math_rows(cold_start_math(params))
    s = params.synthesis
    instructions = compose_cold_start(params, load_seeds(s.seeds, s.seed_column, s.strict))
    answers = PolicyRunner(spec_policy("base", ctx.base_policy), params, echo,
                           store=answer_store(ctx.root, params)).answer(
        ctx.root / "cold_start" / "base_answers", [i["prompt"] for i in instructions],
        Sampling(cs.answer_max_new_tokens, cs.answer_temperature, seed=params.run.seed), params.rollouts.batch_size)
    cut = None
    if cs.trim_cut_answers:  # an answer as long as its budget was cut there, most likely mid-sentence
        tokenizer = load_tokenizer(ctx.base_policy, key="model.policy")
        cut = [len(tokenizer(a, add_special_tokens=False)["input_ids"]) >= cs.answer_max_new_tokens - 1
               for a in answers]
    rows = []
    for kind_rows in (math, instruction_rows(instructions, answers, ctx.base_policy, cs.rewrite_answers, cut)):
        order = list(kind_rows)
        random.Random(f"{params.run.seed}:cold-start:check").shuffle(order)
        held = min(CHECK_PER_KIND, len(order) // 4)  # small sets keep three quarters for the SFT
        rows += [{**row, "split": "check" if i < held else "sft"} for i, row in enumerate(order)]
    return rows


def greedy_answers(ctx: RunContext, spec: str, name: str, folder: str, prompts: list[str],
                   echo: Callable[[str], None]) -> list[str]:
    """Greedy answers of ``spec`` to ``prompts`` with the math token budget (cached in ``cold_start/<folder>``)."""
    params = ctx.params
    return PolicyRunner(spec_policy(name, spec), params, echo, store=answer_store(ctx.root, params)).answer(
        ctx.root / "cold_start" / folder, prompts,
        Sampling(params.evaluation.math_max_new_tokens, 0.0, seed=params.run.seed), params.evaluation.batch_size)


def check_figures(rows: list[dict], texts: list[str], tokenizer=None) -> dict:
    """Closed-``</think>`` share and thinking length, math solved (strict ``\\boxed{}`` after ``</think>``,
    and flexible: the last number) and the instruction items' hard constraints met (after ``</think>``) on the
    check set."""
    math = [(r, t) for r, t in zip(rows, texts) if r["kind"] == "math"]
    strict = [score_reasoning(extract_answer(t, "require_think"), r["gold"]) == 1.0 for r, t in math]
    flexible = [score_flexible(extract_answer(t, "require_think") or "", r["gold"]) == 1.0 for r, t in math]
    hard = [met for r, t in zip(rows, texts) if r["kind"] == "instruction"
            for met in check_constraints(t, r.get("constraints") or (), answer_mode="after_think")]
    return {"thinking": think_stats(texts, tokenizer),
            "math": {"n": len(math), "strict": sum(strict), "flexible": sum(flexible)},
            "hard": {"n": len(hard), "met": sum(hard)}}


def level_check(ctx: RunContext, spec: str, echo: Callable[[str], None]) -> dict | None:
    """The SFT policy's greedy accuracy on ``cold_start.level_check_items`` stepped problems per level, strict and
    flexible, each with its exact 95% interval (None when the check is off)."""
    params, n = ctx.params, ctx.params.cold_start.level_check_items
    if n <= 0:
        return None
    out = {}
    for steps in stepped_math.LEVELS:
        items = stepped_math.generate_stepped_items(n, f"{params.run.seed}:level-check", steps)
        texts = greedy_answers(ctx, spec, "sft", f"level_check_{steps}", [i["prompt"] for i in items], echo)
        answers = [extract_answer(t, "require_think") for t in texts]
        out[str(steps)] = {
            "strict": accuracy([score_reasoning(a, i["answer"]) == 1.0 for a, i in zip(answers, items)]),
            "flexible": accuracy([score_flexible(a or "", i["answer"]) == 1.0 for a, i in zip(answers, items)]),
            "closed_think": think_stats(texts)["closed_share"]}
    return out


def _data_hash(rows: list[dict]) -> str:
    return hashlib.sha1(json.dumps(rows, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def run(ctx: RunContext, echo: Callable[[str], None] = print, progress: bool = True) -> dict:
    params, cs = ctx.params, ctx.params.cold_start
    if not cs.enabled:
        metrics = {"enabled": False, "note": "cold_start.enabled is false: the policy is used as it is"}
        ctx.write_metrics(STAGE.name, metrics)
        return metrics
    rows = build_rows(ctx, echo)
    write_jsonl(ctx.path(*DATA), rows)
    sft = [r for r in rows if r["split"] == "sft"]
    check = [r for r in rows if r["split"] == "check"]
    policy_dir = ctx.root.joinpath(*COLD_START_POLICY)
    record = {"data_sha1": _data_hash(sft), "cold_start": params.to_dict()["cold_start"], "base": ctx.base_policy}
    done = read_json(policy_dir / "sft.json", "") if (policy_dir / "sft.json").is_file() else {}
    if done.get("record") == record:
        training = done["training"]
        echo(f"[cold start] reusing the thinking policy in {policy_dir}")
    else:
        training = train_sft(sft_examples(sft, params.model.system_prompt, cs.think), params, ctx.base_policy,
                             ctx.root / "cold_start", progress=progress,
                             log_dir=tracking.log_dir(ctx.root, STAGE.name))
        write_json(policy_dir / "sft.json", {"record": record, "training": training})
    prompts = [r["prompt"] for r in check]
    before = greedy_answers(ctx, ctx.base_policy, "base", "check_base", prompts, echo)
    after = greedy_answers(ctx, str(policy_dir), "sft", "check_sft", prompts, echo)
    tokenizer = load_tokenizer(str(policy_dir), key="cold_start policy")
    metrics = {
        "enabled": True,
        "base_policy": ctx.base_policy,
        "policy_dir": str(policy_dir),
        "rows": {kind: {split: sum(r["kind"] == kind and r["split"] == split for r in rows)
                        for split in ("sft", "check")} for kind in ("math", "instruction")},
        "instruction_answers_dropped": cs.n_instructions - sum(r["kind"] == "instruction" for r in rows),
        "instruction_answers_rewritten": sum(r.get("answer_source") == REWRITTEN_SOURCE for r in rows),
        "instruction_answers_trimmed": sum(bool(r.get("trimmed")) for r in rows),
        "sources": sorted({f"{r['kind']}: think by {r['think_source']}, answer by {r['answer_source']}"
                           for r in rows}),
        "training": training,
        "check": {"n": len(check), "base": check_figures(check, before, tokenizer),
                  "sft": check_figures(check, after, tokenizer)},
        "level_check": level_check(ctx, str(policy_dir), echo),
        "examples": [{"kind": r["kind"], "prompt": r["prompt"], "base": b, "sft": a}
                     for r, b, a in list(zip(check, before, after))[::max(1, len(check) // 4)]],
    }
    ctx.write_metrics(STAGE.name, metrics)
    return metrics


# ---------------------------------------------------------------------------------------------------------------
# What notebook 00 shows


def example_rows_html(rows: list[dict], n: int = 2) -> str:
    """A few SFT rows of each kind: prompt, think part and answer, and who wrote each."""
    parts = []
    for kind in ("math", "instruction"):
        for row in [r for r in rows if r["kind"] == kind][:n]:
            parts.append(
                f"<div style='border:1px solid #ddd;padding:6px;margin:6px 0'><b>{kind}</b> "
                f"(think by {row['think_source']}, answer by {row['answer_source']})"
                f"<pre style='white-space:pre-wrap'>{html.escape(row['prompt'])}</pre>"
                f"<pre style='white-space:pre-wrap;color:#555'>&lt;think&gt;\n{html.escape(row['think'])}\n"
                f"&lt;/think&gt;</pre><pre style='white-space:pre-wrap'>{html.escape(row['answer'])}</pre></div>")
    return "".join(parts)


def loss_figure(metrics: dict):
    """The SFT loss per logged step (completion tokens only)."""
    import plotly.graph_objects as go

    curve = metrics["training"]["loss_curve"]
    fig = go.Figure(go.Scatter(x=[c["step"] for c in curve], y=[c["loss"] for c in curve], mode="lines+markers"))
    fig.update_layout(title="Cold-start SFT loss", xaxis_title="step", yaxis_title="loss (completion tokens)",
                      height=320, width=640)
    return fig


def check_table_html(metrics: dict) -> str:
    """Before/after on the check set: closed ``</think>`` share, thinking length, math solved."""
    check = metrics["check"]
    lines = ["<table><tr><th></th><th>base policy</th><th>after SFT</th></tr>"]
    for label, get in (
            ("answers closing &lt;/think&gt;", lambda f: f"{f['thinking']['closed']}/{f['thinking']['n']}"),
            ("mean thinking length (tokens, closed answers)",
             lambda f: ("–" if f["thinking"]["mean_think_tokens"] is None
                        else f"{f['thinking']['mean_think_tokens']:.0f}")),
            ("math solved, strict \\boxed{} after &lt;/think&gt;", lambda f: f"{f['math']['strict']}/{f['math']['n']}"),
            ("math solved, flexible (last number)", lambda f: f"{f['math']['flexible']}/{f['math']['n']}"),
            ("instruction items' hard constraints met",
             lambda f: f"{f.get('hard', {}).get('met', '–')}/{f.get('hard', {}).get('n', '–')}")):
        lines.append(f"<tr><td>{label}</td><td>{get(check['base'])}</td><td>{get(check['sft'])}</td></tr>")
    return "".join(lines) + "</table>"


def level_check_html(metrics: dict) -> str:
    """The SFT policy's math accuracy per number of steps (greedy), strict and flexible, with exact intervals."""
    levels = metrics.get("level_check")
    if not levels:
        return "<p>No level check (cold_start.level_check_items is 0).</p>"

    def cell(fig):
        low, high = fig["ci95"]
        return f"{fig['correct']}/{fig['n']} = {100 * fig['accuracy']:.0f}% [{100 * low:.0f}, {100 * high:.0f}]"
    rows = "".join(f"<tr><td>{steps}</td><td>{cell(f['strict'])}</td><td>{cell(f['flexible'])}</td>"
                   f"<td>{100 * f['closed_think']:.0f}%</td></tr>" for steps, f in levels.items())
    return ("<table><tr><th>steps</th><th>strict (\\boxed{} after &lt;/think&gt;)</th><th>flexible (last number)"
            "</th><th>closing &lt;/think&gt;</th></tr>" + rows + "</table>")


def examples_html(metrics: dict) -> str:
    """Check prompts answered by the base policy and by the SFT policy, side by side."""
    parts = []
    for ex in metrics["examples"]:
        parts.append(
            f"<tr><td style='vertical-align:top'><b>{ex['kind']}</b><br>{html.escape(ex['prompt'][:300])}</td>"
            f"<td style='vertical-align:top'><pre "
            f"style='white-space:pre-wrap'>{html.escape(ex['base'][:700])}</pre></td>"
            f"<td style='vertical-align:top'><pre "
            f"style='white-space:pre-wrap'>{html.escape(ex['sft'][:700])}</pre></td></tr>")
    return ("<table><tr><th>check prompt</th><th>base policy</th><th>after SFT</th></tr>" + "".join(parts)
            + "</table>")
