"""An HTTP service for the reward model, built on the standard library (``sif serve-rm``).

Endpoints::

    GET  /health   {"status": "ok", "model_dir", "backbone", "uptime_s", "requests_served", "pairs_scored", ...}
    POST /score    {"pairs": [{"response": str, "constraint": str}, ...]}  ->  {"scores": [float, ...]}

Each score is P(the response adheres to the constraint). Requests are handled on threads, but the model runs
on one worker thread: it takes the waiting requests off a queue, packs their pairs together up to
``max_batch`` (waiting a few milliseconds for more to arrive), scores them in one forward pass and hands each
request its own slice. Concurrent clients therefore share batches instead of fighting over the model.

Every bad request gets a 4xx status and ``{"error": reason}``, and the server goes on serving. The body size
is checked from ``Content-Length`` before anything is read; a request without one is refused (411), since the
service cannot bound what it would read. The server binds only the host it is given, 127.0.0.1 by default.
"""

from __future__ import annotations

import json
import queue
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

DEFAULT_HOST = "127.0.0.1"
BATCH_WAIT_S = 0.005
# After answering 413 to an oversized body, read and discard up to this much of it, for at most this long, so
# that a client still sending gets to read the answer instead of a connection reset.
_DRAIN_LIMIT = 64 * 1024 * 1024
_DRAIN_SECONDS = 3.0


class _Job:
    __slots__ = ("pairs", "done", "scores", "error")

    def __init__(self, pairs: list[tuple[str, str]]):
        self.pairs = pairs
        self.done = threading.Event()
        self.scores: list[float] | None = None
        self.error: str | None = None


class Batcher:
    """One worker thread that scores queued jobs, packing pairs of concurrent requests into shared batches."""

    def __init__(self, scorer: Any, max_batch: int = 32, wait_s: float = BATCH_WAIT_S):
        self.scorer = scorer
        self.max_batch = max(1, int(max_batch))
        self.wait_s = wait_s
        self.queue: queue.Queue[_Job | None] = queue.Queue()
        self.batches = 0
        self._thread = threading.Thread(target=self._run, name="rm-batcher", daemon=True)
        self._thread.start()

    def submit(self, pairs: list[tuple[str, str]], timeout: float | None = None) -> list[float]:
        job = _Job(pairs)
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
        jobs, size = [first], len(first.pairs)
        deadline = time.monotonic() + self.wait_s
        while size < self.max_batch:
            remaining = deadline - time.monotonic()
            try:
                job = self.queue.get(timeout=max(0.0, remaining)) if remaining > 0 else self.queue.get_nowait()
            except queue.Empty:
                break
            if job is None:
                return jobs, True
            jobs.append(job)
            size += len(job.pairs)
        return jobs, False

    def _run(self) -> None:
        stop = False
        while not stop:
            first = self.queue.get()
            if first is None:
                break
            jobs, stop = self._collect(first)
            pairs = [pair for job in jobs for pair in job.pairs]
            try:
                scores: list[float] = []
                # A single large request still runs in forward passes of at most max_batch pairs.
                for start in range(0, len(pairs), self.max_batch):
                    scores.extend(self.scorer.score(pairs[start:start + self.max_batch]))
                    self.batches += 1
                offset = 0
                for job in jobs:
                    job.scores = scores[offset:offset + len(job.pairs)]
                    offset += len(job.pairs)
            except Exception as err:  # the worker must survive a failing batch; each waiting request hears why
                for job in jobs:
                    job.error = f"{type(err).__name__}: {err}"
            for job in jobs:
                job.done.set()


class _BadRequest(Exception):
    def __init__(self, status: int, reason: str, close: bool = False, drain: int = 0):
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.close = close
        self.drain = drain


