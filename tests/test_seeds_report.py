"""``sif run --seeds``, the across-seeds view of ``sif compare`` and ``sif report --markdown``, on hand-made run
directories: no model is loaded and no notebook runs.

The fake runs are two settings (``grpo.soft_reward`` probability and binary) × three GRPO seeds, each with the
files the commands read: ``params.yaml``, ``manifest.json``, ``metrics/06_train_grpo.json`` and
``eval/summary.json`` in the shape stage 07 writes (:mod:`sif_lib.evaluation.scores`).
"""

from __future__ import annotations

import datetime as dt
import json
import random
import shutil

import numpy as np
import pytest
import yaml
from conftest import REPO, run_sif
from scipy import stats

from sif_lib.analysis import replicates
from sif_lib.analysis.compare_runs import compare_runs, load_run
from sif_lib.analysis.markdown_tables import markdown_report, write_markdown_report
from sif_lib.config.params import load_params
from sif_lib.core.errors import InputError
from sif_lib.runner import pipeline
from sif_lib.runner.seed_runs import compare_command, parse_seeds, plan_seeds
from sif_lib.runner.stage_table import STAGE_NAMES

SMOKE = REPO / "params" / "smoke.yaml"
SEEDED = STAGE_NAMES[6:]           # GRPO and evaluation: what each seed runs
SHARED = STAGE_NAMES[:6]           # the cold start (when on), synthesis to reward scoring: run once
IFEVAL = ("prompt_strict", "inst_strict", "prompt_loose", "inst_loose")


# ---- fake run directories

def _summary(rng: random.Random, run_id: str) -> dict:
    def pair():
        before = round(rng.uniform(0.1, 0.5), 4)
        return before, round(before + rng.uniform(-0.05, 0.2), 4)

    ifeval = {"base": {"n_prompts": 60}, "trained": {"n_prompts": 60}, "delta": {}, "delta_ci95": {}, "flips": {},
              "n_prompts": 60, "source": "ifeval.jsonl"}
    for metric in IFEVAL:
        b, t = pair()
        ifeval["base"][metric], ifeval["trained"][metric], ifeval["delta"][metric] = b, t, round(t - b, 6)
        ifeval["delta_ci95"][metric] = [round(t - b - 0.05, 4), round(t - b + 0.05, 4)]
    ifeval["flips"] = {m: {"paired": 60, "gained": rng.randint(0, 9), "lost": rng.randint(0, 9), "sign_test_p": 0.25}
                       for m in ("prompt_strict", "prompt_loose")}
    holdout = {"n_prompts": 40, "base": {"levels": {}}, "trained": {"levels": {}}, "delta": {"levels": {}},
               "delta_ci95": {}, "flips": {"hard": {"paired": 70, "gained": 10, "lost": 5, "sign_test_p": 0.3018}}}
    for key in ("hard", "soft", "composite"):
        b, t = pair()
        holdout["base"][key], holdout["trained"][key], holdout["delta"][key] = b, t, round(t - b, 6)
        holdout["delta_ci95"][key] = [round(t - b - 0.1, 4), round(t - b + 0.1, 4)]
    b, t = pair()
    reasoning = {"synthetic": {"n": 40, "base": {"accuracy": b}, "trained": {"accuracy": t}, "delta": round(t - b, 6)}}
    summary = {"run_id": run_id, "ifeval": ifeval, "holdout": holdout, "reasoning": reasoning}
    # Degenerate answers (60 IFEval, 40 hold-out prompts) and the figures on the clean prompts.
    summary["degenerate"] = {}
    for benchmark, n in (("ifeval", 60), ("holdout", 40)):
        before, after = rng.randint(0, 5), rng.randint(5, 20)
        summary["degenerate"][benchmark] = {
            "n": n, "base": {"n": n, "degenerate": before, "share": round(before / n, 4), "share_ci95": [0.0, 0.2]},
            "trained": {"n": n, "degenerate": after, "share": round(after / n, 4), "share_ci95": [0.05, 0.4]},
            "delta": round((after - before) / n, 6), "delta_ci95": [0.01, 0.3],
            "flips": {"paired": n, "became_degenerate": after - before, "became_clean": 0, "sign_test_p": 0.01}}
    gained = rng.randint(10, 30)
    summary["degenerate"]["ifeval"]["gains"] = {"gained": gained, "gained_degenerate": gained // 3, "lost": 7,
                                                "lost_degenerate": 2, "by_id": {}}
    b, t = pair()
    clean_ifeval = {"n_prompts": 50, "base": {"inst_loose": b}, "trained": {"inst_loose": t},
                    "delta": {"inst_loose": round(t - b, 6)}, "delta_ci95": {"inst_loose": [-0.1, 0.2]}, "flips": {}}
    b, t = pair()
    clean_holdout = {"n_prompts": 30, "base": {"hard": b}, "trained": {"hard": t}, "delta": {"hard": round(t - b, 6)},
                     "delta_ci95": {"hard": [-0.1, 0.2]},
                     "flips": {"hard": {"paired": 45, "gained": 8, "lost": 3, "sign_test_p": 0.23}}}
    summary["clean"] = {"ifeval": clean_ifeval, "holdout": clean_holdout}
    return summary


