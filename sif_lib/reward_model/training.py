"""Training the constraint-wise binary reward model on the pseudo-labels (stage 04).

Training reads the stage-03 pseudo-labels: ``(o_k, c_k)`` is labelled 1 and ``(o_{k-1}, c_k)`` is labelled 0.
Pairs are split into train and held-out by *parent instruction*, so that no held-out response or constraint was
seen in training. Two methods (``reward_model.method``): fine-tuning the classifier, the paper's
(:mod:`sif_lib.reward_model.finetune`), or a logistic regression on the frozen backbone
(:mod:`sif_lib.reward_model.linear_probe`), the baseline that shows what fine-tuning adds. Beyond the paper,
``reward_model.hard_labels: verifier`` trains hard-constraint pairs on the verifier's truth instead of their
pseudo-labels, and ``reward_model.degenerate_negatives`` adds degenerate variants of training answers as
negatives; the held-out figures on degenerate answers are :mod:`sif_lib.reward_model.degenerate_negatives`'. The
held-out figures and the learning curve are :mod:`sif_lib.reward_model.rm_eval`'s.

The backbone is the policy's own (SmolLM2-135M on CPU) rather than the paper's 7B model;
``reward_model.backbone`` points at any other spec.
"""

from __future__ import annotations

import datetime as dt
import random
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from sif_lib.config.params import Params
from sif_lib.core.errors import InputError
from sif_lib.core.io import atomic_write_text, commit_dir, iter_jsonl, storage_error, write_json, write_jsonl
from sif_lib.policy import models
from sif_lib.reward_model import degenerate_negatives, finetune, linear_probe, rm_eval
from sif_lib.reward_model.rm_input import CARD_FILE, META_FILE, RM_FORMAT, RM_TEMPLATE, answered_pairs, encode_pairs
from sif_lib.reward_model.scorer import RewardScorer

EVAL_SCORES_FILE = "eval_scores.jsonl"  # each held-out pair's probability, for paired comparisons


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


def prepare(rows: list[dict], params: Params) -> tuple[list[dict], list[dict], dict]:
    """Train and held-out rows of the answered pairs (split by instruction), with the training labels the params
    ask for (``reward_model.hard_labels``) and the degenerate negatives (``reward_model.degenerate_negatives``,
    made from training rows only), and what the preparation dropped, relabelled or added."""
    rm = params.reward_model
    degenerate_negatives.check_params(rm)
    train_rows, eval_rows = split_by_parent(rows, rm.eval_fraction, params.run.seed)
    if not train_rows:
        raise InputError("pseudo-labels: no training pairs left after the held-out split")
    answer_mode = params.model.answer_mode
    n_train, n_eval = len(train_rows), len(eval_rows)
    train_rows, _ = answered_pairs(train_rows, answer_mode)
    eval_rows, _ = answered_pairs(eval_rows, answer_mode)
    if not train_rows:
        raise InputError(f"pseudo-labels: no training pair has an answer under model.answer_mode {answer_mode!r}")
    relabelled = 0
    if rm.hard_labels == "verifier":
        out = []
        for r in train_rows:
            if r["kind"] == "hard" and r["verifier"] is not None and int(r["verifier"]) != r["label"]:
                r = {**r, "label": int(r["verifier"]), "pseudo_label": r["label"]}
                relabelled += 1
            out.append(r)
        train_rows = out
    added, made = degenerate_negatives.training_rows(train_rows, rm.degenerate_negatives, rm.degenerate_kinds,
                                                     params.run.seed, answer_mode)
    return train_rows + added, eval_rows, {"train_pairs_without_answer": n_train - len(train_rows),
                                           "eval_pairs_without_answer": n_eval - len(eval_rows),
                                           "hard_labels": rm.hard_labels, "relabelled_by_verifier": relabelled,
                                           "degenerate_negatives": made}


