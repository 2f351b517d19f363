"""Stage 01: compose multi-constraint instructions from seed tasks, offline and deterministically.

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

Reasoning mix
    The paper's RL set is 20,000 prompts of which 6,430 (32%) are reasoning items. The RL set here is the
    training sub-instructions L1..Ln (stage 02; L0 is only used for pseudo-labels), so the number of math
    items is ``round(share / (1 - share) * sum of n over training instructions)``: math items then make up
    ``reasoning_share`` of the RL prompts. ``evaluation.math_items`` more items are written with split
    ``heldout``, for stage 07.

Optional paraphrase (``synthesis.paraphrase``)
    A local model (the policy) rewrites each constraint sentence. The verifier arguments never change, so a
    rewrite is kept only if it passes :func:`paraphrase_is_faithful` (every number, quoted word, marker,
    language name and argument value still present, no new numbers, the relation and any negation kept, most
    content words kept, still a request rather than talk about it); otherwise the original sentence stays.
    With the 135M default policy about 6% of sentences get a kept rewrite; the rest fall back. Each constraint
    then records ``paraphrased`` and, when rewritten, ``original_description``.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from typing import Any, Callable, Iterable, Sequence

from sif_lib.errors import InputError

STAGE = "01_synthesize_constraints"

# Hard ids that synthesis never draws; see the module docstring.
EXCLUDED_HARD_IDS = {
    "detectable_format:constrained_response":
        "answers one of 'My answer is yes/no/maybe.', which only fits a yes/no question, not an open-ended seed task",
}

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


def usable_hard_ids() -> list[str]:
    """Hard ids synthesis draws from: the registry minus :data:`EXCLUDED_HARD_IDS`, in registry order."""
    from sif_lib.constraints import HARD_CONSTRAINTS

    return [hid for hid in HARD_CONSTRAINTS if hid not in EXCLUDED_HARD_IDS]


def build_hard(hard_id: str, rng: random.Random, seed_task: str) -> dict:
    """One hard constraint with arguments drawn from ``rng``. ``combination:repeat_prompt`` repeats the seed:
    the seed is the start of every curriculum prompt, so a response that repeats the request it was given
    (without the repeat sentence itself) always starts with it, at every level."""
    from sif_lib.constraints import HARD_CONSTRAINTS, category_of

    verifier = HARD_CONSTRAINTS[hard_id](rng=rng)
    given = {"prompt_to_repeat": seed_task.strip()} if hard_id == "combination:repeat_prompt" else {}
    description = verifier.build_description(**given)
    return {"id": hard_id, "kind": "hard", "category": category_of(hard_id),
            "description": normalize_sentence(description), "kwargs": verifier.get_instruction_args()}


def _hard_fits(hard_id: str, chosen: list[dict]) -> bool:
    from sif_lib.constraints import conflicts
    from sif_lib.constraints.soft import soft_conflicts_with_hard

    for c in chosen:
        if c["kind"] == "hard" and (c["id"] == hard_id or conflicts(c["id"], hard_id)):
            return False
        if c["kind"] == "soft" and soft_conflicts_with_hard(c, hard_id):
            return False
    return True


def _draw_soft(category: str, chosen: list[dict], rng: random.Random) -> dict | None:
    from sif_lib.constraints.soft import sample_soft_constraint

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


def compose_instructions(params, seeds) -> tuple[list[dict], dict]:
    """Training then held-out instructions, and a few figures about how they were drawn."""
    from sif_lib.constraints.soft import SOFT_CATEGORIES

    s = params.synthesis
    seed_list = list(getattr(seeds, "seeds", seeds))
    if not seed_list:
        raise InputError("synthesis.seeds: no usable seeds")
    rng_seed = params.run.seed
    shuffled = list(seed_list)
    random.Random(f"{rng_seed}:seeds").shuffle(shuffled)
    train_pool, heldout_pool = _split_seeds(shuffled, s.n_instructions, s.n_heldout)

    usable = usable_hard_ids()
    hard_ids = usable if s.hard_ids is None else [h for h in usable if h in s.hard_ids]
    composer = _Composer(rng_seed, [c.name for c in SOFT_CATEGORIES], hard_ids)
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


def _math_record(item: dict, number: int, split: str, default_source: str) -> dict:
    from sif_lib.reasoning import make_prompt

    question = str(item["question"]).strip()
    prompt = item.get("prompt") or make_prompt(question)
    return {"id": f"math-{number:05d}", "kind": "reasoning", "question": question, "answer": str(item["answer"]),
            "prompt": prompt, "source": item.get("source") or default_source, "split": split}


def compose_reasoning(params, n_train: int, n_heldout: int) -> tuple[list[dict], dict]:
    """``n_train`` training and ``n_heldout`` held-out math items; no question appears in both splits."""
    from sif_lib import reasoning

    s = params.synthesis
    wanted = n_train + n_heldout
    if wanted == 0:
        return [], {"reasoning_source": s.reasoning_source or "generated", "reasoning_shortfall": 0}
    if s.reasoning_source:
        from sif_lib.runs import resolve_path

        pool = list(reasoning.load_math_jsonl(resolve_path(s.reasoning_source)))
        random.Random(f"{params.run.seed}:math").shuffle(pool)
        label = str(s.reasoning_source)
    else:
        # Ask for a margin so that dropping repeated questions still leaves enough.
        pool = list(reasoning.generate_math_items(wanted + wanted // 4 + 8, params.run.seed))
        label = "generated"
    unique, seen = [], set()
    for item in pool:
        key = " ".join(str(item["question"]).split()).casefold()
        if key not in seen:
            seen.add(key)
            unique.append(item)
    # Held-out first: evaluation needs its full count more than training needs its last few items.
    heldout = unique[:n_heldout]
    train = unique[n_heldout:n_heldout + n_train]
    rows = [_math_record(it, i + 1, "train", label) for i, it in enumerate(train)]
    rows += [_math_record(it, len(train) + i + 1, "heldout", label) for i, it in enumerate(heldout)]
    return rows, {"reasoning_source": label, "reasoning_shortfall": wanted - len(rows)}


# ---------------------------------------------------------------------------------------------------------------
# Paraphrase

_NUMBER = re.compile(r"\d+")
_QUOTED = re.compile(r"'([^']+)'|\"([^\"]+)\"|<<([^>]+)>>")
_MARKERS = re.compile(r"\*{2,}|<<|>>|\[[^\]]*\]|P\.P\.S|P\.S\.|```|\\boxed")
_RELATIONS = ("less than", "at least", "at most", "fewer than", "exactly", "more than")
_NEGATIONS = re.compile(r"\b(?:not|no|never|avoid|without|don't|nothing|none|neither|nor)\b", re.IGNORECASE)


def _kwarg_terms(kwargs: dict) -> list[str]:
    """Words and numbers a rewrite must keep, taken from the verifier arguments."""
    from sif_lib.constraints.hard import LANGUAGE_NAMES

    terms: list[str] = []
    for key, value in kwargs.items():
        if key == "prompt_to_repeat":
            continue  # The prompt is not in the sentence; it is the seed.
        values = value if isinstance(value, list) else [value]
        for v in values:
            if key == "language" and isinstance(v, str):
                terms.append(LANGUAGE_NAMES.get(v, v))
            elif isinstance(v, bool) or v is None:
                continue
            elif isinstance(v, (int, float, str)):
                terms.append(str(v))
    return terms


def key_terms(constraint: dict) -> list[str]:
    """What a rewrite of ``constraint['description']`` must still contain (compared case-insensitively)."""
    text = constraint["description"]
    terms = list(_NUMBER.findall(text))
    for match in _QUOTED.finditer(text):
        terms.append(next(g for g in match.groups() if g))
    terms += _MARKERS.findall(text)
    terms += [r for r in _RELATIONS if r in text.lower()]
    terms += [t for t in _kwarg_terms(constraint.get("kwargs") or {}) if t.lower() in text.lower()]
    unique: list[str] = []
    for t in terms:
        if t.strip() and t.lower() not in (u.lower() for u in unique):
            unique.append(t)
    return unique


_CONTENT_WORD = re.compile(r"[a-z]{4,}")
# Words that show the model talked about the task instead of doing it ("Rewrite the instruction to ...").
_META = re.compile(r"\b(?:instructions?|rewrit\w*|rephras\w*|paraphras\w*)\b", re.IGNORECASE)
# Openings of a reply or of a description ("The comparison is ...") rather than of a request to the reader.
_NOT_A_REQUEST = re.compile(r"^(?:I|I'm|I'll|I've|Sure|Here|Okay|OK|The|This|These|It|A|An)\b")


def _canonical(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


def paraphrase_is_faithful(constraint: dict, rewrite: str) -> bool:
    """A heuristic description check; true when the rewrite

    * differs from the original beyond case and punctuation, is one line, and is 0.5 to 2.5 times as long;
    * keeps every key term (:func:`key_terms`: numbers, quoted words, markers, relations, argument values such
      as keywords, a language name or a soft template's filled-in phrase) and adds no number;
    * keeps the polarity (a negation word present in both or in neither);
    * keeps at least half of the original's content words (four letters or more);
    * does not talk about the task ("rewrite", "instruction"), answer it in the first person, describe instead of
      request (an opening "The ..."/"This ..." the original lacks), or end on a colon.

    It rejects most unfaithful rewrites, not all: meaning is not checked beyond these surface cues.
    """
    original = constraint["description"]
    rewrite = rewrite.strip()
    if not rewrite or "\n" in rewrite or _canonical(rewrite) == _canonical(original):
        return False
    if not 0.5 * len(original) <= len(rewrite) <= 2.5 * len(original) + 20:
        return False
    low = rewrite.lower()
    if any(term.lower() not in low for term in key_terms(constraint)):
        return False
    if set(_NUMBER.findall(rewrite)) - set(_NUMBER.findall(original)):
        return False
    if bool(_NEGATIONS.search(original)) != bool(_NEGATIONS.search(rewrite)):
        return False
    words = set(_CONTENT_WORD.findall(original.lower()))
    if words and len(words & set(_CONTENT_WORD.findall(low))) < 0.5 * len(words):
        return False
    if _META.search(rewrite) and not _META.search(original):
        return False
    if rewrite.endswith(":"):
        return False
    return not (_NOT_A_REQUEST.match(rewrite) and not _NOT_A_REQUEST.match(original))


def _paraphrase_request(description: str) -> str:
    return ("Rewrite the following instruction so that it reads fluently. Keep its meaning, and keep every "
            "number, quoted word, name and symbol exactly as written. Reply with the rewritten instruction only, "
            f"on one line.\n\nInstruction: {description}")


# A short label before a colon: "Rewritten instruction:", "Reply:", "Rewrite the instruction so that it reads:".
_LEAD_IN = re.compile(r"^(?:(?:[\w' ]{0,40}\b(?:instructions?|rewrit\w*|rephras\w*|paraphras\w*)\b[\w' ]{0,30})"
                      r"|answer|reply|response|output)\s*:\s*", re.IGNORECASE)


def _clean_rewrite(text: str) -> str:
    """First non-empty line of a reply, without a label such as "Rewritten instruction:" or wrapping quotes."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    if not lines:
        return ""
    line = _LEAD_IN.sub("", lines[0]).strip()
    if len(line) > 1 and line[0] == line[-1] and line[0] in "\"'":
        line = line[1:-1].strip()
    return normalize_sentence(line)


def paraphrase_instructions(instructions: list[dict], generate: Callable[[list[str]], list[str]]) -> dict:
    """Rewrite constraint sentences in place with ``generate`` (a batch of requests -> a batch of replies).

    Multi-line descriptions (they carry a format example) are never rewritten. Each distinct sentence is asked
    once. Prompts are rebuilt from the kept sentences. Returns counts of attempts and kept rewrites.
    """
    originals = []
    for inst in instructions:
        for c in inst["constraints"]:
            if "\n" not in c["description"] and c["description"] not in originals:
                originals.append(c["description"])
    replies = generate([_paraphrase_request(d) for d in originals]) if originals else []
    rewrites = {d: _clean_rewrite(r) for d, r in zip(originals, replies)}
    kept = 0
    for inst in instructions:
        for c in inst["constraints"]:
            rewrite = rewrites.get(c["description"])
            if rewrite is not None and paraphrase_is_faithful(c, rewrite):
                c["original_description"] = c["description"]
                c["description"] = rewrite
                c["paraphrased"] = True
                kept += 1
            else:
                c["paraphrased"] = False
        inst["prompt"] = compose_prompt(inst["seed"], [c["description"] for c in inst["constraints"]])
    return {"paraphrase_requests": len(originals), "paraphrased_constraints": kept}


def policy_paraphraser(params) -> Callable[[list[str]], list[str]]:
    """Greedy rewrites by the policy model through :class:`~sif_lib.generation.ChatGenerator`."""
    from sif_lib.constraints import answer_text
    from sif_lib.generation import ChatGenerator, Sampling

    generator = ChatGenerator(params.model.policy, dtype=params.run.dtype, device=params.run.device,
                              system_prompt=params.model.system_prompt, enable_thinking=params.model.enable_thinking)
    sampling = Sampling(max_new_tokens=64, temperature=0.0, seed=params.run.seed)
    # A reasoning policy thinks before it rewrites; only its answer part is the rewrite.
    return lambda requests: [answer_text(reply, params.model.answer_mode) for reply in
                             generator.generate(requests, sampling, batch_size=params.rollouts.batch_size)]


# ---------------------------------------------------------------------------------------------------------------
# The stage


def synthesize(params, seeds, paraphraser: Callable[[list[str]], list[str]] | None = None
               ) -> tuple[list[dict], list[dict]]:
    """Instructions (train then held-out) and reasoning items (train then held-out).

    ``seeds`` is a :class:`~sif_lib.seeds.SeedSet` or a list of seeds. With ``synthesis.paraphrase`` on,
    ``paraphraser`` (default: the policy model) rewrites constraint sentences.
    """
    instructions, _ = compose_instructions(params, seeds)
    if params.synthesis.paraphrase:
        paraphrase_instructions(instructions, paraphraser or policy_paraphraser(params))
    rl_prompts = sum(r["n_constraints"] for r in instructions if r["split"] == "train")
    items, _ = compose_reasoning(params, reasoning_count(params.synthesis.reasoning_share, rl_prompts),
                                 params.evaluation.math_items)
    return instructions, items


def synthesis_metrics(instructions: list[dict], reasoning_items: list[dict]) -> dict:
    """Counts per split, soft category, hard id, constraint count and kind."""
    from sif_lib.constraints.soft import SOFT_CATEGORIES

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


def _dataset_rows(instructions: list[dict]) -> list[dict]:
    """Rows for the ``datasets`` copy: ``kwargs`` is JSON text there, because its keys differ per constraint id
    and an Arrow column needs one schema. Optional paraphrase fields are filled for every constraint."""
    import json

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
    import shutil

    import datasets

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


def seed_source(value: str | None) -> str | None:
    """Params paths are relative to the repository root; a hub id (or ``hf:`` name) is passed through."""
    from sif_lib.runs import resolve_path

    if not value:
        return None
    base, sep, split = value.rpartition(":")
    for candidate, suffix in ((value, ""), (base, sep + split)):
        if candidate and not candidate.startswith(("hf:", "hub:")) and resolve_path(candidate).exists():
            return str(resolve_path(candidate)) + suffix
    return value


def run_synthesis_stage(ctx) -> dict:
    """Load seeds, synthesize, write ``data/instructions.jsonl``, ``data/reasoning.jsonl``,
    ``data/instructions/`` and the stage metrics; returns the metrics."""
    from sif_lib.runs import write_jsonl
    from sif_lib.seeds import load_seeds

    params = ctx.params
    s = params.synthesis
    seed_set = load_seeds(seed_source(s.seeds), s.seed_column, s.strict)
    instructions, info = compose_instructions(params, seed_set)
    paraphrase_info = {}
    if s.paraphrase:
        paraphrase_info = paraphrase_instructions(instructions, policy_paraphraser(params))
    rl_prompts = sum(r["n_constraints"] for r in instructions if r["split"] == "train")
    reasoning_items, math_info = compose_reasoning(params, reasoning_count(s.reasoning_share, rl_prompts),
                                                   params.evaluation.math_items)

    write_jsonl(ctx.path("data", "instructions.jsonl"), instructions)
    write_jsonl(ctx.path("data", "reasoning.jsonl"), reasoning_items)
    save_splits(_dataset_rows(instructions), ctx.path("data", "instructions"))

    metrics = synthesis_metrics(instructions, reasoning_items)
    rl_total = rl_prompts + metrics["reasoning_items"]["train"]
    metrics.update({
        "seeds": {"source": seed_set.source, "loaded": len(seed_set), "skipped": len(seed_set.skipped),
                  "skipped_examples": seed_set.skipped[:5], "used_train": info["seeds_train"],
                  "used_heldout": info["seeds_heldout"]},
        "kind_fallbacks": info["kind_fallbacks"],
        "reasoning_share_achieved": round(metrics["reasoning_items"]["train"] / rl_total, 4) if rl_total else 0.0,
        **math_info,
        **paraphrase_info,
    })
    ctx.write_metrics(STAGE, metrics)
    return metrics


# ---------------------------------------------------------------------------------------------------------------
# Display helpers for notebook 01


def counts_table_html(metrics: dict) -> str:
    """The per-category and per-id counts as two small HTML tables side by side."""
    import html

    def table(title: str, counts: dict) -> str:
        rows = "".join(f"<tr><td>{html.escape(str(k))}</td><td style='text-align:right'>{v}</td></tr>"
                       for k, v in counts.items())
        return (f"<table style='display:inline-table;margin-right:2em;vertical-align:top'>"
                f"<thead><tr><th>{html.escape(title)}</th><th>count</th></tr></thead><tbody>{rows}</tbody></table>")

    summary = {
        "instructions (train / held-out)": f"{metrics['instructions']['train']} / {metrics['instructions']['heldout']}",
        "constraints": metrics["constraints"],
        "hard share": f"{metrics['hard_share']:.1%}",
        "soft categories covered": f"{metrics['soft_categories_covered']} / 25",
        "hard ids covered": metrics["hard_ids_covered"],
        "math items (train / held-out)": f"{metrics['reasoning_items']['train']} / {metrics['reasoning_items']['heldout']}",
    }
    if "seeds" in metrics:
        summary["seeds loaded / skipped"] = f"{metrics['seeds']['loaded']} / {metrics['seeds']['skipped']}"
    per_n = {f"n = {k}": v for k, v in metrics["per_n"].items()}
    return (table("summary", summary) + table("constraints per instruction", per_n)
            + table("soft category", metrics["per_soft_category"]) + table("hard id", metrics["per_hard_id"]))


def render_instruction_html(instruction: dict) -> str:
    """One instruction: the seed, then each constraint with a HARD/SOFT badge and its category."""
    import html

    items = "".join(
        f"<li>{badge_html(c)} {html.escape(c['description'])}</li>" for c in instruction["constraints"])
    return (f"<div style='margin:0.6em 0'><b>{html.escape(instruction['id'])}</b> "
            f"<span style='color:#666'>({html.escape(instruction['split'])}, {html.escape(instruction['domain'])}, "
            f"n = {instruction['n_constraints']})</span><br>{html.escape(instruction['seed'])}<ol>{items}</ol></div>")


def badge_html(constraint: dict) -> str:
    import html

    colour = "#c0392b" if constraint["kind"] == "hard" else "#2471a3"
    return (f"<span style='background:{colour};color:white;border-radius:3px;padding:0 4px;font-size:80%'>"
            f"{constraint['kind'].upper()}</span> <span style='color:#666;font-size:85%'>"
            f"[{html.escape(constraint['category'])}]</span>")


def examples_html(instructions: list[dict], k: int = 4) -> str:
    """``k`` training instructions with different constraint counts, fewest first."""
    by_n: dict[int, dict] = {}
    for r in instructions:
        if r["split"] == "train":
            by_n.setdefault(r["n_constraints"], r)
    picks = [by_n[n] for n in sorted(by_n)]
    step = max(1, len(picks) // k) if picks else 1
    return "".join(render_instruction_html(r) for r in picks[::step][:k])


def type_mix_figure(instructions: list[dict]):
    """Bar chart of constraints per soft category and per hard id (this run's type mix)."""
    from plotly.subplots import make_subplots
    import plotly.graph_objects as go

    from sif_lib.constraints.soft import SOFT_CATEGORIES

    constraints = [c for r in instructions for c in r["constraints"]]
    soft = Counter(c["category"] for c in constraints if c["kind"] == "soft")
    hard = Counter(c["id"] for c in constraints if c["kind"] == "hard")
    soft_names = [c.name for c in SOFT_CATEGORIES]
    hard_names = sorted(hard)
    n_soft, n_hard = sum(soft.values()), sum(hard.values())
    fig = make_subplots(rows=1, cols=2, column_widths=[0.5, 0.5], horizontal_spacing=0.28,
                        subplot_titles=(f"soft: {n_soft} constraints in {len(soft)} categories",
                                        f"hard: {n_hard} constraints over {len(hard)} ids"))
    fig.add_trace(go.Bar(y=soft_names, x=[soft.get(n, 0) for n in soft_names], orientation="h", name="soft",
                         marker_color="#2471a3"), row=1, col=1)
    fig.add_trace(go.Bar(y=hard_names, x=[hard[n] for n in hard_names], orientation="h", name="hard",
                         marker_color="#c0392b"), row=1, col=2)
    share = n_hard / (n_soft + n_hard) if constraints else 0.0
    fig.update_yaxes(autorange="reversed", tickfont_size=10)
    fig.update_xaxes(title_text="constraints")
    fig.update_layout(height=680, title=f"Constraint type mix ({share:.0%} hard)", showlegend=False,
                      margin=dict(l=10, r=10, t=70, b=40))
    return fig
