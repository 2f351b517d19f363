"""Checkpoints of stage 06 (and of the cold start) and resuming from them.

Checkpoints go to ``grpo/checkpoints/checkpoint-N`` every ``grpo.save_steps``, written whole: the trainer saves
into ``checkpoints/.saving/`` (its ``output_dir``), and :func:`commit_callback` then checks the files
(:func:`checkpoint_problem`) and renames the checkpoint into place, so a kill at any moment of a save leaves
no half-written ``checkpoint-N``. Older checkpoints beyond ``save_total_limit`` are removed the same way: one
rename out of sight, then the delete. Rerunning the stage resumes from the newest complete checkpoint; what a
killed save left in ``.saving`` is removed first. The log history continues from the checkpoint, and
rollout-log rows of steps after it are dropped, so no step is counted twice.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from sif_lib.core.io import ASIDE, iter_jsonl, recover_dir, replace_dir, saved_dir_problem, write_jsonl

CHECKPOINT_PREFIX = "checkpoint-"
SAVING = ".saving"  # under the checkpoint folder: where the trainer writes a checkpoint before it is committed


def checkpoint_step(path: Path) -> int | None:
    name = path.name
    if not name.startswith(CHECKPOINT_PREFIX) or not name[len(CHECKPOINT_PREFIX):].isdigit():
        return None
    return int(name[len(CHECKPOINT_PREFIX):])


def saving_dir(checkpoint_dir: Path) -> Path:
    """The trainer's ``output_dir``: each checkpoint is written here, then committed into ``checkpoint_dir``."""
    return Path(checkpoint_dir) / SAVING


def checkpoint_problem(path: Path) -> str | None:
    """Why a checkpoint folder cannot be resumed from, or None: its ``trainer_state.json`` (which the trainer
    writes last) must parse, and its files must be whole (:func:`~sif_lib.core.io.saved_dir_problem`)."""
    try:
        state = json.loads((path / "trainer_state.json").read_text())
    except (OSError, json.JSONDecodeError):
        return "no complete trainer_state.json"
    if not isinstance(state, dict):
        return "trainer_state.json is not a JSON object"
    return saved_dir_problem(path)


def _checkpoint_complete(path: Path) -> bool:
    return checkpoint_problem(path) is None


def _checkpoints(checkpoint_dir: Path) -> list[tuple[int, Path]]:
    if not checkpoint_dir.is_dir():
        return []
    found = ((checkpoint_step(p), p) for p in checkpoint_dir.iterdir() if p.is_dir())
    return sorted((step, p) for step, p in found if step is not None)


def latest_checkpoint(checkpoint_dir: Path) -> Path | None:
    """The newest complete checkpoint (see :func:`checkpoint_problem`), or None."""
    for _, path in reversed(_checkpoints(Path(checkpoint_dir))):
        if _checkpoint_complete(path):
            return path
    return None


def prune_incomplete_checkpoints(checkpoint_dir: Path) -> list[str]:
    """Delete what a killed run left half-written, so that it is neither resumed nor counted: checkpoint folders
    that are not complete, and whatever is in ``.saving``. Returns their names."""
    checkpoint_dir = Path(checkpoint_dir)
    removed = []
    for _, path in _checkpoints(checkpoint_dir):
        if not _checkpoint_complete(path):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path.name)
    saving = saving_dir(checkpoint_dir)
    if saving.is_dir():
        removed += [f"{SAVING}/{p.name}" for p in sorted(saving.iterdir()) if p.is_dir()]
        shutil.rmtree(saving, ignore_errors=True)
    for aside in sorted(checkpoint_dir.glob(f"{CHECKPOINT_PREFIX}*{ASIDE}")) if checkpoint_dir.is_dir() else ():
        recover_dir(aside.with_name(aside.name[:-len(ASIDE)]))  # a checkpoint of the same step, being replaced
    return removed


def commit_checkpoint(saved: Path, checkpoint_dir: Path, keep: int | None) -> Path:
    """Check a checkpoint the trainer wrote under ``.saving`` and rename it into ``checkpoint_dir``; then keep
    only the newest ``keep`` checkpoints (all with ``keep`` None or below 1). A checkpoint that fails the check is
    an error: training stops rather than go on with nothing to resume from."""
    saved = Path(saved)
    problem = checkpoint_problem(saved)
    if problem:
        raise RuntimeError(f"{saved}: the checkpoint just saved is not whole ({problem})")
    target = Path(checkpoint_dir) / saved.name
    replace_dir(saved, target)
    rotate_checkpoints(checkpoint_dir, keep)
    return target


def rotate_checkpoints(checkpoint_dir: Path, keep: int | None) -> list[str]:
    """Delete all but the newest ``keep`` checkpoints. Each is first renamed into ``.saving`` (one rename) and
    deleted there, so a kill during a delete leaves no partly deleted checkpoint under its own name."""
    if not keep or keep < 1:
        return []
    found = _checkpoints(Path(checkpoint_dir))
    trash_dir = saving_dir(checkpoint_dir)
    removed = []
    for _, path in found[:-keep]:
        trash_dir.mkdir(parents=True, exist_ok=True)
        trash = trash_dir / f"deleting-{path.name}"
        shutil.rmtree(trash, ignore_errors=True)
        os.replace(path, trash)
        shutil.rmtree(trash, ignore_errors=True)
        removed.append(path.name)
    return removed


def commit_callback(checkpoint_dir: Path, keep: int | None):
    """The ``TrainerCallback`` that commits each checkpoint after the trainer saved it (:func:`commit_checkpoint`),
    on the process that saves; with several processes, all wait for that. A machine of a multi-machine run that
    does not share the file system commits its own part of the checkpoint (its shards) without the check."""
    from transformers import TrainerCallback  # heavy: only when training

    checkpoint_dir = Path(checkpoint_dir)

    class CommitCheckpoints(TrainerCallback):
        def on_save(self, args, state, control, **kwargs):
            saved = saving_dir(checkpoint_dir) / f"{CHECKPOINT_PREFIX}{state.global_step}"
            _wait_for_everyone()
            if args.should_save:
                commit_checkpoint(saved, checkpoint_dir, keep)
            _wait_for_everyone()
            if not args.should_save and args.local_process_index == 0 and saved.is_dir():
                replace_dir(saved, checkpoint_dir / saved.name)
            return control

    return CommitCheckpoints()


def _wait_for_everyone() -> None:
    from accelerate import PartialState  # heavy: only when training

    PartialState().wait_for_everyone()  # what the trainer's own accelerator waits with; nothing on one process


def trim_rollout_log(path: Path, last_step: int) -> int:
    """Keep rollout-log rows of steps <= last_step (those the checkpoint holds); return how many were dropped."""
    if not path.is_file():
        return 0
    rows = list(iter_jsonl(path, tolerate_torn_tail=True))
    kept = [r for r in rows if isinstance(r.get("step"), int) and r["step"] <= last_step]
    if len(kept) != len(rows) or path.read_bytes()[-1:] not in (b"", b"\n"):
        write_jsonl(path, kept)
    return len(rows) - len(kept)
