"""Runs that repeat a setting under several seeds: grouping, mean ± spread per setting, paired tests across seeds.

Runs whose params differ only in the seed (``grpo.seed``, or ``run.seed``) form one *setting*; the params that
differ between settings name it. Per setting, each headline figure of ``eval/summary.json`` (the share of
degenerate answers on IFEval and the hold-out, IFEval prompt- and instruction-level strict and loose, the same
for IFBench when a run evaluated it, the hold-out's hard, soft and composite scores, the clean gain: IFEval
instruction-level loose and the hold-out's hard constraints on the prompts where neither answer is degenerate,
math accuracy strict and flexible, and the share of hold-out answers that close ``</think>``) gets the mean, the
sample standard deviation and n over its runs, for the trained value and for the before→after delta (the
delta also with the t-based 95% interval of its mean, scipy's ``ttest_1samp``). A run
evaluated before a figure existed (or without IFBench) has none ("n/a").

Two settings are compared seed by seed: for each seed both ran, the difference of their deltas (numpy). The mean
of those differences, its t-based 95% interval and the two-sided p of the paired t-test come from scipy
(``scipy.stats.ttest_rel``). With three seeds such a test has little power: an interval that contains 0 says the
seeds cannot tell the settings apart, not that they are the same.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sif_lib.core.display import differing_keys
from sif_lib.evaluation.report import reasoning_key

SEED_KEYS = ("grpo.seed", "run.seed")
_IGNORED = {"description"}
# Below 6 paired seeds (df < 5) t's 97.5% quantile exceeds 2.57: only a difference several standard errors wide
# reaches p < 0.05, so the test is flagged as low power.
LOW_POWER_BELOW = 6


def _get(summary: dict, *path: str) -> float | None:
    value: Any = summary
    for part in path:
        value = value.get(part) if isinstance(value, dict) else None
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _math(summary: dict, policy: str) -> float | None:
    key = reasoning_key(summary)
    return _get(summary, "reasoning", key, policy, "accuracy") if key else None


def _math_flexible(summary: dict, policy: str) -> float | None:
    key = reasoning_key(summary)
    return _get(summary, "reasoning", key, "flexible", policy, "accuracy") if key else None


def _closed_think(summary: dict, policy: str) -> float | None:
    """The hold-out answers' share that close ``</think>`` (None before stage 07 reported it)."""
    return _get(summary, "thinking", "holdout", policy, "closed_share")


@dataclass(frozen=True)
class Metric:
    key: str
    label: str
    value: Callable[[dict, str], float | None]  # (summary, "base" | "trained") -> a fraction

    def delta(self, summary: dict) -> float | None:
        before, after = self.value(summary, "base"), self.value(summary, "trained")
        return None if before is None or after is None else after - before


def _ifeval(metric: str) -> Callable[[dict, str], float | None]:
    return lambda s, policy: _get(s, "ifeval", policy, metric)


def _ifbench(metric: str) -> Callable[[dict, str], float | None]:
    return lambda s, policy: _get(s, "ifbench", policy, metric)


def _id_group_share(name: str) -> Callable[[dict, str], float | None]:
    return lambda s, policy: _get(s, "ifeval", "id_groups", name, policy, "inst_loose")


def _holdout(metric: str) -> Callable[[dict, str], float | None]:
    return lambda s, policy: _get(s, "holdout", policy, metric)


def _degenerate(benchmark: str) -> Callable[[dict, str], float | None]:
    return lambda s, policy: _get(s, "degenerate", benchmark, policy, "share")


def _clean(benchmark: str, metric: str) -> Callable[[dict, str], float | None]:
    return lambda s, policy: _get(s, "clean", benchmark, policy, metric)


