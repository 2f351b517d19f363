"""Rollouts (stage 03, part 1): the policy answers every level L0..Ln of a set of curriculum ladders.

A *ladder* is one training instruction of ``data/curriculum.jsonl`` with all its sub-instructions: L0 is the
bare seed, Lk the seed with the first k constraints. The pseudo-labels of this stage compare the response to Lk
with the response to L(k-1), so every level of a chosen ladder is answered.

Which ladders: the first ``rollouts.max_ladders`` training instructions in file order, taken round-robin over
their constraint count n (one with n=1, one with n=2, ..., then again), so that every level up to the largest n
is present even when few ladders are used. ``max_ladders: -1`` takes every training ladder.

Checkpointing and resume: rows go to ``data/rollouts.jsonl`` batch by batch (appended and fsynced). A rerun reads
the rows already there, drops a torn last line (what a killed process leaves), keeps every finished
(id, sample) untouched and generates only the rest. Rows made with another model spec, other sampling settings or
another prompt text are refused: mixing them would silently change the data the reward model learns from.

Batches sit on a fixed grid over the full job list, and batch b is sampled with seed ``run.seed + b*batch_size``
(what ``ChatGenerator`` would use for that batch in one uninterrupted call). A run interrupted between batches
and resumed therefore writes the same file as an uninterrupted one; only a batch cut in the middle of its write
is finished with a smaller batch and so with different random draws.
"""

from __future__ import annotations

import os
import time
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from sif_lib.config.params import Params
from sif_lib.core.errors import InputError
from sif_lib.core.io import append_jsonl, iter_jsonl
from sif_lib.policy.generation import ChatGenerator, Sampling, vllm_available
from sif_lib.runner import progress as stage_progress
from sif_lib.runner.runs import RunContext

CURRICULUM = ("data", "curriculum.jsonl")
ROLLOUTS = ("data", "rollouts.jsonl")
_CURRICULUM_KEYS = ("id", "parent", "level", "n_constraints", "constraints", "prompt", "split")
_ROLLOUT_KEYS = ("ladder", "id", "level", "sample", "prompt", "response", "model", "sampling", "split")


@dataclass(frozen=True)
class Job:
    """One (sub-instruction, sample) to answer."""

    ladder: str
    id: str
    level: int
    sample: int
    prompt: str
    split: str


# --------------------------------------------------------------------------------------------------------------
# Ladders


def read_ladders(path: Path) -> dict[str, list[dict]]:
    """Curriculum rows grouped by parent, each ladder sorted by level; every ladder must hold levels 0..n."""
    ladders: dict[str, list[dict]] = defaultdict(list)
    for number, row in enumerate(iter_jsonl(path), start=1):
        missing = [key for key in _CURRICULUM_KEYS if key not in row]
        if missing:
            raise InputError(f"{path}: row {number} ({row.get('id', '?')}) lacks key '{missing[0]}'")
        if not isinstance(row["level"], int) or not isinstance(row["n_constraints"], int):
            raise InputError(f"{path}: row {number} ({row['id']}): 'level' and 'n_constraints' must be integers")
        ladders[row["parent"]].append(row)
    for parent, rows in ladders.items():
        rows.sort(key=lambda r: r["level"])
        n = rows[0]["n_constraints"]
        levels = [r["level"] for r in rows]
        if levels != list(range(n + 1)):
            raise InputError(f"{path}: ladder {parent} has levels {levels}, expected 0..{n}")
        if len(rows[-1]["constraints"]) != n:
            raise InputError(f"{path}: ladder {parent}: level {n} carries {len(rows[-1]['constraints'])} "
                             f"constraints, expected {n}")
    return dict(ladders)


def select_ladders(ladders: dict[str, list[dict]], max_ladders: int) -> list[str]:
    """Training parents, round-robin over n in file order; returned in file order."""
    train = [p for p, rows in ladders.items() if rows[0]["split"] == "train"]
    if max_ladders < 0 or max_ladders >= len(train):
        return train
    by_n: dict[int, list[str]] = defaultdict(list)
    for parent in train:
        by_n[ladders[parent][0]["n_constraints"]].append(parent)
    queues = [list(reversed(by_n[n])) for n in sorted(by_n)]
    chosen: set[str] = set()
    while len(chosen) < max_ladders:
        for queue in queues:
            if queue and len(chosen) < max_ladders:
                chosen.add(queue.pop())
    return [p for p in train if p in chosen]


def build_jobs(ladders: dict[str, list[dict]], parents: Iterable[str], samples: int) -> list[Job]:
    """Every level of every chosen ladder, ``samples`` times; ladder-major, so a ladder finishes early."""
    return [Job(parent, row["id"], row["level"], s, row["prompt"], row["split"])
            for parent in parents for row in ladders[parent] for s in range(samples)]


# --------------------------------------------------------------------------------------------------------------
# The checkpoint file


