"""What stage 07 evaluates: the IFEval prompts (official data, the first ``evaluation.limit`` of them), the IFBench
prompts when ``evaluation.ifbench`` is on (the first ``evaluation.ifbench_limit``), and how a response file is
scored exactly as ``sif ifeval score`` and ``sif ifbench score`` score it. The curriculum hold-out and the math
tasks are loaded by :mod:`sif_lib.evaluation.curriculum_holdout` and :mod:`sif_lib.evaluation.math_accuracy`.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from sif_lib.config.params import IFBENCH_ENV, IFEVAL_ENV, SHARED_IFBENCH, SHARED_IFEVAL, Params, default_ifbench_path
from sif_lib.constraints.ifbench import missing_resources
from sif_lib.core.errors import InputError
from sif_lib.core.io import read_jsonl, write_jsonl
from sif_lib.evaluation import ifbench_scoring, ifeval_scoring


@dataclass
class IFEvalTask:
    """The IFEval prompts evaluated in this run: the first ``limit`` rows of the official input data."""

    rows: list[dict]
    source: str
    input_path: Path  # the evaluated subset, written into the run so that it can be rescored as it was

    @property
    def prompts(self) -> list[str]:
        return [row["prompt"] for row in self.rows]

    @classmethod
    def load(cls, params: Params, eval_dir: Path) -> IFEvalTask:
        ev = params.evaluation
        if ev.limit == 0 or ev.limit < -1:
            raise InputError(f"evaluation.limit: must be -1 (all prompts) or a positive number, got {ev.limit}")
        if ev.ifeval_path:
            path = Path(ev.ifeval_path)
            if not path.is_file():
                raise InputError(f"evaluation.ifeval_path: IFEval prompts not found at {path} (point it at "
                                 f"input_data.jsonl, or set it to null and name evaluation.ifeval_hub_id)")
            rows, source = read_jsonl(path), str(path)
        elif ev.ifeval_hub_id:
            rows, source = _hub_rows(ev.ifeval_hub_id), f"hub:{ev.ifeval_hub_id}"
        else:
            raise InputError(f"evaluation.ifeval_path: no IFEval prompts found: set it, or ${IFEVAL_ENV}, or place "
                             f"them at {SHARED_IFEVAL} (or name evaluation.ifeval_hub_id)")
        for number, row in enumerate(rows, start=1):
            missing = [k for k in ("key", "prompt", "instruction_id_list", "kwargs") if k not in row]
            if missing:
                raise InputError(f"{source}:{number}: IFEval row lacks {', '.join(missing)}")
        if ev.limit > 0:
            rows = rows[:ev.limit]
        input_path = eval_dir / "ifeval_input_data.jsonl"
        write_jsonl(input_path, rows)
        return cls(rows, source, input_path)


@dataclass
class IFBenchTask:
    """The IFBench prompts evaluated in this run: the first ``evaluation.ifbench_limit`` rows of the test set, less
    the prompts whose every instruction needs a resource missing here (``sif ifbench score --skip-unavailable``
    leaves those instructions out; a prompt left with none is not even answered). ``left_out`` counts what was
    left out, ``{"prompts": n, "instructions": {id: n}, "reasons": {id: why}}``."""

    rows: list[dict]
    source: str
    input_path: Path  # the evaluated prompts, written into the run so that they can be rescored as they were
    left_out: dict = field(default_factory=dict)

    @property
    def prompts(self) -> list[str]:
        return [row["prompt"] for row in self.rows]

    @classmethod
    def load(cls, params: Params, eval_dir: Path) -> IFBenchTask | None:
        """None when ``evaluation.ifbench`` is off; every row is checked as ``sif ifbench score`` checks it."""
        ev = params.evaluation
        if not ev.ifbench:
            return None
        if ev.ifbench_limit == 0 or ev.ifbench_limit < -1:
            raise InputError(f"evaluation.ifbench_limit: must be -1 (all prompts) or a positive number, "
                             f"got {ev.ifbench_limit}")
        found = ev.ifbench_path or default_ifbench_path()
        if not found:
            raise InputError(f"evaluation.ifbench_path: no IFBench test set found: set it, or ${IFBENCH_ENV}, or "
                             f"place it at {SHARED_IFBENCH}")
        path = Path(found)
        if not path.is_file():
            raise InputError("evaluation.ifbench_path: IFBench test set not "
                             f"found at {path} (point it at IFBench_test.jsonl)")
        # A malformed row, an unknown id or a bad argument stops here, naming its line.
        ifbench_scoring.load_prompts(path)
        rows = read_jsonl(path)
        if ev.ifbench_limit > 0:
            rows = rows[:ev.ifbench_limit]
        unavailable = missing_resources(i for row in rows for i in row["instruction_id_list"])
        kept = [row for row in rows if any(i not in unavailable for i in row["instruction_id_list"])]
        left_out = {"prompts": len(rows) - len(kept),
                    "instructions": dict(sorted(Counter(i for row in rows for i in row["instruction_id_list"]
                                                        if i in unavailable).items())),
                    "reasons": dict(sorted(unavailable.items()))}
        input_path = eval_dir / "ifbench_input_data.jsonl"
        write_jsonl(input_path, kept)
        return cls(kept, str(path), input_path, left_out)


def _hub_rows(hub_id: str) -> list[dict]:
    """IFEval from the hub. Its ``kwargs`` list every argument name with null for the unused ones; the
    reference data (and our scorer) expect only the arguments that are set, so the nulls are dropped."""
    from datasets import load_dataset  # heavy, and online: only for ifeval_hub_id

    try:
        data = load_dataset(hub_id, split="train")
    except Exception as err:  # offline, unknown id, no such split: say which key to fix
        raise InputError(f"evaluation.ifeval_hub_id: cannot load {hub_id!r} ({type(err).__name__}: {err})") from None
    rows = []
    for row in data:
        row = dict(row)
        row["kwargs"] = [{k: v for k, v in (kw or {}).items() if v is not None} for kw in row.get("kwargs", [])]
        rows.append(row)
    return rows


def score_ifeval(input_path: Path, responses_path: Path, out_dir: Path):
    """Score one response file exactly as ``sif ifeval score`` does; writes the scorer's files to ``out_dir``."""
    prompts = ifeval_scoring.load_prompts(input_path)
    responses = ifeval_scoring.load_responses(responses_path)
    report = ifeval_scoring.score(prompts, responses)
    ifeval_scoring.write_results(report, out_dir)
    return report


def score_ifbench(input_path: Path, responses_path: Path, out_dir: Path):
    """Score one response file as ``sif ifbench score --skip-unavailable`` does; writes its files to ``out_dir``."""
    report = ifbench_scoring.score(ifbench_scoring.load_prompts(input_path),
                                   ifbench_scoring.load_responses(responses_path), skip_unavailable=True)
    ifbench_scoring.write_results(report, out_dir)
    return report


def rescore_command(input_path: Path, responses_path: Path, out_dir: Path, benchmark: str = "ifeval",
                    skip_unavailable: bool = False) -> str:
    return (f"sif {benchmark} score --input-data {input_path} --responses {responses_path} --output-dir {out_dir}"
            + (" --skip-unavailable" if skip_unavailable else ""))
