"""Reasoning retention (stage 07): does instruction-following training cost math accuracy?

The paper checks six reasoning benchmarks (GPQA-D, BBEH, AIME, FOLIO, MMLU-Pro) and finds them flat. Offline on a
CPU we check what we can: the held-out synthetic math items of ``data/reasoning.jsonl`` (never trained on), and,
when ``evaluation.gsm8k_path`` names one, a GSM8K-format JSONL. Both policies answer greedily with a larger token
budget than the instruction prompts (``evaluation.math_max_new_tokens``); a response is correct when its final
answer matches, as the RL reward for reasoning items decides it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from statistics import fmean
from typing import Sequence

from sif_lib.core.errors import InputError
from sif_lib.constraints import extract_answer
from sif_lib.constraints.math_answer import score_reasoning
from sif_lib.core.io import read_jsonl
from sif_lib.synthesis.math_items import load_math_jsonl


@dataclass
class MathTask:
    """One reasoning benchmark: its items (each with ``prompt`` and ``answer``) and where they came from."""

    name: str
    source: str
    items: list[dict]

    @property
    def prompts(self) -> list[str]:
        return [item["prompt"] for item in self.items]


def synthetic_task(path: Path, limit: int) -> MathTask | None:
    """The held-out items of ``data/reasoning.jsonl``, the first ``limit`` of them (None when there are none)."""
    items = []
    for number, row in enumerate(read_jsonl(path), start=1):
        if row.get("split") != "heldout":
            continue
        for key in ("prompt", "answer"):
            if key not in row:
                raise InputError(f"{path}:{number}: reasoning row lacks '{key}'")
        items.append(row)
    if limit >= 0:
        items = items[:limit]
    return MathTask("synthetic", str(path), items) if items else None


def gsm8k_task(path_value: str, limit: int) -> MathTask:
    """A GSM8K-format JSONL (``question`` and an ``answer`` ending in ``#### N``), the first ``limit`` items."""
    path = Path(path_value)
    if not path.is_file():
        raise InputError(f"evaluation.gsm8k_path: file not found: {path}")
    items = list(load_math_jsonl(path))
    if limit >= 0:
        items = items[:limit]
    if not items:
        raise InputError(f"evaluation.gsm8k_path: {path} holds no items")
    return MathTask("gsm8k", str(path), items)


def score_responses(task: MathTask, responses: Sequence[str], answer_mode: str) -> list[bool]:
    """Correct or not, per item: the final boxed answer of the extracted answer text against the gold answer."""
    if len(responses) != len(task.items):
        raise ValueError(f"{task.name}: {len(task.items)} items but {len(responses)} responses")
    return [score_reasoning(extract_answer(response, answer_mode), item["answer"]) == 1.0
            for item, response in zip(task.items, responses)]


def accuracy(correct: Sequence[bool]) -> dict:
    """``{"n", "correct", "accuracy"}``; accuracy is None for an empty list."""
    return {"n": len(correct), "correct": int(sum(correct)),
            "accuracy": round(fmean(map(float, correct)), 6) if correct else None}
