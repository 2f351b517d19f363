"""``sif bench verifiers``: how fast the hard-constraint verifiers score real responses, and how much memory.

The workload is IFEval scoring (strict and loose together) of the GPT-4 golden responses kept beside the
checkout in ``shared/benchmarks/ifeval/gpt4_golden_dev.jsonl`` (or any file with prompt, instruction_id_list,
kwargs and response fields).  Each timed pass starts with empty memo caches, so repeated passes over the same
texts are not flattered by memoised sentence decisions; the language and sentence models stay loaded, as they
do in training.
"""

from __future__ import annotations

import time
import tracemalloc
from pathlib import Path
from typing import Any

from sif_lib.core.errors import InputError
from sif_lib.constraints import _cached_checker, text
from sif_lib.core.io import peak_rss_mib
from sif_lib.evaluation.ifeval import load_prompts, load_responses, score

__all__ = ["bench_verifiers", "default_responses_path"]

_GOLDEN = Path("shared") / "benchmarks" / "ifeval" / "gpt4_golden_dev.jsonl"


def default_responses_path() -> Path:
    """The golden responses beside the checkout (``<repo>/../shared/...``), or beside the working directory."""
    candidates = [Path(__file__).resolve().parents[3] / _GOLDEN, Path.cwd().resolve().parent / _GOLDEN]
    for path in candidates:
        if path.is_file():
            return path
    raise InputError(f"{candidates[0]}: not found; pass a responses file (prompt, instruction_id_list, kwargs, "
                     f"response per line)")


def _clear_caches() -> None:
    _cached_checker.cache_clear()
    text.clear_caches()


def bench_verifiers(n_repeats: int = 3, responses_path: str | Path | None = None) -> dict[str, Any]:
    """Score the responses ``n_repeats`` times and print and return the figures.

    Returned keys: ``responses`` (per pass), ``instructions`` (per pass), ``repeats``, ``seconds`` (timed passes
    together), ``responses_per_s``, ``instructions_per_s``, ``warmup_s`` (first pass, which loads the models),
    ``tracemalloc_peak_mib`` (peak Python allocation during one pass, measured in a separate untimed pass),
    ``ru_maxrss_mib`` (the process's peak resident memory) and the four accuracies of the last pass.
    """
    if n_repeats < 1:
        raise InputError(f"repeats must be at least 1, got {n_repeats}")
    path = Path(responses_path) if responses_path is not None else default_responses_path()
    prompts = load_prompts(path)
    responses = load_responses(path)

    start = time.perf_counter()
    score(prompts, responses, allow_missing=True)
    warmup = time.perf_counter() - start

    elapsed = 0.0
    report = None
    for _ in range(n_repeats):
        _clear_caches()
        start = time.perf_counter()
        report = score(prompts, responses, allow_missing=True)
        elapsed += time.perf_counter() - start

    _clear_caches()
    tracemalloc.start()
    try:
        score(prompts, responses, allow_missing=True)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    figures = {
        "responses_file": str(path),
        "responses": report.n_prompts,
        "instructions": report.n_instructions,
        "repeats": n_repeats,
        "seconds": round(elapsed, 4),
        "responses_per_s": round(report.n_prompts * n_repeats / elapsed, 1),
        "instructions_per_s": round(report.n_instructions * n_repeats / elapsed, 1),
        "warmup_s": round(warmup, 3),
        "tracemalloc_peak_mib": round(peak / 2**20, 2),
        "ru_maxrss_mib": round(peak_rss_mib(children=False), 1),
        "prompt_level_strict": report.prompt_level_strict,
        "instruction_level_strict": report.instruction_level_strict,
        "prompt_level_loose": report.prompt_level_loose,
        "instruction_level_loose": report.instruction_level_loose,
    }
    print(f"verifiers: {figures['responses']} responses ({figures['instructions']} instructions), strict and "
          f"loose, {n_repeats} passes from {path}")
    print(f"  {figures['responses_per_s']} responses/s, {figures['instructions_per_s']} instructions/s "
          f"({figures['seconds']} s timed; first pass with model loading {figures['warmup_s']} s)")
    print(f"  peak memory: {figures['tracemalloc_peak_mib']} MiB traced Python allocations during one pass, "
          f"{figures['ru_maxrss_mib']} MiB peak resident (whole process)")
    return figures
