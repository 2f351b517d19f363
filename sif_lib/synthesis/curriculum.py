"""The incremental constraint curriculum (stage 02).

An instruction x with constraints c1..cn is decomposed into sub-instructions x_0..x_n, where x_k is the seed
followed by c1..ck (in the instruction's order) and x_0 is the bare seed. L1..Ln are the RL training prompts;
L0 is kept because stage 03 needs the response to the bare seed as the negative for c1.

As in the released configuration, every level is a training prompt and the levels are shuffled together at
training time (``grpo.curriculum: mixed``); this module only writes them, in ladder order.

What "level k" counts (:func:`level_stats`)
    The paper's Table 1 counts *sub-instructions* at level k: prompts that carry exactly k constraints,
    whichever instruction they were cut from. Its arithmetic shows it: soft + hard at level k is exactly k
    times the instructions at level k (L2: 3,203 + 2,287 = 2 x 2,745). So here, level k holds every
    sub-instruction x_k of every instruction with n >= k; "constraints" is k times that number, split into
    soft and hard by the kinds of c1..ck. The paper's level counts are nearly flat (2,806 ... 2,619), which
    means almost all of its instructions carried five constraints; synthesis here spreads n evenly over
    1..5, so level counts fall with k (in the 200-instruction default: 200, 160, 120, 80, 40).
"""

from __future__ import annotations

import json
from collections import Counter

from sif_lib.core.errors import InputError
from sif_lib.synthesis.instructions import compose_prompt

# The paper's Table 1: level -> (instructions, soft constraints, hard constraints).
PAPER_TABLE1 = {
    1: (2806, 1578, 1228),
    2: (2745, 3203, 2287),
    3: (2700, 4833, 3267),
    4: (2700, 6481, 4319),
    5: (2619, 8101, 4994),
}


def decompose(instruction: dict) -> list[dict]:
    """The ladder of one instruction: rows for levels 0..n, each holding the first k constraints."""
    constraints = instruction["constraints"]
    n = len(constraints)
    rows = []
    for k in range(n + 1):
        prefix = [dict(c) for c in constraints[:k]]
        rows.append({
            "id": f"{instruction['id']}-L{k}",
            "parent": instruction["id"],
            "level": k,
            "n_constraints": n,
            "constraints": prefix,
            "prompt": compose_prompt(instruction["seed"], [c["description"] for c in prefix]),
            "seed_prompt": instruction["seed"],
            "split": instruction["split"],
        })
    return rows


def build_curriculum(instructions: list[dict]) -> list[dict]:
    """Every instruction's ladder, in instruction order."""
    return [row for inst in instructions for row in decompose(inst)]


def level_stats(curriculum: list[dict], split: str | None = "train") -> list[dict]:
    """Per level: sub-instructions, constraints (soft, hard) and the paper's Table 1 numbers alongside.

    See the module docstring for what a level counts. ``split`` restricts the rows (None: all). Level 0 is
    included (no constraints; the paper has no such row).
    """
    rows = [r for r in curriculum if split is None or r["split"] == split]
    by_level: dict[int, list[dict]] = {}
    for r in rows:
        by_level.setdefault(r["level"], []).append(r)
    out = []
    for level in sorted(by_level):
        kinds = Counter(c["kind"] for r in by_level[level] for c in r["constraints"])
        paper = PAPER_TABLE1.get(level)
        out.append({
            "level": f"L{level}",
            "instructions": len(by_level[level]),
            "constraints": sum(len(r["constraints"]) for r in by_level[level]),
            "soft": kinds.get("soft", 0),
            "hard": kinds.get("hard", 0),
            "paper_instructions": paper[0] if paper else None,
            "paper_soft": paper[1] if paper else None,
            "paper_hard": paper[2] if paper else None,
        })
    return out


def check_instructions(instructions: list[dict], source) -> None:
    """Stage 01's rows must carry what a ladder is built from; a bad row names its line."""
    for number, inst in enumerate(instructions, start=1):
        missing = [k for k in ("id", "seed", "constraints", "split") if k not in inst]
        if missing:
            raise InputError(f"{source}:{number}: missing key(s) {', '.join(missing)}")
        if not isinstance(inst["constraints"], list):
            raise InputError(f"{source}:{number}: 'constraints' must be a list")
        for c in inst["constraints"]:
            if not isinstance(c, dict) or not {"id", "kind", "category", "description", "kwargs"} <= set(c):
                raise InputError(f"{source}:{number}: each constraint needs id, kind, category, description and kwargs")


def dataset_rows(curriculum: list[dict]) -> list[dict]:
    """Curriculum rows with constraint ``kwargs`` as JSON text (one Arrow schema for every constraint id)."""
    out = []
    for r in curriculum:
        row = dict(r)
        row["constraints"] = [{"id": c["id"], "kind": c["kind"], "category": c["category"],
                               "description": c["description"],
                               "kwargs": json.dumps(c["kwargs"], ensure_ascii=False, sort_keys=True)}
                              for c in r["constraints"]]
        out.append(row)
    return out
