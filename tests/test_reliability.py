"""Runs that survive their environment, each fault injected: a second run on a run being written, a lock left by a
killed run, a full disk and folders that cannot be written (in a stage, in the runner, in the model cache), too
little free space before a run starts, kill -9 at every moment of a checkpoint, reward-model and adapter save, a
reward service that dies, and a stage kernel killed by the out-of-memory killer.

Most tests run the real runner with papermill replaced by a stand-in that writes what a stage would (seconds, no
kernel); the out-of-memory test starts one real kernel, one full-disk test runs the smoke pipeline for real, and
the two GRPO tests train the tiny model."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import threading
import time
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from conftest import REPO, SMOKE, require_shared, run_sif

from sif_lib import cli
from sif_lib.config.params import load_params
from sif_lib.core import io as io_
from sif_lib.core.errors import InputError, ServiceError, StorageError
from sif_lib.grpo import checkpoints as ckpt
from sif_lib.runner import disk_space, kernels, pipeline, runlock
from sif_lib.runner.stage_table import STAGE_NAMES

SIF = [sys.executable, "-m", "sif_lib"]
HOLD = """
import sys, time
from pathlib import Path
from sif_lib.runner.runlock import hold
held = [hold(Path(d)) for d in sys.argv[1:]]
print("held", flush=True)
time.sleep(300)
"""


def manifest(run: Path) -> dict:
    return json.loads((run / "manifest.json").read_text())


@pytest.fixture
def sigterm_restored():
    previous = signal.getsignal(signal.SIGTERM)
    yield
    signal.signal(signal.SIGTERM, previous)


class FakePapermill:
    """Stands in for ``papermill.execute_notebook``: writes the executed notebook and the stage's metrics, as a
    stage that ran would; ``faults[stage]`` is raised instead, once."""

    def __init__(self, faults: dict | None = None):
        self.faults = dict(faults or {})
        self.ran: list[str] = []

    def __call__(self, input_path, output_path, parameters, **kwargs):
        stage = Path(input_path).stem
        if stage in self.faults:
            raise self.faults.pop(stage)
        run_dir = Path(parameters["run_dir"])
        Path(output_path).write_text(json.dumps({"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
        io_.write_json(run_dir / "metrics" / f"{stage}.json", {"params_read": [], "peak_rss_mb": 1.0})
        self.ran.append(stage)


@pytest.fixture
def fake_stages(monkeypatch):
    import papermill

    fake = FakePapermill()
    monkeypatch.setattr(papermill, "execute_notebook", fake)
    return fake


def sif_main(capsys, *args) -> tuple[int, str, str]:
    code = cli.main(["run", str(SMOKE), *args])
    out, err = capsys.readouterr()
    return code, out, err


def one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith("error: "), err
    return lines[0]


# ---------------------------------------------------------------------------------------------------------------
# One writer per run directory


def test_a_second_run_on_a_run_being_written_is_refused_at_once_with_the_holders_pid(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path / "r"), str(tmp_path / "s-seed1")],
                              cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        for args in (["--run-id", "r"], ["--run-id", "r", "--from", "02"], ["--run-id", "s", "--seeds", "0,1"]):
            began = time.monotonic()
            second = subprocess.run([*SIF, "run", str(SMOKE), *args, "--outputs", str(tmp_path)], cwd=REPO,
                                    capture_output=True, text=True, timeout=120)
            elapsed = time.monotonic() - began
            assert second.returncode == 2, second.stderr
            line = one_error_line(second.stderr)
            assert f"is running in process {holder.pid}" in line and "run.lock" in line, line
            assert elapsed < 5, f"refused after {elapsed:.1f} s"
        assert not (tmp_path / "r" / "manifest.json").exists()
    finally:
        holder.kill()
        holder.wait()


def test_a_lock_left_by_a_killed_run_is_taken_over_and_said_so(tmp_path):
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    run_dir = tmp_path / "r"
    run_dir.mkdir()
    (run_dir / runlock.LOCK_NAME).write_text(json.dumps({"pid": gone.pid, "host": os.uname().nodename}))
    said: list[str] = []
    with runlock.hold(run_dir, echo=said.append) as lock:
        assert said == [f"{run_dir}: took over the lock left by process {gone.pid}, which is gone"]
        assert json.loads((run_dir / runlock.LOCK_NAME).read_text())["pid"] == os.getpid()
        with runlock.hold(run_dir) as again:  # re-entrant: sif run --seeds runs several runs in one process
            assert again is lock
        assert (run_dir / runlock.LOCK_NAME).is_file()
        runlock.check_unlocked(run_dir)  # this process's own lock is no obstacle
    assert not (run_dir / runlock.LOCK_NAME).exists()
    # A new run that stops before writing anything leaves no directory behind.
    with runlock.hold(tmp_path / "new"):
        pass
    assert not (tmp_path / "new").exists()


def test_the_runner_holds_the_lock_while_a_stage_runs(tmp_path, fake_stages, monkeypatch):
    seen = {}

    def stage_that_looks(input_path, output_path, parameters, **kwargs):
        probe = subprocess.run([sys.executable, "-c", "import sys; from sif_lib.runner.runlock import check_unlocked; "
                                "check_unlocked(sys.argv[1])", parameters["run_dir"]],
                               cwd=REPO, capture_output=True, text=True, timeout=120)
        seen["probe"] = probe
        FakePapermill()(input_path, output_path, parameters)

    import papermill

    monkeypatch.setattr(papermill, "execute_notebook", stage_that_looks)
    run_dir = pipeline.run_pipeline(SMOKE, run_id="h", outputs=tmp_path, only="01", echo=lambda *_: None)
    assert seen["probe"].returncode != 0 and f"is running in process {os.getpid()}" in seen["probe"].stderr
    assert not (run_dir / runlock.LOCK_NAME).exists()  # released at the end


# ---------------------------------------------------------------------------------------------------------------
# A full disk, folders that cannot be written, free space


def test_disk_full_in_a_stage_is_one_line_and_from_finishes_every_stage(tmp_path, capsys, fake_stages,
                                                                         sigterm_restored):
    import papermill

    run = tmp_path / "f"
    target = run / "data" / "curriculum.jsonl"
    fake_stages.faults["02_decompose_curriculum"] = papermill.PapermillExecutionError(
        cell_index=3, exec_count=3, source="run(ctx)", ename="OSError",
        evalue=f"[Errno 28] No space left on device: '{target}'", traceback=[])
    code, out, err = sif_main(capsys, "--run-id", "f", "--outputs", str(tmp_path), "--to", "06")
    assert code == 1
    line = one_error_line(err)
    assert f"{target}: no space left on device (" in line and "resume with --from 02_decompose_curriculum" in line
    stages = manifest(run)["stages"]
    assert stages["01_synthesize_constraints"]["status"] == "ok"
    assert stages["02_decompose_curriculum"]["status"] == "failed"
    assert "no space left on device" in stages["02_decompose_curriculum"]["error"]

    # Space is back; a killed RM save had left the old reward model aside: the runner puts it back first.
    (run / "rm.old").mkdir()
    (run / "rm.old" / "config.json").write_text("{}")
    code, out, err = sif_main(capsys, "--run-id", "f", "--outputs", str(tmp_path), "--from", "02", "--to", "06")
    assert code == 0, err
    assert "put back the previous copy" in out and (run / "rm" / "config.json").is_file()
    stages = manifest(run)["stages"]
    assert all(stages[s]["status"] in ("ok", "skipped") for s in STAGE_NAMES[:-1]), stages
    assert stages["02_decompose_curriculum"]["earlier_attempts"][0]["status"] == "failed"


def test_disk_full_in_the_runner_is_one_line_and_the_next_run_resumes(tmp_path, capsys, fake_stages, monkeypatch,
                                                                       sigterm_restored):
    run = tmp_path / "g"
    real_write = io_.atomic_write_text
    full = {"on": False}

    def write(path, text):
        if full["on"] or (path.name == "manifest.json" and '"ok"' in text):
            full["on"] = True  # the disk fills up as stage 01 finishes, and stays full
            raise io_.storage_error(OSError(errno.ENOSPC, "No space left on device"), path)  # as the real one says
        real_write(path, text)

    monkeypatch.setattr(io_, "atomic_write_text", write)
    code, out, err = sif_main(capsys, "--run-id", "g", "--outputs", str(tmp_path), "--to", "02")
    assert code == 2
    line = one_error_line(err)
    assert line.startswith(f"error: {run / 'manifest.json'}: no space left on device (")
    # The manifest could not be written either: the stage is still "running" there, under a process that is gone.
    assert manifest(run)["stages"]["01_synthesize_constraints"]["status"] == "running"
    monkeypatch.setattr(io_, "atomic_write_text", real_write)

    code, out, err = sif_main(capsys, "--run-id", "g", "--outputs", str(tmp_path), "--from", "01", "--to", "02")
    assert code == 0, err
    assert "[01_synthesize_constraints] was left running by a process that is gone: marked interrupted" in out
    assert manifest(run)["stages"]["02_decompose_curriculum"]["status"] == "ok"


def test_an_outputs_directory_that_cannot_be_written_is_one_line(tmp_path, capsys, fake_stages, monkeypatch,
                                                                   sigterm_restored):
    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder")
    code, _, err = sif_main(capsys, "--run-id", "x", "--outputs", str(blocked / "runs"))
    assert code == 2
    assert one_error_line(err) == f"error: {blocked / 'runs' / 'x'}: a part of the path is not a directory"

    real_mkdir = Path.mkdir

    def no_permission(self, *args, **kwargs):
        if str(self).startswith(str(tmp_path / "ro")):
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", no_permission)
    code, _, err = sif_main(capsys, "--run-id", "x", "--outputs", str(tmp_path / "ro"))
    assert code == 2
    assert one_error_line(err) == f"error: {tmp_path / 'ro' / 'x'}: permission denied"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a read-only folder")
def test_a_read_only_outputs_directory_is_one_line(tmp_path, capsys, fake_stages, sigterm_restored):
    outputs = tmp_path / "ro"
    outputs.mkdir(mode=0o500)
    code, _, err = sif_main(capsys, "--run-id", "x", "--outputs", str(outputs))
    assert code == 2 and one_error_line(err) == f"error: {outputs / 'x'}: permission denied"


def test_a_model_cache_that_cannot_be_written_is_one_line_before_anything_runs(tmp_path, capsys, fake_stages,
                                                                                monkeypatch, sigterm_restored):
    from sif_lib.policy import models

    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder")
    monkeypatch.setenv("SIF_CACHE", str(blocked / "cache"))
    code, _, err = sif_main(capsys, "--run-id", "c", "--outputs", str(tmp_path))
    assert code == 2
    line = one_error_line(err)
    assert line.startswith(f"error: {blocked / 'cache'}: the model cache cannot be written (not a directory)")
    assert "SIF_CACHE" in line and fake_stages.ran == []
    # Converting into a cache that fills up says the same, naming the cache.
    monkeypatch.setenv("SIF_CACHE", str(tmp_path / "cache"))

    def save(tmp):
        raise RuntimeError("Error while serializing: IoError(Os { code: 28, kind: StorageFull })")

    with pytest.raises(StorageError, match=r"cache: no space left on device \(.* free there\); set SIF_CACHE"):
        models._atomic_save(tmp_path / "cache" / "m", save)
    assert not list((tmp_path / "cache").iterdir())


def test_the_free_space_check_refuses_or_warns_with_the_figures(tmp_path, fake_stages, monkeypatch):
    params = load_params(SMOKE)
    need = disk_space.estimate(params, list(STAGE_NAMES))
    assert need["outputs"] > disk_space.DATA_BYTES and any(what.startswith("GRPO") for what, _ in need["parts"])
    monkeypatch.setattr(disk_space, "free_bytes", lambda path: 10 * 2**20)
    with pytest.raises(StorageError, match=r"10.0 MB free, and this run needs about .* MB there \(an estimate: "
                                           r"data, notebooks.*pass --no-space-check"):
        pipeline.run_pipeline(SMOKE, run_id="s", outputs=tmp_path, echo=lambda *_: None)
    assert not (tmp_path / "s").exists() and fake_stages.ran == []
    said: list[str] = []
    monkeypatch.setattr(disk_space, "free_bytes", lambda path: int(1.5 * need["outputs"]))
    pipeline.run_pipeline(SMOKE, run_id="s", outputs=tmp_path, only="01", echo=said.append)
    assert any(line.startswith(f"warning: {tmp_path / 's'}: ") and "needs about" in line for line in said), said
    monkeypatch.setattr(disk_space, "free_bytes", lambda path: 0)
    pipeline.run_pipeline(SMOKE, run_id="s", outputs=tmp_path, only="01", echo=said.append, space_check=False)
    assert fake_stages.ran == ["01_synthesize_constraints"] * 2


def test_a_write_that_finds_the_disk_full_names_its_file(tmp_path, monkeypatch):
    target = tmp_path / "d" / "rows.json"
    monkeypatch.setattr(io_.os, "fdopen", lambda fd, *a, **k: (os.close(fd), open("/dev/full", "w"))[1])
    with pytest.raises(StorageError) as caught:
        io_.write_json(target, {"a": 1})
    assert str(caught.value).startswith(f"{target}: no space left on device (")
    assert isinstance(caught.value, OSError) and isinstance(caught.value, InputError)
    assert list(target.parent.iterdir()) == []  # no temporary file left


# Put on the PYTHONPATH of a run (its stage kernels inherit it): from its second opening for writing on, TARGET
# writes to /dev/full, so each write fails as on a full disk, with ENOSPC from the operating system.
DISK_FILLS_UP = """
import builtins
import os

