"""``sif bench grpo``: how long one GRPO step takes with a params file's policy and batch settings.

A throwaway run directory is built in a temporary folder: a small synthetic RL set from the stage-01/02 code
(instructions, curriculum ladders and math items) and a reward model with a fresh, untrained classification
head on the params' RM backbone (its speed does not depend on training; its scores mean nothing here). Then
``train_grpo`` runs one warm-up step followed by ``steps`` timed steps, in this process, with the params'
batch, LoRA/full and generation settings.

Figures (over the timed steps only):

* seconds per step: wall time from step begin to step end (generation, reward, log-probabilities, backward,
  optimizer step);
* rollout tokens/s: completion tokens generated per second of generation. Generation is timed around TRL's
  generation call (``timing/generate_s`` in the log history), and tokens are counted up to each completion's
  end-of-sequence token;
* training tokens/s: prompt + completion tokens of the step (TRL's ``num_tokens``) per second of the rest of
  the step (wall time minus generation and reward scoring);
* peak memory: the process's ``ru_maxrss`` (model loading included), plus the CUDA allocator's peak on a GPU;
* cores used: CPU seconds per wall second during the timed steps, with the load average, because other work
  on a small machine changes every figure above (oversubscribed CPU threads slow down far more than their
  share of the cores).
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from sif_lib.bench.decode_speed import matmul_gflops
from sif_lib.config.params import Params, load_params
from sif_lib.core.errors import InputError
from sif_lib.core.io import peak_rss_mib
from sif_lib.grpo.trainer import train_grpo
from sif_lib.policy import models
from sif_lib.reward_model.rm_input import META_FILE, RM_FORMAT
from sif_lib.runner.runs import RunContext
from sif_lib.stages import s01_synthesize_constraints, s02_decompose_curriculum


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _fresh_reward_model(params: Params, target: Path) -> str:
    """Save an untrained two-class head on the RM backbone where the scorer expects a trained RM."""
    backbone = params.reward_model.backbone or params.model.policy
    model = models.load_sequence_classifier(backbone, num_labels=2, dtype="float32", device="cpu",
                                            key="reward_model.backbone")
    model.save_pretrained(str(target))
    models.load_tokenizer(backbone, key="reward_model.backbone").save_pretrained(str(target))
    (target / META_FILE).write_text(json.dumps({"format": RM_FORMAT, "backbone": backbone,
                                                "max_length": params.reward_model.max_length,
                                                "note": "untrained head, for benchmarking only"}))
    return backbone


def _step_timer():
    from transformers import TrainerCallback  # heavy: only when benchmarking

    class StepTimer(TrainerCallback):
        def __init__(self):
            self.seconds: list[float] = []
            self.cpu_seconds: list[float] = []
            self._began = self._cpu = 0.0

        def on_step_begin(self, args, state, control, **kwargs):
            self._began, self._cpu = time.perf_counter(), _cpu_seconds()

        def on_step_end(self, args, state, control, **kwargs):
            self.seconds.append(time.perf_counter() - self._began)
            self.cpu_seconds.append(_cpu_seconds() - self._cpu)

    return StepTimer()


def machine_rates(dtype: str = "float32") -> dict:
    """This machine's measured throughput: matrix products of a training step's shape (2,048 tokens x hidden 576 x
    MLP 1,536, SmolLM2-135M's) in GFLOP/s, and memory traffic (a 512 MiB tensor copied) in GB/s."""
    import torch

    gflops = matmul_gflops(2048, dtype=dtype)
    src = torch.ones(128 * 2**20)
    dst = torch.empty_like(src)
    dst.copy_(src)
    began, repeats = time.perf_counter(), 5
    for _ in range(repeats):
        dst.copy_(src)
    copy = 2 * src.numel() * 4 * repeats / (time.perf_counter() - began) / 1e9  # read and write
    return {"dtype": dtype, "matmul_gflops": round(gflops, 1), "copy_gb_per_s": round(copy, 1)}


def step_floors(parameters: int, trainable_share: float, tokens: float, rollout_tokens: float, decode_steps: float,
                weight_bytes: int, rates: dict) -> dict:
    """Seconds each part of a step could not go below on this machine (attention and the vocabulary softmax not
    counted, so these are loose): forward 2 FLOPs per parameter per token; backward the same for the
    activations' gradients plus as much again for the trained weights' share; generation the larger of its
    FLOPs and one read of every weight per decoding step (a decoding step reads the weights once for the whole
    batch)."""
    flops = rates["matmul_gflops"] * 1e9
    forward = 2 * parameters * tokens / flops
    weight_reads = decode_steps * weight_bytes / (rates["copy_gb_per_s"] * 1e9)
    generation = max(2 * parameters * rollout_tokens / flops, weight_reads)
    return {"forward": round(forward, 2), "backward": round(forward * (1 + trainable_share), 2),
            "generation": round(generation, 2)}


def _step_figures(params: Params, params_file, g, rm_backbone: str, result: dict, timer, total: float) -> dict:
    logs = [h for h in result["log_history"] if "train_runtime" not in h and "reward" in h]
    timed, walls = logs[1:], timer.seconds[1:]
    n = len(walls)
    micro = result.get("layout", {}).get("gradient_accumulation_steps", g.grad_accum)

    def per_step(key: str, scale: float = 1.0) -> float:
        return sum(h.get(key, 0.0) for h in timed) * scale / n if n else 0.0

    gen, rew = per_step("timing/generate_s"), per_step("timing/reward_s")
    forward = per_step("timing/forward_s", micro)  # the log averages it over the step's micro-batches
    wall = sum(walls) / n if n else 0.0
    cumulative = [h.get("num_tokens", 0.0) for h in logs]
    step_tokens = [b - a for a, b in zip(cumulative, cumulative[1:])]
    tokens = sum(step_tokens) / len(step_tokens) if step_tokens else 0.0
    rollout_tokens = per_step("timing/rollout_tokens")
    model = models.load_causal_lm(params.model.policy, dtype=params.run.dtype, device="cpu", key="model.policy")
    parameters = sum(p.numel() for p in model.parameters())
    weight_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    del model
    dtype = str(models.torch_dtype(params.run.dtype)).replace("torch.", "")
    rates = machine_rates(dtype if params.run.device != "cuda" else "float32")
    trainable = 1.0 if g.finetune == "full" else 0.0  # LoRA's own weights are a fraction of a percent
    figures: dict[str, Any] = {
        "params": str(params_file), "policy": params.model.policy, "rm_backbone": rm_backbone,
        "finetune": g.finetune, "device": params.run.device, "dtype": dtype,
        "prompts_per_step": g.prompts_per_step, "num_generations": g.num_generations,
        "max_completion_length": g.max_completion_length, "timed_steps": n,
        "warmup_step_seconds": round(timer.seconds[0], 2) if timer.seconds else None,
        "seconds_per_step": round(wall, 2) if n else None,
        "generation_seconds_per_step": round(gen, 2), "reward_seconds_per_step": round(rew, 3),
        "forward_seconds_per_step": round(forward, 2),
        "backward_seconds_per_step": round(wall - gen - rew - forward, 2),
        "rollout_tokens_per_step": round(rollout_tokens, 1),
        "rollout_tokens_per_s": round(rollout_tokens / gen, 1) if gen else None,
        "training_tokens_per_step": round(tokens, 1),
        "training_tokens_per_s": round(tokens / (wall - gen - rew), 1) if wall - gen - rew > 0 and tokens else None,
        "parameters": parameters, "machine": rates,
        "floors_s": step_floors(parameters, trainable, tokens, rollout_tokens, g.max_completion_length,
                                weight_bytes, rates),
        "peak_rss_mib": round(peak_rss_mib(children=False), 1),
        # CPU seconds per wall second over the timed steps: how many cores the run really got. Other work
        # on the machine lowers it (and the load average says how much there was).
        "cores_used": round(sum(timer.cpu_seconds[1:]) / sum(walls), 2) if n else None,
        "load_average_1min": round(os.getloadavg()[0], 2),
        "total_seconds": round(total, 1),
    }
    return figures


def bench_grpo(params_file: str | Path, steps: int = 3, echo=print, keep: bool = False) -> dict:
    """Time ``steps`` GRPO steps after one warm-up step; print and return the figures."""
    if steps < 1:
        raise InputError(f"--steps must be at least 1, got {steps}")
    params_path = Path(params_file)
    tmp = Path(tempfile.mkdtemp(prefix="sif-bench-grpo-"))
    try:
        g = load_params(params_path).grpo
        overrides = {
            "synthesis": {"n_instructions": max(16, 2 * g.prompts_per_step), "n_heldout": 4, "paraphrase": False},
            "grpo": {"max_steps": steps + 1, "save_steps": steps + 1, "logging_steps": 1, "num_processes": 1,
                     "probe_size": 0},
        }
        ctx = RunContext.open(tmp / "run", params_path, overrides=overrides)
        params = ctx.params
        echo(f"bench grpo: {params.model.policy}, {g.finetune}, {g.prompts_per_step} prompts x {g.num_generations} "
             f"completions x {g.max_completion_length} tokens, device {params.run.device}")
        s01_synthesize_constraints.run(ctx)
        s02_decompose_curriculum.run(ctx)
        rm_backbone = _fresh_reward_model(params, ctx.path("rm", "config.json").parent)

        timer = _step_timer()
        began = time.perf_counter()
        result = train_grpo(ctx, callbacks=[timer])
        total = time.perf_counter() - began

        figures = _step_figures(params, params_file, g, rm_backbone, result, timer, total)
        try:
            import torch

            if torch.cuda.is_available():
                figures["cuda_peak_allocated_mib"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
        except ImportError:
            pass
        echo(f"  warm-up step:           {figures['warmup_step_seconds']} s")
        echo(f"  seconds per step:       {figures['seconds_per_step']} s  (mean of {figures['timed_steps']} steps)")
        floors = figures["floors_s"]
        for part, label in (("generation", "generation"), ("reward", "reward scoring"), ("forward", "forward + loss"),
                            ("backward", "backward, optimizer, rest")):
            floor = f"   floor {floors[part]} s" if part in floors else ""
            echo(f"    {label + ':':<26}{figures[part + '_seconds_per_step']} s{floor}")
        echo(f"  rollout tokens/s:       {figures['rollout_tokens_per_s']}  "
             f"({figures['rollout_tokens_per_step']} completion tokens per step)")
        echo(f"  training tokens/s:      {figures['training_tokens_per_s']}")
        echo(f"  peak RSS:               {figures['peak_rss_mib']} MiB")
        echo(f"  floors from measured {figures['machine']['matmul_gflops']} GFLOP/s ({figures['machine']['dtype']} "
             f"matrix products) and {figures['machine']['copy_gb_per_s']} GB/s (copying a 512 MiB tensor); "
             f"{figures['parameters'] / 1e6:.0f}M parameters")
        echo(f"  cores used:             {figures['cores_used']} (of {os.cpu_count()}; "
             f"1-min load average {figures['load_average_1min']})")
        if "cuda_peak_allocated_mib" in figures:
            echo(f"  CUDA peak allocated:    {figures['cuda_peak_allocated_mib']} MiB")
        return figures
    finally:
        if keep:
            echo(f"  run directory kept: {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
