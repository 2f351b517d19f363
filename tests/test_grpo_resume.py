"""Kill GRPO training with SIGKILL after a checkpoint, rerun the stage, and check that no step is lost or repeated."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from conftest import REPO, SMOKE, write_untrained_rm

from sif_lib.core.io import iter_jsonl, read_jsonl
from sif_lib.grpo import checkpoints as ckpt
from sif_lib.grpo import rl_set
from sif_lib.runner.runs import RunContext
from sif_lib.stages import s06_train_grpo as s06

MAX_STEPS = 5

# Training as `python -m sif_lib.grpo` runs it, plus a callback that pauses after every step so that the kill
# reliably lands mid-run (the tiny model's steps take a fraction of a second).
TRAIN = """
import sys, time
from transformers import TrainerCallback
from sif_lib.grpo.trainer import train_grpo
from sif_lib.runner.runs import RunContext

class Pause(TrainerCallback):
    def on_step_end(self, args, state, control, **kwargs):
        time.sleep(1.0)

train_grpo(RunContext.open(sys.argv[1]), callbacks=[Pause()])
"""


def make_run(root: Path) -> RunContext:
    from sif_lib.stages.s01_synthesize_constraints import run as run_synthesis_stage
    from sif_lib.stages.s02_decompose_curriculum import run as run_curriculum_stage

    ctx = RunContext.open(root, SMOKE, overrides={"grpo": {
        "max_steps": MAX_STEPS, "save_steps": 1, "save_total_limit": 2, "num_generations": 2, "prompts_per_step": 2,
        "max_completion_length": 8, "probe_size": 0}})
    run_synthesis_stage(ctx)
    run_curriculum_stage(ctx)
    write_untrained_rm(root / "rm")
    return ctx


def scheduled_order(ctx) -> list[dict]:
    from sif_lib.policy import models

    g = ctx.params.grpo
    items = rl_set.load_rl_items(ctx)
    lengths = rl_set.prompt_lengths(models.load_tokenizer(ctx.params.model.policy), items, None)
    items, _ = rl_set.drop_long_prompts(items, lengths, g.max_prompt_length)
    return rl_set.build_order(items, g.curriculum, MAX_STEPS, g.prompts_per_step, 1, MAX_STEPS,
                              seed=ctx.params.run.seed)


def test_sigkill_then_resume(tmp_path):
    ctx = make_run(tmp_path / "run")
    run = ctx.root
    checkpoints = run / "grpo" / "checkpoints"
    proc = subprocess.Popen([sys.executable, "-c", TRAIN, str(run)], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 240
        while not (checkpoints / "checkpoint-2" / "trainer_state.json").is_file():
            assert proc.poll() is None, f"training exited early: {proc.stderr.read().decode()[-2000:]}"
            assert time.monotonic() < deadline, "no checkpoint-2 within 240 s"
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not (run / "grpo" / "adapter").exists()

    resume_from = ckpt.latest_checkpoint(checkpoints)
    killed_at = ckpt.checkpoint_step(resume_from)
    assert 2 <= killed_at < MAX_STEPS
    before = json.loads((resume_from / "trainer_state.json").read_text())["log_history"]
    # The killed run may have logged rollouts of the step it was in; they must not survive the resume.
    steps_logged = Counter(r["step"] for r in iter_jsonl(run / "grpo" / "rollouts.jsonl", tolerate_torn_tail=True))

    metrics = s06.run(RunContext.open(run), echo=lambda *_: None)

    assert metrics["resumed_from"] == killed_at
    assert metrics["steps"] == MAX_STEPS
    assert metrics["steps_this_session"] == MAX_STEPS - killed_at
    state = json.loads((ckpt.latest_checkpoint(checkpoints) / "trainer_state.json").read_text())
    assert state["global_step"] == MAX_STEPS
    history = [h for h in state["log_history"] if "reward" in h]
    assert [h["step"] for h in history] == list(range(1, MAX_STEPS + 1))
    # The steps before the checkpoint are the killed run's own log entries, unchanged.
    assert history[:killed_at] == [h for h in before if "reward" in h]
    assert metrics["series"]["step"] == list(range(1, MAX_STEPS + 1))

    rows = read_jsonl(run / "grpo" / "rollouts.jsonl")
    assert Counter(r["step"] for r in rows) == {s: 4 for s in range(1, MAX_STEPS + 1)}
    assert all(steps_logged[s] == 4 for s in range(1, killed_at + 1))
    # Every step, resumed or not, answered the prompts the curriculum order scheduled for it.
    order = [r["id"] for r in scheduled_order(ctx)]
    for step in range(1, MAX_STEPS + 1):
        assert {r["id"] for r in rows if r["step"] == step} == set(order[2 * (step - 1):2 * step])
    # save_total_limit keeps the newest checkpoints only.
    kept = sorted(p.name for p in checkpoints.iterdir() if p.name.startswith("checkpoint-"))
    assert len(kept) <= 2 and f"checkpoint-{MAX_STEPS}" in kept
    assert (run / "grpo" / "adapter" / "adapter_config.json").is_file()


def test_cli_reports_bad_input(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "sif_lib.grpo", "--params", str(tmp_path / "missing.yaml"),
                           "--run-dir", str(tmp_path / "run")], cwd=REPO, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2
    assert "missing.yaml: params file not found" in proc.stderr


def test_incomplete_checkpoint_is_not_resumed(tmp_path):
    checkpoints = tmp_path / "checkpoints"
    (checkpoints / "checkpoint-3").mkdir(parents=True)
    (checkpoints / "checkpoint-3" / "trainer_state.json").write_text('{"global_step": 3}')
    (checkpoints / "checkpoint-4").mkdir()  # killed while saving: no trainer_state.json
    (checkpoints / "checkpoint-4" / "adapter_model.safetensors").write_bytes(b"partial")
    assert ckpt.latest_checkpoint(checkpoints).name == "checkpoint-3"
    assert ckpt.prune_incomplete_checkpoints(checkpoints) == ["checkpoint-4"]
    assert sorted(p.name for p in checkpoints.iterdir()) == ["checkpoint-3"]

    log = tmp_path / "rollouts.jsonl"
    log.write_text("".join(json.dumps({"step": s}) + "\n" for s in (1, 2, 3, 4, 4)) + '{"step": 5, "tor')
    assert ckpt.trim_rollout_log(log, 3) == 2
    assert [r["step"] for r in read_jsonl(log)] == [1, 2, 3]
    shutil.rmtree(checkpoints)
