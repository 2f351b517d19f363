"""The reward model served by vLLM's classification endpoint scores what the in-process scorer scores.

GPU only (``pytest -m gpu``): starts ``vllm serve RM_DIR --runner pooling --convert classify`` on 127.0.0.1 for a
tiny reward model and compares :class:`VllmClassifyScorer` with :class:`RewardScorer` on the same pairs.
"""

from __future__ import annotations

import importlib.util
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import pytest
from conftest import write_untrained_rm

from sif_lib.reward_model.scorer import RewardScorer
from sif_lib.rm_service.clients import VllmClassifyScorer

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(importlib.util.find_spec("vllm") is None, reason="needs vllm (the GPU lock)")]

PAIRS = [("A short answer without commas", "Do not use any commas."),
         ("A formal, careful reply.", "Write in a formal tone."),
         ("word " * 300, "Keep it under fifty words.")]  # cut to max_length: the constraint must survive


def test_vllm_classify_matches_the_in_process_scorer(tmp_path):
    rm_dir = write_untrained_rm(tmp_path / "rm")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    vllm = shutil.which("vllm") or sys.executable
    cmd = [vllm, "serve", str(rm_dir), "--runner", "pooling", "--convert", "classify", "--host", "127.0.0.1",
           "--port", str(port), "--dtype", "float32", "--gpu-memory-utilization", "0.2", "--served-model-name", "rm"]
    if vllm == sys.executable:
        cmd[1:2] = ["-m", "vllm.entrypoints.cli.main", "serve"]
    server = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 300
        while True:
            assert server.poll() is None, "vllm serve exited"
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2)
                break
            except OSError:
                assert time.monotonic() < deadline, "vllm serve did not come up in 300 s"
                time.sleep(2)
        remote = VllmClassifyScorer.from_dir(f"http://127.0.0.1:{port}", rm_dir).score(PAIRS)
    finally:
        server.terminate()
        server.wait(timeout=60)
    local = RewardScorer.from_dir(rm_dir, device="cuda", dtype="float32").score(PAIRS)
    assert remote == pytest.approx(local, abs=2e-3)
