"""Training the constraint-wise binary reward model on the pseudo-labels (stage 04), and its held-out figures.

Training reads the stage-03 pseudo-labels: ``(o_k, c_k)`` is labelled 1 and ``(o_{k-1}, c_k)`` is labelled 0.
The loss is cross-entropy over the two classes, which for two classes is the paper's binary cross-entropy.
Pairs are split into train and held-out by *parent instruction*, so that no held-out response or constraint
was seen in training.

Simplifications against the paper:

* the backbone is the policy's own (SmolLM2-135M on CPU) rather than a 7B model; ``reward_model.backbone``
  points at any other spec;
* the paper trains fully in fp16 with DeepSpeed; here full fine-tuning runs in fp32 on CPU and with bf16
  autocast (fp32 master weights) on a GPU, and LoRA/QLoRA are offered for large backbones;
* a LoRA run is merged into the backbone before saving, so every scorer loads one plain directory.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import math
import random
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from sif_lib.core import models
from sif_lib.core.errors import InputError
from sif_lib.core.io import atomic_write_text, iter_jsonl, write_json
from sif_lib.core.stats import accuracy, calibration, roc_auc
from sif_lib.reward.rm_input import CARD_FILE, META_FILE, RM_FORMAT, RM_TEMPLATE, answered_pairs, encode_pairs
from sif_lib.reward.scorers import RewardScorer

def load_pairs(path: Path) -> list[dict]:
    """Validated pseudo-label rows; a bad row is an InputError naming file, line and key."""
    rows = []
    for number, row in enumerate(iter_jsonl(path), start=1):
        where = f"{path}:{number}"
        constraint = row.get("constraint")
        if not isinstance(constraint, dict) or not isinstance(constraint.get("description"), str):
            raise InputError(f"{where}: key 'constraint.description' must be a string")
        if not isinstance(row.get("response"), str):
            raise InputError(f"{where}: key 'response' must be a string")
        label = row.get("label")
        if isinstance(label, bool) or label not in (0, 1):
            raise InputError(f"{where}: key 'label' must be 0 or 1, got {label!r}")
        if not isinstance(row.get("parent"), str) or not row["parent"]:
            raise InputError(f"{where}: key 'parent' must be a non-empty string")
        kind = row.get("kind", constraint.get("kind"))
        if kind not in ("hard", "soft"):
            raise InputError(f"{where}: key 'kind' must be 'hard' or 'soft', got {kind!r}")
        verifier = row.get("verifier")
        if verifier is not None and not isinstance(verifier, bool):
            raise InputError(f"{where}: key 'verifier' must be true, false or null")
        rows.append({**row, "kind": kind, "label": int(label), "verifier": verifier})
    if not rows:
        raise InputError(f"{path}: no pseudo-label pairs")
    return rows


def split_by_parent(rows: list[dict], eval_fraction: float, seed: int) -> tuple[list[dict], list[dict]]:
    """Train and held-out pairs, split by parent instruction (seeded); at least one parent on each side."""
    parents = sorted({r["parent"] for r in rows})
    random.Random(seed).shuffle(parents)
    n_eval = 0
    if eval_fraction > 0 and len(parents) >= 2:
        n_eval = min(len(parents) - 1, max(1, round(eval_fraction * len(parents))))
    held = set(parents[:n_eval])
    return [r for r in rows if r["parent"] not in held], [r for r in rows if r["parent"] in held]


def _counts(rows: list[dict]) -> dict:
    n = len(rows)
    hard = sum(r["kind"] == "hard" for r in rows)
    positives = sum(r["label"] for r in rows)
    return {
        "pairs": n,
        "parents": len({r["parent"] for r in rows}),
        "hard": hard,
        "soft": n - hard,
        "hard_share": hard / n if n else None,
        "positives": positives,
        "positive_share": positives / n if n else None,
        "hard_with_verifier": sum(r["kind"] == "hard" and r["verifier"] is not None for r in rows),
    }


def _check_mode(mode: str) -> None:
    import torch

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


def train_reward_model(rows: list[dict], out_dir: Path, params: Any, progress: bool = True) -> dict:
    """Train on pseudo-label rows and write the model directory; returns the metrics dict.

    ``out_dir`` is built in a temporary sibling and renamed into place, so a failed run never leaves a
    half-written model that looks complete.
    """
    import torch  # heavy: only when training
    from transformers import DataCollatorWithPadding, Trainer, TrainingArguments

    rm = params.reward_model
    _check_mode(rm.mode)
    backbone = rm.backbone or params.model.policy
    key = "reward_model.backbone" if rm.backbone else "model.policy"
    device = models.device_for(params.run.device)
    on_gpu = device.startswith("cuda")
    if rm.mode == "qlora" and not on_gpu:
        raise InputError("reward_model.mode: qlora needs run.device cuda (or auto with a GPU)")

    train_rows, eval_rows = split_by_parent(rows, rm.eval_fraction, params.run.seed)
    if not train_rows:
        raise InputError("pseudo-labels: no training pairs left after the held-out split")

    tokenizer = models.load_tokenizer(backbone, key, padding_side="right")
    answer_mode = params.model.answer_mode
    n_split = len(train_rows)
    train_rows, train_pairs = answered_pairs(train_rows, answer_mode)
    if not train_rows:
        raise InputError(f"pseudo-labels: no training pair has an answer under model.answer_mode {answer_mode!r}")
    encode_stats: dict = {}
    train_ids = encode_pairs(tokenizer, train_pairs, rm.max_length, encode_stats)
    dataset = _PairDataset(train_ids, [r["label"] for r in train_rows])

    # Full fine-tuning keeps fp32 master weights (bf16 autocast on a GPU); LoRA freezes the base, so its base
    # weights can sit in bf16; QLoRA loads them in 4 bits.
    load_dtype = "float32" if (not on_gpu or rm.mode == "full") else params.run.dtype
    model = models.load_sequence_classifier(backbone, num_labels=2, dtype=load_dtype, device=device,
                                            load_in_4bit=rm.mode == "qlora", key=key)
    model.config.pad_token_id = tokenizer.pad_token_id
    if rm.mode in ("lora", "qlora"):
        from peft import get_peft_model, prepare_model_for_kbit_training

        if rm.mode == "qlora":
            model = prepare_model_for_kbit_training(model)
        model = get_peft_model(model, _lora_config(rm))

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
            report_to=[],
            seed=params.run.seed,
            use_cpu=not on_gpu,
            bf16=amp_bf16,
            fp16=on_gpu and not amp_bf16,
            optim="adamw_torch",
            dataloader_pin_memory=on_gpu,
            disable_tqdm=not progress,
        )
        trainer = Trainer(model=model, args=args, train_dataset=dataset,
                          data_collator=DataCollatorWithPadding(tokenizer))
        began = time.monotonic()
        result = trainer.train()
        train_seconds = time.monotonic() - began
        loss_curve = [{"step": e["step"], "epoch": round(e.get("epoch", 0.0), 4), "loss": e["loss"]}
                      for e in trainer.state.log_history if "loss" in e]

    counts = {"all": _counts(rows), "train": _counts(train_rows), "eval": _counts(eval_rows)}
    meta = {
        "format": RM_FORMAT,
        "backbone": backbone,
        "mode": rm.mode,
        "input_template": RM_TEMPLATE,
        "answer_mode": answer_mode,
        "max_length": rm.max_length,
        "num_labels": 2,
        "positive_label": 1,
        "score": "softmax(logits)[1]",
        "training": {"learning_rate": rm.learning_rate, "epochs": rm.epochs, "batch_size": rm.batch_size,
                     "grad_accum": rm.grad_accum, "eval_fraction": rm.eval_fraction, "seed": params.run.seed,
                     "lora_r": rm.lora_r if rm.mode != "full" else None,
                     "lora_alpha": rm.lora_alpha if rm.mode != "full" else None,
                     "train_seconds": round(train_seconds, 2), "device": device},
        "data": {**counts, "eval_parents": sorted({r["parent"] for r in eval_rows})},
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }
    out_dir = Path(out_dir)
    tmp = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=out_dir.name + ".tmp-"))
    try:
        _save_model(model, tokenizer, tmp, rm.mode, backbone, key, device)
        write_json(tmp / META_FILE, meta)
        # The held-out figures come from the saved directory, so they describe exactly what later stages load.
        scorer = RewardScorer.from_dir(tmp, device=device, batch_size=max(8, rm.batch_size))
        metrics = evaluate_pairs(scorer, eval_rows, answer_mode)
        metrics.update({
            "backbone": backbone,
            "mode": rm.mode,
            "max_length": rm.max_length,
            "train_seconds": round(train_seconds, 2),
            "train_steps": int(result.global_step),
            "final_train_loss": loss_curve[-1]["loss"] if loss_curve else None,
            "mean_train_loss": float(result.training_loss),
            "counts": counts,
            "truncated_train_inputs": encode_stats["truncated"],
            "train_pairs_without_answer": n_split - len(train_rows),
            "loss_curve": loss_curve,
        })
        meta["metrics"] = {k: v for k, v in metrics.items() if k not in ("loss_curve", "reliability", "counts")}
        write_json(tmp / META_FILE, meta)
        atomic_write_text(tmp / CARD_FILE, model_card(meta))
        _replace_dir(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return metrics


def _save_model(model: Any, tokenizer: Any, target: Path, mode: str, backbone: str, key: str, device: str) -> None:
    if mode == "lora":
        model = model.merge_and_unload()
    elif mode == "qlora":
        # A 4-bit base cannot absorb the adapter exactly; reload the base in bf16 and merge into that.
        import torch
        from peft import PeftModel

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


def _replace_dir(new: Path, target: Path) -> None:
    old = None
    if target.exists():
        old = target.with_name(target.name + f".old-{int(time.time() * 1000)}")
        target.rename(old)
    new.rename(target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def evaluate_pairs(scorer: Any, rows: list[dict], answer_mode: str = "after_think", n_bins: int = 10) -> dict:
    """Held-out figures against the pseudo-labels, plus hard pairs judged by the verifier's truth, on the pairs
    whose response has an answer (:func:`answered_pairs`)."""
    n_rows = len(rows)
    rows, pairs = answered_pairs(rows, answer_mode)
    probs = scorer.score(pairs) if pairs else []
    labels = [r["label"] for r in rows]
    cal = calibration(probs, labels, n_bins)
    by_kind = {}
    for kind in ("hard", "soft"):
        idx = [i for i, r in enumerate(rows) if r["kind"] == kind]
        by_kind[kind] = {"pairs": len(idx), "accuracy": accuracy([probs[i] for i in idx], [labels[i] for i in idx]),
                         "auc": roc_auc([probs[i] for i in idx], [labels[i] for i in idx])}
    truth = [i for i, r in enumerate(rows) if r["kind"] == "hard" and r["verifier"] is not None]
    truth_labels = [int(rows[i]["verifier"]) for i in truth]
    return {
        "eval_pairs": len(rows),
        "eval_pairs_without_answer": n_rows - len(rows),
        "eval_accuracy": accuracy(probs, labels),
        "eval_auc": roc_auc(probs, labels),
        "eval_ece": cal["ece"],
        "eval_by_kind": by_kind,
        "hard_truth_pairs": len(truth),
        "hard_truth_accuracy": accuracy([probs[i] for i in truth], truth_labels),
        "hard_truth_auc": roc_auc([probs[i] for i in truth], truth_labels),
        # How often the pseudo-label itself equals the verifier on those pairs: the ceiling a model that
        # learned the pseudo-labels perfectly would reach against the truth.
        "hard_pseudo_label_agreement": accuracy([float(rows[i]["label"]) for i in truth], truth_labels),
        "reliability": cal["bins"],
    }


def fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def model_card(meta: dict) -> str:
    m, data, train = meta["metrics"], meta["data"], meta["training"]
    return f"""# Constraint-wise binary reward model

