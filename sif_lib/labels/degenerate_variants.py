"""Degenerate variants of the policy's own answers: programs that rewrite a clean answer into the kind of text a
policy learns to emit when a reward pays it (loops, stuffing, truncation), for the reward model to learn as
negatives and to be measured on.

No model and no human label is involved: each variant is a fixed text program applied to an answer the policy
wrote in stage 03, with a seeded ``random.Random``. The kinds (:data:`VARIANT_KINDS`), each modelled on a failure
seen in GRPO-trained answers:

* ``loop``: one sentence (or a 4-12 word phrase of it) repeated, back to back, to the answer's length;
* ``truncate``: the answer cut to its first one or two words, mid-sentence (the detector's ``near_empty``);
* ``stuff``: the constraint's own marker or phrase repeated 6-12 times with little else (at most the
  answer's first sentence): a ``*highlight*``, a ``P.S.`` line, a ``[placeholder]``, a ``<<title>>``, a
  bullet, a required keyword or end phrase from the constraint's kwargs, for a soft constraint one of its
  template's phrases (e.g. "confident yet open to other views"), else the constraint's own description;
* ``repeated_line``: the answer's first third, then one of its lines (or sentences) repeated on lines of its
  own to the answer's length (the "postscript line repeated" failure);
* ``tail_loop``: the answer's first half, then a 2-8 word phrase of it repeated to the answer's length, the
  last copy cut short (the answer that hit the token limit mid-loop);
* ``shuffle``: the answer's sentences in a shuffled order (same words, no coherence).

All but ``shuffle`` are made only when :func:`sif_lib.constraints.degenerate.degeneration` flags the result
(:data:`FLAGGED_KINDS`), so a variant is what it claims to be by the same measuring stick the evaluation uses;
a shuffled answer is usually not flagged and is kept anyway (the detector reads repetition, not coherence).

Simplifications: sentences are split on ``.``, ``!``, ``?`` and line breaks (no tokenizer, abbreviations split
too); words are whitespace tokens; variants other than ``truncate`` and ``stuff`` keep the answer's word count,
so that the reward model's token limit cuts them where it would cut the answer; a variant that cannot be made
(an answer too short to loop, one sentence to shuffle) is None.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable, Mapping
from typing import Any

from sif_lib.constraints.degenerate import MIN_WORDS, is_degenerate

VARIANT_KINDS = ("loop", "truncate", "stuff", "repeated_line", "tail_loop", "shuffle")
FLAGGED_KINDS = ("loop", "truncate", "stuff", "repeated_line", "tail_loop")
# What the reward model trains on by default; tail_loop and shuffle stay out, so that the held-out figure on
# them measures generalisation to programs it never saw.
DEFAULT_TRAIN_KINDS = ("loop", "truncate", "stuff", "repeated_line")

_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")
_ALNUM = re.compile(r"[^\W_]")


def sentences(text: str) -> list[str]:
    """The answer's sentences and lines, stripped, that hold a letter or digit."""
    return [s.strip() for s in _SENTENCE.split(text) if s.strip() and _ALNUM.search(s)]


