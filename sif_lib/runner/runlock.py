"""One writer per run directory: ``<run>/run.lock``, held by the ``sif run`` that writes the run.

The lock is an exclusive ``flock`` on that file, which also holds the holder's pid, host and start time. The
kernel drops a ``flock`` when its process dies, however it dies, so a lock left by a killed run is free: the
next run takes it over and says whose it was. A second run while the holder lives is refused at once with one
line naming the run and the holder's pid. Where the file system has no ``flock``, the pid file alone decides: the
lock is held while its process runs on this host (a process on another host cannot be checked from here and
counts as gone). The lock is re-entrant within a process (``sif run --seeds`` runs several runs in one).

Also here, because the lock needs them and they are light: which run directory a ``sif run`` writes, and the
record of a process (pid, host, start time) that the manifest keeps for a running stage.
"""

from __future__ import annotations

import datetime as dt
import errno
import fcntl
import json
import os
import platform
import time
from pathlib import Path

import psutil

from sif_lib.core.errors import InputError
from sif_lib.core.io import outputs_dir, storage_error
from sif_lib.runner.seed_runs import plan_seeds

LOCK_NAME = "run.lock"
_HELD: dict[Path, RunLock] = {}  # locks this process holds, by lock path, with their depth


def process_record() -> dict:
    """This process: enough to tell later whether it still runs (a pid can be reused, so its start time is kept)."""
    me = psutil.Process()
    return {"pid": me.pid, "host": platform.node(), "pid_started": me.create_time()}


def process_alive(record: dict) -> bool:
    """Whether the process of a :func:`process_record` still runs. A record from another host cannot be checked
    from here and counts as gone."""
    if not isinstance(record, dict) or record.get("host") != platform.node() or not isinstance(record.get("pid"), int):
        return False
    try:
        return psutil.Process(record["pid"]).create_time() == record.get("pid_started")
    except psutil.Error:
        return False