def make_run(root, name: str, soft_reward: str, seed: int, base: str = "base") -> object:
    """A finished seed run: stages 01-05 reused from ``base``, 06 and 07 its own."""
    run_dir = root / name
    (run_dir / "eval").mkdir(parents=True)
    (run_dir / "metrics").mkdir()
    overrides = {"grpo": {"soft_reward": soft_reward, "seed": seed}}
    params = load_params(SMOKE, overrides)
    (run_dir / "params.yaml").write_text(yaml.safe_dump(params.to_dict(), sort_keys=False))
    rng = random.Random(f"{soft_reward}:{seed}")
    stages = {s: {"status": "ok", "seconds": float(10 * (i + 1)), "peak_rss_mb": 1000.0 + i,
                  **({"reused_from": str(root / base)} if s in SHARED else {})} for i, s in enumerate(STAGE_NAMES[1:])}
    stages[SEEDED[0]]["peak_rss_mb"] = 9216.0
    stages[SHARED[0]] = {"status": "skipped", "reason": "cold_start.enabled is false", "seconds": 0.0}
    manifest = {"run_id": name, "created": "2026-11-29T20:06:55+00:00", "params": params.to_dict(),
                "overrides": overrides, "stages": stages, "reused_from": str(root / base),
                "platform": {"machine": "x86_64", "system": "Linux", "python": "3.11.7"},
                "total_seconds": 280.0, "peak_rss_mb": 9216.0}
    (run_dir / "manifest.json").write_text(json.dumps(manifest))
    probe = {"before": {"hard_satisfaction": 0.3208}, "after": {"hard_satisfaction": 0.4906},
             "hard_flips": {"paired": 159, "gained": 40, "lost": 13, "sign_test_p": 0.00027}}
    (run_dir / "metrics" / f"{SEEDED[0]}.json").write_text(json.dumps({"probe": probe}))
    (run_dir / "eval" / "summary.json").write_text(json.dumps(_summary(rng, name)))
    return run_dir


@pytest.fixture()
def runs(tmp_path):
    """Two settings × three seeds; setting B's seeds in another order, so that pairing must go by seed."""
    a = [make_run(tmp_path, f"prob-seed{s}", "probability", s) for s in (0, 1, 2)]
    b = [make_run(tmp_path, f"bin-seed{s}", "binary", s) for s in (2, 0, 1)]
    return a, b


def _deltas(run_dirs, metric: str) -> dict[int, float]:
    """seed -> trained − base of one IFEval metric, read straight from the files."""
    out = {}
    for d in run_dirs:
        s = json.loads((d / "eval" / "summary.json").read_text())
        seed = yaml.safe_load((d / "params.yaml").read_text())["grpo"]["seed"]
        out[seed] = s["ifeval"]["trained"][metric] - s["ifeval"]["base"][metric]
    return out


