"""Typed run parameters, loaded from the YAML files in ``params/``.

Every field has a default and a help text (``sif params`` prints them). A params file only names the
fields it changes. An unknown key, a value of the wrong type or a missing file is an ``InputError`` whose
one line names the file and the key. Whether the constraint ids that ``synthesis.hard_ids`` and
``synthesis.ifbench_ids`` name are ones synthesis can draw is for the constraint registries to say, which this
module does not import: :func:`sif_lib.synthesis.params_checks.check_constraint_ids` checks them, in the same
one-line form, where params are put to use (``sif run`` and ``sif params`` before anything else, stage 01 before
it draws).

**Paths inside a params file are relative to that file's folder** (``accelerate_config:
accelerate/deepspeed_zero3.yaml`` next to ``params/gpu_full_zero3.yaml``); ``--set`` values are relative to the
current directory. Both are made absolute when the params are loaded, so the run's own ``params.yaml`` means the
same wherever a stage reads it. Model specs and seed sources may also be names (``tiny``, a hub id): only a
relative path that exists is anchored.

**Reads are recorded.** Every params field a stage reads is logged (:meth:`Params.reads`); a stage saves the
list in its metrics, and ``--reuse`` compares exactly those fields, so no table of "what a stage depends on"
can drift from the code.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib.util
import os
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from sif_lib.config.sections import (  # noqa: F401  (re-exported: the sections are part of the params API)
    IFBENCH_ENV,
    IFEVAL_ENV,
    SHARED_IFBENCH,
    SHARED_IFEVAL,
    ColdStartParams,
    EvaluationParams,
    GRPOParams,
    ModelParams,
    RewardModelParams,
    RolloutParams,
    RunParams,
    ScoringParams,
    SynthesisParams,
    _Section,
    opt,
)
from sif_lib.config.trl_fields import check_trl_passthrough
from sif_lib.config.types import check_value, takes_float, type_name
from sif_lib.core.errors import InputError
from sif_lib.core.io import CHECKOUT


@dataclass
class Params:
    run: RunParams = field(default_factory=RunParams)
    model: ModelParams = field(default_factory=ModelParams)
    synthesis: SynthesisParams = field(default_factory=SynthesisParams)
    rollouts: RolloutParams = field(default_factory=RolloutParams)
    reward_model: RewardModelParams = field(default_factory=RewardModelParams)
    scoring: ScoringParams = field(default_factory=ScoringParams)
    grpo: GRPOParams = field(default_factory=GRPOParams)
    evaluation: EvaluationParams = field(default_factory=EvaluationParams)
    cold_start: ColdStartParams = field(default_factory=ColdStartParams)
    description: str = opt("", "One line saying what this params file is for.")

    def __post_init__(self) -> None:
        self._reads: set[str] = set()
        for f in dataclasses.fields(self):
            section = getattr(self, f.name)
            if isinstance(section, _Section):
                object.__setattr__(section, "_log", self._reads)
                object.__setattr__(section, "_section", f.name)

    def to_dict(self) -> dict:
        """Every field's value (not counted as reads)."""
        reads = set(self._reads)
        try:
            return dataclasses.asdict(self)
        finally:
            self._reads.clear()
            self._reads.update(reads)

    def flat(self) -> dict[str, Any]:
        """Every field's value keyed ``section.field`` (not counted as reads)."""
        return {(f"{name}.{key}" if isinstance(section, dict) else name): value
                for name, section in self.to_dict().items()
                for key, value in (section.items() if isinstance(section, dict) else [(None, section)])}

    def reads(self) -> list[str]:
        """The fields read since loading (or :meth:`forget_reads`), as ``section.field``, sorted."""
        return sorted(self._reads)

    def mark_read(self, keys) -> None:
        """Count reads made elsewhere (the training processes of a multi-process launch)."""
        self._reads.update(keys)

    def forget_reads(self) -> None:
        self._reads.clear()

    def value(self, dotted: str) -> Any:
        """The value of ``section.field``, without counting it as read."""
        return lookup(self.to_dict(), dotted)


