"""An HTTP service for the reward model, built on the standard library (``sif serve-rm``).

Endpoints::

    GET  /health     {"status": "ok", "model_dir", "backbone", "uptime_s", "requests_served", "pairs_scored", ...}
    POST /score      {"pairs": [{"response": str, "constraint": str}, ...]}  ->  {"scores": [float, ...]}
    POST /classify   vLLM's classification protocol: {"model"?, "input": str | [str] | [int] | [[int]]}
                     -> {"data": [{"index", "label", "probs": [P(0), P(1)], "num_classes": 2}], "usage", ...}
    GET  /v1/models  {"data": [{"id": the served model name, ...}]}

Each score is P(the response adheres to the constraint). /score builds the paper's input from each pair
(:func:`~sif_lib.reward_model.encode_pairs`). /classify speaks vLLM's classification protocol, so that the
client for ``vllm serve RM_DIR --runner pooling --convert classify`` works here too: strings are tokenized and
cut on the right to ``max_length`` tokens; token-id inputs are used as given, and refused when longer than that
or outside the vocabulary. Both endpoints feed one worker thread that owns the model: it packs the inputs of the
waiting requests together up to ``max_batch`` and scores them in one forward pass.

The standard library, not uvicorn and an ASGI app: the model scores one batch at a time on one thread either
way, so an event loop would not score faster, and what broke under load (a listen backlog of 5, unbounded
threads, resets) is fixed here without a new dependency; the CPU stack has no uvicorn. A deployment that wants a
production server can run vLLM instead (``scoring.rm_api: vllm``). Under load:

* the listen backlog is ``backlog`` (1024 by default). Linux caps it at net.core.somaxconn; /health reports both;
* each connection carries one request (``Connection: close``) on its own thread. Beyond ``max_inflight``
  connections being handled or queued, the accepting thread answers at once with 503, ``Retry-After`` and a
  JSON error; the clients in :mod:`sif_lib.reward_model` back off and retry;
* a connection answered before its request was read in full (503, 411, 413, a malformed request line) goes to
  one janitor thread that reads and discards what the client still sends, for a few seconds, before closing it:
  closing with unread input makes the kernel send a reset, which the client would see instead of the answer.

Every bad request gets a 4xx status (an unknown method: 501) and ``{"error": reason}``, and the server goes on
serving. The body size is checked from ``Content-Length`` before anything is read; a request without one is
refused (411), since the service cannot bound what it would read. The server binds only the host it is given,
127.0.0.1 by default.
"""

from __future__ import annotations

import json
import queue
import selectors
import signal
import socket
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable

DEFAULT_HOST = "127.0.0.1"
DEFAULT_BACKLOG = 1024
DEFAULT_MAX_INFLIGHT = 256
RETRY_AFTER_S = 1
BATCH_WAIT_S = 0.005
SOMAXCONN_FILE = Path("/proc/sys/net/core/somaxconn")
# A connection answered early is drained of at most this much, for at most this long, before it is closed.
_LINGER_BYTES = 64 * 1024 * 1024
_LINGER_SECONDS = 5.0
_LINGER_MAX_SOCKETS = 4096


def somaxconn() -> int | None:
    """The kernel's cap on a listen backlog (Linux), or None where it cannot be read."""
    try:
        return int(SOMAXCONN_FILE.read_text().strip())
    except (OSError, ValueError):
        return None


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


