"""Stage 07: the base policy against the trained policy, on three benchmarks, with the same greedy decoding.

* **IFEval** (:class:`IFEvalTask`): the official prompts (``evaluation.ifeval_path``, or ``evaluation.ifeval_hub_id``
  for online users), the first ``evaluation.limit`` of them, scored strict and loose at prompt and instruction
  level by :mod:`sif_lib.evaluation.ifeval`.
* **The curriculum hold-out** (:mod:`sif_lib.evaluation.holdout`): satisfaction per level L1..L5.
* **Reasoning retention** (:mod:`sif_lib.evaluation.reasoning_eval`): held-out synthetic math, GSM8K if given.

Every response set lives in its own folder under ``eval/`` (``ifeval_base/``, ``holdout_trained/``, ...): the raw
outputs in ``generations.jsonl`` and, in ``generation.json``, who wrote them: the model spec, a fingerprint of
the trained weights, the decoding settings and a hash of the prompts. A rerun reuses every set whose record
still matches, so a stage that failed late (say, in RM scoring) does not regenerate; a set interrupted mid-way
resumes from ``generations.partial.jsonl``. One caveat of resuming: greedy decoding is batched, and a resumed
set may batch (and so pad) a few prompts differently, which can change a token in rare near-ties.

IFEval folders also hold ``responses.jsonl`` (``prompt``, ``response``): the part of each output that is scored
(``model.answer_mode``: the text after ``</think>`` for reasoning models, the whole output otherwise), in the
format ``sif ifeval score`` reads. With the exact prompt subset that was evaluated
(``eval/ifeval_input_data.jsonl``) anyone can rescore them; ``summary.json`` carries the command.
"""

from __future__ import annotations

import datetime as dt
import gc
import hashlib
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Sequence

from sif_lib.config import Params
from sif_lib.constraints import answer_text
from sif_lib.errors import InputError
from sif_lib.evaluation import holdout as holdout_eval
from sif_lib.evaluation import reasoning_eval
from sif_lib.evaluation.report import summary_markdown
from sif_lib.generation import ChatGenerator, Sampling, vllm_available
from sif_lib.repetition import repetition_summary
from sif_lib.runs import (RunContext, append_jsonl, atomic_write_text, iter_jsonl, read_jsonl, resolve_path,
                          write_json, write_jsonl)

STAGE = "07_evaluate"
EVAL_DIR = "eval"
IFEVAL_METRICS = ("prompt_strict", "inst_strict", "prompt_loose", "inst_loose")
POLICIES = ("base", "trained")
GENERATIONS = "generations.jsonl"  # raw model outputs of one set: the cache
RESPONSES = "responses.jsonl"  # IFEval: the scored answers, in the format `sif ifeval score` reads


# ---------------------------------------------------------------------------------------------------------------
# The two policies.

@dataclass(frozen=True)
class Policy:
    """What answers: a model spec, optionally with a LoRA adapter; ``fingerprint`` identifies the weights."""

    name: str
    spec: str
    adapter: str | None = None
    fingerprint: str = ""

    def describe(self) -> dict:
        return asdict(self)


def fingerprint_dir(path: Path) -> str:
    """A hash of a weights directory's file names and contents (large files: size plus first and last 4 MiB).

    Content rather than modification times, so that a copied run directory still matches its cache.
    """
    digest = hashlib.sha1()
    for file in sorted(p for p in Path(path).rglob("*") if p.is_file()):
        size = file.stat().st_size
        digest.update(f"{file.relative_to(path)}:{size}\n".encode())
        with open(file, "rb") as handle:
            if size <= 64 << 20:
                digest.update(handle.read())
            else:
                digest.update(handle.read(4 << 20))
                handle.seek(size - (4 << 20))
                digest.update(handle.read())
    return digest.hexdigest()[:16]


def base_policy(params: Params) -> Policy:
    return Policy("base", params.model.policy, None, f"spec:{params.model.policy}")


