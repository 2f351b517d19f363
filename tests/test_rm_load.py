"""The reward service under load: 200 concurrent clients and every kind of malformed request at once.

Bounded: every socket, barrier and join has a timeout, so a regression fails instead of hanging.
"""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time

import pytest
from conftest import read_reply

from sif_lib.config.params import params_from_dict
from sif_lib.reward_model.scorer import RewardScorer
from sif_lib.rm_service.server import make_server
from sif_lib.runner.runs import RunContext
from sif_lib.stages import s04_train_reward_model as s04

CLIENTS = 200
PAIRS_PER_REQUEST = 4
TIMEOUT = 30
WORDS = "alpha beta gamma delta epsilon zeta eta theta iota kappa".split()


@pytest.fixture(scope="module")
def rm_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("rm-load")
    rows = []
    for p in range(4):
        for label in (1, 0):
            rows.append({"pair_id": f"i{p}-{label}", "parent": f"inst-{p}", "level": 1, "kind": "hard",
                         "constraint": {"id": "punctuation:no_comma", "kind": "hard", "description": "No commas."},
                         "response": (" " if label else ", ").join(WORDS[p:p + 4]), "label": label,
                         "source_level": 1 - label, "verifier": bool(label)})
    (root / "data").mkdir()
    (root / "data" / "pseudo_labels.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    params = params_from_dict({"run": {"device": "cpu", "dtype": "float32"}, "model": {"policy": "tiny"},
                               "reward_model": {"epochs": 1.0, "max_length": 64, "eval_fraction": 0.25}})
    s04.run(RunContext(root, params), progress=False)
    return root / "rm"


@pytest.fixture(scope="module")
def server(rm_dir):
    # The defaults that matter here: listen backlog 1024, max_inflight 256.
    srv = make_server(rm_dir, port=0, max_batch=32, max_request_bytes=20_000, max_pairs=8, device="cpu",
                      request_timeout=10)
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.close()


def _pairs(i: int) -> list[tuple[str, str]]:
    return [(" ".join(WORDS[(i + k) % 10:(i + k) % 10 + 1 + (i * 7 + k) % 9]) + ("," if (i + k) % 3 else ""),
             f"Constraint {(i + k) % 13}.") for k in range(PAIRS_PER_REQUEST)]


def _body(pairs) -> bytes:
    return json.dumps({"pairs": [{"response": r, "constraint": c} for r, c in pairs]}).encode()


def _post(path: str, body: bytes, length: str | None = "auto", extra: str = "") -> bytes:
    """A raw request; ``length``: the Content-Length header ("auto": the body's, None: no header)."""
    head = f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{extra}"
    if length is not None:
        head += f"Content-Length: {len(body) if length == 'auto' else length}\r\n"
    return head.encode() + b"\r\n" + body


# (what, raw request, what the client does after sending, expected status, part of the reason)
MALFORMED = [
    ("broken JSON", _post("/score", b"{not json"), None, 400, "malformed JSON"),
    ("invalid UTF-8", _post("/score", b'{"pairs": "\xff\xfe"}'), None, 400, "not UTF-8"),
    ("wrong type: pairs", _post("/score", b'{"pairs": {"a": 1}}'), None, 400, "must be a list"),
    ("wrong type: response", _post("/score", b'{"pairs": [{"response": 3, "constraint": "c"}]}'), None, 400,
     "must be a string"),
    ("missing field: pairs", _post("/score", b'{"items": []}'), None, 400, "missing key 'pairs'"),
    ("missing field: constraint", _post("/score", b'{"pairs": [{"response": "a"}]}'), None, 400,
     "missing key 'constraint'"),
    ("oversized body, sent in full", _post("/score", b"x" * 30_000), None, 413, "exceeds the limit"),
    ("oversized body, declared only", _post("/score", b"", "99999999"), None, 413, "exceeds the limit"),
    ("too many pairs", _post("/score", _body([("a", "b")] * 9)), None, 413, "too many pairs"),
    ("missing Content-Length", _post("/score", b"", None), None, 411, "missing Content-Length"),
    ("missing Content-Length, body sent anyway", _post("/score", _body([("a", "b")]), None), None, 411,
     "missing Content-Length"),
    ("chunked body", _post("/score", b"5\r\nhello\r\n0\r\n\r\n", None, extra="Transfer-Encoding: chunked\r\n"), None,
     411, "chunked"),
    ("Content-Length not a number", _post("/score", b"{}", "two"), None, 400, "not an integer"),
    ("body shorter than Content-Length", _post("/score", b'{"pairs": [', "100"), "half-close", 400, "body ended"),
    ("garbage request line", b"HELLO THERE\r\n\r\n", None, 400, "request"),
    ("classify: id outside the vocabulary", _post("/classify", b'{"input": [[1, 99999999]]}'), None, 400,
     "outside the vocabulary"),
    ("classify: wrong input type", _post("/classify", b'{"input": 3}'), None, 400, "must be a string"),
]


