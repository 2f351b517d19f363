"""The run directory: one folder per run under ``outputs/``, holding every artifact of every stage.

Layout (each stage reads only what earlier stages wrote)::

    outputs/<run_id>/
      manifest.json              run id, resolved params, package versions, per-stage status and timing
      params.yaml                the resolved params every notebook of the run reads
      notebooks/NN_<stage>.ipynb the executed notebooks
      metrics/NN_<stage>.json    each stage's figures, and the peak memory of the kernel that ran it
      data/instructions.jsonl    01  synthesized instructions (train and held-out splits)
      data/reasoning.jsonl       01  math items for the reasoning mix (train and held-out splits)
      data/curriculum.jsonl      02  sub-instructions L0..Ln of every instruction
      data/rollouts.jsonl        03  the policy's responses to every level of a ladder
      data/pseudo_labels.jsonl   03  (response, constraint, 0/1) pairs
      rm/                        04  the constraint-wise binary reward model and its card
      grpo/                      06  checkpoints, the final adapter, rollout logs
      eval/                      07  IFEval responses and scores, summary.json, summary.md, report.html

Writes are atomic (a temporary file renamed into place), so a stage that fails never leaves a file that
looks complete, and the artifacts of earlier stages are never touched.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any, Iterable, Iterator

import yaml

from sif_lib.config import Params, load_params
from sif_lib.errors import InputError

REPO_ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS_DIR = REPO_ROOT / "notebooks"
OUTPUTS_DIR = REPO_ROOT / "outputs"

STAGES = [
    "01_synthesize_constraints",
    "02_decompose_curriculum",
    "03_generate_pseudo_labels",
    "04_train_reward_model",
    "05_score_rewards",
    "06_train_grpo",
    "07_evaluate",
]


def stage_name(value: str) -> str:
    """Accept a full stage name, its number ('5', '05') or its suffix ('score_rewards')."""
    for stage in STAGES:
        if value in (stage, stage[:2], stage[3:]) or (value.isdigit() and int(value) == int(stage[:2])):
            return stage
    raise InputError(f"unknown stage '{value}'; stages are: {', '.join(STAGES)}")


def resolve_path(value: str | Path) -> Path:
    """Params paths are relative to the repository root, so notebooks and the CLI agree wherever they run."""
    path = Path(value).expanduser()
    return path if path.is_absolute() else (REPO_ROOT / path).resolve()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_FILE_MODE = 0o666 & ~_umask()


def atomic_write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        # mkstemp creates 0600 files; artifacts are meant to be shared like any other file.
        os.chmod(tmp, _FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, ensure_ascii=False, default=_json_default) + "\n")


def write_jsonl(path: Path, rows: Iterable[dict]) -> int:
    lines = [json.dumps(row, ensure_ascii=False, default=_json_default) for row in rows]
    atomic_write_text(path, "".join(line + "\n" for line in lines))
    return len(lines)


def append_jsonl(path: Path, rows: Iterable[dict]) -> None:
    """Append and flush: used where a stage checkpoints its progress line by line (rollouts)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False, default=_json_default) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def read_json(path: Path, missing: str) -> Any:
    """A JSON file's content. A missing file is an InputError that adds ``missing`` (what to do about it); a
    malformed one names its line."""
    if not path.is_file():
        raise InputError(f"{path}: missing: {missing}")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise InputError(f"{path}:{err.lineno}: not valid JSON ({err.msg})") from None


def read_jsonl(path: Path) -> list[dict]:
    return list(iter_jsonl(path))


def iter_jsonl(path: Path, tolerate_torn_tail: bool = False) -> Iterator[dict]:
    """Rows of a JSONL file; see :func:`iter_numbered_jsonl`."""
    for _, row in iter_numbered_jsonl(path, tolerate_torn_tail):
        yield row


