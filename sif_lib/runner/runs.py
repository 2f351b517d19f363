"""The run directory: one folder per run under ``outputs/``, holding every artifact of every stage.

Layout (each stage reads only what earlier stages wrote; :mod:`sif_lib.runner.stage_table` lists who writes what)::

    outputs/<run_id>/
      manifest.json              run id, resolved params, package versions, per-stage status and timing
      params.yaml                the resolved params every notebook of the run reads
      notebooks/NN_<stage>.ipynb the executed notebooks
      metrics/NN_<stage>.json    each stage's figures, the params fields it read, and its peak memory
      logs/NN_<stage>.log        everything the stage printed (each attempt appended under a header line)
      logs/NN_<stage>.progress.json  the stage's live counter, which 'sif run' displays while it runs
      data/instructions.jsonl    01  synthesized instructions (train and held-out splits)
      data/reasoning.jsonl       01  math items for the reasoning mix (train and held-out splits)
      data/curriculum.jsonl      02  sub-instructions L0..Ln of every instruction
      data/rollouts.jsonl        03  the policy's responses to every level of a ladder
      data/pseudo_labels.jsonl   03  (response, constraint, 0/1) pairs
      rm/                        04  the constraint-wise binary reward model and its card
      grpo/                      06  checkpoints, the final adapter, rollout logs, probes
      eval/                      07  IFEval responses and scores, summary.json, summary.md, report.html
      tensorboard/NN_<stage>/    00, 04, 06  training curves as TensorBoard event files (run.report_to)

Writes are atomic (:mod:`sif_lib.core.io`), so a stage that fails never leaves a file that looks complete, and
the artifacts of earlier stages are never touched.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from sif_lib.config.params import Params, load_params
from sif_lib.core import allocator
from sif_lib.core.errors import InputError
from sif_lib.core.io import atomic_write_text, peak_gpu_mib, peak_rss_mib, read_json, write_json
from sif_lib.runner.stage_table import producer, stage_name

COLD_START_POLICY = ("cold_start", "policy")  # where stage 00 saves the thinking policy


class RunContext:
    """What a stage needs: the run directory, the resolved params, and artifact helpers.

    ``base_policy`` is the params file's ``model.policy``. With ``cold_start.enabled``, every stage after 00 sees
    ``params.model.policy`` replaced by the run's ``cold_start/policy`` (the SFT model), and counts the
    ``cold_start`` fields as read, so ``--reuse`` compares them; stage 00 opens with ``cold_start_stage=True``
    and keeps the base policy."""

    def __init__(self, root: Path, params: Params, params_file: Path | None = None):
        self.root = Path(root)
        self.params = params
        self.params_file = params_file
        self.base_policy: str = params.value("model.policy")

    @classmethod
    def open(cls, run_dir: str | Path, params_file: str | Path | None = None,
             overrides: dict | None = None, cold_start_stage: bool = False) -> RunContext:
        """Open (creating if needed) a run directory.

        ``run_dir`` and ``params_file``, when relative, are relative to the current directory, as any path given
        to a program is: in a notebook that is the notebook's folder (Jupyter runs it there, and papermill
        passes absolute paths). Paths *inside* a params file are relative to that file's folder
        (:mod:`sif_lib.config.params`).

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
        ctx = cls(root, params, source)
        if params.value("run.keep_freed_memory"):  # not counted as read: it changes speed and memory, no result
            allocator.keep_freed_memory()
        if params.value("cold_start.enabled") and not cold_start_stage:
            ctx.use_cold_start_policy()
        return ctx

    def use_cold_start_policy(self) -> None:
        """Make stage 00's SFT model this context's policy (a missing one names stage 00)."""
        policy = self.require(*COLD_START_POLICY, "config.json").parent
        object.__setattr__(self.params.model, "policy", str(policy))  # a plain assignment: not counted as a read
        self.params.mark_read(f"cold_start.{key}" for key in self.params.to_dict()["cold_start"])

    @property
    def run_id(self) -> str:
        return self.root.name

    def path(self, *parts: str) -> Path:
        path = self.root.joinpath(*parts)
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def require(self, *parts: str) -> Path:
        """An input artifact that an earlier stage must have written; missing, it names that stage."""
        path = self.root.joinpath(*parts)
        if not path.exists():
            by = producer("/".join(parts))
            raise InputError(f"{path}: missing input" + (f": run stage {by.name} first" if by else ""))
        return path

    def write_metrics(self, stage: str, metrics: dict) -> Path:
        """Save a stage's figures. Adds to ``metrics`` (in place, so the caller's copy matches the file):

        * ``params_read``: the params fields the stage read, which ``--reuse`` compares;
        * ``peak_rss_mb``, and on a GPU ``peak_gpu_mb`` (torch's peak reserved memory on this process's device,
          which includes an in-process vLLM engine's): the figures in it that vary between runs.
        """
        metrics["params_read"] = self.params.reads()
        metrics["peak_rss_mb"] = round(peak_rss_mib(), 1)
        gpu = peak_gpu_mib()
        if gpu is not None:
            metrics["peak_gpu_mb"] = round(gpu, 1)
        path = self.path("metrics", f"{stage_name(stage)}.json")
        write_json(path, metrics)
        return path

    def read_metrics(self, stage: str) -> dict:
        return read_json(self.require("metrics", f"{stage_name(stage)}.json"), "")
