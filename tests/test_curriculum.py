"""Stage 02: ladders are exact prefixes, level counts follow the paper's definition, notebooks 01-02 run."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import REPO

from sif_lib.config.params import load_params
from sif_lib.core.errors import InputError
from sif_lib.core.io import read_jsonl
from sif_lib.runner.runs import RunContext
from sif_lib.stages import s01_synthesize_constraints as s01
from sif_lib.stages import s02_decompose_curriculum as s02
from sif_lib.synthesis import curriculum
from sif_lib.synthesis import instructions as synth
from sif_lib.synthesis.seeds import load_seeds

CPU_DEMO = REPO / "params" / "cpu_demo.yaml"


@pytest.fixture(scope="module")
def demo():
    instructions, _ = s01.synthesize(load_params(CPU_DEMO), load_seeds())
    return instructions, curriculum.build_curriculum(instructions)


def test_every_level_holds_exactly_the_first_k_constraints(demo):
    instructions, rows = demo
    parents = {r["id"]: r for r in instructions}
    assert len(rows) == sum(r["n_constraints"] + 1 for r in instructions)
    for row in rows:
        parent = parents[row["parent"]]
        k = row["level"]
        assert set(row) == {"id", "parent", "level", "n_constraints", "constraints", "prompt", "seed_prompt", "split"}
        assert row["id"] == f"{parent['id']}-L{k}"
        assert row["constraints"] == parent["constraints"][:k]
        assert row["n_constraints"] == parent["n_constraints"]
        assert row["seed_prompt"] == parent["seed"] and row["split"] == parent["split"]
        if k == 0:
            assert row["prompt"] == parent["seed"]
        else:
            assert row["prompt"] == synth.compose_prompt(parent["seed"],
                                                         [c["description"] for c in parent["constraints"][:k]])
        if k == parent["n_constraints"]:
            assert row["prompt"] == parent["prompt"]


def test_ladder_prompts_grow_by_one_sentence(demo):
    _, rows = demo
    ladder = [r for r in rows if r["parent"] == rows[-1]["parent"]]
    for lower, upper in zip(ladder, ladder[1:]):
        assert upper["prompt"].startswith(lower["prompt"])
        assert upper["prompt"].endswith(upper["constraints"][-1]["description"])


def test_level_stats_follow_the_papers_definition(demo):
    instructions, rows = demo
    stats = curriculum.level_stats(rows, "train")
    assert [s["level"] for s in stats] == ["L0", "L1", "L2", "L3", "L4", "L5"]
    train = [r for r in instructions if r["split"] == "train"]
    for s in stats[1:]:
        k = int(s["level"][1:])
        assert s["instructions"] == sum(r["n_constraints"] >= k for r in train)
        assert s["soft"] + s["hard"] == s["constraints"] == k * s["instructions"]
        assert s["hard"] == sum(c["kind"] == "hard" for r in train for c in r["constraints"][:k]
                                if r["n_constraints"] >= k)
        paper = curriculum.PAPER_TABLE1[k]
        assert (s["paper_instructions"], s["paper_soft"], s["paper_hard"]) == paper
        # The paper's own table obeys the same identity.
        assert paper[1] + paper[2] == k * paper[0]
    assert [s["instructions"] for s in stats[1:]] == [200, 160, 120, 80, 40]
    fig = s02.level_figure(stats)
    assert sum(sum(t.y) for t in fig.data[:2]) == sum(s["constraints"] for s in stats)
    assert "2,806" in s02.level_table_html(stats)


def test_stage_writes_jsonl_dataset_and_metrics(tmp_path):
    ctx = RunContext.open(tmp_path / "run", CPU_DEMO)
    with pytest.raises(InputError, match="01_synthesize_constraints"):
        s02.run(ctx)
    s01.run(ctx)
    metrics = s02.run(ctx)
    rows = read_jsonl(ctx.root / "data" / "curriculum.jsonl")
    assert metrics["rows"] == len(rows)
    assert metrics["rl_instruction_prompts"] == sum(r["level"] >= 1 and r["split"] == "train" for r in rows) == 600
    assert json.loads((ctx.root / "metrics" / "02_decompose_curriculum.json").read_text()) == metrics

    import datasets

    loaded = datasets.load_from_disk(str(ctx.root / "data" / "curriculum"))
    assert loaded["train"].num_rows + loaded["heldout"].num_rows == len(rows)
    assert loaded["train"][3]["id"] == rows[3]["id"]


def test_malformed_instruction_line_is_an_input_error(tmp_path):
    ctx = RunContext.open(tmp_path / "run", CPU_DEMO)
    path = ctx.path("data", "instructions.jsonl")
    path.write_text('{"id": "inst-00001", "seed": "Write.", "constraints": [], "split": "train"}\n{"id": "x"}\n')
    with pytest.raises(InputError, match=r"instructions.jsonl:2: missing key"):
        s02.run(ctx)


def test_notebooks_01_and_02_under_papermill(tmp_path):
    for stage in ("01_synthesize_constraints", "02_decompose_curriculum"):
        proc = subprocess.run([sys.executable, "-m", "sif_lib", "run", "params/smoke.yaml", "--run-id", "nb",
                               "--only", stage, "--outputs", str(tmp_path)],
                              cwd=REPO, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    run = tmp_path / "nb"
    for name in ("instructions.jsonl", "reasoning.jsonl", "curriculum.jsonl"):
        assert read_jsonl(run / "data" / name)
    for name in ("instructions", "curriculum"):
        assert (run / "data" / name / "dataset_dict.json").is_file()
    m1 = json.loads((run / "metrics" / "01_synthesize_constraints.json").read_text())
    m2 = json.loads((run / "metrics" / "02_decompose_curriculum.json").read_text())
    assert m1["instructions"] == {"train": 24, "heldout": 8}
    assert m2["levels_train"][1]["instructions"] == 24
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["stages"]["02_decompose_curriculum"]["status"] == "ok"
    # The kernel is another process (another string-hash seed): its data must equal an in-process run's.
    direct = RunContext.open(tmp_path / "direct", REPO / "params" / "smoke.yaml")
    s01.run(direct)
    s02.run(direct)
    for name in ("instructions.jsonl", "reasoning.jsonl", "curriculum.jsonl"):
        assert (run / "data" / name).read_bytes() == (direct.root / "data" / name).read_bytes()


def test_grpo_reasoning_share_trims_the_rl_set_without_touching_the_data(tmp_path):
    """The reasoning-mix ablation reuses stages 01-05: grpo.reasoning_share only selects, in GRPO, how many of
    stage 01's train math items join the RL set (0: none), at the share of the same instruction prompts."""
    from sif_lib.grpo.rl_set import load_rl_items

    ctx = RunContext.open(tmp_path / "run", CPU_DEMO)
    s01.run(ctx)
    s02.run(ctx)
    kinds = {}
    for share in (None, 0.0, 0.05):
        ctx = RunContext.open(tmp_path / "run", overrides={"grpo": {"reasoning_share": share}})
        items = load_rl_items(ctx)
        kinds[share] = sum(it["kind"] == "reasoning" for it in items), sum(it["kind"] == "instruction" for it in items)
        assert "grpo.reasoning_share" in ctx.params.reads()
    math_rows = [r for r in read_jsonl(tmp_path / "run" / "data" / "reasoning.jsonl") if r["split"] == "train"]
    assert kinds[None] == (len(math_rows), 600)  # cpu_demo's 15% of 600 instruction prompts: 106
    assert kinds[0.0] == (0, 600) and kinds[0.05] == (synth.reasoning_count(0.05, 600), 600) == (32, 600)
    with pytest.raises(InputError, match="grpo.reasoning_share"):
        load_params(CPU_DEMO, {"grpo": {"reasoning_share": 1.0}})
