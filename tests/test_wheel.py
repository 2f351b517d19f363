"""``sif run`` from an installed wheel, not only from the checkout: the notebooks ship as package data, outputs go
to the current directory's ``outputs/``, and nothing is looked up relative to a source tree.

The wheel is built from a copy of the checkout and installed with pip into a fresh virtual environment. Its dependencies
(the CPU lock, torch included) are not downloaded again: the scratch environment sees this environment's
site-packages through a ``.pth`` line, which adds the installed libraries but not this checkout's editable
``sif_lib`` (``.pth`` files of an added directory are not run), so ``import sif_lib`` is the wheel's.
"""

from __future__ import annotations

import json
import shutil
import site
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, SMOKE


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("wheel")
    # Build from a copy: an in-tree build leaves build/ behind, and a stale build/lib would ship deleted modules.
    source = root / "source"
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(".git", ".venv", "outputs", "build", "*.egg-info",
                                                                "__pycache__", ".pytest_cache"))
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", str(source), "-w", str(root)],
                           capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stderr[-3000:]
    (wheel,) = root.glob("sif_lib-*.whl")
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    own_site = subprocess.run([str(python), "-c", "import site; print(site.getsitepackages()[0])"],
                              capture_output=True, text=True, check=True).stdout.strip()
    Path(own_site, "sif_deps.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    install = subprocess.run([str(python), "-m", "pip", "install", "--no-deps", "--no-index", "-q", str(wheel)],
                             capture_output=True, text=True, timeout=300)
    assert install.returncode == 0, install.stderr[-3000:]
    return venv


def test_sif_run_from_an_installed_wheel_outside_the_checkout(installed, tmp_path):
    project = tmp_path / "elsewhere"
    (project / "params").mkdir(parents=True)
    shutil.copy(SMOKE, project / "params" / "smoke.yaml")
    where = subprocess.run([str(installed / "bin" / "python"), "-c",
                            "import sif_lib, sif_lib.core.io as io; print(sif_lib.__file__); print(io.CHECKOUT); "
                            "print(io.notebooks_dir())"], cwd=project, capture_output=True, text=True, check=True)
    module, checkout, notebooks = where.stdout.split()
    assert str(installed) in module and not module.startswith(str(REPO)) and checkout == "None"
    assert Path(notebooks, "01_synthesize_constraints.ipynb").is_file()

    run = subprocess.run([str(installed / "bin" / "sif"), "run", "params/smoke.yaml", "--run-id", "w", "--only",
                          "01_synthesize_constraints"], cwd=project, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    out = project / "outputs" / "w"
    assert ((out / "data" / "instructions.jsonl").is_file()
            and (out / "notebooks" / "01_synthesize_constraints.ipynb").is_file())
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["stages"]["01_synthesize_constraints"]["status"] == "ok"
    assert not (REPO / "outputs" / "w").exists()
