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

        logs = [h for h in result["log_history"] if "train_runtime" not in h and "reward" in h]
        timed, walls = logs[1:], timer.seconds[1:]
        gen = sum(h.get("timing/generate_s", 0.0) for h in timed)
        rew = sum(h.get("timing/reward_s", 0.0) for h in timed)
        rollout_tokens = sum(h.get("timing/rollout_tokens", 0.0) for h in timed)
        cumulative = [h.get("num_tokens", 0.0) for h in logs]
        step_tokens = [b - a for a, b in zip(cumulative, cumulative[1:])]
        wall = sum(walls)
        rest = wall - gen - rew
        figures: dict[str, Any] = {
            "params": str(params_file),
            "policy": params.model.policy,
            "rm_backbone": rm_backbone,
            "finetune": g.finetune,
            "device": params.run.device,
            "prompts_per_step": g.prompts_per_step,
            "num_generations": g.num_generations,
            "max_completion_length": g.max_completion_length,
            "timed_steps": len(walls),
            "warmup_step_seconds": round(timer.seconds[0], 2) if timer.seconds else None,
            "seconds_per_step": round(wall / len(walls), 2) if walls else None,
            "generation_seconds_per_step": round(gen / len(walls), 2) if walls else None,
            "reward_seconds_per_step": round(rew / len(walls), 3) if walls else None,
            "rollout_tokens_per_step": round(rollout_tokens / len(walls), 1) if walls else None,
            "rollout_tokens_per_s": round(rollout_tokens / gen, 1) if gen else None,
            "training_tokens_per_s": round(sum(step_tokens) / rest, 1) if rest > 0 and step_tokens else None,
            "peak_rss_mib": round(peak_rss_mib(children=False), 1),
            # CPU seconds per wall second over the timed steps: how many cores the run really got. Other work
            # on the machine lowers it (and the load average says how much there was).
            "cores_used": round(sum(timer.cpu_seconds[1:]) / wall, 2) if wall else None,
            "load_average_1min": round(os.getloadavg()[0], 2),
            "total_seconds": round(total, 1),
        }
        try:
            import torch

            if torch.cuda.is_available():
                figures["cuda_peak_allocated_mib"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
        except ImportError:
            pass
        echo(f"  warm-up step:           {figures['warmup_step_seconds']} s")
        echo(f"  seconds per step:       {figures['seconds_per_step']} s  (mean of {len(walls)} steps)")
        echo(f"    generation:           {figures['generation_seconds_per_step']} s")
        echo(f"    reward scoring:       {figures['reward_seconds_per_step']} s")
        echo(f"  rollout tokens/s:       {figures['rollout_tokens_per_s']}  "
             f"({figures['rollout_tokens_per_step']} completion tokens per step)")
        echo(f"  training tokens/s:      {figures['training_tokens_per_s']}")
        echo(f"  peak RSS:               {figures['peak_rss_mib']} MiB")
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
