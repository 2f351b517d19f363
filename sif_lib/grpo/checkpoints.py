"""Checkpoints of stage 06 and resuming from them.

Checkpoints go to ``grpo/checkpoints/`` every ``grpo.save_steps``; rerunning the stage resumes from the newest
complete one (a checkpoint is complete once its ``trainer_state.json`` is written, which the trainer does last).
The log history continues from the checkpoint, and rollout-log rows of steps after it are dropped, so no step is
counted twice.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from sif_lib.core.io import iter_jsonl, write_jsonl

CHECKPOINT_PREFIX = "checkpoint-"


def checkpoint_step(path: Path) -> int | None:
    name = path.name
    if not name.startswith(CHECKPOINT_PREFIX) or not name[len(CHECKPOINT_PREFIX):].isdigit():
        return None
    return int(name[len(CHECKPOINT_PREFIX):])


def _checkpoint_complete(path: Path) -> bool:
    try:
        json.loads((path / "trainer_state.json").read_text())
    except (OSError, json.JSONDecodeError):
        return False
    return True


def latest_checkpoint(checkpoint_dir: Path) -> Path | None:
    """The newest complete checkpoint (its trainer_state.json, written last, parses), or None."""
    if not checkpoint_dir.is_dir():
        return None
    found = [(step, p) for p in checkpoint_dir.iterdir() if p.is_dir() and (step := checkpoint_step(p)) is not None]
    for step, path in sorted(found, reverse=True):
        if _checkpoint_complete(path):
            return path
    return None


def prune_incomplete_checkpoints(checkpoint_dir: Path) -> list[str]:
    """Delete checkpoint folders that a killed run left half-written, so they are neither resumed nor counted."""
    removed = []
    if checkpoint_dir.is_dir():
        for path in checkpoint_dir.iterdir():
            if path.is_dir() and checkpoint_step(path) is not None and not _checkpoint_complete(path):
                shutil.rmtree(path, ignore_errors=True)
                removed.append(path.name)
    return removed


def trim_rollout_log(path: Path, last_step: int) -> int:
    """Keep rollout-log rows of steps <= last_step (those the checkpoint holds); return how many were dropped."""
    if not path.is_file():
        return 0
    rows = list(iter_jsonl(path, tolerate_torn_tail=True))
    kept = [r for r in rows if isinstance(r.get("step"), int) and r["step"] <= last_step]
    if len(kept) != len(rows) or path.read_bytes()[-1:] not in (b"", b"\n"):
        write_jsonl(path, kept)
    return len(rows) - len(kept)