def trained_policy(run_dir: Path, params: Params) -> Policy:
    """The policy stage 06 trained: a fully fine-tuned ``grpo/model``, a merged ``grpo/merged``, or the base spec
    with the LoRA adapter ``grpo/adapter`` (stage 06's own ``trained_policy_kwargs`` decides when available)."""
    run_dir = Path(run_dir)
    spec, adapter = None, None
    try:
        from sif_lib.grpo import trained_policy_kwargs
    except ImportError:
        trained_policy_kwargs = None
    if trained_policy_kwargs is not None:
        kwargs = trained_policy_kwargs(run_dir, params)
        spec = kwargs.get("spec") or kwargs.get("policy") or params.model.policy
        adapter = kwargs.get("adapter")
    elif (run_dir / "grpo" / "model" / "config.json").is_file():
        spec = str(run_dir / "grpo" / "model")
    elif (run_dir / "grpo" / "merged" / "config.json").is_file():
        spec = str(run_dir / "grpo" / "merged")
    elif (run_dir / "grpo" / "adapter" / "adapter_config.json").is_file():
        spec, adapter = params.model.policy, run_dir / "grpo" / "adapter"
    else:
        raise InputError(f"{run_dir / 'grpo'}: no trained policy (adapter/, merged/ or model/): run stage "
                         f"06_train_grpo first")
    weights = Path(adapter) if adapter else Path(spec)
    fingerprint = fingerprint_dir(weights) if weights.is_dir() else f"spec:{spec}"
    return Policy("trained", str(spec), str(adapter) if adapter else None, fingerprint)


class PolicyRunner:
    """Answers prompts with one policy; the model is loaded on first need, so a fully cached rerun loads none."""

    def __init__(self, policy: Policy, params: Params, echo: Callable[[str], None] = print, backend: str = "hf"):
        self.policy = policy
        self.params = params
        self.echo = echo
        self.backend = backend
        self._generator: ChatGenerator | None = None

    @property
    def generator(self) -> ChatGenerator:
        if self._generator is None:
            run = self.params.run
            began = time.monotonic()
            self._generator = ChatGenerator(self.policy.spec, backend=self.backend, dtype=run.dtype,
                                            device=run.device, system_prompt=self.params.model.system_prompt,
                                            adapter=self.policy.adapter,
                                            enable_thinking=self.params.model.enable_thinking)
            self.echo(f"[{self.policy.name}] loaded {self.policy.spec}"
                      f"{' + adapter' if self.policy.adapter else ''} in {time.monotonic() - began:.1f} s")
        return self._generator

    def close(self) -> None:
        # Drop the only reference so the next policy does not share memory with this one.
        if self._generator is not None:
            self._generator = None
            gc.collect()

    def answer(self, out_dir: Path, prompts: Sequence[str], sampling: Sampling, batch_size: int,
               extra: Sequence[dict] | None = None) -> list[str]:
        """Responses to ``prompts`` (cached in ``out_dir``); ``extra`` adds fields to each saved row."""
        out_dir = Path(out_dir)
        record = {
            "policy": self.policy.describe(),
            "sampling": sampling.to_dict(),
            "system_prompt": self.params.model.system_prompt,
            "backend": self.backend,
            "n_prompts": len(prompts),
            "prompts_sha1": hashlib.sha1("\x1e".join(prompts).encode()).hexdigest(),
        }
        final, partial, meta = out_dir / GENERATIONS, out_dir / "generations.partial.jsonl", out_dir / "generation.json"
        stored = _read_json(meta)
        if stored and _same_record(stored, record):
            if stored.get("complete") and final.is_file():
                rows = read_jsonl(final)
                if len(rows) == len(prompts) and [r.get("prompt") for r in rows] == list(prompts):
                    self.echo(f"[{self.policy.name}] {out_dir.name}: reusing {len(rows)} cached responses")
                    return [r["response"] for r in rows]
        done: list[dict] = []
        if stored and _same_record(stored, record) and partial.is_file():
            done = list(iter_jsonl(partial, tolerate_torn_tail=True))
            if [r.get("prompt") for r in done] != list(prompts[:len(done)]):
                done = []
        if not done:
            partial.unlink(missing_ok=True)
        write_json(meta, {**record, "complete": False})
        if done:
            atomic_write_text(partial, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in done))
            self.echo(f"[{self.policy.name}] {out_dir.name}: resuming after {len(done)} responses")

        rest = list(prompts[len(done):])
        offset = len(done)
        generator = self.generator if rest else None  # loaded before the clock starts
        began = time.monotonic()

        def save(start: int, batch: list[str]) -> None:
            rows = []
            for i, response in enumerate(batch):
                index = offset + start + i
                rows.append({"prompt": prompts[index], "response": response, **(extra[index] if extra else {})})
            append_jsonl(partial, rows)
            self.echo(f"[{self.policy.name}] {out_dir.name}: {offset + start + len(batch)}/{len(prompts)}")

        new = generator.generate(rest, sampling, batch_size=batch_size, on_batch=save) if rest else []
        seconds = time.monotonic() - began
        rows = done + [{"prompt": p, "response": r, **(extra[offset + i] if extra else {})}
                       for i, (p, r) in enumerate(zip(rest, new))]
        write_jsonl(final, rows)
        # Tokens of the decoded responses: special tokens and trailing whitespace are not counted, so this is a
        # lower bound on what the model generated (and on its throughput).
        tokens = sum(len(generator.tokenizer(r, add_special_tokens=False)["input_ids"]) for r in new)
        write_json(meta, {**record, "complete": True, "generated": len(new), "seconds": round(seconds, 2),
                          "response_tokens": tokens,
                          "response_tokens_per_s": round(tokens / seconds, 1) if seconds > 0 and new else None})
        partial.unlink(missing_ok=True)
        return [r["response"] for r in rows]


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def _same_record(stored: dict, record: dict) -> bool:
    return all(stored.get(key) == value for key, value in record.items())


