"""Multi-constraint instructions composed from seed tasks, offline and deterministically (stage 01).

The paper asked GPT-4o to attach up to five atomic constraints to each of about 3,000 seeds. Here the
constraints come from the workbench's own libraries: the IFEval verifiers (hard, with randomly drawn
arguments) and the CFBench-style templates (soft). What a language model would add (constraints tailored to
the seed) is given up for traceability: every constraint names the verifier or template that produced it.

How one instruction is built
    * **Seeds.** The seed list is shuffled once. Held-out instructions take the first ``n_heldout`` seeds,
      training instructions the rest, so the two splits never share a seed. When there are fewer seeds than
      instructions, each split cycles through its own pool (the pools are split in proportion to demand).
    * **How many constraints.** The counts ``min_constraints..max_constraints`` are spread evenly over each
      split (200 training instructions with 1..5 get 40 of each) and shuffled, so every curriculum level has
      instructions whose full length ends there.
    * **Hard or soft.** Over all constraint slots of a split, ``round(hard_ratio * slots)`` are marked hard and
      the marks shuffled, so the hard share is exact rather than merely expected.
    * **Which one.** Soft categories and hard ids are each dealt from a shuffled deck, refilled when empty
      (round robin), so a few hundred instructions cover every category and id. A card that conflicts with
      the instruction so far stays in the deck for the next instruction. Conflicts checked: hard-hard
      (``conflicts``), soft-hard (``soft_conflicts_with_hard``) and soft-soft (``soft_conflicts``).
    * **Order.** Constraints keep the order in which they were drawn; stage 02 takes prefixes of it.
    * **Prompt.** The seed followed by the constraint sentences, separated by spaces (a line break after a
      sentence that ends with a multi-line format example).
    * **Repeat the request.** ``combination:repeat_prompt`` gets the seed as ``prompt_to_repeat``. Every
      curriculum prompt starts with the seed, so a response that repeats the request it was given passes at
      every level, and its sentence ("the request ... does not include this sentence") stays true.

Hard ids left out
    ``detectable_format:constrained_response`` asks for one of "My answer is yes/no/maybe." That only makes
    sense as the answer to a yes/no question; the seeds are open-ended tasks (write a story, plan a trip),
    where the constraint would ask the model to drop the task. IFEval uses it only on yes/no questions, so
    it stays in the evaluation but never in synthesized training data.

IFBench ids (``synthesis.ifbench_ids``)
    The ids named there join the hard deck beside the IFEval ones (``synthesis.hard_ids: []`` leaves IFBench's
    alone), dealt in the same rounds, so each id gets about the same share. They are built like IFEval's: the
    verifier's ``build_description`` with the argument stream, its ``get_instruction_args`` as ``kwargs``, the id
    exactly as IFBench names it. Conflicts are :func:`~sif_lib.constraints.conflicts.conflicts`' IFBench rules.
    IFBench ids that replace the seed task (``custom:*``, ``repeat:*``, ``format:options``) or need a reference
    text are never drawn (``EXCLUDED_IFBENCH_IDS``).

Reasoning mix
    The paper's RL set is 20,000 prompts of which 6,430 (32%) are reasoning items. The RL set here is the
    training sub-instructions L1..Ln (stage 02; L0 is only used for pseudo-labels), so the number of math
    items is ``round(share / (1 - share) * sum of n over training instructions)``: math items then make up
    ``reasoning_share`` of the RL prompts. ``evaluation.math_items`` more items are written with split
    ``heldout``, for stage 07.

Optional paraphrase (``synthesis.paraphrase``): :mod:`sif_lib.synthesis.paraphrase`.
"""

from __future__ import annotations

import json
import random
import shutil
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from sif_lib.config.params import Params
from sif_lib.constraints import (
    EXCLUDED_HARD_IDS,
    category_of,
    conflicts,
    get_constraint_class,
    usable_hard_ids,
    usable_ifbench_ids,
)
from sif_lib.constraints.soft import SOFT_CATEGORIES, sample_soft_constraint, soft_conflicts_with_hard
from sif_lib.core.errors import InputError
from sif_lib.synthesis import math_items, stepped_math

# ---------------------------------------------------------------------------------------------------------------
# Prompt text


def normalize_sentence(text: str) -> str:
    """Strip, and end a sentence that stops on a word or a parenthesis with a period, so sentences join cleanly."""
    text = text.strip()
    if text and (text[-1].isalnum() or text[-1] == ")"):
        text += "."
    return text


