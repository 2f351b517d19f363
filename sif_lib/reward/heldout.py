"""The held-out scorer: one way to score answers to held-out prompts, shared by the GRPO probe (stage 06) and the
evaluation's curriculum hold-out (stage 07).

Each answer is scored by the run's reward function (:class:`~sif_lib.reward.composite.CompositeReward`:
verifiers for hard constraints, the reward model for soft ones, the answer part that ``model.answer_mode``
selects, and the reward switches), so "held-out reward" means the training reward on unseen prompts. A row per
prompt keeps, per constraint, the verifier's ``verdict`` and the RM's ``prob`` next to the ``score`` that entered
the reward: :func:`constraint_verdicts` reads the first two, which do not depend on the reward switches.

Without a reward model (no ``rm/`` and no ``scoring.rm_url``) soft constraints stay unscored (None) and the
reward covers hard constraints only.

:func:`score_cached` keeps the rows beside a key of everything that changes a score: the answers themselves
(which :mod:`sif_lib.policy.answers` keys by model, adapter, decoding and prompts), the reward settings and the
reward model (:func:`scorer_fingerprint`). A rerun with the same key reads the rows back; anything else rescores.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sif_lib.config.params import Params
from sif_lib.constraints.degenerate import Degeneration, verdict_summary
from sif_lib.core.errors import InputError
from sif_lib.core.io import read_json, read_jsonl, write_json, write_jsonl
from sif_lib.core.stats import mean_ci, paired_flips
from sif_lib.reward.composite import ItemScore, make_reward_function

KEY_SUFFIX = ".key.json"


def reward_settings(params: Params) -> dict:
    """The params that change how an answer is scored."""
    g = params.grpo
    return {"answer_mode": params.model.answer_mode, "soft_reward": g.soft_reward, "hard_reward": g.hard_reward,
            "repetitive_penalty": g.repetitive_penalty, "degenerate_gate": g.degenerate_gate,
            "degenerate_reward": g.degenerate_reward}


def scorer_fingerprint(scorer: Any) -> str | None:
    """What identifies the reward model behind a scorer (None: no scorer)."""
    if scorer is None:
        return None
    fingerprint = getattr(scorer, "fingerprint", None)
    return str(fingerprint) if fingerprint is not None else type(scorer).__name__


def items_from_curriculum(rows: Sequence[dict]) -> list[dict]:
    """Curriculum rows as items the reward function scores (instructions, no gold answer)."""
    return [{"id": str(r["id"]), "kind": "instruction", "level": int(r["level"]), "prompt": r.get("prompt", ""),
             "constraints": r["constraints"], "answer": None} for r in rows]


def score(params: Params, items: Sequence[dict], completions: Sequence[str], scorer: Any) -> list[dict]:
    """One row per item: ``id``, ``prompt``, ``completion``, and the reward function's scoring of it."""
    if len(items) != len(completions):
        raise ValueError(f"{len(items)} held-out items but {len(completions)} completions")
    constraints = [it["constraints"] for it in items]
    if scorer is None:
        constraints = [[c for c in cons if c.get("kind") == "hard"] for cons in constraints]
    reward = make_reward_function(params, scorer)
    scores = reward.score_batch(list(completions), [it["kind"] for it in items], [it["level"] for it in items],
                                constraints, [it["answer"] for it in items], [it["id"] for it in items])
    rows = []
    for it, completion, s in zip(items, completions, scores):
        row = {"id": it["id"], "prompt": it["prompt"], "completion": completion, **s.to_dict()}
        if scorer is None:  # the soft constraints, unscored, so that every constraint has its row
            row["constraints"] += [{"id": c.get("id"), "kind": "soft", "category": c.get("category"),
                                    "description": c.get("description", ""), "verdict": None, "prob": None,
                                    "score": None} for c in it["constraints"] if c.get("kind") != "hard"]
        rows.append(row)
    return rows


def cache_key(params: Params, items: Sequence[dict], completions: Sequence[str], scorer: Any) -> dict:
    digest = hashlib.sha1("\x1e".join(completions).encode()).hexdigest()
    return {"items": [it["id"] for it in items], "completions_sha1": digest, "reward": reward_settings(params),
            "reward_model": scorer_fingerprint(scorer)}


def score_cached(path: Path, params: Params, items: Sequence[dict], completions: Sequence[str],
                 scorer: Any) -> list[dict]:
    """:func:`score`, saved to ``path`` (JSONL) with its key beside it; reused when the key matches."""
    path = Path(path)
    key_path = path.with_name(path.name + KEY_SUFFIX)
    key = cache_key(params, items, completions, scorer)
    if path.is_file() and key_path.is_file():
        try:
            if read_json(key_path, "") == key:
                return read_jsonl(path)
        except InputError:
            pass  # a damaged cache is rescored
    rows = score(params, items, completions, scorer)
    key_path.unlink(missing_ok=True)  # the rows first, then the key that vouches for them
    write_jsonl(path, rows)
    write_json(key_path, key)
    return rows


def item_scores(rows: Sequence[dict]) -> list[ItemScore]:
    """Rows back as :class:`ItemScore` objects, for :func:`~sif_lib.reward.composite.summarize`."""
    return [ItemScore(kind=r["kind"], reward=r["reward"], answer_found=r["answer_found"], level=r["level"],
                      constraints=[c for c in r["constraints"] if c.get("score") is not None or c["kind"] == "hard"],
                      correct=r.get("correct"), repetitive=bool(r.get("repetitive", False)),
                      degenerate=list(r.get("degenerate") or []))
            for r in rows]


def constraint_verdicts(rows: Sequence[dict], soft_scored: bool = True) -> list[dict]:
    """One verdict per (prompt, constraint): ``{"id", "level", "constraint", "kind", "category", "score"}``.

    Hard scores are the verifier's 1.0/0.0 whatever the reward switches; soft scores are the RM's raw
    probability, 0.0 for an answer that is missing (the RM is never asked about one), and None when no reward
    model scored them (``soft_scored`` False).
    """
    verdicts = []
    for row in rows:
        for c in row["constraints"]:
            if c["kind"] == "hard":
                value = 1.0 if c["verdict"] else 0.0
            elif not soft_scored:
                value = None
            else:
                value = float(c["prob"]) if c.get("prob") is not None else 0.0
            verdicts.append({"id": row["id"], "level": int(row["level"]), "constraint": c.get("id"),
                             "kind": c["kind"], "category": c.get("category") or "unknown", "score": value})
    return verdicts


def degenerate_change(first: Sequence[Degeneration], second: Sequence[Degeneration],
                      names: tuple[str, str] = ("before", "after"), n_resamples: int = 1000, seed: int = 0,
                      digits: int = 4) -> dict:
    """Degenerate answers of the same prompts under two policies (the probe's before/after, stage 07's
    base/trained): each side's :func:`~sif_lib.constraints.degenerate.verdict_summary` under its name, the paired
    change of the share (second − first, a fraction) with its 95% bootstrap interval over prompts, and the flips:
    prompts that turned degenerate and turned clean, with the exact sign test of that split."""
    bad = [[v.degenerate for v in side] for side in (first, second)]
    diffs = [float(b) - float(a) for a, b in zip(*bad)]
    flips = paired_flips(*bad)
    return {names[0]: verdict_summary(first), names[1]: verdict_summary(second),
            "delta": round(sum(diffs) / len(diffs), digits) if diffs else None,
            "delta_ci95": mean_ci(diffs, n_resamples, seed),
            "flips": {"paired": flips["paired"], "became_degenerate": flips["gained"], "became_clean": flips["lost"],
                      "sign_test_p": flips["sign_test_p"]}}