# ---------------------------------------------------------------------------------------------------------------
# IFEval.

@dataclass
class IFEvalTask:
    """The IFEval prompts evaluated in this run: the first ``limit`` rows of the official input data."""

    rows: list[dict]
    source: str
    input_path: Path  # the evaluated subset, written into the run so that it can be rescored as it was

    @property
    def prompts(self) -> list[str]:
        return [row["prompt"] for row in self.rows]

    @classmethod
    def load(cls, params: Params, eval_dir: Path) -> "IFEvalTask":
        ev = params.evaluation
        if ev.limit == 0 or ev.limit < -1:
            raise InputError(f"evaluation.limit: must be -1 (all prompts) or a positive number, got {ev.limit}")
        if ev.ifeval_path:
            path = resolve_path(ev.ifeval_path)
            if not path.is_file():
                raise InputError(f"evaluation.ifeval_path: IFEval prompts not found at {path} (point it at "
                                 f"input_data.jsonl, or set it to null and name evaluation.ifeval_hub_id)")
            rows, source = read_jsonl(path), str(path)
        elif ev.ifeval_hub_id:
            rows, source = _hub_rows(ev.ifeval_hub_id), f"hub:{ev.ifeval_hub_id}"
        else:
            raise InputError("evaluation.ifeval_path: null, and evaluation.ifeval_hub_id is not set either")
        for number, row in enumerate(rows, start=1):
            missing = [k for k in ("key", "prompt", "instruction_id_list", "kwargs") if k not in row]
            if missing:
                raise InputError(f"{source}:{number}: IFEval row lacks {', '.join(missing)}")
        if ev.limit > 0:
            rows = rows[:ev.limit]
        input_path = eval_dir / "ifeval_input_data.jsonl"
        write_jsonl(input_path, rows)
        return cls(rows, source, input_path)


def _hub_rows(hub_id: str) -> list[dict]:
    """IFEval from the hub. Its ``kwargs`` list every argument name with null for the unused ones; the
    reference data (and our scorer) expect only the arguments that are set, so the nulls are dropped."""
    from datasets import load_dataset

    try:
        data = load_dataset(hub_id, split="train")
    except Exception as err:  # offline, unknown id, no such split: say which key to fix
        raise InputError(f"evaluation.ifeval_hub_id: cannot load {hub_id!r} ({type(err).__name__}: {err})") from None
    rows = []
    for row in data:
        row = dict(row)
        row["kwargs"] = [{k: v for k, v in (kw or {}).items() if v is not None} for kw in row.get("kwargs", [])]
        rows.append(row)
    return rows


def score_ifeval(input_path: Path, responses_path: Path, out_dir: Path):
    """Score one response file exactly as ``sif ifeval score`` does; writes the scorer's files to ``out_dir``."""
    from sif_lib.evaluation import ifeval

    prompts = ifeval.load_prompts(input_path)
    responses = ifeval.load_responses(responses_path)
    report = ifeval.score(prompts, responses)
    ifeval.write_results(report, out_dir)
    return report