def _fill(unit: list[str], n_words: int, min_copies: int) -> list[str]:
    """``unit`` repeated to ``n_words`` words (at least ``min_copies`` copies), the last copy cut short."""
    copies = max(min_copies, -(-n_words // len(unit)))
    words = unit * copies
    return words[:max(n_words, min_copies * len(unit))]


def _phrase(words: list[str], rng: random.Random, low: int, high: int) -> list[str]:
    size = rng.randint(low, min(high, len(words)))
    start = rng.randint(0, len(words) - size)
    return words[start:start + size]


def loop(answer: str, constraint: Mapping[str, Any], rng: random.Random) -> str | None:
    words = answer.split()
    if len(words) < 4:
        return None
    candidates = [s for s in sentences(answer) if 4 <= len(s.split()) <= max(4, len(words) // 3)]
    unit = rng.choice(candidates).split() if candidates else _phrase(words, rng, 4, 12)
    return " ".join(_fill(unit, len(words), 3))


def truncate(answer: str, constraint: Mapping[str, Any], rng: random.Random) -> str | None:
    words = answer.split()
    if len(words) < 2 * MIN_WORDS:
        return None
    return " ".join(words[:rng.randint(1, MIN_WORDS - 1)])


def _kwargs(constraint: Mapping[str, Any]) -> dict:
    kwargs = constraint.get("kwargs") or {}
    if isinstance(kwargs, str):  # the datasets copy keeps kwargs as JSON text
        try:
            kwargs = json.loads(kwargs)
        except ValueError:
            return {}
    return dict(kwargs) if isinstance(kwargs, Mapping) else {}


def marker(constraint: Mapping[str, Any], answer: str, rng: random.Random) -> str:
    """The constraint's own marker or phrase, as one line of a stuffed answer."""
    cid, kwargs = str(constraint.get("id") or ""), _kwargs(constraint)
    words = [w.strip("*[]<>\"'.,:;!?()") for w in answer.split()]
    words = [w for w in words if _ALNUM.search(w)] or ["section"]
    few = " ".join(_phrase(words, rng, 1, 3))
    if kwargs.get("keywords"):
        return " ".join(str(k) for k in kwargs["keywords"])
    for key in ("keyword", "end_phrase"):
        if kwargs.get(key):
            return str(kwargs[key])
    if "postscript" in cid or kwargs.get("postscript_marker"):
        return f"{kwargs.get('postscript_marker') or 'P.S.'} {few}"
    if "highlight" in cid:
        return rng.choice(["*highlighted section*", f"*{few}*"])
    if "placeholder" in cid:
        return f"[{few.split()[0].lower()}]"
    if "title" in cid:
        return f"<<{few}>>"
    if "bullet" in cid:
        return f"* {few}"
    phrases = [v for v in kwargs.values() if isinstance(v, str) and _ALNUM.search(v)]
    if constraint.get("kind") == "soft" and phrases:
        return rng.choice(phrases).strip()
    return str(constraint.get("description") or few).strip().rstrip(".")


def stuff(answer: str, constraint: Mapping[str, Any], rng: random.Random) -> str | None:
    line = marker(constraint, answer, rng)
    copies = [line] * rng.randint(6, 12)
    first = sentences(answer)[:1]
    if first and len(first[0].split()) <= 25 and rng.random() < 0.5:
        return first[0] + "\n" + "\n".join(copies)  # after an opening sentence, one copy per line
    return rng.choice(["\n", " "]).join(copies)


def repeated_line(answer: str, constraint: Mapping[str, Any], rng: random.Random) -> str | None:
    words = answer.split()
    lines = sentences(answer)
    if len(words) < 6 or not lines:
        return None
    line = rng.choice([s for s in lines if len(s.split()) <= max(3, len(words) // 3)] or lines)
    head = " ".join(words[:len(words) // 3])
    out, size = [head] if head else [], len(head.split())
    while size < len(words) or len(out) - bool(head) < 3:
        out.append(line)
        size += len(line.split())
    return "\n".join(out)


def tail_loop(answer: str, constraint: Mapping[str, Any], rng: random.Random) -> str | None:
    words = answer.split()
    if len(words) < 8:
        return None
    head = words[:len(words) // 2]
    unit = _phrase(words, rng, 2, 8)
    tail = _fill(unit, max(len(words) - len(head), 12, 3 * len(unit) + 1), 3)
    if len(tail) % len(unit) == 0:  # end inside a copy, as a cut-off answer does
        tail = tail[:-1]
    return " ".join(head + tail)


def shuffle(answer: str, constraint: Mapping[str, Any], rng: random.Random) -> str | None:
    parts = sentences(answer)
    if len(parts) < 3:
        return None
    order = list(range(len(parts)))
    for _ in range(10):
        rng.shuffle(order)
        if order != sorted(order):
            return " ".join(parts[i] for i in order)
    return None


PROGRAMS: dict[str, Callable[[str, Mapping[str, Any], random.Random], str | None]] = {
    "loop": loop, "truncate": truncate, "stuff": stuff, "repeated_line": repeated_line, "tail_loop": tail_loop,
    "shuffle": shuffle}


def variant(answer: str, constraint: Mapping[str, Any], kind: str, seed: Any) -> str | None:
    """The ``kind`` variant of ``answer`` for ``constraint`` under ``seed`` (any hashable text or number: the same
    seed gives the same variant), or None when it cannot be made or, for a kind in :data:`FLAGGED_KINDS`, when
    the degeneration detector does not flag it."""
    if kind not in PROGRAMS:
        raise ValueError(f"unknown variant kind {kind!r}; known: {', '.join(VARIANT_KINDS)}")
    text = PROGRAMS[kind](answer.strip(), constraint, random.Random(f"{seed}:{kind}"))
    if not text or text.strip() == answer.strip():
        return None
    if kind in FLAGGED_KINDS and not is_degenerate(text, [constraint]):
        return None
    return text
