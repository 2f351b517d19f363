"""Stage 06's per-step figures, read from the trainer's log history: the series a notebook plots, the trend in
two numbers (first against last quarter of the steps), the training reward's slope over the steps, and the timings.
"""

from __future__ import annotations


def log_steps(history: list[dict]) -> list[dict]:
    """The history's per-step entries (the final summary entry has ``train_runtime`` and no reward)."""
    return [h for h in history if "train_runtime" not in h and ("loss" in h or "reward" in h)]


def series_from_history(history: list[dict]) -> dict[str, list]:
    """Per-step series from the log history: TRL's reward and losses, the components, levels and timings."""
    steps = log_steps(history)
    wanted = ["reward", "reward_std", "loss", "kl", "entropy", "learning_rate", "completions/mean_length",
              "completions/clipped_ratio", "frac_reward_zero_std", "step_time", "num_tokens"]
    keys = wanted + sorted({k for h in steps for k in h if k.startswith(("components/", "levels/", "timing/"))})
    series: dict[str, list] = {"step": [h["step"] for h in steps]}
    for key in keys:
        values = [h.get(key) for h in steps]
        if any(v is not None for v in values):
            series[key] = values
    return series


def window_means(series: dict[str, list]) -> dict:
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


def slope(series: dict[str, list], key: str = "reward") -> dict | None:
    """The least-squares slope of ``series[key]`` against the step, with its 95 % t-interval (scipy's
    ``linregress``; n − 2 degrees of freedom) and the change it adds up to over the run: whether the training
    reward rose while GRPO ran. Each step draws other prompts, so the points scatter widely; a slope whose interval
    contains 0 says the steps showed no trend, not that there was none. None with fewer than 3 logged values."""
    from scipy import stats

    points = [(s, v) for s, v in zip(series.get("step", []), series.get(key, [])) if v is not None]
    if len(points) < 3 or len({s for s, _ in points}) < 2:
        return None
    steps, values = zip(*points)
    fit = stats.linregress(steps, values)
    half = float(stats.t.ppf(0.975, len(points) - 2) * fit.stderr)
    span = max(steps) - min(steps)
    return {"n": len(points), "per_step": round(float(fit.slope), 5),
            "per_step_ci95": [round(float(fit.slope) - half, 5), round(float(fit.slope) + half, 5)],
            "over_run": round(float(fit.slope) * span, 4), "p": round(float(fit.pvalue), 4)}


def timing(series: dict[str, list]) -> dict:
    gen = [v for v in series.get("timing/generate_s", []) if v]
    toks = [v for v in series.get("timing/rollout_tokens", []) if v]
    step = [v for v in series.get("step_time", []) if v]
    return {"seconds_per_step_logged": round(sum(step) / len(step), 3) if step else None,
            "generate_seconds_per_step": round(sum(gen) / len(gen), 3) if gen else None,
            "rollout_tokens_per_second": round(sum(toks) / sum(gen), 1) if gen and toks else None}
