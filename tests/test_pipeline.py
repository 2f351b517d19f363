"""The runner end to end: bad input exits with one line; the smoke pipeline runs all seven notebooks and records
the optional cold start (stage 00) as skipped."""

import json

import nbformat
import pytest
from conftest import REPO, run_sif

from sif_lib.core.errors import InputError
from sif_lib.runner.stage_table import STAGE_NAMES

COLD_START, STAGES = STAGE_NAMES[0], STAGE_NAMES[1:]  # the optional stage 00, and the seven every run runs


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
    """Each notebook: a markdown account first, one parameters cell, no saved outputs, and code that only calls
    its stage module (named in the stage table) and displays: no loops, functions, classes or data handling."""
    import ast

    from sif_lib.runner.stage_table import STAGES as TABLE

    for entry in TABLE:
        nb = nbformat.read(REPO / "notebooks" / entry.notebook, as_version=4)
        # nbformat.read quietly renames repeated ids, so read them from the file itself.
        ids = [c.get("id") for c in json.loads((REPO / "notebooks" / entry.notebook).read_text())["cells"]]
        assert len(set(ids)) == len(ids), (entry.name, "cell ids must be unique")
        nbformat.validate(nb)
        tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
        assert len(tagged) == 1, entry.name
        assert nb.cells[0].cell_type == "markdown" and len(nb.cells[0].source) > 200, entry.name
        code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert not cell.outputs and cell.execution_count is None, entry.name
        tree = ast.parse(code)
        logic = [type(n).__name__ for n in ast.walk(tree)
                 if isinstance(n, (ast.For, ast.While, ast.FunctionDef, ast.ClassDef, ast.Lambda, ast.ListComp,
                                   ast.DictComp, ast.With, ast.Try))]
        assert not logic, (entry.name, logic)
        imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        assert imported <= {"IPython.display"} | {m for m in imported if m.startswith("sif_lib")}, entry.name
        package, _, module = entry.module.rpartition(".")
        assert f"from {package} import {module} as stage" in code, entry.name


@pytest.mark.slow
def test_base_answer_caches_name_the_sets_a_run_writes(smoke_run, tmp_path):
    """--reuse copies the base policy's answers by folder pattern; the patterns must find what stages 06 and 07
    really write, or seed runs silently answer again."""
    from sif_lib.policy.answers import BASE_ANSWER_CACHES, copy_answer_caches

    copied = copy_answer_caches(smoke_run, tmp_path, BASE_ANSWER_CACHES)
    assert "grpo/probe_before" in copied
    assert {"eval/ifeval_base", "eval/holdout_base"} <= set(copied), copied
    assert any(c.startswith("eval/math_") for c in copied), copied


@pytest.mark.slow
def test_smoke_run_writes_every_stage(smoke_run):
    manifest = json.loads((smoke_run / "manifest.json").read_text())
    assert manifest["run_id"] == "smoke"
    assert manifest["params"]["model"]["policy"] == "tiny"
    assert {"torch", "transformers", "trl"} <= set(manifest["versions"])
    skipped = manifest["stages"][COLD_START]  # smoke.yaml leaves cold_start.enabled false: no kernel started
    assert skipped["status"] == "skipped" and skipped["reason"] == "cold_start.enabled is false", skipped
    assert not (smoke_run / "notebooks" / f"{COLD_START}.ipynb").exists()
    assert not (smoke_run / "metrics" / f"{COLD_START}.json").exists()
    for stage in STAGES:
        record = manifest["stages"][stage]
        assert record["status"] == "ok", (stage, record)
        assert record["seconds"] > 0 and record["start"] <= record["end"]
        assert (smoke_run / "notebooks" / f"{stage}.ipynb").is_file()
        log = smoke_run / "logs" / f"{stage}.log"  # the stage's own output, under a header naming it
        assert log.is_file() and log.stat().st_size > 0 and log.read_text().startswith(f"===== {stage} started")
        metrics = json.loads((smoke_run / "metrics" / f"{stage}.json").read_text())
        # Each stage's own kernel peak, as the kernel recorded it with its metrics.
        assert record["peak_rss_mb"] == metrics["peak_rss_mb"] > 50
    assert manifest["peak_rss_mb"] == max(manifest["stages"][s]["peak_rss_mb"] for s in STAGES)
    # The effective GRPOConfig, as the trainer got it, is part of the record.
    grpo_config = manifest["stages"]["06_train_grpo"]["grpo_config"]
    assert grpo_config["loss_type"] == "dapo" and grpo_config["beta"] == 0.0 and grpo_config["max_steps"] == 2
    assert grpo_config == json.loads((smoke_run / "grpo" / "grpo_config.json").read_text())


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


