"""``sif bench generate``: tokens/s of the ways to decode on this machine, on the same prompts.

Two workloads, both from a params file:

* ``eval``: stage 07's, the first ``--prompts`` IFEval prompts answered greedily with ``evaluation.max_new_tokens``;
* ``rollouts``: GRPO's, ``--prompts`` training prompts of a freshly synthesized curriculum, each sampled
  ``grpo.num_generations`` times at ``grpo.temperature`` for ``grpo.max_completion_length`` tokens.

Methods, one model in memory (fp32 unless the params say otherwise):

* ``static``: ``model.generate`` on batches of 16 in prompt order (what every stage did before);
* ``sorted``: the same on batches of similar prompt length;
* ``static-cache``: ``generate`` with transformers' static KV cache;
* ``continuous``: transformers' continuous batching (``generate_batch``), whole workload at once;
* ``shrinking-B``: :mod:`sif_lib.policy.decoding` (finished answers leave the batch, grouped-query attention
  without copies, KV cache grown in place) on length-sorted batches of B, what the stages use now;
* ``shrinking-B-multinomial``: the same, sampled tokens drawn by ``torch.multinomial`` (an exponential variate per
  vocabulary entry) instead of one uniform draw against the cumulative distribution (what the stages use now;
  same distribution, other draws; rollouts only);
* ``shrinking-64-1thread``: the same with one torch thread;
* ``shrinking-64-bf16``: the same on a bfloat16 copy of the weights: faster matrix products on CPUs with bf16
  instructions, but other numerics, so other greedy answers (counted, and why it is not adopted).

Printed per method: seconds, response tokens kept, tokens/s, the share of decoded rows that were wasted (padding
after an answer ended: 1 - kept tokens / decoded rows), and for greedy workloads how many answers are identical to
``static``'s. The machine's bound comes from measured fp32 matrix-product throughput: at two FLOPs per weight per
token, GFLOP/s / (2 x parameters) tokens/s, attention not counted. ``torch.compile`` is not measured: compiling
the decode step for each batch shape took longer on 2 cores than the decoding it would speed up.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

from sif_lib.config.params import Params, load_params
from sif_lib.core.errors import InputError
from sif_lib.core.io import read_jsonl
from sif_lib.evaluation.benchmarks import IFEvalTask
from sif_lib.policy.generation import ChatGenerator, Sampling
from sif_lib.runner.runs import RunContext
from sif_lib.stages import s01_synthesize_constraints, s02_decompose_curriculum

STATIC_BATCH = 16


def matmul_gflops(rows: int, inner: int = 576, cols: int = 1536, dtype: str = "float32", repeats: int = 20) -> float:
    """Measured throughput of one matrix product of the policy's shape (SmolLM2-135M: hidden 576, MLP 1536)."""
    import torch

    kind = getattr(torch, dtype)
    a, b = torch.randn(rows, inner, dtype=kind), torch.randn(inner, cols, dtype=kind)
    for _ in range(3):
        a @ b
    began = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * rows * inner * cols * repeats / (time.perf_counter() - began) / 1e9


def _eval_workload(params: Params, n: int) -> tuple[list[str], Sampling]:
    with tempfile.TemporaryDirectory() as tmp:
        prompts = IFEvalTask.load(params, Path(tmp)).prompts[:n]
    return prompts, Sampling(max_new_tokens=params.evaluation.max_new_tokens, temperature=0.0)


def _rollout_workload(params_path: Path, n: int) -> tuple[list[str], Sampling]:
    with tempfile.TemporaryDirectory() as tmp:
        ctx = RunContext.open(Path(tmp) / "run", params_path,
                              overrides={"synthesis": {"n_instructions": max(8, n), "n_heldout": 2,
                                                       "paraphrase": False}})
        s01_synthesize_constraints.run(ctx)
        s02_decompose_curriculum.run(ctx)
        rows = [r for r in read_jsonl(ctx.root / "data" / "curriculum.jsonl") if r.get("split") == "train"]
    g = ctx.params.grpo
    prompts = [r["prompt"] for r in rows[:n] for _ in range(g.num_generations)]
    return prompts, Sampling(max_new_tokens=g.max_completion_length, temperature=g.temperature,
                             top_p=getattr(g, "top_p", 1.0), seed=0)


