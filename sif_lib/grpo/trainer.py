"""GRPO training of stage 06 with TRL's ``GRPOTrainer``, in this process or as one of several.

``train_grpo(ctx)`` trains where it is called (the notebook, a laptop, one GPU); under ``accelerate launch`` every
process runs it (:mod:`sif_lib.grpo.launch`). The pieces it puts together:

* the RL set in curriculum order (:mod:`sif_lib.grpo.rl_set`);
* the composite reward as TRL's reward function (:mod:`sif_lib.reward.composite`);
* ``GRPOConfig`` from the params (:mod:`sif_lib.grpo.config`) and the LoRA config;
* checkpoints written whole, and resume from the newest complete one (:mod:`sif_lib.grpo.checkpoints`);
* the generation hook (:mod:`sif_lib.grpo.trl_hooks`), the only use of TRL's private surface.

**Batches.** ``prompts_per_step`` prompts x ``num_generations`` completions make one optimizer step, split as
``per_device_train_batch_size x grad_accum x processes``. ``rollout_batch_prompts`` (a multiple of it) generates
several steps' worth at once and spends them over several optimizer steps, which is how the paper's
"rollout batch 384, global batch 96" maps onto TRL (``steps_per_generation``).

**Outputs** (``grpo/``): ``adapter/`` (LoRA/QLoRA) or ``model/`` (full fine-tuning), ``rollouts.jsonl`` (every
scored completion), ``grpo_config.json`` (the effective ``GRPOConfig``) and ``train_result.json``; the logged
scalars go where ``run.report_to`` says (:mod:`sif_lib.runner.tracking`: ``<run>/tensorboard/<stage>``).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sif_lib.core.errors import InputError
from sif_lib.core.io import commit_dir, write_json
from sif_lib.grpo.checkpoints import (
    checkpoint_step,
    commit_callback,
    latest_checkpoint,
    prune_incomplete_checkpoints,
    saving_dir,
    trim_rollout_log,
)
from sif_lib.grpo.config import batch_layout, check_params, make_grpo_config, make_peft_config
from sif_lib.grpo.rl_set import build_order, drop_long_prompts, load_rl_items, prompt_lengths, prompt_messages
from sif_lib.grpo.trl_hooks import trainer_class
from sif_lib.policy import generation, models
from sif_lib.policy.answers import grpo_dir
from sif_lib.reward.composite import make_reward_function
from sif_lib.rm_service.clients import make_scorer
from sif_lib.runner import progress as stage_progress
from sif_lib.runner import tracking
from sif_lib.runner.runs import RunContext
from sif_lib.runner.stage_table import producer


def _save_final(trainer, tokenizer, target: Path) -> None:
    """Save the trained adapter or model next to ``target``, check its files and rename it into place
    (:func:`~sif_lib.core.io.commit_dir`): a killed save leaves the previous one, or none, never half of one."""
    tmp = target.with_name(target.name + ".tmp")
    if trainer.args.should_save and tmp.exists():
        shutil.rmtree(tmp)
    trainer.accelerator.wait_for_everyone()
    trainer.save_model(str(tmp))
    if trainer.args.should_save:
        tokenizer.save_pretrained(str(tmp))
        commit_dir(tmp, target)
    trainer.accelerator.wait_for_everyone()


def _distributed_setup(trainer) -> dict:
    """How this run is spread: accelerate's distributed type, DeepSpeed's ZeRO stage, the collective backend
    (gloo on CPU, nccl on GPUs), processes and machines (torchrun's worker groups)."""
    import torch.distributed as dist  # heavy: torch

    accelerator = trainer.accelerator
    plugin = getattr(accelerator.state, "deepspeed_plugin", None)
    return {"type": getattr(accelerator.distributed_type, "value", str(accelerator.distributed_type)),
            "zero_stage": plugin.zero_stage if plugin is not None else None,
            "backend": dist.get_backend() if dist.is_available() and dist.is_initialized() else None,
            "processes": accelerator.num_processes,
            "machines": int(os.environ.get("GROUP_WORLD_SIZE", "1"))}


def train_grpo(ctx: RunContext, scorer: Any = None, callbacks: Sequence[Any] | None = None) -> dict:
    """Train the policy with GRPO in this process (one of several under ``accelerate launch``).

    Resumes from the newest complete checkpoint under ``grpo/checkpoints``. Returns (and, on the main process,
    writes to ``grpo/train_result.json``) the step counts, timings and the trainer's log history.
    """
    from datasets import Dataset  # heavy: only when training

    params = ctx.params
    g = params.grpo
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    check_params(params, world_size)
    layout = batch_layout(g, world_size)
    out = grpo_dir(ctx.root)
    checkpoint_dir = out / "checkpoints"
    rollout_log = out / "rollouts.jsonl"

    if scorer is None:
        # Before the GRPOConfig: under DeepSpeed ZeRO-3 the config switches on partitioned loading
        # (zero.Init) for every model loaded afterwards, and the reward model must stay whole on each process.
        scorer = make_scorer(params, ctx.root)
    tokenizer = models.load_tokenizer(params.model.policy, key="model.policy")
    log_dir = tracking.log_dir(ctx.root, producer(out.name).name)
    # The trainer saves each checkpoint under checkpoints/.saving; the commit callback checks it and moves it up.
    args = make_grpo_config(params, saving_dir(checkpoint_dir), world_size,
                            chat_template_kwargs=generation.template_kwargs(tokenizer, params.model.enable_thinking),
                            log_dir=log_dir)
    resumed_from = None
    with args.main_process_first(desc="preparing the resume"):
        if args.process_index == 0:
            checkpoint_dir.mkdir(parents=True, exist_ok=True)
            prune_incomplete_checkpoints(checkpoint_dir)
            last = latest_checkpoint(checkpoint_dir)
            if last is None:
                rollout_log.unlink(missing_ok=True)
            else:
                trim_rollout_log(rollout_log, checkpoint_step(last))
    resume = latest_checkpoint(checkpoint_dir)
    if resume is not None:
        resumed_from = checkpoint_step(resume)

    items = load_rl_items(ctx)
    items, dropped = drop_long_prompts(items, prompt_lengths(tokenizer, items, params.model.system_prompt,
                                                                  params.model.enable_thinking),
                                       g.max_prompt_length)
    if not any(it["kind"] == "instruction" for it in items):
        raise InputError("key 'grpo.max_prompt_length': every instruction "
                         f"prompt is longer than {g.max_prompt_length} tokens")
    n_rollouts = math.ceil(g.max_steps / layout["steps_per_rollout"])
    rows = build_order(items, g.curriculum, n_rollouts, layout["rollout_prompts"], layout["steps_per_rollout"],
                       g.max_steps, g.staged_boundaries, seed=params.run.seed if g.seed is None else g.seed)
    dataset = Dataset.from_list([
        {"prompt": prompt_messages(r["prompt"], params.model.system_prompt), "kind": r["kind"], "level": r["level"],
         "constraints": json.dumps(r["constraints"], ensure_ascii=False), "answer": r["answer"], "id": r["id"]}
        for r in rows])

    reward = make_reward_function(params, scorer, rollout_log=rollout_log, process_index=args.process_index)
    quantization = models.quantization_config(g.finetune == "qlora")
    with tracking.trainer_logs(params, log_dir, fresh=resume is None, main_process=args.process_index == 0):
        trainer = trainer_class()(
            model=models.resolve(params.model.policy, key="model.policy"), reward_funcs=reward, args=args,
            train_dataset=dataset, processing_class=tokenizer, peft_config=make_peft_config(g),
            quantization_config=quantization,
            callbacks=[*(callbacks or []), stage_progress.trainer_callback("reward"),
                       commit_callback(checkpoint_dir, g.save_total_limit)])
    trainer.merge_lora_for_generation = (g.merge_lora_for_generation and g.finetune == "lora"
                                         and args.world_size == 1)
    # One process: the rollouts go through sif_lib.policy.decoding where TRL would call generate() (trl_hooks).
    trainer.shrinking_decoder = args.world_size == 1
    trainer.greedy_members = g.greedy_members if trainer.shrinking_decoder else 0

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
        # This process's reads; a multi-process launch reports them to the stage, which records them.
        "params_read": params.reads(),
    }
    if args.should_save:
        write_json(out / "grpo_config.json", args.to_dict())
        write_json(out / "train_result.json", result)
    del trainer
    models.release_memory()
    return result


# ---------------------------------------------------------------------------------------------------------------
# Trained policy, merging


# ---------------------------------------------------------------------------------------------------------------
# The held-out probe


# ---------------------------------------------------------------------------------------------------------------
# The stage
