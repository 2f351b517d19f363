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
from conftest import read_reply

from sif_lib.config.params import params_from_dict
from sif_lib.core import errors
from sif_lib.reward_model import rm_input
from sif_lib.reward_model.scorer import RewardScorer
from sif_lib.rm_service import clients
from sif_lib.rm_service.server import make_server
from sif_lib.runner.runs import RunContext
from sif_lib.stages import s04_train_reward_model as s04

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
    s04.run(RunContext(root, params), progress=False)
    return root / "rm"


@pytest.fixture(scope="module")
def local(rm_dir):
    return RewardScorer.from_dir(rm_dir, device="cpu")


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
        status, body, _ = read_reply(sock)
    return status, body


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
    for i in range(len(requests)):
        status, reply = results[i]
        assert status == 200 and reply["scores"] == pytest.approx(expected[i], abs=1e-5)
    # 24 pairs in batches of at most 4 need at least 6 forward passes; sharing keeps them well under 12 requests' worth.
    assert server.batcher.batches - before >= 6


def test_http_scorer_equals_the_in_process_scorer(server, local):
    http = clients.HttpRewardScorer(server.url + "/score", max_pairs_per_request=3)
    pairs = PAIRS + [("eta theta", "Use two words.")]
    assert http.score(pairs) == pytest.approx(local.score(pairs), abs=1e-5)
    assert http.health()["status"] == "ok"
    with pytest.raises(RuntimeError, match="HTTP 413"):
        clients.HttpRewardScorer(server.url, max_pairs_per_request=100).score([("a", "b")] * 9)


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


# -- vLLM's classification protocol ----------------------------------------------------------------------------


LONG = ("word " * 300, "Keep the whole constraint, however long the response is.")


def classify(url: str, payload: dict | bytes) -> tuple[int, dict]:
    return post(url, payload if isinstance(payload, bytes) else json.dumps(payload).encode(), "/classify")


def test_vllm_client_against_our_server_equals_the_in_process_scorer(server, local):
    pairs = PAIRS + [LONG, ("eta theta", "Use two words.")]
    stats: dict = {}
    ids = rm_input.encode_pairs(local.tokenizer, pairs, local.max_length, stats)
    assert stats["truncated"] == 2 and max(len(row) for row in ids) <= local.max_length
    client = clients.VllmClassifyScorer.from_dir(server.url, server.model_dir, max_inputs_per_request=4)
    assert client.score(pairs) == pytest.approx(local.score(pairs), abs=1e-5)
    assert client.model == server.served_model_name  # asked /v1/models once
    # The refactored in-process scorer: score() is encode_pairs + score_ids.
    assert local.score_ids(ids) == pytest.approx(local.score(pairs), abs=1e-6)
    assert client.score([]) == []


def test_classify_speaks_vllms_wire_format(server, local):
    status, models = post(server.url, None, "/v1/models", "GET")
    assert status == 200 and [m["id"] for m in models["data"]] == [server.served_model_name]
    ids = rm_input.encode_pairs(local.tokenizer, PAIRS[:2], local.max_length)
    status, reply = classify(server.url, {"model": server.served_model_name, "input": ids})
    assert status == 200 and reply["object"] == "list" and reply["model"] == server.served_model_name
    assert reply["id"].startswith("classify-") and isinstance(reply["created"], int)
    assert [d["index"] for d in reply["data"]] == [0, 1]
    assert all(d["num_classes"] == 2 and sum(d["probs"]) == pytest.approx(1.0) for d in reply["data"])
    assert [d["probs"][1] for d in reply["data"]] == pytest.approx(local.score(PAIRS[:2]), abs=1e-5)
    assert reply["usage"]["prompt_tokens"] == sum(len(row) for row in ids)
    # One token list, a string, a list of strings: strings are tokenized with the RM tokenizer, cut to max_length.
    status, one = classify(server.url, {"input": ids[0]})
    assert status == 200 and one["data"][0]["probs"][1] == pytest.approx(reply["data"][0]["probs"][1], abs=1e-5)
    text = rm_input.RM_TEMPLATE.format(response=LONG[0], constraint=LONG[1])
    status, strings = classify(server.url, {"input": [text, "short text"], "add_special_tokens": True})
    cut = local.tokenizer(text)["input_ids"][:local.max_length]
    assert status == 200 and strings["usage"]["prompt_tokens"] == (
        local.max_length + len(local.tokenizer("short text")["input_ids"]))
    assert strings["data"][0]["probs"][1] == pytest.approx(local.score_ids([cut])[0], abs=1e-5)
    status, short = classify(server.url, {"input": "short text", "truncate_prompt_tokens": 1})
    assert status == 200 and short["usage"]["prompt_tokens"] == 1


