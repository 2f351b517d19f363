"""Stage 06's per-step series: the training reward's slope over the steps, with its interval."""

from __future__ import annotations

import random

from sif_lib.grpo.series import slope
from sif_lib.stages.s06_train_grpo import slope_text


def test_slope_finds_a_rising_reward_and_calls_a_flat_one_flat():
    rng = random.Random(0)
    steps = list(range(1, 27))
    rising = {"step": steps, "reward": [0.2 + 0.01 * s + rng.gauss(0, 0.02) for s in steps]}
    fit = slope(rising)
    lo, hi = fit["per_step_ci95"]
    assert fit["n"] == 26 and 0 < lo < 0.01 < hi and fit["p"] < 0.001
    assert abs(fit["over_run"] - 0.25) < 0.05  # 25 steps at 0.01 each

    flat = {"step": steps, "reward": [0.3 + rng.gauss(0, 0.15) for _ in steps]}
    lo, hi = slope(flat)["per_step_ci95"]
    assert lo < 0 < hi


def test_slope_skips_missing_values_and_needs_three():
    series = {"step": [1, 2, 3, 4], "reward": [0.1, None, 0.3, 0.4]}
    assert slope(series)["n"] == 3
    assert slope({"step": [1, 2], "reward": [0.1, 0.2]}) is None
    assert slope({"step": [1, 2, 3], "soft": [0.1, 0.2, 0.3]}) is None  # no such series
    assert slope_text(None) == "–"
    assert slope_text(slope(series)).startswith("+0.1000 [")
