"""``sif bench scoring``: how long ``sif ifeval score`` and ``sif ifbench score`` take as whole processes
(interpreter start, imports, reading, scoring, writing the result files), beside the reference scripts when
their checkouts are named.

The workloads are :mod:`sif_lib.bench.references`'s: IFEval's GPT-4 golden responses (one file holds prompts and
responses) and IFBench's published dev responses against the prompts they answer. Every command runs once
untimed (it must succeed, and it warms the file cache), then ``repeats`` timed times; ours and the reference's
alternate, each going first every other time, so that a change in the machine's load touches both alike. The
figures are medians over the timed runs: wall seconds, and the CPU seconds (user + system) of the process,
which a busy machine inflates less than wall time. A reference that cannot run here (a package or NLTK data
file it needs is missing; it runs offline) is reported with its last line of output instead. The verdicts of the
untimed runs are compared instruction by instruction.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sif_lib.bench.references import (
    ifbench_reference,
    ifbench_workload,
    ifeval_reference,
    reference_command,
    reference_verdicts,
    shared_file,
)
from sif_lib.core.errors import InputError

__all__ = ["bench_scoring", "run_timed"]


def run_timed(command: list[str], cwd: Path | None = None, timeout: int = 1800) -> tuple[float, float]:
    """``(wall s, CPU s)`` of one child process; InputError with its last line of output when it fails."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    try:
        proc = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise InputError(f"{command[0]} did not run: {err}") from None
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        last = ((proc.stderr or proc.stdout).strip().splitlines() or ["no output"])[-1]
        raise InputError(f"exit {proc.returncode}: {last}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def _our_verdicts(output_dir: Path) -> dict[str, list[list[bool]]]:
    return {mode: [json.loads(line)["follow_instruction_list"]
                   for line in (output_dir / f"eval_results_{mode}.jsonl").read_text().splitlines()]
            for mode in ("strict", "loose")}


def _agreement(ours: dict, theirs: dict) -> str:
    parts = []
    for mode in ("strict", "loose"):
        pairs = [(a, b) for o, t in zip(ours[mode], theirs[mode]) for a, b in zip(o, t)]
        parts.append(f"{sum(a == b for a, b in pairs)}/{len(pairs)} {mode}")
    return "verdicts agree on " + " and ".join(parts)


def _measure(name: str, ours: Callable[[Path], list[str]], reference: Callable[[Path], list[str]] | None,
             ref_root: Path | None, repeats: int, tmp: Path) -> dict[str, Any]:
    """Untimed runs, then ``repeats`` alternating timed runs; the medians, and the reference's note."""
    out: dict[str, Any] = {"ours": {}, "reference": None, "reference_note": ""}
    run_timed(ours(tmp / f"{name}-ours"))
    if reference is not None:
        try:
            run_timed(reference(tmp / f"{name}-reference"), cwd=ref_root)
            out["reference_note"] = _agreement(_our_verdicts(tmp / f"{name}-ours"),
                                               reference_verdicts(tmp / f"{name}-reference"))
        except InputError as err:
            reference, out["reference_note"] = None, f"the reference at {ref_root} failed: {err}"
    times: dict[str, list[tuple[float, float]]] = {"ours": [], "reference": []}
    for i in range(repeats):
        order = [("ours", ours, None), ("reference", reference, ref_root)]
        for side, command, cwd in (order if i % 2 == 0 else order[::-1]):
            if command is not None:
                times[side].append(run_timed(command(tmp / f"{name}-{side}-{i}"), cwd=cwd))
    for side, runs in times.items():
        if runs:
            out[side] = {"runs": len(runs), "wall_s": round(statistics.median(w for w, _ in runs), 3),
                         "cpu_s": round(statistics.median(c for _, c in runs), 3)}
    return out


def bench_scoring(repeats: int = 3, ifeval_reference_path: str | Path | None = None,
                  ifbench_reference_path: str | Path | None = None, reference_python: str | None = None
                  ) -> dict[str, Any]:
    """Time both scoring commands as whole processes (module docstring); print and return
    ``{"ifeval": ..., "ifbench": ..., "load_average": [start, end]}``, each benchmark with ``ours`` and
    ``reference`` medians (``runs``, ``wall_s``, ``cpu_s``; the reference None when not measured), the
    ``reference_note`` and the workload's size."""
    if repeats < 1:
        raise InputError(f"repeats must be at least 1, got {repeats}")
    python = reference_python or sys.executable
    sif = [sys.executable, "-m", "sif_lib"]
    load_start = os.getloadavg()[0]
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="sif-bench-scoring-") as tmp_name:
        tmp = Path(tmp_name)
        golden = shared_file("ifeval", "gpt4_golden_dev.jsonl")
        ifbench_input, ifbench_responses, left_out = ifbench_workload(tmp)
        workloads = {
            "ifeval": (golden, golden, ifeval_reference_path, ifeval_reference, "google-research's "
                       "instruction_following_eval with --ifeval-reference PATH"),
            "ifbench": (ifbench_input, ifbench_responses, ifbench_reference_path, ifbench_reference,
                        "a checkout of allenai/IFBench with --ifbench-reference PATH"),
        }
        for name, (input_data, responses, given, locate, hint) in workloads.items():
            root, note = None, f"not measured: name {hint}"
            if given is not None:
                try:
                    root = locate(given)
                except InputError as err:
                    note = f"not measured: {err}"

            def ours(out: Path, name=name, input_data=input_data, responses=responses) -> list[str]:
                return [*sif, name, "score", "--input-data", str(input_data), "--responses", str(responses),
                        "--output-dir", str(out)]

            def reference(out: Path, name=name, input_data=input_data, responses=responses) -> list[str]:
                out.mkdir(parents=True, exist_ok=True)  # IFEval's evaluation_main writes there without creating it
                return reference_command(python, name, input_data, responses, out)

            found = _measure(name, ours, reference if root else None, root, repeats, tmp)
            found["reference_note"] = found["reference_note"] or note
            found["responses"] = sum(1 for line in input_data.read_text().splitlines() if line.strip())
            results[name] = found
    results["load_average"] = [round(load_start, 2), round(os.getloadavg()[0], 2)]
    _print(results, repeats, left_out, python)
    return results


def _print(results: dict, repeats: int, left_out: dict[str, int], python: str) -> None:
    print(f"whole-process scoring: median of {repeats} run(s) of each command (wall s; CPU s of the process); "
          f"load average {results['load_average'][0]} at the start, {results['load_average'][1]} at the end")
    labels = {"ifeval": ("sif ifeval score", "reference evaluation_main"),
              "ifbench": ("sif ifbench score", "reference run_eval.py")}
    for name, (ours_label, ref_label) in labels.items():
        found = results[name]
        ours, ref = found["ours"], found["reference"]
        print(f"  {ours_label:<26} {found['responses']} responses: {ours['wall_s']:.2f} s wall, "
              f"{ours['cpu_s']:.2f} s CPU")
        if ref:
            print(f"  {ref_label:<26} {found['responses']} responses: {ref['wall_s']:.2f} s wall, "
                  f"{ref['cpu_s']:.2f} s CPU ({python}); ours / reference {ours['wall_s'] / ref['wall_s']:.2f} (wall)")
        print(f"  {'' if ref else ref_label:<26} {found['reference_note']}")
    if left_out:
        print("  IFBench prompts left out of both (their checks cannot all run here): "
              + ", ".join(f"{n} {i}" for i, n in left_out.items()))