HEADLINE = (
    Metric("degenerate.ifeval", "IFEval degenerate answers (lower is better)", _degenerate("ifeval")),
    Metric("degenerate.holdout", "hold-out degenerate answers (lower is better)", _degenerate("holdout")),
    Metric("ifeval.prompt_strict", "IFEval prompt strict", _ifeval("prompt_strict")),
    Metric("ifeval.inst_strict", "IFEval instruction strict", _ifeval("inst_strict")),
    Metric("ifeval.prompt_loose", "IFEval prompt loose", _ifeval("prompt_loose")),
    Metric("ifeval.inst_loose", "IFEval instruction loose", _ifeval("inst_loose")),
    Metric("ifeval.trained_ids", "IFEval instruction loose, trained ids", _id_group_share("trained")),
    Metric("ifeval.untrained_ids", "IFEval instruction loose, untrained ids", _id_group_share("untrained")),
    Metric("ifeval.heldout_ids", "IFEval instruction loose, held-out ids", _id_group_share("held_out")),
    Metric("ifbench.prompt_strict", "IFBench prompt strict", _ifbench("prompt_strict")),
    Metric("ifbench.inst_strict", "IFBench instruction strict", _ifbench("inst_strict")),
    Metric("ifbench.prompt_loose", "IFBench prompt loose", _ifbench("prompt_loose")),
    Metric("ifbench.inst_loose", "IFBench instruction loose", _ifbench("inst_loose")),
    Metric("holdout.hard", "hold-out hard", _holdout("hard")),
    Metric("holdout.soft", "hold-out soft", _holdout("soft")),
    Metric("holdout.composite", "hold-out composite", _holdout("composite")),
    Metric("clean.ifeval.inst_loose", "IFEval instruction loose, clean prompts", _clean("ifeval", "inst_loose")),
    Metric("clean.holdout.hard", "hold-out hard, clean prompts", _clean("holdout", "hard")),
    Metric("math", "math accuracy", _math),
    Metric("math.flexible", "math accuracy, flexible", _math_flexible),
    Metric("thinking.closed", "hold-out answers closing </think>", _closed_think),
)


def seed_of(flat: dict) -> int | None:
    """The seed GRPO trained with: ``grpo.seed``, or ``run.seed`` when that is null."""
    return flat.get("run.seed") if flat.get("grpo.seed") is None else flat.get("grpo.seed")


@dataclass
class Setting:
    label: str        # "A", "B", ... in the order the settings first appear
    name: str         # the params that set it apart from the others ("all runs" when there is one setting)
    runs: list        # records with .run_id, .run_dir, .flat (Params.flat()) and .summary (eval/summary.json)

    @property
    def seeds(self) -> list[int | None]:
        return [seed_of(r.flat) for r in self.runs]


def group_settings(runs: Sequence) -> list[Setting]:
    """Runs grouped by every param but the seed, in order of first appearance."""
    groups: dict[str, list] = {}
    for run in runs:
        key = repr(sorted((k, repr(v)) for k, v in run.flat.items() if k not in SEED_KEYS and k not in _IGNORED))
        groups.setdefault(key, []).append(run)
    naming = differing_keys([r.flat for r in runs], set(SEED_KEYS) | _IGNORED)
    settings = []
    for i, members in enumerate(groups.values()):
        name = ", ".join(f"{k}={members[0].flat.get(k)!r}" for k in naming) or "all runs"
        settings.append(Setting(_letter(i), name, members))
    return settings


def _letter(i: int) -> str:
    return chr(ord("A") + i) if i < 26 else f"S{i + 1}"


def has_replicates(settings: Sequence[Setting]) -> bool:
    return any(len(s.runs) > 1 for s in settings)


STORED_PRECISION = 1e-5  # differences closer than this are the same difference (six stored decimals)


def spread(values: Sequence[float | None]) -> dict:
    """Mean, sample standard deviation (n − 1; None for one value), the t-based 95% interval of the mean (scipy;
    None below 2 values or with no spread) and n of the values that are not None."""
    import numpy as np
    from scipy import stats

    kept = np.asarray([v for v in values if v is not None], dtype=float)
    n = int(kept.size)
    ci95 = None
    if n > 1 and not np.allclose(kept, kept[0], rtol=0, atol=STORED_PRECISION):
        low, high = stats.ttest_1samp(kept, 0.0).confidence_interval(0.95)
        ci95 = [float(low), float(high)]
    return {"n": n, "mean": float(kept.mean()) if n else None, "sd": float(kept.std(ddof=1)) if n > 1 else None,
            "ci95": ci95}


def setting_figures(setting: Setting) -> dict[str, dict]:
    """``{metric key: {"after": spread, "delta": spread}}`` over the setting's runs (fractions)."""
    return {m.key: {"after": spread([m.value(r.summary, "trained") for r in setting.runs]),
                    "delta": spread([m.delta(r.summary) for r in setting.runs])} for m in HEADLINE}


