"""Shared fixtures: paths, and one smoke run of the whole pipeline per test session."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
IFEVAL_DIR = SHARED / "benchmarks" / "ifeval"
SIF = [sys.executable, "-m", "sif_lib"]


def run_sif(*args: str, check: bool = False, timeout: int = 900) -> subprocess.CompletedProcess:
    """Run the real ``sif`` command in a subprocess, from the repo root."""
    proc = subprocess.run([*SIF, *args], cwd=REPO, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"sif {' '.join(args)} exited {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
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


def write_untrained_rm(rm_dir: Path) -> Path:
    """A reward-model directory holding the tiny model with a fresh two-class head. An untrained classifier is
    still a real one (its probabilities just carry no meaning), which is all the GRPO tests need of it."""
    import json

    from sif_lib import models
    from sif_lib.reward_model import META_FILE

    models.load_sequence_classifier("tiny", dtype="float32", device="cpu").save_pretrained(str(rm_dir))
    models.load_tokenizer("tiny").save_pretrained(str(rm_dir))
    (rm_dir / META_FILE).write_text(json.dumps({"max_length": 128}))
    return rm_dir
