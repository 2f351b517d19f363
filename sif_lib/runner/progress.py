"""Live progress of a headless stage: the stage reports a counter, ``sif run`` shows it.

Inside a stage, long loops call :func:`update` (``update(done, total, unit, **extra)``). When the runner has set
:data:`ENV` (it does for every notebook it executes), the call writes ``{done, total, unit, extra}`` atomically to
that file (``<run_dir>/logs/<stage>.progress.json``); otherwise it does nothing, so an interactive notebook keeps
its own progress bars and writes no file.

On the runner's side, :class:`Watcher` is a thread that polls the file, works out the rate and the time left from
what it has seen change, and prints one line: redrawn in place about every second on a terminal, and as a plain
log line every :data:`PLAIN_INTERVAL_S` seconds elsewhere (a CI log, ``nohup``). Progress is only shown, never
relied on: a missing or unreadable file means "no counter yet", and a failed write is ignored.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import threading
import time
from pathlib import Path
from typing import Any, TextIO

from sif_lib.core.io import write_json

ENV = "SIF_PROGRESS_FILE"  # set by the runner to the progress file of the stage being executed
MIN_INTERVAL_S = 0.5  # update() writes at most this often (unless what it counts changes, or it finishes)
POLL_S = 1.0  # how often the runner reads the file (and redraws on a terminal)
PLAIN_INTERVAL_S = 60.0  # how often the runner prints a plain line when stdout is not a terminal
STALE_S = 60.0  # a counter unchanged for longer says when it last moved

_last_write: dict[str, tuple[float, tuple]] = {}


# --------------------------------------------------------------------------------------------------------------
# In the stage


def update(done: int, total: int | None = None, unit: str = "items", **extra: Any) -> None:
    """Report ``done`` of ``total`` ``unit`` (and ``extra`` values, e.g. ``reward=0.41``, ``set="holdout_base"``)
    to the runner. A no-op unless :data:`ENV` is set. Writes are throttled to one per :data:`MIN_INTERVAL_S`,
    except the last one of a loop (``done >= total``) and one whose unit, total or extra values changed."""
    target = os.environ.get(ENV)
    if not target:
        return
    now = time.monotonic()
    shape = (unit, total, tuple(sorted((k, repr(v)) for k, v in extra.items())))
    last = _last_write.get(target)
    finished = total is not None and done >= total
    if last and now - last[0] < MIN_INTERVAL_S and last[1] == shape and not finished:
        return
    try:
        write_json(Path(target), {"done": done, "total": total, "unit": unit, "extra": extra, "pid": os.getpid(),
                                  "time": time.time()})
    except (OSError, TypeError, ValueError):
        return  # the display is a convenience: it must never fail the stage
    _last_write[target] = (now, shape)


def trainer_callback(*log_keys: str, unit: str = "steps"):
    """A ``transformers`` ``TrainerCallback`` that reports ``global_step`` of ``max_steps`` and the latest value of
    each of ``log_keys`` in the trainer's log history (e.g. ``"reward"``). Only the main process reports."""
    from transformers import TrainerCallback  # heavy: only where a Trainer runs

    class ProgressCallback(TrainerCallback):
        def _report(self, state) -> None:
            if not state.is_world_process_zero:
                return
            latest = {}
            for key in log_keys:
                value = next((h[key] for h in reversed(state.log_history) if key in h), None)
                if value is not None:
                    latest[key] = value
            update(state.global_step, state.max_steps or None, unit, **latest)

        def on_train_begin(self, args, state, control, **kwargs):
            self._report(state)

        def on_step_end(self, args, state, control, **kwargs):
            self._report(state)

        def on_log(self, args, state, control, **kwargs):
            self._report(state)

    return ProgressCallback()


# --------------------------------------------------------------------------------------------------------------
# In the runner