def lookup(data: dict, dotted: str) -> Any:
    """``data[section][field]`` for ``"section.field"`` (``data[section]`` for a bare section); None where a level
    is missing or the section is not a mapping."""
    section, _, key = dotted.partition(".")
    value = data.get(section)
    return value.get(key) if key and isinstance(value, dict) else (None if key else value)



# Fields that hold file paths, and fields that hold a path or a name (model specs, seed sources, hub ids).
PATH_FIELDS = ("synthesis.reasoning_source", "grpo.accelerate_config", "evaluation.ifeval_path",
               "evaluation.gsm8k_path", "evaluation.ifbench_path")
PATH_OR_NAME_FIELDS = ("model.policy", "reward_model.backbone", "synthesis.seeds")


_FLOAT_STRING = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)[eE][+-]?\d+")  # YAML 1.1 reads `5e-5` (no dot) as a string


def _apply(obj: Any, data: dict, source: str, prefix: str = "") -> None:
    hints = typing.get_type_hints(type(obj))
    names = [f.name for f in dataclasses.fields(obj)]
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if key not in names:
            close = difflib.get_close_matches(str(key), names, n=1)
            hint = f" (did you mean '{prefix}{close[0]}'?)" if close else ""
            raise InputError(f"{source}: unknown key '{dotted}'{hint}")
        tp = hints[key]
        current = getattr(obj, key)
        if dataclasses.is_dataclass(current):
            if not isinstance(value, dict):
                raise InputError(f"{source}: key '{dotted}' must be a mapping of {type(current).__name__} fields")
            _apply(current, value, source, dotted + ".")
            continue
        if typing.get_origin(tp) is Literal and value is False and "off" in typing.get_args(tp):
            value = "off"  # YAML 1.1 reads a bare `off` as false
        if isinstance(value, str) and _FLOAT_STRING.fullmatch(value.strip()) and takes_float(tp):
            value = float(value)  # what was meant; any other string is left for the type check to reject
        if not check_value(tp, value):
            raise InputError(f"{source}: key '{dotted}' must be {type_name(tp)}, got {value!r}")
        if takes_float(tp) and isinstance(value, int):
            value = float(value)
        setattr(obj, key, value)


def params_from_dict(data: dict, source: str = "<params>", base: Path | None = None) -> Params:
    """Params from a nested dict; relative paths in it are anchored at ``base`` (default: the current directory)."""
    params = Params()
    _apply(params, anchor_paths(data or {}, base or Path.cwd()), source)
    _finish(params, source)
    return params


def anchor_paths(data: dict, base: Path) -> dict:
    """A copy of ``data`` whose relative paths are absolute, anchored at ``base``: every path field, and a path
    or name field whose value names an existing file or folder there."""
    out = {k: (dict(v) if isinstance(v, dict) else v) for k, v in data.items()}
    for dotted in PATH_FIELDS + PATH_OR_NAME_FIELDS:
        section, key = dotted.split(".")
        value = (out.get(section) or {}).get(key) if isinstance(out.get(section), dict) else None
        if not isinstance(value, str) or not value.strip():
            continue
        suffix = ""
        if dotted == "synthesis.seeds" and not Path(value).expanduser().exists():
            base_part, sep, split = value.rpartition(":")  # "file.jsonl:train" names a split of a file
            if base_part and (base / base_part).exists():
                value, suffix = base_part, sep + split
        path = Path(value).expanduser()
        if path.is_absolute():
            continue
        if dotted in PATH_FIELDS or (base / path).exists():
            out[section][key] = str((base / path).resolve()) + suffix
    return out


def default_ifeval_path() -> str | None:
    """Where the IFEval prompts are when ``evaluation.ifeval_path`` is null: ``$SIF_IFEVAL_PATH``, else
    ``../shared/...`` seen from the current directory, else from the checkout (a notebook's kernel runs in
    ``notebooks/``)."""
    return _shared_default(IFEVAL_ENV, SHARED_IFEVAL)


