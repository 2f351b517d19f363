"""Degenerate answers: text that meets rule checks without being an answer.

A policy trained against rule verifiers can win reward with text no reader would accept: ``*highlighted
section*`` thirty times has highlights and no comma; ``P.P.S. I'm going to make it a reality.`` repeated has a
postscript. This module says, from the text alone (no model), whether an answer is degenerate and why. It is
the measuring stick of every "gain on clean answers" figure, and what ``grpo.degenerate_gate`` refuses to pay.

An answer is degenerate when any of these holds (each a *reason*):

* ``near_empty``: fewer than 3 words that hold a letter or digit, a ``<<title>>`` not counted.
* ``loop``: fewer than half of its word 4-grams are distinct (words lower-cased, split on whitespace): more
  than half of the text repeats what it has already said.
* ``repeated_line``: one line (lower-cased, spaces collapsed, holding a letter or digit) occurs 3 or more times.
* ``numbered_lines``: 3 or more lines, and a third of the answer's lines, that are the same line once their
  numbers are masked, each with at least 3 words that hold a letter: ``* This is bullet 1`` … ``* This is
  bullet 8``, a list whose items differ only in their number and so say nothing (seen in GRPO-trained answers to
  the bullet-list rule). Headers such as ``SECTION 1`` or ``Day 1: Rest`` have fewer words and are left alone; so
  is a long answer with a short templated part (a reference list of placeholders in a full essay).
* ``tail_loop``: the answer *ends* inside a loop: its last words are one unit of 1-24 words repeated at least
  3 times back to back, over at least 10 words, the last copy possibly cut short. This is the answer that hit
  the token limit mid-loop; the whole-text ratio misses it when the loop starts late.
* ``stuffed``: the constraint's own marker or phrase is repeated far beyond what any instruction asks:
  the same ``*highlight*`` (or ``**bold**``) text 3+ times, the same ``[placeholder]`` 4+ times, a postscript
  marker (``P.S.``, ``P.P.S``) 3+ times, or, given the constraints, a required keyword or end phrase that
  occurs at least 3 times and at least twice as often as asked *and* makes up a tenth of the words.
* ``template_copy``: the answer copies an instruction's own example text verbatim (:data:`EXAMPLE_TEXTS`:
  ``<<poem of joy>>``, ``This is point 1.``, ``*highlighted section*``, ...): the example meets the rule it
  illustrates and is not an answer. Seen in GRPO-trained answers: ``<<poem of joy>>`` then
  ``* This is point 1.`` and ``* This is point 2.``, and nothing else.

The first three are the stricter count an earlier audit of trained answers used ("fewer than half the word
4-grams distinct, or one line 3+ times, or under 3 words"); ``numbered_lines``, ``tail_loop`` and ``stuffed``
only add to it, so the detector is never looser than that count. Simplifications, each a known blind spot: words
are whitespace tokens (no tokenizer, the same for every policy); a song with a chorus or a letter that repeats
one line three times is flagged (``repeated_line``); a loop of paraphrases ("it is good. it is great. it is
fine.") passes, as does an answer that is fluent but off-topic, and a template whose items differ in a number
word ("point one", "point two"). ``tests/test_degenerate.py`` holds hand-made examples both ways.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sif_lib.constraints.repetition import distinct_ngram_ratio

REASONS = ("near_empty", "loop", "repeated_line", "numbered_lines", "tail_loop", "stuffed", "template_copy")
# Reasons about the text as a whole: no answer is left to score. The others (stuffed, template_copy) are about
# markers in it, and the rest of the text may still be an answer: grpo.degenerate_scope "marker" gates the first
# kind and strips the second (strip_stuffing).
TEXT_REASONS = ("near_empty", "loop", "repeated_line", "numbered_lines", "tail_loop")

MIN_WORDS = 3            # near_empty below this many words with a letter or digit
LOOP_RATIO = 0.5         # loop below this share of distinct word 4-grams
LINE_REPEATS = 3         # repeated_line (and numbered_lines) at this many copies of one line
NUMBERED_MIN_WORDS = 3   # numbered_lines: words with a letter a line needs (a bare "Section 1" is a header)
NUMBERED_SHARE = 1 / 3   # numbered_lines: share of the answer's lines the copies must make up
TAIL_REPEATS = 3         # tail_loop: copies of the unit at the end
TAIL_MIN_WORDS = 10      # tail_loop: words the periodic tail must cover
TAIL_MAX_UNIT = 24       # tail_loop: longest unit, in words
SAME_HIGHLIGHT = 3       # stuffed: copies of one highlighted text
SAME_PLACEHOLDER = 4     # stuffed: copies of one [placeholder]
POSTSCRIPTS = 3          # stuffed: postscript markers
PHRASE_SHARE = 0.1       # stuffed: share of the words a stuffed keyword or phrase covers

# The example texts of IFEval's instruction templates (sif_lib/constraints/hard.py), lower-cased.
EXAMPLE_TEXTS = ("<<poem of joy>>", "this is point 1.", "this is point 2.", "*highlighted section*",
                 "*highlighted section part")

_ALNUM = re.compile(r"[^\W_]")
_HIGHLIGHT = re.compile(r"\*\*([^\n*]+)\*\*|\*([^\n*]+)\*")
_PLACEHOLDER = re.compile(r"\[([^\[\]\n]*)\]")
_POSTSCRIPT = re.compile(r"\bp\.\s*(?:p\.\s*)*s\b", re.IGNORECASE)


@dataclass(frozen=True)
class Degeneration:
    """The verdict on one answer: ``reasons`` is empty for a clean answer."""

    reasons: tuple[str, ...]

    @property
    def degenerate(self) -> bool:
        return bool(self.reasons)

    def __bool__(self) -> bool:
        return self.degenerate


def _norm(text: str) -> str:
    return " ".join(text.lower().split())


def _words(text: str) -> list[str]:
    return text.lower().split()


_TITLE = re.compile(r"<<[^\n]*?>>")


def near_empty(text: str) -> bool:
    # A <<title>> is not an answer: "<<poem of joy>>" alone meets the title rule and says nothing.
    return sum(1 for w in _TITLE.sub(" ", text).split() if _ALNUM.search(w)) < MIN_WORDS


def loops(text: str) -> bool:
    ratio = distinct_ngram_ratio(text, 4)
    return ratio is not None and ratio < LOOP_RATIO


def repeated_line(text: str) -> bool:
    counts: dict[str, int] = {}
    for line in text.splitlines():
        key = _norm(line)
        if key and _ALNUM.search(key):
            counts[key] = counts.get(key, 0) + 1
            if counts[key] >= LINE_REPEATS:
                return True
    return False


_NUMBER = re.compile(r"\d+")


def numbered_lines(text: str) -> bool:
    lines = [_norm(line) for line in text.splitlines() if _ALNUM.search(line)]
    counts = Counter(key for key in (_NUMBER.sub("#", line) for line in lines)
                     if "#" in key and sum(1 for w in key.split() if any(c.isalpha() for c in w)) >= NUMBERED_MIN_WORDS)
    return any(n >= LINE_REPEATS and n >= NUMBERED_SHARE * len(lines) for n in counts.values())


def tail_run(words: Sequence[str], unit: int) -> int:
    """How many words at the end of ``words`` repeat with period ``unit`` (each equals the word ``unit`` places
    before it), counting the first copy; the last copy may be cut short. 0 when there are under two copies'
    worth of words."""
    n = len(words)
    if unit < 1 or n < 2 * unit:
        return 0
    i = n - 1
    while i >= unit and words[i] == words[i - unit]:
        i -= 1
    run = n - 1 - i + unit  # the matched words plus the first copy they matched against
    return run if run >= 2 * unit else 0


def tail_loop(text: str) -> bool:
    # Punctuation stays on the words: "end." and "end" differ, so a closing sentence is not a repeat.
    words = _words(text)
    for unit in range(1, min(TAIL_MAX_UNIT, len(words) // TAIL_REPEATS) + 1):
        run = tail_run(words, unit)
        if run >= TAIL_MIN_WORDS and run >= TAIL_REPEATS * unit:
            return True
    return False


def _repeated(keys: Iterable[str], at_least: int) -> set[str]:
    return {key for key, count in Counter(keys).items() if count >= at_least}


def _stuffed_highlights(text: str) -> set[str]:
    """The highlight texts (lower-cased, spaces collapsed) that occur ``SAME_HIGHLIGHT`` or more times."""
    return _repeated((_norm(bold or plain) for bold, plain in _HIGHLIGHT.findall(text)), SAME_HIGHLIGHT) - {""}


def _stuffed_placeholders(text: str) -> set[str]:
    """The placeholder texts that occur ``SAME_PLACEHOLDER`` or more times."""
    return _repeated((_norm(inner) for inner in _PLACEHOLDER.findall(text)), SAME_PLACEHOLDER)


def _postscripts_stuffed(text: str) -> bool:
    return len(_POSTSCRIPT.findall(text)) >= POSTSCRIPTS


def _marker_stuffed(text: str) -> bool:
    return bool(_stuffed_highlights(text) or _stuffed_placeholders(text) or _postscripts_stuffed(text))


# count:keywords_multiple (IFBench): each keyword argument and how many times the response must hold it.
_KEYWORD_TIMES = (("keyword1", 1), ("keyword2", 2), ("keyword3", 3), ("keyword4", 5), ("keyword5", 7))


def _required_phrases(constraints: Iterable[Mapping[str, Any]]) -> list[tuple[str, int]]:
    """(phrase, how many times the constraint needs it) for the constraints that ask for a word or phrase."""
    out: list[tuple[str, int]] = []
    for c in constraints or ():
        kwargs = c.get("kwargs") or {}
        if isinstance(kwargs, str):  # the datasets copy keeps kwargs as JSON text
            import json
            try:
                kwargs = json.loads(kwargs)
            except ValueError:
                continue
        if not isinstance(kwargs, Mapping):
            continue
        for word in kwargs.get("keywords") or ():
            out.append((str(word), 1))
        if kwargs.get("keyword"):
            # IFBench's words:words_position wants its keyword twice (second word and second to last)
            needed = int(kwargs.get("frequency") or (2 if c.get("id") == "words:words_position" else 1))
            out.append((str(kwargs["keyword"]), needed if kwargs.get("relation") != "less than" else 1))
        if kwargs.get("end_phrase"):
            out.append((str(kwargs["end_phrase"]), 1))
        # IFBench: count:keywords_multiple's five keywords, sentence:keyword's word
        for key, times in _KEYWORD_TIMES:
            if kwargs.get(key):
                out.append((str(kwargs[key]), times))
        if kwargs.get("word") and c.get("id") == "sentence:keyword":
            out.append((str(kwargs["word"]), 1))
    return out


def _phrase_pattern(phrase: str, flags: int = 0) -> re.Pattern:
    return re.compile(r"(?<!\w)" + re.escape(phrase) + r"(?!\w)", flags)


def _stuffed_phrases(text: str, constraints: Iterable[Mapping[str, Any]]) -> list[str]:
    """The required phrases (lower-cased) that occur at least 3 times, at least twice as often as asked, and
    cover a tenth of the words."""
    words = len(text.split())
    if not words:
        return []
    lowered = text.lower()
    stuffed = []
    for phrase, needed in _required_phrases(constraints):
        phrase = phrase.strip().lower()
        if not phrase:
            continue
        count = len(_phrase_pattern(phrase).findall(lowered))
        if count >= 3 and count >= 2 * needed and count * len(phrase.split()) >= PHRASE_SHARE * words:
            stuffed.append(phrase)
    return stuffed


def strip_stuffing(text: str, constraints: Iterable[Mapping[str, Any]] | None = None) -> str:
    """``text`` without the markers that make it ``stuffed`` or a ``template_copy``, so that a rule met only
    by stuffing or by copying the instruction's example is unmet when checked again: every line that holds an
    example text (a bullet ``* This is point 1.`` would otherwise stay a bullet), every copy of a highlight text
    that occurs 3+ times, of a placeholder that occurs 4+ times, every postscript marker when there are 3+, and
    every copy of a stuffed required phrase. Highlights, placeholders and a postscript used as asked stay."""
    lines = [line for line in text.splitlines() if not any(e in line.lower() for e in EXAMPLE_TEXTS)]
    out = "\n".join(lines)
    highlights = _stuffed_highlights(out)
    out = _HIGHLIGHT.sub(lambda m: "" if _norm(m.group(1) or m.group(2)) in highlights else m.group(0), out)
    placeholders = _stuffed_placeholders(out)
    out = _PLACEHOLDER.sub(lambda m: "" if _norm(m.group(1)) in placeholders else m.group(0), out)
    if _postscripts_stuffed(out):
        out = _POSTSCRIPT.sub("", out)
    for phrase in _stuffed_phrases(out, constraints or ()):
        out = _phrase_pattern(phrase, re.IGNORECASE).sub("", out)
    return out


def degeneration(answer: str | None, constraints: Iterable[Mapping[str, Any]] | None = None) -> Degeneration:
    """Why ``answer`` is degenerate (empty reasons: it is not). ``constraints`` (records with ``kwargs``, as
    IFEval rows and the curriculum carry them) let the check see a required phrase stuffed; without them the
    check reads the text alone. A missing answer (None) is ``near_empty``."""
    text = answer or ""
    reasons = []
    if near_empty(text):
        reasons.append("near_empty")
    if loops(text):
        reasons.append("loop")
    if repeated_line(text):
        reasons.append("repeated_line")
    if numbered_lines(text):
        reasons.append("numbered_lines")
    if tail_loop(text):
        reasons.append("tail_loop")
    if _marker_stuffed(text) or (constraints and _stuffed_phrases(text, list(constraints))):
        reasons.append("stuffed")
    lowered = text.lower()
    if any(example in lowered for example in EXAMPLE_TEXTS):
        reasons.append("template_copy")
    return Degeneration(tuple(reasons))


def is_degenerate(answer: str | None, constraints: Iterable[Mapping[str, Any]] | None = None) -> bool:
    return degeneration(answer, constraints).degenerate


def degenerate_summary(answers: Sequence[str | None],
                       constraints: Sequence[Iterable[Mapping[str, Any]] | None] | None = None) -> dict:
    """How many answers are degenerate, their share with its exact (Clopper-Pearson) 95% interval, and the
    count per reason (an answer can have several)."""
    constraints = list(constraints) if constraints is not None else [None] * len(answers)
    return verdict_summary([degeneration(a, c) for a, c in zip(answers, constraints)])


def verdict_summary(verdicts: Sequence[Degeneration]) -> dict:
    """:func:`degenerate_summary` of verdicts already made (the detector is not run again)."""
    n, bad = len(verdicts), sum(v.degenerate for v in verdicts)
    return {"n": n, "degenerate": bad, "share": round(bad / n, 4) if n else None,
            "share_ci95": exact_interval(bad, n),
            "reasons": {r: sum(r in v.reasons for v in verdicts) for r in REASONS}}


def exact_interval(k: int, n: int) -> list[float] | None:
    """The exact (Clopper-Pearson) 95% interval of ``k / n`` from scipy; None for n = 0."""
    if n == 0:
        return None
    from scipy.stats import binomtest  # heavy: only when a summary is made

    ci = binomtest(int(k), int(n)).proportion_ci(confidence_level=0.95, method="exact")
    return [round(float(ci.low), 4), round(float(ci.high), 4)]
