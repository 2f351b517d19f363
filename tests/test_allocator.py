"""The stage processes' malloc settings (sif_lib/core/allocator.py): freed large blocks stay in the process."""

import subprocess
import sys
import textwrap

import pytest

from sif_lib.core import allocator

pytestmark = pytest.mark.skipif(allocator._glibc() is None, reason="glibc's mallopt only (Linux with glibc)")

# Allocate and free a 256 MiB tensor sixteen times; print the minor page faults of the last four (a page that is
# new to the process faults once).
_PROBE = textwrap.dedent("""
    import resource, sys
    import torch
    from sif_lib.core import allocator
    if sys.argv[1] == "keep":
        assert allocator.keep_freed_memory()
    torch.empty(1)
    for i in range(16):
        if i == 12:
            before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        x = torch.ones(64 * 2**20)
        del x
    print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
""")


def _faults(mode: str) -> int:
    out = subprocess.run([sys.executable, "-c", _PROBE, mode], capture_output=True, text=True, check=True)
    return int(out.stdout.split()[-1])


def test_kept_memory_is_reused_instead_of_faulted_in_at_every_allocation():
    pages = 256 * 2**20 // 4096
    assert _faults("default") > 3 * pages  # every tensor is a fresh mapping: faulted in again each time
    # Once the heap has grown to hold it (glibc takes a few rounds), the freed block is reused as it is.
    assert _faults("keep") < pages // 10


def test_a_run_context_applies_the_setting_unless_the_params_turn_it_off(tmp_path, monkeypatch):
    from sif_lib.runner.runs import RunContext

    calls = []
    monkeypatch.setattr(allocator, "keep_freed_memory", lambda: calls.append(1) or True)
    RunContext.open(tmp_path / "a", "params/smoke.yaml")
    assert calls == [1]
    RunContext.open(tmp_path / "b", "params/smoke.yaml", overrides={"run": {"keep_freed_memory": False}})
    assert calls == [1]
