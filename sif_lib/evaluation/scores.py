"""Stage 07's scores: IFEval and IFBench (strict and loose, prompt and instruction level), the curriculum hold-out
(by the held-out scorer), math accuracy, the repetition diagnostic, and the deltas trained minus base with their
paired intervals and flips (:mod:`sif_lib.evaluation.paired`).

IFEval and IFBench folders also hold ``responses.jsonl`` (``prompt``, ``response``): the part of each output that
is scored (``model.answer_mode``: the text after ``</think>`` for reasoning models, the whole output otherwise), in
the format ``sif ifeval score`` and ``sif ifbench score`` read. With the exact prompt subset that was evaluated
(``eval/ifeval_input_data.jsonl``, ``eval/ifbench_input_data.jsonl``) anyone can rescore them; ``summary.json``
carries the command.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from sif_lib.constraints import answer_text
from sif_lib.core.io import write_jsonl
from sif_lib.core.stats import difference
from sif_lib.evaluation import curriculum_holdout as holdout_eval
from sif_lib.evaluation import id_groups, math_accuracy, paired
from sif_lib.evaluation.benchmarks import IFBenchTask, IFEvalTask, rescore_command, score_ifbench, score_ifeval
from sif_lib.evaluation.generate import EVAL_DIR
from sif_lib.policy.answers import read_record
from sif_lib.rm_service.clients import make_scorer
from sif_lib.runner.runs import RunContext

IFEVAL_METRICS = ("prompt_strict", "inst_strict", "prompt_loose", "inst_loose")


POLICIES = ("base", "trained")


RESPONSES = "responses.jsonl"  # IFEval, IFBench: the scored answers, in the format `sif ifeval score` reads


def scored_answers(texts: Sequence[str], answer_mode: str) -> list[str]:
    """The part of each output that is scored (``model.answer_mode``); no answer becomes the empty string."""
    return [answer_text(text, answer_mode) for text in texts]


def generation_figures(folder: Path) -> dict | None:
    record = read_record(folder / "generation.json") or {}
    return {k: record.get(k) for k in ("n_prompts", "generated", "seconds", "response_tokens", "response_tokens_per_s")}


def ifeval_figures(report) -> dict:
    """The summary's view of one :class:`~sif_lib.evaluation.ifeval_scoring.IFEvalReport` (fractions, not percent)."""
    return {
        "prompt_strict": report.prompt_level_strict,
        "inst_strict": report.instruction_level_strict,
        "prompt_loose": report.prompt_level_loose,
        "inst_loose": report.instruction_level_loose,
        "n_prompts": report.n_prompts,
        "n_instructions": report.n_instructions,
        "categories": {name: {"n": fig["instructions"], "inst_strict": fig["strict"], "inst_loose": fig["loose"]}
                       for name, fig in report.by_category.items()},
        "instructions": {name: {"n": fig["instructions"], "inst_strict": fig["strict"], "inst_loose": fig["loose"]}
                         for name, fig in report.by_instruction.items()},
    }


def score_ifeval_stage(ctx: RunContext, task: IFEvalTask, outputs: dict) -> dict:
    """Write each policy's ``responses.jsonl`` (the scored answers) and score it as ``sif ifeval score`` does."""
    out: dict = {"source": task.source, "n_prompts": len(task.rows), "input_data": str(task.input_path)}
    rows = {}
    for name in POLICIES:
        folder = ctx.root / EVAL_DIR / f"ifeval_{name}"
        answers = scored_answers(outputs[name]["ifeval"], ctx.params.model.answer_mode)
        write_jsonl(folder / RESPONSES, [{"prompt": p, "response": a} for p, a in zip(task.prompts, answers)])
        report = score_ifeval(task.input_path, folder / RESPONSES, folder)
        rows[name] = report.rows
        out[name] = ifeval_figures(report)
        out[name]["rescore"] = rescore_command(task.input_path, folder / RESPONSES, folder / "rescored")
    return _paired(ctx, out, rows)


def score_ifbench_stage(ctx: RunContext, task: IFBenchTask, outputs: dict) -> dict:
    """IFBench as :func:`score_ifeval_stage` scores IFEval, leaving out (and counting, under ``left_out``) the
    instructions whose check cannot run here, as ``sif ifbench score --skip-unavailable`` does."""
    out: dict = {"source": task.source, "n_prompts": len(task.rows), "input_data": str(task.input_path),
                 "left_out": task.left_out}
    rows = {}
    for name in POLICIES:
        folder = ctx.root / EVAL_DIR / f"ifbench_{name}"
        answers = scored_answers(outputs[name]["ifbench"], ctx.params.model.answer_mode)
        write_jsonl(folder / RESPONSES, [{"key": r["key"], "prompt": r["prompt"], "response": a}
                                         for r, a in zip(task.rows, answers)])
        report = score_ifbench(task.input_path, folder / RESPONSES, folder)
        rows[name] = report.rows
        out[name] = ifeval_figures(report)
        out[name]["rescore"] = rescore_command(task.input_path, folder / RESPONSES, folder / "rescored", "ifbench",
                                               skip_unavailable=bool(task.left_out.get("instructions")))
    return _paired(ctx, out, rows)


