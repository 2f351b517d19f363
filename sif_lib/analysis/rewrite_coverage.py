"""``sif rewrites RUN``: which IFEval ids a program could make learnable from the policy's own answers.

For every instruction of stage 07's IFEval prompts, the base policy's answer is checked against it, then
rewritten for it alone by :func:`sif_lib.cold_start.rule_rewrites.rewrite` (which refuses an id it has no program
for, a rewrite that fails the verifier, and any degenerate answer, met or not). An id the base policy never meets
but whose rewrites usually verify is one an SFT set of rewritten answers could teach; an id neither meets is out
of a program's reach. Read from the run's files only (``eval/ifeval_input_data.jsonl`` and
``eval/ifeval_base/responses.jsonl``); nothing is generated.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from sif_lib.cold_start.rule_rewrites import REWRITERS, rewrite
from sif_lib.constraints import check_constraints
from sif_lib.core.errors import InputError
from sif_lib.core.io import read_jsonl


def _records(row: dict) -> list[dict]:
    return [{"id": iid, "kind": "hard", "kwargs": {k: v for k, v in (kwargs or {}).items() if v is not None}}
            for iid, kwargs in zip(row["instruction_id_list"], row["kwargs"])]


def rewrite_coverage(run_dir: str | Path) -> dict:
    """Per id: ``n`` instructions, ``base_met`` (answers that meet it as written) and ``rewritten_met`` (answers a
    rewrite makes meet it, clean); and the same for whole prompts (every instruction of the prompt at once)."""
    run = Path(run_dir)
    inputs, answers = run / "eval" / "ifeval_input_data.jsonl", run / "eval" / "ifeval_base" / "responses.jsonl"
    for path in (inputs, answers):
        if not path.is_file():
            raise InputError(f"{path}: not found (stage 07 of {run} writes it)")
    response = {r["prompt"]: r["response"] for r in read_jsonl(answers)}
    per_id: dict[str, dict[str, int]] = defaultdict(lambda: {"n": 0, "base_met": 0, "rewritten_met": 0})
    prompts = {"n": 0, "base_met": 0, "rewritten_met": 0}
    for row in read_jsonl(inputs):
        if row["prompt"] not in response:
            continue
        answer, records = response[row["prompt"]], _records(row)
        met = check_constraints(answer, records, answer_mode="whole")
        for c, ok in zip(records, met):
            figures = per_id[c["id"]]
            figures["n"] += 1
            figures["base_met"] += ok
            figures["rewritten_met"] += rewrite(answer, [c], row["prompt"]) is not None
        prompts["n"] += 1
        prompts["base_met"] += all(met)
        prompts["rewritten_met"] += rewrite(answer, records, row["prompt"]) is not None
    if not prompts["n"]:
        raise InputError(f"{answers}: no answer to the prompts of {inputs}")
    return {"run": str(run), "ids": dict(sorted(per_id.items())), "prompts": prompts}


def print_rewrite_coverage(run_dir: str | Path, echo=print) -> dict:
    figures = rewrite_coverage(run_dir)
    echo(f"rule rewrites of the base policy's IFEval answers ({figures['run']})")
    echo("| id | instructions | base answer meets it | a clean rewrite meets it | program |")
    echo("|---|---|---|---|---|")
    rows = list(figures["ids"].items()) + [("whole prompts (every instruction)", figures["prompts"])]
    for iid, f in rows:
        program = "yes" if iid in REWRITERS else ""
        echo(f"| {iid} | {f['n']} | {f['base_met'] / f['n']:.0%} | {f['rewritten_met'] / f['n']:.0%} | {program} |")
    return figures
