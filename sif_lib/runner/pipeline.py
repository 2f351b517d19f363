"""Papermill orchestration: execute the stage notebooks, 00 to 07 as the stage table lists them (00, the cold
start, only when enabled), in order into a run directory; each is found by the name the table gives.

Each stage is one parameterised notebook. The runner passes it ``run_dir`` and ``params_file``; the notebook reads
its inputs from the run directory and writes its artifacts and ``metrics/<stage>.json`` there. ``manifest.json``
records every stage's status and timing. A failing stage stops the run and is marked ``failed``; what earlier
stages wrote stays, and ``--from`` resumes. One ``sif run`` at a time writes a run directory
(:mod:`sif_lib.runner.runlock`); a full disk or a folder that cannot be written ends the run with one line naming
the path, and a stage whose kernel died says of what (:mod:`sif_lib.runner.kernels`).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import importlib
import json
import logging
import os
import platform
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

import yaml

from sif_lib.config.params import Params, load_params, lookup, read_params_file
from sif_lib.core.errors import InputError
from sif_lib.core.io import (
    atomic_write_text,
    notebooks_dir,
    outputs_dir,
    read_json,
    recover_dirs,
    storage_error,
    write_json,
)
from sif_lib.core.versions import installed_versions
from sif_lib.policy.answers import BASE_ANSWER_CACHES, TRAINED_ANSWER_CACHES, copy_answer_caches
from sif_lib.policy.models import parse_spec
from sif_lib.runner import progress
from sif_lib.runner.disk_space import check_space
from sif_lib.runner.kernels import StageWatch, ipc_kernel_manager_class, stop_children
from sif_lib.runner.runlock import hold, process_alive, process_record, run_dir_for
from sif_lib.runner.seed_runs import first_unfinished, plan_seeds, seed_step
from sif_lib.runner.stage_table import STAGE_NAMES, enabled, select
from sif_lib.runner.stage_table import stage as stage_entry

_VERSIONED = ["sif-lib", "torch", "transformers", "trl", "peft", "datasets", "accelerate", "papermill",
              "vllm", "deepspeed", "bitsandbytes"]


def package_versions() -> dict:
    """Python's version and those of the packages in :data:`_VERSIONED` that are installed."""
    installed = installed_versions(_VERSIONED)
    return {"python": platform.python_version(), **{k: v for k, v in installed.items() if v is not None}}


def _stage_record_from_metrics(metrics_file: Path) -> dict:
    """What a stage's metrics file adds to its manifest record: the stage kernel's own peak memory and the params
    fields the stage read (which ``RunContext.write_metrics`` adds; ``--reuse`` compares those), and whatever the
    stage put under ``manifest_record`` (stage 06: the effective GRPOConfig). Peak memory is ``None`` when the
    stage failed before writing its metrics."""
    try:
        metrics = json.loads(metrics_file.read_text())
    except (OSError, ValueError):
        metrics = None
    metrics = metrics if isinstance(metrics, dict) else {}
    value, extra = metrics.get("peak_rss_mb"), metrics.get("manifest_record")
    record = {"peak_rss_mb": float(value) if isinstance(value, (int, float)) else None,
              **(extra if isinstance(extra, dict) else {})}
    if isinstance(metrics.get("params_read"), list):
        record["params_read"] = metrics["params_read"]
    return record


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


class StageFailed(RuntimeError):
    """A notebook stage raised; the manifest already says so."""


class RunInterrupted(RuntimeError):
    """Ctrl-C (SIGINT) or SIGTERM stopped a stage; it is marked ``interrupted`` and its kernel is gone."""

    def __init__(self, stage: str, run_dir: Path, params_file: Path):
        self.stage, self.run_dir = stage, run_dir
        super().__init__(f"interrupted: stage {stage} stopped and marked interrupted in {run_dir / 'manifest.json'}; "
                         f"resume with: sif run {params_file} --run-id {run_dir.name} --outputs {run_dir.parent} "
                         f"--from {stage}")


def mark_interrupted(manifest: dict, manifest_path: Path) -> list[str]:
    """Stages that a vanished process left ``running`` (a SIGKILL, a crash, a lost node) become ``interrupted``,
    with the time this was seen, and so does one this process left (a write that failed for want of space). A
    stage whose process still runs means another ``sif run`` is working in this run directory: that is refused."""
    marked = []
    for stage, record in (manifest.get("stages") or {}).items():
        if record.get("status") != "running":
            continue
        if process_alive(record) and record.get("pid") != os.getpid():
            raise InputError(f"{manifest_path}: stage {stage} is running in process {record['pid']}; wait for it, "
                             f"or stop it, before starting another run here")
        record.update({"status": "interrupted", "interrupted_seen": _now()})
        marked.append(stage)
    return marked