TARGET = {target!r}
real_open = builtins.open
opened = 0


def open(file, mode="r", *args, **kwargs):
    global opened
    handle = real_open(file, mode, *args, **kwargs)
    if isinstance(file, (str, os.PathLike)) and set(mode) & set("wax+") and os.path.realpath(file) == TARGET:
        opened += 1
        if opened > 1:
            full = os.open("/dev/full", os.O_WRONLY)
            os.dup2(full, handle.fileno())
            os.close(full)
    return handle


builtins.open = open
"""


@pytest.mark.slow
def test_disk_full_in_a_real_stage_kernel_is_one_line_and_from_finishes_every_stage(tmp_path):
    """The smoke pipeline, real kernels: the disk fills up in stage 03, after stages 01-02 wrote their data and
    stage 03 its first batch of rollouts. Once there is space again, --from 03 finishes every stage."""
    require_shared()
    outputs = tmp_path.resolve()
    run, stage = outputs / "d", STAGE_NAMES[3]
    rollouts = run / "data" / "rollouts.jsonl"
    fault = outputs / "fault"
    fault.mkdir()
    (fault / "sitecustomize.py").write_text(DISK_FILLS_UP.format(target=str(rollouts)))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, (str(fault), os.environ.get("PYTHONPATH"))))}
    full = subprocess.run([*SIF, "run", str(SMOKE), "--run-id", "d", "--outputs", str(outputs)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=900)
    assert full.returncode == 1, full.stdout + full.stderr
    assert "Traceback" not in full.stdout + full.stderr, full.stdout + full.stderr
    reason = one_error_line(full.stderr).removeprefix(f"error: stage {stage} failed: ")
    assert reason.startswith(f"{rollouts}: no space left on device (") and " free there); " in reason, reason
    assert reason.endswith(f"; once it can be written, resume with --from {stage}"), reason
    assert f"[{stage}] FAILED after " in full.stdout and full.stdout.count("no space left on device") == 1
    stages = manifest(run)["stages"]
    assert stages[STAGE_NAMES[0]]["status"] == "skipped"
    assert [stages[s]["status"] for s in STAGE_NAMES[1:]] == ["ok", "ok", "failed", "pending", "pending",
                                                              "pending", "pending"], stages
    assert stages[stage]["error"] == reason
    assert "StorageError" in (run / "logs" / f"{stage}.log").read_text()  # the traceback went to the log
    earlier = {s: stages[s] for s in STAGE_NAMES[1:3]}
    kept = {p: p.read_bytes() for p in (run / "data").rglob("*") if p.is_file() and p != rollouts}
    assert {"instructions.jsonl", "curriculum.jsonl"} <= {p.name for p in kept}
    assert all((run / "metrics" / f"{s}.json").is_file() for s in earlier)
    first_batch = io_.read_jsonl(rollouts)  # whole rows only: the batch written before the disk filled up
    assert first_batch and not (run / "data" / "pseudo_labels.jsonl").exists()

    back = run_sif("run", str(SMOKE), "--run-id", "d", "--outputs", str(outputs), "--from", "03", timeout=900)
    assert back.returncode == 0, back.stdout + back.stderr
    stages = manifest(run)["stages"]
    assert stages[STAGE_NAMES[0]]["status"] == "skipped"
    assert all(stages[s]["status"] == "ok" for s in STAGE_NAMES[1:]), stages
    assert {s: stages[s] for s in earlier} == earlier  # not rerun
    assert {p: p.read_bytes() for p in kept} == kept
    (attempt,) = stages[stage]["earlier_attempts"]
    assert attempt["status"] == "failed" and attempt["error"] == reason
    rows = io_.read_jsonl(rollouts)  # the first batch kept, the rest generated
    assert rows[:len(first_batch)] == first_batch and len(rows) > len(first_batch)
    assert len({(r["id"], r["sample"]) for r in rows}) == len(rows)


# ---------------------------------------------------------------------------------------------------------------
# Kill -9 at every moment of a save


class KillAt:
    """In a forked child: SIGKILL at the ``n``-th step of a save. Steps: each half of each file written, each
    rename, and each file removed by a directory delete."""

    def __init__(self, n: int):
        self.n, self.count = n, 0
        self.real_replace, self.real_rmtree = os.replace, __import__("shutil").rmtree

    def step(self) -> None:
        self.count += 1
        if self.count == self.n:
            os.kill(os.getpid(), signal.SIGKILL)

    def install(self) -> None:
        import shutil

        def replace(src, dst):
            self.step()
            self.real_replace(src, dst)

        def rmtree(path, ignore_errors=False, **kwargs):
            for root, _dirs, files in os.walk(path, topdown=False):
                for name in files:
                    self.step()
                    os.unlink(os.path.join(root, name))
            self.real_rmtree(path, ignore_errors=True)

        os.replace, shutil.rmtree = replace, rmtree

    def write(self, path: Path, data: bytes) -> None:
        with open(path, "wb") as handle:
            handle.write(data[:len(data) // 2])
            handle.flush()
            self.step()
            handle.write(data[len(data) // 2:])
        self.step()


def safetensors_bytes(values: int, fill: int) -> bytes:
    header = json.dumps({"w": {"dtype": "U8", "shape": [values], "data_offsets": [0, values]}}).encode()
    return len(header).to_bytes(8, "little") + header + bytes([fill]) * values


def zip_bytes(fill: int) -> bytes:
    import io

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(zipfile.ZipInfo("data.pkl", date_time=(2026, 1, 1, 0, 0, 0)), bytes([fill]) * 4000)
    return buffer.getvalue()


def checkpoint_files(step: int) -> dict[str, bytes]:
    """A checkpoint as the trainer writes it, in its order: weights, optimizer, RNG state, trainer state last."""
    return {"adapter_model.safetensors": safetensors_bytes(6000, step), "adapter_config.json": b'{"r": 2}',
            "optimizer.pt": zip_bytes(step), "rng_state.pth": zip_bytes(100 + step),
            "trainer_state.json": json.dumps({"global_step": step, "log_history": [{"step": step}] * 20}).encode()}


def train_and_save(checkpoint_dir: Path, steps, killer: KillAt | None, keep: int = 2) -> None:
    for step in steps:
        saved = ckpt.saving_dir(checkpoint_dir) / f"checkpoint-{step}"
        saved.mkdir(parents=True, exist_ok=True)
        for name, data in checkpoint_files(step).items():
            (killer.write(saved / name, data) if killer else (saved / name).write_bytes(data))
        ckpt.commit_checkpoint(saved, checkpoint_dir, keep)


def in_child(body) -> int:
    """Run ``body`` in a forked child; its exit status, negative for the signal that ended it."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover (the child)
        try:
            body()
        finally:
            os._exit(0)
    _, status = os.waitpid(pid, 0)
    return -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)