class _Linger:
    """One thread that closes connections gracefully: no more writes, then read and discard until EOF or limits."""

    def __init__(self, seconds: float = _LINGER_SECONDS, max_bytes: int = _LINGER_BYTES,
                 max_sockets: int = _LINGER_MAX_SOCKETS):
        self.seconds = seconds
        self.max_bytes = max_bytes
        self.max_sockets = max_sockets
        self._lock = threading.Lock()
        self._pending: list[socket.socket] = []
        self._held = 0
        self._closed = False
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        self._thread = threading.Thread(target=self._run, name="rm-linger", daemon=True)
        self._thread.start()

    def add(self, sock: socket.socket) -> None:
        """Take over ``sock`` (the caller must not use or close it again)."""
        try:
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        with self._lock:
            full = self._closed or self._held >= self.max_sockets
            if not full:
                self._pending.append(sock)
                self._held += 1
        if full:  # a reset is the last resort, when even the janitor is saturated
            sock.close()
            return
        try:
            self._wake_w.send(b"x")
        except OSError:
            pass

    def close(self) -> None:
        with self._lock:
            self._closed = True
        try:
            self._wake_w.send(b"x")
        except OSError:
            pass
        self._thread.join(timeout=10)
        self._wake_w.close()

    def _drop(self, sock: socket.socket) -> None:
        try:
            self._selector.unregister(sock)
        except (KeyError, ValueError):
            pass
        sock.close()
        with self._lock:
            self._held -= 1

    def _run(self) -> None:
        while True:
            for key, _ in self._selector.select(0.25):
                if key.data is None:
                    try:
                        self._wake_r.recv(4096)
                    except OSError:
                        pass
                    continue
                sock, state = key.fileobj, key.data
                try:
                    chunk = sock.recv(65536)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    chunk = b""
                state[1] -= len(chunk)
                if not chunk or state[1] <= 0:
                    self._drop(sock)
            with self._lock:
                pending, self._pending = self._pending, []
                closed = self._closed
            deadline = time.monotonic() + self.seconds
            for sock in pending:
                try:
                    sock.setblocking(False)
                    self._selector.register(sock, selectors.EVENT_READ, [deadline, self.max_bytes])
                except (OSError, ValueError):
                    sock.close()
                    with self._lock:
                        self._held -= 1
            now = time.monotonic()
            for key in list(self._selector.get_map().values()):
                if key.data is not None and (closed or key.data[0] < now):
                    self._drop(key.fileobj)
            if closed:
                self._selector.close()
                self._wake_r.close()
                return


class _BadRequest(Exception):
    def __init__(self, status: int, reason: str, close: bool = False):
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.close = close


def _parse_json(body: bytes) -> Any:
    try:
        return json.loads(body.decode("utf-8"))
    except UnicodeDecodeError:
        raise _BadRequest(400, "body is not UTF-8 text") from None
    except json.JSONDecodeError as err:
        raise _BadRequest(400, f"malformed JSON at line {err.lineno} column {err.colno}: {err.msg}") from None


def _parse_pairs(body: bytes, max_pairs: int) -> list[tuple[str, str]]:
    data = _parse_json(body)
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


