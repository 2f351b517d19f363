"""The environment: both lock files match pyproject.toml under the resolver, the GPU extra resolves, and the
libraries that the CPU and GPU paths share have one version on both."""

from __future__ import annotations

import importlib.metadata
import re
import shutil
import sys

import pytest
from conftest import REPO

sys.path.insert(0, str(REPO / "tools"))
import locks  # noqa: E402  (tools/ is not a package)

SHARED = ["torch", "transformers", "trl", "peft", "accelerate", "datasets", "deepspeed", "tokenizers", "numpy"]


def _public(version: str) -> str:
    return version.split("+", 1)[0]


def test_locks_match_pyproject_and_the_gpu_extra_resolves():
    """Re-resolve both locks with uv (package metadata only); any conflict fails with uv's own message, and a
    lock that no longer matches pyproject.toml fails with the pins that would change."""
    try:
        changes = locks.check()
    except locks.ResolutionFailed as err:
        pytest.fail(str(err))
    assert not changes, "locks drifted from pyproject.toml (run make lock):\n" + "\n".join(changes)


def test_a_vllm_release_that_needs_another_torch_fails_with_the_resolvers_message(tmp_path):
    """The check above would catch the pin that kept users out: vllm 0.33.0 needs torch 2.14.0."""
    text = (REPO / "pyproject.toml").read_text()
    assert '"vllm==0.31.0"' in text
    (tmp_path / "pyproject.toml").write_text(text.replace('"vllm==0.31.0"', '"vllm==0.33.0"'))
    (tmp_path / "requirements").mkdir()
    copies = {kind: tmp_path / "requirements" / path.name for kind, path in locks.LOCKS.items()}
    for kind, path in locks.LOCKS.items():
        shutil.copyfile(path, copies[kind])
    with pytest.raises(locks.ResolutionFailed) as caught:
        locks.check(tmp_path / "pyproject.toml", copies)
    assert "No solution found" in str(caught.value) and "torch==2.14.0" in str(caught.value)


def test_cpu_and_gpu_locks_share_every_common_version():
    cpu, gpu = locks.pins(locks.LOCKS["cpu"]), locks.pins(locks.LOCKS["gpu"])
    assert cpu["torch"] == "2.13.0+cpu" and gpu["torch"] == "2.13.0"
    for name in SHARED:
        assert name in cpu and name in gpu, name
    differing = {n: (cpu[n], gpu[n]) for n in set(cpu) & set(gpu) if _public(cpu[n]) != _public(gpu[n])}
    assert not differing
    assert {"vllm", "bitsandbytes"} <= set(gpu) and not {"vllm", "bitsandbytes"} & set(cpu)
    assert not [n for n in cpu if n.startswith("nvidia-")], "the CPU lock must not pull CUDA libraries"


def test_this_environment_is_the_cpu_lock():
    """What the tests run on is what the lock says (make installs it)."""
    cpu = locks.pins(locks.LOCKS["cpu"])
    for name in SHARED:
        assert importlib.metadata.version(name) == cpu[name], name


def test_pyproject_pins_match_the_locks():
    text = (REPO / "pyproject.toml").read_text()
    declared = dict(re.findall(r'"([A-Za-z0-9_\-]+)==([^"]+)"', text))
    gpu = locks.pins(locks.LOCKS["gpu"])
    for name, version in declared.items():
        assert gpu.get(name.lower()) == version, name
