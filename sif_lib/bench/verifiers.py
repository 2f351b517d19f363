"""``sif bench verifiers``: how fast the hard-constraint verifiers score real responses, and how much memory.

Two workloads, each scored strict and loose together:

* **IFEval**: the GPT-4 golden responses kept beside the checkout in ``shared/benchmarks/ifeval/gpt4_golden_dev.jsonl``
  (or any file with prompt, instruction_id_list, kwargs and response fields);
* **IFBench**: its published dev responses in ``shared/benchmarks/ifbench/``, against the prompts they answer
  (:func:`~sif_lib.bench.references.ifbench_workload`; a prompt whose check cannot run here is left out and
  counted). With ``ifbench_reference`` (a checkout of allenai/IFBench) the reference code is timed beside ours on
  the same workload, the same way, in a child process (:func:`~sif_lib.bench.references.reference_loop`), and the
  two sets of verdicts are compared; without one, the output says it was not measured.

Each timed pass starts with empty memo caches, so repeated passes over the same texts are not flattered by
memoised sentence decisions; the language and sentence models stay loaded, as they do in training. Our figures
are measured in this process, the reference's in its own: both after one untimed first pass.
"""

from __future__ import annotations

import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sif_lib.bench.references import ifbench_reference, ifbench_workload, reference_loop, shared_file
from sif_lib.constraints import _cached_checker, ifbench, text
from sif_lib.core.errors import InputError
from sif_lib.core.io import peak_rss_mib
from sif_lib.evaluation import ifbench_scoring as ifbench_eval
from sif_lib.evaluation.ifeval_scoring import load_prompts, load_responses, score

__all__ = ["bench_ifbench", "bench_verifiers", "default_responses_path"]


def default_responses_path() -> Path:
    """The golden responses beside the checkout (``<repo>/../shared/...``), or beside the working directory."""
    return shared_file("ifeval", "gpt4_golden_dev.jsonl")


def _clear_caches() -> None:
    _cached_checker.cache_clear()
    ifbench._cached_checker.cache_clear()
    text.clear_caches()


def _timed(one_pass: Callable[[], Any], n_repeats: int) -> tuple[float, float, float, Any]:
    """``(first pass s, timed passes s, peak traced MiB, last result)``: one pass (which loads the models), then
    ``n_repeats`` timed passes from empty caches, then one untimed pass under ``tracemalloc``."""
    start = time.perf_counter()
    one_pass()
    warmup = time.perf_counter() - start
    elapsed, result = 0.0, None
    for _ in range(n_repeats):
        _clear_caches()
        start = time.perf_counter()
        result = one_pass()
        elapsed += time.perf_counter() - start
    _clear_caches()
    tracemalloc.start()
    try:
        one_pass()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return warmup, elapsed, peak / 2**20, result


def _figures(report, n_repeats: int, warmup: float, elapsed: float, peak_mib: float) -> dict[str, Any]:
    return {
        "responses": report.n_prompts,
        "instructions": report.n_instructions,
        "repeats": n_repeats,
        "seconds": round(elapsed, 4),
        "responses_per_s": round(report.n_prompts * n_repeats / elapsed, 1),
        "instructions_per_s": round(report.n_instructions * n_repeats / elapsed, 1),
        "warmup_s": round(warmup, 3),
        "tracemalloc_peak_mib": round(peak_mib, 2),
        "prompt_level_strict": report.prompt_level_strict,
        "instruction_level_strict": report.instruction_level_strict,
        "prompt_level_loose": report.prompt_level_loose,
        "instruction_level_loose": report.instruction_level_loose,
    }


def _speed_line(figures: dict) -> str:
    return (f"{figures['responses_per_s']} responses/s, {figures['instructions_per_s']} instructions/s "
            f"({figures['seconds']} s timed; first pass with model loading {figures['warmup_s']} s)")


