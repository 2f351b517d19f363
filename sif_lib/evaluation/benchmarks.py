"""What stage 07 evaluates: the IFEval prompts (official data, the first ``evaluation.limit`` of them), and how a
response file is scored exactly as ``sif ifeval score`` scores it. The curriculum hold-out and the math tasks are
loaded by :mod:`sif_lib.evaluation.holdout` and :mod:`sif_lib.evaluation.math_accuracy`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sif_lib.core.config import IFEVAL_ENV, SHARED_IFEVAL, Params
from sif_lib.core.errors import InputError
from sif_lib.core.io import read_jsonl, write_jsonl
from sif_lib.evaluation import ifeval

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
    def load(cls, params: Params, eval_dir: Path) -> "IFEvalTask":
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
    prompts = ifeval.load_prompts(input_path)
    responses = ifeval.load_responses(responses_path)
    report = ifeval.score(prompts, responses)
    ifeval.write_results(report, out_dir)
    return report


def rescore_command(input_path: Path, responses_path: Path, out_dir: Path) -> str:
    return f"sif ifeval score --input-data {input_path} --responses {responses_path} --output-dir {out_dir}"