def stage_lines(run_dir: Path) -> list[str]:
    """``sif status``: one line per stage with its state, start, seconds and peak memory. A stage left
    ``running`` by a process that is gone shows as interrupted (the manifest is not changed)."""
    manifest_path = run_dir / "manifest.json"
    manifest = read_json(manifest_path, "not a run directory made by 'sif run'")
    lines = [f"{manifest.get('run_id', run_dir.name)}  ({manifest.get('params_file', '?')})"]
    for stage in STAGE_NAMES:
        record = (manifest.get("stages") or {}).get(stage) or {"status": "pending"}
        status = record.get("status", "pending")
        if status == "running" and not process_alive(record):
            status = "interrupted (its process is gone)"
        elif status == "running":
            status = f"running (pid {record.get('pid')})"
        seconds = record.get("seconds")
        peak = record.get("peak_rss_mb")
        parts = [f"{stage:<27}", f"{status:<34}", f"start {record.get('start') or '-':<25}",
                 f"{seconds:>8.1f} s" if isinstance(seconds, (int, float)) else f"{'-':>8}  ",
                 f"peak {peak / 1024:.2f} GB" if isinstance(peak, (int, float)) else "peak -"]
        if record.get("reused_from"):
            parts.append(f"reused from {record['reused_from']}")
        if record.get("error"):
            parts.append(f"error: {record['error'][:120]}")
        lines.append("  ".join(parts).rstrip())
    return lines


def preflight(params: Params, source: str) -> None:
    """Checks that would otherwise fail minutes into a run: model specs must point at something real."""
    parse_spec(params.model.policy, key=f"{source}: key 'model.policy'")
    if params.reward_model.backbone:
        parse_spec(params.reward_model.backbone, key=f"{source}: key 'reward_model.backbone'")


def parse_overrides(items: list[str] | None) -> dict:
    """``["grpo.max_steps=4", "run.seed=1"]`` as the nested dict ``load_params`` takes. A value is read as one
    YAML scalar or flow collection (``4``, ``0.5``, ``null``, ``[a, b]``), never executed."""
    overrides: dict = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        parts = key.strip().split(".")
        if not sep or len(parts) != 2 or not all(parts):
            raise InputError(f"--set {item!r}: expected SECTION.KEY=VALUE, e.g. grpo.max_steps=4")
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError:
            raise InputError(f"--set {item!r}: the value is not a YAML scalar or list") from None
        overrides.setdefault(parts[0], {})[parts[1]] = value
    return overrides


def _differing_key(theirs, ours, prefix: str) -> str | None:
    if isinstance(theirs, dict) and isinstance(ours, dict):
        for key in sorted(set(theirs) | set(ours)):
            found = _differing_key(theirs.get(key), ours.get(key), f"{prefix}.{key}")
            if found:
                return found
        return None
    return None if theirs == ours else prefix


def _params_read(source: Path, stage_record: dict, name: str) -> list[str] | None:
    """The params fields a stage of an earlier run read: its manifest record, else its metrics file. None for a
    run made before stages recorded them (then every field must match)."""
    if isinstance(stage_record.get("params_read"), list):
        return stage_record["params_read"]
    metrics = source / "metrics" / f"{name}.json"
    if metrics.is_file():
        found = read_json(metrics, "").get("params_read")
        if isinstance(found, list):
            return found
    return None


