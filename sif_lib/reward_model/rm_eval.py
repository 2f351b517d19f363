"""How good the reward model is, on held-out instructions: against the pseudo-labels it learned from, and on
hard constraints against the verifier's truth, with bootstrap confidence intervals; and the learning curve.

The held-out pairs come from instructions the model never trained on (the split is by instruction). A "pair" is
one classifier input, a (response, constraint) pair with its 0/1 label. Intervals are percentile bootstraps over
the held-out pairs (``scipy.stats.bootstrap``, paired resampling of scores and labels), so they say how much a
figure would move on another held-out set of the same size; they do not include training noise (another seed).
"""

from __future__ import annotations

import math
import random
import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any

from sif_lib.core.stats import accuracy, calibration, roc_auc
from sif_lib.reward_model.rm_input import answered_pairs


def bootstrap_ci(scores: Sequence[float], labels: Sequence[int], statistic: Callable = roc_auc,
                 n_resamples: int = 1000, seed: int = 0) -> list[float] | None:
    """95% percentile interval of ``statistic(scores, labels)`` over paired resamples; None when undefined."""
    if n_resamples <= 0 or len(scores) < 2 or statistic(scores, labels) is None:
        return None
    import numpy as np
    from scipy.stats import bootstrap

    def stat(s, y):
        value = statistic(list(s), [int(v) for v in y])
        return np.nan if value is None else value

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # resamples with one class only are NaN; they are left out below
        result = bootstrap((np.asarray(scores, dtype=float), np.asarray(labels, dtype=int)), stat, paired=True,
                           vectorized=False, n_resamples=n_resamples, method="percentile", random_state=seed)
    return _interval(result.bootstrap_distribution)


def _interval(distribution) -> list[float] | None:
    """The 95% percentile interval of a bootstrap distribution of AUCs. A resample with one class has no AUC
    (NaN); the interval is taken over the resamples that have one (scipy's own percentile would turn NaN). With
    few pairs of the rarer class this drops many resamples: past half of them, there is no interval to trust."""
    import numpy as np

    if np.isnan(distribution).mean() > 0.5:
        return None
    low, high = np.nanpercentile(distribution, [2.5, 97.5])
    return [round(float(low), 4), round(float(high), 4)]


def paired_auc_difference(reference: Sequence[float], scores: Sequence[float], labels: Sequence[int],
                          n_resamples: int = 1000, seed: int = 0) -> tuple[float | None, list[float] | None]:
    """``AUC(scores) - AUC(reference)`` on the same labelled pairs, with a 95% percentile interval from a paired
    bootstrap (the same resampled pairs score both models), which is far tighter than comparing two intervals
    that each carry the held-out set's own noise."""
    import numpy as np

    def diff(a, b, y):
        first, second = roc_auc(list(a), [int(v) for v in y]), roc_auc(list(b), [int(v) for v in y])
        return np.nan if first is None or second is None else second - first

    point = float(diff(reference, scores, labels))
    if math.isnan(point):
        return None, None
    if n_resamples <= 0:
        return round(point, 4), None
    from scipy.stats import bootstrap

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = bootstrap((np.asarray(reference, dtype=float), np.asarray(scores, dtype=float),
                            np.asarray(labels, dtype=int)), diff, paired=True, vectorized=False,
                           n_resamples=n_resamples, method="percentile", random_state=seed)
    return round(point, 4), _interval(result.bootstrap_distribution)


def figures(probs: Sequence[float], rows: Sequence[dict], n_resamples: int = 1000, seed: int = 0) -> dict:
    """The held-out figures of scores ``probs`` on labelled ``rows`` (the ones that have an answer)."""
    labels = [r["label"] for r in rows]
    out: dict[str, Any] = {"eval_pairs": len(rows), "eval_accuracy": accuracy(probs, labels),
                           "eval_auc": roc_auc(probs, labels)}
    out["eval_auc_ci95"] = bootstrap_ci(probs, labels, n_resamples=n_resamples, seed=seed)
    by_kind = {}
    for kind in ("hard", "soft"):
        idx = [i for i, r in enumerate(rows) if r["kind"] == kind]
        p, y = [probs[i] for i in idx], [labels[i] for i in idx]
        by_kind[kind] = {"pairs": len(idx), "accuracy": accuracy(p, y), "auc": roc_auc(p, y),
                         "auc_ci95": bootstrap_ci(p, y, n_resamples=n_resamples, seed=seed)}
    out["eval_by_kind"] = by_kind
    truth = [i for i, r in enumerate(rows) if r["kind"] == "hard" and r["verifier"] is not None]
    p, y = [probs[i] for i in truth], [int(rows[i]["verifier"]) for i in truth]
    out.update({
        "hard_truth_pairs": len(truth),
        "hard_truth_positive_share": round(sum(y) / len(y), 4) if y else None,
        "hard_truth_accuracy": accuracy(p, y),
        "hard_truth_auc": roc_auc(p, y),
        "hard_truth_auc_ci95": bootstrap_ci(p, y, n_resamples=n_resamples, seed=seed),
        # How often the pseudo-label itself equals the verifier on those pairs: the ceiling a model that
        # learned the pseudo-labels perfectly would reach against the truth.
        "hard_pseudo_label_agreement": accuracy([float(rows[i]["label"]) for i in truth], y),
    })
    return out


