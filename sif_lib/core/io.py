"""Leaf helpers: where things are, atomic writes, JSON and JSONL. Imports nothing of ours but the error types.

Writes are atomic (a temporary file renamed into place), so a stage that fails never leaves a file that looks
complete; a write that fails for want of space or permission is a :class:`StorageError` naming the path. Whole
directories (a model, a checkpoint) are written under a temporary name, checked and renamed into place
(:func:`staged_dir`, :func:`commit_dir`). Readers turn malformed input into an ``InputError`` naming the file
and line.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import sys
import tempfile
import zipfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from sif_lib.core.errors import InputError, StorageError

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
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    except OSError as err:
        raise _storage_or(err, path) from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        # mkstemp creates 0600 files; artifacts are meant to be shared like any other file.
        os.chmod(tmp, _FILE_MODE)
        os.replace(tmp, path)
    except BaseException as err:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(err, OSError):
            raise _storage_or(err, path) from None
        raise


def write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, ensure_ascii=False, default=_json_default) + "\n")


def write_jsonl(path: Path, rows: Iterable[dict]) -> int:
    lines = [json.dumps(row, ensure_ascii=False, default=_json_default) for row in rows]
    atomic_write_text(path, "".join(line + "\n" for line in lines))
    return len(lines)


def append_jsonl(path: Path, rows: Iterable[dict]) -> None:
    """Append and flush: used where a stage checkpoints its progress line by line (rollouts)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as handle:
            for row in rows:
                handle.write(json.dumps(row, ensure_ascii=False, default=_json_default) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as err:
        raise _storage_or(err, path) from None


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


# ---------------------------------------------------------------------------------------------------------------
# Writes that fail for want of space or permission

_STORAGE_FAULTS = {errno.ENOSPC: "no space left on device", errno.EDQUOT: "disk quota exceeded",
                   errno.EACCES: "permission denied", errno.EPERM: "operation not permitted",
                   errno.EROFS: "read-only file system", errno.ENOTDIR: "a part of the path is not a directory"}
# How libraries that are not Python's own I/O report a full disk: safetensors (Rust) and torch (C++).
_FULL_DISK_TEXT = ("No space left on device", "StorageFull", "os error 28", "Disk quota exceeded")


def at_nearest_existing(path: str | Path, probe):
    """``probe(folder)`` on ``path`` or, where it raises OSError (not there yet), its nearest parent that
    answers; None when none does."""
    path = Path(path).absolute()
    for folder in (path, *path.parents):
        try:
            return probe(folder)
        except OSError:
            continue
    return None


def free_bytes(path: str | Path) -> int | None:
    """Free space (for this user) on the file system that holds ``path``, or its nearest existing parent."""
    return at_nearest_existing(path, lambda folder: shutil.disk_usage(folder).free)


def human_bytes(n: float | None) -> str:
    if n is None:
        return "unknown"
    for unit, size in (("GB", 2**30), ("MB", 2**20), ("KB", 2**10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{int(n)} B"


def storage_error(err: BaseException, path: str | Path | None = None, hint: str = "") -> StorageError | None:
    """The one-line error for a write that failed for want of space or permission, naming ``path`` (else the
    file the error names) and, for a full disk, the space left there; None for any other error. An error
    without an errno (a library's own) counts when its text says the disk is full."""
    if isinstance(err, StorageError):
        return err
    code = getattr(err, "errno", None) if isinstance(err, OSError) else None
    if code not in _STORAGE_FAULTS:
        if not any(text in str(err) for text in _FULL_DISK_TEXT):
            return None
        code = errno.ENOSPC
    where = Path(path) if path is not None else Path(getattr(err, "filename", None) or "?")
    line = f"{where}: {_STORAGE_FAULTS[code]}"
    if code in (errno.ENOSPC, errno.EDQUOT):
        line += f" ({human_bytes(free_bytes(where))} free there)"
    return StorageError(line + (f"; {hint}" if hint else ""))


def _storage_or(err: OSError, path: Path) -> OSError:
    return storage_error(err, path) or err


# ---------------------------------------------------------------------------------------------------------------
# Directories written whole: a model, an adapter, a checkpoint

ASIDE = ".old"   # <target>.old: the previous copy while the new one is renamed into place
STAGING = ".tmp"  # <target>.tmp (or .tmp-XXXX): a copy being written


def saved_dir_problem(folder: Path) -> str | None:
    """Why the files of a saved directory are not whole, or None: every ``.json`` file parses, every
    ``.safetensors`` file is as long as its header says, every zip-format torch file (``.pt``, ``.pth``,
    ``.bin``) has its central directory. A check of form, not of values: it catches a write that was cut short."""
    for file in sorted(p for p in Path(folder).rglob("*") if p.is_file()):
        rel = file.relative_to(folder)
        try:
            if file.suffix == ".json":
                json.loads(file.read_bytes())
            elif file.suffix == ".safetensors":
                problem = _safetensors_problem(file)
                if problem:
                    return f"{rel}: {problem}"
            elif file.suffix in (".pt", ".pth", ".bin"):
                with open(file, "rb") as handle:
                    zipped = handle.read(2) == b"PK"
                if zipped and not zipfile.is_zipfile(file):
                    return f"{rel}: truncated (no zip central directory)"
        except ValueError:
            return f"{rel}: not valid JSON"
        except OSError as err:
            return f"{rel}: unreadable ({err.strerror or err})"
    return None


def _safetensors_problem(file: Path) -> str | None:
    size = file.stat().st_size
    with open(file, "rb") as handle:
        head = handle.read(8)
        if len(head) < 8:
            return "truncated (no header)"
        length = int.from_bytes(head, "little")
        if length > size - 8:
            return "truncated (inside its header)"
        try:
            header = json.loads(handle.read(length))
            ends = [entry["data_offsets"][1] for name, entry in header.items() if name != "__metadata__"]
        except (ValueError, KeyError, TypeError, AttributeError, IndexError):
            return "its header is not a safetensors header"
    expected = 8 + length + max(ends, default=0)
    return None if size == expected else f"{size} bytes where its header says {expected}"


def replace_dir(new: Path, target: Path) -> None:
    """Put the finished directory ``new`` in the place of ``target``. An older ``target`` is renamed to
    ``<target>.old`` first and removed once ``new`` is in place: every step is one rename, so a kill at any
    moment leaves one whole copy, under its name or under ``.old``, which :func:`recover_dir` puts back."""
    new, target = Path(new), Path(target)
    aside = target.with_name(target.name + ASIDE)
    if target.exists():
        shutil.rmtree(aside, ignore_errors=True)
        os.replace(target, aside)
    os.replace(new, target)
    shutil.rmtree(aside, ignore_errors=True)


def commit_dir(new: Path, target: Path) -> None:
    """Check a directory written under a temporary name (:func:`saved_dir_problem`), then
    :func:`replace_dir` it into place; one that fails the check is removed, and ``target`` stays as it was."""
    problem = saved_dir_problem(new)
    if problem:
        shutil.rmtree(new, ignore_errors=True)
        raise RuntimeError(f"{target}: the copy just written is not whole ({problem}); the previous one is kept")
    replace_dir(new, target)


@contextlib.contextmanager
def staged_dir(target: Path) -> Iterator[Path]:
    """Write a directory whole: the block writes into ``<target>.tmp``, which is then checked and renamed into
    place (:func:`commit_dir`). An error removes the temporary folder and leaves ``target`` as it was; a full
    disk or a folder that cannot be written is a :class:`StorageError` naming ``target``."""
    target = Path(target)
    tmp = target.with_name(target.name + STAGING)
    try:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        yield tmp
        commit_dir(tmp, target)
    except BaseException as err:
        shutil.rmtree(tmp, ignore_errors=True)
        fault = storage_error(err, target) if isinstance(err, Exception) else None
        if fault is not None:
            raise fault from None
        raise


def recover_dir(target: Path) -> list[str]:
    """Undo what a kill in the middle of :func:`replace_dir` or :func:`staged_dir` left beside ``target``: the
    previous copy moved aside and nothing put in its place is renamed back; a ``.old`` copy next to a target
    that is in place, and half-written ``.tmp`` copies, are removed. Returns a line per thing done."""
    target = Path(target)
    done = []
    aside = target.with_name(target.name + ASIDE)
    if aside.is_dir():
        if target.exists():
            shutil.rmtree(aside, ignore_errors=True)
        else:
            os.replace(aside, target)
            done.append(f"{target}: put back the previous copy, which a killed save had moved aside")
    for tmp in target.parent.glob(target.name + STAGING + "*"):
        if tmp.is_dir() and _staging_of(tmp.name) == target.name:
            shutil.rmtree(tmp, ignore_errors=True)
            done.append(f"{tmp}: removed a copy that a killed save left half-written")
    return done


def _staging_of(name: str) -> str | None:
    """The target whose temporary copy a folder named ``name`` is (``rm.tmp``, ``rm.tmp-x1y2``), or None."""
    if name.endswith(STAGING):
        return name[:-len(STAGING)] or None
    head, sep, _ = name.partition(STAGING + "-")
    return head or None if sep else None


def recover_dirs(root: Path, depth: int = 2) -> list[str]:
    """:func:`recover_dir` for every directory under ``root`` (``depth`` levels down) that a killed save left."""
    done: list[str] = []
    folders = [Path(root)]
    for _ in range(depth):
        below = []
        for folder in folders:
            try:
                entries = sorted(p for p in folder.iterdir() if p.is_dir())
            except OSError:
                continue
            targets = {p.with_name(p.name[:-len(ASIDE)]) for p in entries if p.name.endswith(ASIDE)}
            targets |= {p.with_name(name) for p in entries if (name := _staging_of(p.name))}
            for target in sorted(targets):
                done += recover_dir(target)
            below += [p for p in entries if p.exists() and not p.name.startswith(".")]
        folders = below
    return done