def reuse_stages(source: Path, run_dir: Path, stages: list[str], params: Params) -> dict:
    """Copy what ``stages`` wrote in the run ``source`` (artifacts, metrics, executed notebooks) into the new
    ``run_dir``; returns their manifest records, marked ``reused_from``. Refused, before anything is copied,
    when one of them is not ``ok`` there, or when a params field it read there differs here. Copies, not links: a
    later rerun in either run appends to some files and must not write into the other."""
    manifest_path = source / "manifest.json"
    manifest = read_json(manifest_path, "--reuse takes a run directory made by 'sif run'")
    records = manifest.get("stages") or {}
    theirs, ours = manifest.get("params") or {}, params.to_dict()
    skipped = [name for name in stages if not enabled(name, params)]  # nothing to copy or compare
    for name in (name for name in stages if name not in skipped):
        record = records.get(name) or {}
        status = record.get("status", "missing")
        if status != "ok":
            raise InputError(f"{manifest_path}: stage {name} is {status}, not ok: it cannot be reused")
        read = _params_read(source, record, name)
        keys = read if read is not None else [section for section in ours if section != "description"]
        for dotted in keys:
            key = _differing_key(lookup(theirs, dotted), lookup(ours, dotted), dotted)
            if key:
                raise InputError(f"--reuse {source}: params key '{key}' differs from that run's, which "
                                 f"{name} read: rerun from {name}, or give it the same value")
    copied = {name: {"status": "skipped", "reason": f"{stage_entry(name).enabled_by} is false",
                     "reused_from": str(source.resolve())} for name in skipped}
    for name in (name for name in stages if name not in skipped):
        for rel in stage_entry(name).artifacts + (f"metrics/{name}.json", f"notebooks/{name}.ipynb"):
            src, dst = source / rel, run_dir / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            if src.is_dir():
                shutil.copytree(src, dst)
            elif src.is_file():
                shutil.copy2(src, dst)
        copied[name] = {**records[name], "reused_from": str(source.resolve())}
    return copied



def run_pipeline(params_file: str | Path, run_id: str | None = None, from_stage: str | None = None,
                 only: str | None = None, outputs: str | Path | None = None, log_output: bool = False,
                 overrides: dict | None = None, reuse: str | Path | None = None, echo=print,
                 to_stage: str | None = None, space_check: bool = True, checks=(), answers_from=()) -> Path:
    """Execute the selected stages; returns the run directory. Raises StageFailed on a failing stage, and a
    StorageError (one line naming the path) when the run directory cannot be written.

    ``overrides`` (``--set``) change params of this run; they are kept in the manifest and applied again when
    the run is resumed without new ones. ``reuse`` (``--reuse``) starts a new run whose stages before
    ``from_stage`` are copied from another run: the same data and reward model under another GRPO setting,
    which is how an ablation is run. The run directory is locked while the run writes it; ``space_check``
    refuses to start when its disk lacks the room the selected stages need (:mod:`sif_lib.runner.disk_space`). Each of
    ``checks`` (``check(params, source)``, raising InputError) runs on the loaded params before anything is written.
    ``answers_from``: more runs whose base-policy answer caches are copied in (as ``reuse``'s are, and before them),
    used where their records still match: ``sif run --answers-from`` (a run that answered all 541 IFEval prompts
    with the same base policy) and the earlier seeds of ``sif run --seeds``."""

    params_path = Path(params_file)
    read_params_file(params_path)  # an unusable file fails here, before any run directory is looked at or made
    if reuse and not from_stage:
        raise InputError("--reuse needs --from STAGE: the stages before STAGE are copied from the other run")
    outputs = Path(outputs) if outputs else outputs_dir()
    stages = select(from_stage, only, to_stage)

    # --from or --only resumes the latest run of the params file; --reuse always starts a new run.
    run_dir = run_dir_for(params_path, outputs, run_id, resume=bool((from_stage or only) and not reuse))
    if reuse and run_dir.exists():
        raise InputError(f"{run_dir}: exists already; --reuse starts a new run (pick another --run-id)")
    try:
        with hold(run_dir, echo):
            for line in recover_dirs(run_dir):
                echo(line)
            return _run_locked(params_path, run_dir, stages, overrides, reuse, log_output, echo, space_check, checks,
                               answers_from)
    except OSError as err:  # the run directory itself: its stage, when there was one, is marked already
        fault = storage_error(err, getattr(err, "filename", None) or run_dir)
        if fault is None:
            raise
        raise fault from None


