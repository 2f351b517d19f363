"""Which hard constraints must never be combined in one instruction.

The table is at the level of instruction ids, so it has to be conservative about pairs that are impossible or
nonsensical for *any* arguments, while leaving alone pairs that IFEval itself combines (for example
``combination:repeat_prompt`` with ``punctuation:no_comma``).  A pair is listed when

* the verifiers cannot both pass (``change_case:english_lowercase`` with ``detectable_format:multiple_sections``:
  the section headers are capitalised), or
* the instructions fight over the shape of the whole response (a JSON document cannot also be two responses,
  a quoted text, or end with a fixed phrase), or
* one instruction makes the other meaningless (all-capital text makes a capital-word count trivial).

The same id twice always conflicts: two thresholds on one quantity are either redundant or contradictory.
"""

from __future__ import annotations

from collections.abc import Iterable
from itertools import combinations

__all__ = ["CONFLICTS", "compatible", "conflicting_ids", "conflicts"]

_LOWER = "change_case:english_lowercase"
_CAPITAL = "change_case:english_capital"
_CAPITAL_WORDS = "change_case:capital_word_frequency"
_LANGUAGE = "language:response_language"
_JSON = "detectable_format:json_format"
_TWO = "combination:two_responses"
_REPEAT = "combination:repeat_prompt"
_OPTIONS = "detectable_format:constrained_response"
_QUOTE = "startend:quotation"
_END = "startend:end_checker"
_TITLE = "detectable_format:title"
_POSTSCRIPT = "detectable_content:postscript"
_NO_COMMA = "punctuation:no_comma"
_SECTIONS = "detectable_format:multiple_sections"
_BULLETS = "detectable_format:number_bullet_lists"
_HIGHLIGHTS = "detectable_format:number_highlighted_sections"
_PARAGRAPHS = "length_constraints:number_paragraphs"
_FIRST_WORD = "length_constraints:nth_paragraph_first_word"

_REASONS: dict[frozenset[str], str] = {}


def _add(a: str, b: str, reason: str) -> None:
    _REASONS[frozenset((a, b))] = reason


# Case: at most one rule about letter case.
_add(_LOWER, _CAPITAL, "all lowercase and all capitals exclude each other")
_add(_LOWER, _CAPITAL_WORDS, "an all-lowercase response has no capital words")
_add(_CAPITAL, _CAPITAL_WORDS, "in an all-capitals response every word is a capital word")
# The case rules demand English; a capital-word count presumes a script with case.
_add(_LANGUAGE, _LOWER, "english_lowercase requires English")
_add(_LANGUAGE, _CAPITAL, "english_capital requires English")
_add(_LANGUAGE, _CAPITAL_WORDS, "many languages have no capital letters")
# Keyword and letter rules are drawn from English words, which a response in another language should not use.
for other in ("keywords:existence", "keywords:frequency", "keywords:letter_frequency", "startend:end_checker"):
    _add(_LANGUAGE, other, "the required English words or letters clash with a response in another language")

# Rules that each dictate the form of the whole response.
for a, b in combinations((_TWO, _REPEAT, _JSON, _OPTIONS), 2):
    _add(a, b, "both dictate the form of the whole response")

# A JSON document leaves no room for prose layout, quoting or fixed text around it; JSON with more than one
# member needs commas.
for other in (_QUOTE, _END, _TITLE, _POSTSCRIPT, _NO_COMMA, _SECTIONS, _BULLETS, _HIGHLIGHTS, _PARAGRAPHS,
              _FIRST_WORD):
    _add(_JSON, other, "the response must be a bare JSON document")

# A fixed one-line answer ("My answer is yes.") is mixed case and has no layout of its own.
_add(_OPTIONS, _LOWER, "the answer options start with a capital letter")
_add(_OPTIONS, _CAPITAL, "the answer options are not all capitals")
_add(_OPTIONS, _END, "the response must be one of the fixed answers, not end with another phrase")
for other in (_PARAGRAPHS, _FIRST_WORD, _SECTIONS, _BULLETS):
    _add(_OPTIONS, other, "a fixed one-line answer has no paragraphs, sections or lists")

# Two responses: a wrapper or a fixed ending is ambiguous, and paragraph rules cannot say which response
# they count in ("******" also contains the "***" paragraph divider).
for other in (_QUOTE, _END, _PARAGRAPHS, _FIRST_WORD):
    _add(_TWO, other, "ambiguous across the two responses")

# Repeating the request fixes how the response starts.
_add(_REPEAT, _QUOTE, "the response must start with the request, not a quotation mark")
_add(_REPEAT, _FIRST_WORD, "the first paragraph must start with the request")

# Two different definitions of a paragraph.
_add(_PARAGRAPHS, _FIRST_WORD, "paragraphs separated by *** versus by blank lines")

# Section headers are "Section 1" or "SECTION 1".
_add(_LOWER, _SECTIONS, "section headers contain capital letters")

CONFLICTS: frozenset[frozenset[str]] = frozenset(_REASONS)
"""Unordered id pairs that must not share one instruction (same-id pairs are handled by :func:`conflicts`)."""


def conflicts(id_a: str, id_b: str) -> bool:
    """True when the two constraint ids must not appear in the same instruction (the same id twice included)."""
    return id_a == id_b or frozenset((id_a, id_b)) in CONFLICTS


def conflict_reason(id_a: str, id_b: str) -> str | None:
    """Why the pair conflicts, or None when it does not."""
    if id_a == id_b:
        return "the same constraint twice"
    return _REASONS.get(frozenset((id_a, id_b)))


def conflicting_ids(instruction_id: str) -> frozenset[str]:
    """Every id that conflicts with ``instruction_id``, itself included."""
    out = {instruction_id}
    for pair in CONFLICTS:
        if instruction_id in pair:
            out |= pair
    return frozenset(out)


def compatible(ids: Iterable[str]) -> bool:
    """True when no two of the ids conflict (which also means no id is repeated)."""
    ids = list(ids)
    return not any(conflicts(a, b) for a, b in combinations(ids, 2))