def assert_whole_checkpoint(path: Path) -> None:
    step = ckpt.checkpoint_step(path)
    assert sorted(p.name for p in path.iterdir()) == sorted(checkpoint_files(step))
    for name, data in checkpoint_files(step).items():
        assert (path / name).read_bytes() == data, (path, name)


def test_kill_at_every_moment_of_a_checkpoint_save_resumes_from_the_last_whole_one(tmp_path):
    n, kills = 0, 0
    while True:
        n += 1
        checkpoint_dir = tmp_path / f"k{n}" / "checkpoints"
        train_and_save(checkpoint_dir, [1, 2], None)  # two whole checkpoints; save_total_limit 2

        def save_third(n=n, checkpoint_dir=checkpoint_dir):
            killer = KillAt(n)
            killer.install()
            train_and_save(checkpoint_dir, [3], killer)

        status = in_child(save_third)
        if status == 0:
            break
        assert status == -signal.SIGKILL
        kills += 1
        ckpt.prune_incomplete_checkpoints(checkpoint_dir)  # what the next run does first
        latest = ckpt.latest_checkpoint(checkpoint_dir)
        assert latest is not None and ckpt.checkpoint_step(latest) in (2, 3), n
        left = sorted(p.name for p in checkpoint_dir.iterdir())
        assert all(name.startswith("checkpoint-") and not name.endswith(".old") for name in left), left
        for name in left:  # every checkpoint that is there is whole: nothing half-written can be loaded
            assert_whole_checkpoint(checkpoint_dir / name)
        # The run resumes from there and finishes.
        resumed = ckpt.checkpoint_step(latest)
        train_and_save(checkpoint_dir, range(resumed + 1, 5), None)
        assert sorted(p.name for p in checkpoint_dir.glob("checkpoint-*")) == ["checkpoint-3", "checkpoint-4"]
        assert_whole_checkpoint(ckpt.latest_checkpoint(checkpoint_dir))
    assert kills >= 15  # each half of each file, the rename into place, each file of the rotated-out checkpoint