def compose_prompt(seed: str, descriptions: Sequence[str]) -> str:
    """The seed followed by the constraint sentences (the seed alone when there are none).

    Sentences are separated by a space, except after a sentence that spans several lines (it ends with a
    format example such as a bullet list), where the next one starts on a new line instead of being glued
    onto the example.
    """
    text, previous = seed.strip(), seed
    for description in descriptions:
        text += ("\n" if "\n" in previous else " ") + description
        previous = description
    return text


# ---------------------------------------------------------------------------------------------------------------
# Drawing constraints


class _Deck:
    """Cards dealt in shuffled rounds. ``draw(accept)`` returns the first acceptable card of the current round,
    starting a new round when it is exhausted; when no card left in the round fits, one is taken from a fresh
    shuffle without disturbing the round, so that an unlucky instruction does not cost a category its turn."""

    def __init__(self, cards: Iterable[Any], rng: random.Random):
        self.cards = list(cards)
        self.rng = rng
        self.round: list[Any] = []

    def _shuffled(self) -> list[Any]:
        cards = list(self.cards)
        self.rng.shuffle(cards)
        return cards

    def draw(self, accept: Callable[[Any], bool]) -> Any | None:
        if not self.round:
            self.round = self._shuffled()
        for i, card in enumerate(self.round):
            if accept(card):
                return self.round.pop(i)
        for card in self._shuffled():
            if accept(card):
                return card
        return None


def build_hard(hard_id: str, rng: random.Random, seed_task: str) -> dict:
    """One hard constraint (an IFEval or IFBench id) with arguments drawn from ``rng``.
    ``combination:repeat_prompt`` repeats the seed: the seed is the start of every curriculum prompt, so a
    response that repeats the request it was given (without the repeat sentence itself) always starts with it,
    at every level."""
    verifier = get_constraint_class(hard_id)(rng=rng)
    given = {"prompt_to_repeat": seed_task.strip()} if hard_id == "combination:repeat_prompt" else {}
    description = verifier.build_description(**given)
    return {"id": hard_id, "kind": "hard", "category": category_of(hard_id),
            "description": normalize_sentence(description), "kwargs": verifier.get_instruction_args()}


def _hard_fits(hard_id: str, chosen: list[dict]) -> bool:
    for c in chosen:
        if c["kind"] == "hard" and (c["id"] == hard_id or conflicts(c["id"], hard_id)):
            return False
        if c["kind"] == "soft" and soft_conflicts_with_hard(c, hard_id):
            return False
    return True


def _draw_soft(category: str, chosen: list[dict], rng: random.Random) -> dict | None:
    try:
        soft = sample_soft_constraint(rng, category=category,
                                      avoid_hard_ids=[c["id"] for c in chosen if c["kind"] == "hard"],
                                      avoid_soft=[c for c in chosen if c["kind"] == "soft"])
    except LookupError:
        return None
    soft = dict(soft)
    soft["description"] = normalize_sentence(soft["description"])
    return soft


def _spread(values: Sequence[int], count: int, rng: random.Random) -> list[int]:
    """``count`` values cycling through ``values`` (as even as possible), shuffled."""
    out = [values[i % len(values)] for i in range(count)]
    rng.shuffle(out)
    return out


def _kind_marks(total: int, hard_ratio: float, rng: random.Random) -> list[bool]:
    n_hard = round(total * hard_ratio)
    marks = [True] * n_hard + [False] * (total - n_hard)
    rng.shuffle(marks)
    return marks


def _split_seeds(seeds: list, n_train: int, n_heldout: int) -> tuple[list, list]:
    """Disjoint seed pools for the two splits, sized in proportion to demand when seeds are scarce."""
    total = len(seeds)
    if n_heldout == 0:
        return seeds, []
    if n_train == 0:
        return [], seeds
    if total < 2:
        raise InputError(f"synthesis.seeds: {total} usable seed(s); train and held-out instructions need "
                         "disjoint seeds, so at least 2 are required")
    if total >= n_train + n_heldout:
        k = n_heldout
    else:
        k = min(total - 1, max(1, round(total * n_heldout / (n_train + n_heldout))))
    return seeds[k:], seeds[:k]


