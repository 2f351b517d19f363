"""Rollouts over curriculum ladders: ladder choice, one row per (prompt, sample), and resume after interruption."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import yaml
from conftest import REPO as REPO_ROOT

from sif_lib.core.errors import InputError
from sif_lib.core.io import read_jsonl, write_jsonl
from sif_lib.labels import rollouts
from sif_lib.policy.generation import ChatGenerator
from sif_lib.runner.runs import RunContext

HARD = {"id": "punctuation:no_comma", "kind": "hard", "category": "punctuation", "description": "Do not use commas.",
        "kwargs": {}}
LOWER = {"id": "change_case:english_lowercase", "kind": "hard", "category": "change_case",
         "description": "Write only lowercase letters.", "kwargs": {}}
SOFT = {"id": "tone:formal", "kind": "soft", "category": "Tone and emotion", "description": "Use a formal tone.",
        "kwargs": {}}
SOFT2 = {"id": "audience:children", "kind": "soft", "category": "Audience-specific",
         "description": "Write for a ten-year-old.", "kwargs": {}}


def ladder_rows(parent: str, seed: str, constraints: list[dict], split: str = "train") -> list[dict]:
    """Levels 0..n of one instruction, as stage 02 writes them."""
    return [{"id": f"{parent}-L{k}", "parent": parent, "level": k, "n_constraints": len(constraints),
             "constraints": constraints[:k],
             "prompt": " ".join([seed] + [c["description"] for c in constraints[:k]]),
             "seed_prompt": seed, "split": split} for k in range(len(constraints) + 1)]


def make_curriculum() -> list[dict]:
    return (ladder_rows("inst-00001", "Describe a lighthouse.", [SOFT, HARD])
            + ladder_rows("inst-00002", "Explain how rain forms.", [HARD])
            + ladder_rows("inst-00003", "Give advice on saving money.", [LOWER, SOFT, HARD])
            + ladder_rows("inst-00004", "Write about autumn.", [SOFT2, SOFT, LOWER], split="heldout")
            + ladder_rows("inst-00005", "Name three planets.", [SOFT2]))


def open_run(tmp_path: Path, name: str = "run", **rollout_overrides) -> RunContext:
    params = {"run": {"seed": 0, "device": "cpu", "dtype": "float32"}, "model": {"policy": "tiny"},
              "rollouts": {"max_ladders": 3, "samples_per_prompt": 2, "max_new_tokens": 6, "temperature": 0.7,
                           "batch_size": 4, **rollout_overrides}}
    params_file = tmp_path / f"{name}.yaml"
    params_file.write_text(yaml.safe_dump(params))
    ctx = RunContext.open(tmp_path / name, params_file)
    write_jsonl(ctx.path("data", "curriculum.jsonl"), make_curriculum())
    return ctx


class Counting:
    """Wraps a generator; records every prompt it is asked to answer."""

    def __init__(self, inner):
        self.inner, self.prompts = inner, []
        self.spec, self.backend, self.tokenizer = inner.spec, inner.backend, inner.tokenizer

    def generate(self, prompts, sampling, batch_size=16, on_batch=None):
        self.prompts.extend(prompts)
        return self.inner.generate(prompts, sampling, batch_size=batch_size, on_batch=on_batch)


class FailAfterFirstBatch(Counting):
    """Lets the first batch be written, then fails as a crash would."""

    def generate(self, prompts, sampling, batch_size=16, on_batch=None):
        def hook(start, outputs):
            on_batch(start, outputs)
            raise RuntimeError("interrupted")

        return super().generate(prompts, sampling, batch_size=batch_size, on_batch=hook)


@pytest.fixture(scope="module")
def tiny():
    return ChatGenerator("tiny", backend="hf", dtype="float32", device="cpu")


def keys(rows):
    return [(r["id"], r["sample"]) for r in rows]


# ---------------------------------------------------------------------------------------------------------------


def test_select_ladders_spreads_over_n_and_keeps_file_order():
    ladders = {}
    for i, n in enumerate([1, 1, 1, 1, 2, 3, 2], start=1):
        rows = ladder_rows(f"p{i}", "seed", [SOFT] * n)
        ladders[f"p{i}"] = rows
    ladders["h"] = ladder_rows("h", "seed", [SOFT] * 4, split="heldout")
    assert rollouts.select_ladders(ladders, 3) == ["p1", "p5", "p6"]  # one of each n, file order
    assert rollouts.select_ladders(ladders, 4) == ["p1", "p2", "p5", "p6"]
    assert rollouts.select_ladders(ladders, 5) == ["p1", "p2", "p5", "p6", "p7"]
    assert rollouts.select_ladders(ladders, -1) == [f"p{i}" for i in range(1, 8)]  # heldout never
    assert rollouts.select_ladders(ladders, 100) == [f"p{i}" for i in range(1, 8)]


def test_bad_curriculum_names_file_and_ladder(tmp_path):
    path = tmp_path / "curriculum.jsonl"
    rows = ladder_rows("p1", "seed", [SOFT, HARD])
    write_jsonl(path, rows[:1] + rows[2:])
    with pytest.raises(InputError, match=r"curriculum.jsonl: ladder p1 has levels \[0, 2\], expected 0..2"):
        rollouts.read_ladders(path)
    del rows[1]["parent"]
    write_jsonl(path, rows)
    with pytest.raises(InputError, match=r"curriculum.jsonl: row 2 \(p1-L1\) lacks key 'parent'"):
        rollouts.read_ladders(path)


def test_tiny_rollouts_one_row_per_prompt_and_sample(tmp_path, tiny):
    ctx = open_run(tmp_path)
    gen = Counting(tiny)
    summary = rollouts.run_rollouts(ctx, generator=gen, progress=False)
    rows = read_jsonl(ctx.root / "data" / "rollouts.jsonl")
    # Ladders: inst-00001 (n=2), inst-00002 (n=1), inst-00003 (n=3): 3 + 2 + 4 levels, 2 samples each.
    assert len(rows) == 18 == summary["rows"] == summary["generated"] == len(gen.prompts)
    assert sorted(set(keys(rows))) == sorted(keys(rows))
    assert {r["ladder"] for r in rows} == {"inst-00001", "inst-00002", "inst-00003"}
    assert summary["ladders_by_n"] == {"1": 1, "2": 1, "3": 1}
    assert summary["rows_by_level"] == {"0": 6, "1": 6, "2": 4, "3": 2}
    curriculum = {r["id"]: r for r in make_curriculum()}
    for row in rows:
        assert set(row) == {"ladder", "id", "level", "sample", "prompt", "response", "model", "sampling", "split"}
        assert row["prompt"] == curriculum[row["id"]]["prompt"]
        assert row["level"] == curriculum[row["id"]]["level"] and row["ladder"] == curriculum[row["id"]]["parent"]
        assert row["model"] == "tiny" and row["split"] == "train" and row["sample"] in (0, 1)
        assert isinstance(row["response"], str)
        assert row["sampling"] == {"max_new_tokens": 6, "temperature": 0.7, "top_p": 1.0, "seed": 0,
                                   "system_prompt": None}
    assert summary["resumed"] == 0 and summary["response_tokens"] > 0 and summary["tokens_per_s"] > 0
    # A finished run does nothing the second time.
    again = rollouts.run_rollouts(ctx, generator=Counting(tiny), progress=False)
    assert again["generated"] == 0 and again["resumed"] == 18


def test_resume_after_a_failing_batch_keeps_rows_and_matches_an_uninterrupted_run(tmp_path, tiny):
    whole = open_run(tmp_path, "whole")
    rollouts.run_rollouts(whole, generator=tiny, progress=False)
    expected = (whole.root / "data" / "rollouts.jsonl").read_bytes()

    ctx = open_run(tmp_path, "cut")
    path = ctx.root / "data" / "rollouts.jsonl"
    with pytest.raises(RuntimeError, match="interrupted"):
        rollouts.run_rollouts(ctx, generator=FailAfterFirstBatch(tiny), progress=False)
    first = path.read_bytes()
    assert len(first.splitlines()) == 4  # exactly one batch was written
    gen = Counting(tiny)
    summary = rollouts.run_rollouts(ctx, generator=gen, progress=False)
    assert summary["resumed"] == 4 and summary["generated"] == 14 and len(gen.prompts) == 14
    final = path.read_bytes()
    assert final.startswith(first)
    rows = read_jsonl(path)
    assert len(rows) == len(set(keys(rows))) == 18
    # Batches sit on a fixed grid with a seed per batch, so resuming reproduces the uninterrupted file.
    assert final == expected


DRIVER = textwrap.dedent("""
    import sys, time
    from sif_lib.labels import rollouts
    from sif_lib.policy.generation import ChatGenerator
    from sif_lib.runner.runs import RunContext

    class Slow:
        # Slowed down so that the parent process can kill it between batches it has written.
        def __init__(self):
            self.inner = ChatGenerator("tiny", backend="hf", dtype="float32", device="cpu")
            self.spec, self.backend, self.tokenizer = "tiny", "hf", self.inner.tokenizer
        def generate(self, prompts, sampling, batch_size=16, on_batch=None):
            def hook(start, outputs):
                on_batch(start, outputs)
                time.sleep(0.4)
            return self.inner.generate(prompts, sampling, batch_size=batch_size, on_batch=hook)

    rollouts.run_rollouts(RunContext.open(sys.argv[1]), generator=Slow(), progress=False)
    print("finished")