# ---- grouping, spread, paired test

def test_settings_are_grouped_by_everything_but_the_seed(runs):
    a, b = runs
    settings = replicates.group_settings([load_run(d) for d in a + b])
    assert [s.label for s in settings] == ["A", "B"]
    assert [s.name for s in settings] == ["grpo.soft_reward='probability'", "grpo.soft_reward='binary'"]
    assert [r.run_dir for r in settings[0].runs] == a and [r.run_dir for r in settings[1].runs] == b
    assert settings[0].seeds == [0, 1, 2] and settings[1].seeds == [2, 0, 1]
    assert replicates.has_replicates(settings)
    one = replicates.group_settings([load_run(d) for d in a])
    assert len(one) == 1 and one[0].name == "all runs"


def test_mean_and_spread_are_the_sample_figures(runs):
    a, _ = runs
    setting = replicates.group_settings([load_run(d) for d in a])[0]
    figures = replicates.setting_figures(setting)
    trained = [json.loads((d / "eval" / "summary.json").read_text())["ifeval"]["trained"]["inst_loose"] for d in a]
    after = figures["ifeval.inst_loose"]["after"]
    assert after["n"] == 3
    assert after["mean"] == pytest.approx(sum(trained) / 3)
    assert after["sd"] == pytest.approx(np.std(trained, ddof=1))
    deltas = list(_deltas(a, "inst_loose").values())
    assert figures["ifeval.inst_loose"]["delta"]["mean"] == pytest.approx(np.mean(deltas))
    assert figures["ifeval.inst_loose"]["delta"]["sd"] == pytest.approx(np.std(deltas, ddof=1))
    low, high = stats.t.interval(0.95, len(deltas) - 1, loc=np.mean(deltas), scale=stats.sem(deltas))
    assert figures["ifeval.inst_loose"]["delta"]["ci95"] == pytest.approx([low, high])
    assert replicates.spread([0.5]) == {"n": 1, "mean": 0.5, "sd": None, "ci95": None}
    assert replicates.spread([None, None]) == {"n": 0, "mean": None, "sd": None, "ci95": None}
    assert replicates.spread([0.02, 0.02])["ci95"] is None  # no spread, no interval


def test_paired_test_matches_scipy_seed_by_seed(runs):
    a, b = runs
    reference, other = replicates.group_settings([load_run(d) for d in a + b])
    metric = next(m for m in replicates.HEADLINE if m.key == "ifeval.prompt_loose")
    test = replicates.paired_test(reference, other, metric)
    da, db = _deltas(a, "prompt_loose"), _deltas(b, "prompt_loose")
    diff = np.array([db[s] - da[s] for s in test["seeds"]])
    assert sorted(test["seeds"]) == [0, 1, 2] and test["n"] == 3
    assert test["differences"] == pytest.approx(diff.tolist())
    assert test["mean"] == pytest.approx(diff.mean())
    # Computed here another way: the one-sample t-test of the differences and Student's t interval.
    assert test["p"] == pytest.approx(stats.ttest_1samp(diff, 0.0).pvalue)
    low, high = stats.t.interval(0.95, len(diff) - 1, loc=diff.mean(), scale=stats.sem(diff))
    assert test["ci95"] == pytest.approx([low, high])
    heading = replicates.paired_heading(reference, other)
    assert "n = 3 seeds" in heading and "low power" in heading