def hard_pool(synthesis) -> list[str]:
    """The hard ids synthesis deals: the usable IFEval ids ``synthesis.hard_ids`` selects (all of them when null),
    then the IFBench ids ``synthesis.ifbench_ids`` names, each in registry order; never one of
    ``synthesis.heldout_ids``."""
    usable = usable_hard_ids()
    ifeval = usable if synthesis.hard_ids is None else [h for h in usable if h in synthesis.hard_ids]
    chosen = set(synthesis.ifbench_ids or ())
    held_out = set(synthesis.heldout_ids)
    return [h for h in ifeval + [h for h in usable_ifbench_ids() if h in chosen] if h not in held_out]


class _Composer:
    """Holds the decks and random streams shared by all instructions of a run."""

    def __init__(self, rng_seed: int, soft_categories: Sequence[str], hard_ids: Sequence[str]):
        self.rng_args = random.Random(f"{rng_seed}:arguments")
        self.soft_deck = _Deck(soft_categories, random.Random(f"{rng_seed}:soft-deck"))
        self.hard_deck = _Deck(hard_ids, random.Random(f"{rng_seed}:hard-deck"))
        self.fallbacks = 0

    def _soft(self, chosen: list[dict]) -> dict | None:
        drawn: dict[str, dict | None] = {}

        def accept(category: str) -> bool:
            if category not in drawn:
                drawn[category] = None if any(c.get("category") == category for c in chosen) \
                    else _draw_soft(category, chosen, self.rng_args)
            return drawn[category] is not None

        category = self.soft_deck.draw(accept)
        return None if category is None else drawn[category]

    def _hard(self, chosen: list[dict], seed_task: str) -> dict | None:
        hard_id = self.hard_deck.draw(lambda hid: _hard_fits(hid, chosen))
        return None if hard_id is None else build_hard(hard_id, self.rng_args, seed_task)

    def constraints(self, seed_task: str, marks: Sequence[bool]) -> list[dict]:
        chosen: list[dict] = []
        for hard in marks:
            item = self._hard(chosen, seed_task) if hard else self._soft(chosen)
            if item is None:
                # No card of the wanted kind fits next to what is already chosen: take the other kind.
                self.fallbacks += 1
                item = self._soft(chosen) if hard else self._hard(chosen, seed_task)
            if item is None:
                raise RuntimeError(f"no constraint fits after {[c['id'] for c in chosen]}; "
                                   "the constraint libraries are too small for this many constraints")
            chosen.append(item)
        return chosen


def _compose_split(composer: _Composer, seeds: list, count: int, split: str, first_number: int,
                   levels: list[int], hard_ratio: float, rng_seed: int) -> list[dict]:
    if count == 0:
        return []
    counts = _spread(levels, count, random.Random(f"{rng_seed}:{split}:counts"))
    marks = _kind_marks(sum(counts), hard_ratio, random.Random(f"{rng_seed}:{split}:kinds"))
    out, cursor = [], 0
    for i, n in enumerate(counts):
        seed = seeds[i % len(seeds)]
        constraints = composer.constraints(seed.task, marks[cursor:cursor + n])
        cursor += n
        out.append({
            "id": f"inst-{first_number + i:05d}",
            "seed_id": seed.id,
            "domain": seed.domain,
            "seed": seed.task,
            "constraints": constraints,
            "n_constraints": len(constraints),
            "prompt": compose_prompt(seed.task, [c["description"] for c in constraints]),
            "split": split,
        })
    return out


def _shuffled_seeds(params: Params, seed_list: list) -> list:
    shuffled = list(seed_list)
    random.Random(f"{params.run.seed}:seeds").shuffle(shuffled)
    return shuffled


def cold_start_seed_count(params: Params, available: int) -> int:
    """Seeds reserved for the cold start's instruction items (0 when it is off): the last of the shuffled list."""
    cs = params.cold_start
    if not cs.enabled or cs.n_instructions <= 0:
        return 0
    if cs.n_instructions > available - 2:
        raise InputError(f"cold_start.n_instructions: {cs.n_instructions} seeds reserved for the cold start leave "
                         f"fewer than 2 of the {available} seeds for training and held-out instructions")
    return cs.n_instructions