@pytest.mark.parametrize("body, status, reason", [
    (b"{nope", 400, "malformed JSON"),
    (b"\xff", 400, "not UTF-8"),
    (b'["x"]', 400, "JSON object"),
    (b'{"model": "x"}', 404, "not served here"),
    (b'{"input": "a", "model": 3}', 400, "not served here"),
    (b'{"model": null}', 400, "missing key 'input'"),
    (b'{"input": {"a": 1}}', 400, "must be a string, a list"),
    (b'{"input": 7}', 400, "must be a string, a list"),
    (b'{"input": []}', 400, "must not be empty"),
    (b'{"input": ["a", 1]}', 400, "must be a string, a list"),
    (b'{"input": [[1, 2], [3, "x"]]}', 400, "input[1] must be a list of integer token ids"),
    (b'{"input": [[1, true]]}', 400, "input[0] must be a list of integer token ids"),
    (b'{"input": [[]]}', 400, "input[0] has no tokens"),
    (b'{"input": [-1, 2]}', 400, "token id -1 is outside the vocabulary"),
    (b'{"input": [[5], [99999999]]}', 400, "input[1]: token id 99999999 is outside"),
    (json.dumps({"input": [1] * 65}).encode(), 400, "has 65 tokens; this model takes at most 64"),
    (b'{"input": [1, 2], "truncate_prompt_tokens": 1}', 400, "has 2 tokens; this model takes at most 1"),
    (b'{"input": "a", "truncate_prompt_tokens": 0}', 400, "truncate_prompt_tokens must be"),
    (b'{"input": "a", "truncate_prompt_tokens": "5"}', 400, "truncate_prompt_tokens must be"),
    (b'{"input": "a", "add_special_tokens": "yes"}', 400, "add_special_tokens must be true or false"),
    (b'{"input": "", "add_special_tokens": false}', 400, "input[0] has no tokens"),
    (json.dumps({"input": ["a"] * 9}).encode(), 413, "too many inputs: 9"),
])
def test_malformed_classify_requests_get_4xx(server, local, body, status, reason):
    got, reply = classify(server.url, body)
    assert got == status and reason in reply["error"], reply
    got, reply = classify(server.url, {"input": [[1, 2, 3]]})
    assert got == 200 and len(reply["data"]) == 1


def test_make_scorer_picks_the_client_by_rm_api(rm_dir, tmp_path):
    run_dir = rm_dir.parent
    local_params = params_from_dict({"run": {"device": "cpu"}})
    assert isinstance(clients.make_scorer(local_params, run_dir), RewardScorer)
    sif = params_from_dict({"scoring": {"rm_url": "http://127.0.0.1:9/score"}})
    assert isinstance(clients.make_scorer(sif, tmp_path), clients.HttpRewardScorer)
    vllm = params_from_dict({"scoring": {"rm_url": "http://127.0.0.1:9/v1", "rm_api": "vllm", "rm_model": "m"}})
    client = clients.make_scorer(vllm, run_dir)
    assert isinstance(client, clients.VllmClassifyScorer)
    assert client.base_url == "http://127.0.0.1:9" and client.model == "m" and client.max_length == 64
    # The vLLM client encodes pairs itself, so it needs the run's rm/ (its tokenizer and max_length).
    with pytest.raises(errors.InputError, match=r"sif_rm.json: missing input: scoring.rm_api vllm"):
        clients.make_scorer(vllm, tmp_path)