def rescore_command(input_path: Path, responses_path: Path, out_dir: Path) -> str:
    return f"sif ifeval score --input-data {input_path} --responses {responses_path} --output-dir {out_dir}"


# ---------------------------------------------------------------------------------------------------------------
# The stage.

def _sampling(max_new_tokens: int, seed: int) -> Sampling:
    return Sampling(max_new_tokens=max_new_tokens, temperature=0.0, top_p=1.0, seed=seed)


@dataclass
class EvalInputs:
    """Everything stage 07 evaluates, loaded and checked before any model is."""

    ifeval: IFEvalTask
    holdout: list[dict]
    math: list[reasoning_eval.MathTask]
    policies: dict[str, Policy]
    decoding: dict[str, Sampling]
    backend: str

    @classmethod
    def load(cls, ctx: RunContext) -> "EvalInputs":
        params, ev = ctx.params, ctx.params.evaluation
        ifeval_task = IFEvalTask.load(params, ctx.root / EVAL_DIR)
        holdout_rows = holdout_eval.load_holdout(
            ctx.require("data", "curriculum.jsonl", stage="02_decompose_curriculum"), ev.holdout_limit)
        math_tasks = []
        synthetic = reasoning_eval.synthetic_task(
            ctx.require("data", "reasoning.jsonl", stage="01_synthesize_constraints"), ev.math_items)
        if synthetic is not None:
            math_tasks.append(synthetic)
        if ev.gsm8k_path:
            math_tasks.append(reasoning_eval.gsm8k_task(ev.gsm8k_path, ev.gsm8k_limit))
        policies = {"base": base_policy(params), "trained": trained_policy(ctx.root, params)}
        seed = params.run.seed
        decoding = {"ifeval": _sampling(ev.max_new_tokens, seed), "holdout": _sampling(ev.max_new_tokens, seed),
                    "math": _sampling(ev.math_max_new_tokens, seed)}
        # One backend for both policies, so that "the same greedy decoding" is literally the same code: a LoRA
        # adapter is merged into a transformers model, so its presence rules vLLM out for the base as well.
        backend = "hf" if any(p.adapter for p in policies.values()) or not vllm_available() else "vllm"
        return cls(ifeval_task, holdout_rows, math_tasks, policies, decoding, backend)


def generate_all(ctx: RunContext, inputs: EvalInputs, echo: Callable[[str], None] = print) -> dict[str, dict]:
    """Raw outputs ``{policy: {set: [text]}}``; one model in memory at a time, each loaded only if needed."""
    ev, eval_dir = ctx.params.evaluation, ctx.root / EVAL_DIR
    outputs: dict[str, dict[str, list[str]]] = {}
    for name, policy in inputs.policies.items():
        runner = PolicyRunner(policy, ctx.params, echo, backend=inputs.backend)
        got = outputs[name] = {}
        try:
            got["ifeval"] = runner.answer(eval_dir / f"ifeval_{name}", inputs.ifeval.prompts, inputs.decoding["ifeval"],
                                          ev.batch_size, extra=[{"key": r["key"]} for r in inputs.ifeval.rows])
            got["holdout"] = runner.answer(eval_dir / f"holdout_{name}", [r["prompt"] for r in inputs.holdout],
                                           inputs.decoding["holdout"], ev.batch_size,
                                           extra=[{"id": r["id"], "level": r["level"]} for r in inputs.holdout])
            for task in inputs.math:
                got[f"math_{task.name}"] = runner.answer(
                    eval_dir / f"math_{task.name}_{name}", task.prompts, inputs.decoding["math"], ev.batch_size,
                    extra=[{"id": item.get("id"), "answer": item["answer"]} for item in task.items])
        finally:
            runner.close()
    return outputs