def _raw(address, data: bytes, after: str | None) -> tuple[int, dict]:
    with socket.create_connection(address, timeout=TIMEOUT) as sock:
        sock.sendall(data)
        if after == "half-close":
            sock.shutdown(socket.SHUT_WR)
        status, body, _ = read_reply(sock)
    return status, body


def test_200_concurrent_clients_and_malformed_requests(server, rm_dir):
    local = RewardScorer.from_dir(rm_dir, device="cpu", batch_size=32)
    expected = {i: local.score(_pairs(i)) for i in range(CLIENTS)}
    host, port = server.server_address[:2]
    bad_jobs = [m for m in MALFORMED for _ in range(2)]
    results: dict = {}
    barrier = threading.Barrier(CLIENTS + len(bad_jobs), timeout=TIMEOUT)

    def good(i: int) -> None:
        try:
            barrier.wait()
            conn = http.client.HTTPConnection(host, port, timeout=TIMEOUT)
            try:
                conn.request("POST", "/score", body=_body(_pairs(i)), headers={"Content-Type": "application/json"})
                response = conn.getresponse()
                results[("good", i)] = (response.status, json.loads(response.read()))
            finally:
                conn.close()
        except Exception as err:  # recorded, so that the assertion names it
            results[("good", i)] = (None, repr(err))

    def bad(j: int) -> None:
        what, data, after, _, _ = bad_jobs[j]
        try:
            barrier.wait()
            results[("bad", j)] = _raw((host, port), data, after)
        except Exception as err:
            results[("bad", j)] = (None, repr(err))

    began = time.monotonic()
    threads = [threading.Thread(target=good, args=(i,), daemon=True) for i in range(CLIENTS)]
    threads += [threading.Thread(target=bad, args=(j,), daemon=True) for j in range(len(bad_jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(max(0.1, began + 2 * TIMEOUT - time.monotonic()))
    assert not any(t.is_alive() for t in threads), "clients still running after the deadline"

    failures = []
    for i in range(CLIENTS):
        status, reply = results[("good", i)]
        if status != 200 or len(reply["scores"]) != PAIRS_PER_REQUEST or \
                reply["scores"] != pytest.approx(expected[i], abs=1e-5):
            failures.append((i, status, reply))
    assert not failures, f"{len(failures)} of {CLIENTS} well-formed requests failed, e.g. {failures[:3]}"
    for j, (what, _, _, status, reason) in enumerate(bad_jobs):
        got, reply = results[("bad", j)]
        assert got == status and reason in reply["error"], (what, got, reply)

    conn = http.client.HTTPConnection(host, port, timeout=TIMEOUT)
    conn.request("GET", "/health")
    response = conn.getresponse()
    health = json.loads(response.read())
    conn.close()
    assert response.status == 200 and health["status"] == "ok"
    assert health["requests_served"] >= CLIENTS and health["overloaded_requests"] == 0
    assert health["rejected_requests"] >= len(bad_jobs)
    assert time.monotonic() - began < 60
