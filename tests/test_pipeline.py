"""The runner end to end: bad input exits with one line; the smoke pipeline runs all seven notebooks."""

import json

import nbformat
import pytest

from conftest import REPO, run_sif
from sif_lib.runs import STAGES


def _one_line_error(proc):
    assert proc.returncode != 0
    lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    return lines[0]


def test_missing_params_file(tmp_path):
    line = _one_line_error(run_sif("run", str(tmp_path / "missing.yaml"), "--outputs", str(tmp_path)))
    assert "missing.yaml" in line and "not found" in line


def test_misspelled_key(tmp_path):
    bad = tmp_path / "typo.yaml"
    bad.write_text("grpo:\n  curiculum: mixed\n")
    line = _one_line_error(run_sif("run", str(bad), "--outputs", str(tmp_path)))
    assert "typo.yaml" in line and "grpo.curiculum" in line
    assert not any(tmp_path.glob("*/manifest.json"))


def test_model_path_that_does_not_exist(tmp_path):
    bad = tmp_path / "nomodel.yaml"
    bad.write_text("model:\n  policy: /no/such/model\n")
    line = _one_line_error(run_sif("run", str(bad), "--outputs", str(tmp_path)))
    assert "model.policy" in line and "/no/such/model" in line


def test_every_notebook_is_thin_and_clean():
    for stage in STAGES:
        nb = nbformat.read(REPO / "notebooks" / f"{stage}.ipynb", as_version=4)
        tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
        assert len(tagged) == 1, stage
        assert nb.cells[0].cell_type == "markdown" and len(nb.cells[0].source) > 200, stage
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert not cell.outputs and cell.execution_count is None, stage


@pytest.mark.slow
def test_smoke_run_writes_every_stage(smoke_run):
    manifest = json.loads((smoke_run / "manifest.json").read_text())
    assert manifest["run_id"] == "smoke"
    assert manifest["params"]["model"]["policy"] == "tiny"
    assert {"torch", "transformers", "trl"} <= set(manifest["versions"])
    for stage in STAGES:
        record = manifest["stages"][stage]
        assert record["status"] == "ok", (stage, record)
        assert record["seconds"] > 0 and record["start"] <= record["end"]
        assert (smoke_run / "notebooks" / f"{stage}.ipynb").is_file()
        metrics = json.loads((smoke_run / "metrics" / f"{stage}.json").read_text())
        # Each stage's own kernel peak, as the kernel recorded it with its metrics.
        assert record["peak_rss_mb"] == metrics["peak_rss_mb"] > 50
    assert manifest["peak_rss_mb"] == max(manifest["stages"][s]["peak_rss_mb"] for s in STAGES)


@pytest.mark.slow
def test_from_stage_reuses_earlier_stages(smoke_run, smoke_outputs):
    before = json.loads((smoke_run / "manifest.json").read_text())["stages"]
    kept = {p: p.stat().st_mtime_ns for p in (smoke_run / "data").rglob("*") if p.is_file()}
    kept.update({p: p.stat().st_mtime_ns for p in (smoke_run / "rm").rglob("*") if p.is_file()})
    run_sif("run", "params/smoke.yaml", "--from", "05_score_rewards", "--run-id", "smoke",
            "--outputs", str(smoke_outputs), check=True)
    after = json.loads((smoke_run / "manifest.json").read_text())["stages"]
    for stage in STAGES[:4]:
        assert after[stage] == before[stage], stage
    for stage in STAGES[4:]:
        assert after[stage]["status"] == "ok" and after[stage]["start"] >= before[stage]["start"]
    assert {p: p.stat().st_mtime_ns for p in kept} == kept


def test_failing_stage_is_marked_and_stops(tmp_path):
    # Stage 02 without stage 01's data fails; the manifest says so and later stages never start.
    proc = run_sif("run", "params/smoke.yaml", "--only", "02_decompose_curriculum", "--run-id", "broken",
                   "--outputs", str(tmp_path))
    assert proc.returncode == 1
    manifest = json.loads((tmp_path / "broken" / "manifest.json").read_text())
    assert manifest["stages"]["02_decompose_curriculum"]["status"] == "failed"
    assert manifest["stages"]["02_decompose_curriculum"]["error"]
    assert manifest["stages"]["03_generate_pseudo_labels"]["status"] == "pending"
