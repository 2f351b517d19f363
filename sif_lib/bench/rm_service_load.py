"""``sif bench serve-rm``: the reward service's throughput and latency as concurrent clients grow.

Our batched ``sif serve-rm`` (max_batch 32) is loaded by 1, 32 and 200 concurrent clients, each posting
``pairs_per_request`` pairs per request, back to back. Next to it runs the pattern of the paper's code: one pair
per request, one request at a time, against a server that scores each request alone (max_batch 1). Each server
runs in its own process (``python -m sif_lib serve-rm``), one at a time, so that the clients' threads do not
share its interpreter; the clients are :class:`~sif_lib.rm_service.clients.HttpRewardScorer` (retrying a 503).
Latency is per request, from the client's side, retries included. Pairs are those of ``sif bench reward``.
Without ``rm_dir`` the served model is the params' backbone with a fresh, untrained head (saved to a temporary
directory): its speed does not depend on training. Server start-up and a few warm-up requests are not timed.

Printed: a table of pairs/s, p50 and p95 latency per setting, and each setting's pairs/s over the baseline's.
Clients and servers share the machine's cores, so these are figures for one machine, not for the service alone.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from sif_lib.bench.rm_speed import bench_pairs
from sif_lib.config.params import Params, load_params
from sif_lib.core.errors import InputError
from sif_lib.core.io import write_json
from sif_lib.policy import models
from sif_lib.reward_model.rm_input import META_FILE, RM_FORMAT
from sif_lib.rm_service.clients import HttpRewardScorer

BATCHED_MAX_BATCH = 32


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _health(url: str) -> dict:
    with urllib.request.urlopen(url + "/health", timeout=10) as response:
        return json.loads(response.read())


class _Server:
    """``sif serve-rm`` in a child process, stopped (and killed if need be) on exit."""

    def __init__(self, rm_dir: Path, max_batch: int, device: str, max_pairs: int):
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tempfile.TemporaryFile()
        command = [sys.executable, "-m", "sif_lib", "serve-rm", "--model", str(rm_dir), "--port", str(self.port),
                   "--max-batch", str(max_batch), "--max-pairs", str(max_pairs), "--device", device, "--quiet"]
        self.proc = subprocess.Popen(command, stdout=self.log, stderr=subprocess.STDOUT,
                                     env={**os.environ, "TOKENIZERS_PARALLELISM": "false"})

    def __enter__(self) -> _Server:
        deadline = time.monotonic() + 300
        while True:
            if self.proc.poll() is not None:
                self.log.seek(0)
                raise RuntimeError(f"sif serve-rm exited with {self.proc.returncode}: "
                                   f"{self.log.read().decode(errors='replace')[-2000:]}")
            try:
                _health(self.url)
                return self
            except (urllib.error.URLError, OSError):
                if time.monotonic() > deadline:
                    raise RuntimeError("sif serve-rm did not answer /health within 300 s") from None
                time.sleep(0.2)

    def __exit__(self, *exc: Any) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=30)
        self.log.close()


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]


def _load(url: str, pairs: list[tuple[str, str]], clients: int, per_request: int, n_requests: int) -> dict:
    """``clients`` threads post ``n_requests`` requests in all, back to back; latencies are per request."""
    per_client = math.ceil(n_requests / clients)
    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors: list[str] = []
    scorers = [HttpRewardScorer(url, timeout=60, deadline_s=120) for _ in range(clients)]
    barrier = threading.Barrier(clients + 1)

    def client(k: int) -> None:
        barrier.wait()
        for r in range(per_client):
            start = ((k * per_client + r) * per_request) % len(pairs)
            batch = (pairs + pairs)[start:start + per_request]
            began = time.perf_counter()
            try:
                got = scorers[k].score(batch)
                if len(got) != len(batch):
                    raise RuntimeError(f"{len(got)} scores for {len(batch)} pairs")
            except Exception as err:  # counted and reported; one failing client must not stop the bench
                errors.append(str(err))
                continue
            latencies[k].append(time.perf_counter() - began)

    threads = [threading.Thread(target=client, args=(k,), daemon=True) for k in range(clients)]
    for t in threads:
        t.start()
    barrier.wait()
    began = time.perf_counter()
    for t in threads:
        t.join(timeout=600)
    seconds = time.perf_counter() - began
    flat = [x for row in latencies for x in row]
    return {
        "clients": clients, "pairs_per_request": per_request, "requests": len(flat),
        "pairs": len(flat) * per_request, "seconds": seconds,
        "pairs_per_second": len(flat) * per_request / seconds,
        "p50_ms": 1000 * _percentile(flat, 50) if flat else None,
        "p95_ms": 1000 * _percentile(flat, 95) if flat else None,
        "errors": len(errors), "first_error": errors[0] if errors else None,
        "client_retries": sum(s.http.retries for s in scorers),
    }


def _untrained_rm(params: Params, target: Path) -> str:
    """Save the backbone with a fresh classification head as a reward-model directory; returns its label."""
    backbone = params.reward_model.backbone or params.model.policy
    key = "reward_model.backbone" if params.reward_model.backbone else "model.policy"
    model = models.load_sequence_classifier(backbone, num_labels=2, dtype="float32", device="cpu", key=key)
    tokenizer = models.load_tokenizer(backbone, key, padding_side="right")
    model.config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(str(target))
    tokenizer.save_pretrained(str(target))
    write_json(target / META_FILE, {"format": RM_FORMAT, "backbone": backbone, "mode": "untrained head (bench)",
                                    "max_length": params.reward_model.max_length})
    return f"{backbone} (fresh head)"


def bench_serve_rm(params_file: str | Path, rm_dir: str | Path | None = None, clients: tuple[int, ...] = (1, 32, 200),
                   pairs_per_request: int = 4, n_requests: int = 800) -> dict:
    """Print and return the table: ``n_requests`` per batched setting (at least two per client), half as many
    single-pair requests for the baseline."""
    if not clients or any(c < 1 for c in clients):
        raise InputError(f"--clients must be positive integers, got {list(clients)}")
    for name, value in (("--pairs-per-request", pairs_per_request), ("--requests", n_requests)):
        if value < 1:
            raise InputError(f"{name} must be at least 1, got {value}")
    params = load_params(params_file)
    device = models.device_for(params.run.device)
    pairs = bench_pairs(512, params.rollouts.max_new_tokens, params.run.seed)
    scratch = Path(tempfile.mkdtemp(prefix="sif-bench-serve-rm-"))
    try:
        if rm_dir:
            rm_path, label = Path(rm_dir), str(rm_dir)
            if not (rm_path / "config.json").is_file():
                raise InputError(f"{rm_path}: not a reward-model directory (no config.json); train one with stage 04")
        else:
            rm_path = scratch / "rm"
            label = _untrained_rm(params, rm_path)
        max_length = json.loads((rm_path / "sif_rm.json").read_text()).get("max_length")
        rows = []
        with _Server(rm_path, 1, device, max_pairs=max(pairs_per_request, 1)) as server:
            _load(server.url, pairs, 1, 1, 8)  # warm-up
            rows.append({"setting": "paper's pattern: unbatched server (max_batch 1)",
                         **_load(server.url, pairs, 1, 1, max(1, n_requests // 2))})
        with _Server(rm_path, BATCHED_MAX_BATCH, device, max_pairs=pairs_per_request) as server:
            _load(server.url, pairs, 1, pairs_per_request, 8)
            before = _health(server.url)["overloaded_requests"]
            for n in clients:
                rows.append({"setting": f"batched server (max_batch {BATCHED_MAX_BATCH})",
                             **_load(server.url, pairs, n, pairs_per_request, max(n_requests, 2 * n))})
            overloaded = _health(server.url)["overloaded_requests"] - before
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    base = rows[0]["pairs_per_second"]
    for row in rows:
        row["vs_baseline"] = row["pairs_per_second"] / base if base else None
    words = sorted((40, params.rollouts.max_new_tokens))
    print(f"serve-rm bench: {label}, device {device}, max_length {max_length}, responses of {words[0]}-{words[1]} "
          f"words; {os.cpu_count()} CPUs shared by the clients and the server")
    header = f"  {'setting':<48} {'clients':>7} {'pairs/req':>9} {'requests':>8} {'pairs/s':>9} " \
             f"{'p50 ms':>8} {'p95 ms':>8} {'vs base':>8} {'errors':>6}"
    print(header)
    for row in rows:
        print(f"  {row['setting']:<48} {row['clients']:>7} {row['pairs_per_request']:>9} {row['requests']:>8} "
              f"{row['pairs_per_second']:>9.1f} {row['p50_ms']:>8.1f} {row['p95_ms']:>8.1f} "
              f"{row['vs_baseline']:>7.1f}x {row['errors']:>6}")
    best = max(rows[1:], key=lambda r: r["pairs_per_second"])
    print(f"  best batched setting ({best['clients']} clients) / the paper's pattern: "
          f"{best['vs_baseline']:.1f}x pairs/s; 503 answers during the batched runs: "
          f"{overloaded}, client retries: {sum(r['client_retries'] for r in rows[1:])}")
    for row in rows:
        if row["errors"]:
            print(f"  {row['errors']} failed requests at {row['clients']} clients, e.g.: {row['first_error']}")
    return {"rm": label, "device": device, "max_length": max_length, "rows": rows, "overloaded_requests": overloaded}