def test_paired_test_needs_two_seeds_and_some_spread(runs, tmp_path):
    a, _ = runs
    lone = make_run(tmp_path, "bin-lone", "binary", 0)
    settings = replicates.group_settings([load_run(d) for d in a + [lone]])
    metric = replicates.HEADLINE[0]
    test = replicates.paired_test(settings[0], settings[1], metric)
    assert test["n"] == 1 and test["ci95"] is None and test["p"] is None
    # Every difference the same: nothing to test (scipy would divide by zero).
    twins = replicates.group_settings([load_run(d) for d in a])[0]
    same = replicates.paired_test(twins, twins, metric)
    assert same["mean"] == 0 and same["ci95"] is None and same["p"] is None
    # Differences equal up to the summaries' six stored decimals are not a spread either.
    shifted = []
    for d, step in zip(a, (0.015151, 0.015152, 0.015151)):
        twin = tmp_path / f"{d.name}-shifted"
        shutil.copytree(d, twin)
        summary_path = twin / "eval" / "summary.json"
        summary = json.loads(summary_path.read_text())
        summary["ifeval"]["trained"]["prompt_loose"] += step
        summary_path.write_text(json.dumps(summary))
        params_path, manifest_path = twin / "params.yaml", twin / "manifest.json"
        params, manifest = yaml.safe_load(params_path.read_text()), json.loads(manifest_path.read_text())
        params["grpo"]["soft_reward"] = manifest["params"]["grpo"]["soft_reward"] = "binary"
        manifest["overrides"]["grpo"]["soft_reward"] = "binary"
        params_path.write_text(yaml.safe_dump(params))
        manifest_path.write_text(json.dumps(manifest))
        shifted.append(twin)
    reference, other = replicates.group_settings([load_run(d) for d in a + shifted])
    loose = next(m for m in replicates.HEADLINE if m.key == "ifeval.prompt_loose")
    rounded = replicates.paired_test(reference, other, loose)
    assert rounded["mean"] == pytest.approx(0.0151513, abs=1e-6) and rounded["ci95"] is None and rounded["p"] is None


def test_compare_prints_settings_and_paired_tests(runs, tmp_path):
    a, b = runs
    printed: list[str] = []
    compare_runs(a + b, output=tmp_path / "cmp.html", echo=printed.append)
    text = "\n".join(printed)
    assert printed[0].splitlines()[0].startswith("run ")  # the per-run table stays first
    assert "Settings across seeds" in text and "A: grpo.soft_reward='probability'" in text
    assert "B against A, paired by seed" in text and "low power" in text
    deltas = list(_deltas(a, "prompt_strict").values())
    low, high = stats.t.interval(0.95, 2, loc=np.mean(deltas), scale=stats.sem(deltas))
    cell = (f"{100 * np.mean(deltas):+.1f} ± {100 * np.std(deltas, ddof=1):.1f} "
            f"[{100 * low:+.1f}, {100 * high:+.1f}] (n=3)")
    assert cell in text
    page = (tmp_path / "cmp.html").read_text()
    assert "Across seeds" in page and "B against A" in page


# ---- sif report --markdown

def test_markdown_names_its_sources_and_reads_the_files(runs, tmp_path):
    a, b = runs
    text = markdown_report(a + b, today=dt.date(2026, 12, 1))
    for d in a + b:
        assert f"`{d}`" in text
    assert text.count("Machine: x86_64, Linux, Python 3.11.7 (manifest.json). Run on 2026-11-29; "
                      "table made 2026-12-01") == 2  # both tables say where they came from
    assert "| stage 01_synthesize_constraints | 10 s (reused) |" in text
    assert "| peak memory | 9.0 GB (stage 06) |" in text
    assert "32.1 → 49.1 (40 gained, 13 lost; sign test p = 0.00027)" in text
    s = json.loads((a[0] / "eval" / "summary.json").read_text())["ifeval"]
    lo, hi = s["delta_ci95"]["inst_strict"]
    assert (f"{100 * s['base']['inst_strict']:.1f} → {100 * s['trained']['inst_strict']:.1f} "
            f"({100 * s['delta']['inst_strict']:+.1f} [{100 * lo:+.1f}, {100 * hi:+.1f}])") in text
    assert "### Settings across seeds" in text and "| figure | A: after | A: Δ | B: after | B: Δ |" in text
    assert "p (paired t)" in text
    m = json.loads((a[0] / "eval" / "summary.json").read_text())["reasoning"]["synthetic"]
    assert (f"| math, strict (\\boxed{{}}), % (n = 40 items) | {100 * m['base']['accuracy']:.1f} → "
            f"{100 * m['trained']['accuracy']:.1f} ({100 * m['delta']:+.1f})") in text
    assert "closing </think>" not in text  # no run reported thinking figures
    single = markdown_report(a[:1])
    assert "Settings across seeds" not in single
    out = tmp_path / "tables.md"
    lines: list[str] = []
    write_markdown_report(a, output=out, echo=lines.append)
    assert out.read_text().startswith("### Per run") and lines == [f"wrote {out}"]