def _run_locked(params_path: Path, run_dir: Path, stages: list[str], overrides: dict | None, reuse, log_output: bool,
                echo, space_check: bool, checks=(), answers_from=()) -> Path:
    manifest_path = run_dir / "manifest.json"
    earlier = read_json(manifest_path, "") if manifest_path.is_file() else None
    if earlier:
        for stage in mark_interrupted(earlier, manifest_path):
            echo(f"[{stage}] was left running by a process that is gone: marked interrupted")
        write_json(manifest_path, earlier)
    if overrides is None and earlier and earlier.get("overrides"):
        overrides = earlier["overrides"]
        echo(f"applying this run's earlier --set overrides: {json.dumps(overrides)}")
    params = load_params(params_path, overrides)  # fail fast, before anything is written
    for check in checks:  # sif run's: the constraint ids (sif_lib.synthesis.params_checks), unknown to the runner
        check(params, str(params_path))
    preflight(params, str(params_path))
    skip = {s for s in stages if not enabled(s, params)}
    if space_check:
        check_space(params, [s for s in stages if s not in skip], run_dir, echo)
    reused: dict = {}
    if reuse:
        reused = reuse_stages(Path(reuse), run_dir, list(STAGE_NAMES[:STAGE_NAMES.index(stages[0])]), params)
    for source in list(answers_from) + ([reuse] if reuse else []):  # the first cache found for a folder is kept
        for folder in copy_answer_caches(Path(source), run_dir, BASE_ANSWER_CACHES):
            echo(f"{folder}: the base policy's answers are copied from {source} (used if they still match)")
    if reuse:  # with stage 06 reused its adapter is the same, and its answers are matched by content
        for folder in copy_answer_caches(Path(reuse), run_dir, TRAINED_ANSWER_CACHES):
            echo(f"{folder}: the trained policy's answers are copied from {reuse} (used if they still match)")
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "notebooks").mkdir(exist_ok=True)  # papermill writes executed notebooks here and will not create it

    manifest = earlier or {"run_id": run_dir.name, "created": _now(), "stages": dict(reused)}
    if reused:
        manifest["reused_from"] = str(Path(reuse).resolve())
    manifest.update({
        "run_id": run_dir.name,
        "params_file": str(params_path.resolve()),
        "overrides": overrides or {},
        "params": params.to_dict(),
        "versions": package_versions(),
        "platform": {"machine": platform.machine(), "system": platform.system(), "python": sys.version.split()[0]},
    })
    for stage in STAGE_NAMES:
        manifest["stages"].setdefault(stage, {"status": "pending"})
    write_json(manifest_path, manifest)

    resolved = run_dir / "params.yaml"
    atomic_write_text(resolved, yaml.safe_dump(params.to_dict(), sort_keys=False))
    timeout = params.run.stage_timeout_s if params.run.stage_timeout_s > 0 else None

    socket_dir = Path(tempfile.mkdtemp(prefix="sif-kernels-"))
    try:
        _run_stages(stages, manifest, manifest_path, run_dir, resolved, params_path, timeout, log_output,
                    socket_dir, echo, skip=skip)
    finally:
        shutil.rmtree(socket_dir, ignore_errors=True)
    manifest["total_seconds"] = round(sum(s.get("seconds", 0) for s in manifest["stages"].values()), 2)
    manifest["peak_rss_mb"] = max((s.get("peak_rss_mb") or 0 for s in manifest["stages"].values()), default=0)
    write_json(manifest_path, manifest)
    return run_dir


def run_seeds(params_file: str | Path, seeds, run_id: str | None = None, outputs: str | Path | None = None,
              overrides: dict | None = None, reuse: str | Path | None = None, log_output: bool = False, echo=print,
              space_check: bool = True, checks=(), answers_from=(), **stage_options) -> list[Path]:
    """``sif run --seeds``: stages 01-05 once, then GRPO and evaluation once per seed, each seed in its own run
    directory (:func:`~sif_lib.runner.seed_runs.plan_seeds`); returns those directories. Rerun with the same
    ``--run-id``, it keeps what finished and resumes what stopped. A failing stage raises StageFailed, and no later
    seed runs. ``answers_from``: as for :func:`run_pipeline`, offered to every seed before the earlier seeds.
    ``stage_options``: ``from_stage``, ``to_stage``, ``only``, which the plan checks."""
    read_params_file(Path(params_file))
    plan = plan_seeds(params_file, seeds, Path(outputs) if outputs else outputs_dir(), run_id, overrides, reuse,
                      **stage_options)
    todo = first_unfinished(plan.base_dir, plan.base_stages) if plan.run_base else None
    if todo:
        echo(f"== stages {plan.base_stages[0][:2]}-{plan.base_stages[-1][:2]}, once: {plan.base_dir}")
        run_pipeline(params_file, run_id=plan.base_dir.name, from_stage=todo, outputs=plan.base_dir.parent,
                     log_output=log_output, overrides=plan.base_overrides, echo=echo, to_stage=plan.base_stages[-1],
                     space_check=space_check, checks=checks)
    earlier: list[Path] = []  # the base policy answers the same probe and evaluation prompts in every seed
    for run in plan.runs:
        step = seed_step(run, plan.seed_stages, load_params(params_file, run.overrides).to_dict())
        echo(f"== seed {run.seed}: {run.run_dir}" + ("" if step else " (finished already: kept)"))
        if step:
            run_pipeline(params_file, run_id=run.run_dir.name, from_stage=step[0], outputs=run.run_dir.parent,
                         log_output=log_output, overrides=run.overrides, reuse=step[1], echo=echo,
                         space_check=space_check, checks=checks, answers_from=(*answers_from, *earlier))
        earlier.append(run.run_dir)
    return [run.run_dir for run in plan.runs]


