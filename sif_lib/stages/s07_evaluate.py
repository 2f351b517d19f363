"""Stage 07 (notebook 07): the base policy against the trained policy, with the same greedy decoding, on
three benchmarks (four with IFBench), and the run's ``report.html``.

* **IFEval** (:mod:`sif_lib.evaluation.benchmarks`): the official prompts, the first ``evaluation.limit`` of them,
  scored strict and loose at prompt and instruction level by :mod:`sif_lib.evaluation.ifeval_scoring`.
* **IFBench**, when ``evaluation.ifbench`` is on: out-of-distribution constraint types, the first
  ``evaluation.ifbench_limit`` prompts, scored the same way by :mod:`sif_lib.evaluation.ifbench_scoring`; instructions
  whose check cannot run here are left out and counted.
* **The curriculum hold-out** (:mod:`sif_lib.evaluation.curriculum_holdout`): satisfaction per level L1..L5, by the
  held-out scorer the GRPO probe uses too.
* **Reasoning retention** (:mod:`sif_lib.evaluation.math_accuracy`): held-out synthetic math, GSM8K if given.
* **Degenerate answers** (:mod:`sif_lib.evaluation.degenerate_figures`): on IFEval and the hold-out, the share of
  degenerate answers base against trained, the headline figures on the prompts where neither answer is
  degenerate (``clean``), and a gallery of answers that gained checks while turning degenerate.

Answers are made by :mod:`sif_lib.evaluation.generate`, scored by :mod:`sif_lib.evaluation.scores`; the tables
and figures the notebook shows (and ``report.html`` keeps) are :mod:`sif_lib.evaluation.report`'s.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from sif_lib.constraints.repetition import repetition_summary
from sif_lib.core.io import atomic_write_text, write_json
from sif_lib.evaluation.degenerate_figures import degenerate_figures
from sif_lib.evaluation.generate import EVAL_DIR, EvalInputs, generate_all
from sif_lib.evaluation.report import summary_markdown
from sif_lib.evaluation.scores import (
    generation_figures,
    score_holdout_stage,
    score_ifbench_stage,
    score_ifeval_stage,
    score_reasoning_stage,
    scored_answers,
)
from sif_lib.evaluation.thinking import thinking_summary
from sif_lib.policy.models import load_tokenizer
from sif_lib.runner.runs import RunContext
from sif_lib.runner.stage_table import stage_of_module

STAGE = stage_of_module(__name__)


def run(ctx: RunContext, echo: Callable[[str], None] = print) -> dict:
    """Generate, score and summarise; writes ``eval/summary.{json,md}`` and ``metrics/07_evaluate.json``."""
    params = ctx.params
    eval_dir = ctx.root / EVAL_DIR
    inputs = EvalInputs.load(ctx)  # a bad path or a missing stage fails here, in seconds
    outputs = generate_all(ctx, inputs, echo)

    summary: dict = {
        "run_id": ctx.run_id,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "policies": {name: p.describe() for name, p in inputs.policies.items()},
        "decoding": {key: s.to_dict() for key, s in inputs.decoding.items()},
        "batch_size": params.evaluation.batch_size,
        "backend": inputs.backend,
        "system_prompt": params.model.system_prompt,
        "answer_mode": params.model.answer_mode,
        "generation": {name: {key: generation_figures(eval_dir / f"{key}_{name}") for key in outputs[name]}
                       for name in outputs},
        # The older diagnostic, kept for what reads it: rule checks can be met by loops
        # (:mod:`sif_lib.constraints.repetition`); the broader "degenerate" figures below are the headline. Like the
        # scores, it reads the answer part of each output.
        "repetition": {name: {key: repetition_summary(scored_answers(texts, params.model.answer_mode))
                              for key, texts in outputs[name].items()}
                       for name in outputs},
        # Closed </think> share and thinking length, from the raw outputs (the answer mode aside).
        "thinking": thinking_summary(outputs, load_tokenizer(params.model.policy, key="model.policy")),
    }
    echo("scoring IFEval")
    summary["ifeval"] = score_ifeval_stage(ctx, inputs.ifeval, outputs)
    if inputs.ifbench is not None:
        echo("scoring IFBench")
        summary["ifbench"] = score_ifbench_stage(ctx, inputs.ifbench, outputs)
    echo("scoring the curriculum hold-out")
    summary["holdout"] = score_holdout_stage(ctx, inputs.holdout, outputs)
    echo("scoring reasoning")
    summary["reasoning"] = score_reasoning_stage(ctx, inputs.math, outputs)
    echo("counting degenerate answers")
    # The headline beside every constraint figure: degenerate answers, and the figures without them.
    summary["degenerate"], summary["clean"] = degenerate_figures(
        eval_dir, params.model.answer_mode, inputs.holdout, params.evaluation.bootstrap, params.run.seed)

    ctx.write_metrics(STAGE.name, summary)  # first: it adds the stage's peak memory, which summary.json keeps too
    write_json(eval_dir / "summary.json", summary)
    atomic_write_text(eval_dir / "summary.md", summary_markdown(summary))
    return summary