def run_evaluation_stage(ctx: RunContext, echo: Callable[[str], None] = print) -> dict:
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
        "generation": {name: {key: _generation_figures(eval_dir / f"{key}_{name}") for key in outputs[name]}
                       for name in outputs},
        # A diagnostic beside the scores: rule checks can be met by degenerate loops (sif_lib.repetition). Like
        # the scores, it reads the answer part of each output.
        "repetition": {name: {key: repetition_summary(scored_answers(texts, params.model.answer_mode))
                              for key, texts in outputs[name].items()}
                       for name in outputs},
    }
    echo("scoring IFEval")
    summary["ifeval"] = score_ifeval_stage(ctx, inputs.ifeval, outputs)
    echo("scoring the curriculum hold-out")
    summary["holdout"] = score_holdout_stage(ctx, inputs.holdout, outputs)
    echo("scoring reasoning")
    summary["reasoning"] = score_reasoning_stage(ctx, inputs.math, outputs)

    ctx.write_metrics(STAGE, summary)  # first: it adds the stage's peak memory, which summary.json keeps too
    write_json(eval_dir / "summary.json", summary)
    atomic_write_text(eval_dir / "summary.md", summary_markdown(summary))
    return summary


def scored_answers(texts: Sequence[str], answer_mode: str) -> list[str]:
    """The part of each output that is scored (``model.answer_mode``); no answer becomes the empty string."""
    return [answer_text(text, answer_mode) for text in texts]


def _generation_figures(folder: Path) -> dict | None:
    record = _read_json(folder / "generation.json") or {}
    return {k: record.get(k) for k in ("n_prompts", "generated", "seconds", "response_tokens", "response_tokens_per_s")}


def ifeval_figures(report) -> dict:
    """The summary's view of one :class:`~sif_lib.evaluation.ifeval.IFEvalReport` (fractions, not percent)."""
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
    for name in POLICIES:
        folder = ctx.root / EVAL_DIR / f"ifeval_{name}"
        answers = scored_answers(outputs[name]["ifeval"], ctx.params.model.answer_mode)
        write_jsonl(folder / RESPONSES, [{"prompt": p, "response": a} for p, a in zip(task.prompts, answers)])
        report = score_ifeval(task.input_path, folder / RESPONSES, folder)
        out[name] = ifeval_figures(report)
        out[name]["rescore"] = rescore_command(task.input_path, folder / RESPONSES, folder / "rescored")
    out["delta"] = {m: _delta(out["base"][m], out["trained"][m]) for m in IFEVAL_METRICS}
    return out


def score_reasoning_stage(ctx: RunContext, tasks: list[reasoning_eval.MathTask], outputs: dict) -> dict:
    """Accuracy per math task and policy; per-item verdicts go to ``eval/math_<task>_<policy>/scored.jsonl``."""
    out = {}
    for task in tasks:
        entry: dict = {"source": task.source, "n": len(task.items)}
        for name in POLICIES:
            texts = outputs[name][f"math_{task.name}"]
            correct = reasoning_eval.score_responses(task, texts, ctx.params.model.answer_mode)
            write_jsonl(ctx.root / EVAL_DIR / f"math_{task.name}_{name}" / "scored.jsonl",
                        [{"id": item.get("id"), "answer": item["answer"], "correct": ok}
                         for item, ok in zip(task.items, correct)])
            entry[name] = reasoning_eval.accuracy(correct)
        entry["delta"] = _delta(entry["base"]["accuracy"], entry["trained"]["accuracy"])
        out[task.name] = entry
    return out


def score_holdout_stage(ctx: RunContext, rows: list[dict], responses: dict) -> dict:
    """Hold-out verdicts for both policies (saved to ``eval/holdout_<policy>/verdicts.jsonl``) and aggregates."""
    params = ctx.params
    scorer, note = None, None
    if any(c.get("kind") == "soft" for row in rows for c in row["constraints"]):
        if params.scoring.rm_url or (ctx.root / "rm").is_dir():
            from sif_lib.reward_model import make_scorer

            scorer = make_scorer(params, ctx.root)
        else:
            note = f"{ctx.root / 'rm'} is absent: soft constraints are unscored and composites cover hard ones only"
    out: dict = {"n_prompts": len(rows), "soft_scorer": "reward_model" if scorer is not None else None,
                 "note": note}
    for name in POLICIES:
        verdicts = holdout_eval.constraint_verdicts(rows, responses[name]["holdout"], params.model.answer_mode, scorer)
        write_jsonl(ctx.root / EVAL_DIR / f"holdout_{name}" / "verdicts.jsonl", verdicts)
        out[name] = holdout_eval.aggregate(verdicts)
    out["delta"] = holdout_eval.compare(out["base"], out["trained"])
    return out


def _delta(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else round(b - a, 6)
