"""Fine-tuning the reward model (``reward_model.method: finetune``, the paper's): a two-class sequence
classifier, fully or with LoRA/QLoRA, with cross-entropy over the two classes (for two classes, the paper's
binary cross-entropy).

Simplifications against the paper: the paper trains a 7B backbone fully in fp16 with DeepSpeed; here full
fine-tuning runs in fp32 on CPU and with bf16 autocast (fp32 master weights) on a GPU, and LoRA/QLoRA are offered
for large backbones. A LoRA run is merged into the backbone before saving, so every scorer loads one plain
directory.
"""

from __future__ import annotations

import importlib.util
import math
import tempfile
import time
from pathlib import Path
from typing import Any

from sif_lib.config.params import Params
from sif_lib.core.errors import InputError
from sif_lib.policy import models
from sif_lib.runner import progress as stage_progress
from sif_lib.runner import tracking


def check_mode(mode: str) -> None:
    import torch  # heavy: only when training

    if mode not in ("full", "lora", "qlora"):
        raise InputError(f"reward_model.mode: unknown mode {mode!r} (use full, lora or qlora)")
    if mode == "qlora" and not (torch.cuda.is_available() and importlib.util.find_spec("bitsandbytes")):
        raise InputError("reward_model.mode: qlora needs a CUDA GPU and the bitsandbytes package "
                         "(pip install '.[gpu]'); use mode full or lora on this machine")


class _PairDataset:
    """Tokenized pairs for the Trainer; padding is left to the collator (dynamic, per batch)."""

    def __init__(self, ids: list[list[int]], labels: list[int]):
        self.items = [{"input_ids": i, "attention_mask": [1] * len(i), "labels": y} for i, y in zip(ids, labels)]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict:
        return self.items[index]


def _lora_config(rm: Any):
    from peft import LoraConfig, TaskType  # heavy: only for a LoRA reward model

    # SEQ_CLS keeps the fresh classification head ("score") fully trainable; it is listed explicitly so that
    # this holds for backbones whose head is named otherwise by peft's defaults.
    return LoraConfig(task_type=TaskType.SEQ_CLS, r=rm.lora_r, lora_alpha=rm.lora_alpha, lora_dropout=0.05,
                      target_modules="all-linear", modules_to_save=["score", "classifier"])


def save_model(model: Any, tokenizer: Any, target: Path, mode: str, backbone: str, key: str, device: str) -> None:
    if mode == "lora":
        model = model.merge_and_unload()
    elif mode == "qlora":
        # A 4-bit base cannot absorb the adapter exactly; reload the base in bf16 and merge into that.
        import torch
        from peft import PeftModel  # heavy: only for a QLoRA reward model

        with tempfile.TemporaryDirectory(prefix="sif-rm-adapter-") as adapter_dir:
            model.save_pretrained(adapter_dir)
            base = models.load_sequence_classifier(backbone, num_labels=2, dtype="bfloat16", device=device, key=key)
            base.config.pad_token_id = tokenizer.pad_token_id
            model = PeftModel.from_pretrained(base, adapter_dir).merge_and_unload()
            model.to(torch.bfloat16)
    model.config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(str(target))
    tokenizer.padding_side = "right"
    tokenizer.save_pretrained(str(target))


def fit(train_ids: list[list[int]], labels: list[int], params: Params, tokenizer: Any, backbone: str, key: str,
        device: str, progress: bool = True, log_dir: Path | None = None) -> tuple[Any, dict]:
    """Fine-tune the two-class classifier on tokenized pairs; returns the model and what training did
    (seconds, steps, the loss curve). ``reward_model.balance_classes`` weights the loss by inverse class
    frequency. ``log_dir``: where ``run.report_to`` sends the loss curve (:mod:`sif_lib.runner.tracking`; earlier
    event files there are cleared); None reports nowhere."""
    import torch  # heavy: only when training
    from transformers import DataCollatorWithPadding, Trainer, TrainingArguments

    rm = params.reward_model
    check_mode(rm.mode)
    on_gpu = device.startswith("cuda")
    dataset = _PairDataset(train_ids, labels)
    # Full fine-tuning keeps fp32 master weights (bf16 autocast on a GPU); LoRA freezes the base, so its base
    # weights can sit in bf16; QLoRA loads them in 4 bits.
    load_dtype = "float32" if (not on_gpu or rm.mode == "full") else params.run.dtype
    model = models.load_sequence_classifier(backbone, num_labels=2, dtype=load_dtype, device=device,
                                            load_in_4bit=rm.mode == "qlora", key=key)
    model.config.pad_token_id = tokenizer.pad_token_id
    if rm.mode in ("lora", "qlora"):
        from peft import get_peft_model, prepare_model_for_kbit_training  # heavy: only for a LoRA reward model

        if rm.mode == "qlora":
            model = prepare_model_for_kbit_training(model)
        model = get_peft_model(model, _lora_config(rm))

    weights = None
    if rm.balance_classes:
        counts = [labels.count(0), labels.count(1)]
        weights = torch.tensor([len(labels) / (2 * c) if c else 0.0 for c in counts], dtype=torch.float32)

    class WeightedTrainer(Trainer):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            if weights is None:
                return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            labels_ = inputs.pop("labels")
            outputs = model(**inputs)
            loss = torch.nn.functional.cross_entropy(outputs.logits.float(), labels_,
                                                     weight=weights.to(outputs.logits.device))
            return (loss, outputs) if return_outputs else loss

    amp_bf16 = on_gpu and torch.cuda.is_bf16_supported()
    steps_per_epoch = math.ceil(len(dataset) / (rm.batch_size * rm.grad_accum))
    total_steps = max(1, math.ceil(steps_per_epoch * rm.epochs))
    with tempfile.TemporaryDirectory(prefix="sif-rm-trainer-") as scratch:
        args = TrainingArguments(
            output_dir=scratch,
            per_device_train_batch_size=rm.batch_size,
            gradient_accumulation_steps=rm.grad_accum,
            learning_rate=rm.learning_rate,
            num_train_epochs=rm.epochs,
            lr_scheduler_type="linear",
            warmup_steps=0,
            logging_steps=max(1, total_steps // 50),
            logging_first_step=True,
            save_strategy="no",
            eval_strategy="no",
            **tracking.config_kwargs(params, log_dir),
            seed=params.run.seed,
            use_cpu=not on_gpu,
            bf16=amp_bf16,
            fp16=on_gpu and not amp_bf16,
            optim="adamw_torch",
            dataloader_pin_memory=on_gpu,
            disable_tqdm=not progress,
        )
        with tracking.trainer_logs(params, log_dir, fresh=True):
            trainer = WeightedTrainer(model=model, args=args, train_dataset=dataset,
                                      data_collator=DataCollatorWithPadding(tokenizer),
                                      callbacks=[stage_progress.trainer_callback("loss")])
        began = time.monotonic()
        result = trainer.train()
        seconds = time.monotonic() - began
        loss_curve = [{"step": e["step"], "epoch": round(e.get("epoch", 0.0), 4), "loss": e["loss"]}
                      for e in trainer.state.log_history if "loss" in e]
    return model, {"train_seconds": round(seconds, 2), "train_steps": int(result.global_step),
                   "final_train_loss": loss_curve[-1]["loss"] if loss_curve else None,
                   "mean_train_loss": float(result.training_loss), "loss_curve": loss_curve}