def split_halves(rows: list[dict], seed: int) -> tuple[list[dict], list[dict]]:
    """Two halves of the training rows by instruction (seeded): the training RM's and the check RM's."""
    parents = sorted({r["parent"] for r in rows})
    random.Random(f"{seed}:check").shuffle(parents)
    first = set(parents[:(len(parents) + 1) // 2])
    return [r for r in rows if r["parent"] in first], [r for r in rows if r["parent"] not in first]


def train_reward_model(rows: list[dict], out_dir: Path, params: Params, progress: bool = True,
                       echo: Any = print, check_dir: Path | None = None, log_dir: Path | None = None) -> dict:
    """Train on pseudo-label rows and write the model directory; returns the metrics dict.

    ``out_dir`` is built in a temporary sibling and renamed into place, so a failed run never leaves a
    half-written model that looks complete. The held-out figures come from the saved directory, so they describe
    exactly what later stages load. With ``reward_model.learning_curve``, the same method is also trained on
    nested subsets of the training pairs and evaluated on the same held-out pairs.

    With ``reward_model.check_model`` (and a ``check_dir``), the training instructions are halved: the reward
    model trains on one half, a *check* model with the same settings on the other, and it is written to
    ``check_dir``. GRPO never sees the check model, so its soft scores of the trained policy are a figure the
    training reward could not have inflated. The price: the training RM learns from half the pairs.

    ``log_dir``: where ``run.report_to`` sends the fine-tuning loss curve (the check model's in ``check/`` in
    it); None reports nowhere.
    """
    rm = params.reward_model
    if rm.method == "finetune":
        finetune.check_mode(rm.mode)
    train_rows, eval_rows, prepared = prepare(rows, params)
    if rm.check_model and check_dir is not None:
        train_rows, check_rows = split_halves(train_rows, params.run.seed)
        if not train_rows or not check_rows:
            raise InputError("reward_model.check_model: needs training pairs from at least two instructions")
        metrics = _train(rows, train_rows, eval_rows, prepared, Path(out_dir), params, progress, echo, curve=True,
                         log_dir=log_dir)
        echo(f"check model: training on the other {len(check_rows)} pairs")
        check = _train(rows, check_rows, eval_rows, prepared, Path(check_dir), params, progress, echo, curve=False,
                       log_dir=log_dir / "check" if log_dir is not None else None)
        metrics["check_model"] = {k: check[k] for k in (
            "eval_pairs", "eval_auc", "eval_auc_ci95", "hard_truth_pairs", "hard_truth_auc", "hard_truth_auc_ci95",
            "eval_by_kind", "train_seconds", "final_train_loss", "counts", "degenerate_eval")}
        return metrics
    return _train(rows, train_rows, eval_rows, prepared, Path(out_dir), params, progress, echo, curve=True,
                  log_dir=log_dir)


def _train(rows: list[dict], train_rows: list[dict], eval_rows: list[dict], prepared: dict, out_dir: Path,
           params: Params, progress: bool, echo: Any, curve: bool, log_dir: Path | None = None) -> dict:
    """Train one model on ``train_rows``, save it to ``out_dir`` and evaluate it on ``eval_rows``."""
    rm = params.reward_model
    backbone = rm.backbone or params.model.policy
    key = "reward_model.backbone" if rm.backbone else "model.policy"
    device = models.device_for(params.run.device)
    if rm.method == "finetune" and rm.mode == "qlora" and not device.startswith("cuda"):
        raise InputError("reward_model.mode: qlora needs run.device cuda (or auto with a GPU)")
    tokenizer = models.load_tokenizer(backbone, key, padding_side="right")
    encode_stats: dict = {}
    # The rows all have an answer (prepare dropped the others): these are their (answer, constraint) pairs.
    train_ids = encode_pairs(tokenizer, answered_pairs(train_rows, params.model.answer_mode)[1], rm.max_length,
                             encode_stats)
    labels = [r["label"] for r in train_rows]
    seed, resamples = params.run.seed, rm.bootstrap

    tmp = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=out_dir.name + ".tmp-"))
    try:
        fit_and_score = None  # with a learning curve: retrain on a subset of training pairs, score the held-out
        eval_pairs = answered_pairs(eval_rows, params.model.answer_mode)[1]
        if rm.method == "linear_probe":
            backbone_model = models.load_backbone(backbone, dtype="float32", device=device, key=key)
            began = time.monotonic()
            x_train = linear_probe.features(backbone_model, tokenizer, train_ids, batch_size=rm.batch_size)
            groups = [r["parent"] for r in train_rows]
            head = linear_probe.fit(x_train, labels, rm.probe_c, rm.balance_classes, seed, groups)
            train_loss = round(linear_probe.log_loss(head, x_train, labels), 4)
            fit_info = {"train_seconds": round(time.monotonic() - began, 2), "train_steps": None,
                        "final_train_loss": train_loss, "mean_train_loss": train_loss, "loss_curve": []}
            if curve and rm.learning_curve:
                x_eval = linear_probe.features(backbone_model, tokenizer,
                                               encode_pairs(tokenizer, eval_pairs, rm.max_length),
                                               batch_size=rm.batch_size)

                def probe_subset(subset: list[int]) -> list[float]:
                    part = linear_probe.fit(x_train[subset], [labels[i] for i in subset], rm.probe_c,
                                            rm.balance_classes, seed, [groups[i] for i in subset])
                    return [float(p) for p in linear_probe.predict(part, x_eval)]
                fit_and_score = probe_subset
            backbone_model.save_pretrained(str(tmp))
            tokenizer.padding_side = "right"
            tokenizer.save_pretrained(str(tmp))
        else:
            model, fit_info = finetune.fit(train_ids, labels, params, tokenizer, backbone, key, device, progress,
                                           log_dir=log_dir)
            finetune.save_model(model, tokenizer, tmp, rm.mode, backbone, key, device)
            del model
            head = None
            if curve and rm.learning_curve:
                def finetune_subset(subset: list[int]) -> list[float]:
                    part, _ = finetune.fit([train_ids[i] for i in subset], [labels[i] for i in subset], params,
                                           tokenizer, backbone, key, device, progress=False)
                    scorer = RewardScorer(part, tokenizer, rm.max_length, batch_size=max(8, rm.batch_size))
                    return scorer.score(eval_pairs)
                fit_and_score = finetune_subset
        points = (rm_eval.learning_curve(fit_and_score, train_rows, eval_rows, rm.learning_curve, resamples, seed, echo)
                  if fit_and_score is not None else None)
        counts = {"all": _counts(rows), "train": _counts(train_rows), "eval": _counts(eval_rows)}
        meta = {
            "format": RM_FORMAT,
            "backbone": backbone,
            "method": rm.method,
            "mode": rm.mode if rm.method == "finetune" else None,
            "input_template": RM_TEMPLATE,
            "answer_mode": params.model.answer_mode,
            "max_length": rm.max_length,
            "num_labels": 2,
            "positive_label": 1,
            "score": "softmax(logits)[1]" if head is None else "sigmoid(coef . h_last + intercept)",
            "training": {**({"learning_rate": rm.learning_rate, "epochs": rm.epochs, "batch_size": rm.batch_size,
                            "grad_accum": rm.grad_accum} if rm.method == "finetune" else {}),
                         "eval_fraction": rm.eval_fraction, "seed": seed,
                         "hard_labels": rm.hard_labels, "balance_classes": rm.balance_classes,
                         "degenerate_negatives": rm.degenerate_negatives,
                         "degenerate_kinds": _trained_kinds(train_rows),
                         "lora_r": rm.lora_r if rm.method == "finetune" and rm.mode != "full" else None,
                         "lora_alpha": rm.lora_alpha if rm.method == "finetune" and rm.mode != "full" else None,
                         "train_seconds": fit_info["train_seconds"], "device": device},
            "data": {**counts, "eval_parents": sorted({r["parent"] for r in eval_rows})},
            "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        }
        if head is not None:
            meta["head"] = head
        write_json(tmp / META_FILE, meta)
        scorer = RewardScorer.from_dir(tmp, device=device, batch_size=max(8, rm.batch_size))
        metrics = rm_eval.evaluate_pairs(scorer, eval_rows, params.model.answer_mode, n_resamples=resamples,
                                         seed=seed)
        write_jsonl(tmp / EVAL_SCORES_FILE, metrics.pop("eval_scores"))
        metrics["degenerate_eval"] = degenerate_negatives.evaluate(scorer, eval_rows, params,
                                                                   _trained_kinds(train_rows), scores_dir=tmp)
        metrics.update({
            "backbone": backbone,
            "method": rm.method,
            "mode": meta["mode"],
            "max_length": rm.max_length,
            **fit_info,
            "counts": counts,
            "truncated_train_inputs": encode_stats["truncated"],
            **prepared,
            "hard_label_noise_floor": rm_eval.label_noise_floor(train_rows),
            # The curve ends with the model just saved and evaluated: all training pairs, not fitted twice.
            "learning_curve": None if points is None else points + [rm_eval.curve_point(
                len(train_rows), len({r["parent"] for r in train_rows}), metrics, fit_info["train_seconds"])],
        })
        meta["metrics"] = {k: v for k, v in metrics.items()
                           if k not in ("loss_curve", "reliability", "counts", "learning_curve")}
        write_json(tmp / META_FILE, meta)
        atomic_write_text(tmp / CARD_FILE, model_card(meta))
        commit_dir(tmp, out_dir)  # checked, then renamed into place: a killed save leaves the old one whole
    except BaseException as err:
        shutil.rmtree(tmp, ignore_errors=True)
        fault = storage_error(err, out_dir) if isinstance(err, Exception) else None
        if fault is None:
            raise
        raise fault from None
    return metrics


def _trained_kinds(train_rows: list[dict]) -> list[str]:
    """The degenerate variant kinds the training rows hold, in the documented order."""
    held = {r["variant"] for r in train_rows if r.get("variant")}
    return [k for k in degenerate_negatives.VARIANT_KINDS if k in held]


def fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _method_line(meta: dict) -> str:
    train = meta["training"]
    if meta.get("method") == "linear_probe":
        how = "chosen by 5-fold cross-validation over instructions" if meta["head"].get("c_cv_auc") else "set"
        return ("a linear probe: logistic regression (C = "
                f"{meta['head']['c']}, {how}) on the frozen backbone's last-token state; "
                "score sigmoid(coef . h + intercept).")
    return (f"fine-tuned ({meta['mode']}; LoRA adapters are merged into this directory), cross-entropy over two "
            f"classes, learning rate {train['learning_rate']}, {train['epochs']} epochs, batch {train['batch_size']} "
            f"x accumulation {train['grad_accum']}.")


def _negatives_line(train: dict) -> str:
    if not train.get("degenerate_negatives"):
        return "none (`reward_model.degenerate_negatives` 0)."
    return (f"{train['degenerate_negatives']} per training positive, of kinds "
            f"{', '.join(train.get('degenerate_kinds') or []) or 'none made'}, labelled 0 (training split only).")


def _degenerate_table(found: dict | None) -> str:
    rows = degenerate_negatives.summary_rows(found)
    if not rows:
        return "No degenerate pairs were measured."
    lines = ["| constraints | variant | trained on | pairs | ROC-AUC (95% CI) | clean wins |",
             "|---|---|---|---|---|---|"]
    for kind, name, trained, pairs, auc, ci, wins in rows:
        interval = f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else ""
        lines.append(f"| {kind} | {name} | {trained} | {pairs} | {fmt(auc)}{interval} | {fmt(wins)} |")
    return "\n".join(lines)


def model_card(meta: dict) -> str:
    m, data, train = meta["metrics"], meta["data"], meta["training"]
    return f"""# Constraint-wise binary reward model

A binary classifier that reads one response and one constraint and outputs the probability that the response
adheres to the constraint (`{meta['score']}`). It reproduces the reward model of arXiv 2508.02150 at a small
scale.

## Backbone and training
- Backbone: `{meta['backbone']}`; {_method_line(meta)}
- Input (at most {meta['max_length']} tokens; a long response is cut, the constraint never is):
  `{meta['input_template']}`
- Labels of hard-constraint pairs: {train.get('hard_labels', 'pseudo')}; \
class weighting: {train.get('balance_classes', False)};
  seed {train['seed']}, {train['train_seconds']} s on {train['device']}.

## Data
Self-supervised pseudo-labels: the policy's response to an instruction with constraints c1..ck is a positive for
ck, its response to c1..c(k-1) a negative. No human or teacher labels.
- Training pairs: {data['train']['pairs']} from {data['train']['parents']} instructions
  ({data['train']['hard']} hard-constraint, {data['train']['soft']} soft; \
{fmt(data['train']['positive_share'])} positive).
- Degenerate negatives: {_negatives_line(train)}
- Held-out pairs: {data['eval']['pairs']} from {data['eval']['parents']} other instructions.

## Held-out metrics
| metric | value |
|---|---|
| accuracy vs pseudo-labels | {fmt(m.get('eval_accuracy'))} |
| ROC-AUC vs pseudo-labels | {fmt(m.get('eval_auc'))} |
| expected calibration error | {fmt(m.get('eval_ece'))} |
| accuracy on hard pairs vs the verifier's truth ({m.get('hard_truth_pairs')} pairs) | \
{fmt(m.get('hard_truth_accuracy'))} |
| ROC-AUC on hard pairs vs the verifier's truth (95% CI) | \
{fmt(m.get('hard_truth_auc'))} {m.get('hard_truth_auc_ci95') or ''} |
| pseudo-label agreement with the verifier on those pairs | {fmt(m.get('hard_pseudo_label_agreement'))} |

## Degenerate answers (held-out)
Each clean answer of a held-out instruction (by `sif_lib.constraints.degenerate`) against its degenerate variant
(`sif_lib.labels.degenerate_variants`), for the same constraint: ROC-AUC with the clean answer as 1, its 95%
bootstrap interval (resampling clean answers, each with all its pairs), and the share of pairs the clean answer
wins. Below 0.5 the reward model pays the degenerate text more. "unseen" pools the kinds absent from its training
data.

{_degenerate_table(m.get('degenerate_eval'))}

## Intended use and limits
- Intended use: the soft-constraint reward of GRPO training in this workbench, and research on self-supervised
  reward models. Scores are probabilities meant to be averaged with 0/1 verifier results.
- It never sees the instruction, only the response and one constraint.
- Pseudo-labels are noisy: a response written with a constraint in its prompt need not satisfy it. The hard-pair
  figures above measure how noisy.
- A small backbone and a few thousand pairs give a weak judge; use its scores for relative ranking within this
  workbench, not as a general-purpose evaluator. Hard (code-verifiable) constraints should be scored by their
  verifiers, which the paper found better and harder to game.
"""
