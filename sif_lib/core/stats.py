"""The statistics the workbench reports, from scipy and scikit-learn (imported when first used: they are heavy).

* :func:`wilson`: a binomial proportion's Wilson interval (``scipy.stats.binomtest(...).proportion_ci``);
* :func:`sign_test_p`: the exact two-sided sign test of paired flips (``scipy.stats.binomtest``), and
  :func:`paired_flips`, which counts them;
* :func:`roc_auc` (``sklearn.metrics.roc_auc_score``), :func:`accuracy`, and :func:`calibration` with its ECE
  (``sklearn.calibration.calibration_curve`` for the reliability bins);
* :func:`kendall_tau_b` (``scipy.stats.kendalltau``, variant b);
* :func:`mean_ci`: a percentile bootstrap interval of a mean (``scipy.stats.bootstrap``);
* :func:`paired_bootstrap_ci`: the same for a before/after difference, resampling units in pairs;
* :func:`wilcoxon_p`: the Wilcoxon signed-rank test of paired differences (``scipy.stats.wilcoxon``).

Written here, because no library has it: :func:`position_consistency`, the paper's share of responses ranked in
the same place as the reference ranking (Table 6). Every function returns None where the statistic is undefined
(no items, one class only, a constant ranking), which the reports show as "n/a".
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any


def difference(before: float | None, after: float | None) -> float | None:
    """``after - before``, rounded to 6 places so that saved summaries compare equal; None where either is missing."""
    return None if before is None or after is None else round(after - before, 6)


def wilson(successes: int, n: int, confidence: float = 0.95) -> list[float] | None:
    """Wilson score interval of ``successes / n``: honest for small n and for rates near 0 or 1."""
    if n == 0:
        return None
    from scipy.stats import binomtest

    ci = binomtest(int(successes), int(n)).proportion_ci(confidence_level=confidence, method="wilson")
    return [round(float(ci.low), 4), round(float(ci.high), 4)]


def sign_test_p(gained: int, lost: int) -> float:
    """Exact two-sided sign test: under no change, each flip is equally likely to go either way. Four significant
    digits: a tiny p stays tiny rather than rounding to 0."""
    flips = gained + lost
    if flips == 0:
        return 1.0
    from scipy.stats import binomtest

    return float(f"{binomtest(int(gained), flips, 0.5).pvalue:.4g}")


def paired_flips(before: Sequence[bool], after: Sequence[bool]) -> dict:
    """Paired pass/fail outcomes: how many became passes (``gained``), how many became fails (``lost``), and the
    sign test's p of that split."""
    gained = sum(1 for b, a in zip(before, after) if a and not b)
    lost = sum(1 for b, a in zip(before, after) if b and not a)
    return {"paired": len(before), "gained": gained, "lost": lost, "sign_test_p": sign_test_p(gained, lost)}


def accuracy(probs: Sequence[float], labels: Sequence[int], threshold: float = 0.5) -> float | None:
    """Share of ``P >= threshold`` that agree with the 0/1 labels."""
    if not probs:
        return None
    return sum(int(p >= threshold) == int(y) for p, y in zip(probs, labels, strict=True)) / len(probs)


def roc_auc(scores: Sequence[float], labels: Sequence[int]) -> float | None:
    """Area under the ROC curve: P(a random positive outscores a random negative), a tie counting one half.
    ``None`` when one class is absent (the AUC is undefined)."""
    if len(set(int(y) for y in labels)) < 2:
        return None
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score([int(y) for y in labels], list(scores)))