@contextlib.contextmanager
def _stage_output(run_dir: Path, stage: str, plain: bool):
    """While a stage runs: its log file ``logs/<stage>.log`` (appended to, each attempt under a header line),
    :data:`progress.ENV` pointing its kernel (which inherits this environment) at a fresh progress file, and the
    :class:`progress.Watcher` that shows that file's counter (as plain lines when ``plain``)."""
    logs = run_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    counter = logs / f"{stage}.progress.json"
    counter.unlink(missing_ok=True)  # a counter left by an earlier attempt is not this one's
    previous = os.environ.get(progress.ENV)
    os.environ[progress.ENV] = str(counter.resolve())
    try:
        with open(logs / f"{stage}.log", "a", encoding="utf-8") as log, progress.Watcher(stage, counter, plain=plain):
            log.write(f"===== {stage} started {_now()} =====\n")
            log.flush()
            yield log
    finally:
        if previous is None:
            os.environ.pop(progress.ENV, None)
        else:
            os.environ[progress.ENV] = previous


def _append_log(run_dir: Path, stage: str, text: str) -> None:
    try:
        with open(run_dir / "logs" / f"{stage}.log", "a", encoding="utf-8") as log:
            log.write(text.rstrip() + "\n")
    except OSError:
        pass


def _run_stages(stages: list[str], manifest: dict, manifest_path: Path, run_dir: Path, resolved: Path,
                params_path: Path, timeout: float | None, log_output: bool, socket_dir: Path, echo,
                skip: set = frozenset()) -> None:
    """Execute each stage's notebook in order, keeping its manifest record current; the stages in ``skip`` (their
    ``enabled_by`` field is false) are recorded as skipped without starting a kernel. A write of this process
    that fails for want of space or permission marks the stage failed (if the manifest can still be written)
    and ends the run with a StorageError."""
    for stage in stages:
        if stage in skip:
            reason = f"{stage_entry(stage).enabled_by} is false"
            manifest["stages"][stage] = {"status": "skipped", "reason": reason, "start": _now(), "seconds": 0.0}
            write_json(manifest_path, manifest)
            echo(f"[{stage}] skipped: {reason}")
            continue
        try:
            _run_stage(stage, manifest, manifest_path, run_dir, resolved, params_path, timeout, log_output,
                       socket_dir, echo)
        except OSError as err:
            fault = storage_error(err, getattr(err, "filename", None) or run_dir)
            if fault is None:
                raise
            record = manifest["stages"].get(stage) or {}
            if record.get("status") == "running":
                record.update({"end": _now(), "status": "failed", "error": str(fault)})
                try:
                    write_json(manifest_path, manifest)
                except OSError:
                    pass  # the stage stays "running" there; the next run sees its process gone and reruns it
            raise fault from None


# "[Errno 28] No space left on device: '/path'" as Python prints an OSError (the path is optional).
_ERRNO_TEXT = re.compile(r"\[Errno (\d+)\][^:']*(?::\s*'([^']+)')?")


def _storage_reason(error: str, run_dir: Path) -> str | None:
    """A stage error (one line of text from the kernel) that is a full disk or a folder that cannot be
    written, as one line naming the path (the run directory when the error names none); else None."""
    if error.startswith("StorageError: "):
        return error[len("StorageError: "):]
    found = _ERRNO_TEXT.search(error)
    if found:
        code = int(found.group(1))
        fault = storage_error(OSError(code, os.strerror(code)), found.group(2) or run_dir)
    else:
        fault = storage_error(RuntimeError(error), run_dir)
    return str(fault) if fault else None


