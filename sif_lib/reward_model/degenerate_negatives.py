"""Degenerate answers in the reward model's data: as extra training negatives, and as a held-out measurement.

A reward model trained only on the pseudo-labels has never seen a looping or stuffed answer, and after GRPO it
was seen to score such answers *higher* than clean ones (the policy's loops echo the constraint's words). Two
remedies and one figure, all self-supervised (the variants are programs applied to the policy's own stage-03
answers, :mod:`sif_lib.labels.degenerate_variants`):

* **Training negatives** (``reward_model.degenerate_negatives``, a rate r, 0 = off): each training positive
  ``(o_k, c_k)`` gives floor(r) variants, one more with probability frac(r) (seeded), each of a different kind
  drawn from ``reward_model.degenerate_kinds``, labelled 0 for the same constraint c_k. They are made only from
  the training side of the split by instruction and carry their source's ``parent``, so every later split (the
  check model's halves, the learning curve's subsets, the probe's cross-validation folds) keeps them with it.
  With r = 0 the training rows are exactly those of before. Hard constraints get variants too: a stuffed
  ``P.S.`` answer passes the verifier, but the reward model is asked about adherence, and the label 0 says this
  text is not an answer (the relabelling by ``reward_model.hard_labels`` happens before and never touches them).
* **The held-out measurement** (always, unless ``reward_model.degenerate_eval_pairs`` is 0): on the held-out
  instructions, every answer the detector (:mod:`sif_lib.constraints.degenerate`) calls clean is paired, for
  each constraint of its prompt (c_1..c_k for o_k) and each kind of :data:`VARIANT_KINDS`, with its variant.
  Two variants per kind are tried (seeded apart; a duplicate is dropped). The figures, for soft and for hard
  constraints apart: ROC-AUC with the clean answer as 1 and its variant as 0 and a 95% percentile-bootstrap
  interval resampling clean answers (each with all its pairs); the share of pairs where the clean answer scores
  higher (ties half); the mean probability of each side; and the same per kind, flagged ``trained`` or not, with
  the kinds the model never trained on pooled under ``unseen`` (with the defaults, ``tail_loop`` and
  ``shuffle``): a figure of generalisation, not of one memorised program.

Simplifications: the pooled AUC compares every clean answer with every variant (across constraints), so a clean
answer is counted once per variant made from it; a shuffled answer is not degenerate by the detector (its
sentences still hold whatever the constraint asked), so a low AUC on it is a weaker verdict than on the others;
beyond ``degenerate_eval_pairs`` pairs per constraint kind a seeded sample is kept.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from sif_lib.config.params import Params
from sif_lib.constraints.degenerate import is_degenerate
from sif_lib.constraints.extraction import THINK_CLOSE, answer_text
from sif_lib.core.errors import InputError
from sif_lib.core.io import write_jsonl
from sif_lib.core.stats import paired_bootstrap_ci, roc_auc
from sif_lib.labels.degenerate_variants import FLAGGED_KINDS, VARIANT_KINDS, variant
from sif_lib.reward_model.rm_input import answered_pairs

SCORES_FILE = "degenerate_scores.jsonl"  # each held-out pair's two probabilities, for paired comparisons
VARIANTS_PER_KIND = 2  # held-out variants tried per (answer, constraint, kind), seeded apart; duplicates dropped


def check_params(rm: Any) -> None:
    """The reward_model fields of this module, checked where they are used."""
    if rm.degenerate_negatives < 0:
        raise InputError(f"reward_model.degenerate_negatives: must be at least 0, got {rm.degenerate_negatives}")
    # The kinds are read only when negatives are made: with the switch off they cannot change the model.
    if rm.degenerate_negatives > 0 and (not rm.degenerate_kinds or any(k not in VARIANT_KINDS
                                                                       for k in rm.degenerate_kinds)):
        raise InputError(f"reward_model.degenerate_kinds: must list kinds of {', '.join(VARIANT_KINDS)}, "
                         f"got {rm.degenerate_kinds}")
    if rm.degenerate_eval_pairs < 0:
        raise InputError(f"reward_model.degenerate_eval_pairs: must be at least 0, got {rm.degenerate_eval_pairs}")


def with_answer(response: str, answer: str, answer_mode: str) -> str:
    """``response`` with its answer part replaced by ``answer``: a reasoning prefix up to ``</think>`` is kept,
    so that the reward model's answer extraction reads ``answer`` back."""
    cut = response.rfind(THINK_CLOSE) if answer_mode != "whole" else -1
    return response[:cut + len(THINK_CLOSE)] + "\n\n" + answer if cut >= 0 else answer


