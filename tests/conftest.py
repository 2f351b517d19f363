"""Shared fixtures: paths, and one smoke run of the whole pipeline per test session."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]  # the checkout: the one repo-root helper of the tests
SMOKE = REPO / "params" / "smoke.yaml"  # the tiny random-weight model: every stage in seconds
CPU_DEMO = REPO / "params" / "cpu_demo.yaml"
SHARED = REPO.parent / "shared"
IFEVAL_DIR = SHARED / "benchmarks" / "ifeval"
SIF = [sys.executable, "-m", "sif_lib"]


def run_sif(*args: str, check: bool = False, timeout: int = 900) -> subprocess.CompletedProcess:
    """Run the real ``sif`` command in a subprocess, from the repo root."""
    proc = subprocess.run([*SIF, *args], cwd=REPO, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"sif {' '.join(args)} exited "
                             f"{proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def require_shared() -> None:
    if not IFEVAL_DIR.is_dir():
        pytest.skip(f"{IFEVAL_DIR} is absent: the IFEval data lives in ../shared beside the checkout")


@pytest.fixture(scope="session")
def smoke_outputs(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("runs")


@pytest.fixture(scope="session")
def smoke_run(smoke_outputs) -> Path:
    """A finished run of params/smoke.yaml (tiny model, every stage), made once per session."""
    require_shared()
    run_sif("run", "params/smoke.yaml", "--run-id", "smoke", "--outputs", str(smoke_outputs), check=True)
    return smoke_outputs / "smoke"


def pytest_collection_modifyitems(config, items):
    """Tests marked ``gpu`` run only where CUDA is present (never in CI)."""
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (tests marked gpu run only on GPU machines)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


def write_untrained_rm(rm_dir: Path, spec: str = "tiny", max_length: int = 128, **meta) -> Path:
    """A reward-model directory holding ``spec`` with a fresh two-class head (the one untrained-RM helper). An
    untrained classifier is still a real one (its probabilities just carry no meaning), which is all the tests
    of loading, scoring and GRPO need of it. ``meta`` adds fields to its ``sif_rm.json``."""
    import json

    from sif_lib.policy import models
    from sif_lib.reward_model.rm_input import META_FILE

    rm_dir = Path(rm_dir)
    models.load_sequence_classifier(spec, dtype="float32", device="cpu").save_pretrained(str(rm_dir))
    models.load_tokenizer(spec, padding_side="right").save_pretrained(str(rm_dir))
    (rm_dir / META_FILE).write_text(json.dumps({"max_length": max_length, **meta}))
    return rm_dir


def read_reply(sock) -> tuple[int, dict, bytes]:
    """Read a raw HTTP reply to the end: status, JSON body and header block (for hand-made requests)."""
    import json

    chunks = []
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            break
        chunks.append(chunk)
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body), head
