"""``sif compare``: the cross-run table and its HTML page.

The fast tests compare two runs built by ``test_evaluation.build_eval_run`` (hand-made data, a random LoRA
adapter as the trained policy). The second run is a copy of the first whose ``params.yaml`` is re-resolved with
``grpo.soft_reward: binary`` and ``evaluation.limit: 4`` before stage 07 is rerun on it. Only the evaluation
really changes (fewer IFEval prompts); the soft-reward switch is a relabelling that lets the test check how an
ablation is named and matched with the paper's Table 5, not a real ablation. The slow test compares the real
smoke run with a copy re-evaluated by the pipeline (``sif run --only 07``) on a different IFEval subset.
"""

from __future__ import annotations

import json
import re
import shutil

import pytest
import yaml
from conftest import REPO, require_shared, run_sif
from test_evaluation import build_eval_run

from sif_lib.core.errors import InputError
from sif_lib.runner.runs import RunContext


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    require_shared()
    from sif_lib.stages.s07_evaluate import run as run_evaluation_stage

    root = tmp_path_factory.mktemp("compare")
    first = build_eval_run(root / "ref")
    run_evaluation_stage(first, echo=lambda _: None)
    shutil.copytree(first.root, root / "binary")
    second = RunContext.open(root / "binary", root / "binary" / "params.yaml",
                             overrides={"grpo": {"soft_reward": "binary"}, "evaluation": {"limit": 4}})
    run_evaluation_stage(second, echo=lambda _: None)
    return first, second


def _summary(ctx):
    return json.loads((ctx.root / "eval" / "summary.json").read_text())


def test_table_and_html(two_runs, tmp_path):
    from sif_lib.analysis.compare_runs import compare_runs
    from sif_lib.evaluation.report import plotly_bundle_marker

    first, second = two_runs
    printed: list[str] = []
    out = compare_runs([first.root, second.root], output=tmp_path / "cmp.html", echo=printed.append)
    assert out == tmp_path / "cmp.html"
    table = printed[0].splitlines()
    header = re.split(r"\s{2,}", table[0])
    assert header[:7] == ["run", "model", "curriculum", "soft_reward", "hard_reward", "finetune", "steps"]
    assert "other params" in header and "Pr(L) vs ref" in header
    ref, binary = table[2], table[3]
    assert ref.startswith("ref ") and binary.startswith("binary ")
    assert "probability" in ref and "binary" in binary.split("binary", 1)[1]
    assert "binary soft reward: -1.8" in binary  # the paper's Table 5 figure for this switch
    assert "evaluation.limit=6" in ref and "evaluation.limit=4" in binary

    a, b = _summary(first), _summary(second)
    expected = 100 * (b["ifeval"]["trained"]["prompt_loose"] - a["ifeval"]["trained"]["prompt_loose"])
    assert f"{expected:+.1f}" in binary
    cell = (f"{100 * b['ifeval']['base']['inst_loose']:.1f} → {100 * b['ifeval']['trained']['inst_loose']:.1f} "
            f"({100 * (b['ifeval']['trained']['inst_loose'] - b['ifeval']['base']['inst_loose']):+.1f})")
    assert cell in binary

    # Degenerate shares and the clean gain stand beside the IFEval and hold-out figures.
    assert {"degenerate IFEval", "degenerate hold-out", "clean Ins(L)", "clean hold-out hard"} <= set(header)
    d = b["degenerate"]["holdout"]
    assert (f"{100 * d['base']['share']:.1f} → {100 * d['trained']['share']:.1f} "
            f"({100 * (d['trained']['share'] - d['base']['share']):+.1f})") in binary

    page = out.read_text()
    assert plotly_bundle_marker() in page and page.count("Plotly.newPlot") == 2
    assert "<th>clean Ins(L)</th>" in page
    assert "binary soft reward: -1.8" in page and "<td>ref</td>" in page
    assert not re.findall(r'<script[^>]*\ssrc="https?://', page)


def test_default_output_goes_under_outputs(two_runs, monkeypatch, tmp_path):
    from sif_lib.analysis import compare_runs

    monkeypatch.chdir(tmp_path)  # runs and reports go to the current directory's outputs/
    first, second = two_runs
    out = compare_runs.compare_runs([first.root, second.root], echo=lambda _: None)
    assert out.parent == tmp_path / "outputs" and re.fullmatch(r"compare-\d{8}-\d{6}\.html", out.name)


def test_run_without_summary_is_named(two_runs, tmp_path):
    from sif_lib.analysis.compare_runs import compare_runs

    first, _ = two_runs
    bare = tmp_path / "not-evaluated"
    RunContext.open(bare, REPO / "params" / "smoke.yaml")
    with pytest.raises(InputError, match=r"not-evaluated/eval/summary.json.*07_evaluate"):
        compare_runs([first.root, bare], output=tmp_path / "x.html")


def test_cli(two_runs, tmp_path):
    first, second = two_runs
    out = tmp_path / "cli.html"
    proc = run_sif("compare", str(first.root), str(second.root), "--output", str(out), check=True)
    assert "binary soft reward: -1.8" in proc.stdout and out.is_file()
    proc = run_sif("compare", str(first.root), str(tmp_path / "nope"))
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "nope" in lines[0]


@pytest.mark.slow
def test_smoke_runs(smoke_run, tmp_path):
    """The smoke run against a copy of it re-evaluated by the pipeline on the first 4 IFEval prompts."""
    copy = tmp_path / "smoke-limit4"
    shutil.copytree(smoke_run, copy)
    params = yaml.safe_load((smoke_run / "params.yaml").read_text())
    params["evaluation"]["limit"] = 4
    params_file = tmp_path / "smoke-limit4.yaml"
    params_file.write_text(yaml.safe_dump(params))
    run_sif("run", str(params_file), "--run-id", copy.name, "--outputs", str(tmp_path), "--only", "07", check=True)
    assert json.loads((copy / "eval" / "summary.json").read_text())["ifeval"]["n_prompts"] == 4
    out = tmp_path / "cmp.html"
    proc = run_sif("compare", str(smoke_run), str(copy), "--output", str(out), check=True)
    assert "evaluation.limit=8" in proc.stdout and "evaluation.limit=4" in proc.stdout
    assert out.read_text().count("Plotly.newPlot") == 2
