"""``sif report RUN_DIR... --markdown``: the measured tables of docs/RESULTS.md, made from run directories.

Every figure is read from the runs' ``manifest.json``, ``metrics/*.json`` and ``eval/summary.json``, so a table in
docs/RESULTS.md can be regenerated rather than retyped. Two tables:

* per run: each stage's time, the total and the peak memory (manifest), the GRPO probe's hard constraints and
  degenerate answers before → after with the sign test of the flips (stage 06's metrics), the hold-out's hard
  constraints and the four IFEval figures (and IFBench's, when a run evaluated it) before → after with their
  paired 95% intervals, the share of degenerate answers on IFEval and the hold-out, and the clean gain: IFEval
  instruction-level loose and the hold-out's hard constraints on the prompts where neither answer is degenerate
  (``eval/summary.json``; "n/a" for a run evaluated before those figures existed, or without IFBench), and how
  many of the IFEval instructions newly met the trained policy met with a degenerate answer;
* with several runs, the settings across seeds and the paired tests between them
  (:mod:`sif_lib.analysis.replicates`, as ``sif compare`` prints them).

Each table says which run directories it came from, on which machine (the manifest's ``platform``) and when.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from pathlib import Path

from sif_lib.analysis import replicates
from sif_lib.analysis.compare_runs import load_run
from sif_lib.core.display import percent
from sif_lib.core.errors import InputError
from sif_lib.core.io import atomic_write_text, read_json
from sif_lib.evaluation.degenerate_report import gains_text
from sif_lib.evaluation.report import (
    ID_GROUP_LABELS,
    IFBENCH_LABELS,
    IFEVAL_LABELS,
    id_group_sections,
    reasoning_key,
)
from sif_lib.runner.stage_table import STAGE_NAMES, stage

PROBE_STAGE = stage("train_grpo").name


def md_table(rows: list[dict[str, str]]) -> list[str]:
    header = list(rows[0])
    cell = lambda value: str(value).replace("|", "\\|")  # noqa: E731
    return (["| " + " | ".join(cell(h) for h in header) + " |", "|" + "|".join("---" for _ in header) + "|"]
            + ["| " + " | ".join(cell(row[h]) for h in header) + " |" for row in rows])



def _p(value) -> str:
    return f"{value:.2g}" if value >= 1e-4 else f"{value:.1e}"


def _seconds(value) -> str:
    if not isinstance(value, (int, float)):
        return "–"
    return f"{value:.1f} s" if value < 10 else f"{value:,.0f} s"


def _duration(value) -> str:
    if not isinstance(value, (int, float)):
        return "–"
    minutes, seconds = divmod(round(value), 60)
    return f"{_seconds(value)} ({minutes} min {seconds} s)" if minutes else _seconds(value)


class RunFiles:
    """What one run directory holds for the tables: its manifest, its stage 06 metrics and its summary."""

    def __init__(self, run_dir: str | Path):
        self.path = Path(run_dir)
        if not self.path.is_dir():
            raise InputError(f"{self.path}: not a run directory")
        self.manifest = read_json(self.path / "manifest.json", "not a run directory made by 'sif run'")
        probe = self.path / "metrics" / f"{PROBE_STAGE}.json"
        self.probe = ((read_json(probe, "") or {}).get("probe") or {}) if probe.is_file() else {}
        summary = self.path / "eval" / "summary.json"
        self.summary = read_json(summary, "") if summary.is_file() else {}
        self.holdout = self.summary.get("holdout") or {}
        self.ifeval = self.summary.get("ifeval") or {}
        self.ifbench = self.summary.get("ifbench") or {}
        key = reasoning_key(self.summary)
        self.math = ((self.summary.get("reasoning") or {}).get(key) or {}) if key else {}
        self.thinking = (self.summary.get("thinking") or {}).get("holdout") or {}
        self.degenerate = self.summary.get("degenerate") or {}
        self.clean = self.summary.get("clean") or {}


def provenance(paths: Sequence[Path], manifests: Sequence[dict], today: dt.date | None = None) -> str:
    """The line above a table: its run directories, their machine(s) and the dates they were made."""
    machines = sorted({", ".join(str(v) for v in ((m.get("platform") or {}).get(k) for k in
                                                   ("machine", "system")) if v)
                       + (f", Python {m['platform']['python']}" if (m.get("platform") or {}).get("python") else "")
                       for m in manifests} - {""})
    dates = sorted({str(m.get("created", ""))[:10] for m in manifests} - {""})
    made = (today or dt.date.today()).isoformat()
    return (f"Runs: {', '.join(f'`{p}`' for p in paths)}. Machine: {'; '.join(machines) or 'not recorded'} "
            f"(manifest.json). Run on {', '.join(dates) or 'an unrecorded date'}; table made {made} by `sif report`.")


def _before_after(before, after, delta=None, ci=None, flips=None) -> str:
    if not isinstance(before, (int, float)) or not isinstance(after, (int, float)):
        return "–"
    text = f"{percent(before)} → {percent(after)}"
    extra = []
    if isinstance(delta, (int, float)):
        extra.append(f"{100 * delta:+.1f}" + (f" [{100 * ci[0]:+.1f}, {100 * ci[1]:+.1f}]" if ci else ""))
    if flips and all(isinstance(flips.get(k), (int, float)) for k in ("gained", "lost", "sign_test_p")):
        extra.append(f"{flips['gained']} gained, {flips['lost']} lost; sign test p = {_p(flips['sign_test_p'])}")
    return text + (f" ({'; '.join(extra)})" if extra else "")


def demo_rows(runs: Sequence[RunFiles]) -> list[dict[str, str]]:
    """One row per figure, one column per run (the results document's demo table)."""
    names = [r.path.name for r in runs]
    rows: list[dict[str, str]] = []

    def add(label: str, value: Callable[[RunFiles], str]) -> None:
        rows.append({"": label, **{name: value(run) for name, run in zip(names, runs)}})

    for name in STAGE_NAMES:
        if stage(name).enabled_by and all(((r.manifest.get("stages") or {}).get(name) or {}).get("status")
                                          in (None, "skipped") for r in runs):
            continue  # an optional stage none of these runs ran
        def stage_time(run, name=name):
            record = (run.manifest.get("stages") or {}).get(name) or {}
            if record.get("status", "pending") != "ok":
                return record.get("status", "–" if stage(name).enabled_by else "pending")
            return _seconds(record.get("seconds")) + (" (reused)" if record.get("reused_from") else "")
        add(f"stage {name}", stage_time)
    add("total", lambda run: _duration(run.manifest.get("total_seconds")))

    def peak(run):
        stages = run.manifest.get("stages") or {}
        value = run.manifest.get("peak_rss_mb")
        if not isinstance(value, (int, float)) or not value:
            return "–"
        where = [n[:2] for n in STAGE_NAMES if (stages.get(n) or {}).get("peak_rss_mb") == value]
        return f"{value / 1024:.1f} GB" + (f" (stage {where[0]})" if where else "")
    add("peak memory", peak)
    add("GRPO probe: hard constraints satisfied, % (stage 06)",
        lambda run: _before_after((run.probe.get("before") or {}).get("hard_satisfaction"),
                                  (run.probe.get("after") or {}).get("hard_satisfaction"),
                                  flips=run.probe.get("hard_flips")))
    add("GRPO probe: degenerate answers, % (stage 06)", lambda run: _degenerate(run.probe.get("degenerate")))
    add("hold-out: hard constraints satisfied, % (stage 07)", lambda run: _figure(run.holdout, "hard"))
    n_prompts = " / ".join(sorted({str(r.ifeval.get("n_prompts", "?")) for r in runs}))
    for metric, label in IFEVAL_LABELS.items():
        add(f"{label}, % (n = {n_prompts} prompts)", lambda run, metric=metric: _figure(run.ifeval, metric))
    for name, label in ID_GROUP_LABELS.items():
        if any(dict(id_group_sections(r.ifeval)).get(name) for r in runs):
            add(f"IFEval instruction-level loose, {label}, %", lambda run, name=name: _id_group_cell(run.ifeval, name))
    n_ifbench = " / ".join(sorted({str(r.ifbench["n_prompts"]) for r in runs if r.ifbench}))
    for metric, label in (IFBENCH_LABELS.items() if n_ifbench else ()):
        add(f"{label}, % (n = {n_ifbench} prompts)",
            lambda run, metric=metric: _figure(run.ifbench, metric) if run.ifbench else "n/a")
    add("IFEval degenerate answers, % (lower is better)", lambda run: _degenerate(run.degenerate.get("ifeval")))
    if n_ifbench:
        add("IFBench degenerate answers, % (lower is better)",
            lambda run: _degenerate(run.degenerate.get("ifbench")) if run.degenerate.get("ifbench") else "n/a")
    add("hold-out degenerate answers, % (lower is better)", lambda run: _degenerate(run.degenerate.get("holdout")))
    add("IFEval instructions newly met (loose), by a degenerate answer",
        lambda run: gains_text((run.degenerate.get("ifeval") or {}).get("gains")))
    if n_ifbench:
        add("IFBench instructions newly met (loose), by a degenerate answer",
            lambda run: gains_text((run.degenerate.get("ifbench") or {}).get("gains")))
    add("IFEval instruction-level loose, clean prompts (neither answer degenerate), %",
        lambda run: _clean(run.clean.get("ifeval"), "inst_loose"))
    if n_ifbench:
        add("IFBench instruction-level loose, clean prompts (neither answer degenerate), %",
            lambda run: _clean(run.clean.get("ifbench"), "inst_loose") if run.clean.get("ifbench") else "n/a")
    add("hold-out hard constraints, clean prompts (neither answer degenerate), %",
        lambda run: _clean(run.clean.get("holdout"), "hard"))
    n_items = " / ".join(sorted({str(r.math.get("n", "?")) for r in runs if r.math}))
    if n_items:
        add(f"math, strict (\\boxed{{}}), % (n = {n_items} items)", lambda run: _accuracy(run.math))
    if any(run.math.get("flexible") for run in runs):
        add("math, flexible (the last number), %", lambda run: _accuracy(run.math.get("flexible") or {}))
    if any(run.thinking for run in runs):
        add("hold-out answers closing </think>, %", lambda run: _before_after(
            *(run.thinking.get(p, {}).get("closed_share") for p in ("base", "trained"))))
        add("hold-out mean thinking length, tokens (closed answers)", lambda run: _tokens(
            *(run.thinking.get(p, {}).get("mean_think_tokens") for p in ("base", "trained"))))
    return rows


def _accuracy(section: dict) -> str:
    """Before → after of a math accuracy entry (``{"base": {"accuracy"}, "trained": ..., "delta", ...}``)."""
    def part(name: str):
        return (section.get(name) or {}).get("accuracy")

    return _before_after(part("base"), part("trained"), section.get("delta"), section.get("delta_ci95"),
                         section.get("flips"))


def _degenerate(section: dict | None) -> str:
    """Base → trained share of degenerate answers, with the paired interval and the flips; "n/a" when absent."""
    if not section:
        return "n/a"
    sides = ("before", "after") if "before" in section else ("base", "trained")  # the probe's, or stage 07's
    before, after = (section.get(side) or {} for side in sides)
    text = _before_after(before.get("share"), after.get("share"), section.get("delta"), section.get("delta_ci95"))
    f = section.get("flips") or {}
    if text != "–" and all(isinstance(f.get(k), (int, float)) for k in ("became_degenerate", "became_clean",
                                                                          "sign_test_p")):
        flips = (f"{f['became_degenerate']} turned degenerate, {f['became_clean']} turned clean; sign test "
                 f"p = {_p(f['sign_test_p'])}")
        text = text[:-1] + f"; {flips})" if text.endswith(")") else f"{text} ({flips})"
    return text


def _clean(section: dict | None, key: str) -> str:
    """Before → after of a figure on the clean prompts, with its interval, flips and the prompts it covers."""
    if not section:
        return "n/a"
    return f"{_figure(section, key)}, {section.get('n_prompts', '?')} prompts"


def _tokens(before, after) -> str:
    if not isinstance(before, (int, float)) or not isinstance(after, (int, float)):
        return "–"
    return f"{before:.0f} → {after:.0f}"


def _id_group_cell(section: dict, name: str) -> str:
    """A group of instruction ids' loose accuracy, before → after, with how many ids and instructions it holds."""
    group = dict(id_group_sections(section)).get(name)
    if not group:
        return "n/a"
    return f"{_figure(group, 'inst_loose')}; {len(group['ids'])} ids, {group['n_instructions']} instructions"


def _figure(section: dict, key: str) -> str:
    """Before → after of one figure of a summary section (``ifeval``, ``holdout``), with its interval and flips."""
    def part(name: str):
        return (section.get(name) or {}).get(key)

    return _before_after(part("base"), part("trained"), part("delta"), part("delta_ci95"), part("flips"))


def demo_section(runs: Sequence[RunFiles], today: dt.date | None = None) -> list[str]:
    lines = ["### Per run", "", provenance([r.path for r in runs], [r.manifest for r in runs], today), ""]
    lines += md_table(demo_rows(runs))
    lines += ["", "Before → after (Δ in points [paired 95% bootstrap interval]; flips with the exact sign test). "
              "A reused stage was copied from another run: its time, and the total, are that run's."]
    return lines


def seeds_section(run_dirs: Sequence[Path], runs: Sequence[RunFiles], today: dt.date | None = None) -> list[str]:
    """The settings across seeds and the paired tests between them (every run needs ``eval/summary.json``)."""
    settings = replicates.group_settings([load_run(d) for d in run_dirs])
    lines = ["### Settings across seeds", "", provenance([r.path for r in runs], [r.manifest for r in runs], today),
             "", "Mean ± sample standard deviation (n runs); after in percent, Δ (after − before) in points "
             "with the t-based 95% interval of its mean [low, high] over the runs.", ""]
    lines += [f"- {line}" for line in replicates.legend_lines(settings)] + [""]
    lines += md_table(replicates.settings_rows(settings))
    for reference, other in replicates.comparisons(settings):
        lines += ["", replicates.paired_heading(reference, other), ""]
        lines += md_table(replicates.paired_rows(reference, other))
    return lines


def markdown_report(run_dirs: Sequence[str | Path], today: dt.date | None = None) -> str:
    if not run_dirs:
        raise InputError("report: name at least one run directory")
    paths = [Path(d) for d in run_dirs]
    runs = [RunFiles(p) for p in paths]
    lines = demo_section(runs, today)
    if len(runs) > 1:
        lines += [""] + seeds_section(paths, runs, today)
    return "\n".join(lines) + "\n"


def write_markdown_report(run_dirs: Sequence[str | Path], output: str | Path | None = None,
                          echo: Callable[[str], None] = print) -> str:
    """Print the Markdown, or write it to ``output``; returns it."""
    text = markdown_report(run_dirs)
    if output:
        atomic_write_text(Path(output), text)
        echo(f"wrote {output}")
    else:
        echo(text.rstrip("\n"))
    return text
