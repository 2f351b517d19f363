"""The reward-model HTTP service: good and bad requests, concurrency, the HTTP scorer, and ``sif serve-rm``."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from sif_lib import reward_model as rmod
from sif_lib.config import params_from_dict
from sif_lib.rm_server import make_server
from sif_lib.runs import RunContext

WORDS = "alpha beta gamma delta epsilon zeta eta theta".split()


def _rows() -> list[dict]:
    rows = []
    for p in range(4):
        for label in (1, 0):
            response = (" " if label else ", ").join(WORDS[p:p + 4])
            rows.append({"pair_id": f"i{p}-{label}", "parent": f"inst-{p}", "level": 1, "kind": "hard",
                         "constraint": {"id": "punctuation:no_comma", "kind": "hard", "description": "No commas."},
                         "response": response, "label": label, "source_level": 1 - label, "verifier": bool(label)})
    return rows


@pytest.fixture(scope="module")
def rm_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("rm-serve")
    (root / "data").mkdir()
    (root / "data" / "pseudo_labels.jsonl").write_text("".join(json.dumps(r) + "\n" for r in _rows()))
    params = params_from_dict({"run": {"device": "cpu", "dtype": "float32"}, "model": {"policy": "tiny"},
                               "reward_model": {"epochs": 1.0, "max_length": 64, "eval_fraction": 0.25}})
    rmod.run_reward_model_stage(RunContext(root, params), progress=False)
    return root / "rm"


@pytest.fixture(scope="module")
def local(rm_dir):
    return rmod.RewardScorer.from_dir(rm_dir, device="cpu")


@pytest.fixture(scope="module")
def server(rm_dir):
    srv = make_server(rm_dir, port=0, max_batch=4, max_request_bytes=20_000, max_pairs=8, device="cpu")
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.close()


PAIRS = [("alpha beta gamma", "No commas."), ("alpha, beta, gamma", "No commas."),
         ("delta epsilon", "Write formally."), ("zeta " * 80, "Keep it short.")]


def post(url: str, body: bytes, path: str = "/score", method: str = "POST") -> tuple[int, dict]:
    request = urllib.request.Request(url + path, data=body, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def payload(pairs) -> bytes:
    return json.dumps({"pairs": [{"response": r, "constraint": c} for r, c in pairs]}).encode()


def raw_request(address, data: bytes) -> tuple[int, dict]:
    with socket.create_connection(address, timeout=30) as sock:
        sock.sendall(data)
        chunks = []
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


def test_health_and_a_good_request(server, local):
    assert server.server_address[0] == "127.0.0.1"
    status, health = post(server.url, None, "/health", "GET")
    assert status == 200 and health["status"] == "ok" and health["backbone"] == "tiny"
    assert health["model_dir"] == str(server.model_dir) and health["uptime_s"] >= 0
    status, reply = post(server.url, payload(PAIRS))
    assert status == 200
    assert reply["scores"] == pytest.approx(local.score(PAIRS), abs=1e-5)
    assert post(server.url, payload([]))[1] == {"scores": []}


@pytest.mark.parametrize("body, status, reason", [
    (b"{not json", 400, "malformed JSON"),
    (b"\xff\xfe", 400, "not UTF-8"),
    (b"[1, 2]", 400, "JSON object"),
    (b'{"items": []}', 400, "missing key 'pairs'"),
    (b'{"pairs": {"response": "a"}}', 400, "must be a list"),
    (b'{"pairs": [{"response": "a"}]}', 400, "pairs[0]: missing key 'constraint'"),
    (b'{"pairs": [{"response": 3, "constraint": "c"}]}', 400, "pairs[0].response must be a string, got int"),
    (b'{"pairs": [{"response": "a", "constraint": null}]}', 400, "pairs[0].constraint must be a string"),
    (b'{"pairs": ["a"]}', 400, "pairs[0] must be an object"),
    (payload([("a", "b")] * 9), 413, "too many pairs: 9"),
    (payload([("x" * 30_000, "b")]), 413, "exceeds the limit of 20000"),
])
def test_bad_requests_are_refused_with_a_reason(server, local, body, status, reason):
    got, reply = post(server.url, body)
    assert got == status and reason in reply["error"]
    # The server keeps serving.
    got, reply = post(server.url, payload(PAIRS[:2]))
    assert got == 200 and reply["scores"] == pytest.approx(local.score(PAIRS[:2]), abs=1e-5)


def test_wrong_path_method_and_missing_length(server):
    assert post(server.url, payload(PAIRS), "/scores")[0] == 404
    status, reply = post(server.url, None, "/nowhere", "GET")
    assert status == 404 and "unknown path" in reply["error"]
    assert post(server.url, None, "/score", "GET")[0] == 405
    assert post(server.url, b"{}", "/score", "PUT")[0] == 405
    host, port = server.server_address[:2]
    status, reply = raw_request((host, port), b"POST /score HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status == 411 and "Content-Length" in reply["error"]
    status, reply = raw_request((host, port), b"POST /score HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n")
    assert status == 400 and "not an integer" in reply["error"]
    # A declared length over the limit is refused before the body is read.
    status, reply = raw_request((host, port), b"POST /score HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999\r\n\r\n{}")
    assert status == 413
    assert post(server.url, payload(PAIRS[:1]))[0] == 200
    health = post(server.url, None, "/health", "GET")[1]
    assert health["rejected_requests"] >= 5 and health["requests_served"] >= 1


def test_concurrent_requests_are_batched_and_answered_correctly(server, local):
    requests = [[(f"{WORDS[i % 8]} {'x ' * i}" + ("," if i % 3 else ""), f"Constraint {i}.")] * (1 + i % 3)
                for i in range(12)]
    expected = [local.score(pairs) for pairs in requests]
    before = server.batcher.batches
    results: dict[int, tuple[int, dict]] = {}
    barrier = threading.Barrier(len(requests))

    def client(i):
        barrier.wait()
        results[i] = post(server.url, payload(requests[i]))

    threads = [threading.Thread(target=client, args=(i,)) for i in range(len(requests))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for i, pairs in enumerate(requests):
        status, reply = results[i]
        assert status == 200 and reply["scores"] == pytest.approx(expected[i], abs=1e-5)
    # 24 pairs in batches of at most 4 need at least 6 forward passes; sharing keeps them well under 12 requests' worth.
    assert server.batcher.batches - before >= 6


def test_http_scorer_equals_the_in_process_scorer(server, local):
    http = rmod.HttpRewardScorer(server.url + "/score", max_pairs_per_request=3)
    pairs = PAIRS + [("eta theta", "Use two words.")]
    assert http.score(pairs) == pytest.approx(local.score(pairs), abs=1e-5)
    assert http.health()["status"] == "ok"
    with pytest.raises(RuntimeError, match="HTTP 413"):
        rmod.HttpRewardScorer(server.url, max_pairs_per_request=100).score([("a", "b")] * 9)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_sif_serve_rm_command(rm_dir, local):
    sif = Path(sys.executable).with_name("sif")
    command = [str(sif)] if sif.is_file() else [sys.executable, "-m", "sif_lib"]
    port = _free_port()
    proc = subprocess.Popen(command + ["serve-rm", "--model", str(rm_dir), "--port", str(port), "--max-pairs", "4"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "TOKENIZERS_PARALLELISM": "false"})
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None, proc.stderr.read()
            try:
                status, health = post(url, None, "/health", "GET")
                break
            except (urllib.error.URLError, ConnectionError):
                assert time.monotonic() < deadline, "sif serve-rm did not come up"
                time.sleep(0.3)
        assert status == 200 and health["max_pairs"] == 4
        status, reply = post(url, payload(PAIRS[:2]))
        assert status == 200 and reply["scores"] == pytest.approx(local.score(PAIRS[:2]), abs=1e-5)
        assert post(url, b"{oops")[0] == 400
        assert post(url, payload(PAIRS * 2))[0] == 413
        assert post(url, payload(PAIRS[:1]))[0] == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    assert code == 0
    assert f"serving on http://127.0.0.1:{port}" in proc.stdout.read()
