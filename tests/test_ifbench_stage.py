"""Stage 07 with ``evaluation.ifbench`` on: base and trained answer IFBench prompts with IFEval's greedy decoding,
the answers are scored as ``sif ifbench score --skip-unavailable`` scores them, and the figures, with their paired
intervals and flips, reach ``summary.json``, ``summary.md`` (the table ``report.html`` shows), ``sif report`` and
``sif compare``.

The run is ``test_evaluation.build_eval_run``'s (the tiny model, a random LoRA adapter as the trained policy),
evaluated on five IFBench prompts: three ordinary ones, one whose only instruction is ``words:start_verb`` and one
that pairs it with another. Without NLTK's tagger data (never downloaded) ``words:start_verb`` cannot be checked:
the first of those prompts is left out and the second scored on its other instruction, both counted.
"""

from __future__ import annotations

import json
import shlex
import shutil

import pytest
from conftest import REPO, SHARED, SMOKE, require_shared
from test_evaluation import EVAL_OVERRIDES, build_eval_run

from sif_lib.constraints.ifbench import missing_resources
from sif_lib.core.errors import InputError
from sif_lib.core.io import read_jsonl, write_jsonl

IFBENCH_TEST = SHARED / "benchmarks" / "ifbench" / "IFBench_test.jsonl"
METRICS = ("prompt_strict", "inst_strict", "prompt_loose", "inst_loose")
CHOSEN = ("0", "1", "2", "257", "262")  # 257: words:start_verb alone; 262: with count:person_names


def _require_ifbench() -> list[dict]:
    require_shared()
    if not IFBENCH_TEST.is_file():
        pytest.skip(f"{IFBENCH_TEST} is absent: the IFBench data lives in ../shared beside the checkout")
    return read_jsonl(IFBENCH_TEST)


@pytest.fixture(scope="module")
def ifbench_run(tmp_path_factory):
    """A built run on which stage 07 ran once with IFBench on; returns (ctx, summary, log lines)."""
    rows = {row["key"]: row for row in _require_ifbench()}
    from sif_lib.stages.s07_evaluate import run as run_evaluation_stage

    root = tmp_path_factory.mktemp("ifbench")
    subset = root / "ifbench_subset.jsonl"
    write_jsonl(subset, [rows[key] for key in CHOSEN])
    overrides = {"evaluation": {**EVAL_OVERRIDES["evaluation"], "ifbench": True, "ifbench_path": str(subset)}}
    ctx = build_eval_run(root / "run", overrides)
    log: list[str] = []
    summary = run_evaluation_stage(ctx, echo=log.append)
    return ctx, summary, log


def test_ifbench_is_off_by_default_and_its_limit_is_checked(tmp_path):
    from sif_lib.config.params import load_params
    from sif_lib.evaluation.benchmarks import IFBenchTask

    _require_ifbench()
    assert load_params(SMOKE).evaluation.ifbench is False and IFBenchTask.load(load_params(SMOKE), tmp_path) is None
    assert load_params(REPO / "params" / "cpu_full.yaml").evaluation.ifbench is True

    def params(**evaluation):
        return load_params(SMOKE, {"evaluation": {"ifbench": True, "ifbench_path": str(IFBENCH_TEST), **evaluation}})

    task = IFBenchTask.load(params(ifbench_limit=3), tmp_path)
    assert [r["key"] for r in task.rows] == ["0", "1", "2"] and task.left_out["prompts"] == 0
    assert read_jsonl(tmp_path / "ifbench_input_data.jsonl") == task.rows
    with pytest.raises(InputError, match="evaluation.ifbench_limit"):
        IFBenchTask.load(params(ifbench_limit=0), tmp_path)
    with pytest.raises(InputError, match="evaluation.ifbench_path.*not found"):
        IFBenchTask.load(params(ifbench_path=str(tmp_path / "nope.jsonl")), tmp_path)