def read(path: Path) -> dict | None:
    """The progress file's content, or None when there is none (yet) or it is not a progress record."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and isinstance(data.get("done"), (int, float)) else None


def duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def _value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def format_line(stage: str, elapsed: float, snapshot: dict | None) -> str:
    """One line for a running stage. ``snapshot`` (from :meth:`Tracker.snapshot`) holds ``done``, ``total``,
    ``unit``, ``extra``, and when known ``rate`` (units per second), ``eta`` and ``age`` (seconds since the
    counter last changed); without one, the line says only how long the stage has run."""
    if not snapshot:
        return f"[{stage}] running, elapsed {duration(elapsed)}"
    done, total, unit = snapshot["done"], snapshot.get("total"), snapshot.get("unit") or "items"
    parts = [f"{done}/{total} {unit} ({100 * done / total:.0f}%)" if total else f"{done} {unit}"]
    rate = snapshot.get("rate")
    if rate:
        single = unit[:-1] if unit.endswith("s") else unit
        parts.append(f"{rate:.1f} {unit}/s" if rate >= 1 else f"{1 / rate:.1f} s/{single}")
    if snapshot.get("eta") is not None and (total is None or done < total):
        parts.append(f"ETA {duration(snapshot['eta'])}")
    parts += [f"{key} {_value(value)}" for key, value in (snapshot.get("extra") or {}).items()]
    parts.append(f"elapsed {duration(elapsed)}")
    if (snapshot.get("age") or 0) > STALE_S:
        parts.append(f"last update {duration(snapshot['age'])} ago")
    return f"[{stage}] " + ", ".join(parts)


class Tracker:
    """Turns successive reads of a progress file into a rate and an ETA, from when this side saw the counter move.
    A new loop (another unit, total or text value in ``extra``, or a counter that went back) starts afresh."""

    def __init__(self):
        self.record: dict | None = None
        self._loop = None
        self._first = self._last = (0.0, 0)
        self._changed_at = 0.0

    def observe(self, record: dict | None, now: float) -> None:
        if record is None:
            return
        done = record["done"]
        extra = record.get("extra") if isinstance(record.get("extra"), dict) else {}
        loop = (record.get("unit"), record.get("total"),
                tuple(sorted((k, v) for k, v in extra.items() if isinstance(v, str))))
        if loop != self._loop or done < self._last[1]:
            self._loop, self._first, self._last = loop, (now, done), (now, done)
            self._changed_at = now
        elif done != self._last[1]:
            self._last = (now, done)
        if record != self.record:
            self._changed_at = now
        self.record = record

    def snapshot(self, now: float) -> dict | None:
        if self.record is None:
            return None
        (t0, d0), (t1, d1) = self._first, self._last
        rate = (d1 - d0) / (t1 - t0) if t1 > t0 and d1 > d0 else None
        total = self.record.get("total")
        eta = max(0.0, (total - d1) / rate - (now - t1)) if rate and total is not None else None
        return {**self.record, "rate": rate, "eta": eta, "age": now - self._changed_at}


class Watcher:
    """While a stage runs (``with Watcher(stage, path):``), show its progress on ``stream`` (stdout): on a
    terminal, one line redrawn in place every ``poll_s`` seconds and erased at the end, so that the next line
    prints cleanly; otherwise (or with ``plain=True``) a plain line every ``interval_s`` seconds."""

    def __init__(self, stage: str, path: Path, stream: TextIO | None = None, plain: bool | None = None,
                 interval_s: float | None = None, poll_s: float | None = None):
        self.stage, self.path = stage, Path(path)
        self.stream = stream or sys.stdout
        isatty = getattr(self.stream, "isatty", None)
        self.tty = not plain and bool(isatty and isatty())
        self.interval_s = PLAIN_INTERVAL_S if interval_s is None else interval_s
        self.poll_s = POLL_S if poll_s is None else poll_s
        self.tracker = Tracker()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"progress-{stage}", daemon=True)
        self._drawn = 0  # characters of the line now on the terminal
        self.began = time.monotonic()

    def __enter__(self) -> Watcher:
        self.began = time.monotonic()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        if self._drawn:
            self._write("\r" + " " * self._drawn + "\r")
            self._drawn = 0

    def line(self, now: float | None = None) -> str:
        now = time.monotonic() if now is None else now
        self.tracker.observe(read(self.path), now)
        return format_line(self.stage, now - self.began, self.tracker.snapshot(now))

    def _run(self) -> None:
        next_plain = self.began + self.interval_s
        while not self._stop.wait(self.poll_s):
            now = time.monotonic()
            text = self.line(now)
            if self.tty:
                width = max(20, shutil.get_terminal_size((100, 20)).columns - 1)  # a wrapped line cannot be redrawn
                text = text[:width]
                self._write("\r" + text + " " * max(0, self._drawn - len(text)))
                self._drawn = len(text)
            elif now >= next_plain:
                self._write(text + "\n")
                next_plain = now + self.interval_s

    def _write(self, text: str) -> None:
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):
            pass  # a closed or broken stdout must not take the run down with it


__all__ = ["ENV", "Tracker", "Watcher", "format_line", "read", "trainer_callback", "update"]
