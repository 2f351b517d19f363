"""Live training curves: where ``run.report_to`` sends the trainers' logs, and the workbench's own scalars.

* ``tensorboard``: every TRL trainer of a run (the cold-start SFT, the reward model, GRPO) writes its logged
  scalars (loss, reward and its components, KL, completion length, learning rate) as TensorBoard event files
  under ``<run>/tensorboard/<stage>``, and stage 06 adds its held-out probe before and after training
  (``<run>/tensorboard/<stage>/probe``). ``tensorboard --logdir outputs/<run>/tensorboard`` shows them while a
  stage runs.
* ``trackio``: the trainers report to trackio (a local project named after the run, one run per stage); the
  package is not a dependency of the workbench.
* ``none``: the trainers report nowhere.

A fresh training start clears its stage's event files; a resumed one appends to them. Where the logs go does
not change what a stage computes, so ``run.report_to`` is read without being recorded (``--reuse`` ignores it).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sif_lib.config.params import Params

FOLDER = "tensorboard"  # <run>/tensorboard/<stage>
_ENV = "TENSORBOARD_LOGGING_DIR"  # where transformers' TensorBoardCallback writes (it has no logging_dir field)


def report_to(params: Params) -> str:
    """``run.report_to``, not counted as read."""
    return params.value("run.report_to")


def log_dir(run_root: Path, stage: str) -> Path:
    """Where a stage's event files go."""
    return Path(run_root) / FOLDER / stage


def config_kwargs(params: Params, where: Path | None) -> dict[str, Any]:
    """The keywords of a trainer's config (``TrainingArguments`` and TRL's subclasses) that say where it reports.
    ``where`` is the stage's :func:`log_dir` (or a folder in it); None reports nowhere (a side training, such as
    the reward model's learning-curve subsets)."""
    choice = report_to(params) if where is not None else "none"
    if choice == "none":
        return {"report_to": []}
    if choice == "trackio":
        run_root = next(p for p in Path(where).parents if p.name == FOLDER).parent
        return {"report_to": ["trackio"], "project": run_root.name,
                "run_name": Path(where).relative_to(run_root / FOLDER).as_posix()}
    return {"report_to": [choice]}


@contextmanager
def trainer_logs(params: Params, where: Path | None, fresh: bool, main_process: bool = True) -> Iterator[None]:
    """Around the construction of a trainer: with tensorboard, its callback is pointed at ``where`` (read from
    the environment when the trainer is built), and ``fresh`` (not a resume) clears earlier event files there."""
    if where is None or report_to(params) != "tensorboard":
        yield
        return
    if fresh and main_process:
        shutil.rmtree(where, ignore_errors=True)
    before = os.environ.get(_ENV)
    os.environ[_ENV] = str(where)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(_ENV, None)
        else:
            os.environ[_ENV] = before


def write_scalars(params: Params, where: Path, points: Mapping[int, Mapping[str, float | None]]) -> bool:
    """Write ``{step: {tag: value}}`` to a fresh event file in ``where`` (earlier ones there are removed), with
    tensorboard on; a None value is left out. Returns whether anything was written."""
    if report_to(params) != "tensorboard":
        return False
    from torch.utils.tensorboard import SummaryWriter  # heavy: imports tensorboard

    shutil.rmtree(where, ignore_errors=True)
    writer = SummaryWriter(log_dir=str(where))
    try:
        for step, values in sorted(points.items()):
            for tag, value in values.items():
                if value is not None:
                    writer.add_scalar(tag, float(value), int(step))
    finally:
        writer.close()
    return True