def test_stage_scores_ifbench_with_intervals_and_flips(ifbench_run):
    ctx, summary, log = ifbench_run
    assert "scoring IFBench" in log
    ifbench = summary["ifbench"]
    assert json.loads((ctx.root / "eval" / "summary.json").read_text())["ifbench"] == ifbench
    # What cannot be checked here is left out and counted, as --skip-unavailable does.
    unavailable = missing_resources(["words:start_verb"])
    if unavailable:
        assert ifbench["left_out"] == {"prompts": 1, "instructions": {"words:start_verb": 2},
                                       "reasons": unavailable}
        assert ifbench["n_prompts"] == 4 and "--skip-unavailable" in ifbench["trained"]["rescore"]
    else:
        assert ifbench["left_out"]["prompts"] == 0 and ifbench["n_prompts"] == 5
    n = ifbench["n_prompts"]
    # The same greedy decoding as IFEval, and the answers cached per policy beside IFEval's.
    assert summary["decoding"]["ifbench"] == summary["decoding"]["ifeval"]
    for name in ("base", "trained"):
        folder = ctx.root / "eval" / f"ifbench_{name}"
        assert len(read_jsonl(folder / "generations.jsonl")) == n
        assert summary["generation"][name]["ifbench"]["n_prompts"] == n
        figures = ifbench[name]
        assert figures["n_prompts"] == n
        assert figures["n_instructions"] == 6 - (2 if unavailable else 0)
        assert figures["prompt_loose"] >= figures["prompt_strict"] and figures["inst_loose"] >= figures["inst_strict"]
        scored = read_jsonl(folder / "eval_results_strict.jsonl")
        assert figures["prompt_strict"] == pytest.approx(sum(r["follow_all_instructions"] for r in scored) / n)
        assert all("words:start_verb" not in r["instruction_id_list"] for r in scored) or not unavailable
    for metric in METRICS:
        low, high = ifbench["delta_ci95"][metric]
        assert low <= ifbench["delta"][metric] + 1e-9 and ifbench["delta"][metric] <= high + 1e-9
    flips = ifbench["flips"]["prompt_strict"]
    assert flips["paired"] == n and flips["gained"] - flips["lost"] == round(n * ifbench["delta"]["prompt_strict"])


def test_ifbench_answers_get_degenerate_and_clean_figures(ifbench_run):
    """IFBench gets what IFEval gets: the degenerate share base against trained, and the headline figures on the
    prompts where neither answer is degenerate, in summary.json, summary.md, the table and sif report."""
    from sif_lib.analysis.markdown_tables import markdown_report
    from sif_lib.constraints.degenerate import is_degenerate
    from sif_lib.evaluation.report import summary_rows

    ctx, summary, _ = ifbench_run
    n = summary["ifbench"]["n_prompts"]
    degenerate, clean = summary["degenerate"]["ifbench"], summary["clean"]["ifbench"]
    rows = read_jsonl(ctx.root / "eval" / "ifbench_input_data.jsonl")
    flags = {}
    for name in ("base", "trained"):
        answers = [r["response"]
                   for r in read_jsonl(ctx.root / "eval" / f"ifbench_{name}" / "eval_results_loose.jsonl")]
        flags[name] = [is_degenerate(a, [{"id": i, "kwargs": kw or {}} for i, kw in
                                         zip(row["instruction_id_list"], row["kwargs"])])
                       for a, row in zip(answers, rows)]
        assert degenerate[name]["n"] == n and degenerate[name]["degenerate"] == sum(flags[name])
    kept = sum(not (b or t) for b, t in zip(flags["base"], flags["trained"]))
    assert clean["n_prompts"] == kept and clean["n_excluded"] == n - kept
    assert summary["degenerate"]["gallery"]["ifbench"] == sum(
        row["set"] == "ifbench" for row in read_jsonl(ctx.root / "eval" / "degenerate_gallery.jsonl"))
    table = {row["benchmark"]: row for row in summary_rows(summary)}
    assert f"Degenerate answers, IFBench (share; lower is better) (n={n})" in table
    assert table[f"IFBench instruction-level loose (n={n})"]["clean prompts: base → trained (n)"].endswith(
        f"(n={kept})") or kept == 0
    (ctx.root / "manifest.json").write_text(json.dumps({"run_id": ctx.root.name, "stages": {}}))
    report = markdown_report([ctx.root])
    assert "| IFBench degenerate answers, % (lower is better) |" in report
    assert "| IFBench instruction-level loose, clean prompts (neither answer degenerate), % |" in report