def _is_id(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _parse_classify(body: bytes, max_inputs: int, served: str) -> tuple[list, int | None, bool]:
    """(inputs, truncate_prompt_tokens, add_special_tokens); inputs are all strings or all token-id lists."""
    data = _parse_json(body)
    if not isinstance(data, dict):
        raise _BadRequest(400, "body must be a JSON object with key 'input'")
    model = data.get("model")
    if model is not None and model != served:
        status = 400 if not isinstance(model, str) else 404
        raise _BadRequest(status, f"model {model!r} is not served here; GET /v1/models lists {served!r}")
    truncate = data.get("truncate_prompt_tokens")
    if truncate is not None and (not _is_id(truncate) or truncate == 0 or truncate < -1):
        raise _BadRequest(400, f"truncate_prompt_tokens must be -1 or a positive integer, got {truncate!r}")
    special = data.get("add_special_tokens", True)
    if not isinstance(special, bool):
        raise _BadRequest(400, f"add_special_tokens must be true or false, got {type(special).__name__}")
    if "input" not in data:
        raise _BadRequest(400, "missing key 'input'")
    raw = data["input"]
    if isinstance(raw, str):
        inputs: list = [raw]
    elif isinstance(raw, list) and raw and all(_is_id(x) for x in raw):
        inputs = [raw]
    elif isinstance(raw, list) and raw and (all(isinstance(x, str) for x in raw) or all(isinstance(x, list) for x in raw)):
        inputs = raw
    elif isinstance(raw, list) and not raw:
        raise _BadRequest(400, "key 'input' must not be empty")
    else:
        raise _BadRequest(400, "key 'input' must be a string, a list of strings, a list of token ids or a list of "
                               "token-id lists")
    if len(inputs) > max_inputs:
        raise _BadRequest(413, f"too many inputs: {len(inputs)} (at most {max_inputs} per request)")
    for index, item in enumerate(inputs):
        if isinstance(item, list) and not all(_is_id(x) for x in item):
            raise _BadRequest(400, f"input[{index}] must be a list of integer token ids")
    return inputs, (None if truncate in (None, -1) else truncate), special


class _Handler(BaseHTTPRequestHandler):
    server: "RewardServer"
    protocol_version = "HTTP/1.1"
    error_endpoints = "endpoints are GET /health, GET /v1/models, POST /score and POST /classify"

    def setup(self) -> None:
        # A client that stalls mid-request frees its thread (and its in-flight slot) after this many seconds.
        self.timeout = self.server.request_timeout
        self._linger = False
        super().setup()

    def handle(self) -> None:
        # One request per connection: in-flight connections are then exactly in-flight requests.
        self.close_connection = True
        self.handle_one_request()

    def finish(self) -> None:
        super().finish()
        if self._linger:
            # The server closes its own handle after this; the janitor keeps the connection open on a duplicate.
            try:
                self.server.linger.add(self.connection.dup())
            except OSError:
                pass

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.verbose:
            super().log_message(format, *args)

    def parse_request(self) -> bool:
        if not super().parse_request():
            return False
        if self.request_version == "HTTP/0.9":
            self.send_error(400, "HTTP/0.9 requests are not supported")
            return False
        return True

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        # The standard library's malformed-request answers (bad request line, header too long, unknown
        # method), as JSON like every other error here.
        if self.request_version in ("", "HTTP/0.9"):
            self.request_version = "HTTP/1.1"  # so that the status line and headers are written
        self._linger = True
        self._error(code, message or self.responses.get(code, ("error",))[0])

    def _send(self, status: int, payload: dict) -> None:
        body = json.dumps(payload).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.close_connection = True
        # Headers and body in one write: a second small write would wait, under Nagle's algorithm, for the
        # client's delayed ACK (up to 40 ms).
        self._headers_buffer.append(b"\r\n" + body)
        self.flush_headers()

    def _error(self, status: int, reason: str) -> None:
        self.server.count(errors=1)
        self._send(status, {"error": reason})

    def do_GET(self) -> None:
        if self.path == "/health":
            self._send(200, self.server.health())
        elif self.path == "/v1/models":
            self._send(200, self.server.models())
        elif self.path in ("/score", "/classify"):
            self._error(405, f"use POST for {self.path}")
        else:
            self._error(404, f"unknown path {self.path!r}; {self.error_endpoints}")

    def do_POST(self) -> None:
        if self.path not in ("/score", "/classify"):
            self._linger = True  # the body is left unread
            if self.path in ("/health", "/v1/models"):
                self._error(405, f"use GET for {self.path}")
            else:
                self._error(404, f"unknown path {self.path!r}; {self.error_endpoints}")
            return
        try:
            body = self._read_body()
            if self.path == "/score":
                ids = self.server.encode_pairs(_parse_pairs(body, self.server.max_pairs))
            else:
                ids = self.server.encode_classify(*_parse_classify(body, self.server.max_pairs,
                                                                   self.server.served_model_name))
        except _BadRequest as bad:
            self._linger = bad.close
            self._error(bad.status, bad.reason)
            return
        try:
            scores = self.server.batcher.submit(ids, timeout=self.server.score_timeout) if ids else []
        except (RuntimeError, TimeoutError) as err:
            self._error(500, f"scoring failed: {err}")
            return
        self.server.count(requests=1, pairs=len(ids))
        self._send(200, {"scores": scores} if self.path == "/score" else self.server.classify_reply(ids, scores))

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
                              close=True)
        body = self.rfile.read(length)
        if len(body) < length:
            raise _BadRequest(400, f"body ended after {len(body)} of {length} bytes", close=True)
        return body

    def _not_allowed(self) -> None:
        self._linger = True
        self._error(405, f"method {self.command} not allowed; {self.error_endpoints}")

    do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _not_allowed


