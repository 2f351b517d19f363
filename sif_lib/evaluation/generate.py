"""Stage 07's answers: the base and the trained policy answer every evaluation prompt with the same greedy
decoding, one model in memory at a time.

Every answer set lives in its own folder under ``eval/`` (``ifeval_base/``, ``holdout_trained/``, and
``ifbench_base/`` when ``evaluation.ifbench`` is on, ...) and is cached by
:class:`~sif_lib.policy.answers.PolicyRunner`, keyed by who wrote it; a rerun regenerates only what changed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sif_lib.evaluation import curriculum_holdout as holdout_eval
from sif_lib.evaluation import math_accuracy
from sif_lib.evaluation.benchmarks import IFBenchTask, IFEvalTask
from sif_lib.policy.answers import (
    Policy,
    PolicyRunner,
    answer_store,
    base_policy,
    grpo_dir,
    spec_policy,
    trained_policy,
)
from sif_lib.policy.generation import Sampling, vllm_available
from sif_lib.runner.runs import RunContext

EVAL_DIR = "eval"


def _sampling(max_new_tokens: int, seed: int) -> Sampling:
    return Sampling(max_new_tokens=max_new_tokens, temperature=0.0, top_p=1.0, seed=seed)


@dataclass
class EvalInputs:
    """Everything stage 07 evaluates, loaded and checked before any model is."""

    ifeval: IFEvalTask
    holdout: list[dict]
    math: list[math_accuracy.MathTask]
    policies: dict[str, Policy]
    decoding: dict[str, Sampling]
    backend: str
    ifbench: IFBenchTask | None = None  # None when evaluation.ifbench is off

    @classmethod
    def load(cls, ctx: RunContext) -> EvalInputs:
        params, ev = ctx.params, ctx.params.evaluation
        ifeval_task = IFEvalTask.load(params, ctx.root / EVAL_DIR)
        ifbench_task = IFBenchTask.load(params, ctx.root / EVAL_DIR)
        holdout_rows = holdout_eval.load_holdout(
            ctx.require("data", "curriculum.jsonl"), ev.holdout_limit)
        math_tasks = []
        synthetic = math_accuracy.synthetic_task(ctx.require("data", "reasoning.jsonl"), ev.math_items)
        if synthetic is not None:
            math_tasks.append(synthetic)
        if ev.gsm8k_path:
            math_tasks.append(math_accuracy.gsm8k_task(ev.gsm8k_path, ev.gsm8k_limit))
        policies = {"base": baseline_policy(ctx), "trained": trained_policy(ctx.root, params)}
        seed = params.run.seed
        decoding = {"ifeval": _sampling(ev.max_new_tokens, seed), "holdout": _sampling(ev.max_new_tokens, seed),
                    "math": _sampling(ev.math_max_new_tokens, seed)}
        if ifbench_task is not None:
            decoding["ifbench"] = decoding["ifeval"]  # the same greedy decoding, literally
        # One backend for both policies, so that "the same greedy decoding" is literally the same code: a LoRA
        # adapter is merged into a transformers model, so its presence rules vLLM out for the base as well.
        backend = "hf" if any(p.adapter for p in policies.values()) or not vllm_available() else "vllm"
        return cls(ifeval_task, holdout_rows, math_tasks, policies, decoding, backend, ifbench_task)


def baseline_policy(ctx: RunContext) -> Policy:
    """What the trained policy is compared with (``evaluation.baseline``): the policy GRPO started from, or the
    original model of the params file (the same unless stage 00 replaced it)."""
    if ctx.params.evaluation.baseline == "original":
        return spec_policy("base", ctx.base_policy)
    return base_policy(ctx.params)


def generate_all(ctx: RunContext, inputs: EvalInputs, echo: Callable[[str], None] = print) -> dict[str, dict]:
    """Raw outputs ``{policy: {set: [text]}}``; one model in memory at a time, each loaded only if needed."""
    ev, eval_dir = ctx.params.evaluation, ctx.root / EVAL_DIR
    outputs: dict[str, dict[str, list[str]]] = {}
    for name, policy in inputs.policies.items():
        runner = PolicyRunner(policy, ctx.params, echo, backend=inputs.backend,
                              store=answer_store(ctx.root, ctx.params))
        got = outputs[name] = {}
        try:
            got["ifeval"] = runner.answer(eval_dir / f"ifeval_{name}", inputs.ifeval.prompts, inputs.decoding["ifeval"],
                                          ev.batch_size, extra=[{"key": r["key"]} for r in inputs.ifeval.rows])
            if inputs.ifbench is not None:
                got["ifbench"] = runner.answer(eval_dir / f"ifbench_{name}", inputs.ifbench.prompts,
                                               inputs.decoding["ifbench"], ev.batch_size,
                                               extra=[{"key": r["key"]} for r in inputs.ifbench.rows])
            # Stage 06's probe answered the held-out curriculum prompts greedily before and after training; when it
            # holds these (the demo's 120 probe prompts are every held-out row), they are copied, not generated.
            probe = grpo_dir(ctx.root) / ("probe_before" if name == "base" else "probe_after")
            got["holdout"] = runner.answer(eval_dir / f"holdout_{name}", [r["prompt"] for r in inputs.holdout],
                                           inputs.decoding["holdout"], ev.batch_size,
                                           extra=[{"id": r["id"], "level": r["level"]} for r in inputs.holdout],
                                           borrow_from=[probe])
            for task in inputs.math:
                got[f"math_{task.name}"] = runner.answer(
                    eval_dir / f"math_{task.name}_{name}", task.prompts, inputs.decoding["math"], ev.batch_size,
                    extra=[{"id": item.get("id"), "answer": item["answer"]} for item in task.items])
        finally:
            runner.close()
    return outputs
