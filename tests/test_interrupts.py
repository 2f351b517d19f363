"""Interrupted runs say so: a stage left ``running`` by a killed ``sif run`` is marked ``interrupted`` by the next
invocation and then rerun; Ctrl-C ends the stage's kernel, marks the stage and exits 130 with the resume command;
a second ``sif run`` on a run directory whose stage is still running is refused."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
from conftest import REPO, require_shared

SIF = [sys.executable, "-m", "sif_lib"]


def start(outputs: Path, run_id: str) -> subprocess.Popen:
    return subprocess.Popen([*SIF, "run", "params/smoke.yaml", "--run-id", run_id, "--outputs", str(outputs)],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def manifest(run: Path) -> dict:
    return json.loads((run / "manifest.json").read_text())


def wait_running(run: Path, stage: str, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        try:
            if manifest(run)["stages"][stage]["status"] == "running":
                time.sleep(2.0)  # well inside the stage: its kernel is up and working
                return
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.1)
    raise AssertionError(f"{stage} never started")


def test_sigkill_mid_stage_then_from_marks_interrupted_and_reruns_only_that_stage(tmp_path):
    require_shared()
    run = tmp_path / "k"
    proc = start(tmp_path, "k")
    wait_running(run, "03_generate_pseudo_labels", proc)
    os.killpg(proc.pid, signal.SIGKILL)  # the whole job at once, as an OOM kill or a lost node would
    proc.wait()
    before = manifest(run)["stages"]
    assert before["03_generate_pseudo_labels"]["status"] == "running"  # what a dead run leaves

    status = subprocess.run([*SIF, "status", str(run)], cwd=REPO, capture_output=True, text=True, timeout=60)
    line = next(x for x in status.stdout.splitlines() if x.startswith("03_generate_pseudo_labels"))
    assert "interrupted (its process is gone)" in line

    resumed = subprocess.run([*SIF, "run", "params/smoke.yaml", "--run-id", "k", "--outputs", str(tmp_path),
                              "--from", "03", "--to", "03"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert ("[03_generate_pseudo_labels] was left running by a process that is gone: marked interrupted"
            in resumed.stdout)
    after = manifest(run)["stages"]
    record = after["03_generate_pseudo_labels"]
    assert record["status"] == "ok"
    (attempt,) = record["earlier_attempts"]
    assert attempt["status"] == "interrupted" and attempt["interrupted_seen"] >= attempt["start"]
    for stage in ("01_synthesize_constraints", "02_decompose_curriculum"):
        assert after[stage] == before[stage]  # not rerun
    assert after["04_train_reward_model"]["status"] == "pending"


def test_ctrl_c_ends_the_kernel_marks_the_stage_and_exits_130(tmp_path):
    require_shared()
    run = tmp_path / "i"
    proc = start(tmp_path, "i")
    wait_running(run, "03_generate_pseudo_labels", proc)
    children = psutil.Process(proc.pid).children(recursive=True)
    assert children, "the stage kernel should be running"

    # While that stage runs, a second run on the same directory is refused.
    second = subprocess.run([*SIF, "run", "params/smoke.yaml", "--run-id", "i", "--outputs", str(tmp_path),
                             "--from", "03"], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert second.returncode == 2 and "is running in process" in second.stderr

    os.kill(proc.pid, signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("interrupted: stage "
                           "03_generate_pseudo_labels") and "--from 03_generate_pseudo_labels" in last
    assert manifest(run)["stages"]["03_generate_pseudo_labels"]["status"] == "interrupted"
    gone, alive = psutil.wait_procs(children, timeout=10)
    assert not [p for p in alive if p.status() != psutil.STATUS_ZOMBIE], "a kernel process was left behind"