class RewardServer(ThreadingHTTPServer):
    """The HTTP server plus its batcher; ``close()`` stops both.

    ``scorer`` needs ``tokenizer``, ``max_length`` and ``score_ids(ids)``, as
    :class:`~sif_lib.reward_model.RewardScorer` has.
    """

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], scorer: Any, model_dir: str, max_batch: int = 32,
                 max_request_bytes: int = 4_000_000, max_pairs: int = 1024, verbose: bool = False,
                 score_timeout: float = 600.0, backlog: int = DEFAULT_BACKLOG,
                 max_inflight: int = DEFAULT_MAX_INFLIGHT, request_timeout: float = 30.0,
                 served_model_name: str | None = None):
        if ":" in str(address[0]):
            self.address_family = socket.AF_INET6
        # server_activate() passes this to listen(); the kernel silently caps it at net.core.somaxconn.
        self.request_queue_size = backlog
        self.max_inflight = max_inflight
        self._lock = threading.Lock()
        self._inflight = 0
        self._counts = {"requests": 0, "pairs": 0, "errors": 0, "overloaded": 0}
        super().__init__(address, _Handler)
        self.scorer = scorer
        self.model_dir = model_dir
        self.served_model_name = served_model_name or model_dir
        self.max_batch = max_batch
        self.max_request_bytes = max_request_bytes
        self.max_pairs = max_pairs
        self.verbose = verbose
        self.score_timeout = score_timeout
        self.request_timeout = request_timeout
        self.started = time.monotonic()
        self.created = int(time.time())
        self.somaxconn = somaxconn()
        self.tokenizer = scorer.tokenizer
        self.max_length = int(scorer.max_length)
        self.vocab_size = int(getattr(scorer, "vocab_size", 0) or len(scorer.tokenizer))
        id2label = getattr(getattr(getattr(scorer, "model", None), "config", None), "id2label", None) or {}
        self.labels = [str(id2label.get(i, f"LABEL_{i}")) for i in (0, 1)]
        # Hugging Face fast tokenizers are not safe to call from several threads at once.
        self.encode_lock = threading.Lock()
        self.linger = _Linger()
        self.batcher = Batcher(scorer, max_batch=max_batch, in_flight=lambda: self._inflight)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        host = f"[{host}]" if ":" in str(host) else host
        return f"http://{host}:{port}"

    # -- admission -------------------------------------------------------------------------------------------

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._lock:
            admitted = self._inflight < self.max_inflight
            if admitted:
                self._inflight += 1
            else:
                self._counts["overloaded"] += 1
        if not admitted:
            self._refuse(request)
            return
        try:
            super().process_request(request, client_address)
        except RuntimeError:  # no thread could be started: answer as overloaded
            with self._lock:
                self._inflight -= 1
                self._counts["overloaded"] += 1
            self._refuse(request)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self._lock:
                self._inflight -= 1

    def _refuse(self, request: socket.socket) -> None:
        """503 on the accepting thread, before reading the request: a few hundred bytes never block the send."""
        body = json.dumps({"error": f"overloaded: {self.max_inflight} requests in flight (max_inflight); "
                                    f"retry after {RETRY_AFTER_S} s"}).encode("utf-8")
        head = (f"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\nRetry-After: {RETRY_AFTER_S}\r\nConnection: close\r\n\r\n")
        try:
            request.setblocking(False)
            request.send(head.encode("ascii") + body)
        except OSError:
            pass
        self.linger.add(request)

    # -- scoring ---------------------------------------------------------------------------------------------

    def encode_pairs(self, pairs: list[tuple[str, str]]) -> list[list[int]]:
        from sif_lib.reward_model import encode_pairs

        with self.encode_lock:
            return encode_pairs(self.tokenizer, pairs, self.max_length)

    def encode_classify(self, inputs: list, truncate: int | None, special: bool) -> list[list[int]]:
        limit = min(self.max_length, truncate) if truncate else self.max_length
        if isinstance(inputs[0], str):
            with self.encode_lock:
                ids = self.tokenizer(inputs, add_special_tokens=special)["input_ids"]
            ids = [row[:limit] for row in ids]
        else:
            ids = inputs
        for index, row in enumerate(ids):
            if not row:
                raise _BadRequest(400, f"input[{index}] has no tokens")
            if len(row) > limit:
                raise _BadRequest(400, f"input[{index}] has {len(row)} tokens; this model takes at most {limit}")
            bad = next((t for t in row if not 0 <= t < self.vocab_size), None)
            if bad is not None:
                raise _BadRequest(400, f"input[{index}]: token id {bad} is outside the vocabulary "
                                       f"(0..{self.vocab_size - 1})")
        return ids

    def classify_reply(self, ids: list[list[int]], scores: list[float]) -> dict:
        tokens = sum(len(row) for row in ids)
        return {
            "id": f"classify-{uuid.uuid4().hex}",
            "object": "list",
            "created": int(time.time()),
            "model": self.served_model_name,
            "data": [{"index": i, "label": self.labels[int(p >= 0.5)], "probs": [1.0 - p, p], "num_classes": 2}
                     for i, p in enumerate(scores)],
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens, "completion_tokens": 0,
                      "prompt_tokens_details": None},
        }

    def models(self) -> dict:
        return {"object": "list", "data": [{"id": self.served_model_name, "object": "model", "created": self.created,
                                            "owned_by": "sif", "root": self.model_dir,
                                            "max_model_len": self.max_length}]}

    # -- bookkeeping -----------------------------------------------------------------------------------------

    def count(self, requests: int = 0, pairs: int = 0, errors: int = 0) -> None:
        with self._lock:
            self._counts["requests"] += requests
            self._counts["pairs"] += pairs
            self._counts["errors"] += errors

    def health(self) -> dict:
        info = getattr(self.scorer, "info", {}) or {}
        with self._lock:
            counts = dict(self._counts)
            inflight = self._inflight
        cap = self.somaxconn
        return {
            "status": "ok",
            "model_dir": self.model_dir,
            "served_model_name": self.served_model_name,
            "backbone": info.get("backbone"),
            "mode": info.get("mode"),
            "max_length": self.max_length,
            "uptime_s": round(time.monotonic() - self.started, 3),
            "requests_served": counts["requests"],
            "pairs_scored": counts["pairs"],
            "rejected_requests": counts["errors"],
            "overloaded_requests": counts["overloaded"],
            "inflight": inflight,
            "max_inflight": self.max_inflight,
            "batches": self.batcher.batches,
            "max_batch": self.max_batch,
            "max_pairs": self.max_pairs,
            "max_request_bytes": self.max_request_bytes,
            "backlog": self.request_queue_size,
            "somaxconn": cap,
            # What listen() really got: Linux caps the backlog at net.core.somaxconn without a word.
            "effective_backlog": min(self.request_queue_size, cap) if cap else self.request_queue_size,
        }

    def close(self) -> None:
        self.server_close()
        self.batcher.close()
        self.linger.close()