def default_ifbench_path() -> str | None:
    """Where the IFBench test set is when ``evaluation.ifbench_path`` is null, found as IFEval's prompts are
    (``$SIF_IFBENCH_PATH``, else ``../shared/...``)."""
    return _shared_default(IFBENCH_ENV, SHARED_IFBENCH)


def _shared_default(env: str, shared: Path) -> str | None:
    if os.environ.get(env):
        return str(Path(os.environ[env]).expanduser().resolve())
    for root in (Path.cwd(), CHECKOUT):
        if root is not None and (root / shared).is_file():
            return str((root / shared).resolve())
    return None


def _finish(params: Params, source: str) -> None:
    """Validate, fill the IFEval default, and start the read log empty."""
    _validate(params, source)
    ev = params.evaluation
    if ev.ifeval_path is None and ev.ifeval_hub_id is None:
        ev.ifeval_path = default_ifeval_path()
    params.forget_reads()


def check_report_to(value: str, source: str) -> None:
    """The package ``run.report_to`` names must be importable: one line naming the key, else."""
    package = {"tensorboard": "tensorboard", "trackio": "trackio"}.get(value)
    if package and importlib.util.find_spec(package) is None:
        hint = "pip install trackio" if package == "trackio" else "reinstall the lock: make install"
        raise InputError(f"{source}: key 'run.report_to' is {value!r}, but the {package} package is not installed "
                         f"({hint}), or set it to none")


def _validate(p: Params, source: str) -> None:
    """Cross-field checks that a type alone cannot express."""
    check_report_to(p.run.report_to, source)
    s = p.synthesis
    if not 1 <= s.min_constraints <= s.max_constraints <= 10:
        raise InputError(f"{source}: key 'synthesis.min_constraints'/'max_constraints' "
                         "must satisfy 1 <= min <= max <= 10")
    if not 0.0 <= s.hard_ratio <= 1.0:
        raise InputError(f"{source}: key 'synthesis.hard_ratio' must lie in [0, 1], got {s.hard_ratio}")
    if s.math_steps not in (None, 1, 2, 3):
        raise InputError(f"{source}: key 'synthesis.math_steps' must be null, 1, 2 or 3, got {s.math_steps}")
    if s.hard_ids is not None and not s.hard_ids and not s.ifbench_ids and s.hard_ratio > 0:
        raise InputError(f"{source}: key 'synthesis.hard_ids' is empty (and 'synthesis.ifbench_ids' names none) but "
                         f"'synthesis.hard_ratio' is {s.hard_ratio}")
    if any(not isinstance(n, int) or n < 2 for n in p.reward_model.learning_curve):
        raise InputError(f"{source}: key 'reward_model.learning_curve' must list pair counts of at least 2, "
                         f"got {p.reward_model.learning_curve}")
    if p.scoring.group_size < 0 or p.scoring.group_size == 1 or p.scoring.bootstrap < 0:
        raise InputError(f"{source}: key 'scoring.group_size' must be 0 or "
                         "at least 2, and 'scoring.bootstrap' at least 0")
    if (p.reward_model.probe_c is not None and p.reward_model.probe_c <= 0) or p.reward_model.bootstrap < 0:
        raise InputError(f"{source}: key 'reward_model.probe_c' must be "
                         "above 0 and 'reward_model.bootstrap' at least 0")
    if p.grpo.reasoning_share is not None and not 0.0 <= p.grpo.reasoning_share < 1.0:
        raise InputError(f"{source}: key 'grpo.reasoning_share' must be null or lie in [0, 1), got "
                         f"{p.grpo.reasoning_share}")
    for key, value in (("synthesis.reasoning_share", s.reasoning_share),
                       ("reward_model.eval_fraction", p.reward_model.eval_fraction)):
        if not 0.0 <= value < 1.0:
            raise InputError(f"{source}: key '{key}' must lie in [0, 1), got {value}")
    for key, value in (("grpo.max_steps", p.grpo.max_steps), ("grpo.num_generations", p.grpo.num_generations),
                       ("grpo.prompts_per_step", p.grpo.prompts_per_step),
                       ("rollouts.batch_size", p.rollouts.batch_size)):
        if value < 1:
            raise InputError(f"{source}: key '{key}' must be at least 1, got {value}")
    if p.grpo.repetitive_penalty < 0:
        raise InputError(f"{source}: key 'grpo.repetitive_penalty' must be at least 0, got {p.grpo.repetitive_penalty}")
    if p.grpo.num_generations < 2:
        raise InputError(f"{source}: key 'grpo.num_generations' must be at least 2 (GRPO compares a group)")
    if not 0 <= p.grpo.greedy_members < p.grpo.num_generations:
        raise InputError(f"{source}: key 'grpo.greedy_members' must lie in [0, num_generations), got "
                         f"{p.grpo.greedy_members} for {p.grpo.num_generations} generations")
    if p.grpo.greedy_members and (p.grpo.use_vllm or p.grpo.num_processes > 1):
        raise InputError(f"{source}: key 'grpo.greedy_members' needs the "
                         "single-process CPU decoder (no use_vllm, num_processes 1)")
    g = p.grpo
    if g.num_iterations < 1:
        raise InputError(f"{source}: key 'grpo.num_iterations' must be at least 1, got {g.num_iterations}")
    if g.epsilon <= 0 or (g.epsilon_high is not None and g.epsilon_high < g.epsilon):
        raise InputError(f"{source}: key 'grpo.epsilon' must be above 0 and 'grpo.epsilon_high' (when set) at least "
                         f"epsilon, got {g.epsilon} and {g.epsilon_high}")
    if not 0.0 <= g.top_entropy_quantile <= 1.0:
        raise InputError(f"{source}: key 'grpo.top_entropy_quantile' must lie in [0, 1], got {g.top_entropy_quantile}")
    if g.trl:
        check_trl_passthrough(g.trl, source)