def test_markdown_adds_flexible_math_and_thinking_when_reported(runs):
    a, _ = runs
    path = a[0] / "eval" / "summary.json"
    s = json.loads(path.read_text())
    s["reasoning"]["synthetic"]["flexible"] = {"base": {"accuracy": 0.25}, "trained": {"accuracy": 0.3},
                                               "delta": 0.05, "delta_ci95": [-0.05, 0.15]}
    s["thinking"] = {"holdout": {"base": {"closed_share": 0.975, "mean_think_tokens": 61.2},
                                 "trained": {"closed_share": 1.0, "mean_think_tokens": 48.7}}}
    path.write_text(json.dumps(s))
    text = markdown_report(a)
    assert "| math, flexible (the last number), % | 25.0 → 30.0 (+5.0 [-5.0, +15.0]) | – | – |" in text
    assert "| hold-out answers closing </think>, % | 97.5 → 100.0 | – | – |" in text
    assert "| hold-out mean thinking length, tokens (closed answers) | 61 → 49 | – | – |" in text


def _drop_degenerate_sections(run_dir) -> None:
    """Make ``run_dir`` look evaluated before the degenerate and clean sections existed."""
    path = run_dir / "eval" / "summary.json"
    s = json.loads(path.read_text())
    del s["degenerate"], s["clean"]
    path.write_text(json.dumps(s))