def calibration(probs: Sequence[float], labels: Sequence[int], n_bins: int = 10) -> dict:
    """Reliability bins and expected calibration error of P(label 1).

    ``n_bins`` equal-width bins over [0, 1], binned as scikit-learn's ``calibration_curve`` bins them. In each
    bin the mean predicted probability is compared with the observed share of label 1; ECE is the
    bin-size-weighted mean of ``|share - mean probability|``. Empty bins have ``count`` 0 and contribute nothing.
    """
    edges = [b / n_bins for b in range(n_bins + 1)]
    bins = [{"lower": edges[b], "upper": edges[b + 1], "count": 0, "mean_prob": None, "positive_rate": None}
            for b in range(n_bins)]
    if not probs:
        return {"bins": bins, "ece": None}
    import numpy as np
    from sklearn.calibration import calibration_curve

    p = np.asarray(probs, dtype=float)
    y = np.asarray(labels, dtype=int)
    # calibration_curve reports only non-empty bins; the same searchsorted binning says which ones and how full.
    index = np.searchsorted(np.asarray(edges[1:-1]), p)
    counts = np.bincount(index, minlength=n_bins)
    if len(set(y.tolist())) > 1:
        positive_rate, mean_prob = calibration_curve(y, p, n_bins=n_bins, strategy="uniform")
    else:  # one class only: calibration_curve refuses it, the bins are still well defined
        filled = np.flatnonzero(counts)
        mean_prob = np.array([p[index == b].mean() for b in filled])
        positive_rate = np.full(len(filled), float(y[0]) if len(y) else 0.0)
    ece = 0.0
    for b, rate, mean in zip(np.flatnonzero(counts), positive_rate, mean_prob, strict=True):
        bins[b].update(count=int(counts[b]), mean_prob=float(mean), positive_rate=float(rate))
        ece += counts[b] / len(p) * abs(rate - mean)
    return {"bins": bins, "ece": float(ece)}


def kendall_tau_b(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Kendall's tau-b, ties counted per variable. ``None`` when either variable is constant or n < 2."""
    if len(x) != len(y):
        raise ValueError("kendall_tau_b: sequences differ in length")
    if len(x) < 2 or len(set(x)) < 2 or len(set(y)) < 2:
        return None
    from scipy.stats import kendalltau

    tau = float(kendalltau(x, y, variant="b").statistic)
    return None if math.isnan(tau) else tau


def mean_ci(values: Sequence[float], n_resamples: int = 1000, seed: int = 0) -> list[float] | None:
    """95% percentile-bootstrap interval of the mean of ``values``: None with fewer than 2 values or no
    resamples; zero width when every value is the same."""
    if n_resamples <= 0 or len(values) < 2:
        return None
    if len(set(values)) < 2:
        return [float(values[0]), float(values[0])]
    import numpy as np
    from scipy.stats import bootstrap

    result = bootstrap((np.asarray(values, dtype=float),), np.mean, n_resamples=n_resamples, method="percentile",
                       random_state=seed)
    low, high = result.confidence_interval
    # Rounded to 4 places, but never past the values: a percentile interval of a mean lies within their range.
    floor, ceiling = float(min(values)), float(max(values))
    return [max(round(float(low), 4), floor), min(round(float(high), 4), ceiling)]


def paired_bootstrap_ci(statistic: Callable[[Any], float], n_units: int, n_resamples: int = 1000,
                        seed: int = 0) -> list[float] | None:
    """95% percentile-bootstrap interval of a paired statistic: ``statistic(indices)`` computes the difference
    (after minus before) over the units at ``indices``, so before and after are resampled together, unit by unit.
    None with fewer than 2 units or no resamples; zero width when every resample gives the same value."""
    if n_resamples <= 0 or n_units < 2:
        return None
    import numpy as np
    from scipy.stats import bootstrap

    index = np.arange(n_units)
    full = float(statistic(index))
    result = bootstrap((index,), statistic, vectorized=False, n_resamples=n_resamples, method="percentile",
                       random_state=seed)
    low, high = (float(v) for v in result.confidence_interval)
    if math.isnan(low) or math.isnan(high):  # every resample equal: scipy has no interval to give
        low = high = full
    return [round(low, 4), round(high, 4)]


def wilcoxon_p(differences: Sequence[float]) -> float | None:
    """Two-sided Wilcoxon signed-rank p-value of paired differences (zeros dropped); None when all are zero."""
    nonzero = [d for d in differences if d != 0]
    if not nonzero:
        return None
    from scipy.stats import wilcoxon

    return round(float(wilcoxon(nonzero).pvalue), 6)


def rank_positions(scores: Sequence[float]) -> list[float]:
    """1-based positions in descending score order; tied scores share the mean of their positions."""
    from scipy.stats import rankdata

    return [float(r) for r in rankdata([-s for s in scores], method="average")]


def position_consistency(truth: Sequence[float], scores: Sequence[float]) -> float | None:
    """Share of items whose position under ``scores`` equals their position under ``truth`` (the paper's
    Table 6 measure; no library has it)."""
    if len(truth) != len(scores):
        raise ValueError("position_consistency: sequences differ in length")
    if not truth:
        return None
    a, b = rank_positions(truth), rank_positions(scores)
    return sum(p == q for p, q in zip(a, b)) / len(truth)