def drop_torn_tail(path: Path) -> bool:
    """Cut an unterminated last line (a write interrupted by a kill). Returns whether anything was cut."""
    if not path.is_file():
        return False
    with open(path, "rb+") as handle:
        handle.seek(0, os.SEEK_END)
        size = handle.tell()
        if size == 0:
            return False
        handle.seek(size - 1)
        if handle.read(1) == b"\n":
            return False
        # Scan back in blocks for the last newline; rollout rows are small, so this reads little.
        pos, keep = size, 0
        while pos > 0:
            step = min(65536, pos)
            pos -= step
            handle.seek(pos)
            block = handle.read(step)
            cut = block.rfind(b"\n")
            if cut >= 0:
                keep = pos + cut + 1
                break
        handle.truncate(keep)
        handle.flush()
        os.fsync(handle.fileno())
    return True


def read_done(path: Path, jobs: list[Job], model: str, sampling: dict) -> tuple[dict[tuple[str, int], dict], int]:
    """Rows already written, keyed by (id, sample), after checking they belong to this run's settings.

    Returns the rows of current jobs and how many duplicate rows were ignored (the first one wins).
    """
    by_key = {(job.id, job.sample): job for job in jobs}
    done: dict[tuple[str, int], dict] = {}
    duplicates = 0
    if not path.is_file():
        return done, 0
    hint = "delete it or start a new run id"
    for number, row in enumerate(iter_jsonl(path, tolerate_torn_tail=True), start=1):
        missing = [key for key in _ROLLOUT_KEYS if key not in row]
        if missing:
            raise InputError(f"{path}: row {number} lacks key '{missing[0]}'")
        if row["model"] != model:
            raise InputError(f"{path}: row {number} was made by model "
                             f"{row['model']!r}, this run uses {model!r}; {hint}")
        if row["sampling"] != sampling:
            raise InputError(f"{path}: row {number} was made with sampling "
                             f"{row['sampling']}, this run uses {sampling}; {hint}")
        key = (row["id"], row["sample"])
        job = by_key.get(key)
        if job is None:
            continue  # a ladder outside this selection (max_ladders was larger): kept in the file, not used
        if row["prompt"] != job.prompt:
            raise InputError(f"{path}: row {number} ({row['id']}) answers a different prompt than "
                             f"data/curriculum.jsonl now holds (the curriculum was rebuilt); {hint}")
        if key in done:
            duplicates += 1
            continue
        done[key] = row
    return done, duplicates


def load_rollouts(ctx: RunContext) -> list[dict]:
    """The rollout rows of this run's selected ladders, one per (id, sample), in job order."""
    ladders = read_ladders(ctx.require(*CURRICULUM))
    p = ctx.params.rollouts
    jobs = build_jobs(ladders, select_ladders(ladders, p.max_ladders), p.samples_per_prompt)
    done, _ = read_done(ctx.require(*ROLLOUTS), jobs,
                        ctx.params.model.policy, sampling_record(ctx.params))
    return [done[(j.id, j.sample)] for j in jobs if (j.id, j.sample) in done]


# --------------------------------------------------------------------------------------------------------------
# Generation


def sampling_record(params: Params) -> dict:
    """The settings that define the response distribution; stored in every row and compared on resume."""
    r = params.rollouts
    return {"max_new_tokens": r.max_new_tokens, "temperature": r.temperature, "top_p": r.top_p,
            "seed": params.run.seed, "system_prompt": params.model.system_prompt}


def _check_params(params: Params, source: str) -> None:
    r = params.rollouts
    checks = [
        ("rollouts.max_ladders", r.max_ladders != 0, "must be positive, or -1 for every ladder"),
        ("rollouts.samples_per_prompt", r.samples_per_prompt >= 1, "must be at least 1"),
        ("rollouts.max_new_tokens", r.max_new_tokens >= 1, "must be at least 1"),
        ("rollouts.temperature", r.temperature >= 0, "must be 0 (greedy) or positive"),
        ("rollouts.top_p", 0 < r.top_p <= 1, "must lie in (0, 1]"),
    ]
    for key, ok, what in checks:
        if not ok:
            raise InputError(f"{source}: key '{key}' {what}, got {getattr(r, key.split('.')[1])!r}")


def make_generator(params: Params):
    """The policy behind ``ChatGenerator``; an explicit vLLM request without vLLM or a GPU is an input error."""
    backend = params.rollouts.backend
    if backend == "vllm" and not vllm_available():
        raise InputError("rollouts.backend: 'vllm' needs the vllm package and a CUDA GPU; use 'auto' or 'hf'")
    return ChatGenerator(params.model.policy, backend=backend, dtype=params.run.dtype, device=params.run.device,
                         system_prompt=params.model.system_prompt, enable_thinking=params.model.enable_thinking)