def evaluate_pairs(scorer: Any, rows: list[dict], answer_mode: str = "after_think", n_bins: int = 10,
                   n_resamples: int = 1000, seed: int = 0) -> dict:
    """Held-out figures of a scorer (see :func:`figures`), on the pairs whose response has an answer
    (:func:`~sif_lib.reward_model.rm_input.answered_pairs`), with the reliability bins and ECE, and ``eval_scores``:
    each pair's probability, for paired comparisons of reward models (:func:`paired_auc_difference`)."""
    n_rows = len(rows)
    rows, pairs = answered_pairs(rows, answer_mode)
    probs = scorer.score(pairs) if pairs else []
    cal = calibration(probs, [r["label"] for r in rows], n_bins)
    return {**figures(probs, rows, n_resamples, seed), "eval_pairs_without_answer": n_rows - len(rows),
            "eval_ece": cal["ece"], "reliability": cal["bins"],
            "eval_scores": [{"pair_id": r.get("pair_id"), "parent": r["parent"], "kind": r["kind"],
                             "label": r["label"], "verifier": r["verifier"], "prob": round(float(p), 6)}
                            for r, p in zip(rows, probs)]}


def label_noise_floor(rows: Sequence[dict]) -> dict:
    """The lowest mean cross-entropy any classifier can reach on the hard training pairs' labels if it knew only
    whether the response truly meets the constraint: the conditional entropy H(label | verifier), in nats.

    Pseudo-labels are noisy (a response written with a constraint often fails it), so even a model that judged
    adherence perfectly would sit above this floor, and the floor itself can sit close to ln 2 = 0.693: a
    training loss near ln 2 is then what a *good* reward model shows, not proof that it learned nothing."""
    cells: dict[tuple[int, int], int] = {}
    for r in rows:
        if r["kind"] == "hard" and r["verifier"] is not None:
            key = (int(r["verifier"]), int(r["label"]))
            cells[key] = cells.get(key, 0) + 1
    n = sum(cells.values())
    if not n:
        return {"hard_pairs": 0, "loss_floor": None}
    floor = 0.0
    for truth in (0, 1):
        group = [cells.get((truth, y), 0) for y in (0, 1)]
        for count in group:
            if count:
                floor -= count / n * math.log(count / sum(group))
    return {"hard_pairs": n, "loss_floor": round(floor, 4)}


def curve_subsets(rows: Sequence[dict], sizes: Sequence[int], seed: int = 0) -> list[tuple[int, list[int]]]:
    """For each size N, the indices of the first N training pairs of a seeded shuffle *of instructions* (whole
    instructions are taken, then the last one is cut to N), so that a subset is what a smaller run would have
    made. Sizes above the number of pairs are dropped."""
    parents = sorted({r["parent"] for r in rows})
    random.Random(f"{seed}:curve").shuffle(parents)
    rank = {p: i for i, p in enumerate(parents)}
    order = sorted(range(len(rows)), key=lambda i: (rank[rows[i]["parent"]], i))
    return [(n, order[:n]) for n in sorted(set(sizes)) if n <= len(rows)]


def curve_point(pairs: int, instructions: int, found: dict, seconds: float | None) -> dict:
    """One learning-curve point from held-out :func:`figures`."""
    soft = found["eval_by_kind"]["soft"]
    return {"pairs": pairs, "instructions": instructions, "hard_truth_auc": found["hard_truth_auc"],
            "hard_truth_auc_ci95": found["hard_truth_auc_ci95"], "soft_auc": soft["auc"],
            "soft_auc_ci95": soft["auc_ci95"], "eval_auc": found["eval_auc"], "fit_seconds": seconds}


def learning_curve(fit_and_score: Callable[[list[int]], list[float]], train_rows: Sequence[dict],
                   eval_rows: Sequence[dict], sizes: Sequence[int], n_resamples: int = 1000, seed: int = 0,
                   echo: Callable[[str], None] = print) -> list[dict]:
    """One point per size below the number of training pairs: the model trained on that subset
    (``fit_and_score(indices)`` returns its held-out probabilities on ``eval_rows``), its AUC against the verifier
    on hard pairs and against the pseudo-labels on soft pairs, each with a bootstrap CI, and the seconds its fit
    and scoring took (for a probe: the fit only, the features are computed once). The point of all pairs is the
    trained model itself, which the caller adds (:func:`curve_point`)."""
    points = []
    for n, subset in curve_subsets(train_rows, sizes, seed):
        if n >= len(train_rows):
            continue
        began = time.monotonic()
        probs = fit_and_score(subset)
        seconds = round(time.monotonic() - began, 1)
        found = figures(probs, list(eval_rows), n_resamples, seed)
        points.append(curve_point(n, len({train_rows[i]["parent"] for i in subset}), found, seconds))
        echo(f"learning curve: {n} pairs -> hard AUC vs truth {found['hard_truth_auc']}, "
             f"soft AUC vs pseudo-labels {found['eval_by_kind']['soft']['auc']}")
    return points
