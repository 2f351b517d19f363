"""Live progress of a headless stage: the in-stage counter file and the runner's terminal and plain lines."""

import io
import json
import threading
import time

import pytest

from sif_lib.runner import progress


@pytest.fixture
def progress_file(tmp_path, monkeypatch):
    path = tmp_path / "logs" / "06_train.progress.json"
    monkeypatch.setenv(progress.ENV, str(path))
    monkeypatch.setattr(progress, "MIN_INTERVAL_S", 0.0)
    return path


def test_update_is_a_no_op_without_the_variable(tmp_path, monkeypatch):
    monkeypatch.delenv(progress.ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    progress.update(3, 10, "steps", reward=0.5)
    assert list(tmp_path.rglob("*")) == []


def test_update_writes_valid_json(progress_file):
    progress.update(3, 10, "answers", set="holdout_base")
    record = json.loads(progress_file.read_text())
    assert record["done"] == 3 and record["total"] == 10 and record["unit"] == "answers"
    assert record["extra"] == {"set": "holdout_base"}
    assert progress.read(progress_file)["done"] == 3


def test_update_is_throttled_but_keeps_the_last_and_changed_ones(progress_file, monkeypatch):
    monkeypatch.setattr(progress, "MIN_INTERVAL_S", 60.0)
    progress.update(1, 10, "steps")
    progress.update(2, 10, "steps")  # too soon: skipped
    assert progress.read(progress_file)["done"] == 1
    progress.update(2, 10, "steps", reward=0.25)  # a new value to show: written
    assert progress.read(progress_file)["extra"] == {"reward": 0.25}
    progress.update(10, 10, "steps", reward=0.25)  # the end of the loop: written
    assert progress.read(progress_file)["done"] == 10


def test_terminal_line_has_counter_rate_and_eta():
    tracker = progress.Tracker()
    tracker.observe({"done": 2, "total": 40, "unit": "steps", "extra": {"reward": 0.41}}, now=10.0)
    tracker.observe({"done": 6, "total": 40, "unit": "steps", "extra": {"reward": 0.52}}, now=110.0)
    line = progress.format_line("06_train_grpo", 125.0, tracker.snapshot(now=110.0))
    assert "\n" not in line and "\r" not in line
    assert line.startswith("[06_train_grpo] 6/40 steps (15%)")
    assert "25.0 s/step" in line and "ETA 14m10s" in line and "reward 0.52" in line
    assert "elapsed 2m05s" in line
    # Before any counter, the elapsed time.
    assert progress.format_line("01_synthesize", 12.0, None) == "[01_synthesize] running, elapsed 12s"


def test_a_new_loop_restarts_the_rate():
    tracker = progress.Tracker()
    tracker.observe({"done": 0, "total": 8, "unit": "answers", "extra": {"set": "holdout_base"}}, now=0.0)
    tracker.observe({"done": 8, "total": 8, "unit": "answers", "extra": {"set": "holdout_base"}}, now=8.0)
    assert tracker.snapshot(now=8.0)["rate"] == 1.0
    tracker.observe({"done": 0, "total": 8, "unit": "answers", "extra": {"set": "ifeval_base"}}, now=9.0)
    snapshot = tracker.snapshot(now=9.0)
    assert snapshot["rate"] is None and snapshot["eta"] is None
    assert "set ifeval_base" in progress.format_line("07_evaluate", 9.0, snapshot)


def test_plain_lines_when_not_a_terminal(progress_file):
    out = io.StringIO()  # isatty() is False
    stop = threading.Event()

    def stage():  # what an instrumented loop does inside the kernel
        step = 0
        while not stop.is_set() and step < 40:
            step += 1
            progress.update(step, 40, "steps", reward=0.5)
            time.sleep(0.03)

    worker = threading.Thread(target=stage)
    with progress.Watcher("06_train_grpo", progress_file, stream=out, interval_s=0.3, poll_s=0.05) as watcher:
        assert not watcher.tty
        worker.start()
        time.sleep(1.1)
    stop.set()
    worker.join()
    lines = out.getvalue().splitlines()
    assert 2 <= len(lines) <= 5, lines
    assert "\r" not in out.getvalue()
    assert all(line.startswith("[06_train_grpo] ") for line in lines)
    last = lines[-1]
    assert "/40 steps" in last and "steps/s" in last and "reward 0.5" in last and "elapsed" in last
    assert any("ETA" in line for line in lines)


def test_terminal_line_is_redrawn_and_erased(tmp_path):
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    out = Terminal()
    with progress.Watcher("03_generate", tmp_path / "missing.json", stream=out, poll_s=0.05) as watcher:
        assert watcher.tty
        time.sleep(0.3)
    text = out.getvalue()
    assert "\n" not in text
    assert text.startswith("\r[03_generate] running, elapsed")
    assert text.endswith("\r") and text.rsplit("\r", 2)[-2].strip() == ""  # erased at the end


def test_trainer_callback_reports_step_and_latest_reward(progress_file):
    from transformers import TrainerState

    state = TrainerState(max_steps=40, global_step=7)
    state.log_history = [{"step": 5, "reward": 0.31}, {"step": 6, "reward": 0.44, "loss": 0.1}, {"step": 7}]
    callback = progress.trainer_callback("reward")
    callback.on_step_end(None, state, None)
    record = progress.read(progress_file)
    assert (record["done"], record["total"], record["unit"]) == (7, 40, "steps")
    assert record["extra"] == {"reward": 0.44}