def test_markdown_and_compare_show_degenerate_shares_and_clean_gains(runs, tmp_path):
    a, b = runs
    _drop_degenerate_sections(b[0])  # an older run: n/a, never a crash
    text = markdown_report(a + b)
    s = json.loads((a[0] / "eval" / "summary.json").read_text())
    d = s["degenerate"]["ifeval"]
    f = d["flips"]
    assert (f"| IFEval degenerate answers, % (lower is better) | {100 * d['base']['share']:.1f} → "
            f"{100 * d['trained']['share']:.1f} ({100 * d['delta']:+.1f} [+1.0, +30.0]; {f['became_degenerate']} "
            f"turned degenerate, 0 turned clean; sign test p = 0.01) |") in text
    c = s["clean"]["holdout"]
    assert (f"| hold-out hard constraints, clean prompts (neither answer degenerate), % | {100 * c['base']['hard']:.1f}"
            f" → {100 * c['trained']['hard']:.1f} ({100 * c['delta']['hard']:+.1f} [-10.0, +20.0]; 8 gained, 3 lost; "
            f"sign test p = 0.23), 30 prompts |") in text
    for label in ("IFEval degenerate answers", "hold-out degenerate answers", "IFEval instruction-level loose, clean",
                  "hold-out hard constraints, clean"):
        line = next(x for x in text.splitlines() if x.startswith(f"| {label}"))
        assert line.split(" | ")[4] == "n/a"  # column 4: b[0], the older run (runs: prob-seed0..2, bin-seed2, ...)
    assert "| GRPO probe: degenerate answers, % (stage 06) | n/a |" in text
    g = d["gains"]
    line = next(x for x in text.splitlines() if x.startswith("| IFEval instructions newly met (loose)"))
    assert line.split(" | ")[1] == (f"{g['gained']} newly met, {g['gained_degenerate']} of them by a degenerate "
                                    f"answer ({100 * g['gained_degenerate'] / g['gained']:.1f}%); 7 no longer met, "
                                    f"2 of them met before by one")
    assert line.split(" | ")[4] == "n/a"
    # Across seeds: setting B has two runs with the figures, A three.
    assert "| IFEval degenerate answers (lower is better) |" in text and "| hold-out hard, clean prompts |" in text
    settings = replicates.group_settings([load_run(d) for d in a + b])
    figs = replicates.setting_figures(settings[1])
    assert figs["degenerate.ifeval"]["after"]["n"] == 2 and figs["clean.holdout.hard"]["delta"]["n"] == 2
    deltas = [json.loads((d / "eval" / "summary.json").read_text())["clean"]["ifeval"]["delta"]["inst_loose"]
              for d in a]
    assert replicates.setting_figures(settings[0])["clean.ifeval.inst_loose"]["delta"]["mean"] == pytest.approx(
        np.mean(deltas))
    printed: list[str] = []
    compare_runs(a + b, output=tmp_path / "cmp.html", echo=printed.append)
    header = printed[0].splitlines()[0]
    for column in ("degenerate IFEval", "degenerate hold-out", "clean Ins(L)", "clean hold-out hard",
                   "IFEval gains by degenerate answers"):
        assert column in header
    old_row = next(x for x in printed[0].splitlines() if x.startswith("bin-seed2 "))
    assert old_row.count("n/a") == 5
    assert f"{g['gained_degenerate']} of {g['gained']}" in next(x for x in printed[0].splitlines()
                                                                 if x.startswith("prob-seed0 "))
    t = s["degenerate"]["holdout"]
    cell = (f"{100 * t['base']['share']:.1f} → {100 * t['trained']['share']:.1f} "
            f"({100 * (t['trained']['share'] - t['base']['share']):+.1f})")
    assert cell in next(x for x in printed[0].splitlines() if x.startswith("prob-seed0 "))
    assert "clean Ins(L)" in (tmp_path / "cmp.html").read_text()
    # Runs that all predate the sections: no across-seeds rows for them, and the per-run cells say n/a.
    for d in a + b:
        if "degenerate" in json.loads((d / "eval" / "summary.json").read_text()):
            _drop_degenerate_sections(d)
    text = markdown_report(a + b)
    assert "| IFEval degenerate answers (lower is better) |" not in text
    assert "| IFEval degenerate answers, % (lower is better) | n/a | n/a |" in text