@pytest.mark.parametrize("kind", ["rm", "adapter", "policy"])
def test_kill_at_every_moment_of_a_model_save_keeps_one_whole_copy(tmp_path, kind):
    """The reward model (a temporary sibling, checked and renamed: reward_model/training.py), the GRPO adapter
    (grpo/trainer.py) and a policy saved with ``staged_dir`` (the cold start, the merged policy)."""
    old = {"config.json": b'{"v": 1}', "model.safetensors": safetensors_bytes(5000, 1), "tokenizer.json": b"[1]"}
    new = {"config.json": b'{"v": 2}', "model.safetensors": safetensors_bytes(7000, 2), "tokenizer.json": b"[2]"}
    n, kills = 0, 0
    while True:
        n += 1
        run_dir = tmp_path / f"k{n}"
        target = run_dir / ("grpo/adapter" if kind == "adapter" else "rm" if kind == "rm" else "cold_start/policy")
        target.mkdir(parents=True)
        for name, data in old.items():
            (target / name).write_bytes(data)

        def save(n=n, target=target):
            killer = KillAt(n)
            killer.install()
            if kind == "policy":
                with io_.staged_dir(target) as tmp:
                    for name, data in new.items():
                        killer.write(tmp / name, data)
                return
            import tempfile

            tmp = (Path(tempfile.mkdtemp(dir=target.parent, prefix=target.name + ".tmp-")) if kind == "rm"
                   else target.with_name(target.name + ".tmp"))
            tmp.mkdir(exist_ok=True)
            for name, data in new.items():
                killer.write(tmp / name, data)
            io_.commit_dir(tmp, target)

        status = in_child(save)
        if status == 0:
            break
        kills += 1
        io_.recover_dirs(run_dir)  # what the runner does before a run
        files = {p.name: p.read_bytes() for p in target.iterdir()}
        assert files in (old, new), (n, sorted(files))
        assert sorted(p.name for p in target.parent.iterdir()) == [target.name], n  # no .tmp, no .old left
    assert kills >= 8