def _static(generator: ChatGenerator, prompts, sampling, batch: int, order, **generate_kwargs) -> tuple[list[str], int]:
    """``model.generate`` on fixed batches in ``order``, as the stages did before the shrinking decoder."""
    tok = generator.tokenizer
    texts = [generator.render(p) for p in prompts]
    answers = [""] * len(prompts)
    generator.stats.clear()
    for start in range(0, len(order), batch):
        rows = order[start:start + batch]
        enc = tok([texts[i] for i in rows], return_tensors="pt", padding=True, add_special_tokens=False)
        for i, ids in zip(rows, generator._static_batch(enc, sampling, sampling.seed + start, **generate_kwargs)):
            answers[i] = tok.decode(ids, skip_special_tokens=True).strip()
    return answers, generator.stats.get("rows_decoded", 0)


def _continuous(generator: ChatGenerator, prompts, sampling) -> tuple[list[str], int]:
    from transformers import ContinuousBatchingConfig, GenerationConfig

    tok, model = generator.tokenizer, generator.model
    ids = [tok(generator.render(p), add_special_tokens=False)["input_ids"] for p in prompts]
    config = GenerationConfig(max_new_tokens=sampling.max_new_tokens, do_sample=sampling.temperature > 0,
                              temperature=sampling.temperature or None, top_p=sampling.top_p,
                              eos_token_id=model.generation_config.eos_token_id, pad_token_id=tok.pad_token_id)
    # Room in the paged cache for every request at once (the defaults size it from GPU memory).
    blocks = (max(map(len, ids)) + sampling.max_new_tokens) * len(ids) // 64 + 8
    batching = ContinuousBatchingConfig(block_size=64, num_blocks=blocks, max_batch_tokens=1024,
                                        max_requests_per_batch=len(ids))
    results = model.generate_batch(ids, generation_config=config, continuous_batching_config=batching,
                                   progress_bar=False)
    answers = [""] * len(prompts)
    for request_id, result in results.items():
        answers[int(request_id.rsplit("_", 1)[-1])] = tok.decode(result.generated_tokens,
                                                                 skip_special_tokens=True).strip()
    return answers, sum(len(r.generated_tokens) for r in results.values())


def _shrinking(generator: ChatGenerator, prompts, sampling, batch: int,
               sampler: str = "cdf") -> tuple[list[str], int]:
    generator.stats.clear()
    generator.sampler = sampler
    try:
        answers = generator.generate(prompts, sampling, batch_size=batch)
    finally:
        generator.sampler = "cdf"
    return answers, generator.stats.get("rows_decoded", 0)