def latest_run(params_path: Path, outputs: Path) -> Path | None:
    """The newest run directory made from this params file (what ``--from`` without ``--run-id`` resumes)."""
    candidates = []
    for manifest in Path(outputs).glob("*/manifest.json"):
        try:
            data = json.loads(manifest.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if Path(data.get("params_file", "")).resolve() == Path(params_path).resolve():
            candidates.append((data.get("created", ""), manifest.parent))
    return max(candidates)[1] if candidates else None


def run_dir_for(params_path: Path, outputs: Path, run_id: str | None, resume: bool) -> Path:
    """The run directory a ``sif run`` writes: ``--run-id``, else with ``resume`` (``--from``/``--only`` without
    ``--reuse``) the latest run of the params file, else a new ``<params stem>-<timestamp>``."""
    if run_id:
        return Path(outputs) / run_id
    if resume:
        found = latest_run(params_path, outputs)
        if found is None:
            raise InputError(f"{params_path}: no earlier run of this params file to resume; pass --run-id")
        return found
    return Path(outputs) / f"{Path(params_path).stem}-{dt.datetime.now().strftime('%Y%m%d-%H%M%S')}"


def _holder_line(run_dir: Path, holder: dict) -> str:
    pid = holder.get("pid", "?")
    where = f" on {holder['host']}" if holder.get("host") and holder.get("host") != platform.node() else ""
    since = f" since {holder['since']}" if holder.get("since") else ""
    return (f"{run_dir}: run {run_dir.name} is running in process {pid}{where}{since} (lock {run_dir / LOCK_NAME}); "
            f"wait for it, or stop it, before starting another run here")


def _read_holder(fd: int) -> dict:
    try:
        raw = os.pread(fd, 4096, 0)
        holder = json.loads(raw) if raw.strip() else {}
    except (OSError, ValueError):
        return {}
    return holder if isinstance(holder, dict) else {}


def _flock(fd: int, attempts: int = 5) -> bool | None:
    """Try an exclusive flock a few times over a fraction of a second (a ``sif run`` checking the lock holds it
    for an instant): True when taken, False when another process holds it, None where the file system has none."""
    for attempt in range(attempts):
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            time.sleep(0.05 * (attempt + 1))
        except OSError as err:
            if err.errno in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
                return None
            raise
    return False


class RunLock:
    """The lock of one run directory; see the module docstring. ``acquire`` creates the directory if needed (and
    ``release`` removes it again when it made it and it is still empty)."""

    def __init__(self, run_dir: Path):
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK_NAME
        self.fd: int | None = None
        self.depth = 0
        self.made_dir = False

    def acquire(self, echo=print) -> RunLock:
        key = self.path.absolute()
        held = _HELD.get(key)
        if held is not None:
            held.depth += 1
            return held
        try:
            self.made_dir = not self.run_dir.exists()
            self.run_dir.mkdir(parents=True, exist_ok=True)
            fd = self._open_locked()
        except OSError as err:
            raise (storage_error(err, self.run_dir) or err) from None
        previous = _read_holder(fd)
        if previous.get("pid") is not None and previous.get("pid") != os.getpid():
            echo(f"{self.run_dir}: took over the lock left by process {previous.get('pid')}, which is gone")
        record = {**process_record(), "since": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, (json.dumps(record) + "\n").encode(), 0)
        except OSError as err:
            os.close(fd)
            raise (storage_error(err, self.path) or err) from None
        self.fd, self.depth = fd, 1
        _HELD[key] = self
        return self

    def _open_locked(self) -> int:
        """Open the lock file and lock it, making sure the file locked is the one at the path (a holder that
        releases removes it, and another run may then make a new one)."""
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            got = _flock(fd)
            holder = _read_holder(fd)
            if got is False or (got is None and process_alive(holder)):
                os.close(fd)
                raise InputError(_holder_line(self.run_dir, holder))
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                return fd
            os.close(fd)

    def release(self) -> None:
        if self.fd is None:
            return
        self.depth -= 1
        if self.depth > 0:
            return
        try:
            if os.fstat(self.fd).st_ino == os.stat(self.path).st_ino:
                self.path.unlink()
        except OSError:
            pass
        os.close(self.fd)  # closing drops the flock
        self.fd = None
        _HELD.pop(self.path.absolute(), None)
        if self.made_dir:
            try:
                self.run_dir.rmdir()  # only when empty: a run that stopped before writing anything
            except OSError:
                pass

    def __enter__(self) -> RunLock:
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def hold(run_dir: Path, echo=print) -> RunLock:
    """Take the lock of ``run_dir`` (``with hold(run_dir): ...``); refused with one line while another process
    holds it."""
    return RunLock(run_dir).acquire(echo)


def check_unlocked(run_dir: Path) -> None:
    """Refuse at once when another process holds ``run_dir``'s lock, without taking it: what ``sif run`` checks
    before it imports the training code, which takes seconds. The lock itself is taken later."""
    path = Path(run_dir) / LOCK_NAME
    if not path.is_file() or path.absolute() in _HELD:
        return
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            free = True
        except BlockingIOError:
            free = False
        except OSError:  # no flock here: the pid file decides
            free = not process_alive(_read_holder(fd))
        if not free:
            raise InputError(_holder_line(Path(run_dir), _read_holder(fd)))
    finally:
        os.close(fd)  # drops the shared lock, if taken


def refuse_if_running(params_file: str | Path, outputs: str | Path | None, run_id: str | None, from_stage=None,
                      only=None, to_stage=None, reuse=None, seeds=None) -> None:
    """``sif run``'s early check (:func:`check_unlocked`) of the run directories it is about to write, found as
    :func:`run_dir_for` and :func:`~sif_lib.runner.seed_runs.plan_seeds` find them. A new run with a timestamped
    name is not checked (its directory does not exist yet), nor is anything when the params file is missing (the
    runner says so)."""
    if not Path(params_file).is_file():
        return
    outputs = Path(outputs) if outputs else outputs_dir()
    if seeds is not None:
        plan = plan_seeds(params_file, seeds, outputs, run_id, None, reuse, from_stage=from_stage,
                          to_stage=to_stage, only=only)
        dirs = ([plan.base_dir] if plan.run_base else []) + [run.run_dir for run in plan.runs]
    else:
        resume = bool((from_stage or only) and not reuse)
        if not (run_id or resume):
            return
        dirs = [run_dir_for(Path(params_file), outputs, run_id, resume)]
    for run_dir in dirs:
        check_unlocked(run_dir)
