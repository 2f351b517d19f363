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

IFBench ids (:mod:`~sif_lib.constraints.ifbench`, which synthesis draws with ``synthesis.ifbench_ids``) follow
the same idea with a simplification: instead of a table over all of their pairs, a few rules, each erring towards
keeping a pair apart.

* Two IFBench ids of one family (the part before the colon: ``count``, ``format``, ``ratio``, ``sentence``,
  ``words`` ...) conflict, whatever the pair: a family's rules govern one aspect of the response, where many
  pairs contradict (``format:newline`` against ``format:line_indent``); keeping every such pair apart spares a
  table of which ones do, at the price of some pairs that would have been fine.
* An IFBench id that governs every word, line or character of the response, or fixes its whole form
  (:data:`IFBENCH_ALONE`), conflicts with every other hard id.
* IFEval's whole-form ids (JSON, two responses, repeat the request, fixed answers) and the response language
  conflict with every IFBench id: IFBench's checks read one English prose response.
* A short table (:data:`IFBENCH_CONFLICTS`) names the IFEval-IFBench pairs that state two rules on one quantity
  or contradict outright (a word count twice, letter case, bullet points, no commas against every punctuation mark).

Soft constraints declare their conflicts with IFEval ids only; an IFBench id borrows those of the IFEval ids named
for it in :data:`IFBENCH_SOFT_PROXIES` (every IFBench check reads English words, so each one borrows
``keywords:existence``'s conflict with a response in another language).
"""

from __future__ import annotations

from collections.abc import Iterable
from itertools import combinations

from sif_lib.constraints.hard import HARD_CONSTRAINTS, category_of
from sif_lib.constraints.ifbench import IFBENCH_CONSTRAINTS

__all__ = ["CONFLICTS", "IFBENCH_ALONE", "IFBENCH_CONFLICTS", "IFBENCH_SOFT_PROXIES", "compatible",
           "conflicting_ids", "conflicts"]

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
_WORDS = "length_constraints:number_words"
_SENTENCES = "length_constraints:number_sentences"
_KEYWORDS = "keywords:existence"

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
"""Unordered IFEval id pairs that must not share one instruction (same-id pairs are handled by :func:`conflicts`)."""


# ---------------------------------------------------------------------------------------------------------------
# IFBench ids: rules by family and form, and a short table of pairs with IFEval ids

_IFBENCH = frozenset(IFBENCH_CONSTRAINTS)


IFBENCH_ALONE: frozenset[str] = frozenset({
    # every word: its first letter, vowels, consonants, length, syllables
    "words:alphabet", "words:consonants", "words:vowel", "words:prime_lengths", "words:no_consecutive",
    "words:odd_even_syllables",
    # every character or line, or the whole form of the response
    "format:no_whitespace", "format:newline", "format:output_template", "format:options", "ratio:sentence_words",
    *(i for i in _IFBENCH if category_of(i) in ("custom", "repeat")),
})
"""IFBench ids that leave no room for another hard rule: each governs every word, line or character of the
response, or fixes its whole form (a template, three sentences, a task of its own, a copy of the request)."""

# IFEval ids that conflict with every IFBench id.
_WITH_EVERY_IFBENCH = {
    _JSON: "IFBench's checks read prose, not a bare JSON document",
    _TWO: "IFBench's checks would read both responses as one",
    _REPEAT: "IFBench's checks would also read the repeated request",
    _OPTIONS: "a fixed one-line answer leaves no room for IFBench's rules",
    _LANGUAGE: "IFBench's checks read English words and sentences",
}

_IFBENCH_REASONS: dict[frozenset[str], str] = {}


def _add_ifbench(a: str, b: str, reason: str) -> None:
    _IFBENCH_REASONS[frozenset((a, b))] = reason


for _case in (_LOWER, _CAPITAL, _CAPITAL_WORDS):
    _add_ifbench(_case, "format:title_case", "two rules on letter case")
_add_ifbench(_WORDS, "count:word_count_range", "two rules on the word count")
_add_ifbench(_WORDS, "count:unique_word_count", "a word limit can leave too few words for the unique-word count")
for _other in ("sentence:keyword", "words:keywords_specific_position"):
    _add_ifbench(_SENTENCES, _other, "a sentence limit can end before the sentence the keyword must be in")
for _other in ("format:sub-bullets", "format:no_bullets_bullets", "format:list"):
    _add_ifbench(_BULLETS, _other, "two rules on bullet points")
_add_ifbench(_NO_COMMA, "count:punctuation", "every punctuation mark includes the comma")

IFBENCH_CONFLICTS: frozenset[frozenset[str]] = frozenset(_IFBENCH_REASONS)
"""Unordered IFEval-IFBench id pairs that must not share one instruction, beyond the rules."""

IFBENCH_SOFT_PROXIES: dict[str, tuple[str, ...]] = {
    instruction_id: (_KEYWORDS,) for instruction_id in IFBENCH_CONSTRAINTS}
"""For each IFBench id, the IFEval ids whose declared soft conflicts it shares."""
for _ids, _proxies in (
        (("count:word_count_range", "count:unique_word_count"), (_WORDS,)),
        (("count:words_japanese",), (_LANGUAGE,)),
        (("format:title_case",), (_CAPITAL,)),
        (("format:sub-bullets", "format:no_bullets_bullets", "format:list"), (_BULLETS,)),
        (("format:newline", "format:no_whitespace"), (_PARAGRAPHS, _BULLETS, _WORDS)),
        (("format:line_indent", "words:paragraph_last_first"), (_PARAGRAPHS,)),
        (("format:thesis",), (_SECTIONS, _HIGHLIGHTS)),
        (("format:output_template",), (_JSON,)),
        (("sentence:keyword", "words:keywords_specific_position", "sentence:increment",
          "sentence:alliteration_increment", "ratio:sentence_type", "ratio:sentence_balance",
          "ratio:sentence_words"), (_SENTENCES,)),
):
    for _id in _ids:
        IFBENCH_SOFT_PROXIES[_id] = (_KEYWORDS, *_proxies)


def _ifbench_reason(id_a: str, id_b: str) -> str | None:
    a_ifbench, b_ifbench = id_a in _IFBENCH, id_b in _IFBENCH
    if not (a_ifbench or b_ifbench):
        return None
    reason = _IFBENCH_REASONS.get(frozenset((id_a, id_b)))
    if reason is not None:
        return reason
    for alone in (id_a, id_b):
        if alone in IFBENCH_ALONE:
            return f"{alone} leaves no room for another hard rule"
    if a_ifbench and b_ifbench:
        family = category_of(id_a)
        return f"two IFBench rules of the {family!r} family" if family == category_of(id_b) else None
    return _WITH_EVERY_IFBENCH.get(id_b if a_ifbench else id_a)


def conflicts(id_a: str, id_b: str) -> bool:
    """True when the two constraint ids must not appear in the same instruction (the same id twice included)."""
    return id_a == id_b or frozenset((id_a, id_b)) in CONFLICTS or _ifbench_reason(id_a, id_b) is not None


def conflict_reason(id_a: str, id_b: str) -> str | None:
    """Why the pair conflicts, or None when it does not."""
    if id_a == id_b:
        return "the same constraint twice"
    return _REASONS.get(frozenset((id_a, id_b))) or _ifbench_reason(id_a, id_b)


def conflicting_ids(instruction_id: str) -> frozenset[str]:
    """Every IFEval or IFBench id that conflicts with ``instruction_id``, itself included."""
    out = {instruction_id}
    for pair in CONFLICTS:
        if instruction_id in pair:
            out |= pair
    out.update(other for other in (*HARD_CONSTRAINTS, *IFBENCH_CONSTRAINTS)
               if _ifbench_reason(instruction_id, other) is not None)
    return frozenset(out)


def compatible(ids: Iterable[str]) -> bool:
    """True when no two of the ids conflict (which also means no id is repeated)."""
    ids = list(ids)
    return not any(conflicts(a, b) for a, b in combinations(ids, 2))
