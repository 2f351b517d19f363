"""IFEval scoring, strict and loose, with the reference implementation's verdicts and output files.

Usage::

    prompts = load_prompts("input_data.jsonl")        # key, prompt, instruction_id_list, kwargs
    responses = load_responses("responses.jsonl")     # prompt (or key), response
    report = score(prompts, responses)
    write_results(report, "out/")                     # eval_results_strict.jsonl, eval_results_loose.jsonl, scores.json
    print(format_report(report))

The command ``sif ifeval score --input-data F --responses F --output-dir D [--allow-missing]`` is
:func:`run_score_command`.

**Strict** checks each instruction on the response as given.  **Loose** passes an instruction when any of eight
variants of the response passes: the response, without its first line, without its last line, without both, and
each of these with every ``*`` removed.  A blank response (or variant) fails everything.

Responses are matched to prompts by ``key`` when the response row has one, otherwise by the exact prompt text
(the reference matches by prompt text only; matching by key as well lets a response written for an older wording
of a prompt still be scored, as with IFEval's "Shinto shrines" prompt).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sif_lib.constraints import category_of, get_checker
from sif_lib.constraints.extraction import extract_answer
from sif_lib.constraints.hard import HARD_CONSTRAINTS
from sif_lib.core.errors import InputError
from sif_lib.core.io import iter_numbered_jsonl

__all__ = [
    "IFEvalReport",
    "PromptRecord",
    "PromptResult",
    "ResponseRecord",
    "format_report",
    "load_prompts",
    "load_responses",
    "loose_variants",
    "main_score",
    "run_score_command",
    "score",
    "score_response",
    "write_results",
]

STRICT_FILE = "eval_results_strict.jsonl"
LOOSE_FILE = "eval_results_loose.jsonl"
SCORES_FILE = "scores.json"


# ---------------------------------------------------------------------------------------------------------------
# Input


@dataclass(frozen=True)
class PromptRecord:
    """One IFEval prompt; ``source`` and ``line`` say where it was read."""

    key: Any
    prompt: str
    instruction_id_list: list[str]
    kwargs: list[dict[str, Any]]
    source: str = "<memory>"
    line: int = 0


@dataclass(frozen=True)
class ResponseRecord:
    """One response, tied to its prompt by ``key`` and/or ``prompt`` text."""

    response: str
    prompt: str | None = None
    key: Any = None
    source: str = "<memory>"
    line: int = 0


def _field(obj: dict, name: str, where: str) -> Any:
    if name not in obj:
        raise InputError(f"{where}: missing field {name!r}")
    return obj[name]


def load_prompts(path: str | Path, checker_for=get_checker, known_ids=HARD_CONSTRAINTS) -> list[PromptRecord]:
    """Read IFEval prompts (``key``, ``prompt``, ``instruction_id_list``, ``kwargs``) from JSONL.

    ``key`` is optional.  ``kwargs`` holds one dict per instruction; None values inside it are dropped (some
    copies of IFEval spell every unused argument as null).  Every id must be in ``known_ids`` (None: left to
    ``checker_for``, whose ValueError names it) and every argument set must build a verifier with
    ``checker_for(id, kwargs)`` (IFBench passes its own).  Any problem raises InputError naming the file and line.
    """
    prompts: list[PromptRecord] = []
    seen_keys: dict[str, int] = {}
    for lineno, obj in iter_numbered_jsonl(path):
        where = f"{path}:{lineno}"
        prompt = _field(obj, "prompt", where)
        ids = _field(obj, "instruction_id_list", where)
        kwargs = _field(obj, "kwargs", where)
        if not isinstance(prompt, str):
            raise InputError(f"{where}: field 'prompt' must be a string")
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise InputError(f"{where}: field 'instruction_id_list' must be a list of strings")
        if not isinstance(kwargs, list) or len(kwargs) != len(ids):
            raise InputError(f"{where}: field 'kwargs' must be a list with one object per instruction ({len(ids)})")
        cleaned = []
        for instruction_id, kw in zip(ids, kwargs):
            if known_ids is not None and instruction_id not in known_ids:
                raise InputError(f"{where}: unknown instruction id {instruction_id!r}")
            if kw is None:
                kw = {}
            if not isinstance(kw, dict):
                raise InputError(f"{where}: kwargs for {instruction_id} must be an object")
            kw = {k: v for k, v in kw.items() if v is not None}
            try:
                checker_for(instruction_id, kw)
            except ValueError as err:
                raise InputError(f"{where}: {err}") from None
            cleaned.append(kw)
        key = obj.get("key")
        if key is not None:
            if str(key) in seen_keys:
                raise InputError(f"{where}: duplicate key {key!r} (first on line {seen_keys[str(key)]})")
            seen_keys[str(key)] = lineno
        prompts.append(PromptRecord(key=key, prompt=prompt, instruction_id_list=list(ids), kwargs=cleaned,
                                    source=str(path), line=lineno))
    if not prompts:
        raise InputError(f"{path}: no prompts")
    return prompts


def load_responses(path: str | Path) -> list[ResponseRecord]:
    """Read responses (``response`` plus ``prompt`` and/or ``key``) from JSONL; InputError naming file and line
    for a malformed line, a missing field, or a second response to the same prompt."""
    responses: list[ResponseRecord] = []
    seen: dict[str, int] = {}
    for lineno, obj in iter_numbered_jsonl(path):
        where = f"{path}:{lineno}"
        response = _field(obj, "response", where)
        if not isinstance(response, str):
            raise InputError(f"{where}: field 'response' must be a string")
        key = obj.get("key")
        prompt = obj.get("prompt")
        if key is None and prompt is None:
            raise InputError(f"{where}: missing field 'prompt' (or 'key')")
        if prompt is not None and not isinstance(prompt, str):
            raise InputError(f"{where}: field 'prompt' must be a string")
        ident = f"key {key!r}" if key is not None else f"prompt {prompt[:60]!r}"
        marker = f"k:{key}" if key is not None else f"p:{prompt}"
        if marker in seen:
            raise InputError(f"{where}: second response for {ident} (first on line {seen[marker]})")
        seen[marker] = lineno
        responses.append(ResponseRecord(response=response, prompt=prompt, key=key, source=str(path), line=lineno))
    return responses


# ---------------------------------------------------------------------------------------------------------------
# Scoring


def loose_variants(response: str) -> list[str]:
    """The eight variants loose scoring tries, in the reference's order."""
    lines = response.split("\n")
    no_first = "\n".join(lines[1:]).strip()
    no_last = "\n".join(lines[:-1]).strip()
    no_both = "\n".join(lines[1:-1]).strip()
    return [response, response.replace("*", ""), no_first, no_last, no_both,
            no_first.replace("*", ""), no_last.replace("*", ""), no_both.replace("*", "")]


