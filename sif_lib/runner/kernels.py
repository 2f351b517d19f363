"""The stage kernels ``sif run`` starts: how they talk (Unix sockets), how they are stopped, and why one died.

A kernel that dies while its stage runs (nbclient's "Kernel died") is usually the out-of-memory killer's work:
the kernel gets SIGKILL and nothing of the stage is left to say so. :class:`StageWatch` keeps what is needed to
say it: the kernel's process (for the signal it died of), the peak resident memory of its process tree, and the
``oom_kill`` count of this process's cgroup, read before and after the stage.
"""

from __future__ import annotations

import platform
import resource
import signal
import threading
from pathlib import Path

import psutil

from sif_lib.core.io import human_bytes

_CGROUP_ROOT = Path("/sys/fs/cgroup")


def ipc_kernel_manager_class(socket_dir: Path, watch: StageWatch | None = None):
    """A kernel manager whose kernel talks over Unix sockets: a headless run opens no TCP ports, so other users
    of a shared GPU server cannot read the stage kernels' (unencrypted) traffic, and ipykernel does not warn.
    The sockets live in ``socket_dir`` (jupyter_client would put them in the kernel's working directory,
    notebooks/, where a killed kernel leaves them behind). Each kernel it starts is shown to ``watch``.

    Its shutdown does not interrupt the kernel first, as jupyter_client's does (SIGINT, then the shutdown request).
    papermill shuts a kernel down as soon as the reply to its last request (``kernel_info``, after the last cell)
    arrives; the kernel may still be finishing that request's handler, where ipykernel lets SIGINT raise, and it
    then logs "ERROR | KeyboardInterrupt caught in kernel." to the terminal after a stage that went well. The
    shutdown request alone ends an idle kernel; one still busy (a cell past its timeout) gets SIGTERM and then
    SIGKILL from jupyter_client's shutdown, as before."""
    from jupyter_client.manager import AsyncKernelManager  # heavy: only when stages run

    class IPCKernelManager(AsyncKernelManager):
        def __init__(self, **kwargs):
            kwargs.setdefault("transport", "ipc")
            kwargs.setdefault("ip", str(socket_dir / "kernel"))
            super().__init__(**kwargs)

        async def start_kernel(self, **kwargs):
            await super().start_kernel(**kwargs)
            if watch is not None:
                watch.started(getattr(self.provisioner, "process", None))

        async def _async_interrupt_kernel(self):
            if self.shutting_down:  # the first step of shutdown_kernel: skipped (see above)
                return
            await super()._async_interrupt_kernel()

    return IPCKernelManager


def stop_children(grace_s: float = 5.0) -> None:
    """End every process this one started (the stage kernel, and a training launch with its workers)."""
    children = psutil.Process().children(recursive=True)
    for child in children:
        try:
            child.terminate()
        except psutil.Error:
            pass
    _, alive = psutil.wait_procs(children, timeout=grace_s)
    for child in alive:
        try:
            child.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(alive, timeout=grace_s)