""")


def test_resume_after_sigkill(tmp_path, tiny):
    ctx = open_run(tmp_path, "killed", batch_size=2)
    path = ctx.root / "data" / "rollouts.jsonl"
    proc = subprocess.Popen([sys.executable, "-c", DRIVER, str(ctx.root)], cwd=REPO_ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if path.is_file() and path.read_bytes().count(b"\n") >= 4:
                break
            time.sleep(0.02)
        assert proc.poll() is None, proc.communicate()[1].decode()[-2000:]
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    before = path.read_bytes()
    kept = before[:before.rfind(b"\n") + 1]  # a torn tail, if the kill left one, is dropped and redone
    n_kept = kept.count(b"\n")
    assert 4 <= n_kept < 18

    gen = Counting(tiny)
    summary = rollouts.run_rollouts(ctx, generator=gen, progress=False)
    final = path.read_bytes()
    assert final.startswith(kept)
    assert summary["resumed"] == n_kept and summary["generated"] == 18 - n_kept == len(gen.prompts)
    rows = read_jsonl(path)
    assert len(rows) == len(set(keys(rows))) == 18
    # Nothing that was finished was asked again: the rows after the kept prefix are exactly the missing ones.
    done = {(json.loads(line)["id"], json.loads(line)["sample"]) for line in kept.splitlines()}
    assert not done & set(keys(rows[n_kept:]))


def test_torn_tail_is_dropped_and_regenerated(tmp_path, tiny):
    ctx = open_run(tmp_path, "torn")
    path = ctx.root / "data" / "rollouts.jsonl"
    with pytest.raises(RuntimeError):
        rollouts.run_rollouts(ctx, generator=FailAfterFirstBatch(tiny), progress=False)
    good = path.read_bytes()
    with open(path, "ab") as handle:
        handle.write(b'{"ladder": "inst-00001", "id": "inst-00001-L2", "level": 2, "sam')
    summary = rollouts.run_rollouts(ctx, generator=tiny, progress=False)
    assert summary["torn_tail_dropped"] is True and summary["resumed"] == 4
    assert path.read_bytes().startswith(good)
    rows = read_jsonl(path)
    assert len(rows) == len(set(keys(rows))) == 18


def test_mismatched_settings_are_refused(tmp_path, tiny):
    ctx = open_run(tmp_path, "first")
    with pytest.raises(RuntimeError):
        rollouts.run_rollouts(ctx, generator=FailAfterFirstBatch(tiny), progress=False)
    before = (ctx.root / "data" / "rollouts.jsonl").read_bytes()

    hotter = RunContext(ctx.root, ctx.params)
    hotter.params.rollouts.temperature = 1.0
    with pytest.raises(InputError, match=r"rollouts.jsonl: row 1 was made with sampling .*temperature.*0\.7.*"
                                         r"delete it or start a new run id"):
        rollouts.run_rollouts(hotter, generator=tiny, progress=False)
    hotter.params.rollouts.temperature = 0.7

    hotter.params.model.policy = "smollm2-135m-instruct"
    with pytest.raises(InputError, match=r"made by model 'tiny', this run uses 'smollm2-135m-instruct'"):
        rollouts.run_rollouts(hotter, generator=tiny, progress=False)
    hotter.params.model.policy = "tiny"

    curriculum = make_curriculum()
    curriculum[0]["prompt"] = "A different seed."
    write_jsonl(ctx.root / "data" / "curriculum.jsonl", curriculum)
    with pytest.raises(InputError, match=r"answers a different prompt.*curriculum was rebuilt"):
        rollouts.run_rollouts(hotter, generator=tiny, progress=False)
    assert (ctx.root / "data" / "rollouts.jsonl").read_bytes() == before  # refused runs leave the file alone


def test_bad_rollout_settings_and_backend(tmp_path):
    ctx = open_run(tmp_path, "bad", top_p=0.0)
    with pytest.raises(InputError, match=r"key 'rollouts.top_p' must lie in \(0, 1\]"):
        rollouts.run_rollouts(ctx, progress=False)
    ctx.params.rollouts.top_p = 1.0
    ctx.params.rollouts.backend = "vllm"
    from sif_lib.policy.generation import vllm_available

    if not vllm_available():
        with pytest.raises(InputError, match="rollouts.backend: 'vllm' needs the vllm package and a CUDA GPU"):
            rollouts.run_rollouts(ctx, progress=False)


@pytest.mark.gpu
def test_vllm_rollouts_match_the_row_format(tmp_path):
    from sif_lib.policy.generation import vllm_available

    if not vllm_available():
        pytest.skip("needs vllm and a CUDA GPU")
    ctx = open_run(tmp_path, "vllm", backend="vllm")
    ctx.params.model.policy = "smollm2-135m-instruct"
    summary = rollouts.run_rollouts(ctx, progress=False)
    rows = read_jsonl(ctx.root / "data" / "rollouts.jsonl")
    assert summary["backend"] == "vllm" and len(rows) == len(set(keys(rows))) == 18
    by_prompt = {}
    for row in rows:
        by_prompt.setdefault(row["id"], []).append(row["response"])
    # Per-request seeds: the two samples of a prompt are drawn independently.
    assert any(len(set(v)) > 1 for v in by_prompt.values())
