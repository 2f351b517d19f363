"""The stage table: the one place that lists the stages, 00 to 07 (00, the cold start, optional). Their ids are
the workbench's one numbering: notebook headings, metrics, ``--from``/``--to`` and the docs call GRPO stage 06.

Each stage is one notebook (``notebooks/<name>.ipynb``) over one module of :mod:`sif_lib.stages`, whose
``run(ctx) -> metrics`` does the stage's work, and writes ``metrics/<name>.json`` and its artifacts. Everything
else derives from this table: the runner's order and ``--from``/``--to``/``--only``, what ``--reuse`` copies,
the manifest's records, which stage to rerun when an input is missing, and the tests. Which params a stage
depends on is not declared here: each stage records the params fields it actually read (``params_read`` in its
metrics and manifest record), and ``--reuse`` compares exactly those.
"""

from __future__ import annotations

from dataclasses import dataclass

from sif_lib.config.params import Params
from sif_lib.core.errors import InputError


@dataclass(frozen=True)
class Stage:
    name: str                      # also the notebook's file name and the metrics file's
    step: str                      # what it does, in a few words (its number is the name's)
    module: str                    # its sif_lib.stages module, with run(ctx) -> metrics
    artifacts: tuple[str, ...]     # what it writes in the run directory besides metrics/ and notebooks/
    finish: str | None = None      # "module:function" the runner calls with the run directory once the notebook
                                   # has run, for work on the executed notebook itself; returns a line to print
    enabled_by: str | None = None  # a boolean params field ("section.key"); when false the runner records the
                                   # stage as skipped without running its notebook, and later stages ignore it

    @property
    def number(self) -> int:
        return int(self.name[:2])

    @property
    def notebook(self) -> str:
        return f"{self.name}.ipynb"


STAGES: tuple[Stage, ...] = (
    Stage("00_cold_start", "cold start (optional): SFT into a thinking format, on the policy's own answers",
          "sif_lib.stages.s00_cold_start", ("cold_start", "data/cold_start.jsonl"), enabled_by="cold_start.enabled"),
    Stage("01_synthesize_constraints", "multi-constraint instructions and math items",
          "sif_lib.stages.s01_synthesize_constraints",
          ("data/instructions.jsonl", "data/reasoning.jsonl", "data/instructions")),
    Stage("02_decompose_curriculum", "the incremental curriculum L0..Ln",
          "sif_lib.stages.s02_decompose_curriculum", ("data/curriculum.jsonl", "data/curriculum")),
    Stage("03_generate_pseudo_labels", "rollouts and self-supervised pseudo-labels",
          "sif_lib.stages.s03_generate_pseudo_labels", ("data/rollouts.jsonl", "data/pseudo_labels.jsonl")),
    Stage("04_train_reward_model", "the constraint-wise binary reward model",
          "sif_lib.stages.s04_train_reward_model", ("rm", "rm_check")),
    Stage("05_score_rewards", "reward scoring: ranking agreement and cost against a judge",
          "sif_lib.stages.s05_score_rewards", ()),
    Stage("06_train_grpo", "GRPO on the composite reward", "sif_lib.stages.s06_train_grpo", ("grpo",)),
    Stage("07_evaluate", "instruction following and reasoning, before and after", "sif_lib.stages.s07_evaluate",
          ("eval", "report.html"), finish="sif_lib.evaluation.report:write_report"),
)
STAGE_NAMES: tuple[str, ...] = tuple(s.name for s in STAGES)
_BY_NAME = {s.name: s for s in STAGES}


def stage(value: str) -> Stage:
    """A stage by its full name, its number ('5', '05') or its suffix ('score_rewards')."""
    for s in STAGES:
        if value in (s.name, s.name[:2], s.name[3:]) or (value.isdigit() and int(value) == s.number):
            return s
    raise InputError(f"unknown stage '{value}'; stages are: {', '.join(STAGE_NAMES)}")


def enabled(name: str, params: Params) -> bool:
    """Whether a stage runs under these params (a stage with no ``enabled_by`` always does)."""
    field = _BY_NAME[name].enabled_by
    return field is None or bool(params.value(field))


def done(record: dict | None) -> bool:
    """A stage's manifest record says it needs no rerun: it finished ``ok``, or was ``skipped`` as disabled."""
    return (record or {}).get("status") in ("ok", "skipped")


def stage_name(value: str) -> str:
    return stage(value).name


def stage_of_module(module: str) -> Stage:
    """The stage a ``sif_lib.stages`` module implements (``STAGE = stage_of_module(__name__)``)."""
    for s in STAGES:
        if s.module == module:
            return s
    raise KeyError(module)


def producer(path: str) -> Stage | None:
    """The stage that writes ``path`` (relative to the run directory), or None."""
    for s in STAGES:
        if any(path == a or path.startswith(a + "/") for a in s.artifacts):
            return s
    return None


def select(from_stage: str | None = None, only: str | None = None, to_stage: str | None = None) -> list[str]:
    """The stages to run: all, ``--from`` one on, up ``--to`` one (inclusive), both, or ``--only`` one."""
    if only and (from_stage or to_stage):
        raise InputError("--only cannot be combined with --from or --to")
    if only:
        return [stage_name(only)]
    first = STAGE_NAMES.index(stage(from_stage).name) if from_stage else 0
    last = STAGE_NAMES.index(stage(to_stage).name) if to_stage else len(STAGES) - 1
    if last < first:
        raise InputError(f"--to {STAGE_NAMES[last]} comes before --from {STAGE_NAMES[first]}")
    return list(STAGE_NAMES[first:last + 1])