def test_set_overrides_parse_as_yaml_values():
    from sif_lib.core.errors import InputError
    from sif_lib.runner.pipeline import parse_overrides

    assert parse_overrides(["grpo.max_steps=4", "grpo.repetitive_penalty=0.5", "model.system_prompt=null",
                            "synthesis.hard_ids=[punctuation:no_comma]"]) == {
        "grpo": {"max_steps": 4, "repetitive_penalty": 0.5}, "model": {"system_prompt": None},
        "synthesis": {"hard_ids": ["punctuation:no_comma"]}}
    from sif_lib.config.params import load_params
    assert load_params(REPO / "params" / "smoke.yaml",
                       overrides=parse_overrides(["grpo.curriculum=off"])).grpo.curriculum == "off"
    for bad in ("grpo.max_steps", "max_steps=4", "grpo.lora.r=4", "grpo.x=[1,"):
        with pytest.raises(InputError, match="--set"):
            parse_overrides([bad])


def test_set_is_validated_kept_in_the_manifest_and_applied_on_resume(tmp_path):
    line = _one_line_error(run_sif("run", "params/smoke.yaml", "--set", "grpo.max_step=3", "--outputs", str(tmp_path)))
    assert "grpo.max_step" in line and "overrides" in line
    run_sif("run", "params/smoke.yaml", "--only", "01_synthesize_constraints", "--run-id", "r",
            "--set", "grpo.max_steps=3", "--outputs", str(tmp_path), check=True)
    proc = run_sif("run", "params/smoke.yaml", "--only", "01_synthesize_constraints", "--run-id", "r",
                   "--outputs", str(tmp_path), check=True)
    assert "applying this run's earlier --set overrides" in proc.stdout
    manifest = json.loads((tmp_path / "r" / "manifest.json").read_text())
    assert manifest["overrides"] == {"grpo": {"max_steps": 3}} and manifest["params"]["grpo"]["max_steps"] == 3
    assert "max_steps: 3" in (tmp_path / "r" / "params.yaml").read_text()


# What each stage of a run records having read (a few of the fields a real run records).
READS = {STAGES[0]: ["run.seed", "synthesis.n_instructions", "evaluation.math_items"], STAGES[1]: [],
         STAGES[2]: ["model.policy", "rollouts.max_new_tokens"], STAGES[3]: ["reward_model.epochs"],
         STAGES[4]: ["scoring.n_groups"]}


def _fake_run(root, params, status="ok", reads=True):
    root.mkdir(parents=True)
    stages = {stage: {"status": status if stage == STAGES[2] else "ok",
                      **({"params_read": READS.get(stage, [])} if reads else {})} for stage in STAGES}
    (root / "manifest.json").write_text(json.dumps({"params": params, "stages": stages}))
    return root


def test_reuse_refuses_other_params_or_unfinished_stages(tmp_path):
    from sif_lib.config.params import load_params

    smoke = load_params(REPO / "params" / "smoke.yaml").to_dict()
    line = _one_line_error(run_sif("run", "params/smoke.yaml", "--reuse", str(tmp_path), "--outputs", str(tmp_path)))
    assert "--reuse needs --from" in line
    changed = json.loads(json.dumps(smoke))
    changed["rollouts"]["max_new_tokens"] += 1
    source = _fake_run(tmp_path / "other", changed)
    line = _one_line_error(run_sif("run", "params/smoke.yaml", "--reuse", str(source), "--from", "06_train_grpo",
                                   "--run-id", "new", "--outputs", str(tmp_path)))
    assert "'rollouts.max_new_tokens' differs" in line and "03_generate_pseudo_labels" in line
    # From stage 03 on, the rollouts section is this run's own: only stages 01-02 are reused, and they match.
    # A run made before stages recorded their reads: every field must match.
    old = _fake_run(tmp_path / "old", changed, reads=False)
    line = _one_line_error(run_sif("run", "params/smoke.yaml", "--reuse", str(old), "--from", "06_train_grpo",
                                   "--run-id", "new", "--outputs", str(tmp_path)))
    assert "'rollouts.max_new_tokens' differs" in line and "01_synthesize_constraints" in line
    failed = _fake_run(tmp_path / "failed", smoke, status="failed")
    line = _one_line_error(run_sif("run", "params/smoke.yaml", "--reuse", str(failed), "--from", "06_train_grpo",
                                   "--run-id", "new", "--outputs", str(tmp_path)))
    assert "03_generate_pseudo_labels is failed" in line
    assert not (tmp_path / "new").exists()