def bench_verifiers(n_repeats: int = 3, responses_path: str | Path | None = None,
                    ifbench_reference_path: str | Path | None = None,
                    reference_python: str | None = None) -> dict[str, Any]:
    """Score the IFEval workload ``n_repeats`` times, then the IFBench one (:func:`bench_ifbench`); print and
    return ``{"ifeval": figures, "ifbench": figures}``.

    Keys of the IFEval figures: ``responses`` (per pass), ``instructions`` (per pass), ``repeats``, ``seconds``
    (timed passes together), ``responses_per_s``, ``instructions_per_s``, ``warmup_s`` (first pass, which loads
    the models), ``tracemalloc_peak_mib`` (peak Python allocation during one pass, measured in a separate untimed
    pass), ``ru_maxrss_mib`` (the process's peak resident memory) and the four accuracies of the last pass.
    """
    if n_repeats < 1:
        raise InputError(f"repeats must be at least 1, got {n_repeats}")
    path = Path(responses_path) if responses_path is not None else default_responses_path()
    prompts = load_prompts(path)
    responses = load_responses(path)
    warmup, elapsed, peak, report = _timed(lambda: score(prompts, responses, allow_missing=True), n_repeats)
    figures = {"responses_file": str(path), **_figures(report, n_repeats, warmup, elapsed, peak),
               "ru_maxrss_mib": round(peak_rss_mib(children=False), 1)}
    print(f"verifiers: {figures['responses']} responses ({figures['instructions']} instructions), strict and "
          f"loose, {n_repeats} passes from {path}")
    print(f"  {_speed_line(figures)}")
    print(f"  peak memory: {figures['tracemalloc_peak_mib']} MiB traced Python allocations during one pass, "
          f"{figures['ru_maxrss_mib']} MiB peak resident (whole process)")
    return {"ifeval": figures, "ifbench": bench_ifbench(n_repeats, ifbench_reference_path, reference_python)}


def bench_ifbench(n_repeats: int = 3, reference: str | Path | None = None,
                  reference_python: str | None = None) -> dict[str, Any]:
    """IFBench's checkers on its dev responses, and the reference code beside them when ``reference`` names a
    checkout; prints and returns the figures (ours as :func:`bench_verifiers`'s, plus ``left_out``,
    ``reference`` (its figures, or None) and ``reference_note`` (why it was not measured, or where it was))."""
    try:
        with tempfile.TemporaryDirectory(prefix="sif-bench-ifbench-") as tmp:
            input_data, responses_path, left_out = ifbench_workload(Path(tmp))
            prompts = ifbench_eval.load_prompts(input_data)
            responses = ifbench_eval.load_responses(responses_path)
            warmup, elapsed, peak, report = _timed(lambda: ifbench_eval.score(prompts, responses), n_repeats)
            figures = {"responses_file": str(responses_path), "left_out": left_out,
                       **_figures(report, n_repeats, warmup, elapsed, peak), "reference": None}
            figures["reference_note"] = _reference(figures, report, reference, reference_python, input_data,
                                                   responses_path, n_repeats)
    except InputError as err:
        print(f"IFBench verifiers: not measured: {err}")
        return {"not_measured": str(err)}
    print(f"IFBench verifiers: {figures['responses']} responses ({figures['instructions']} instructions), strict "
          f"and loose, {n_repeats} passes from {responses_path}")
    if left_out:
        print("  left out (their prompts' checks cannot all run here): "
              + ", ".join(f"{n} {i}" for i, n in left_out.items()))
    print(f"  ours:      {_speed_line(figures)}; {figures['tracemalloc_peak_mib']} MiB traced during one pass")
    ref = figures["reference"]
    if ref is None:
        print(f"  reference: not measured: {figures['reference_note']}")
        return figures
    print(f"  reference: {_speed_line(ref)}; {figures['reference_note']}")
    print(f"  ours / reference: {figures['instructions_per_s'] / ref['instructions_per_s']:.2f}x; "
          f"verdicts agree on {ref['agree_strict']}/{figures['instructions']} strict and "
          f"{ref['agree_loose']}/{figures['instructions']} loose")
    return figures


def _reference(figures: dict, report, reference, python, input_data: Path, responses: Path, n_repeats: int) -> str:
    """Time the reference into ``figures["reference"]``; returns the note that says where, or why not."""
    if reference is None:
        return "name a checkout of allenai/IFBench with --ifbench-reference PATH to time its code beside ours"
    try:
        root = ifbench_reference(reference)
        found = reference_loop(python or sys.executable, root, input_data, responses, n_repeats)
    except InputError as err:
        return str(err)
    ours = [(row.strict, row.loose) for row in report.rows]
    theirs = found["verdicts"]
    agree = {mode: sum(a == b for o, t in zip(ours, theirs) for a, b in zip(o[k], t[k]))
             for k, mode in enumerate(("strict", "loose"))}
    elapsed = found["seconds"]
    figures["reference"] = {"seconds": round(elapsed, 4), "warmup_s": round(found["warmup_s"], 3),
                            "responses_per_s": round(report.n_prompts * n_repeats / elapsed, 1),
                            "instructions_per_s": round(report.n_instructions * n_repeats / elapsed, 1),
                            "agree_strict": agree["strict"], "agree_loose": agree["loose"], "root": str(root)}
    return f"allenai/IFBench at {root}, in a child process ({python or sys.executable})"