def test_rescore_command_reproduces_the_summary(ifbench_run, tmp_path):
    from sif_lib.cli import main

    ctx, summary, _ = ifbench_run
    for name in ("base", "trained"):
        argv = shlex.split(summary["ifbench"][name]["rescore"])[1:]
        argv[argv.index("--output-dir") + 1] = str(tmp_path / name)
        assert main(argv) == 0
        scores = json.loads((tmp_path / name / "scores.json").read_text())
        figures = summary["ifbench"][name]
        assert (scores["strict"]["prompt_level"], scores["loose"]["instruction_level"]) == \
               (figures["prompt_strict"], figures["inst_loose"])
        assert ((tmp_path / name / "eval_results_loose.jsonl").read_text()
                == (ctx.root / "eval" / f"ifbench_{name}" / "eval_results_loose.jsonl").read_text())


def test_rerun_reuses_the_ifbench_answers(ifbench_run):
    from sif_lib.stages.s07_evaluate import run as run_evaluation_stage

    ctx, summary, _ = ifbench_run
    log: list[str] = []
    again = run_evaluation_stage(ctx, echo=log.append)
    assert not any("loaded" in line for line in log), log
    assert sum("ifbench" in line and "reusing" in line for line in log) == 2
    assert again["ifbench"] == summary["ifbench"]


def test_summary_table_report_and_compare_show_ifbench(ifbench_run, tmp_path):
    from sif_lib.analysis.compare_runs import compare_runs
    from sif_lib.analysis.markdown_tables import markdown_report
    from sif_lib.evaluation.report import summary_rows

    ctx, summary, _ = ifbench_run
    ifbench = summary["ifbench"]
    cell = lambda metric: f"{100 * ifbench['base'][metric]:.1f} → {100 * ifbench['trained'][metric]:.1f}"  # noqa: E731
    # The before/after table of summary.md and report.html.
    rows = {row["benchmark"]: row for row in summary_rows(summary)}
    row = rows[f"IFBench prompt-level loose, Pr(L) (n={ifbench['n_prompts']})"]
    assert row["base"] == f"{100 * ifbench['base']['prompt_loose']:.1f}" and row["Δ points"].startswith(
        f"{100 * ifbench['delta']['prompt_loose']:+.1f} [")
    md = (ctx.root / "eval" / "summary.md").read_text()
    assert "IFBench instruction-level strict" in md and "IFBench prompts, loose:" in md
    assert ("IFBench left out: 2 words:start_verb instructions" in md) == bool(ifbench["left_out"]["instructions"])

    # sif report: the four IFBench figures with their intervals; "n/a" for a run without IFBench.
    other = tmp_path / "no-ifbench"
    shutil.copytree(ctx.root, other)
    plain = json.loads((other / "eval" / "summary.json").read_text())
    del plain["ifbench"], plain["degenerate"]["ifbench"], plain["clean"]["ifbench"]
    (other / "eval" / "summary.json").write_text(json.dumps(plain))
    for run_dir in (ctx.root, other):
        (run_dir / "manifest.json").write_text(json.dumps({"run_id": run_dir.name, "stages": {}}))
    lines = markdown_report([ctx.root, other]).splitlines()
    row = next(line for line in lines if line.startswith("| IFBench prompt-level strict, %"))
    assert f"| {cell('prompt_strict')} (" in row and row.rstrip(" |").endswith("n/a")

    printed: list[str] = []
    page = compare_runs([ctx.root, other], output=tmp_path / "cmp.html", echo=printed.append).read_text()
    header, first, second = (printed[0].splitlines()[i] for i in (0, 2, 3))
    assert "IFBench n" in header and "IFBench Pr(L)" in header
    assert cell("prompt_loose") in first and "n/a" in second
    assert "IFBench (out-of-distribution constraints)" in page and page.count("Plotly.newPlot") == 3
