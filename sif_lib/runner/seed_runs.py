"""``sif run --seeds``: the plan of a run repeated under several GRPO seeds, and what is already done of it.

Stages 01-05 run once, into a base run (or come from ``--reuse RUN``). Every seed then gets its own run directory,
``<base>-seed<N>``, whose earlier stages are copied from the base by ``--reuse`` and whose GRPO and evaluation run
with ``grpo.seed`` set to N. Stages 01-05 never read ``grpo.seed``, so ``--reuse``'s check of the params they read
passes, and every seed trains on the same data and reward model. :func:`plan_seeds` is the plan as data (no file is
read or written); :func:`sif_lib.runner.pipeline.run_seeds` carries it out.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from sif_lib.core.errors import InputError
from sif_lib.runner.stage_table import STAGE_NAMES, done, stage

SEED_FIELD = ("grpo", "seed")
FIRST_SEEDED = stage("train_grpo").name  # the first stage each seed runs itself


@dataclass(frozen=True)
class SeedRun:
    seed: int
    run_dir: Path
    overrides: dict      # the --set overrides with grpo.seed added
    reuse: Path          # the run whose stages before FIRST_SEEDED are copied


@dataclass(frozen=True)
class SeedPlan:
    base_dir: Path                  # where stages 01-05 are (or will be)
    run_base: bool                  # False with --reuse: the base is an existing run, never run here
    base_overrides: dict
    base_stages: tuple[str, ...]    # the stages the base provides
    seed_stages: tuple[str, ...]    # the stages each seed runs
    runs: tuple[SeedRun, ...]


def parse_seeds(text: str) -> list[int]:
    """``"0,1,2"`` as ``[0, 1, 2]``: distinct integers of at least 0, in the order given."""
    seeds = []
    for part in str(text).split(","):
        part = part.strip()
        if not (part.isascii() and part.isdigit()):  # also refuses "", "-1", "1.5"
            raise InputError(f"--seeds {text!r}: expected comma-separated integers of at least 0, e.g. --seeds 0,1,2")
        if int(part) in seeds:
            raise InputError(f"--seeds {text!r}: seed {int(part)} is given twice")
        seeds.append(int(part))
    return seeds


def plan_seeds(params_file: str | Path, seeds: str | Sequence[int], outputs: str | Path, run_id: str | None = None,
               overrides: dict | None = None, reuse: str | Path | None = None, from_stage: str | None = None,
               to_stage: str | None = None, only: str | None = None, now: dt.datetime | None = None) -> SeedPlan:
    """The runs ``sif run PARAMS --seeds ...`` makes. The base is ``--run-id``, else the ``--reuse`` run, else
    ``<params stem>-<timestamp>``; seed N runs in ``<outputs>/<base name>-seed<N>``. ``--from`` may only name
    the first seeded stage (which is implied); ``--to`` and ``--only`` do not apply."""
    seeds = parse_seeds(seeds if isinstance(seeds, str) else ",".join(str(s) for s in seeds))
    if to_stage or only:
        raise InputError(f"--seeds runs stages up to {STAGE_NAMES[STAGE_NAMES.index(FIRST_SEEDED) - 1]} once and "
                         f"the rest per seed: it takes no --to or --only")
    if from_stage and stage(from_stage).name != FIRST_SEEDED:
        raise InputError(f"--seeds reruns from {FIRST_SEEDED} for each seed: --from {from_stage} does not apply")
    section, key = SEED_FIELD
    if key in ((overrides or {}).get(section) or {}):
        raise InputError(f"--set {section}.{key}: --seeds sets it for each run")
    outputs = Path(outputs)
    stamp = (now or dt.datetime.now()).strftime("%Y%m%d-%H%M%S")
    base_name = run_id or (Path(reuse).name if reuse else f"{Path(params_file).stem}-{stamp}")
    base_dir = Path(reuse) if reuse else outputs / base_name
    first = STAGE_NAMES.index(FIRST_SEEDED)
    runs = []
    for seed in seeds:
        seeded = {name: dict(values) for name, values in (overrides or {}).items()}
        seeded.setdefault(section, {})[key] = seed
        runs.append(SeedRun(seed, outputs / f"{base_name}-seed{seed}", seeded, base_dir))
    return SeedPlan(base_dir, not reuse, dict(overrides or {}), STAGE_NAMES[:first], STAGE_NAMES[first:], tuple(runs))


def first_unfinished(run_dir: Path, stages: Sequence[str]) -> str | None:
    """The first of ``stages`` that is neither ``ok`` nor ``skipped`` in ``run_dir``'s manifest (all of them when there
    is none); None when every one is."""
    try:
        records = json.loads((run_dir / "manifest.json").read_text()).get("stages") or {}
    except (OSError, ValueError, AttributeError):
        records = {}
    return next((name for name in stages if not done(records.get(name))), None)


def reused_from(run_dir: Path) -> str | None:
    """The run a run directory copied its earlier stages from (None when it is not such a run, or absent)."""
    try:
        return json.loads((run_dir / "manifest.json").read_text()).get("reused_from")
    except (OSError, ValueError, AttributeError):
        return None


def display_path(path: Path) -> str:
    """``path`` relative to the current directory when it lies below it (shorter commands to copy)."""
    try:
        return os.path.relpath(path) if Path(path).resolve().is_relative_to(Path.cwd()) else str(path)
    except ValueError:
        return str(path)


def compare_command(run_dirs: Sequence[Path]) -> str:
    return "sif compare " + " ".join(shlex.quote(display_path(d)) for d in run_dirs)


def check_finished(run_dir: Path, params: dict) -> None:
    """A seed run that finished earlier is kept only if it ran with these params (``Params.to_dict()``)."""
    try:
        theirs = json.loads((run_dir / "manifest.json").read_text()).get("params") or {}
    except (OSError, ValueError, AttributeError):
        theirs = {}
    for section, values in params.items():
        if section not in theirs:
            continue  # a section added since that run: it ran with that section's defaults, which nothing else sets
        for key, value in (values.items() if isinstance(values, dict) else [(None, values)]):
            found = (theirs.get(section) or {}).get(key) if key else theirs.get(section)
            if found != value:
                name = f"{section}.{key}" if key else section
                raise InputError(f"{run_dir}: finished already with another {name} ({found!r}, here {value!r}); "
                                 f"pick another --run-id")


def seed_step(run: SeedRun, stages: Sequence[str], params: dict) -> tuple[str, Path | None] | None:
    """What is left of one seed run: None when it finished (with these params, ``Params.to_dict()``; a run that
    finished with others is refused), else the stage to start from and the run to copy the earlier stages from
    (None: the directory is this plan's own, stopped part-way, and resumes)."""
    todo = first_unfinished(run.run_dir, stages)
    if todo is None:
        check_finished(run.run_dir, params)
        return None
    if reused_from(run.run_dir) == str(run.reuse.resolve()):
        return todo, None
    return stages[0], run.reuse  # a new run; run_pipeline refuses a directory that exists for another reason
