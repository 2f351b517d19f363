"""Multi-process GRPO on CPU, launched the way notebook 06 and a cluster launch it: ``accelerate launch`` of
``-m sif_lib.grpo`` with the shipped DeepSpeed configs (adapted by flags: fp32, gloo), two processes.

* ZeRO-2 trains 2 steps with LoRA;
* ZeRO-3 (full fine-tuning) is killed with SIGKILL after a checkpoint, its workers die with their launcher,
  and the rerun resumes with no step lost or repeated and saves a loadable model;
* two "machines" on 127.0.0.1, one process each, train 2 steps together.
"""

from __future__ import annotations

import json
import socket
import subprocess
import time
from collections import Counter
from pathlib import Path

import psutil
import pytest
from conftest import REPO, SMOKE, write_untrained_rm

from sif_lib.core.io import iter_jsonl
from sif_lib.grpo import checkpoints as ckpt
from sif_lib.grpo import launch as grpo_launch
from sif_lib.grpo import series as grpo_series
from sif_lib.policy import models
from sif_lib.runner.runs import RunContext

ZERO2 = "params/accelerate/deepspeed_zero2.yaml"
ZERO3 = "params/accelerate/deepspeed_zero3.yaml"

pytest.importorskip("deepspeed")


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> Path:
    """Stage 01-02 data and an untrained reward model, shared by the runs below (each copies it)."""
    from sif_lib.stages.s01_synthesize_constraints import run as run_synthesis_stage
    from sif_lib.stages.s02_decompose_curriculum import run as run_curriculum_stage

    root = tmp_path_factory.mktemp("distributed-base")
    ctx = RunContext.open(root, SMOKE)
    run_synthesis_stage(ctx)
    run_curriculum_stage(ctx)
    write_untrained_rm(root / "rm")
    return root


def make_run(prepared: Path, root: Path, **grpo_overrides) -> RunContext:
    import shutil

    shutil.copytree(prepared / "data", root / "data")
    shutil.copytree(prepared / "rm", root / "rm")
    overrides = {"num_processes": 2, "num_generations": 2, "prompts_per_step": 2, "max_completion_length": 8,
                 "probe_size": 0, **grpo_overrides}
    return RunContext.open(root, SMOKE, overrides={"grpo": overrides})


def launch(ctx: RunContext, machine_args=(), timeout: float = 300) -> subprocess.CompletedProcess:
    cmd = grpo_launch.launch_command(ctx, machine_args)
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def result(ctx: RunContext) -> dict:
    return json.loads((ctx.root / "grpo" / "train_result.json").read_text())


def logged_steps(ctx: RunContext) -> list[int]:
    return [h["step"] for h in grpo_series.log_steps(result(ctx)["log_history"])]


def test_launch_command_adapts_the_gpu_configs_to_cpu_by_flags(prepared, tmp_path):
    ctx = make_run(prepared, tmp_path / "run", accelerate_config=ZERO3)
    cmd = grpo_launch.launch_command(ctx, ["--num_machines", "2"])
    assert cmd[cmd.index("--config_file") + 1] == str(REPO / ZERO3)
    assert cmd[cmd.index("--mixed_precision") + 1] == "no"
    assert cmd[cmd.index("--num_processes") + 1] == "2" and "--num_machines" in cmd
    assert cmd[-6:] == ["-m", "sif_lib.grpo", "--params", str(ctx.root / "params.yaml"), "--run-dir", str(ctx.root)]


def test_deepspeed_zero2_trains_two_steps_on_two_cpu_processes(prepared, tmp_path):
    ctx = make_run(prepared, tmp_path / "run", accelerate_config=ZERO2, max_steps=2, save_steps=1)
    launch(ctx)
    got = result(ctx)
    assert got["distributed"] == {"type": "DEEPSPEED", "zero_stage": 2, "backend": "gloo", "processes": 2,
                                  "machines": 1}
    assert got["global_step"] == 2 and logged_steps(ctx) == [1, 2]
    # DeepSpeed's own checkpoint layout: one optimizer shard per rank.
    shards = sorted(p.name for p in (ctx.root / "grpo" / "checkpoints" / "checkpoint-2" / "global_step2").iterdir())
    assert [s for s in shards if "optim_states" in s] == ["zero_pp_rank_0_mp_rank_00_optim_states.pt",
                                                           "zero_pp_rank_1_mp_rank_00_optim_states.pt"]
    assert (ctx.root / "grpo" / "adapter" / "adapter_config.json").is_file()