def paired_test(reference: Setting, other: Setting, metric: Metric) -> dict:
    """``other``'s delta minus ``reference``'s, seed by seed (seeds that each setting ran exactly once): the seeds,
    the differences, their mean, the t-based 95% interval of the mean and the paired t-test's two-sided p. The
    interval and p are None with fewer than 2 seeds, or when every difference is the same (no spread to test)."""
    import numpy as np
    from scipy.stats import ttest_rel

    def by_seed(setting: Setting) -> dict:
        seeds = setting.seeds
        return {s: metric.delta(r.summary) for s, r in zip(seeds, setting.runs) if seeds.count(s) == 1}

    ours, theirs = by_seed(reference), by_seed(other)
    seeds = sorted(s for s in theirs if s in ours and ours[s] is not None and theirs[s] is not None)
    a = np.asarray([ours[s] for s in seeds], dtype=float)
    b = np.asarray([theirs[s] for s in seeds], dtype=float)
    out = {"seeds": seeds, "n": len(seeds), "differences": (b - a).tolist(),
           "mean": float((b - a).mean()) if seeds else None, "ci95": None, "p": None}
    # Summaries store fractions to 6 decimals, so equal differences can differ by a few 1e-6: that is rounding,
    # not spread, and a t-test on it would report p ~ 0 (two seeds of +1.5 points each, 2026-12-07).
    if len(seeds) >= 2 and not np.allclose(b - a, (b - a)[0], rtol=0, atol=STORED_PRECISION):
        result = ttest_rel(b, a)
        low, high = result.confidence_interval(0.95)
        out.update(ci95=[float(low), float(high)], p=float(result.pvalue))
    return out


# ---------------------------------------------------------------------------------------------------------------
# Text: the same rows print in `sif compare` and go into `sif report --markdown`.

def _spread_text(fig: dict, signed: bool) -> str:
    if not fig["n"]:
        return "n/a"
    mean = f"{100 * fig['mean']:+.1f}" if signed else f"{100 * fig['mean']:.1f}"
    sd = f" ± {100 * fig['sd']:.1f}" if fig["sd"] is not None else ""
    ci = ""
    if signed and fig.get("ci95"):  # a delta's t-interval over seeds: does the gain hold beyond the seeds run?
        ci = f" [{100 * fig['ci95'][0]:+.1f}, {100 * fig['ci95'][1]:+.1f}]"
    return f"{mean}{sd}{ci} (n={fig['n']})"


def legend_lines(settings: Sequence[Setting]) -> list[str]:
    """One line per setting: its letter, the params that name it, and its runs with their seeds."""
    return [f"{s.label}: {s.name} — {len(s.runs)} run(s): "
            + ", ".join(f"{r.run_id} (seed {seed})" for r, seed in zip(s.runs, s.seeds)) for s in settings]


def reported(settings: Sequence[Setting]) -> list[Metric]:
    """The headline figures at least one run reports (runs of a policy that never thinks, or made before a figure
    existed, have no thinking or flexible-math figures: no row of dashes for them)."""
    return [m for m in HEADLINE if any(m.value(r.summary, p) is not None
                                       for s in settings for r in s.runs for p in ("base", "trained"))]


def settings_rows(settings: Sequence[Setting]) -> list[dict[str, str]]:
    """One row per headline figure; per setting, the trained value and the delta as mean ± SD (n), in percent and
    points."""
    figures = [setting_figures(s) for s in settings]
    rows = []
    for metric in reported(settings):
        row = {"figure": metric.label}
        for setting, figs in zip(settings, figures):
            row[f"{setting.label}: after"] = _spread_text(figs[metric.key]["after"], signed=False)
            row[f"{setting.label}: Δ"] = _spread_text(figs[metric.key]["delta"], signed=True)
        rows.append(row)
    return rows


def paired_rows(reference: Setting, other: Setting) -> list[dict[str, str]]:
    """One row per headline delta: ``other``'s minus ``reference``'s, paired by seed, in points."""
    rows = []
    for metric in reported([reference, other]):
        test = paired_test(reference, other, metric)
        ci = test["ci95"]
        rows.append({
            "figure (Δ after − before)": metric.label,
            "seeds": ", ".join(str(s) for s in test["seeds"]) or "none in common",
            f"mean Δ{other.label} − Δ{reference.label}": ("n/a" if test["mean"] is None
                                                          else f"{100 * test['mean']:+.1f}"),
            "95% CI (t)": f"[{100 * ci[0]:+.1f}, {100 * ci[1]:+.1f}]" if ci else "n/a",
            "p (paired t)": "n/a" if test["p"] is None else f"{test['p']:.3g}",
        })
    return rows


def paired_heading(reference: Setting, other: Setting) -> str:
    n = max((paired_test(reference, other, m)["n"] for m in HEADLINE), default=0)
    power = f" With n = {n} seeds the test has low power." if 0 < n < LOW_POWER_BELOW else ""
    return (f"{other.label} against {reference.label}, paired by seed (difference of the before→after deltas, in "
            f"points; t-based 95% interval and paired t-test from scipy; n/a below 2 seeds or with no spread)."
            + power)


def comparisons(settings: Sequence[Setting]) -> list[tuple[Setting, Setting]]:
    """Which settings are tested against which: every other setting against the first (the reference)."""
    return [(settings[0], s) for s in settings[1:]]
