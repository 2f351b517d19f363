"""Reasoning retention (stage 07): does instruction-following training cost math accuracy?

The paper checks six reasoning benchmarks (GPQA-D, BBEH, AIME, FOLIO, MMLU-Pro) and finds them flat. Offline on a
CPU we check what we can: the held-out synthetic math items of ``data/reasoning.jsonl`` (never trained on), and,
when ``evaluation.gsm8k_path`` names one, a GSM8K-format JSONL. Both policies answer greedily with a larger token
budget than the instruction prompts (``evaluation.math_max_new_tokens``); a response is correct when its final
answer matches, as the RL reward for reasoning items decides it (strict: the last ``\\boxed{}``). As lm-eval's
GSM8K does, each response is also scored flexibly, by the last number of its answer text, boxed or not: the gap
between the two separates answers the policy could not compute from answers it did not format. Each accuracy
comes with its exact (Clopper-Pearson) 95% interval.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from statistics import fmean

from sif_lib.constraints import extract_answer
from sif_lib.constraints.math_answer import score_flexible, score_reasoning
from sif_lib.core.errors import InputError
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


EXTRACTIONS = ("strict", "flexible")


def score_responses(task: MathTask, responses: Sequence[str], answer_mode: str,
                    extraction: str = "strict") -> list[bool]:
    """Correct or not, per item, judged on the extracted answer text (``answer_mode``; under ``require_think`` a
    response without ``</think>`` is wrong either way). ``strict``: its last ``\\boxed{}`` against the gold answer,
    as the RL reward decides; ``flexible``: its last number, as lm-eval's GSM8K flexible-extract does."""
    if extraction not in EXTRACTIONS:
        raise ValueError(f"extraction must be one of {EXTRACTIONS}, got {extraction!r}")
    if len(responses) != len(task.items):
        raise ValueError(f"{task.name}: {len(task.items)} items but {len(responses)} responses")
    score = score_reasoning if extraction == "strict" else score_flexible
    return [score(extract_answer(response, answer_mode), item["answer"]) == 1.0
            for item, response in zip(task.items, responses)]


def accuracy(correct: Sequence[bool]) -> dict:
    """``{"n", "correct", "accuracy", "ci95"}``: ``ci95`` is the exact (Clopper-Pearson) 95% interval of the
    accuracy, ``[low, high]``; accuracy and interval are None for an empty list."""
    n, k = len(correct), int(sum(correct))
    interval = None
    if n:
        from scipy.stats import binomtest  # scipy is heavy to import; only needed once there are verdicts

        found = binomtest(k, n).proportion_ci(confidence_level=0.95, method="exact")
        interval = [round(float(found.low), 6), round(float(found.high), 6)]
    return {"n": n, "correct": k, "accuracy": round(fmean(map(float, correct)), 6) if correct else None,
            "ci95": interval}


# ---------------------------------------------------------------------------------------------------------------
# Presenting stage 07's math figures (the report and ``sif compare``).


def math_modes(entry: dict) -> list[tuple[str, dict]]:
    """A math task's summary figures per extraction: ``strict`` (the entry's top level) and, in summaries that
    have it, ``flexible``; each with ``base``, ``trained``, ``delta``, ``delta_ci95`` and ``flips``."""
    found = [("strict", entry)]
    if entry.get("flexible"):
        found.append(("flexible", entry["flexible"]))
    return found


def accuracy_text(figures: dict, unit: str = "") -> str:
    """An :func:`accuracy` in percent with its exact 95% interval, ``12.5 [4.2, 26.8]`` (``unit="%"``:
    ``12.5% [4.2, 26.8]``); summaries written before the interval existed give the accuracy alone."""
    value, interval = figures.get("accuracy"), figures.get("ci95")
    if value is None:
        return "–"
    text = f"{100 * value:.1f}{unit}"
    return f"{text} [{100 * interval[0]:.1f}, {100 * interval[1]:.1f}]" if interval else text


def math_accuracy_text(entry: dict) -> str:
    """Base → trained per extraction, on one line: ``strict 12.5% [4.2, 26.8] → 20.0% [9.1, 35.6] (+7.5);
    flexible ...`` (the change in points)."""
    parts = []
    for mode, figures in math_modes(entry):
        base, trained = figures["base"], figures["trained"]
        change = "–" if base.get("accuracy") is None or trained.get("accuracy") is None \
            else f"{100 * (trained['accuracy'] - base['accuracy']):+.1f}"
        parts.append(f"{mode} {accuracy_text(base, '%')} → {accuracy_text(trained, '%')} ({change})")
    return "; ".join(parts)