def _workers(run_dir: Path) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = proc.info.get("cmdline") or []
        if "sif_lib.grpo" in cmdline and str(run_dir) in cmdline:
            found.append(proc)
    return found


def test_deepspeed_zero3_killed_with_sigkill_resumes_without_lost_or_repeated_steps(prepared, tmp_path):
    max_steps = 8
    ctx = make_run(prepared, tmp_path / "run", accelerate_config=ZERO3, finetune="full", max_steps=max_steps,
                   save_steps=1, save_total_limit=2)
    checkpoints = ctx.root / "grpo" / "checkpoints"
    launcher = subprocess.Popen(grpo_launch.launch_command(ctx), cwd=REPO, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 240
        while not (checkpoints / "checkpoint-3" / "trainer_state.json").is_file():
            assert launcher.poll() is None, "training ended before the kill"
            assert time.monotonic() < deadline, "no checkpoint-3 within 240 s"
            time.sleep(0.05)
        launcher.kill()  # SIGKILL to the launcher only: its workers must not train on
        launcher.wait()
    finally:
        if launcher.poll() is None:
            launcher.kill()
    deadline = time.monotonic() + 30
    while _workers(ctx.root) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _workers(ctx.root), "workers outlived their killed launcher"
    killed_at = ckpt.latest_checkpoint(checkpoints)
    assert killed_at is not None and 3 <= ckpt.checkpoint_step(killed_at) < max_steps

    launch(ctx)
    got = result(ctx)
    assert got["distributed"]["zero_stage"] == 3 and got["distributed"]["backend"] == "gloo"
    assert got["resumed_from"] == ckpt.checkpoint_step(killed_at)
    assert got["global_step"] == max_steps and got["steps_this_session"] == max_steps - got["resumed_from"]
    assert logged_steps(ctx) == list(range(1, max_steps + 1))
    rollout_steps = Counter(row["step"] for row in iter_jsonl(ctx.root / "grpo" / "rollouts.jsonl"))
    assert sorted(rollout_steps) == list(range(1, max_steps + 1))
    assert set(rollout_steps.values()) == {4}  # 2 prompts x 2 completions per step, over both ranks, once each

    # The final model is gathered from the ZeRO-3 shards into one loadable checkpoint, and it has trained.
    trained = models.load_causal_lm(str(ctx.root / "grpo" / "model"), dtype="float32", device="cpu")
    base = models.load_causal_lm("tiny", dtype="float32", device="cpu")
    moved = max((a - b).abs().max().item() for a, b in zip(trained.state_dict().values(), base.state_dict().values()))
    assert 0 < moved < 1


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_two_machines_on_localhost_train_two_steps_together(prepared, tmp_path):
    ctx = make_run(prepared, tmp_path / "run", accelerate_config=ZERO2, max_steps=2, save_steps=1)
    port = str(_free_port())
    machines = [subprocess.Popen(
        grpo_launch.launch_command(ctx, ["--num_machines", "2", "--machine_rank", str(rank),
                                  "--main_process_ip", "127.0.0.1", "--main_process_port", port]),
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for rank in (0, 1)]
    outputs = [m.communicate(timeout=300)[0] for m in machines]
    for machine, output in zip(machines, outputs):
        assert machine.returncode == 0, output[-3000:]
    got = result(ctx)
    assert got["distributed"] == {"type": "DEEPSPEED", "zero_stage": 2, "backend": "gloo", "processes": 2,
                                  "machines": 2}
    assert got["global_step"] == 2 and logged_steps(ctx) == [1, 2]
    assert "trained to step 2" in outputs[0] and "trained to step 2" not in outputs[1]  # rank 0 reports
