"""An HTTP service for the reward model, built on the standard library (``sif serve-rm``).

Endpoints::

    GET  /health     {"status": "ok", "model_dir", "backbone", "uptime_s", "requests_served", "pairs_scored", ...}
    POST /score      {"pairs": [{"response": str, "constraint": str}, ...]}  ->  {"scores": [float, ...]}
    POST /classify   vLLM's classification protocol: {"model"?, "input": str | [str] | [int] | [[int]]}
                     -> {"data": [{"index", "label", "probs": [P(0), P(1)], "num_classes": 2}], "usage", ...}
    GET  /v1/models  {"data": [{"id": the served model name, ...}]}

Each score is P(the response adheres to the constraint). /score builds the paper's input from each pair
(:func:`~sif_lib.reward_model.rm_input.encode_pairs`). /classify speaks vLLM's classification protocol, so that the
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
  JSON error; the clients in :mod:`sif_lib.rm_service.clients` back off and retry;
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
import signal
import socket
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from sif_lib.core.errors import InputError
from sif_lib.reward_model.rm_input import encode_pairs
from sif_lib.reward_model.scorer import RewardScorer
from sif_lib.rm_service.batcher import Batcher
from sif_lib.rm_service.linger import Linger
from sif_lib.rm_service.wire import BadRequest, parse_classify, parse_pairs

DEFAULT_HOST = "127.0.0.1"
DEFAULT_BACKLOG = 1024
DEFAULT_MAX_INFLIGHT = 256
RETRY_AFTER_S = 1
SOMAXCONN_FILE = Path("/proc/sys/net/core/somaxconn")


def somaxconn() -> int | None:
    """The kernel's cap on a listen backlog (Linux), or None where it cannot be read."""
    try:
        return int(SOMAXCONN_FILE.read_text().strip())
    except (OSError, ValueError):
        return None


class _Handler(BaseHTTPRequestHandler):
    server: RewardServer
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
                ids = self.server.encode_pairs(parse_pairs(body, self.server.max_pairs))
            else:
                ids = self.server.encode_classify(*parse_classify(body, self.server.max_pairs,
                                                                   self.server.served_model_name))
        except BadRequest as bad:
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
            raise BadRequest(411, "chunked bodies are not accepted; send Content-Length", close=True)
        raw = self.headers.get("Content-Length")
        if raw is None:
            raise BadRequest(411, "missing Content-Length header", close=True)
        try:
            length = int(raw)
        except ValueError:
            raise BadRequest(400, f"Content-Length is not an integer: {raw!r}", close=True) from None
        if length < 0:
            raise BadRequest(400, "negative Content-Length", close=True)
        if length > self.server.max_request_bytes:
            raise BadRequest(413, f"body of {length} bytes exceeds the limit of {self.server.max_request_bytes}",
                              close=True)
        body = self.rfile.read(length)
        if len(body) < length:
            raise BadRequest(400, f"body ended after {len(body)} of {length} bytes", close=True)
        return body

    def _not_allowed(self) -> None:
        self._linger = True
        self._error(405, f"method {self.command} not allowed; {self.error_endpoints}")

    do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _not_allowed


class RewardServer(ThreadingHTTPServer):
    """The HTTP server plus its batcher; ``close()`` stops both.

    ``scorer`` needs ``tokenizer``, ``max_length`` and ``score_ids(ids)``, as
    :class:`~sif_lib.reward_model.scorer.RewardScorer` has.
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
        self.linger = Linger()
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
                raise BadRequest(400, f"input[{index}] has no tokens")
            if len(row) > limit:
                raise BadRequest(400, f"input[{index}] has {len(row)} tokens; this model takes at most {limit}")
            bad = next((t for t in row if not 0 <= t < self.vocab_size), None)
            if bad is not None:
                raise BadRequest(400, f"input[{index}]: token id {bad} is outside "
                                      f"the vocabulary (0..{self.vocab_size - 1})")
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
            "fingerprint": getattr(self.scorer, "fingerprint", None),
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
    for name, value in (("max_batch", max_batch), ("max_request_bytes", max_request_bytes), ("max_pairs", max_pairs),
                        ("backlog", backlog), ("max_inflight", max_inflight)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise InputError(f"serve-rm: {name} must be a positive integer, got {value!r}")
    if scorer is None:
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