def test_a_checkpoint_that_is_not_whole_is_never_committed_or_resumed(tmp_path):
    checkpoint_dir = tmp_path / "checkpoints"
    train_and_save(checkpoint_dir, [1], None)
    saved = ckpt.saving_dir(checkpoint_dir) / "checkpoint-2"
    saved.mkdir(parents=True)
    for name, data in checkpoint_files(2).items():
        (saved / name).write_bytes(data[:-3] if name == "adapter_model.safetensors" else data)
    with pytest.raises(RuntimeError, match=r"checkpoint-2: the checkpoint just saved is not whole \(adapter_model"):
        ckpt.commit_checkpoint(saved, checkpoint_dir, 2)
    # One truncated under its final name (written by an older version, or damaged) is skipped and pruned.
    (checkpoint_dir / "checkpoint-2").mkdir()
    for name, data in checkpoint_files(2).items():
        (checkpoint_dir / "checkpoint-2" / name).write_bytes(data[:10] if name == "optimizer.pt" else data)
    problem = ckpt.checkpoint_problem(checkpoint_dir / "checkpoint-2")
    assert problem == "optimizer.pt: truncated (no zip central directory)"
    assert ckpt.latest_checkpoint(checkpoint_dir).name == "checkpoint-1"
    assert ckpt.prune_incomplete_checkpoints(checkpoint_dir) == ["checkpoint-2", ".saving/checkpoint-2"]