def compose_cold_start(params: Params, seeds) -> list[dict]:
    """The cold start's instructions: one per reserved seed (no training or held-out instruction uses these
    seeds), composed like the training split but from their own random streams."""
    s = params.synthesis
    shuffled = _shuffled_seeds(params, list(getattr(seeds, "seeds", seeds)))
    reserved = shuffled[len(shuffled) - cold_start_seed_count(params, len(shuffled)):]
    if not reserved:
        return []
    rng_seed = f"{params.run.seed}:cold-start"
    composer = _Composer(rng_seed, [c.name for c in SOFT_CATEGORIES], hard_pool(s))
    levels = list(range(s.min_constraints, s.max_constraints + 1))
    rows = _compose_split(composer, reserved, len(reserved), "cold_start", 1, levels, s.hard_ratio, rng_seed)
    return [{**row, "id": f"cold-{row['id']}"} for row in rows]


def compose_instructions(params: Params, seeds) -> tuple[list[dict], dict]:
    """Training then held-out instructions, and a few figures about how they were drawn."""
    s = params.synthesis
    seed_list = list(getattr(seeds, "seeds", seeds))
    if not seed_list:
        raise InputError("synthesis.seeds: no usable seeds")
    rng_seed = params.run.seed
    shuffled = _shuffled_seeds(params, seed_list)
    shuffled = shuffled[:len(shuffled) - cold_start_seed_count(params, len(shuffled))]  # the cold start's stay out
    train_pool, heldout_pool = _split_seeds(shuffled, s.n_instructions, s.n_heldout)

    composer = _Composer(rng_seed, [c.name for c in SOFT_CATEGORIES], hard_pool(s))
    levels = list(range(s.min_constraints, s.max_constraints + 1))
    train = _compose_split(composer, train_pool, s.n_instructions, "train", 1, levels, s.hard_ratio, rng_seed)
    heldout = _compose_split(composer, heldout_pool, s.n_heldout, "heldout", s.n_instructions + 1, levels,
                             s.hard_ratio, rng_seed)
    info = {
        "seeds_available": len(seed_list),
        "seeds_train": len({r["seed_id"] for r in train}),
        "seeds_heldout": len({r["seed_id"] for r in heldout}),
        "kind_fallbacks": composer.fallbacks,
    }
    return train + heldout, info


# ---------------------------------------------------------------------------------------------------------------
# Reasoning items


def reasoning_count(share: float, rl_instruction_prompts: int) -> int:
    """Math items that make up ``share`` of an RL set holding ``rl_instruction_prompts`` instruction prompts."""
    if share <= 0 or rl_instruction_prompts <= 0:
        return 0
    return round(share / (1.0 - share) * rl_instruction_prompts)


def question_key(text: str) -> str:
    """How math questions are compared for repeats and exclusions: whitespace collapsed, case folded."""
    return " ".join(str(text).split()).casefold()


def _math_record(item: dict, number: int, split: str, default_source: str) -> dict:
    question = str(item["question"]).strip()
    prompt = item.get("prompt") or math_items.make_prompt(question)
    record = {"id": f"math-{number:05d}", "kind": "reasoning", "question": question, "answer": str(item["answer"]),
              "prompt": prompt, "source": item.get("source") or default_source, "split": split}
    # Stepped items carry their step count and worked solution (the cold start's think part).
    for key in ("steps", "solution"):
        if key in item:
            record[key] = item[key]
    return record


def compose_reasoning(params: Params, n_train: int, n_heldout: int, *,
                      exclude_questions: set[str] | None = None) -> tuple[list[dict], dict]:
    """``n_train`` training and ``n_heldout`` held-out math items; no question appears in both splits.

    Generated items come from :mod:`~sif_lib.synthesis.math_items`, or with ``synthesis.math_steps`` set from
    :mod:`~sif_lib.synthesis.stepped_math`. Items whose question (compared by :func:`question_key`) is in
    ``exclude_questions`` are dropped, e.g. the questions a cold-start SFT set already uses.
    """
    s = params.synthesis
    wanted = n_train + n_heldout
    stepped = s.math_steps is not None and not s.reasoning_source
    label = str(s.reasoning_source) if s.reasoning_source else \
        (f"generated-stepped-{s.math_steps}" if stepped else "generated")
    excluded = {question_key(q) for q in exclude_questions or ()}
    if wanted == 0:
        return [], {"reasoning_source": label, "reasoning_shortfall": 0}
    if s.reasoning_source:
        pool = list(math_items.load_math_jsonl(Path(s.reasoning_source)))
        random.Random(f"{params.run.seed}:math").shuffle(pool)
    else:
        # Ask for a margin so that dropping repeated (and excluded) questions still leaves enough.
        size = wanted + wanted // 4 + 8 + len(excluded)
        pool = list(stepped_math.generate_stepped_items(size, params.run.seed, s.math_steps) if stepped
                    else math_items.generate_math_items(size, params.run.seed))
    unique, seen, dropped = [], set(), 0
    for item in pool:
        key = question_key(item["question"])
        if key in excluded:
            dropped += 1
        elif key not in seen:
            seen.add(key)
            unique.append(item)
    # Held-out first: evaluation needs its full count more than training needs its last few items.
    heldout = unique[:n_heldout]
    train = unique[n_heldout:n_heldout + n_train]
    rows = [_math_record(it, i + 1, "train", label) for i, it in enumerate(train)]
    rows += [_math_record(it, len(train) + i + 1, "heldout", label) for i, it in enumerate(heldout)]
    info = {"reasoning_source": label, "reasoning_shortfall": wanted - len(rows)}
    if exclude_questions is not None:
        info["reasoning_excluded"] = dropped
    return rows, info