A two-class sequence classifier that reads one response and one constraint and outputs the probability
that the response adheres to the constraint (`softmax(logits)[1]`). It reproduces the reward model of
arXiv 2508.02150 at a small scale.

## Backbone and training
- Backbone: `{meta['backbone']}`; mode: {meta['mode']} (LoRA adapters are merged into this directory).
- Input (at most {meta['max_length']} tokens; a long response is cut, the constraint never is):
  `{meta['input_template']}`
- Cross-entropy over two classes; learning rate {train['learning_rate']}, {train['epochs']} epochs,
  batch {train['batch_size']} x accumulation {train['grad_accum']}, seed {train['seed']},
  {train['train_seconds']} s on {train['device']}.

## Data
Self-supervised pseudo-labels: the policy's response to an instruction with constraints c1..ck is a positive for
ck, its response to c1..c(k-1) a negative. No human or teacher labels.
- Training pairs: {data['train']['pairs']} from {data['train']['parents']} instructions
  ({data['train']['hard']} hard-constraint, {data['train']['soft']} soft; {fmt(data['train']['positive_share'])} positive).
- Held-out pairs: {data['eval']['pairs']} from {data['eval']['parents']} other instructions.

## Held-out metrics
| metric | value |
|---|---|
| accuracy vs pseudo-labels | {fmt(m.get('eval_accuracy'))} |
| ROC-AUC vs pseudo-labels | {fmt(m.get('eval_auc'))} |
| expected calibration error | {fmt(m.get('eval_ece'))} |
| accuracy on hard pairs vs the verifier's truth ({m.get('hard_truth_pairs')} pairs) | {fmt(m.get('hard_truth_accuracy'))} |
| pseudo-label agreement with the verifier on those pairs | {fmt(m.get('hard_pseudo_label_agreement'))} |

## Intended use and limits
- Intended use: the soft-constraint reward of GRPO training in this workbench, and research on self-supervised
  reward models. Scores are probabilities meant to be averaged with 0/1 verifier results.
- It never sees the instruction, only the response and one constraint.
- Pseudo-labels are noisy: a response written with a constraint in its prompt need not satisfy it. The hard-pair
  figures above measure how noisy.
- A small backbone and a few hundred pairs give a weak judge; use its scores for relative ranking within this
  workbench, not as a general-purpose evaluator. Hard (code-verifiable) constraints should be scored by their
  verifiers, which the paper found better and harder to game.
"""