def _parse_pairs(body: bytes, max_pairs: int) -> list[tuple[str, str]]:
    try:
        data = json.loads(body.decode("utf-8"))
    except UnicodeDecodeError:
        raise _BadRequest(400, "body is not UTF-8 text") from None
    except json.JSONDecodeError as err:
        raise _BadRequest(400, f"malformed JSON at line {err.lineno} column {err.colno}: {err.msg}") from None
    if not isinstance(data, dict):
        raise _BadRequest(400, "body must be a JSON object with key 'pairs'")
    if "pairs" not in data:
        raise _BadRequest(400, "missing key 'pairs'")
    items = data["pairs"]
    if not isinstance(items, list):
        raise _BadRequest(400, "key 'pairs' must be a list")
    if len(items) > max_pairs:
        raise _BadRequest(413, f"too many pairs: {len(items)} (at most {max_pairs} per request)")
    pairs = []
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise _BadRequest(400, f"pairs[{index}] must be an object with 'response' and 'constraint'")
        for key in ("response", "constraint"):
            if key not in item:
                raise _BadRequest(400, f"pairs[{index}]: missing key '{key}'")
            if not isinstance(item[key], str):
                raise _BadRequest(400, f"pairs[{index}].{key} must be a string, got {type(item[key]).__name__}")
        pairs.append((item["response"], item["constraint"]))
    return pairs


class _Handler(BaseHTTPRequestHandler):
    server: "RewardServer"
    protocol_version = "HTTP/1.1"
    # A client that stalls mid-request frees its thread after this many seconds.
    timeout = 30

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.verbose:
            super().log_message(format, *args)

    def _send(self, status: int, payload: dict, close: bool = False) -> None:
        body = json.dumps(payload).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(body)

    def _error(self, status: int, reason: str, close: bool = False) -> None:
        self.server.count(errors=1)
        self._send(status, {"error": reason}, close=close)

    def do_GET(self) -> None:
        if self.path == "/health":
            self._send(200, self.server.health())
        elif self.path == "/score":
            self._error(405, "use POST for /score")
        else:
            self._error(404, f"unknown path {self.path!r}; endpoints are GET /health and POST /score")

    def do_POST(self) -> None:
        if self.path != "/score":
            if self.path == "/health":
                self._error(405, "use GET for /health", close=True)
            else:
                self._error(404, f"unknown path {self.path!r}; endpoints are GET /health and POST /score", close=True)
            return
        try:
            body = self._read_body()
            pairs = _parse_pairs(body, self.server.max_pairs)
        except _BadRequest as bad:
            self._error(bad.status, bad.reason, close=bad.close)
            if bad.drain:
                self._drain(bad.drain)
            return
        try:
            scores = self.server.batcher.submit(pairs, timeout=self.server.score_timeout) if pairs else []
        except (RuntimeError, TimeoutError) as err:
            self._error(500, f"scoring failed: {err}")
            return
        self.server.count(requests=1, pairs=len(pairs))
        self._send(200, {"scores": scores})

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            raise _BadRequest(411, "chunked bodies are not accepted; send Content-Length", close=True)
        raw = self.headers.get("Content-Length")
        if raw is None:
            raise _BadRequest(411, "missing Content-Length header", close=True)
        try:
            length = int(raw)
        except ValueError:
            raise _BadRequest(400, f"Content-Length is not an integer: {raw!r}", close=True) from None
        if length < 0:
            raise _BadRequest(400, "negative Content-Length", close=True)
        if length > self.server.max_request_bytes:
            raise _BadRequest(413, f"body of {length} bytes exceeds the limit of {self.server.max_request_bytes}",
                              close=True, drain=length)
        body = self.rfile.read(length)
        if len(body) < length:
            raise _BadRequest(400, f"body ended after {len(body)} of {length} bytes", close=True)
        return body

    def _drain(self, length: int) -> None:
        left = min(length, _DRAIN_LIMIT)
        deadline = time.monotonic() + _DRAIN_SECONDS
        try:
            self.wfile.flush()
            self.connection.settimeout(0.5)
            while left > 0 and time.monotonic() < deadline:
                chunk = self.rfile.read1(min(left, 65536))
                if not chunk:
                    break
                left -= len(chunk)
        except (OSError, ValueError):
            pass

    def _not_allowed(self) -> None:
        self._error(405, f"method {self.command} not allowed; endpoints are GET /health and POST /score", close=True)

    do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _not_allowed