def _paired(ctx: RunContext, out: dict, rows: dict) -> dict:
    """``out`` with the deltas of the four figures, their paired intervals and the prompt-level flips, and the
    instruction-level figures per id and per group of ids (trained, untrained, held out: :mod:`id_groups`)."""
    params = ctx.params
    out["delta"] = {m: difference(out["base"][m], out["trained"][m]) for m in IFEVAL_METRICS}
    found = paired.ifeval_intervals(rows["base"], rows["trained"], params.evaluation.bootstrap, params.run.seed)
    out["delta_ci95"], out["flips"] = found["intervals"], found["flips"]
    breakdown = id_groups.id_breakdown(rows["base"], rows["trained"], id_groups.trained_ids(ctx.root),
                                       params.synthesis.heldout_ids, params.evaluation.bootstrap, params.run.seed)
    out["id_groups"], out["by_id"] = breakdown["groups"], breakdown["by_id"]
    if breakdown["leaked"]:
        out["heldout_ids_in_training_data"] = breakdown["leaked"]
    return out


def score_reasoning_stage(ctx: RunContext, tasks: list[math_accuracy.MathTask], outputs: dict) -> dict:
    """Accuracy per math task and policy, strict (the last ``\\boxed{}``, as the RL reward) at the top level of each
    task's entry and flexible (the last number, as lm-eval's GSM8K) under ``flexible``; per-item verdicts of both
    go to ``eval/math_<task>_<policy>/scored.jsonl``."""
    out = {}
    for task in tasks:
        entry: dict = {"source": task.source, "n": len(task.items)}
        flexible: dict = {}
        verdicts: dict = {"strict": {}, "flexible": {}}
        for name in POLICIES:
            texts = outputs[name][f"math_{task.name}"]
            for mode in math_accuracy.EXTRACTIONS:
                verdicts[mode][name] = math_accuracy.score_responses(task, texts, ctx.params.model.answer_mode, mode)
            write_jsonl(ctx.root / EVAL_DIR / f"math_{task.name}_{name}" / "scored.jsonl",
                        [{"id": item.get("id"), "answer": item["answer"], "correct": ok, "correct_flexible": loose}
                         for item, ok, loose in zip(task.items, verdicts["strict"][name], verdicts["flexible"][name])])
            entry[name] = math_accuracy.accuracy(verdicts["strict"][name])
            flexible[name] = math_accuracy.accuracy(verdicts["flexible"][name])
        for figures, mode in ((entry, "strict"), (flexible, "flexible")):
            figures["delta"] = difference(figures["base"]["accuracy"], figures["trained"]["accuracy"])
            found = paired.accuracy_intervals(verdicts[mode]["base"], verdicts[mode]["trained"],
                                              ctx.params.evaluation.bootstrap, ctx.params.run.seed)
            figures["delta_ci95"], figures["flips"] = found["interval"], found["flips"]
        entry["flexible"] = flexible
        out[task.name] = entry
    return out


def score_holdout_stage(ctx: RunContext, rows: list[dict], responses: dict) -> dict:
    """Hold-out verdicts for both policies (saved to ``eval/holdout_<policy>/verdicts.jsonl``) and aggregates."""
    params = ctx.params
    scorer, note = None, None
    if any(c.get("kind") == "soft" for row in rows for c in row["constraints"]):
        if params.scoring.rm_url or (ctx.root / "rm").is_dir():
            scorer = make_scorer(params, ctx.root)
        else:
            note = f"{ctx.root / 'rm'} is absent: soft constraints are unscored and composites cover hard ones only"
    out: dict = {"n_prompts": len(rows), "soft_scorer": "reward_model" if scorer is not None else None,
                 "note": note}
    verdicts = {}
    for name in POLICIES:
        verdicts[name] = holdout_eval.holdout_verdicts(params, rows, responses[name]["holdout"], scorer,
                                                        cache=ctx.root / EVAL_DIR / f"holdout_{name}" / "scores.jsonl")
        write_jsonl(ctx.root / EVAL_DIR / f"holdout_{name}" / "verdicts.jsonl", verdicts[name])
        out[name] = holdout_eval.aggregate(verdicts[name])
    out["delta"] = holdout_eval.compare(out["base"], out["trained"])
    found = paired.holdout_intervals(verdicts["base"], verdicts["trained"], params.evaluation.bootstrap,
                                     params.run.seed)
    out["delta_ci95"], out["flips"] = found["intervals"], found["flips"]
    return out