def bench_generate(params_file: str | Path, workload: str = "eval", n_prompts: int = 64,
                   methods: list[str] | None = None, echo=print) -> dict:
    """Decode the workload with each method; print one line per method and return the figures."""
    import torch

    if n_prompts < 1:
        raise InputError(f"--prompts must be at least 1, got {n_prompts}")
    params_path = Path(params_file)
    params = load_params(params_path)
    if workload == "eval":
        prompts, sampling = _eval_workload(params, n_prompts)
    elif workload == "rollouts":
        prompts, sampling = _rollout_workload(params_path, n_prompts)
    else:
        raise InputError(f"--workload must be eval or rollouts, got {workload!r}")
    generator = ChatGenerator(params.model.policy, backend="hf", dtype=params.run.dtype, device=params.run.device,
                              system_prompt=params.model.system_prompt, enable_thinking=params.model.enable_thinking)
    tok = generator.tokenizer
    lengths = [len(tok(generator.render(p), add_special_tokens=False)["input_ids"]) for p in prompts]
    by_length = sorted(range(len(prompts)), key=lambda i: lengths[i], reverse=True)
    n_params = sum(p.numel() for p in generator.model.parameters())
    threads = torch.get_num_threads()

    def bf16(batch):
        twin = ChatGenerator(params.model.policy, backend="hf", dtype="bfloat16", device="cpu", tokenizer=tok,
                             system_prompt=params.model.system_prompt, enable_thinking=params.model.enable_thinking)
        try:
            return _shrinking(twin, prompts, sampling, batch)
        finally:
            del twin

    def one_thread(batch):
        torch.set_num_threads(1)
        try:
            return _shrinking(generator, prompts, sampling, batch)
        finally:
            torch.set_num_threads(threads)

    runs = {
        "static": lambda: _static(generator, prompts, sampling, STATIC_BATCH, list(range(len(prompts)))),
        "sorted": lambda: _static(generator, prompts, sampling, STATIC_BATCH, by_length),
        "static-cache": lambda: _static(generator, prompts, sampling, STATIC_BATCH, list(range(len(prompts))),
                                        cache_implementation="static"),
        "continuous": lambda: _continuous(generator, prompts, sampling),
        "shrinking-16": lambda: _shrinking(generator, prompts, sampling, 16),
        "shrinking-32": lambda: _shrinking(generator, prompts, sampling, 32),
        "shrinking-64": lambda: _shrinking(generator, prompts, sampling, 64),
        "shrinking-16-multinomial": lambda: _shrinking(generator, prompts, sampling, 16, "multinomial"),
        "shrinking-32-multinomial": lambda: _shrinking(generator, prompts, sampling, 32, "multinomial"),
        "shrinking-64-1thread": lambda: one_thread(64),
        "shrinking-64-bf16": lambda: bf16(64),
    }
    chosen = methods or list(runs)
    unknown = [m for m in chosen if m not in runs]
    if unknown:
        raise InputError(f"--methods: unknown {', '.join(unknown)}; choose from {', '.join(runs)}")
    if sampling.temperature == 0 and "static" not in chosen:
        chosen = ["static"] + chosen  # the reference for "same greedy answers"

    gflops = {rows: round(matmul_gflops(rows), 1) for rows in (16, 64, 512)}
    echo(f"bench generate: {params.model.policy} ({n_params / 1e6:.0f}M parameters, {params.run.dtype}), "
         f"workload {workload}: {len(prompts)} prompts, {sampling.max_new_tokens} new tokens, "
         f"{'greedy' if sampling.temperature == 0 else f'temperature {sampling.temperature}'}; "
         f"{threads} torch threads, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}")
    echo(f"  measured fp32 matmul GFLOP/s at {', '.join(f'{r} rows {g}' for r, g in gflops.items())}: "
         f"bound on decoding {gflops[16] * 1e9 / (2 * n_params):.0f} tokens/s at 16 rows, "
         f"{gflops[512] * 1e9 / (2 * n_params):.0f} at large batches (weights only)")
    figures: dict = {"params": str(params_file), "workload": workload, "prompts": len(prompts),
                     "max_new_tokens": sampling.max_new_tokens, "temperature": sampling.temperature,
                     "parameters": n_params, "threads": threads, "matmul_gflops": gflops,
                     "bound_tokens_per_s": round(gflops[512] * 1e9 / (2 * n_params)), "methods": {}}
    reference = None
    for name in chosen:
        began = time.perf_counter()
        answers, rows_decoded = runs[name]()
        seconds = time.perf_counter() - began
        kept = sum(len(ids) for ids in tok(answers, add_special_tokens=False)["input_ids"])
        row = {"seconds": round(seconds, 1), "tokens": kept, "tokens_per_s": round(kept / seconds, 1),
               "rows_decoded": rows_decoded,
               # Re-tokenized text can count a token or two more than was decoded: the share stops at 0.
               "wasted_share": round(max(0.0, 1 - kept / rows_decoded), 3) if rows_decoded else None}
        if name == "static":
            reference = answers
        if sampling.temperature == 0 and reference is not None:
            row["same_as_static"] = sum(a == b for a, b in zip(answers, reference))
        base = figures["methods"].get("static", row)["tokens_per_s"]
        row["speedup"] = round(row["tokens_per_s"] / base, 2)
        figures["methods"][name] = row
        same = f", same greedy answers as static: {row['same_as_static']}/{len(prompts)}" \
            if "same_as_static" in row else ""
        wasted = f"{row['wasted_share']:.0%}" if row["wasted_share"] is not None else "-"
        echo(f"  {name:<22} {seconds:7.1f} s  {kept:6d} tokens  {row['tokens_per_s']:6.1f} tok/s  "
             f"x{row['speedup']:.2f}  wasted rows {wasted}{same}")
    echo(json.dumps(figures))
    return figures