# -- overload, retries and deadlines ---------------------------------------------------------------------------


def _serve(srv):
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    return srv


def test_overload_is_a_503_with_retry_after_and_clients_retry(rm_dir, local):
    srv = _serve(make_server(rm_dir, port=0, max_batch=4, max_pairs=8, device="cpu", max_inflight=2,
                             request_timeout=20))
    address = srv.server_address[:2]
    try:
        # Two connections that send nothing hold both in-flight slots.
        holders = [socket.create_connection(address, timeout=10) for _ in range(2)]
        deadline = time.monotonic() + 10
        while srv.health()["inflight"] < 2:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        with socket.create_connection(address, timeout=10) as sock:
            sock.sendall(b"POST /score HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}")
            status, reply, head = read_reply(sock)
        assert status == 503 and b"Retry-After: 1" in head and "overloaded" in reply["error"]
        # A client meeting the 503 backs off and retries; it succeeds once a slot frees.
        results = {}
        worker = threading.Thread(target=lambda: results.update(
            scores=clients.HttpRewardScorer(srv.url, deadline_s=30).score(PAIRS[:2])), daemon=True)
        worker.start()
        time.sleep(0.3)
        for sock in holders:
            sock.close()
        worker.join(30)
        assert results["scores"] == pytest.approx(local.score(PAIRS[:2]), abs=1e-5)
        health = srv.health()
        assert health["overloaded_requests"] >= 2 and health["max_inflight"] == 2
    finally:
        srv.shutdown()
        srv.close()


def test_health_reports_the_listen_backlog(server):
    health = server.health()
    assert health["backlog"] == 1024 and health["max_inflight"] == 256
    cap = (int(Path("/proc/sys/net/core/somaxconn").read_text()) if Path("/proc/sys/net/core/somaxconn").exists()
           else None)
    assert health["somaxconn"] == cap
    assert health["effective_backlog"] == (min(1024, cap) if cap else 1024)


@pytest.mark.parametrize("client", ["sif", "vllm"])
def test_clients_give_up_at_the_deadline_with_one_clear_error(client, local):
    port = _free_port()  # nothing listens there: every attempt is refused
    url = f"http://127.0.0.1:{port}"
    scorer = clients.HttpRewardScorer(url, deadline_s=1.0) if client == "sif" else \
        clients.VllmClassifyScorer(url, local.tokenizer, local.max_length, model="m", deadline_s=1.0)
    began = time.monotonic()
    with pytest.raises(RuntimeError, match=rf"127.0.0.1:{port}/.*gave up after \d+ attempts.*refused"):
        scorer.score(PAIRS[:1])
    assert time.monotonic() - began < 3 and scorer.http.retries >= 2


def test_a_silent_server_times_out_instead_of_hanging():
    # A listening socket that never accepts: connections complete in the kernel, no answer ever comes.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        began = time.monotonic()
        with pytest.raises(RuntimeError, match="gave up after .*timed out"):
            clients.HttpRewardScorer(url, timeout=0.5, deadline_s=1.5).score(PAIRS[:1])
        assert time.monotonic() - began < 4


def test_4xx_is_not_retried(server):
    before = server.health()["rejected_requests"]
    client = clients.VllmClassifyScorer(server.url, server.tokenizer, server.max_length, model="not-this-one")
    with pytest.raises(RuntimeError, match="HTTP 404: model 'not-this-one' is not served here"):
        client.score(PAIRS[:1])
    assert client.http.retries == 0 and server.health()["rejected_requests"] == before + 1