def make_server(model_dir: str | Path, host: str = DEFAULT_HOST, port: int = 8765, max_batch: int = 32,
                max_request_bytes: int = 4_000_000, max_pairs: int = 1024, device: str = "auto",
                scorer: Any = None, verbose: bool = False, backlog: int = DEFAULT_BACKLOG,
                max_inflight: int = DEFAULT_MAX_INFLIGHT, request_timeout: float = 30.0,
                served_model_name: str | None = None) -> RewardServer:
    """Load the model and bind the server without serving; call ``serve_forever()`` (e.g. on a thread).

    ``port=0`` picks a free port (see ``server.url``). ``scorer`` replaces loading ``model_dir``.
    ``served_model_name`` is the name /v1/models lists and /classify accepts (default: ``model_dir`` as given,
    as vLLM does).
    """
    from sif_lib.errors import InputError

    for name, value in (("max_batch", max_batch), ("max_request_bytes", max_request_bytes), ("max_pairs", max_pairs),
                        ("backlog", backlog), ("max_inflight", max_inflight)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise InputError(f"serve-rm: {name} must be a positive integer, got {value!r}")
    if scorer is None:
        from sif_lib.reward_model import RewardScorer

        scorer = RewardScorer.from_dir(model_dir, device=device, batch_size=max_batch)
    try:
        return RewardServer((host, port), scorer, str(model_dir), max_batch=max_batch,
                            max_request_bytes=max_request_bytes, max_pairs=max_pairs, verbose=verbose,
                            backlog=backlog, max_inflight=max_inflight, request_timeout=request_timeout,
                            served_model_name=served_model_name)
    except OSError as err:
        raise InputError(f"serve-rm: cannot bind {host}:{port} ({err.strerror or err})") from None


def serve(model_dir: str | Path, host: str = DEFAULT_HOST, port: int = 8765, max_batch: int = 32,
          max_request_bytes: int = 4_000_000, max_pairs: int = 1024, device: str = "auto",
          backlog: int = DEFAULT_BACKLOG, max_inflight: int = DEFAULT_MAX_INFLIGHT,
          served_model_name: str | None = None, verbose: bool = True) -> None:
    """Serve until SIGINT or SIGTERM, then finish in-flight requests and close."""
    server = make_server(model_dir, host=host, port=port, max_batch=max_batch, max_request_bytes=max_request_bytes,
                         max_pairs=max_pairs, device=device, verbose=verbose, backlog=backlog,
                         max_inflight=max_inflight, served_model_name=served_model_name)
    stop = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, name="rm-http",
                              daemon=True)
    thread.start()
    health = server.health()
    print(f"reward model {Path(model_dir)} serving on {server.url} (POST /score, POST /classify, GET /v1/models, "
          f"GET /health); model name {server.served_model_name!r}, max_inflight {max_inflight}, listen backlog "
          f"{health['effective_backlog']} (asked {backlog}; net.core.somaxconn {health['somaxconn']})", flush=True)
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
