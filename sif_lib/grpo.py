"""Stage 06: GRPO on the composite self-supervised reward, with TRL's ``GRPOTrainer``.

One code path, two launchers:

* ``train_grpo(ctx)`` trains in the current process (the notebook, a laptop, one GPU);
* ``python -m sif_lib.grpo --params P --run-dir D`` runs the same function, and is what
  ``accelerate launch --config_file params/accelerate/deepspeed_zero3.yaml --num_processes N -m sif_lib.grpo ...``
  starts on every process of a multi-GPU run.

``run_grpo_stage(ctx)`` is the stage: the held-out probe before training, training (in-process, or through
``accelerate launch`` when ``grpo.num_processes > 1``, because a Jupyter kernel cannot host multi-process
training), optional merging, the probe after training, and ``metrics/06_train_grpo.json``.

**The RL set** is the train split of ``data/curriculum.jsonl`` (levels >= 1) plus the train split of
``data/reasoning.jsonl``, as conversational prompts (TRL applies the chat template). TRL 1.16 no longer cuts
prompts, so prompts longer than ``grpo.max_prompt_length`` tokens are dropped (and counted).

**Curriculum modes** are implemented as the *order* of the training dataset, with TRL's shuffling turned off
(``shuffle_dataset=False``); each rollout batch reads the next ``rollout prompts`` rows. The order is built
for exactly the steps that will run, so it is deterministic, visible, and survives a resume (the trainer
skips the batches a checkpoint already consumed):

* ``mixed``: all levels and the reasoning items shuffled together, reshuffled at every pass (the released setup);
* ``staged``: level k opens at step ``grpo.staged_boundaries[k-2]`` (evenly spaced when empty); a rollout batch
  draws from the levels open at its first step (levels <= current, so earlier ones are kept), and reasoning
  items keep their overall share in every batch;
* ``off``: only the full n-constraint instructions (and the reasoning items): the paper's ablation.

**Batches.** ``prompts_per_step`` prompts x ``num_generations`` completions make one optimizer step, split as
``per_device_train_batch_size x grad_accum x processes``. ``rollout_batch_prompts`` (a multiple of it) generates
several steps' worth at once and spends them over several optimizer steps, which is how the paper's
"rollout batch 384, global batch 96" maps onto TRL (``steps_per_generation``).

**Checkpoints** go to ``grpo/checkpoints/`` every ``save_steps``; rerunning the stage resumes from the newest
complete one (a checkpoint is complete once its ``trainer_state.json`` is written, which the trainer does
last). The log history continues from the checkpoint, and rollout-log rows of steps after it are dropped, so
no step is counted twice.

**Outputs** (``grpo/``): ``adapter/`` (LoRA/QLoRA; loadable with ``models.load_causal_lm(policy, adapter=...)``)
or ``model/`` (full fine-tuning), optional ``merged/``, ``rollouts.jsonl``, ``probe_before.jsonl``,
``probe_after.jsonl``, ``train_result.json``. Stage 07 finds the trained policy with ``trained_policy_kwargs``.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib.util
import json
import math
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any, Iterator, Sequence

from sif_lib.errors import InputError
from sif_lib.grpo_config import batch_layout, make_grpo_config

STAGE = "06_train_grpo"
CHECKPOINT_PREFIX = "checkpoint-"


# ---------------------------------------------------------------------------------------------------------------
# The RL set


def _read_rows(path: Path, required: Sequence[str]) -> Iterator[tuple[int, dict]]:
    from sif_lib.runs import iter_numbered_jsonl

    for number, row in iter_numbered_jsonl(path):
        missing = [k for k in required if k not in row]
        if missing:
            raise InputError(f"{path}:{number}: missing key(s) {', '.join(missing)}")
        yield number, row


def _curriculum_items(path: Path, split: str) -> list[dict]:
    items = []
    for number, row in _read_rows(path, ("id", "level", "constraints", "prompt", "split")):
        if not isinstance(row["level"], int) or not isinstance(row["constraints"], list) \
                or not isinstance(row["prompt"], str):
            raise InputError(f"{path}:{number}: 'level' must be an integer, 'constraints' a list, 'prompt' a string")
        if row["split"] != split or row["level"] < 1:
            continue
        items.append({"id": str(row["id"]), "kind": "instruction", "level": row["level"],
                      "n_constraints": int(row.get("n_constraints", len(row["constraints"]))),
                      "constraints": row["constraints"], "prompt": row["prompt"], "answer": None})
    return items


def _reasoning_items(path: Path, split: str) -> list[dict]:
    items = []
    for number, row in _read_rows(path, ("id", "prompt", "answer", "split")):
        if row["split"] != split:
            continue
        if not isinstance(row["prompt"], str):
            raise InputError(f"{path}:{number}: 'prompt' must be a string")
        items.append({"id": str(row["id"]), "kind": "reasoning", "level": 0, "n_constraints": 0,
                      "constraints": [], "prompt": row["prompt"], "answer": str(row["answer"])})
    return items


def load_rl_items(ctx) -> list[dict]:
    """Train-split curriculum items (levels >= 1) followed by train-split reasoning items."""
    curriculum = ctx.require("data", "curriculum.jsonl", stage="02_decompose_curriculum")
    reasoning = ctx.require("data", "reasoning.jsonl", stage="01_synthesize_constraints")
    items = _curriculum_items(curriculum, "train")
    if not items:
        raise InputError(f"{curriculum}: no train-split instructions with level >= 1")
    return items + _reasoning_items(reasoning, "train")


def prompt_messages(prompt: str, system_prompt: str | None) -> list[dict]:
    from sif_lib.generation import chat_messages

    return chat_messages(prompt, system_prompt)


def prompt_lengths(tokenizer: Any, items: Sequence[dict], system_prompt: str | None,
                   enable_thinking: bool | None = None) -> list[int]:
    """Token counts of the chat-rendered prompts, as the trainer will see them."""
    from sif_lib.generation import render_prompt

    texts = [render_prompt(tokenizer, it["prompt"], system_prompt, enable_thinking) for it in items]
    if not texts:
        return []
    return [len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]]


def drop_long_prompts(items: list[dict], lengths: Sequence[int], limit: int) -> tuple[list[dict], int]:
    kept = [it for it, n in zip(items, lengths) if n <= limit]
    return kept, len(items) - len(kept)


# ---------------------------------------------------------------------------------------------------------------
# Curriculum order


def level_schedule(max_steps: int, max_level: int, boundaries: Sequence[int] = ()) -> list[int]:
    """The highest open level at each step 0..max_steps-1 of a staged curriculum.

    ``boundaries[i]`` is the (0-based) step at which level i+2 opens. Empty means evenly spaced: with 60 steps
    and 5 levels, levels 2..5 open at steps 12, 24, 36 and 48.
    """
    if max_level < 1:
        raise ValueError("a staged curriculum needs at least level 1")
    if not boundaries:
        boundaries = [round(max_steps * k / max_level) for k in range(1, max_level)]
    else:
        boundaries = list(boundaries)
        if len(boundaries) != max_level - 1:
            raise InputError(f"grpo.staged_boundaries: the curriculum has {max_level} levels, so give "
                             f"{max_level - 1} step(s), got {len(boundaries)}")
        if any(not isinstance(b, int) or isinstance(b, bool) for b in boundaries) \
                or any(b <= a for a, b in zip(boundaries, boundaries[1:])) or boundaries[0] < 0:
            raise InputError(f"grpo.staged_boundaries: must be increasing non-negative step numbers, got {boundaries}")
    return [1 + sum(1 for b in boundaries if b <= step) for step in range(max_steps)]


class _Cycle:
    """Items in a seeded random order, reshuffled at every pass, forever."""

    def __init__(self, items: Sequence[dict], rng: random.Random):
        self.items, self.rng, self.queue = list(items), rng, []

    def __next__(self) -> dict:
        if not self.queue:
            self.queue = self.items[:]
            self.rng.shuffle(self.queue)
        return self.queue.pop()

    def take(self, n: int) -> list[dict]:
        return [next(self) for _ in range(n)] if self.items else []


def build_order(items: Sequence[dict], mode: str, n_rollouts: int, rollout_prompts: int, steps_per_rollout: int,
                max_steps: int, boundaries: Sequence[int] = (), seed: int = 0) -> list[dict]:
    """The training rows, in the order the trainer reads them: ``n_rollouts`` blocks of ``rollout_prompts``."""
    rng = random.Random(seed)
    instructions = [it for it in items if it["kind"] == "instruction"]
    reasoning = [it for it in items if it["kind"] == "reasoning"]
    if mode == "off":
        instructions = [it for it in instructions if it["level"] == it["n_constraints"]]
    if not instructions:
        raise InputError(f"grpo.curriculum={mode}: no instruction prompts to train on")
    total = n_rollouts * rollout_prompts
    if mode in ("mixed", "off"):
        return _Cycle(instructions + reasoning, rng).take(total)
    if mode != "staged":
        raise InputError(f"grpo.curriculum: unknown mode {mode!r} (mixed, staged or off)")

    max_level = max(it["level"] for it in instructions)
    schedule = level_schedule(max_steps, max_level, boundaries)
    share = len(reasoning) / (len(reasoning) + len(instructions))
    reasoning_cycle = _Cycle(reasoning, rng)
    by_cap: dict[int, _Cycle] = {}
    rows: list[dict] = []
    for g in range(n_rollouts):
        cap = schedule[min(g * steps_per_rollout, max_steps - 1)]
        if cap not in by_cap:
            by_cap[cap] = _Cycle([it for it in instructions if it["level"] <= cap], rng)
        n_reasoning = round(rollout_prompts * share) if reasoning else 0
        batch = reasoning_cycle.take(n_reasoning) + by_cap[cap].take(rollout_prompts - n_reasoning)
        rng.shuffle(batch)
        rows.extend(batch)
    return rows


# ---------------------------------------------------------------------------------------------------------------
# Trainer settings


def _device(params) -> str:
    from sif_lib import models

    return models.device_for(params.run.device)


def check_params(params, world_size: int | None = None) -> None:
    """Settings that only make sense together; each failure names its key."""
    g = params.grpo
    for key, value in (("grpo.save_steps", g.save_steps), ("grpo.logging_steps", g.logging_steps),
                       ("grpo.save_total_limit", g.save_total_limit), ("grpo.grad_accum", g.grad_accum),
                       ("grpo.max_completion_length", g.max_completion_length),
                       ("grpo.max_prompt_length", g.max_prompt_length), ("grpo.num_processes", g.num_processes)):
        if value < 1:
            raise InputError(f"key '{key}' must be at least 1, got {value}")
    if g.rollout_batch_prompts < 0 or (g.rollout_batch_prompts and g.rollout_batch_prompts % g.prompts_per_step):
        raise InputError(f"key 'grpo.rollout_batch_prompts' must be 0 or a multiple of grpo.prompts_per_step "
                         f"({g.prompts_per_step}), got {g.rollout_batch_prompts}")
    batch_layout(g, world_size or g.num_processes)
    device = _device(params)
    if g.finetune == "qlora":
        if device != "cuda":
            raise InputError("key 'grpo.finetune': qlora needs a CUDA GPU (run.device is cpu)")
        from sif_lib import models

        models.quantization_config(True)  # InputError without bitsandbytes
    if g.use_vllm and (device != "cuda" or importlib.util.find_spec("vllm") is None):
        raise InputError("key 'grpo.use_vllm': vLLM rollouts need a CUDA GPU and the vllm package (pip install '.[gpu]')")
    if g.accelerate_config:
        from sif_lib.runs import resolve_path

        path = resolve_path(g.accelerate_config)
        if not path.is_file():
            raise InputError(f"key 'grpo.accelerate_config': file not found: {path}")
        if g.num_processes > 1 and "deepspeed" in path.read_text().lower() \
                and importlib.util.find_spec("deepspeed") is None:
            raise InputError(f"key 'grpo.accelerate_config': {path.name} uses DeepSpeed, which is not installed "
                             "(pip install '.[gpu]')")


def make_peft_config(g):
    if g.finetune == "full":
        return None
    from peft import LoraConfig

    return LoraConfig(r=g.lora_r, lora_alpha=g.lora_alpha, target_modules=g.lora_target_modules,
                      task_type="CAUSAL_LM")


@contextlib.contextmanager
def lora_merged(model):
    """Inside the block, each LoRA layer's weight is ``W + BA``; afterwards the exact base weights are back.

    Unmerged, every decoding step runs two extra small matmuls per adapted layer (about 10% of SmolLM2's
    decoding time on 2 CPU cores, more when threads contend); merging costs one copy of the adapted weights.
    PEFT's own ``unmerge_adapter`` subtracts the update again, which leaves rounding drift in the frozen
    weights after many steps, so the originals are copied back instead. Rollouts sampled this way come from
    the same policy (up to float rounding), and the GRPO loss recomputes every log-probability with the
    unmerged model. A model without LoRA layers is left as it is.
    """
    from peft.tuners.lora import LoraLayer

    layers = [m for m in model.modules() if isinstance(m, LoraLayer)]
    if not layers or not hasattr(model, "merge_adapter"):
        yield model
        return
    saved = [layer.get_base_layer().weight.detach().clone() for layer in layers]
    model.merge_adapter()
    try:
        yield model
    finally:
        for layer, weight in zip(layers, saved):
            layer.get_base_layer().weight.data.copy_(weight)
            layer.merged_adapters = []


def _trainer_class():
    from trl import GRPOTrainer

    class SifGRPOTrainer(GRPOTrainer):
        """GRPOTrainer plus rollout and reward timings in the log history (``timing/*``).

        TRL only reports its own timings to external trackers, so generation and reward scoring are timed here
        (on this process; rank 0's figures are the ones logged). These hooks wrap private methods of the pinned
        TRL release and change nothing they return.
        """

        merge_lora_for_generation = False  # set by train_grpo when the params allow it

        def _metric_store(self):
            return self._metrics["train" if self.model.training else "eval"]

        def _generate_single_turn(self, prompt_ids, *args, **kwargs):
            store = self._metric_store()
            start = time.perf_counter()
            with self._lora_merged():
                completion_ids, logprobs = super()._generate_single_turn(prompt_ids, *args, **kwargs)
            store["timing/generate_s"].append(time.perf_counter() - start)
            store["timing/rollout_tokens"].append(float(sum(len(c) for c in completion_ids)))
            return completion_ids, logprobs

        def _lora_merged(self):
            model = self.accelerator.unwrap_model(self.model)
            if self.merge_lora_for_generation and not self.use_vllm:
                return lora_merged(model)
            return contextlib.nullcontext()

        def _calculate_rewards(self, *args, **kwargs):
            store = self._metric_store()
            start = time.perf_counter()
            rewards = super()._calculate_rewards(*args, **kwargs)
            store["timing/reward_s"].append(time.perf_counter() - start)
            return rewards

    return SifGRPOTrainer


# ---------------------------------------------------------------------------------------------------------------
# Checkpoints and resume


def _checkpoint_step(path: Path) -> int | None:
    name = path.name
    if not name.startswith(CHECKPOINT_PREFIX) or not name[len(CHECKPOINT_PREFIX):].isdigit():
        return None
    return int(name[len(CHECKPOINT_PREFIX):])


def _checkpoint_complete(path: Path) -> bool:
    try:
        json.loads((path / "trainer_state.json").read_text())
    except (OSError, json.JSONDecodeError):
        return False
    return True


def latest_checkpoint(checkpoint_dir: Path) -> Path | None:
    """The newest complete checkpoint (its trainer_state.json, written last, parses), or None."""
    if not checkpoint_dir.is_dir():
        return None
    found = [(step, p) for p in checkpoint_dir.iterdir() if p.is_dir() and (step := _checkpoint_step(p)) is not None]
    for step, path in sorted(found, reverse=True):
        if _checkpoint_complete(path):
            return path
    return None


def prune_incomplete_checkpoints(checkpoint_dir: Path) -> list[str]:
    """Delete checkpoint folders that a killed run left half-written, so they are neither resumed nor counted."""
    removed = []
    if checkpoint_dir.is_dir():
        for path in checkpoint_dir.iterdir():
            if path.is_dir() and _checkpoint_step(path) is not None and not _checkpoint_complete(path):
                shutil.rmtree(path, ignore_errors=True)
                removed.append(path.name)
    return removed


def trim_rollout_log(path: Path, last_step: int) -> int:
    """Keep rollout-log rows of steps <= last_step (those the checkpoint holds); return how many were dropped."""
    from sif_lib.runs import iter_jsonl, write_jsonl

    if not path.is_file():
        return 0
    rows = list(iter_jsonl(path, tolerate_torn_tail=True))
    kept = [r for r in rows if isinstance(r.get("step"), int) and r["step"] <= last_step]
    if len(kept) != len(rows) or path.read_bytes()[-1:] not in (b"", b"\n"):
        write_jsonl(path, kept)
    return len(rows) - len(kept)


# ---------------------------------------------------------------------------------------------------------------
# Training


def grpo_dir(root: Path) -> Path:
    return Path(root) / "grpo"


def _save_final(trainer, tokenizer, target: Path) -> None:
    """Save the trained adapter or model next to ``target`` and rename it into place (a killed save never
    leaves a directory that looks complete)."""
    tmp = target.with_name(target.name + ".tmp")
    if trainer.args.should_save and tmp.exists():
        shutil.rmtree(tmp)
    trainer.accelerator.wait_for_everyone()
    trainer.save_model(str(tmp))
    if trainer.args.should_save:
        tokenizer.save_pretrained(str(tmp))
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    trainer.accelerator.wait_for_everyone()


def _distributed_setup(trainer) -> dict:
    """How this run is spread: accelerate's distributed type, DeepSpeed's ZeRO stage, the collective backend
    (gloo on CPU, nccl on GPUs), processes and machines (torchrun's worker groups)."""
    import torch.distributed as dist

    accelerator = trainer.accelerator
    plugin = getattr(accelerator.state, "deepspeed_plugin", None)
    return {"type": getattr(accelerator.distributed_type, "value", str(accelerator.distributed_type)),
            "zero_stage": plugin.zero_stage if plugin is not None else None,
            "backend": dist.get_backend() if dist.is_available() and dist.is_initialized() else None,
            "processes": accelerator.num_processes,
            "machines": int(os.environ.get("GROUP_WORLD_SIZE", "1"))}


def _log_steps(history: list[dict]) -> list[dict]:
    return [h for h in history if "train_runtime" not in h and ("loss" in h or "reward" in h)]


def train_grpo(ctx, scorer: Any = None, callbacks: Sequence[Any] | None = None) -> dict:
    """Train the policy with GRPO in this process (one of several under ``accelerate launch``).

    Resumes from the newest complete checkpoint under ``grpo/checkpoints``. Returns (and, on the main process,
    writes to ``grpo/train_result.json``) the step counts, timings and the trainer's log history.
    """
    from datasets import Dataset

    from sif_lib import generation, models
    from sif_lib.rewards import make_reward_function
    from sif_lib.runs import write_json

    params = ctx.params
    g = params.grpo
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    check_params(params, world_size)
    layout = batch_layout(g, world_size)
    out = grpo_dir(ctx.root)
    checkpoint_dir = out / "checkpoints"
    rollout_log = out / "rollouts.jsonl"

    if scorer is None:
        from sif_lib.reward_model import make_scorer

        # Before the GRPOConfig: under DeepSpeed ZeRO-3 the config switches on partitioned loading
        # (zero.Init) for every model loaded afterwards, and the reward model must stay whole on each process.
        scorer = make_scorer(params, ctx.root)
    tokenizer = models.load_tokenizer(params.model.policy, key="model.policy")
    args = make_grpo_config(params, checkpoint_dir, world_size,
                            chat_template_kwargs=generation.template_kwargs(tokenizer, params.model.enable_thinking))
    resumed_from = None
    with args.main_process_first(desc="preparing the resume"):
        if args.process_index == 0:
            checkpoint_dir.mkdir(parents=True, exist_ok=True)
            prune_incomplete_checkpoints(checkpoint_dir)
            last = latest_checkpoint(checkpoint_dir)
            if last is None:
                rollout_log.unlink(missing_ok=True)
            else:
                trim_rollout_log(rollout_log, _checkpoint_step(last))
    resume = latest_checkpoint(checkpoint_dir)
    if resume is not None:
        resumed_from = _checkpoint_step(resume)

    items = load_rl_items(ctx)
    items, dropped = drop_long_prompts(items, prompt_lengths(tokenizer, items, params.model.system_prompt,
                                                                  params.model.enable_thinking),
                                       g.max_prompt_length)
    if not any(it["kind"] == "instruction" for it in items):
        raise InputError(f"key 'grpo.max_prompt_length': every instruction prompt is longer than {g.max_prompt_length} tokens")
    n_rollouts = math.ceil(g.max_steps / layout["steps_per_rollout"])
    rows = build_order(items, g.curriculum, n_rollouts, layout["rollout_prompts"], layout["steps_per_rollout"],
                       g.max_steps, g.staged_boundaries, seed=params.run.seed)
    dataset = Dataset.from_list([
        {"prompt": prompt_messages(r["prompt"], params.model.system_prompt), "kind": r["kind"], "level": r["level"],
         "constraints": json.dumps(r["constraints"], ensure_ascii=False), "answer": r["answer"], "id": r["id"]}
        for r in rows])

    reward = make_reward_function(params, scorer, rollout_log=rollout_log, process_index=args.process_index)
    quantization = models.quantization_config(g.finetune == "qlora")
    trainer = _trainer_class()(
        model=models.resolve(params.model.policy, key="model.policy"), reward_funcs=reward, args=args,
        train_dataset=dataset, processing_class=tokenizer, peft_config=make_peft_config(g),
        quantization_config=quantization, callbacks=list(callbacks or []))
    trainer.merge_lora_for_generation = (g.merge_lora_for_generation and g.finetune == "lora"
                                         and args.world_size == 1)

    distributed = _distributed_setup(trainer)
    start = time.perf_counter()
    output = trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    train_seconds = time.perf_counter() - start
    target = out / ("model" if g.finetune == "full" else "adapter")
    _save_final(trainer, tokenizer, target)

    steps_this_session = trainer.state.global_step - (resumed_from or 0)
    result = {
        "global_step": trainer.state.global_step,
        "max_steps": g.max_steps,
        "resumed_from": resumed_from,
        "steps_this_session": steps_this_session,
        "train_seconds": round(train_seconds, 2),
        "seconds_per_step": round(train_seconds / steps_this_session, 3) if steps_this_session else None,
        "train_loss": output.training_loss,
        "saved_to": str(target.relative_to(ctx.root)),
        "precision": {"device": args.device.type, "bf16": bool(args.bf16), "fp16": bool(args.fp16)},
        "distributed": distributed,
        "layout": layout,
        "data": {"items": len(items), "instruction_items": sum(it["kind"] == "instruction" for it in items),
                 "reasoning_items": sum(it["kind"] == "reasoning" for it in items),
                 "dropped_long_prompts": dropped, "order_rows": len(rows),
                 "order_levels": {("reasoning" if k == 0 else f"L{k}"): v
                                  for k, v in sorted(Counter(r["level"] for r in rows).items())}},
        "log_history": trainer.state.log_history,
    }
    if args.should_save:
        write_json(out / "grpo_config.json", args.to_dict())
        write_json(out / "train_result.json", result)
    del trainer
    _release_memory()
    return result


# ---------------------------------------------------------------------------------------------------------------
# Trained policy, merging


def trained_policy_kwargs(run_dir: str | Path, params) -> dict:
    """How to load the trained policy: ``{"spec": ..., "adapter": ...}`` for ``models.load_causal_lm`` or
    ``ChatGenerator``. A full fine-tune's ``grpo/model`` comes first, then a merged ``grpo/merged``, then the
    base policy with ``grpo/adapter`` on top."""
    out = grpo_dir(Path(run_dir))
    if (out / "model" / "config.json").is_file():
        return {"spec": str(out / "model"), "adapter": None}
    if (out / "merged" / "config.json").is_file():
        return {"spec": str(out / "merged"), "adapter": None}
    if (out / "adapter" / "adapter_config.json").is_file():
        return {"spec": params.model.policy, "adapter": str(out / "adapter")}
    raise InputError(f"{out}: no trained policy (adapter/, merged/ or model/): run stage {STAGE} first")


def export_merged(ctx) -> Path:
    """Merge ``grpo/adapter`` into the base policy and save ``grpo/merged`` (a QLoRA adapter is merged into
    the full-precision base, since a 4-bit base cannot absorb it exactly)."""
    from sif_lib import models

    params = ctx.params
    out = grpo_dir(ctx.root)
    model = models.load_causal_lm(params.model.policy, dtype=params.run.dtype, device=params.run.device,
                                  key="model.policy", adapter=out / "adapter")
    merged = model.merge_and_unload()
    target, tmp = out / "merged", out / "merged.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    merged.save_pretrained(str(tmp))
    models.load_tokenizer(params.model.policy, key="model.policy").save_pretrained(str(tmp))
    shutil.rmtree(target, ignore_errors=True)
    os.replace(tmp, target)
    del model, merged
    _release_memory()
    return target


# ---------------------------------------------------------------------------------------------------------------
# The held-out probe


def probe_items(ctx) -> list[dict]:
    """A fixed set of held-out curriculum prompts (levels >= 1): ``grpo.probe_size`` of them, spread evenly over
    the levels, chosen by a seeded shuffle of the id-sorted rows."""
    path = ctx.require("data", "curriculum.jsonl", stage="02_decompose_curriculum")
    size = ctx.params.grpo.probe_size
    if size <= 0:
        return []
    rng = random.Random(ctx.params.run.seed)
    by_level: dict[int, list[dict]] = {}
    for it in sorted(_curriculum_items(path, "heldout"), key=lambda it: it["id"]):
        by_level.setdefault(it["level"], []).append(it)
    for level in by_level:
        rng.shuffle(by_level[level])
    chosen: list[dict] = []
    while len(chosen) < size and any(by_level.values()):
        for level in sorted(by_level):
            if by_level[level] and len(chosen) < size:
                chosen.append(by_level[level].pop())
    return chosen


def _item_score(row: dict):
    from sif_lib.rewards import ItemScore

    return ItemScore(kind=row["kind"], reward=row["reward"], answer_found=row["answer_found"], level=row["level"],
                     constraints=row["constraints"], correct=row.get("correct"),
                     repetitive=bool(row.get("repetitive", False)))


def load_probe(path: Path, items: Sequence[dict]) -> dict | None:
    """The summary of a saved probe, when it covers exactly these items (else None: it must be rerun)."""
    from sif_lib.rewards import summarize
    from sif_lib.runs import read_jsonl

    if not path.is_file():
        return None
    try:
        rows = read_jsonl(path)
    except InputError:
        return None
    if [r.get("id") for r in rows] != [it["id"] for it in items]:
        return None
    return summarize(_item_score(r) for r in rows)


def run_probe(ctx, which: str, items: Sequence[dict], scorer: Any, spec: str, adapter: str | None = None,
              backend: str = "hf") -> dict:
    """Answer the probe greedily with a policy, score the answers with the reward components, save
    ``grpo/probe_<which>.jsonl`` and return the summary (``rewards.summarize``). Its ``reward`` is the run's
    training reward, so a ``grpo.repetitive_penalty`` counts in it; hard satisfaction and the soft RM
    probability do not depend on it, and compare across runs."""
    from sif_lib.generation import ChatGenerator, Sampling
    from sif_lib.rewards import summarize
    from sif_lib.runs import write_jsonl

    params = ctx.params
    generator = ChatGenerator(spec, backend=backend, dtype=params.run.dtype, device=params.run.device,
                              system_prompt=params.model.system_prompt, adapter=adapter,
                              enable_thinking=params.model.enable_thinking)
    completions = generator.generate([it["prompt"] for it in items],
                                     Sampling(max_new_tokens=params.grpo.max_completion_length, temperature=0.0,
                                              seed=params.run.seed),
                                     batch_size=params.rollouts.batch_size)
    del generator
    _release_memory()
    rows = score_probe(params, items, completions, scorer)
    write_jsonl(grpo_dir(ctx.root) / f"probe_{which}.jsonl", rows)
    return summarize(_item_score(r) for r in rows)


def score_probe(params, items: Sequence[dict], completions: Sequence[str], scorer: Any) -> list[dict]:
    """The probe's rows: each completion scored by the run's reward function (which reads the answer part
    that ``model.answer_mode`` selects, as in training)."""
    from sif_lib.rewards import make_reward_function

    reward = make_reward_function(params, scorer)
    scores = reward.score_batch(completions, [it["kind"] for it in items], [it["level"] for it in items],
                                [it["constraints"] for it in items], [it["answer"] for it in items],
                                [it["id"] for it in items])
    return [{"id": it["id"], "prompt": it["prompt"], "completion": c, **s.to_dict()}
            for it, c, s in zip(items, completions, scores)]


# ---------------------------------------------------------------------------------------------------------------
# The stage


def launch_command(ctx, machine_args: Sequence[str] = ()) -> list[str]:
    """``accelerate launch`` of this module on ``grpo.num_processes`` processes (in all, over every machine).

    The shipped accelerate configs are written for GPU servers (bf16); on a CPU run the flags adapt them rather
    than a copy: ``--mixed_precision no``, since the CPU trains in fp32 (``run.dtype``), and DeepSpeed then
    runs on its CPU accelerator with gloo. ``machine_args`` are added as given, e.g. ``--num_machines 2
    --machine_rank 1 --main_process_ip HOST --main_process_port PORT`` on each machine of a multi-node run.
    """
    from sif_lib.runs import resolve_path

    g = ctx.params.grpo
    cmd = [sys.executable, "-m", "accelerate.commands.launch"]
    if g.accelerate_config:
        cmd += ["--config_file", str(resolve_path(g.accelerate_config))]
    else:
        # torchrun-style processes; on a machine without CUDA they train on CPU over gloo (use_cpu=True).
        cmd += ["--multi_gpu"]
    if _device(ctx.params) == "cpu":
        cmd += ["--mixed_precision", "no"]
    cmd += ["--num_processes", str(g.num_processes), *machine_args]
    return cmd + ["-m", "sif_lib.grpo", "--params", str(ctx.root / "params.yaml"), "--run-dir", str(ctx.root)]


def run_streaming(cmd: Sequence[str], echo=None) -> None:
    """Run a command, copying its output through as it comes (progress bars included); raise on failure."""
    echo = echo or (lambda text: (sys.stdout.write(text), sys.stdout.flush()))
    tail = b""
    proc = subprocess.Popen(list(cmd), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        while chunk := os.read(proc.stdout.fileno(), 4096):
            tail = (tail + chunk)[-4000:]
            echo(chunk.decode("utf-8", errors="replace"))
        code = proc.wait()
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    if code != 0:
        last = tail.decode("utf-8", errors="replace").strip().splitlines()[-15:]
        raise RuntimeError(f"{' '.join(cmd[:4])} ... exited with status {code}:\n" + "\n".join(last))


def _series(history: list[dict]) -> dict[str, list]:
    """Per-step series from the log history: TRL's reward and losses, the components, levels and timings."""
    steps = _log_steps(history)
    wanted = ["reward", "reward_std", "loss", "kl", "entropy", "learning_rate", "completions/mean_length",
              "completions/clipped_ratio", "frac_reward_zero_std", "step_time", "num_tokens"]
    keys = wanted + sorted({k for h in steps for k in h if k.startswith(("components/", "levels/", "timing/"))})
    series: dict[str, list] = {"step": [h["step"] for h in steps]}
    for key in keys:
        values = [h.get(key) for h in steps]
        if any(v is not None for v in values):
            series[key] = values
    return series


def _window_means(series: dict[str, list]) -> dict:
    """Each series averaged over the first and the last quarter of the steps: the trend in two numbers."""
    n = len(series.get("step", []))
    if not n:
        return {}
    k = max(1, n // 4)
    out = {}
    for key, values in series.items():
        if key == "step" or key.startswith("timing/") or key in ("num_tokens", "learning_rate"):
            continue

        def mean(vs):
            vs = [v for v in vs if v is not None]
            return round(sum(vs) / len(vs), 4) if vs else None

        out[key] = {"first": mean(values[:k]), "last": mean(values[-k:])}
    return out


def _timing(series: dict[str, list]) -> dict:
    gen = [v for v in series.get("timing/generate_s", []) if v]
    toks = [v for v in series.get("timing/rollout_tokens", []) if v]
    step = [v for v in series.get("step_time", []) if v]
    return {"seconds_per_step_logged": round(sum(step) / len(step), 3) if step else None,
            "generate_seconds_per_step": round(sum(gen) / len(gen), 3) if gen else None,
            "rollout_tokens_per_second": round(sum(toks) / sum(gen), 1) if gen and toks else None}


def _probe_delta(before: dict | None, after: dict | None) -> dict:
    if not before or not after:
        return {}
    return {k: round(after[k] - before[k], 4) for k in ("reward", "hard_satisfaction", "soft_prob")
            if before.get(k) is not None and after.get(k) is not None}


def hard_check_flips(before_rows: Sequence[dict], after_rows: Sequence[dict]) -> dict:
    """The probe's hard constraints paired before/after: how many went from failed to met (``gained``) and back
    (``lost``), and the exact two-sided sign-test p-value of that split. A paired test, because the same prompt
    and constraint are scored twice: it separates a real change from noise far better than two independent
    proportions of a few hundred checks."""
    after_by_id = {r["id"]: r for r in after_rows}
    gained = lost = paired = 0
    for row in before_rows:
        other = after_by_id.get(row["id"])
        if other is None:
            continue
        for b, a in zip(row["constraints"], other["constraints"]):
            if b["kind"] != "hard" or b["id"] != a["id"]:
                continue
            paired += 1
            gained += bool(a["verdict"]) and not b["verdict"]
            lost += bool(b["verdict"]) and not a["verdict"]
    flips = gained + lost
    tail = sum(math.comb(flips, k) for k in range(min(gained, lost) + 1)) / 2 ** flips if flips else 1.0
    return {"paired": paired, "gained": gained, "lost": lost, "sign_test_p": round(min(1.0, 2 * tail), 5)}


def probe_repetition(before_rows: Sequence[dict], after_rows: Sequence[dict], answer_mode: str = "whole") -> dict:
    """Repetitive answers on the probe before and after training (``repetition.repetition_summary``), and the
    paired hard checks restricted to prompts where neither answer is repetitive. A policy can meet rule checks
    with degenerate loops ("1. 1. 1." has no comma); the ``fluent`` figures show whether a rise survives
    without them. Like the reward, it reads the scored answer (``model.answer_mode``), not a model's thinking."""
    from sif_lib.repetition import is_repetitive, repetition_summary
    from sif_lib.rewards import extract

    def answer(row: dict) -> str:
        return extract(row["completion"], answer_mode) or ""

    before_by_id = {r["id"]: r for r in before_rows}
    pairs = [(before_by_id[r["id"]], r) for r in after_rows if r["id"] in before_by_id]
    fluent = [(b, a) for b, a in pairs if not is_repetitive(answer(b)) and not is_repetitive(answer(a))]

    def met(rows) -> int:
        return sum(bool(c["verdict"]) for r in rows for c in r["constraints"] if c["kind"] == "hard")

    checks = sum(c["kind"] == "hard" for _, a in fluent for c in a["constraints"])
    return {"before": repetition_summary(answer(b) for b, _ in pairs),
            "after": repetition_summary(answer(a) for _, a in pairs),
            "fluent": {"prompts": len(fluent), "hard_checks": checks,
                       "hard_before": round(met(b for b, _ in fluent) / checks, 4) if checks else None,
                       "hard_after": round(met(a for _, a in fluent) / checks, 4) if checks else None,
                       **hard_check_flips([b for b, _ in fluent], [a for _, a in fluent])}}


def _release_memory() -> None:
    gc.collect()
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _remove_stale_outputs(out: Path, g) -> None:
    """A rerun in another mode must not leave an older policy where stage 07 would look first."""
    if g.finetune == "full":
        for name in ("adapter", "merged"):
            shutil.rmtree(out / name, ignore_errors=True)
    else:
        shutil.rmtree(out / "model", ignore_errors=True)
        if not g.merge_adapter:
            shutil.rmtree(out / "merged", ignore_errors=True)


def _probe_comparison(out: Path, answer_mode: str) -> dict:
    """The saved probes paired: hard checks gained and lost, and repetition."""
    from sif_lib.runs import read_jsonl

    before, after = read_jsonl(out / "probe_before.jsonl"), read_jsonl(out / "probe_after.jsonl")
    return {"hard_flips": hard_check_flips(before, after),
            "repetition": probe_repetition(before, after, answer_mode)}


def run_grpo_stage(ctx, echo=print) -> dict:
    """Stage 06: probe before, train (in-process or via ``accelerate launch``), merge, probe after, metrics."""
    from sif_lib.reward_model import make_scorer
    from sif_lib.runs import read_json

    params = ctx.params
    g = params.grpo
    check_params(params)
    ctx.require("data", "curriculum.jsonl", stage="02_decompose_curriculum")
    ctx.require("data", "reasoning.jsonl", stage="01_synthesize_constraints")
    out = grpo_dir(ctx.root)
    out.mkdir(parents=True, exist_ok=True)
    began = time.perf_counter()
    scorer = make_scorer(params, ctx.root)
    # The same decoder before and after: an adapter run is probed with transformers on both sides.
    backend = params.rollouts.backend if (g.finetune == "full" or g.merge_adapter) else "hf"

    probe = probe_items(ctx)
    before = load_probe(out / "probe_before.jsonl", probe)
    if probe and before is None:
        echo(f"probe before training: {len(probe)} held-out prompts")
        before = run_probe(ctx, "before", probe, scorer, params.model.policy, backend=backend)

    if g.num_processes > 1:
        # The launched processes load their own reward model; this one must not hold GPU memory meanwhile.
        scorer = None
        _release_memory()
        (out / "train_result.json").unlink(missing_ok=True)
        cmd = launch_command(ctx)
        echo("launching: " + " ".join(cmd))
        run_streaming(cmd)
        result = json.loads((out / "train_result.json").read_text())
        if probe:
            scorer = make_scorer(params, ctx.root)
    else:
        result = train_grpo(ctx, scorer=scorer)

    if g.merge_adapter and g.finetune != "full":
        echo("merging the adapter into the base policy")
        export_merged(ctx)
    _remove_stale_outputs(out, g)

    after = None
    if probe:
        echo("probe after training")
        policy = trained_policy_kwargs(ctx.root, params)
        after = run_probe(ctx, "after", probe, scorer, policy["spec"], adapter=policy["adapter"], backend=backend)

    series = _series(result["log_history"])
    metrics = {
        "steps": result["global_step"],
        "max_steps": result["max_steps"],
        "resumed_from": result["resumed_from"],
        "steps_this_session": result["steps_this_session"],
        "wall_seconds": round(time.perf_counter() - began, 2),
        "train_seconds": result["train_seconds"],
        "seconds_per_step": result["seconds_per_step"],
        "settings": {"curriculum": g.curriculum, "staged_boundaries": g.staged_boundaries,
                     "soft_reward": g.soft_reward, "hard_reward": g.hard_reward,
                     "repetitive_penalty": g.repetitive_penalty, "finetune": g.finetune,
                     "answer_mode": params.model.answer_mode, "policy": params.model.policy,
                     "num_processes": g.num_processes, "use_vllm": g.use_vllm, "beta": g.beta,
                     "learning_rate": g.learning_rate, "num_generations": g.num_generations,
                     "max_completion_length": g.max_completion_length},
        "layout": result["layout"],
        "precision": result.get("precision"),
        "data": result["data"],
        "timing": _timing(series),
        "trend": _window_means(series),
        "series": series,
        "probe": {"size": len(probe), "before": before, "after": after, "delta": _probe_delta(before, after),
                  **(_probe_comparison(out, params.model.answer_mode) if before and after
                     else {"hard_flips": None, "repetition": None})},
        "artifacts": {name: f"grpo/{name}" for name in ("adapter", "merged", "model") if (out / name).is_dir()},
        # The runner copies this into the stage's record in manifest.json.
        "manifest_record": {"grpo_config": read_json(out / "grpo_config.json", f"rerun stage {STAGE}")},
    }
    ctx.write_metrics(STAGE, metrics)
    return metrics


# ---------------------------------------------------------------------------------------------------------------
# Views for the notebook


_COMPONENTS = [("reward", "composite reward"), ("components/hard", "hard (scored)"),
               ("components/hard_verifier", "hard (verifier)"), ("components/soft", "soft"),
               ("components/reasoning_accuracy", "reasoning accuracy"), ("components/no_answer", "no answer"),
               ("components/repetitive", "repetitive share")]


def reward_figure(metrics: dict):
    """Reward and its components per step."""
    import plotly.graph_objects as go

    series = metrics["series"]
    fig = go.Figure()
    for key, label in _COMPONENTS:
        if key in series:
            fig.add_trace(go.Scatter(x=series["step"], y=series[key], mode="lines+markers", name=label,
                                     connectgaps=True))
    fig.update_layout(title="GRPO reward per component", xaxis_title="step", yaxis_title="mean over the batch",
                      yaxis_range=[0, 1.02], height=380)
    return fig


def level_figure(metrics: dict):
    """Composite reward per curriculum level per step (a level absent from a step's batch leaves a gap)."""
    import plotly.graph_objects as go

    series = metrics["series"]
    fig = go.Figure()
    for key in sorted((k for k in series if k.startswith("levels/L")), key=lambda k: int(k.split("L")[-1])):
        fig.add_trace(go.Scatter(x=series["step"], y=series[key], mode="lines+markers", name=key.split("/")[-1],
                                 connectgaps=True))
    fig.update_layout(title="GRPO reward per curriculum level", xaxis_title="step", yaxis_title="mean reward",
                      yaxis_range=[0, 1.02], height=380)
    return fig


def probe_table(metrics: dict):
    """Held-out probe before and after training: overall and per level."""
    import pandas as pd

    probe = metrics.get("probe") or {}
    before, after = probe.get("before") or {}, probe.get("after") or {}
    rows = []

    def add(label, b, a):
        row = {"set": label, "n": (a or b or {}).get("n")}
        for key in ("reward", "hard_satisfaction", "soft_prob"):
            row[f"{key} before"] = (b or {}).get(key)
            row[f"{key} after"] = (a or {}).get(key)
        rows.append(row)

    add("all", before, after)
    levels = sorted(set(before.get("per_level", {})) | set(after.get("per_level", {})), key=int)
    for level in levels:
        add(f"L{level}", before.get("per_level", {}).get(level), after.get("per_level", {}).get(level))
    return pd.DataFrame(rows).set_index("set").round(3)


def summary_table(metrics: dict):
    """The stage's headline figures."""
    import pandas as pd

    t = metrics.get("trend", {})
    rows = {
        "steps": metrics["steps"],
        "resumed from step": metrics["resumed_from"],
        "seconds per step": metrics["seconds_per_step"],
        "rollout tokens/s": metrics["timing"].get("rollout_tokens_per_second"),
        "curriculum": metrics["settings"]["curriculum"],
        "soft / hard reward": f"{metrics['settings']['soft_reward']} / {metrics['settings']['hard_reward']}",
        "reward, first → last quarter": f"{t.get('reward', {}).get('first')} → {t.get('reward', {}).get('last')}",
        "probe reward before → after": f"{(metrics['probe']['before'] or {}).get('reward')} → "
                                       f"{(metrics['probe']['after'] or {}).get('reward')}",
    }
    flips = metrics["probe"].get("hard_flips")
    if flips:
        rows["probe hard checks gained / lost"] = (f"{flips['gained']} / {flips['lost']} of {flips['paired']} "
                                                  f"(sign test p = {flips['sign_test_p']})")
    repetition = metrics["probe"].get("repetition")
    if repetition:
        fluent = repetition["fluent"]
        rows["probe repetitive answers before → after"] = (f"{repetition['before']['repetitive']} → "
                                                           f"{repetition['after']['repetitive']} of "
                                                           f"{repetition['after']['n']}")
        rows["probe hard, non-repetitive pairs before → after"] = (
            f"{fluent['hard_before']} → {fluent['hard_after']} ({fluent['prompts']} prompts, "
            f"{fluent['gained']} gained / {fluent['lost']} lost)")
    return pd.DataFrame({"value": [str(v) for v in rows.values()]}, index=list(rows))


# ---------------------------------------------------------------------------------------------------------------
# Command line (what ``accelerate launch -m sif_lib.grpo`` runs on every process)


def _exit_with_launcher() -> None:
    """Ask Linux to kill this worker when its launcher dies. torchrun starts each worker in a session of its own,
    so a launcher killed with SIGKILL (an OOM kill, a scheduler's cancel) would otherwise leave the workers
    training on, writing checkpoints under a run that is about to be resumed."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    launcher = os.getppid()
    libc = ctypes.CDLL(None, use_errno=True)
    pr_set_pdeathsig = 1
    libc.prctl(pr_set_pdeathsig, signal.SIGKILL)
    if os.getppid() != launcher:  # the launcher died before the request took effect
        os.kill(os.getpid(), signal.SIGKILL)


def _close_process_group() -> None:
    """Tear the process group down before exit; without it a rank can abort on exit (SIGABRT in gloo)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sif_lib.grpo",
                                     description="Train the GRPO policy of a run directory (stage 06's training).")
    parser.add_argument("--params", required=True, help="params YAML (normally the run's own params.yaml)")
    parser.add_argument("--run-dir", required=True, help="run directory with data/ and rm/")
    args = parser.parse_args(argv)
    from sif_lib.runs import RunContext

    if "LOCAL_RANK" in os.environ:
        _exit_with_launcher()
    try:
        ctx = RunContext.open(args.run_dir, args.params)
        result = train_grpo(ctx)
    except InputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    finally:
        _close_process_group()
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"trained to step {result['global_step']} (resumed from {result['resumed_from']}); "
              f"saved {result['saved_to']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
