"""The curriculum hold-out: constraint satisfaction per level L1..Ln, base against trained.

The held-out split of ``data/curriculum.jsonl`` comes from seeds that training never saw. Every sub-instruction
is answered greedily by both policies and each of its constraints is scored the way the RL reward scores it, by
the held-out scorer the GRPO probe uses too (:mod:`sif_lib.reward.heldout`):

* a **hard** constraint by its verifier (1 or 0), on the part of the response that ``model.answer_mode`` selects;
* a **soft** constraint by the run's reward model (the probability that the response adheres).

From those per-constraint scores come, per level and per constraint category, the mean satisfaction of hard and
soft constraints, and the *composite reward*: per prompt the mean over its constraints (the paper's instruction
reward R), averaged over the level's prompts.

Simplifications, said plainly: soft scores come from our own reward model, not from a human or a stronger judge,
so the soft columns measure agreement with the RM the policy was trained against (optimistic by construction);
the hard columns are exact. The held-out prompts are capped (``evaluation.holdout_limit``) and spread evenly
over the levels, so that L5 is not starved by the smaller number of 5-constraint ladders.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from statistics import fmean

from sif_lib.config.params import Params
from sif_lib.core.errors import InputError
from sif_lib.core.io import read_jsonl
from sif_lib.core.stats import difference
from sif_lib.reward import heldout

LEVEL_PREFIX = "L"


def level_name(level: int) -> str:
    return f"{LEVEL_PREFIX}{int(level)}"


def load_holdout(path: Path, limit: int = -1) -> list[dict]:
    """Held-out curriculum rows with at least one constraint, at most ``limit`` of them, balanced over levels.

    Within a level, rows are taken in the order of their parent instruction, so that the levels share seeds as
    far as the ladders allow. ``limit=-1`` keeps every held-out row.
    """
    rows = []
    for number, row in enumerate(read_jsonl(path), start=1):
        for key in ("id", "level", "constraints", "prompt"):
            if key not in row:
                raise InputError(f"{path}:{number}: curriculum row lacks '{key}'")
        if row.get("split") != "heldout" or int(row["level"]) < 1 or not row["constraints"]:
            continue
        rows.append(row)
    if not rows:
        raise InputError(f"{path}: no held-out rows with constraints (split 'heldout', level >= 1)")
    by_level: dict[int, list[dict]] = defaultdict(list)
    for row in sorted(rows, key=lambda r: (str(r.get("parent", r["id"])), int(r["level"]))):
        by_level[int(row["level"])].append(row)
    if limit is None or limit < 0 or limit >= len(rows):
        chosen = [row for level in sorted(by_level) for row in by_level[level]]
    else:
        # Round-robin over levels: every level gets its share before any gets more.
        chosen, depth = [], 0
        while len(chosen) < limit:
            for level in sorted(by_level):
                if depth < len(by_level[level]) and len(chosen) < limit:
                    chosen.append(by_level[level][depth])
            depth += 1
        chosen.sort(key=lambda r: (int(r["level"]), str(r.get("parent", r["id"]))))
    return chosen


def holdout_verdicts(params: Params, rows: Sequence[dict], responses: Sequence[str], scorer=None,
                     cache: Path | None = None) -> list[dict]:
    """One verdict per (prompt, constraint): ``{"id", "level", "constraint", "kind", "category", "score"}``, from
    the held-out scorer the GRPO probe uses too (:mod:`sif_lib.reward.heldout`).

    Hard scores are 1.0/0.0 from the verifiers. Soft scores are the RM's probabilities (0 for a missing answer);
    with no ``scorer`` they are None and every aggregate says how many soft constraints went unscored.
    ``cache`` keeps the scored rows (and reuses them while answers, reward settings and RM are the same).
    """
    items = heldout.items_from_curriculum(rows)
    scored = (heldout.score_cached(cache, params, items, responses, scorer) if cache is not None
              else heldout.score(params, items, responses, scorer))
    return heldout.constraint_verdicts(scored, soft_scored=scorer is not None)


def _mean(values: Iterable[float | None]) -> float | None:
    values = [v for v in values if v is not None]
    return round(fmean(values), 6) if values else None


def _summarise(verdicts: list[dict]) -> dict:
    """Aggregate figures over one group of verdicts (a level, a category, or everything)."""
    by_prompt: dict[str, list[float]] = defaultdict(list)
    for v in verdicts:
        if v["score"] is not None:
            by_prompt[v["id"]].append(v["score"])
    hard = [v["score"] for v in verdicts if v["kind"] == "hard"]
    soft = [v["score"] for v in verdicts if v["kind"] == "soft"]
    hard_by_prompt: dict[str, list[float]] = defaultdict(list)
    for v in verdicts:
        if v["kind"] == "hard":
            hard_by_prompt[v["id"]].append(v["score"])
    return {
        "n_prompts": len({v["id"] for v in verdicts}),
        "n_constraints": len(verdicts),
        "hard": _mean(hard),
        "soft": _mean(soft),
        "all": _mean(v["score"] for v in verdicts),
        "composite": _mean(fmean(scores) for scores in by_prompt.values()),
        "all_hard_satisfied": _mean(float(all(s == 1.0 for s in scores)) for scores in hard_by_prompt.values()),
        "n_soft_unscored": sum(1 for v in verdicts if v["kind"] == "soft" and v["score"] is None),
    }


def aggregate(verdicts: list[dict]) -> dict:
    """Per-level, per-category and overall figures from :func:`holdout_verdicts` rows.

    ``composite`` is the mean over prompts of the mean over each prompt's scored constraints;
    ``all_hard_satisfied`` is the share of prompts (with hard constraints) whose hard constraints all pass.
    """
    levels: dict[int, list[dict]] = defaultdict(list)
    categories: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for v in verdicts:
        levels[v["level"]].append(v)
        categories[(v["kind"], v["category"])].append(v)
    out = _summarise(verdicts)
    out["levels"] = {level_name(level): _summarise(levels[level]) for level in sorted(levels)}
    out["categories"] = {}
    for (kind, category), group in sorted(categories.items()):
        # A soft category never shares a name with an IFEval one in our library; a user's data might.
        key = f"{category} ({kind})" if category in out["categories"] else category
        out["categories"][key] = {"kind": kind, "n": len(group), "mean": _mean(v["score"] for v in group)}
    return out


def compare(base: dict, trained: dict) -> dict:
    """Trained minus base for the per-level composite and the overall figures (None where either is missing)."""
    out = {key: difference(base.get(key), trained.get(key)) for key in ("hard", "soft", "all", "composite",
                                                                     "all_hard_satisfied")}
    out["levels"] = {level: {key: difference(base["levels"][level][key], trained["levels"].get(level, {}).get(key))
                             for key in ("hard", "soft", "composite")}
                     for level in base["levels"]}
    return out