def _count_tokens(tokenizer, texts: list[str]) -> int | None:
    # Generated text is re-tokenized: generate() returns strings, and the count only feeds a throughput figure.
    if tokenizer is None or not texts:
        return None if tokenizer is None else 0
    return sum(len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"])


def run_rollouts(ctx: RunContext, generator=None, progress: bool = True) -> dict:
    """Answer every pending (sub-instruction, sample) of the selected ladders; returns counts and throughput.

    ``generator`` defaults to the policy from ``params.model``; anything with ``generate(prompts, sampling,
    batch_size, on_batch)`` works (tests pass wrappers that count calls or fail on purpose).

    Returned figures: ``rows`` (rows of the selected ladders now in the file) = ``resumed`` (found there at
    start) + ``generated`` (written by this call). ``response_tokens`` re-tokenizes the generated responses
    (``generate`` returns text), so it counts the tokens kept, not the padding steps of a batch;
    ``tokens_per_s`` divides it by the wall time spent inside ``generate`` in this call, model loading excluded.
    """
    params = ctx.params
    _check_params(params, str(ctx.params_file or ctx.root / "params.yaml"))
    r = params.rollouts
    ladders = read_ladders(ctx.require(*CURRICULUM))
    parents = select_ladders(ladders, r.max_ladders)
    if not parents:
        raise InputError(f"{ctx.root / 'data' / 'curriculum.jsonl'}: no ladder of split 'train'")
    jobs = build_jobs(ladders, parents, r.samples_per_prompt)
    record = sampling_record(params)
    path = ctx.path(*ROLLOUTS)
    done, duplicates = read_done(path, jobs, params.model.policy, record)  # refuses foreign rows first
    torn = drop_torn_tail(path)
    resumed = len(done)

    batch = r.batch_size
    grid = [jobs[i:i + batch] for i in range(0, len(jobs), batch)]
    pending_batches = [(b, [j for j in chunk if (j.id, j.sample) not in done]) for b, chunk in enumerate(grid)]
    pending_batches = [(b, chunk) for b, chunk in pending_batches if chunk]

    generated = 0
    tokens: int | None = 0
    seconds = cpu_seconds = 0.0
    backend = None
    if pending_batches:
        if generator is None:
            generator = make_generator(params)
        backend = getattr(generator, "backend", None)
        tokenizer = getattr(generator, "tokenizer", None)
        bar = tqdm(total=len(jobs), initial=resumed, desc="rollouts", unit="prompt", disable=not progress)
        stage_progress.update(resumed, len(jobs), "rollouts")
        try:
            for b, chunk in pending_batches:
                def write(start: int, outputs: list[str], chunk=chunk) -> None:
                    nonlocal generated, tokens
                    part = chunk[start:start + len(outputs)]
                    rows = [{"ladder": j.ladder, "id": j.id, "level": j.level, "sample": j.sample,
                             "prompt": j.prompt, "response": text, "model": params.model.policy,
                             "sampling": record, "split": j.split} for j, text in zip(part, outputs)]
                    append_jsonl(path, rows)
                    generated += len(rows)
                    counted = _count_tokens(tokenizer, outputs)
                    tokens = None if counted is None or tokens is None else tokens + counted
                    bar.update(len(rows))
                    stage_progress.update(resumed + generated, len(jobs), "rollouts")

                sampling = Sampling(max_new_tokens=r.max_new_tokens, temperature=r.temperature, top_p=r.top_p,
                                    seed=params.run.seed + b * batch)
                began, began_cpu = time.perf_counter(), time.process_time()
                generator.generate([j.prompt for j in chunk], sampling, batch_size=batch, on_batch=write)
                seconds += time.perf_counter() - began
                cpu_seconds += time.process_time() - began_cpu
        finally:
            bar.close()

    levels = Counter(j.level for j in jobs)
    by_n = Counter(ladders[p][0]["n_constraints"] for p in parents)
    return {
        "ladders": len(parents),
        "ladders_by_n": {str(n): by_n[n] for n in sorted(by_n)},
        "prompts": len(jobs) // r.samples_per_prompt,
        "samples_per_prompt": r.samples_per_prompt,
        "rows": resumed + generated,
        "rows_by_level": {str(k): v for k, v in sorted(levels.items())},
        "resumed": resumed,
        "generated": generated,
        "torn_tail_dropped": torn,
        "duplicate_rows_ignored": duplicates,
        "generation_seconds": round(seconds, 3),
        # CPU time of this process (all threads): on a shared machine, wall time alone mostly measures the others.
        "generation_cpu_seconds": round(cpu_seconds, 3),
        "response_tokens": tokens,
        "tokens_per_s": round(tokens / seconds, 2) if tokens and seconds > 0 else None,
        "prompts_per_s": round(generated / seconds, 3) if seconds > 0 else None,
        "model": params.model.policy,
        "backend": backend,
        "sampling": record,
        "batch_size": batch,
    }


__all__ = ["Job", "build_jobs", "drop_torn_tail", "load_rollouts", "make_generator", "read_done", "read_ladders",
           "run_rollouts", "sampling_record", "select_ladders"]