class RewardServer(ThreadingHTTPServer):
    """The HTTP server plus its batcher; ``close()`` stops both."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], scorer: Any, model_dir: str, max_batch: int = 32,
                 max_request_bytes: int = 4_000_000, max_pairs: int = 1024, verbose: bool = False,
                 score_timeout: float = 600.0):
        if ":" in str(address[0]):
            import socket

            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)
        self.scorer = scorer
        self.model_dir = model_dir
        self.max_batch = max_batch
        self.max_request_bytes = max_request_bytes
        self.max_pairs = max_pairs
        self.verbose = verbose
        self.score_timeout = score_timeout
        self.started = time.monotonic()
        self._lock = threading.Lock()
        self._counts = {"requests": 0, "pairs": 0, "errors": 0}
        self.batcher = Batcher(scorer, max_batch=max_batch)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        host = f"[{host}]" if ":" in str(host) else host
        return f"http://{host}:{port}"

    def count(self, requests: int = 0, pairs: int = 0, errors: int = 0) -> None:
        with self._lock:
            self._counts["requests"] += requests
            self._counts["pairs"] += pairs
            self._counts["errors"] += errors

    def health(self) -> dict:
        info = getattr(self.scorer, "info", {}) or {}
        with self._lock:
            counts = dict(self._counts)
        return {
            "status": "ok",
            "model_dir": self.model_dir,
            "backbone": info.get("backbone"),
            "mode": info.get("mode"),
            "max_length": getattr(self.scorer, "max_length", None),
            "uptime_s": round(time.monotonic() - self.started, 3),
            "requests_served": counts["requests"],
            "pairs_scored": counts["pairs"],
            "rejected_requests": counts["errors"],
            "batches": self.batcher.batches,
            "max_batch": self.max_batch,
            "max_pairs": self.max_pairs,
            "max_request_bytes": self.max_request_bytes,
        }

    def close(self) -> None:
        self.server_close()
        self.batcher.close()


def make_server(model_dir: str | Path, host: str = DEFAULT_HOST, port: int = 8765, max_batch: int = 32,
                max_request_bytes: int = 4_000_000, max_pairs: int = 1024, device: str = "auto",
                scorer: Any = None, verbose: bool = False) -> RewardServer:
    """Load the model and bind the server without serving; call ``serve_forever()`` (e.g. on a thread).

    ``port=0`` picks a free port (see ``server.url``). ``scorer`` replaces loading ``model_dir``.
    """
    from sif_lib.errors import InputError

    for name, value in (("max_batch", max_batch), ("max_request_bytes", max_request_bytes), ("max_pairs", max_pairs)):
        if not isinstance(value, int) or value < 1:
            raise InputError(f"serve-rm: {name} must be a positive integer, got {value!r}")
    if scorer is None:
        from sif_lib.reward_model import RewardScorer

        scorer = RewardScorer.from_dir(model_dir, device=device, batch_size=max_batch)
    try:
        return RewardServer((host, port), scorer, str(model_dir), max_batch=max_batch,
                            max_request_bytes=max_request_bytes, max_pairs=max_pairs, verbose=verbose)
    except OSError as err:
        raise InputError(f"serve-rm: cannot bind {host}:{port} ({err.strerror or err})") from None


def serve(model_dir: str | Path, host: str = DEFAULT_HOST, port: int = 8765, max_batch: int = 32,
          max_request_bytes: int = 4_000_000, max_pairs: int = 1024, device: str = "auto") -> None:
    """Serve until SIGINT or SIGTERM, then finish in-flight requests and close."""
    server = make_server(model_dir, host=host, port=port, max_batch=max_batch,
                         max_request_bytes=max_request_bytes, max_pairs=max_pairs, device=device, verbose=True)
    stop = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, name="rm-http",
                              daemon=True)
    thread.start()
    print(f"reward model {Path(model_dir)} serving on {server.url} (POST /score, GET /health)", flush=True)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        print("reward model server stopped", file=sys.stderr, flush=True)