def _run_stage(stage: str, manifest: dict, manifest_path: Path, run_dir: Path, resolved: Path, params_path: Path,
               timeout: float | None, log_output: bool, socket_dir: Path, echo) -> None:
    import papermill

    record = {"status": "running", "start": _now(), "notebook": f"notebooks/{stage}.ipynb", **process_record()}
    previous = manifest["stages"].get(stage) or {}
    if previous.get("status") in ("interrupted", "failed"):
        # The stage's history stays readable: an interrupted or failed attempt, then this one.
        record["earlier_attempts"] = previous.pop("earlier_attempts", []) + [previous]
    manifest["stages"][stage] = record
    write_json(manifest_path, manifest)
    echo(f"[{stage}] running")
    began = time.monotonic()
    metrics_file = run_dir / "metrics" / f"{stage}.json"
    metrics_file.unlink(missing_ok=True)
    error, interrupted, death = None, False, None
    try:
        # --verbose streams cell output to the terminal as well, which a line redrawn in place would garble.
        with _stage_output(run_dir, stage, plain=log_output) as log, StageWatch() as watch:
            papermill.execute_notebook(
                str(notebooks_dir() / f"{stage}.ipynb"),
                str(run_dir / "notebooks" / f"{stage}.ipynb"),
                parameters={"run_dir": str(run_dir.resolve()), "params_file": str(resolved.resolve())},
                cwd=str(notebooks_dir()),
                progress_bar=False,
                log_output=log_output,
                stdout_file=log,
                stderr_file=log,
                execution_timeout=timeout,
                kernel_name="python3",
                kernel_manager_class=ipc_kernel_manager_class(socket_dir, watch),
            )
        if not metrics_file.is_file():
            error = f"stage finished without writing metrics/{stage}.json"
    except KeyboardInterrupt:
        interrupted = True
    except papermill.PapermillExecutionError as err:
        # Ctrl-C reaches the kernel too (one process group), which may report it before this process does.
        interrupted = err.ename == "KeyboardInterrupt"
        error = f"{err.ename}: {err.evalue}".strip()
        _append_log(run_dir, stage, str(err))  # the traceback is no stream output: papermill did not log it
    except Exception as err:  # a kernel that died, a timeout, a missing notebook
        error = f"{type(err).__name__}: {err}".strip()
        _append_log(run_dir, stage, error)
        if type(err).__name__ == "DeadKernelError":  # nbclient's: the kernel is gone, of what the watch says
            death = watch.death()
    if interrupted:
        stop_children()
        # The kernel was stopped on purpose. nbclient's pending checks of it end in DeadKernelError, which
        # asyncio would log with a traceback at exit, after the one line that says how to resume.
        logging.getLogger("asyncio").setLevel(logging.CRITICAL + 1)
        record.update({"end": _now(), "seconds": round(time.monotonic() - began, 2), "status": "interrupted"})
        write_json(manifest_path, manifest)
        echo(f"[{stage}] interrupted after {record['seconds']:.1f} s")
        raise RunInterrupted(stage, run_dir, params_path)
    seconds = round(time.monotonic() - began, 2)
    record.update({"end": _now(), "seconds": seconds, "status": "failed" if error else "ok",
                   **_stage_record_from_metrics(metrics_file)})
    if error:
        record["error"] = error.splitlines()[-1][:500] if error.splitlines() else error
        storage = _storage_reason(record["error"], run_dir)
        if storage:
            record["error"] = f"{storage}; once it can be written, resume with --from {stage}"
        if death:
            record.update({"error": death["line"], "killed_by": death["cause"], "peak_rss_mb": death["peak_rss_mb"]})
            _append_log(run_dir, stage, death["line"])
    write_json(manifest_path, manifest)
    if error:
        echo(f"[{stage}] FAILED after {seconds:.1f} s: {record['error']}")
        echo(f"  executed notebook: {run_dir / 'notebooks' / (stage + '.ipynb')}")
        raise StageFailed(f"stage {stage} failed: {record['error']}")
    echo(f"[{stage}] ok in {seconds:.1f} s")
    finish = stage_entry(stage).finish
    if finish:  # work on the executed notebook itself (stage 07: report.html)
        module, _, function = finish.partition(":")
        echo(getattr(importlib.import_module(module), function)(run_dir))
