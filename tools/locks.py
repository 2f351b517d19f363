"""The two lock files, made and checked by one resolver (uv), from ``pyproject.toml``.

    python tools/locks.py            re-resolve both locks, keeping every pin that still fits (make lock)
    python tools/locks.py --upgrade  re-resolve both from scratch, taking the newest versions that fit
    python tools/locks.py --check    resolve again into a scratch copy and fail if a lock would change

* ``requirements/gpu.txt``: the ``gpu`` and ``dev`` extras for CUDA servers (torch from PyPI, a CUDA build,
  with vLLM, DeepSpeed and bitsandbytes). ``environment.yml`` and the README's GPU command install it.
* ``requirements/cpu.txt``: the ``dev`` extra (DeepSpeed included) with torch's CPU build, resolved under the
  GPU lock as constraints, so every library the two share has the same version on both: the CPU tests test
  what GPU users run. ``make`` installs it.

Resolution reads package metadata only (seconds, no GPU, no large download). Both locks target CPython 3.11 on
x86_64 Linux (manylinux 2.28). The CPU build of torch is found on ``$PIP_FIND_LINKS`` when that is set (a
local wheel directory), else on PyTorch's CPU index.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOCKS = {"gpu": ROOT / "requirements" / "gpu.txt", "cpu": ROOT / "requirements" / "cpu.txt"}
TARGET = ["--python-version", "3.11", "--python-platform", "x86_64-manylinux_2_28"]
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"


class ResolutionFailed(RuntimeError):
    """The resolver found no consistent set; the message is the resolver's own."""


def uv() -> str:
    """The uv executable next to this interpreter (the dev extra installs it), else on PATH."""
    here = Path(sys.executable).with_name("uv")
    found = str(here) if here.is_file() else shutil.which("uv")
    if not found:
        raise SystemExit("uv is not installed: pip install uv (it is part of the dev extra)")
    return found


def _torch_cpu_source() -> list[str]:
    links = os.environ.get("PIP_FIND_LINKS", "").split()
    if links:
        return [arg for link in links for arg in ("--find-links", link)]
    return ["--extra-index-url", TORCH_CPU_INDEX, "--index-strategy", "unsafe-best-match"]


def compile_args(kind: str, pyproject: Path, output: Path, gpu_lock: Path) -> list[str]:
    """The uv command that writes the ``kind`` lock to ``output``."""
    base = [uv(), "pip", "compile", str(pyproject), *TARGET, "--quiet", "--custom-compile-command", "make lock",
            "-o", str(output)]
    if kind == "gpu":
        return base + ["--extra", "gpu", "--extra", "dev"]
    return base + ["--extra", "dev", "-c", str(gpu_lock), *_torch_cpu_source()]


def resolve(kind: str, pyproject: Path, output: Path, gpu_lock: Path, upgrade: bool = False) -> None:
    """Resolve one lock into ``output``. Pins already in ``output`` are kept where they still fit."""
    args = compile_args(kind, pyproject, output, gpu_lock) + (["--upgrade"] if upgrade else [])
    proc = subprocess.run(args, capture_output=True, text=True, cwd=pyproject.parent)
    if proc.returncode != 0:
        raise ResolutionFailed(f"{kind} lock: {proc.stderr.strip() or proc.stdout.strip()}")


def pins(path: Path) -> dict[str, str]:
    """``name -> version`` of a lock file (comments and ``# via`` lines ignored)."""
    found = {}
    for line in path.read_text().splitlines():
        m = re.match(r"^([A-Za-z0-9_.\-\[\]]+)==(\S+)", line.strip())
        if m:
            found[m.group(1).lower()] = m.group(2)
    return found


def check(pyproject: Path = ROOT / "pyproject.toml", locks: dict[str, Path] = LOCKS) -> list[str]:
    """Resolve both locks again, starting from the committed ones, in a scratch directory. Returns the pins
    that would change (empty: the locks match ``pyproject``); raises ResolutionFailed on a conflict."""
    changes = []
    with tempfile.TemporaryDirectory(prefix="sif-locks-") as scratch:
        fresh = {kind: Path(scratch) / path.name for kind, path in locks.items()}
        for kind in ("gpu", "cpu"):
            shutil.copyfile(locks[kind], fresh[kind])
            resolve(kind, pyproject, fresh[kind], fresh["gpu"])
            old, new = pins(locks[kind]), pins(fresh[kind])
            for name in sorted(set(old) | set(new)):
                if old.get(name) != new.get(name):
                    changes.append(f"{locks[kind].relative_to(ROOT)}: {name} "
                                   f"{old.get(name, '(absent)')} -> {new.get(name, '(absent)')}")
    return changes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python tools/locks.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="fail if a lock is out of date")
    parser.add_argument("--upgrade", action="store_true", help="take the newest versions that fit")
    args = parser.parse_args(argv)
    try:
        if args.check:
            changes = check()
            for change in changes:
                print(change)
            print("locks are up to date" if not changes else "locks are out of date: run make lock")
            return 1 if changes else 0
        for kind in ("gpu", "cpu"):
            resolve(kind, ROOT / "pyproject.toml", LOCKS[kind], LOCKS["gpu"], upgrade=args.upgrade)
            print(f"wrote {LOCKS[kind].relative_to(ROOT)} ({len(pins(LOCKS[kind]))} packages)")
    except ResolutionFailed as err:
        print(err, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
