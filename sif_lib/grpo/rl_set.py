"""The RL set of stage 06 and the order the trainer reads it in (the curriculum modes).

**The RL set** is the train split of ``data/curriculum.jsonl`` (levels >= 1) plus the train split of
``data/reasoning.jsonl``, as conversational prompts (TRL applies the chat template). TRL 1.16 no longer cuts
prompts, so prompts longer than ``grpo.max_prompt_length`` tokens are dropped (and counted).

**Curriculum modes** are implemented as the *order* of the training dataset, with TRL's shuffling turned off
(``shuffle_dataset=False``); each rollout batch reads the next ``rollout prompts`` rows. The order is built
for exactly the steps that will run, so it is deterministic, visible, and survives a resume (the trainer
skips the batches a checkpoint already consumed):

* ``mixed``: all levels and the reasoning items shuffled together, reshuffled at every pass (the released setup);
* ``staged``: level k opens at step ``grpo.staged_boundaries[k-2]`` (evenly spaced when empty); a rollout batch
  draws from the levels open at its first step (levels <= current, so earlier ones are kept), and reasoning
  items keep their overall share in every batch;
* ``off``: only the full n-constraint instructions (and the reasoning items): the paper's ablation.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from sif_lib.core.errors import InputError
from sif_lib.core.io import iter_numbered_jsonl
from sif_lib.policy.generation import chat_messages, render_prompt
from sif_lib.runner.runs import RunContext
from sif_lib.synthesis.instructions import reasoning_count


def _read_rows(path: Path, required: Sequence[str]) -> Iterator[tuple[int, dict]]:
    for number, row in iter_numbered_jsonl(path):
        missing = [k for k in required if k not in row]
        if missing:
            raise InputError(f"{path}:{number}: missing key(s) {', '.join(missing)}")
        yield number, row


def curriculum_items(path: Path, split: str) -> list[dict]:
    items = []
    for number, row in _read_rows(path, ("id", "level", "constraints", "prompt", "split")):
        if not isinstance(row["level"], int) or not isinstance(row["constraints"], list) \
                or not isinstance(row["prompt"], str):
            raise InputError(f"{path}:{number}: 'level' must be an integer, 'constraints' a list, 'prompt' a string")
        if row["split"] != split or row["level"] < 1:
            continue
        items.append({"id": str(row["id"]), "kind": "instruction", "level": row["level"],
                      "n_constraints": int(row.get("n_constraints", len(row["constraints"]))),
                      "constraints": row["constraints"], "prompt": row["prompt"], "answer": None})
    return items


def reasoning_items(path: Path, split: str) -> list[dict]:
    items = []
    for number, row in _read_rows(path, ("id", "prompt", "answer", "split")):
        if row["split"] != split:
            continue
        if not isinstance(row["prompt"], str):
            raise InputError(f"{path}:{number}: 'prompt' must be a string")
        items.append({"id": str(row["id"]), "kind": "reasoning", "level": 0, "n_constraints": 0,
                      "constraints": [], "prompt": row["prompt"], "answer": str(row["answer"])})
    return items


def load_rl_items(ctx: RunContext) -> list[dict]:
    """Train-split curriculum items (levels >= 1) followed by train-split reasoning items: all of those stage 01
    wrote, or with ``grpo.reasoning_share`` set, the first of them up to that share (0: none)."""
    curriculum = ctx.require("data", "curriculum.jsonl")
    reasoning = ctx.require("data", "reasoning.jsonl")
    items = curriculum_items(curriculum, "train")
    if not items:
        raise InputError(f"{curriculum}: no train-split instructions with level >= 1")
    math = reasoning_items(reasoning, "train")
    share = ctx.params.grpo.reasoning_share
    if share is not None:
        math = math[:reasoning_count(share, len(items))]
    return items + math


def prompt_messages(prompt: str, system_prompt: str | None) -> list[dict]:
    return chat_messages(prompt, system_prompt)


def prompt_lengths(tokenizer: Any, items: Sequence[dict], system_prompt: str | None,
                   enable_thinking: bool | None = None) -> list[int]:
    """Token counts of the chat-rendered prompts, as the trainer will see them."""
    texts = [render_prompt(tokenizer, it["prompt"], system_prompt, enable_thinking) for it in items]
    if not texts:
        return []
    return [len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]]


def drop_long_prompts(items: list[dict], lengths: Sequence[int], limit: int) -> tuple[list[dict], int]:
    kept = [it for it, n in zip(items, lengths) if n <= limit]
    return kept, len(items) - len(kept)


def level_schedule(max_steps: int, max_level: int, boundaries: Sequence[int] = ()) -> list[int]:
    """The highest open level at each step 0..max_steps-1 of a staged curriculum.

    ``boundaries[i]`` is the (0-based) step at which level i+2 opens. Empty means evenly spaced: with 60 steps
    and 5 levels, levels 2..5 open at steps 12, 24, 36 and 48.
    """
    if max_level < 1:
        raise ValueError("a staged curriculum needs at least level 1")
    if not boundaries:
        boundaries = [round(max_steps * k / max_level) for k in range(1, max_level)]
    else:
        boundaries = list(boundaries)
        if len(boundaries) != max_level - 1:
            raise InputError(f"grpo.staged_boundaries: the curriculum has {max_level} levels, so give "
                             f"{max_level - 1} step(s), got {len(boundaries)}")
        if any(not isinstance(b, int) or isinstance(b, bool) for b in boundaries) \
                or any(b <= a for a, b in zip(boundaries, boundaries[1:])) or boundaries[0] < 0:
            raise InputError(f"grpo.staged_boundaries: must be increasing non-negative step numbers, got {boundaries}")
    return [1 + sum(1 for b in boundaries if b <= step) for step in range(max_steps)]


class _Cycle:
    """Items in a seeded random order, reshuffled at every pass, forever."""

    def __init__(self, items: Sequence[dict], rng: random.Random):
        self.items, self.rng, self.queue = list(items), rng, []

    def __next__(self) -> dict:
        if not self.queue:
            self.queue = self.items[:]
            self.rng.shuffle(self.queue)
        return self.queue.pop()

    def take(self, n: int) -> list[dict]:
        return [next(self) for _ in range(n)] if self.items else []


def build_order(items: Sequence[dict], mode: str, n_rollouts: int, rollout_prompts: int, steps_per_rollout: int,
                max_steps: int, boundaries: Sequence[int] = (), seed: int = 0) -> list[dict]:
    """The training rows, in the order the trainer reads them: ``n_rollouts`` blocks of ``rollout_prompts``."""
    rng = random.Random(seed)
    instructions = [it for it in items if it["kind"] == "instruction"]
    reasoning = [it for it in items if it["kind"] == "reasoning"]
    if mode == "off":
        instructions = [it for it in instructions if it["level"] == it["n_constraints"]]
    if not instructions:
        raise InputError(f"grpo.curriculum={mode}: no instruction prompts to train on")
    total = n_rollouts * rollout_prompts
    if mode in ("mixed", "off"):
        return _Cycle(instructions + reasoning, rng).take(total)
    if mode != "staged":
        raise InputError(f"grpo.curriculum: unknown mode {mode!r} (mixed, staged or off)")

    max_level = max(it["level"] for it in instructions)
    schedule = level_schedule(max_steps, max_level, boundaries)
    share = len(reasoning) / (len(reasoning) + len(instructions))
    reasoning_cycle = _Cycle(reasoning, rng)
    by_cap: dict[int, _Cycle] = {}
    rows: list[dict] = []
    for g in range(n_rollouts):
        cap = schedule[min(g * steps_per_rollout, max_steps - 1)]
        if cap not in by_cap:
            by_cap[cap] = _Cycle([it for it in instructions if it["level"] <= cap], rng)
        n_reasoning = round(rollout_prompts * share) if reasoning else 0
        batch = reasoning_cycle.take(n_reasoning) + by_cap[cap].take(rollout_prompts - n_reasoning)
        rng.shuffle(batch)
        rows.extend(batch)
    return rows
