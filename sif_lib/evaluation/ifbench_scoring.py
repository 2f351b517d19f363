"""IFBench scoring, strict and loose, with the reference implementation's verdicts and output files.

Usage::

    prompts = load_prompts("IFBench_test.jsonl")      # key, prompt, instruction_id_list, kwargs
    responses = load_responses("responses.jsonl")     # prompt (or key), response
    report = score(prompts, responses)
    write_results(report, "out/")                     # eval_results_strict.jsonl, eval_results_loose.jsonl, scores.json
    print(format_report(report))

The command ``sif ifbench score --input-data F --responses F --output-dir D [--allow-missing]
[--skip-unavailable]`` is :func:`run_score_command`.

It is the twin of :mod:`sif_lib.evaluation.ifeval_scoring`: the same strict and loose scoring (loose passes an
instruction when any of the eight variants of :func:`~sif_lib.evaluation.ifeval_scoring.loose_variants` passes),
the same output files and breakdowns, with IFBench's 58 verifiers (:mod:`sif_lib.constraints.ifbench`).  Responses are
matched to prompts by ``key`` when the response row has one, otherwise by the prompt text, and failing that by the
prompt text without surrounding whitespace (the reference tolerates that difference too).

``words:start_verb`` needs NLTK's part-of-speech tagger, which is never downloaded.  Without it scoring stops with
an error naming it, unless ``skip_unavailable``: then such instructions are left out of the scores (a prompt left
with none is left out entirely) and the report says how many.
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sif_lib.constraints import category_of
from sif_lib.constraints.ifbench import MissingResourceError, get_ifbench_checker, missing_resources
from sif_lib.core.errors import InputError
from sif_lib.evaluation import ifeval_scoring as _ifeval
from sif_lib.evaluation.ifeval_scoring import (
    IFEvalReport,
    PromptRecord,
    PromptResult,
    ResponseRecord,
    load_responses,
    write_results,
)

__all__ = [
    "IFBenchReport",
    "format_report",
    "load_prompts",
    "load_responses",
    "run_score_command",
    "score",
    "score_response",
    "write_results",
]


def load_prompts(path: str | Path) -> list[PromptRecord]:
    """Read IFBench prompts (``key``, ``prompt``, ``instruction_id_list``, ``kwargs``) from JSONL: IFEval's
    reader with IFBench's checkers. None values inside ``kwargs`` are dropped, as IFBench's data spells every
    unused argument as null.  Every id must be an IFBench id and every argument set valid; any problem raises
    InputError naming the file and line.
    """
    return _ifeval.load_prompts(path, checker_for=get_ifbench_checker, known_ids=None)


def score_response(response: str, instruction_id_list: Sequence[str],
                   kwargs: Sequence[dict[str, Any]]) -> tuple[list[bool], list[bool]]:
    """(strict, loose) verdicts, one per instruction, for one response: IFEval's scoring with IFBench's checkers."""
    return _ifeval.score_response(response, instruction_id_list, kwargs, checker_for=get_ifbench_checker)


@dataclass
class IFBenchReport(IFEvalReport):
    """:class:`~sif_lib.evaluation.ifeval_scoring.IFEvalReport` plus ``left_out``: ``{id: instructions}`` left out of
    the scores because their check cannot run here."""

    left_out: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "left_out": self.left_out}


def _match(prompts: Sequence[PromptRecord], responses: Sequence[ResponseRecord]) -> list[int | None]:
    """Index of each prompt's response (None when it has none): by key, by prompt text, by stripped text."""
    by_key: dict[str, int] = {}
    by_prompt: dict[str, int] = {}
    for index, rec in enumerate(responses):
        if rec.key is not None:
            by_key.setdefault(str(rec.key), index)
        if rec.prompt is not None:
            by_prompt.setdefault(rec.prompt, index)
    for index, rec in enumerate(responses):
        if rec.prompt is not None:
            by_prompt.setdefault(rec.prompt.strip(), index)
    found = []
    for p in prompts:
        index = by_key.get(str(p.key)) if p.key is not None else None
        if index is None:
            index = by_prompt.get(p.prompt, by_prompt.get(p.prompt.strip()))
        found.append(index)
    return found