# ---------------------------------------------------------------------------------------------------------------
# A reward service that dies


class StubService(BaseHTTPRequestHandler):
    """POST /score answers 0.5 per pair (or ``reply`` when set on the server); GET /health answers {}."""

    def do_POST(self):
        pairs = json.loads(self.rfile.read(int(self.headers["Content-Length"])))["pairs"]
        reply = getattr(self.server, "reply", None) or {"scores": [0.5] * len(pairs)}
        self.server.requests += 1
        body = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def start_stub() -> tuple[ThreadingHTTPServer, str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), StubService)
    server.requests, server.reply = 0, None
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def stop_stub(server) -> None:
    server.shutdown()
    server.server_close()


SOFT = {"id": "soft:tone:warm", "kind": "soft", "description": "Keep a warm tone.", "kwargs": {}}


def test_a_reward_service_that_dies_fails_the_batch_in_bounded_time_with_one_line(tmp_path):
    from sif_lib.reward.composite import make_reward_function
    from sif_lib.rm_service.clients import HttpRewardScorer

    server, url = start_stub()
    log = tmp_path / "rollouts.jsonl"
    params = load_params(SMOKE, {"grpo": {"degenerate_gate": False}})
    reward = make_reward_function(params, HttpRewardScorer(url, deadline_s=1.5), rollout_log=log)
    answers = ["Thank you for asking, here is a friendly answer.", "Here is another answer, written with care."]
    batch = dict(prompts=[[{"role": "user", "content": "p"}]] * 2, completions=answers,
                 kind=["instruction"] * 2, level=[1, 1], constraints=[json.dumps([SOFT])] * 2, answer=[None] * 2)
    assert reward(**batch) == pytest.approx([0.5, 0.5])
    rows = log.read_text().splitlines()

    server.reply = {"scores": [None, 0.5]}  # a server in trouble that answers with a hole: no default reward
    with pytest.raises(ServiceError, match=r"/score: malformed reply \(a score of None"):
        reward(**batch)
    stop_stub(server)  # the server dies
    began = time.monotonic()
    with pytest.raises(ServiceError) as caught:
        reward(**batch)
    elapsed = time.monotonic() - began
    message = str(caught.value)
    assert message.startswith(f"{url}/score: gave up after ") and "\n" not in message
    assert "cannot reach the reward service" in message and reward.scorer.http.retries >= 2
    assert elapsed < 1.5 + 2.0  # the deadline, and the last attempt's own time
    assert log.read_text().splitlines() == rows  # nothing logged, nothing scored, for the batches it did not get