# ---------------------------------------------------------------------------------------------------------------
# Metrics and the datasets copy


def synthesis_metrics(instructions: list[dict], reasoning_items: list[dict]) -> dict:
    """Counts per split, soft category, hard id, constraint count and kind."""
    train = [r for r in instructions if r["split"] == "train"]
    constraints = [c for r in instructions for c in r["constraints"]]
    train_constraints = [c for r in train for c in r["constraints"]]
    soft = Counter(c["category"] for c in constraints if c["kind"] == "soft")
    hard = Counter(c["id"] for c in constraints if c["kind"] == "hard")
    n_hard = sum(hard.values())
    paraphrased = [c for c in constraints if "paraphrased" in c]
    return {
        "instructions": {"train": len(train), "heldout": len(instructions) - len(train)},
        "constraints": len(constraints),
        "hard_share": round(n_hard / len(constraints), 4) if constraints else 0.0,
        "hard_share_train": round(sum(c["kind"] == "hard" for c in train_constraints) / len(train_constraints), 4)
        if train_constraints else 0.0,
        "per_n": {str(n): c for n, c in sorted(Counter(r["n_constraints"] for r in instructions).items())},
        "per_soft_category": {c.name: soft.get(c.name, 0) for c in SOFT_CATEGORIES},
        "per_hard_id": dict(sorted(hard.items())),
        "soft_categories_covered": sum(1 for c in SOFT_CATEGORIES if soft.get(c.name)),
        "hard_ids_covered": len(hard),
        "hard_ids_excluded": dict(EXCLUDED_HARD_IDS),
        "reasoning_items": {"train": sum(r["split"] == "train" for r in reasoning_items),
                            "heldout": sum(r["split"] == "heldout" for r in reasoning_items)},
        "rl_instruction_prompts": sum(r["n_constraints"] for r in train),
        "paraphrased": {"attempted": len(paraphrased), "kept": sum(c["paraphrased"] for c in paraphrased)}
        if paraphrased else None,
    }


def dataset_rows(instructions: list[dict]) -> list[dict]:
    """Rows for the ``datasets`` copy: ``kwargs`` is JSON text there, because its keys differ per constraint id
    and an Arrow column needs one schema. Optional paraphrase fields are filled for every constraint."""
    paraphrase = any("paraphrased" in c for r in instructions for c in r["constraints"])
    rows = []
    for r in instructions:
        row = dict(r)
        row["constraints"] = []
        for c in r["constraints"]:
            out = {"id": c["id"], "kind": c["kind"], "category": c["category"], "description": c["description"],
                   "kwargs": json.dumps(c["kwargs"], ensure_ascii=False, sort_keys=True)}
            if paraphrase:
                out["paraphrased"] = bool(c.get("paraphrased"))
                out["original_description"] = c.get("original_description", c["description"])
            row["constraints"].append(out)
        rows.append(row)
    return rows


def save_splits(rows: list[dict], path) -> None:
    """Save rows as a ``datasets.DatasetDict`` with one split per value of ``row['split']`` (train, heldout)."""
    import datasets  # heavy (pyarrow): only when a stage saves its splits

    splits = {}
    for name in ("train", "heldout"):
        part = [r for r in rows if r["split"] == name]
        if part:
            splits[name] = datasets.Dataset.from_list(part)
    # Progress bars would only clutter the notebook; the global switch is restored afterwards.
    was_enabled = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()
    try:
        if path.exists():
            shutil.rmtree(path)
        datasets.DatasetDict(splits).save_to_disk(str(path))
    finally:
        if was_enabled:
            datasets.enable_progress_bars()