def training_rows(train_rows: Sequence[dict], rate: float, kinds: Sequence[str], seed: int,
                  answer_mode: str) -> tuple[list[dict], dict]:
    """Degenerate negatives made from the training positives (see the module text), and a summary of them.
    Empty when ``rate`` is 0. Each row is its source row with the variant as response, label 0, verifier null,
    ``variant`` (the kind) and ``source_pair_id``."""
    if rate <= 0:
        return [], {"rate": 0.0, "kinds": [], "added": 0, "by_kind": {}}
    rng, kinds = random.Random(f"{seed}:degenerate-negatives"), list(dict.fromkeys(kinds))
    out = []
    for row in train_rows:
        if row["label"] != 1:
            continue
        n = int(rate) + (rng.random() < rate - int(rate))
        answer = answer_text(row["response"], answer_mode).strip()
        for kind in rng.sample(kinds, min(n, len(kinds))):
            text = variant(answer, row["constraint"], kind, f"{seed}:{row['pair_id']}")
            if text is None:
                continue
            new = {k: v for k, v in row.items() if k != "pseudo_label"}
            new.update(pair_id=f"{row['pair_id']}-deg-{kind}", response=with_answer(row["response"], text, answer_mode),
                       label=0, verifier=None, variant=kind, source_pair_id=row["pair_id"])
            out.append(new)
    out, _ = answered_pairs(out, answer_mode)
    by_kind = {k: sum(r["variant"] == k for r in out) for k in kinds}
    return out, {"rate": float(rate), "kinds": list(kinds), "added": len(out), "by_kind": by_kind}


def heldout_pairs(eval_rows: Sequence[dict], answer_mode: str, seed: int, max_pairs: int,
                  kinds: Sequence[str] = VARIANT_KINDS) -> tuple[list[dict], dict]:
    """(clean answer, its variant, constraint) pairs from the held-out rows (see the module text), at most
    ``max_pairs`` per constraint kind, and what was skipped."""
    constraints: dict[str, dict[int, tuple[dict, str]]] = defaultdict(dict)
    answers: dict[tuple, str] = {}
    for r in eval_rows:
        constraints[r["parent"]][int(r["level"])] = (r["constraint"], r["kind"])
        level = r.get("source_level", r["level"] if r["label"] else r["level"] - 1)
        answers.setdefault((r["parent"], r.get("sample", 0), int(level)), r["response"])
    pairs, clean, skipped = [], 0, 0
    for (parent, sample, level), response in sorted(answers.items(), key=lambda kv: str(kv[0])):
        answer = answer_text(response, answer_mode).strip()
        asked = [constraints[parent][k] for k in sorted(constraints[parent]) if k <= level]
        if not answer or not asked:
            continue
        if is_degenerate(answer, [c for c, _ in asked]):
            skipped += 1
            continue
        clean += 1
        for constraint, kind in asked:
            for v_kind in kinds:
                texts = {variant(answer, constraint, v_kind, f"{seed}:heldout:{parent}:{sample}:{level}:{copy}")
                         for copy in range(VARIANTS_PER_KIND)} - {None}
                pairs += [{"parent": parent, "sample": sample, "level": level, "kind": kind,
                           "constraint_id": constraint.get("id"), "description": constraint["description"],
                           "variant": v_kind, "clean": answer, "degenerate": text} for text in sorted(texts)]
    capped = {}
    for kind in ("soft", "hard"):
        mine = [p for p in pairs if p["kind"] == kind]
        capped[kind] = len(mine)
        if len(mine) > max_pairs:
            keep = set(map(id, random.Random(f"{seed}:heldout-cap:{kind}").sample(mine, max_pairs)))
            pairs = [p for p in pairs if p["kind"] != kind or id(p) in keep]
    return pairs, {"clean_answers": clean, "degenerate_answers_skipped": skipped, "pairs_before_cap": capped}


def unit_auc(clean: Sequence[float], degenerate: Sequence[float], units: Sequence[Any]):
    """``(number of units, statistic)``: ``statistic(drawn)`` is the ROC-AUC (clean = 1, degenerate = 0, ties
    half) of all pairs of the units at indices ``drawn`` (repeats counted), computed from unit multiplicities
    w as sum over (clean, degenerate) of w_u w_v [c > d] over (w . pairs per unit)^2: exactly ``roc_auc`` of
    that resample, without recomputing it for each of the bootstrap's resamples."""
    import numpy as np

    c, d = np.asarray(clean, dtype=float), np.asarray(degenerate, dtype=float)
    index = {k: i for i, k in enumerate(dict.fromkeys(units))}
    of_unit = np.zeros((len(c), len(index)))
    of_unit[np.arange(len(c)), [index[k] for k in units]] = 1.0
    beats = (c[:, None] > d[None, :]) + 0.5 * (c[:, None] == d[None, :])
    between, sizes = of_unit.T @ beats @ of_unit, of_unit.sum(axis=0)

    def statistic(drawn) -> float:
        w = np.bincount(np.asarray(drawn, dtype=int), minlength=len(index)).astype(float)
        return float(w @ between @ w / (w @ sizes) ** 2)

    return len(index), statistic