# ---------------------------------------------------------------------------------------------------------------
# A stage kernel killed by the out-of-memory killer


KILLED_NOTEBOOK = {
    "cells": [{"cell_type": "code", "execution_count": None, "id": "a", "metadata": {}, "outputs": [],
               "source": "import os, signal\nheld = bytearray(96 * 2**20)\nheld[::4096] = b'x' * len(held[::4096])\n"
                         "import time; time.sleep(1.5)\nos.kill(os.getpid(), signal.SIGKILL)\n"}],
    "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}},
    "nbformat": 4, "nbformat_minor": 5}


def test_a_stage_killed_by_the_oom_killer_is_marked_with_that_cause_and_its_peak_memory(tmp_path, monkeypatch):
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    (notebooks / "01_synthesize_constraints.ipynb").write_text(json.dumps(KILLED_NOTEBOOK))
    monkeypatch.setattr(pipeline, "notebooks_dir", lambda: notebooks)
    counts = iter([4, 5])  # the cgroup's oom_kill count before and after the stage (a real OOM kill is not staged)
    monkeypatch.setattr(kernels, "oom_kills", lambda: next(counts))
    said: list[str] = []
    with pytest.raises(pipeline.StageFailed, match="killed by the out-of-memory killer"):
        pipeline.run_pipeline(SMOKE, run_id="o", outputs=tmp_path, only="01", echo=said.append)
    record = manifest(tmp_path / "o")["stages"]["01_synthesize_constraints"]
    assert record["status"] == "failed" and record["killed_by"] == "oom"
    assert record["error"].startswith("the stage's kernel was killed by the out-of-memory killer (SIGKILL; the "
                                      "cgroup's oom_kill count rose from 4 to 5); peak memory ")
    assert record["peak_rss_mb"] >= 96, record
    assert any("FAILED" in line and "out-of-memory killer" in line for line in said)


def test_a_kernel_killed_otherwise_says_so(monkeypatch):
    counts = iter([0, 0])
    monkeypatch.setattr(kernels, "oom_kills", lambda: next(counts))
    proc = subprocess.Popen([sys.executable, "-c", "import time; x = bytearray(40 * 2**20); x[::4096] = "
                             "b'x' * len(x[::4096]); print('ready', flush=True); time.sleep(60)"],
                            stdout=subprocess.PIPE, text=True)
    watch = kernels.StageWatch()
    watch.started(proc)
    try:
        assert proc.stdout.readline().strip() == "ready"
        watch.sample()
        assert watch.death() is None  # still running
        proc.kill()
        proc.wait()
        death = watch.death()
    finally:
        proc.kill()
    assert death["cause"] == "SIGKILL" and death["peak_rss_mb"] >= 40
    assert "not by the out-of-memory killer of this cgroup" in death["line"]


# ---------------------------------------------------------------------------------------------------------------
# The same faults in real GRPO training on the tiny model

GRPO_STEPS = 3

# Training as stage 06 runs it, killed with SIGKILL in the middle of saving checkpoint-2: its weights and optimizer
# state are written, its RNG state and trainer state are not.
KILL_MID_SAVE = """
import os, signal, sys
from transformers import Trainer
from sif_lib.runner.runs import RunContext
from sif_lib.grpo.trainer import train_grpo

real = Trainer._save_rng_state

def save_rng_state(self, output_dir):
    if self.state.global_step == 2:
        os.kill(os.getpid(), signal.SIGKILL)
    return real(self, output_dir)

Trainer._save_rng_state = save_rng_state
train_grpo(RunContext.open(sys.argv[1]))
"""