def iter_numbered_jsonl(path: str | Path, tolerate_torn_tail: bool = False) -> Iterator[tuple[int, dict]]:
    """``(line number, row)`` for each object in a JSONL file. Blank lines are skipped and a UTF-8 byte-order
    mark is ignored; anything else that is not one JSON object per line is an InputError naming file and line,
    so callers can add their own per-field checks with the same kind of message.

    ``tolerate_torn_tail`` skips an unterminated last line, which is what a process killed mid-write leaves.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: file not found")
    with open(path, "rb") as handle:
        lines = handle.readlines()
    for number, raw in enumerate(lines, start=1):
        try:
            line = raw.decode("utf-8-sig" if number == 1 else "utf-8")
        except UnicodeDecodeError:
            raise InputError(f"{path}:{number}: not UTF-8 text") from None
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            if tolerate_torn_tail and number == len(lines) and not line.endswith("\n"):
                return
            raise InputError(f"{path}:{number}: not valid JSON ({err.msg} at column {err.colno})") from None
        if not isinstance(row, dict):
            raise InputError(f"{path}:{number}: expected a JSON object, got {type(row).__name__}")
        yield number, row


def peak_rss_mib(children: bool = True) -> float:
    """Peak resident memory of this process, or of its largest finished child process when that was larger
    (a training run launched as a subprocess, say), in MiB."""
    import resource

    def mib(who: int) -> float:
        rss = resource.getrusage(who).ru_maxrss
        return rss / (1024 * 1024) if sys.platform == "darwin" else rss / 1024  # bytes on macOS, KiB on Linux

    own = mib(resource.RUSAGE_SELF)
    return max(own, mib(resource.RUSAGE_CHILDREN)) if children else own


def peak_gpu_mib() -> float | None:
    """torch's peak reserved CUDA memory in this process, in MiB; None where CUDA was never used."""
    torch = sys.modules.get("torch")  # a stage that never imported torch used no GPU
    if torch is None or not torch.cuda.is_available() or not torch.cuda.is_initialized():
        return None
    return torch.cuda.max_memory_reserved() / 2**20


def _json_default(obj: Any) -> Any:
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "item"):
        return obj.item()
    if hasattr(obj, "tolist"):
        return obj.tolist()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


class RunContext:
    """What a notebook needs: the run directory, the resolved params, and artifact helpers."""

    def __init__(self, root: Path, params: Params, params_file: Path | None = None):
        self.root = Path(root)
        self.params = params
        self.params_file = params_file

    @classmethod
    def open(cls, run_dir: str | Path, params_file: str | Path | None = None,
             overrides: dict | None = None) -> "RunContext":
        """Open (creating if needed) a run directory.

        ``run_dir`` and ``params_file``, when relative, are relative to the current directory, as any path given
        to a program is: in a notebook that is the notebook's folder (Jupyter runs it there, and papermill
        passes absolute paths). Paths *inside* a params file are another matter: they are relative to the
        repository root (:func:`resolve_path`), so one params file means the same wherever it is used.

        ``params_file`` defaults to the run's own ``params.yaml``. When a different file is given, its
        resolved values are written to the run's ``params.yaml`` so that later stages read the same.
        """
        root = Path(run_dir).expanduser().resolve()
        own = root / "params.yaml"
        source = Path(params_file).expanduser().resolve() if params_file else own
        params = load_params(source, overrides)
        root.mkdir(parents=True, exist_ok=True)
        if source != own or overrides:
            atomic_write_text(own, yaml.safe_dump(params.to_dict(), sort_keys=False))
        return cls(root, params, source)

    @property
    def run_id(self) -> str:
        return self.root.name

    def path(self, *parts: str) -> Path:
        path = self.root.joinpath(*parts)
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def require(self, *parts: str, stage: str | None = None) -> Path:
        """An input artifact that an earlier stage must have written."""
        path = self.root.joinpath(*parts)
        if not path.exists():
            by = f": run stage {stage} first" if stage else ""
            raise InputError(f"{path}: missing input{by}")
        return path

    def write_metrics(self, stage: str, metrics: dict) -> Path:
        """Save a stage's figures. Adds to ``metrics`` (in place, so the caller's copy matches the file) the peak
        memory of the process that made them, ``peak_rss_mb``, and on a GPU ``peak_gpu_mb`` (torch's peak
        reserved memory on this process's device, which includes an in-process vLLM engine's): the figures in
        it that vary between runs."""
        metrics["peak_rss_mb"] = round(peak_rss_mib(), 1)
        gpu = peak_gpu_mib()
        if gpu is not None:
            metrics["peak_gpu_mb"] = round(gpu, 1)
        path = self.path("metrics", f"{stage_name(stage)}.json")
        write_json(path, metrics)
        return path

    def read_metrics(self, stage: str) -> dict:
        path = self.require("metrics", f"{stage_name(stage)}.json", stage=stage_name(stage))
        return json.loads(path.read_text())
