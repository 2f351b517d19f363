"""The reward service's one worker thread: it owns the model and packs concurrent requests into shared batches.

Requests put their token ids on a queue; the worker takes what is waiting, adds what arrives within
``wait_s`` (only while other requests are in flight, so a lone client does not wait), scores up to
``max_batch`` inputs per forward pass and hands each request its own slice. A failing batch fails only the
requests in it; the worker goes on.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from typing import Any

BATCH_WAIT_S = 0.005


class _Job:
    __slots__ = ("ids", "done", "scores", "error")

    def __init__(self, ids: list[list[int]]):
        self.ids = ids
        self.done = threading.Event()
        self.scores: list[float] | None = None
        self.error: str | None = None


class Batcher:
    """One worker thread that scores queued jobs (token ids), packing the inputs of concurrent requests together.

    It waits up to ``wait_s`` for more jobs only while ``in_flight()`` says more requests are being handled than
    it has collected, so that a lone client does not pay the wait.
    """

    def __init__(self, scorer: Any, max_batch: int = 32, wait_s: float = BATCH_WAIT_S,
                 in_flight: Callable[[], int] | None = None):
        self.scorer = scorer
        self.max_batch = max(1, int(max_batch))
        self.wait_s = wait_s
        self.in_flight = in_flight
        self.queue: queue.Queue[_Job | None] = queue.Queue()
        self.batches = 0
        self._thread = threading.Thread(target=self._run, name="rm-batcher", daemon=True)
        self._thread.start()

    def submit(self, ids: list[list[int]], timeout: float | None = None) -> list[float]:
        job = _Job(ids)
        self.queue.put(job)
        if not job.done.wait(timeout):
            raise TimeoutError("scoring timed out")
        if job.error is not None:
            raise RuntimeError(job.error)
        return job.scores or []

    def close(self) -> None:
        self.queue.put(None)
        self._thread.join(timeout=10)

    def _collect(self, first: _Job) -> tuple[list[_Job], bool]:
        jobs, size = [first], len(first.ids)
        deadline = time.monotonic() + self.wait_s
        while size < self.max_batch:
            try:
                job = self.queue.get_nowait()
            except queue.Empty:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or (self.in_flight is not None and self.in_flight() <= len(jobs)):
                    break
                try:
                    job = self.queue.get(timeout=min(remaining, 0.001))
                except queue.Empty:
                    continue
            if job is None:
                return jobs, True
            jobs.append(job)
            size += len(job.ids)
        return jobs, False

    def _run(self) -> None:
        stop = False
        while not stop:
            first = self.queue.get()
            if first is None:
                break
            jobs, stop = self._collect(first)
            ids = [row for job in jobs for row in job.ids]
            try:
                scores: list[float] = []
                # A single large request still runs in forward passes of at most max_batch inputs.
                for start in range(0, len(ids), self.max_batch):
                    scores.extend(self.scorer.score_ids(ids[start:start + self.max_batch]))
                    self.batches += 1
                offset = 0
                for job in jobs:
                    job.scores = scores[offset:offset + len(job.ids)]
                    offset += len(job.ids)
            except Exception as err:  # the worker must survive a failing batch; each waiting request hears why
                for job in jobs:
                    job.error = f"{type(err).__name__}: {err}"
            for job in jobs:
                job.done.set()
