"""The README's commands run as written, and the README stays short. Every command in its fenced shell blocks is
one of three kinds: quick, run here as written from a folder laid out like a fresh clone whose outputs/ holds the
session's smoke run; the smoke run itself, which the session fixture makes with the same params and run id; or
long (or a server, or an install), listed below with the reason it is not run. A command of none of these kinds
fails the test, so a new README command has to be sorted here."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys

import pytest
from conftest import REPO

README = REPO / "README.md"
MAX_LINES = 320
SHELLS = ("bash", "sh", "shell", "console")

# Commands that take seconds, by their first words.
QUICK = ("sif params", "sif status outputs/smoke", "sif report outputs/smoke", "sif results")
# The README's smoke run: exactly what the session's smoke_run fixture runs (with --outputs).
SMOKE_RUN = "sif run params/smoke.yaml --run-id smoke"
# Everything else, by first words, with the reason it is not run here.
NOT_RUN = {
    "make install": "installs the CPU lock into .venv: minutes, and a package index or wheel cache",
    "source .venv/bin/activate": "shell setup; the tests run sif with this interpreter",
    "make demo": "the whole pipeline on SmolLM2: about an hour on 2 cores",
    "make test": "the whole test suite, this file included",
    "make lab": "starts JupyterLab, which runs until stopped",
    "make gpu-check": "needs a CUDA GPU",
    "sif run params/cpu_": "a SmolLM2 run: 45 minutes to over an hour on 2 cores",
    "sif run params/gpu_": "needs a CUDA GPU",
    "sif run params/paper_7b.yaml": "needs GPUs and a local 7B model",
    "sif compare outputs/abl-": "needs the three seed runs of the --seeds command before it (hours)",
    "sif serve-rm": "a server that runs until stopped",
}


def readme_commands() -> list[str]:
    """The commands of the README's fenced shell blocks: continuation lines joined, comments dropped."""
    commands, fence, pending = [], None, ""
    for line in README.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            fence = line[3:].strip() if fence is None else None
            continue
        if fence not in SHELLS:
            continue
        pending += line
        if pending.endswith("\\"):
            pending = pending[:-1] + " "
            continue
        words = shlex.split(pending, comments=True)
        pending = ""
        if words:
            commands.append(" ".join(words))
    return commands


def kind(command: str) -> str:
    if command == SMOKE_RUN:
        return "smoke"
    if command.startswith(QUICK):
        return "quick"
    return next((f"not run: {why}" for start, why in NOT_RUN.items() if command.startswith(start)), "unsorted")


def test_the_readme_is_short():
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= MAX_LINES, (f"README.md has {len(lines)} lines; "
                                     f"keep it within {MAX_LINES} (details go to docs/)")


def test_every_readme_command_is_sorted():
    commands = readme_commands()
    unsorted = [c for c in commands if kind(c) == "unsorted"]
    assert not unsorted, ("README commands neither run nor listed with a reason in tests/test_readme_commands.py: "
                          + "; ".join(unsorted))
    kinds = {kind(c) for c in commands}
    assert {"smoke", "quick"} <= kinds, kinds  # the quick start is there, and is run
    assert any(c.startswith("sif report") and "--markdown" in c for c in commands)


@pytest.fixture(scope="module")
def fresh_clone(smoke_run, tmp_path_factory):
    """A folder laid out like a fresh clone after `sif run params/smoke.yaml --run-id smoke`: the checkout's
    params, a copy of its docs (`sif results` writes there), and outputs/ holding the session's smoke run."""
    root = tmp_path_factory.mktemp("clone")
    (root / "params").symlink_to(REPO / "params", target_is_directory=True)
    shutil.copytree(REPO / "docs", root / "docs")
    (root / "outputs").symlink_to(smoke_run.parent, target_is_directory=True)
    return root


@pytest.mark.slow
@pytest.mark.parametrize("command", [c for c in readme_commands() if kind(c) == "quick"])
def test_a_quick_readme_command_runs_as_written(fresh_clone, command):
    argv = shlex.split(command)
    assert argv[0] == "sif", command
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)}
    proc = subprocess.run([sys.executable, "-m", "sif_lib", *argv[1:]], cwd=fresh_clone, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"{command} exited {proc.returncode}\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
