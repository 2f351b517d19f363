"""Leaf helpers: where things are, atomic writes, JSON and JSONL. Imports nothing of ours but the error type.

Writes are atomic (a temporary file renamed into place), so a stage that fails never leaves a file that looks
complete. Readers turn malformed input into an ``InputError`` naming the file and line.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any, Iterable, Iterator

from sif_lib.core.errors import InputError

PACKAGE_DIR = Path(__file__).resolve().parents[1]
# A source checkout holds the package next to notebooks/ and params/; an installed wheel does not.
CHECKOUT = PACKAGE_DIR.parent if (PACKAGE_DIR.parent / "pyproject.toml").is_file() \
    and (PACKAGE_DIR.parent / "notebooks").is_dir() else None


def notebooks_dir() -> Path:
    """The stage notebooks: the checkout's ``notebooks/``, or the copy an installed wheel carries as package
    data (``sif_lib/notebooks``)."""
    if CHECKOUT is not None:
        return CHECKOUT / "notebooks"
    return PACKAGE_DIR / "notebooks"


def outputs_dir() -> Path:
    """Where run directories go by default: ``outputs/`` of the current directory."""
    return Path.cwd() / "outputs"


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
    torch = sys.modules.get("torch")  # a process that never imported torch used no GPU
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
