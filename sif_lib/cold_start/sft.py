"""Supervised fine-tuning of the policy on the cold-start set, with TRL's ``SFTTrainer``.

Full fine-tuning (fp32 on CPU, bf16 autocast on a GPU) or a LoRA adapter that is merged before saving, so every
later stage loads the thinking policy as a plain model directory. Checkpoints go to ``cold_start/checkpoints``,
written whole as stage 06's are (:mod:`sif_lib.grpo.checkpoints`), and a rerun resumes from the newest complete
one. The model is saved atomically to ``cold_start/policy``, its files checked before it is renamed into place.

One repair on the way: a tokenizer whose EOS token is not the token the model's generation config ends a turn
with (SmolLM2's GGUF conversion names ``<|im_start|>``, while the model stops at ``<|im_end|>``) is given the
generation config's, so that the SFT, and TRL's GRPO after it, end completions where generation does.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

from sif_lib.config.params import Params
from sif_lib.core.io import staged_dir
from sif_lib.grpo.checkpoints import commit_callback, latest_checkpoint, prune_incomplete_checkpoints, saving_dir
from sif_lib.policy import models
from sif_lib.runner import progress as stage_progress
from sif_lib.runner import tracking


def turn_end_token(model, tokenizer) -> str | None:
    """The token the model's generation config ends a turn with, when the tokenizer's EOS differs from it."""
    eos = model.generation_config.eos_token_id
    eos = eos[0] if isinstance(eos, (list, tuple)) and eos else eos
    if not isinstance(eos, int) or eos == tokenizer.eos_token_id:
        return None
    return tokenizer.convert_ids_to_tokens(eos)


def train_sft(examples: list[dict], params: Params, base_spec: str, out_dir: Path, progress: bool = True,
              log_dir: Path | None = None) -> dict:
    """Fine-tune ``base_spec`` on ``examples`` (conversational prompt-completion rows) and save the result to
    ``out_dir / "policy"``; returns the training figures. ``log_dir``: where ``run.report_to`` sends the loss
    curve (:mod:`sif_lib.runner.tracking`; a fresh start clears it, a resume appends); None reports nowhere."""
    import torch
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    cs = params.cold_start
    on_gpu = models.device_for(params.run.device) == "cuda"
    tokenizer = models.load_tokenizer(base_spec, key="model.policy", padding_side="right")
    model = models.load_causal_lm(base_spec, dtype="float32", device=params.run.device, key="model.policy")
    eos = turn_end_token(model, tokenizer)
    peft_config = None
    if cs.finetune == "lora":
        from peft import LoraConfig

        peft_config = LoraConfig(r=cs.lora_r, lora_alpha=2 * cs.lora_r, lora_dropout=0.0, task_type="CAUSAL_LM",
                                 target_modules="all-linear")
    dataset = Dataset.from_list(examples)
    steps = max(1, math.ceil(math.ceil(len(dataset) / cs.batch_size) * cs.epochs))
    checkpoints = out_dir / "checkpoints"
    prune_incomplete_checkpoints(checkpoints)
    resume = latest_checkpoint(checkpoints)
    amp_bf16 = on_gpu and torch.cuda.is_bf16_supported()
    args = SFTConfig(
        output_dir=str(saving_dir(checkpoints)),  # each checkpoint is committed into checkpoints/ when whole
        per_device_train_batch_size=cs.batch_size,
        learning_rate=cs.learning_rate,
        num_train_epochs=cs.epochs,
        lr_scheduler_type="cosine",
        warmup_steps=0.05,  # a float below 1 is a share of the steps
        max_length=cs.max_length,
        completion_only_loss=True,
        packing=False,
        eos_token=eos,
        logging_steps=max(1, steps // 40),
        logging_first_step=True,
        save_strategy="steps",
        save_steps=max(1, steps // 4),
        save_total_limit=1,
        **tracking.config_kwargs(params, log_dir),
        seed=params.run.seed,
        use_cpu=not on_gpu,
        bf16=amp_bf16,
        disable_tqdm=not progress,
    )
    with tracking.trainer_logs(params, log_dir, fresh=resume is None):
        trainer = SFTTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer,
                             peft_config=peft_config, callbacks=[stage_progress.trainer_callback("loss"),
                                                                 commit_callback(checkpoints, args.save_total_limit)])
    began = time.monotonic()
    result = trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    seconds = time.monotonic() - began
    curve = [{"step": e["step"], "loss": round(e["loss"], 4),
              **({"token_accuracy": round(e["mean_token_accuracy"], 4)} if "mean_token_accuracy" in e else {})}
             for e in trainer.state.log_history if "loss" in e]
    trained = trainer.model.merge_and_unload() if peft_config is not None else trainer.model
    save_policy(trained, trainer.processing_class, out_dir / "policy")
    del trainer, trained, model
    models.release_memory()
    return {"train_seconds": round(seconds, 2), "train_steps": int(result.global_step), "examples": len(dataset),
            "resumed_from": resume.name if resume else None, "eos_token": eos or tokenizer.eos_token,
            "first_loss": curve[0]["loss"] if curve else None, "final_loss": curve[-1]["loss"] if curve else None,
            "loss_curve": curve}


def save_policy(model, tokenizer, target: Path) -> Path:
    """Save model and tokenizer to ``target`` through a temporary folder, checked before it is renamed into place
    (:func:`~sif_lib.core.io.staged_dir`), so a half-written policy never exists."""
    with staged_dir(target) as tmp:
        model.save_pretrained(str(tmp))
        tokenizer.padding_side = "left"  # how every later stage generates
        tokenizer.save_pretrained(str(tmp))
    return target