def pair_figures(clean: Sequence[float], degenerate: Sequence[float], units: Sequence[Any] | None = None,
                 n_resamples: int = 1000, seed: int = 0) -> dict:
    """ROC-AUC of clean (1) against degenerate (0) scores, the share of pairs the clean side wins (ties half),
    and each side's mean probability. The 95% percentile-bootstrap interval of the AUC resamples ``units`` (the
    clean answer each pair came from; default: each pair its own), taking all pairs of a drawn unit, because the
    pairs of one answer are not independent."""
    import numpy as np

    n = len(clean)
    empty = {"pairs": n, "answers": 0, "auc": None, "auc_ci95": None, "clean_wins": None, "mean_clean": None,
             "mean_degenerate": None}
    if not n:
        return empty
    c, d = np.asarray(clean, dtype=float), np.asarray(degenerate, dtype=float)
    n_units, auc = unit_auc(c, d, list(units) if units is not None else list(range(n)))
    wins = float(np.mean((c > d) + 0.5 * (c == d)))
    return {**empty, "answers": n_units, "auc": round(float(roc_auc(np.concatenate([c, d]), [1] * n + [0] * n)), 4),
            "auc_ci95": paired_bootstrap_ci(auc, n_units, n_resamples=n_resamples, seed=seed),
            "clean_wins": round(wins, 4), "mean_clean": round(float(c.mean()), 4),
            "mean_degenerate": round(float(d.mean()), 4)}


def evaluate(scorer: Any, eval_rows: Sequence[dict], params: Params, trained_kinds: Sequence[str],
             scores_dir: Any = None) -> dict:
    """The held-out measurement (see the module text) of ``scorer``; with ``scores_dir``, each pair's two
    probabilities go to its ``degenerate_scores.jsonl``. ``trained_kinds``: the kinds its training data held
    (empty without degenerate negatives)."""
    rm, seed = params.reward_model, params.run.seed
    unseen = [k for k in VARIANT_KINDS if k not in trained_kinds]
    out: dict[str, Any] = {"kinds": list(VARIANT_KINDS), "detector_flagged_kinds": list(FLAGGED_KINDS),
                           "trained_kinds": list(trained_kinds), "unseen_kinds": unseen}
    if rm.degenerate_eval_pairs == 0:
        return {**out, "soft": None, "hard": None}
    pairs, found = heldout_pairs(eval_rows, params.model.answer_mode, seed, rm.degenerate_eval_pairs)
    inputs = sorted({(p["clean"], p["description"]) for p in pairs} | {(p["degenerate"], p["description"])
                                                                     for p in pairs})
    probs = dict(zip(inputs, scorer.score(inputs) if inputs else []))
    for p in pairs:
        p["clean_prob"] = round(float(probs[(p["clean"], p["description"])]), 6)
        p["degenerate_prob"] = round(float(probs[(p["degenerate"], p["description"])]), 6)
    out.update(found)
    for kind in ("soft", "hard"):
        mine = [p for p in pairs if p["kind"] == kind]

        def figures(subset: list[dict]) -> dict:
            return pair_figures([p["clean_prob"] for p in subset], [p["degenerate_prob"] for p in subset],
                                [(p["parent"], p["sample"], p["level"]) for p in subset], rm.bootstrap, seed)

        out[kind] = {**figures(mine),
                     "by_variant": {v: {**figures([p for p in mine if p["variant"] == v]),
                                        "trained": v in trained_kinds} for v in VARIANT_KINDS},
                     "unseen": figures([p for p in mine if p["variant"] in unseen])}
    if scores_dir is not None:
        write_jsonl(scores_dir / SCORES_FILE, [{k: p[k] for k in (
            "parent", "sample", "level", "kind", "constraint_id", "variant", "clean_prob", "degenerate_prob")}
            for p in pairs])
    return out


def summary_rows(found: dict | None) -> list[tuple[str, str, str, Any, Any, Any, Any]]:
    """(constraints, variant, trained?, pairs, AUC, 95% CI, clean wins) rows of :func:`evaluate`'s figures, for
    the notebook's table and the model card."""
    rows = []
    for kind in ("soft", "hard"):
        block = (found or {}).get(kind)
        if not block:
            continue
        entries = [("all kinds", "", block), ("unseen kinds", "no", block["unseen"])]
        entries += [(v, "yes" if f["trained"] else "no", f) for v, f in block["by_variant"].items()]
        for name, trained, f in entries:
            rows.append((kind, name, trained, f["pairs"], f["auc"], f["auc_ci95"], f["clean_wins"]))
    return rows