def grpo_run(root: Path, **grpo):
    from conftest import write_untrained_rm

    from sif_lib.runner.runs import RunContext
    from sif_lib.stages.s01_synthesize_constraints import run as synthesize
    from sif_lib.stages.s02_decompose_curriculum import run as decompose

    ctx = RunContext.open(root, SMOKE, overrides={"grpo": {
        "max_steps": GRPO_STEPS, "save_steps": 1, "save_total_limit": 2, "num_generations": 2, "prompts_per_step": 2,
        "max_completion_length": 8, "probe_size": 0, **grpo}})
    synthesize(ctx)
    decompose(ctx)
    write_untrained_rm(root / "rm")
    return ctx


def logged_steps(run: Path) -> list[int]:
    return sorted(r["step"] for r in io_.iter_jsonl(run / "grpo" / "rollouts.jsonl", tolerate_torn_tail=True))


def test_grpo_killed_mid_checkpoint_resumes_from_the_last_whole_checkpoint_and_finishes(tmp_path):
    from transformers import TrainerCallback

    from sif_lib.grpo.trainer import train_grpo
    from sif_lib.runner.runs import RunContext

    run = grpo_run(tmp_path / "run").root
    checkpoints = run / "grpo" / "checkpoints"
    proc = subprocess.run([sys.executable, "-c", KILL_MID_SAVE, str(run)], cwd=REPO, capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]
    half = ckpt.saving_dir(checkpoints) / "checkpoint-2"
    assert (half / "adapter_model.safetensors").is_file() and not (half / "trainer_state.json").exists()
    assert sorted(p.name for p in checkpoints.glob("checkpoint-*")) == ["checkpoint-1"]

    class NothingHalfWritten(TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            assert not half.exists(), "the half-written checkpoint is still there when training starts"

    result = train_grpo(RunContext.open(run), callbacks=[NothingHalfWritten()])
    assert result["resumed_from"] == 1 and result["global_step"] == GRPO_STEPS
    assert result["steps_this_session"] == GRPO_STEPS - 1
    kept = sorted(p.name for p in checkpoints.glob("checkpoint-*"))
    assert kept == [f"checkpoint-{GRPO_STEPS - 1}", f"checkpoint-{GRPO_STEPS}"]
    assert all(ckpt.checkpoint_problem(checkpoints / name) is None for name in kept)
    assert [h["step"] for h in result["log_history"] if "reward" in h] == list(range(1, GRPO_STEPS + 1))
    assert logged_steps(run) == [s for s in range(1, GRPO_STEPS + 1) for _ in range(4)]
    assert io_.saved_dir_problem(run / "grpo" / "adapter") is None


def test_grpo_whose_reward_service_dies_stops_with_one_line_and_trains_no_step_without_rewards(tmp_path):
    from sif_lib.grpo.trainer import train_grpo
    from sif_lib.rm_service.clients import HttpRewardScorer
    from sif_lib.runner.runs import RunContext

    # Every batch asks the reward model: no math items, hard constraints scored by the RM as well.
    run = grpo_run(tmp_path / "run", reasoning_share=0.0, hard_reward="reward_model").root
    checkpoints = run / "grpo" / "checkpoints"
    server, url = start_stub()
    original = StubService.do_POST

    def serve_once_then_die(handler):
        original(handler)
        threading.Thread(target=stop_stub, args=(server,), daemon=True).start()  # killed after its first answer

    StubService.do_POST = serve_once_then_die
    try:
        with pytest.raises(ServiceError) as caught:
            train_grpo(RunContext.open(run), scorer=HttpRewardScorer(url, deadline_s=2.0))
    finally:
        StubService.do_POST = original
    message = str(caught.value)
    assert message.startswith(f"{url}/score: gave up after ") and "\n" not in message
    assert server.requests == 1
    # Step 1 had its rewards and was trained and saved; step 2 never got its rewards: not trained, not logged.
    assert ckpt.checkpoint_step(ckpt.latest_checkpoint(checkpoints)) == 1
    state = json.loads((checkpoints / "checkpoint-1" / "trainer_state.json").read_text())
    assert state["global_step"] == 1 and [h["step"] for h in state["log_history"] if "reward" in h] == [1]
    assert logged_steps(run) == [1] * 4
    assert not (run / "grpo" / "adapter").exists()

    # The service is back: the stage resumes from step 1 and finishes.
    server, url = start_stub()
    try:
        result = train_grpo(RunContext.open(run), scorer=HttpRewardScorer(url, deadline_s=2.0))
    finally:
        stop_stub(server)
    assert result["resumed_from"] == 1 and result["global_step"] == GRPO_STEPS
    assert logged_steps(run) == [s for s in range(1, GRPO_STEPS + 1) for _ in range(4)]