def score_response(response: str, instruction_id_list: Sequence[str],
                   kwargs: Sequence[dict[str, Any]], checker_for=get_checker) -> tuple[list[bool], list[bool]]:
    """(strict, loose) verdicts, one per instruction, for one response; ``checker_for(id, kwargs)`` builds each
    verifier (IFBench passes its own, which drops the null arguments of its data)."""
    variants: list[str] | None = None
    strict, loose = [], []
    for instruction_id, kw in zip(instruction_id_list, kwargs, strict=True):
        checker = checker_for(instruction_id, kw)
        ok = bool(response.strip()) and checker.check_following(response)
        strict.append(ok)
        if not ok:
            if variants is None:
                variants = loose_variants(response)[1:]  # the first variant is the response itself
            ok = any(v.strip() and checker.check_following(v) for v in variants)
        loose.append(ok)
    return strict, loose


@dataclass
class PromptResult:
    """Verdicts for one prompt."""

    key: Any
    prompt: str
    response: str
    instruction_id_list: list[str]
    strict: list[bool]
    loose: list[bool]
    missing: bool = False

    @property
    def follow_all_strict(self) -> bool:
        return all(self.strict)

    @property
    def follow_all_loose(self) -> bool:
        return all(self.loose)


@dataclass
class IFEvalReport:
    """Accuracies, breakdowns and per-prompt rows.

    ``by_category`` and ``by_instruction`` map a category (the part of the id before ':') or an id to
    ``{"instructions": n, "strict": accuracy, "loose": accuracy}`` at the instruction level, as the reference
    reports them.
    """

    rows: list[PromptResult]
    n_prompts: int
    n_instructions: int
    n_missing: int
    n_unmatched_responses: int
    prompt_level_strict: float
    instruction_level_strict: float
    prompt_level_loose: float
    instruction_level_loose: float
    by_category: dict[str, dict[str, float]] = field(default_factory=dict)
    by_instruction: dict[str, dict[str, float]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Everything in ``scores.json``."""
        return {
            "n_prompts": self.n_prompts,
            "n_instructions": self.n_instructions,
            "n_missing_responses": self.n_missing,
            "n_unmatched_responses": self.n_unmatched_responses,
            "strict": {"prompt_level": self.prompt_level_strict, "instruction_level": self.instruction_level_strict},
            "loose": {"prompt_level": self.prompt_level_loose, "instruction_level": self.instruction_level_loose},
            "by_category": self.by_category,
            "by_instruction": self.by_instruction,
        }


def _ratio(hits: int, total: int) -> float:
    return hits / total if total else 0.0


def _breakdown(rows: list[PromptResult], group) -> dict[str, dict[str, float]]:
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    for row in rows:
        for instruction_id, s, lo in zip(row.instruction_id_list, row.strict, row.loose):
            c = counts[group(instruction_id)]
            c[0] += 1
            c[1] += s
            c[2] += lo
    return {name: {"instructions": n, "strict": _ratio(s, n), "loose": _ratio(lo, n)}
            for name, (n, s, lo) in sorted(counts.items())}


def score(prompts: Sequence[PromptRecord], responses: Sequence[ResponseRecord], allow_missing: bool = False,
          answer_mode: str = "whole") -> IFEvalReport:
    """Score every prompt strictly and loosely.

    A prompt without a response raises InputError naming it, unless ``allow_missing``, in which case it is scored
    as an empty response (every instruction fails).  ``answer_mode`` (see
    :func:`sif_lib.constraints.extract_answer`) picks what part of each response is scored; the default,
    ``"whole"``, scores responses as given, like the reference.
    """
    by_key: dict[str, int] = {}
    by_prompt: dict[str, int] = {}
    for index, rec in enumerate(responses):
        if rec.key is not None:
            by_key.setdefault(str(rec.key), index)
        if rec.prompt is not None:
            by_prompt.setdefault(rec.prompt, index)
    used: set[int] = set()
    rows: list[PromptResult] = []
    for p in prompts:
        index = by_key.get(str(p.key)) if p.key is not None else None
        if index is None:
            index = by_prompt.get(p.prompt)
        missing = index is None
        if missing:
            if not allow_missing:
                key = f"key {p.key!r} " if p.key is not None else ""
                raise InputError(f"{p.source}:{p.line}: no response for prompt {key}({p.prompt[:60]!r})")
            response = ""
        else:
            used.add(index)
            response = responses[index].response
        scored = response if answer_mode == "whole" else (extract_answer(response, answer_mode) or "")
        strict, loose = score_response(scored, p.instruction_id_list, p.kwargs)
        rows.append(PromptResult(key=p.key, prompt=p.prompt, response=response,
                                 instruction_id_list=list(p.instruction_id_list), strict=strict, loose=loose,
                                 missing=missing))
    n_instructions = sum(len(r.strict) for r in rows)
    return IFEvalReport(
        rows=rows,
        n_prompts=len(rows),
        n_instructions=n_instructions,
        n_missing=sum(r.missing for r in rows),
        n_unmatched_responses=len(responses) - len(used),
        prompt_level_strict=_ratio(sum(r.follow_all_strict for r in rows), len(rows)),
        instruction_level_strict=_ratio(sum(sum(r.strict) for r in rows), n_instructions),
        prompt_level_loose=_ratio(sum(r.follow_all_loose for r in rows), len(rows)),
        instruction_level_loose=_ratio(sum(sum(r.loose) for r in rows), n_instructions),
        by_category=_breakdown(rows, category_of),
        by_instruction=_breakdown(rows, lambda i: i),
    )


# ---------------------------------------------------------------------------------------------------------------
# Output


def write_results(report: IFEvalReport, out_dir: str | Path) -> list[Path]:
    """Write ``eval_results_strict.jsonl`` and ``eval_results_loose.jsonl`` (the reference's format: prompt,
    response, instruction_id_list, follow_all_instructions, follow_instruction_list) and ``scores.json``.
    Returns the paths written."""
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
        paths = []
        for name, verdicts, follow_all in ((STRICT_FILE, "strict", "follow_all_strict"),
                                           (LOOSE_FILE, "loose", "follow_all_loose")):
            path = out / name
            with path.open("w", encoding="utf-8") as handle:
                for row in report.rows:
                    handle.write(json.dumps({
                        "instruction_id_list": row.instruction_id_list,
                        "prompt": row.prompt,
                        "response": row.response,
                        "follow_all_instructions": getattr(row, follow_all),
                        "follow_instruction_list": getattr(row, verdicts),
                    }, ensure_ascii=False) + "\n")
            paths.append(path)
        path = out / SCORES_FILE
        path.write_text(json.dumps(report.to_dict(), indent=2) + "\n", encoding="utf-8")
        paths.append(path)
    except OSError as err:
        raise InputError(f"{out}: cannot write results ({err.strerror or err})") from None
    return paths


def format_report(report: IFEvalReport) -> str:
    """A plain-text table: the four accuracies, then instruction-level accuracy per category and per id."""
    lines = [f"IFEval: {report.n_prompts} prompts, {report.n_instructions} instructions"]
    if report.n_missing:
        lines.append(f"  {report.n_missing} prompts had no response and count as failed")
    if report.n_unmatched_responses:
        lines.append(f"  {report.n_unmatched_responses} responses matched no prompt and were ignored")
    lines += [
        "",
        f"{'':<46}{'strict':>8}{'loose':>8}",
        f"{'prompt-level accuracy':<46}{report.prompt_level_strict:>8.2%}{report.prompt_level_loose:>8.2%}",
        f"{'instruction-level accuracy':<46}{report.instruction_level_strict:>8.2%}"
        f"{report.instruction_level_loose:>8.2%}",
    ]
    for title, table in (("by category", report.by_category), ("by instruction", report.by_instruction)):
        lines += ["", f"{title + ' (instruction-level)':<40}{'n':>6}{'strict':>8}{'loose':>8}"]
        for name, fig in table.items():
            lines.append(f"{name:<40}{fig['instructions']:>6}{fig['strict']:>8.2%}{fig['loose']:>8.2%}")
    return "\n".join(lines)


def run_score_command(input_data: str | Path, responses: str | Path, output_dir: str | Path,
                      allow_missing: bool = False) -> int:
    """``sif ifeval score``: load, score, write the result files, print the table.

    Returns the exit status: 0 on success; 2 after printing one ``error: FILE:LINE: ...`` line on stderr when an
    input is malformed, a field is missing, or (without ``allow_missing``) a prompt has no response.
    """
    try:
        prompts = load_prompts(input_data)
        loaded = load_responses(responses)
        report = score(prompts, loaded, allow_missing=allow_missing)
        paths = write_results(report, output_dir)
    except InputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(format_report(report))
    print("\nwrote " + ", ".join(str(p) for p in paths))
    return 0


def main_score(argv: Sequence[str] | None = None) -> int:
    """Argument parsing for ``sif ifeval score`` when run on its own
    (``python -m sif_lib.evaluation.ifeval_scoring``)."""
    parser = argparse.ArgumentParser(prog="sif ifeval score", description="Score IFEval responses, strict and loose.")
    parser.add_argument("--input-data", required=True, help="prompts JSONL: key, prompt, instruction_id_list, kwargs")
    parser.add_argument("--responses", required=True, help="responses JSONL: prompt (or key), response")
    parser.add_argument("--output-dir", required=True, help="where the result files go")
    parser.add_argument("--allow-missing", action="store_true", help="score a prompt without a response as failed")
    args = parser.parse_args(argv)
    return run_score_command(args.input_data, args.responses, args.output_dir, allow_missing=args.allow_missing)


if __name__ == "__main__":
    sys.exit(main_score())