def score(prompts: Sequence[PromptRecord], responses: Sequence[ResponseRecord], allow_missing: bool = False,
          skip_unavailable: bool = False) -> IFBenchReport:
    """Score every prompt strictly and loosely.

    A prompt without a response raises InputError naming it, unless ``allow_missing``, in which case every
    instruction of it fails (as in the reference).  An instruction whose check cannot run here (see
    :func:`~sif_lib.constraints.ifbench.missing_resources`) raises MissingResourceError naming it, unless
    ``skip_unavailable``, in which case it is left out.
    """
    unavailable = missing_resources(i for p in prompts for i in p.instruction_id_list)
    if unavailable and not skip_unavailable:
        raise MissingResourceError("; ".join(unavailable.values()))
    left_out: Counter[str] = Counter()
    rows: list[PromptResult] = []
    matched = _match(prompts, responses)
    for p, index in zip(prompts, matched):
        if index is None and not allow_missing:
            key = f"key {p.key!r} " if p.key is not None else ""
            raise InputError(f"{p.source}:{p.line}: no response for prompt {key}({p.prompt[:60]!r})")
        kept = [j for j, i in enumerate(p.instruction_id_list) if i not in unavailable]
        left_out.update(i for i in p.instruction_id_list if i in unavailable)
        if not kept:
            continue
        ids = [p.instruction_id_list[j] for j in kept]
        response = "" if index is None else responses[index].response
        strict, loose = score_response(response, ids, [p.kwargs[j] for j in kept])
        rows.append(PromptResult(key=p.key, prompt=p.prompt, response=response, instruction_id_list=ids,
                                 strict=strict, loose=loose, missing=index is None))
    n_instructions = sum(len(r.strict) for r in rows)
    ratio = _ifeval._ratio
    return IFBenchReport(
        rows=rows,
        n_prompts=len(rows),
        n_instructions=n_instructions,
        n_missing=sum(r.missing for r in rows),
        n_unmatched_responses=len(responses) - len({i for i in matched if i is not None}),
        prompt_level_strict=ratio(sum(r.follow_all_strict for r in rows), len(rows)),
        instruction_level_strict=ratio(sum(sum(r.strict) for r in rows), n_instructions),
        prompt_level_loose=ratio(sum(r.follow_all_loose for r in rows), len(rows)),
        instruction_level_loose=ratio(sum(sum(r.loose) for r in rows), n_instructions),
        by_category=_ifeval._breakdown(rows, category_of),
        by_instruction=_ifeval._breakdown(rows, lambda i: i),
        left_out=dict(sorted(left_out.items())),
    )


def format_report(report: IFBenchReport) -> str:
    """The plain-text table of :func:`sif_lib.evaluation.ifeval_scoring.format_report`, titled IFBench, with a line per
    id left out."""
    lines = _ifeval.format_report(report).split("\n")
    lines[0] = f"IFBench: {report.n_prompts} prompts, {report.n_instructions} instructions"
    lines[1:1] = [f"  {n} {instruction_id} instructions left out: their check cannot run here"
                  for instruction_id, n in report.left_out.items()]
    return "\n".join(lines)


def run_score_command(input_data: str | Path, responses: str | Path, output_dir: str | Path,
                      allow_missing: bool = False, skip_unavailable: bool = False) -> int:
    """``sif ifbench score``: load, score, write the result files, print the table.

    Returns the exit status: 0 on success; 2 after printing one ``error: ...`` line on stderr when an input is
    malformed, a field is missing, (without ``allow_missing``) a prompt has no response, or (without
    ``skip_unavailable``) a check cannot run for want of a package or NLTK data.
    """
    try:
        prompts = load_prompts(input_data)
        loaded = load_responses(responses)
        report = score(prompts, loaded, allow_missing=allow_missing, skip_unavailable=skip_unavailable)
        paths = write_results(report, output_dir)
    except MissingResourceError as err:
        print(f"error: {err} (--skip-unavailable scores the rest)", file=sys.stderr)
        return 2
    except InputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(format_report(report))
    print("\nwrote " + ", ".join(str(p) for p in paths))
    return 0