def test_report_needs_run_directories(tmp_path):
    with pytest.raises(InputError, match="not a run directory"):
        markdown_report([tmp_path / "absent"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="manifest.json"):
        markdown_report([tmp_path / "empty"])


# ---- sif run --seeds: parsing and the plan

def test_seeds_parse():
    assert parse_seeds("0,1,2") == [0, 1, 2]
    assert parse_seeds(" 3, 1 ") == [3, 1]
    for bad in ("", "a", "1,,2", "-1", "1.5", "²", "1,1"):
        with pytest.raises(InputError, match="--seeds"):
            parse_seeds(bad)


def test_bad_seeds_is_one_line_and_exit_2(tmp_path):
    proc = run_sif("run", "params/smoke.yaml", "--seeds", "0,x", "--outputs", str(tmp_path), timeout=120)
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert lines == ["error: --seeds '0,x': expected comma-separated integers of at least 0, e.g. --seeds 0,1,2"]
    assert not any(tmp_path.iterdir())


def test_plan_names_dirs_sets_the_seed_and_reuses_the_base(tmp_path):
    overrides = {"grpo": {"max_steps": 2}}
    plan = plan_seeds(SMOKE, "0,1,2", tmp_path, run_id="abl", overrides=overrides)
    assert plan.base_dir == tmp_path / "abl" and plan.run_base
    assert plan.base_stages == SHARED and plan.seed_stages == SEEDED
    assert plan.base_overrides == overrides
    assert [r.run_dir for r in plan.runs] == [tmp_path / f"abl-seed{s}" for s in (0, 1, 2)]
    assert [r.overrides for r in plan.runs] == [{"grpo": {"max_steps": 2, "seed": s}} for s in (0, 1, 2)]
    assert all(r.reuse == tmp_path / "abl" for r in plan.runs)
    assert overrides == {"grpo": {"max_steps": 2}}  # the caller's dict is left alone

    reused = plan_seeds(SMOKE, [4], tmp_path, reuse=tmp_path / "done", from_stage="06")
    assert not reused.run_base and reused.base_dir == tmp_path / "done"
    assert reused.runs[0].run_dir == tmp_path / "done-seed4" and reused.runs[0].reuse == tmp_path / "done"
    named = plan_seeds(SMOKE, [4], tmp_path, run_id="x", reuse=tmp_path / "done")
    assert named.runs[0].run_dir == tmp_path / "x-seed4" and named.runs[0].reuse == tmp_path / "done"
    stamped = plan_seeds(SMOKE, "7", tmp_path, now=dt.datetime(2026, 12, 1, 9, 30, 5))
    assert stamped.runs[0].run_dir == tmp_path / "smoke-20261201-093005-seed7"

    for kwargs, message in (({"overrides": {"grpo": {"seed": 3}}}, "--seeds sets it"),
                            ({"to_stage": "05"}, "no --to or --only"), ({"only": "07"}, "no --to or --only"),
                            ({"from_stage": "03"}, "does not apply")):
        with pytest.raises(InputError, match=message):
            plan_seeds(SMOKE, "0,1", tmp_path, **kwargs)
    assert compare_command([tmp_path / "a b", tmp_path / "c"]) == f"sif compare '{tmp_path / 'a b'}' {tmp_path / 'c'}"


def test_grpo_seed_is_not_read_by_the_shared_stages(tmp_path):
    """The base's stages 01-05 read run.seed; a seed run that sets grpo.seed passes --reuse's check of them, one
    that sets run.seed does not."""
    base = tmp_path / "base"
    base.mkdir()
    params = load_params(SMOKE).to_dict()
    stages = {s: {"status": "ok", "params_read": ["run.seed", "synthesis.n_instructions"]} for s in SHARED}
    (base / "manifest.json").write_text(json.dumps({"params": params, "stages": stages}))
    plan = plan_seeds(SMOKE, "0,1", tmp_path, run_id="base")
    seeded = load_params(SMOKE, plan.runs[1].overrides)
    copied = pipeline.reuse_stages(base, tmp_path / "base-seed1", list(plan.base_stages), seeded)
    assert set(copied) == set(SHARED) and all(r["reused_from"] == str(base.resolve()) for r in copied.values())
    with pytest.raises(InputError, match="'run.seed' differs"):
        pipeline.reuse_stages(base, tmp_path / "other", list(plan.base_stages),
                              load_params(SMOKE, {"run": {"seed": 1}}))


def test_grpo_trains_with_grpo_seed(tmp_path):
    from sif_lib.grpo.config import grpo_config_kwargs

    cpu = {"run": {"device": "cpu", "dtype": "float32", "seed": 3}}
    assert grpo_config_kwargs(load_params(SMOKE, cpu), tmp_path)["seed"] == 3
    params = load_params(SMOKE, {**cpu, "grpo": {"seed": 5}})
    assert grpo_config_kwargs(params, tmp_path)["seed"] == 5
    assert "grpo.seed" in params.reads() and "run.seed" not in params.reads()


def test_run_seeds_runs_the_plan_stops_on_failure_and_resumes(tmp_path, monkeypatch):
    """The loop with run_pipeline replaced: what it is asked to run, in which order, and what a rerun keeps."""
    calls: list[dict] = []
    failing = {1}

    def fake_run_pipeline(params_file, run_id=None, from_stage=None, outputs=None, overrides=None, reuse=None,
                          to_stage=None, answers_from=(), **_):
        calls.append({"run_id": run_id, "from": from_stage, "to": to_stage, "reuse": reuse, "overrides": overrides,
                      "answers_from": answers_from})
        run_dir = outputs / run_id
        run_dir.mkdir(exist_ok=True)
        seed = ((overrides or {}).get("grpo") or {}).get("seed")
        selected = STAGE_NAMES[STAGE_NAMES.index(from_stage):STAGE_NAMES.index(to_stage or STAGE_NAMES[-1]) + 1]
        manifest_path = run_dir / "manifest.json"
        manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {
            "stages": {}, **({"reused_from": str(reuse.resolve())} if reuse else {})}
        manifest["params"] = load_params(params_file, overrides).to_dict()
        for name in selected:
            fails = seed in failing and name == SEEDED[-1]
            manifest["stages"][name] = {"status": "failed" if fails else "ok"}
            manifest_path.write_text(json.dumps(manifest))
            if fails:
                raise pipeline.StageFailed(f"stage {name} failed")
        return run_dir

    monkeypatch.setattr(pipeline, "run_pipeline", fake_run_pipeline)
    with pytest.raises(pipeline.StageFailed):
        pipeline.run_seeds(SMOKE, "0,1,2", run_id="r", outputs=tmp_path, echo=lambda _: None)
    assert [(c["run_id"], c["from"], c["to"]) for c in calls] == [
        ("r", SHARED[0], SHARED[-1]), ("r-seed0", SEEDED[0], None), ("r-seed1", SEEDED[0], None)]
    assert calls[1]["reuse"] == tmp_path / "r" and calls[2]["overrides"] == {"grpo": {"seed": 1}}
    # The base policy's answers of seed 0 (its probe, its evaluation) are offered to seed 1.
    assert calls[1]["answers_from"] == () and calls[2]["answers_from"] == (tmp_path / "r-seed0",)
    assert not (tmp_path / "r-seed2").exists()  # a failing seed stops the loop

    calls.clear()
    failing.clear()
    dirs = pipeline.run_seeds(SMOKE, "0,1,2", run_id="r", outputs=tmp_path, echo=lambda _: None)
    assert dirs == [tmp_path / f"r-seed{s}" for s in (0, 1, 2)]
    # Stages 01-05 and seed 0 finished: kept. Seed 1 resumes its own directory at the stage that failed.
    assert [(c["run_id"], c["from"], c["reuse"]) for c in calls] == [
        ("r-seed1", SEEDED[-1], None), ("r-seed2", SEEDED[0], tmp_path / "r")]

    with pytest.raises(InputError, match="finished already with another grpo.max_steps"):
        pipeline.run_seeds(SMOKE, "0", run_id="r", outputs=tmp_path, overrides={"grpo": {"max_steps": 9}},
                           echo=lambda _: None)

    # `sif run --answers-from A` offers A's answers to every seed, before the earlier seeds'.
    calls.clear()
    pipeline.run_seeds(SMOKE, "3,4", run_id="r", outputs=tmp_path, answers_from=(tmp_path / "full",),
                       echo=lambda _: None)
    assert [c["answers_from"] for c in calls] == [(tmp_path / "full",), (tmp_path / "full", tmp_path / "r-seed3")]


def test_sif_run_passes_answers_from(tmp_path, monkeypatch):
    from sif_lib.cli import main

    seen = {}
    monkeypatch.setattr(pipeline, "run_pipeline", lambda *a, **kw: seen.update(kw) or tmp_path / "x")
    assert main(["run", str(SMOKE), "--run-id", "x", "--outputs", str(tmp_path), "--answers-from", "outputs/a",
                 "--answers-from", "outputs/b"]) == 0
    assert seen["answers_from"] == ("outputs/a", "outputs/b")