@pytest.mark.slow
def test_reuse_compares_the_fields_each_stage_read(smoke_run, smoke_outputs):
    """Stage 01 reads evaluation.math_items (it writes the held-out math items): a run that changes it cannot
    reuse stage 01, whatever section the field sits in. A field no reused stage read is free to change."""
    line = _one_line_error(run_sif("run", "params/smoke.yaml", "--reuse", str(smoke_run), "--from", "06_train_grpo",
                                   "--run-id", "math", "--set", "evaluation.math_items=3",
                                   "--outputs", str(smoke_outputs)))
    assert "'evaluation.math_items' differs" in line and "01_synthesize_constraints read" in line
    assert not (smoke_outputs / "math").exists()
    record = json.loads((smoke_run / "manifest.json").read_text())["stages"]["01_synthesize_constraints"]
    assert "evaluation.math_items" in record["params_read"] and "evaluation.limit" not in record["params_read"]


@pytest.mark.slow
def test_reuse_copies_the_earlier_stages_into_a_new_run(smoke_run, smoke_outputs):
    source_manifest = (smoke_run / "manifest.json").read_text()
    run_sif("run", "params/smoke.yaml", "--reuse", str(smoke_run), "--from", "07_evaluate", "--run-id", "ablation",
            "--set", "evaluation.limit=3", "--outputs", str(smoke_outputs), check=True)
    new = smoke_outputs / "ablation"
    source = json.loads(source_manifest)
    manifest = json.loads((new / "manifest.json").read_text())
    assert manifest["reused_from"] == str(smoke_run.resolve())
    assert manifest["overrides"] == {"evaluation": {"limit": 3}}
    for stage in STAGES[:6]:
        assert manifest["stages"][stage] == {**source["stages"][stage], "reused_from": str(smoke_run.resolve())}
        assert ((new / "metrics" / f"{stage}.json").read_bytes()
                == (smoke_run / "metrics" / f"{stage}.json").read_bytes())
    for rel in ("data/curriculum.jsonl", "data/pseudo_labels.jsonl", "rm/config.json",
                "grpo/adapter/adapter_config.json"):
        assert (new / rel).read_bytes() == (smoke_run / rel).read_bytes(), rel
    assert manifest["stages"][COLD_START]["status"] == "skipped"
    assert manifest["stages"]["07_evaluate"]["status"] == "ok"
    assert json.loads((new / "eval" / "summary.json").read_text())["ifeval"]["n_prompts"] == 3
    assert (smoke_run / "manifest.json").read_text() == source_manifest  # the source run is untouched
    line = _one_line_error(run_sif("run", "params/smoke.yaml", "--reuse", str(smoke_run), "--from", "07_evaluate",
                                   "--run-id", "ablation", "--outputs", str(smoke_outputs)))
    assert "exists already" in line


def test_stage_selection():
    from sif_lib.runner.stage_table import select as select_stages

    assert select_stages(None, None) == list(STAGE_NAMES) == [COLD_START, *STAGES]
    assert select_stages(None, None, "05") == [COLD_START, *STAGES[:5]]
    assert select_stages("1", None, "05") == list(STAGES[:5])
    assert select_stages(None, "0") == select_stages(None, "cold_start") == [COLD_START]
    assert select_stages("03", None, "04_train_reward_model") == list(STAGES[2:4])
    assert select_stages(None, "2") == ["02_decompose_curriculum"]
    with pytest.raises(InputError, match="comes before"):
        select_stages("05", None, "03")
    with pytest.raises(InputError, match="--only cannot be combined"):
        select_stages(None, "02", "03")