def _own_cgroup() -> tuple[Path, str] | None:
    """This process's cgroup folder and its version ("2", or "1" for the v1 memory controller), or None."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        number, controllers, path = (line.split(":", 2) + ["", ""])[:3]
        if number == "0" and controllers == "":
            return _CGROUP_ROOT / path.lstrip("/"), "2"
    for line in lines:
        _, controllers, path = (line.split(":", 2) + ["", ""])[:3]
        if "memory" in controllers.split(","):
            return _CGROUP_ROOT / "memory" / path.lstrip("/"), "1"
    return None


def _read_field(path: Path, key: str) -> int | None:
    try:
        for line in path.read_text().splitlines():
            name, _, value = line.partition(" ")
            if name == key:
                return int(value)
    except (OSError, ValueError):
        return None
    return None


def oom_kills() -> int | None:
    """How many processes of this cgroup the out-of-memory killer has killed (cgroup v2 ``memory.events``, or
    v1 ``memory.oom_control``); None where that cannot be read."""
    found = _own_cgroup()
    if found is None:
        return None
    folder, version = found
    return _read_field(folder / ("memory.events" if version == "2" else "memory.oom_control"), "oom_kill")


def memory_limit() -> int:
    """The memory this process may use: its cgroup's limit where one is set, else the machine's."""
    total = psutil.virtual_memory().total
    found = _own_cgroup()
    if found is None:
        return total
    folder, version = found
    try:
        raw = (folder / ("memory.max" if version == "2" else "memory.limit_in_bytes")).read_text().strip()
        return min(total, int(raw))
    except (OSError, ValueError):  # "max": no limit
        return total


def _children_maxrss() -> int:
    """Peak resident memory of the largest child this process has waited for, in bytes (Linux counts KiB)."""
    rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return rss if platform.system() == "Darwin" else rss * 1024


class StageWatch:
    """Watches one stage kernel from its start to its end (``with StageWatch() as watch:``). Samples the
    resident memory of the kernel's process tree twice a second; after a kernel died, :meth:`death` says of
    what. The peak is the largest of: the sampled tree total, the kernel's own high-water mark at the last
    sample, and the peak the system reports for waited-for children when it rose during the stage (a peak
    reached between two samples shows only through that last figure)."""

    INTERVAL_S = 0.5

    def __init__(self):
        self.process = None  # the kernel's Popen, once started
        self.peak_bytes = 0
        self._oom_before = oom_kills()
        self._children_before = _children_maxrss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sif-stage-watch", daemon=True)

    def __enter__(self) -> StageWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def started(self, process) -> None:
        self.process = process

    def _run(self) -> None:
        while not self._stop.wait(self.INTERVAL_S):
            self.sample()

    def sample(self) -> None:
        pid = getattr(self.process, "pid", None)
        if pid is None:
            return
        try:
            kernel = psutil.Process(pid)
            tree = [kernel, *kernel.children(recursive=True)]
        except psutil.Error:
            return
        total = 0
        for proc in tree:
            try:
                total += proc.memory_info().rss
            except psutil.Error:
                continue
        self.peak_bytes = max(self.peak_bytes, total, _high_water_mark(pid))

    def peak(self) -> int:
        after = _children_maxrss()
        return max(self.peak_bytes, after if after > self._children_before else 0)

    def death(self) -> dict | None:
        """How the kernel ended, when it was killed by a signal: ``{"cause", "signal", "peak_rss_mb", "line"}``,
        ``line`` being one sentence for the manifest and the terminal. None while it runs, when it exited by
        itself, or when it was never seen."""
        if self.process is None:
            return None
        code = self.process.poll()
        if code is None or code >= 0:
            return None
        try:
            sig = signal.Signals(-code).name
        except ValueError:
            sig = f"signal {-code}"
        peak, limit = self.peak(), memory_limit()
        memory = f"peak memory {human_bytes(peak)} of {human_bytes(limit)}"
        oom_after = oom_kills()
        if self._oom_before is not None and oom_after is not None and oom_after > self._oom_before:
            cause = "oom"
            line = (f"the stage's kernel was killed by the out-of-memory killer ({sig}; the cgroup's oom_kill count "
                    f"rose from {self._oom_before} to {oom_after}); {memory}")
        elif sig == "SIGKILL":
            cause = "SIGKILL"
            who = ("not by the out-of-memory killer of this cgroup: by another process or a scheduler"
                   if oom_after is not None else "by the out-of-memory killer, another process or a scheduler")
            line = f"the stage's kernel was killed with SIGKILL ({who}); {memory}"
        else:
            cause = sig
            line = f"the stage's kernel died of {sig}; {memory}"
        return {"cause": cause, "signal": sig, "peak_rss_mb": round(peak / 2**20, 1), "line": line}


def _high_water_mark(pid: int) -> int:
    """A process's own peak resident memory (``VmHWM``), in bytes; 0 where it cannot be read."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return 0
    return 0