# ---------------------------------------------------------------------------------------------------------------
# Loading


def read_params_file(path: str | Path) -> dict:
    """The mapping in a params YAML file. Every way a file can be unusable is one InputError naming it: missing,
    a directory, unreadable, not UTF-8, empty (an explicit ``{}`` means all defaults), not YAML, not a mapping."""
    path = Path(path)
    if path.is_dir():
        raise InputError(f"{path}: is a directory, not a params file")
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"{path}: params file not found") from None
    except OSError as err:
        raise InputError(f"{path}: cannot read the params file ({err.strerror or err})") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = raw[:err.start].count(b"\n") + 1
        raise InputError(f"{path}:{line}: not a UTF-8 text file (byte {err.start}); is it the params YAML?") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        raise InputError(f"{path}{where}: not valid YAML ({getattr(err, 'problem', err)})") from None
    if data is None:
        # An empty or truncated file must not silently start the full default pipeline.
        raise InputError(f"{path}: the params file is empty; write {{}} to run with every default")
    if not isinstance(data, dict):
        raise InputError(f"{path}: a params file must be a mapping of sections, got a YAML {type(data).__name__}")
    return data


def load_params(path: str | Path, overrides: dict | None = None) -> Params:
    """Read a params YAML file, apply optional overrides (a nested dict), and validate. Paths in the file are
    anchored at its folder, paths in the overrides at the current directory."""
    path = Path(path)
    data = read_params_file(path)
    params = Params()
    _apply(params, anchor_paths(data, path.resolve().parent), str(path))
    if overrides:
        _apply(params, anchor_paths(overrides, Path.cwd()), f"{path} (overrides)")
    _finish(params, str(path))
    return params


def describe_params() -> str:
    """Every field with its default and help text, as the ``sif params`` command prints it."""
    lines = []
    for section in dataclasses.fields(Params):
        value = getattr(Params(), section.name)
        if not dataclasses.is_dataclass(value):
            continue
        lines.append(f"{section.name}:")
        for f in dataclasses.fields(value):
            lines.append(f"  {f.name}: {getattr(value, f.name)!r}\n      {f.metadata.get('help', '')}")
    return "\n".join(lines)
