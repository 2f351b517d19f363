"""Hard constraints: the 25 IFEval instruction types, each verified by code.

Every constraint is a small class registered under its IFEval instruction id (``category:name``).  The interface
follows IFEval's registry:

* ``build_description(**kwargs) -> str`` fixes the arguments and returns the instruction text.  An argument that
  is missing or None is drawn at random from the instance's own ``random.Random`` (pass ``rng=`` or ``seed=`` to
  the constructor), so synthesis is reproducible.
* ``get_instruction_args() -> dict`` returns the arguments under IFEval's names; feeding them to a fresh
  instance's ``build_description`` rebuilds the same constraint.
* ``get_instruction_args_keys() -> list[str]`` names the accepted arguments.
* ``check_following(response) -> bool`` is the verdict.

The verdicts reproduce the IFEval reference implementation, quirks included, because IFEval scores are only
comparable when the checks are the same.  Where we depart from it, the class docstring says so; the departures
only concern arguments IFEval never uses (explicit out-of-range values are rejected instead of silently replaced
by random ones, a letter that is not a letter is counted as written).  Several reference regexes backtrack
quadratically on degenerate text (a megabyte of ``[`` or of blank lines); those checks are rewritten to stay
linear while returning the same counts, and tests compare them with the original regexes.
"""

from __future__ import annotations

import json
import random
import re
import string
from typing import Any, ClassVar

from sif_lib.constraints import text as _text

__all__ = [
    "COMPARISON_RELATIONS",
    "HARD_CONSTRAINTS",
    "LANGUAGE_NAMES",
    "HardConstraint",
    "category_of",
    "get_constraint_class",
]

COMPARISON_RELATIONS = ("less than", "at least")

# Languages IFEval draws from, with the names used in instruction text.  Any other langdetect code is accepted
# when given explicitly; its description then names the code.
LANGUAGE_NAMES = {
    "en": "English", "es": "Spanish", "pt": "Portuguese", "ar": "Arabic", "hi": "Hindi", "fr": "French",
    "ru": "Russian", "de": "German", "ja": "Japanese", "it": "Italian", "bn": "Bengali", "uk": "Ukrainian",
    "th": "Thai", "ur": "Urdu", "ta": "Tamil", "te": "Telugu", "bg": "Bulgarian", "ko": "Korean", "pl": "Polish",
    "he": "Hebrew", "fa": "Persian", "vi": "Vietnamese", "ne": "Nepali", "sw": "Swahili", "kn": "Kannada",
    "mr": "Marathi", "gu": "Gujarati", "pa": "Punjabi", "ml": "Malayalam", "fi": "Finnish",
}

# Words drawn for random keyword, forbidden-word and first-word arguments.
_WORDS = (
    "account", "answer", "balance", "bridge", "budget", "campaign", "canvas", "captain", "career", "channel",
    "climate", "coffee", "comfort", "compass", "culture", "customer", "dinner", "distance", "engine", "energy",
    "estate", "factor", "family", "festival", "flavor", "forest", "future", "garden", "harbor", "history",
    "horizon", "island", "journey", "kitchen", "language", "lesson", "library", "market", "memory", "method",
    "mirror", "moment", "mountain", "network", "ocean", "orchard", "painting", "pattern", "pepper", "planet",
    "pocket", "policy", "quality", "rhythm", "river", "rocket", "season", "shadow", "signal", "silver", "simple",
    "solution", "station", "strategy", "student", "summer", "survey", "teacher", "theory", "ticket", "timber",
    "travel", "valley", "village", "volume", "weather", "window", "winter", "wisdom", "yellow",
)

_CONSTRAINED_OPTIONS = ("My answer is yes.", "My answer is no.", "My answer is maybe.")
_END_PHRASES = ("Any other questions?", "Is there anything else I can help with?")
_SECTION_WORDS = ("Section", "SECTION")
_POSTSCRIPT_MARKERS = ("P.S.", "P.P.S")


def _as_int(value: Any, name: str) -> int:
    """Accept an int (or an integral float / digit string, as JSON round trips may produce); reject the rest."""
    if isinstance(value, bool):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if isinstance(value, int):
        out = value
    elif isinstance(value, float) and value.is_integer():
        out = int(value)
    elif isinstance(value, str) and value.strip().lstrip("-").isdigit():
        out = int(value.strip())
    else:
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if out < 0:
        raise ValueError(f"{name} must not be negative, got {out}")
    return out


def _compile_user_pattern(pattern: str, flags: int = 0) -> re.Pattern:
    """IFEval treats keywords and markers as regular expressions; one that does not compile is taken literally."""
    try:
        return re.compile(pattern, flags)
    except re.error:
        return re.compile(re.escape(pattern), flags)


class HardConstraint:
    """Base class: argument handling shared by all verifiers.

    Subclasses set ``instruction_id`` and ``arg_keys`` and implement ``_build(**kwargs) -> str`` and
    ``_check(response) -> bool``.
    """

    instruction_id: ClassVar[str] = ""
    arg_keys: ClassVar[tuple[str, ...]] = ()

    def __init__(self, instruction_id: str | None = None, *, rng: random.Random | None = None,
                 seed: int | None = None) -> None:
        if rng is not None and seed is not None:
            raise ValueError("pass rng or seed, not both")
        if instruction_id is not None and instruction_id != self.instruction_id:
            raise ValueError(f"{type(self).__name__} verifies {self.instruction_id!r}, not {instruction_id!r}")
        self.id = self.instruction_id
        self._rng = rng if rng is not None else random.Random(seed)
        self._description: str | None = None

    @classmethod
    def from_args(cls, kwargs: dict[str, Any] | None = None, *, seed: int | None = 0) -> HardConstraint:
        """A built instance: ``cls(seed=seed)`` followed by ``build_description(**kwargs)``."""
        inst = cls(seed=seed)
        inst.build_description(**(kwargs or {}))
        return inst

    def build_description(self, **kwargs: Any) -> str:
        """Fix the arguments (None or missing ones are drawn at random) and return the instruction text."""
        given = {k: v for k, v in kwargs.items() if v is not None}
        unknown = sorted(set(given) - set(self.arg_keys))
        if unknown:
            raise TypeError(f"{self.instruction_id} takes {list(self.arg_keys)}, got unexpected {unknown}")
        self._description = self._build(**given)
        return self._description

    @property
    def description(self) -> str:
        """The instruction text from the last ``build_description`` call."""
        if self._description is None:
            raise RuntimeError(f"{self.instruction_id}: call build_description() first")
        return self._description

    def get_instruction_args(self) -> dict[str, Any]:
        """The arguments under IFEval's names (``{}`` for constraints without arguments)."""
        self.description  # noqa: B018 - raises when not built
        return {key: getattr(self, "_" + key) for key in self.arg_keys}

    def get_instruction_args_keys(self) -> list[str]:
        return list(self.arg_keys)

    def check_following(self, response: str) -> bool:
        """True when ``response`` satisfies the constraint."""
        if self._description is None:
            raise RuntimeError(f"{self.instruction_id}: call build_description() first")
        if not isinstance(response, str):
            raise TypeError(f"response must be a str, got {type(response).__name__}")
        return bool(self._check(response))

    # -- helpers for subclasses ------------------------------------------------------------------------------

    def _count_arg(self, value: Any, name: str, low: int, high: int) -> int:
        return self._rng.randint(low, high) if value is None else _as_int(value, name)

    def _relation_arg(self, value: Any, name: str) -> str:
        if value is None:
            return self._rng.choice(COMPARISON_RELATIONS)
        if value not in COMPARISON_RELATIONS:
            raise ValueError(f"{name} must be one of {COMPARISON_RELATIONS}, got {value!r}")
        return value

    def _words(self, k: int) -> list[str]:
        return self._rng.sample(_WORDS, k)

    def _build(self, **kwargs: Any) -> str:  # pragma: no cover - abstract
        raise NotImplementedError

    def _check(self, response: str) -> bool:  # pragma: no cover - abstract
        raise NotImplementedError

    def __repr__(self) -> str:
        args = self.get_instruction_args() if self._description is not None else "unbuilt"
        return f"{type(self).__name__}({args})"


def _compare(count: int, relation: str, threshold: int) -> bool:
    return count < threshold if relation == "less than" else count >= threshold


# ---------------------------------------------------------------------------------------------------------------
# keywords


class KeywordExistence(HardConstraint):
    """``keywords:existence``: every keyword occurs, case-insensitively.

    As in IFEval a keyword is searched as a regular expression and may match inside a longer word ("cat" is
    found in "category").  Keywords are kept sorted, as IFEval does.  A single string counts as one keyword.
    """

    instruction_id = "keywords:existence"
    arg_keys = ("keywords",)

    def _build(self, keywords=None):
        if not keywords:
            keywords = self._words(2)
        elif isinstance(keywords, str):
            keywords = [keywords]
        self._keywords = sorted(str(k) for k in keywords)
        self._patterns = [_compile_user_pattern(k, re.IGNORECASE) for k in self._keywords]
        return "Include the keywords " + ", ".join(repr(k) for k in self._keywords) + " in your response."

    def _check(self, response):
        return all(p.search(response) for p in self._patterns)


class KeywordFrequency(HardConstraint):
    """``keywords:frequency``: a keyword occurs fewer than / at least N times (case-insensitive regex matches,
    so occurrences inside longer words count, as in IFEval)."""

    instruction_id = "keywords:frequency"
    arg_keys = ("keyword", "frequency", "relation")

    def _build(self, keyword=None, frequency=None, relation=None):
        self._keyword = keyword.strip() if isinstance(keyword, str) and keyword.strip() else self._words(1)[0]
        self._frequency = self._count_arg(frequency, "frequency", 1, 3)
        self._relation = self._relation_arg(relation, "relation")
        self._pattern = _compile_user_pattern(self._keyword, re.IGNORECASE)
        return (f"In your response, the word {self._keyword} should appear {self._relation} "
                f"{self._frequency} times.")

    def _check(self, response):
        count = sum(1 for _ in self._pattern.finditer(response))
        return _compare(count, self._relation, self._frequency)


class ForbiddenWords(HardConstraint):
    """``keywords:forbidden_words``: none of the words occurs as a whole word (``\\bword\\b``, case-insensitive).

    Duplicates are dropped and the list sorted, as IFEval does.
    """

    instruction_id = "keywords:forbidden_words"
    arg_keys = ("forbidden_words",)

    def _build(self, forbidden_words=None):
        if not forbidden_words:
            forbidden_words = self._words(2)
        elif isinstance(forbidden_words, str):
            forbidden_words = [forbidden_words]
        self._forbidden_words = sorted({str(w) for w in forbidden_words})
        self._patterns = [_compile_user_pattern(r"\b" + w + r"\b", re.IGNORECASE) for w in self._forbidden_words]
        return ("Do not include the words " + ", ".join(repr(w) for w in self._forbidden_words)
                + " anywhere in your response.")

    def _check(self, response):
        return not any(p.search(response) for p in self._patterns)


class LetterFrequency(HardConstraint):
    """``keywords:letter_frequency``: a letter occurs fewer than / at least N times, ignoring case.

    IFEval replaces an argument that is not a single letter (IFEval items 1122 and 1129 ask for ``#`` and ``!``)
    by a random letter, so its verdict there changes from run to run.  Here the given character is counted as
    written: ``letter="#"`` counts ``#`` characters.  The argument must be one character after stripping
    whitespace; an empty or missing one is drawn at random from a-z.
    """

    instruction_id = "keywords:letter_frequency"
    arg_keys = ("letter", "let_frequency", "let_relation")

    def _build(self, letter=None, let_frequency=None, let_relation=None):
        if letter is None or not str(letter).strip():
            letter = self._rng.choice(string.ascii_lowercase)
        letter = str(letter).strip()
        if len(letter) != 1:
            raise ValueError(f"letter must be a single character, got {letter!r}")
        self._letter = letter.lower()
        self._let_frequency = self._count_arg(let_frequency, "let_frequency", 1, 10)
        self._let_relation = self._relation_arg(let_relation, "let_relation")
        return (f"In your response, the letter {self._letter} should appear {self._let_relation} "
                f"{self._let_frequency} times.")

    def _check(self, response):
        return _compare(response.lower().count(self._letter), self._let_relation, self._let_frequency)


# ---------------------------------------------------------------------------------------------------------------
# language and case


class ResponseLanguage(HardConstraint):
    """``language:response_language``: langdetect assigns the response the given language code.

    As in IFEval, a response langdetect cannot classify (no letters at all) passes.
    """

    instruction_id = "language:response_language"
    arg_keys = ("language",)

    def _build(self, language=None):
        if language is None:
            language = self._rng.choice(sorted(LANGUAGE_NAMES))
        if not isinstance(language, str) or not language.strip():
            raise ValueError(f"language must be a language code such as 'en', got {language!r}")
        self._language = language.strip()
        name = LANGUAGE_NAMES.get(self._language, self._language)
        return f"Write your entire response in {name}; no other language is allowed."

    def _check(self, response):
        detected = _text.detect_language(response)
        return detected is None or detected == self._language


class EnglishCapital(HardConstraint):
    """``change_case:english_capital``: the response is all capitals (``str.isupper``) and detected as English.

    As in IFEval, an all-capitals response langdetect cannot classify passes.
    """

    instruction_id = "change_case:english_capital"

    def _build(self):
        return "Your entire response should be in English and in capital letters only."

    def _check(self, response):
        if not response.isupper():
            return False
        detected = _text.detect_language(response)
        return detected is None or detected == "en"


class EnglishLowercase(HardConstraint):
    """``change_case:english_lowercase``: the response is all lowercase (``str.islower``) and detected as English.

    As in IFEval, an all-lowercase response langdetect cannot classify passes.
    """

    instruction_id = "change_case:english_lowercase"

    def _build(self):
        return "Your entire response should be in English and in lowercase letters only; no capital letters."

    def _check(self, response):
        if not response.islower():
            return False
        detected = _text.detect_language(response)
        return detected is None or detected == "en"


class CapitalWordFrequency(HardConstraint):
    """``change_case:capital_word_frequency``: fewer than / at least N all-capital words.

    Words are NLTK ``word_tokenize`` tokens, as in IFEval, so ``DON'T`` counts twice (``DO`` + ``N'T``) and
    ``NASA's`` once.
    """

    instruction_id = "change_case:capital_word_frequency"
    arg_keys = ("capital_frequency", "capital_relation")

    def _build(self, capital_frequency=None, capital_relation=None):
        self._capital_frequency = self._count_arg(capital_frequency, "capital_frequency", 1, 20)
        self._capital_relation = self._relation_arg(capital_relation, "capital_relation")
        return (f"In your response, words written entirely in capital letters should appear "
                f"{self._capital_relation} {self._capital_frequency} times.")

    def _check(self, response):
        count = _text.count_capital_words(response)
        return _compare(count, self._capital_relation, self._capital_frequency)


# ---------------------------------------------------------------------------------------------------------------
# length


class NumberOfSentences(HardConstraint):
    """``length_constraints:number_sentences``: fewer than / at least N Punkt English sentences."""

    instruction_id = "length_constraints:number_sentences"
    arg_keys = ("num_sentences", "relation")

    def _build(self, num_sentences=None, relation=None):
        self._num_sentences = self._count_arg(num_sentences, "num_sentences", 1, 20)
        self._relation = self._relation_arg(relation, "relation")
        return f"Your response should contain {self._relation} {self._num_sentences} sentences."

    def _check(self, response):
        return _compare(_text.count_sentences(response), self._relation, self._num_sentences)


class NumberOfWords(HardConstraint):
    """``length_constraints:number_words``: fewer than / at least N words (``\\w+`` tokens)."""

    instruction_id = "length_constraints:number_words"
    arg_keys = ("num_words", "relation")

    def _build(self, num_words=None, relation=None):
        self._num_words = self._count_arg(num_words, "num_words", 100, 500)
        self._relation = self._relation_arg(relation, "relation")
        return f"Answer with {self._relation} {self._num_words} words."

    def _check(self, response):
        return _compare(_text.count_words(response), self._relation, self._num_words)


_DIVIDER_SPLIT = re.compile(r"\s?\*\*\*\s?")


class NumberOfParagraphs(HardConstraint):
    """``length_constraints:number_paragraphs``: exactly N paragraphs separated by the markdown divider ``***``.

    As in IFEval, an empty piece before the first or after the last divider is ignored, while an empty
    paragraph between two dividers fails the check.
    """

    instruction_id = "length_constraints:number_paragraphs"
    arg_keys = ("num_paragraphs",)

    def _build(self, num_paragraphs=None):
        self._num_paragraphs = self._count_arg(num_paragraphs, "num_paragraphs", 1, 5)
        return (f"Your response should have {self._num_paragraphs} paragraphs, separated from each other by "
                f"the markdown divider ***")

    def _check(self, response):
        pieces = _DIVIDER_SPLIT.split(response)
        count = len(pieces)
        last = len(pieces) - 1
        for i, piece in enumerate(pieces):
            if not piece.strip():
                if i in (0, last):
                    count -= 1
                else:
                    return False
        return count == self._num_paragraphs


_FIRST_WORD_STOP = frozenset(".,?!'\"")


class NthParagraphFirstWord(HardConstraint):
    """``length_constraints:nth_paragraph_first_word``: exactly N paragraphs separated by blank lines
    (``"\\n\\n"``), and paragraph n starts with the given word.

    The first word is compared lowercased, after dropping leading quotes and cutting at the first of
    ``. , ? ! ' "``, as IFEval does.  IFEval counts non-empty paragraphs but indexes the raw split, which we
    keep.  Departure: an explicit ``nth_paragraph`` outside 1..num_paragraphs is rejected (IFEval silently
    draws a random one), and the random draw stays within 1..num_paragraphs.
    """

    instruction_id = "length_constraints:nth_paragraph_first_word"
    arg_keys = ("num_paragraphs", "nth_paragraph", "first_word")

    def _build(self, num_paragraphs=None, nth_paragraph=None, first_word=None):
        self._num_paragraphs = self._count_arg(num_paragraphs, "num_paragraphs", 1, 5)
        if nth_paragraph is None:
            self._nth_paragraph = self._rng.randint(1, max(1, self._num_paragraphs))
        else:
            self._nth_paragraph = _as_int(nth_paragraph, "nth_paragraph")
            if not 1 <= self._nth_paragraph <= self._num_paragraphs:
                raise ValueError(f"nth_paragraph must be in 1..{self._num_paragraphs}, got {self._nth_paragraph}")
        self._first_word = (str(first_word) if first_word else self._words(1)[0]).lower()
        return (f"There should be {self._num_paragraphs} paragraphs, separated from each other by a blank line "
                f"(two newline characters) and by nothing else. Paragraph {self._nth_paragraph} must start "
                f"with the word {self._first_word}.")

    def _check(self, response):
        paragraphs = response.split("\n\n")
        count = sum(1 for p in paragraphs if p.strip())
        if self._nth_paragraph > count:
            return False
        paragraph = paragraphs[self._nth_paragraph - 1].strip()
        if not paragraph:
            return False
        word = paragraph.split()[0].lstrip("'").lstrip('"')
        first = []
        for ch in word:
            if ch in _FIRST_WORD_STOP:
                break
            first.append(ch.lower())
        return count == self._num_paragraphs and "".join(first) == self._first_word


# ---------------------------------------------------------------------------------------------------------------
# detectable content


def _count_placeholders(response: str) -> int:
    """Non-overlapping ``\\[.*?\\]`` matches: a ``[`` closed by the first ``]`` on the same line.

    A linear scan; the regex itself is quadratic on a long line of unclosed brackets.  ``close`` and ``nl`` cache
    the next ``]`` and newline found so far (-1: none left in the text).
    """
    count = pos = 0
    close = nl = 0
    while True:
        i = response.find("[", pos)
        if i < 0:
            return count
        if close != -1 and close <= i:
            close = response.find("]", i + 1)
        if close == -1:
            return count
        if nl != -1 and nl <= i:
            nl = response.find("\n", i + 1)
        if nl == -1 or close < nl:
            count += 1
            pos = close + 1
        else:
            pos = nl + 1


class NumberOfPlaceholders(HardConstraint):
    """``detectable_content:number_placeholders``: at least N square-bracket placeholders such as ``[name]``
    (a ``[`` closed on the same line; ``[]`` counts, as in IFEval)."""

    instruction_id = "detectable_content:number_placeholders"
    arg_keys = ("num_placeholders",)

    def _build(self, num_placeholders=None):
        self._num_placeholders = self._count_arg(num_placeholders, "num_placeholders", 1, 4)
        return (f"Your response must contain at least {self._num_placeholders} "
                "placeholders in square brackets, such as [address].")

    def _check(self, response):
        return _count_placeholders(response) >= self._num_placeholders


class Postscript(HardConstraint):
    """``detectable_content:postscript``: the response contains a postscript starting with the marker.

    For ``P.S.`` and ``P.P.S`` the lowercased response must contain ``p.s.`` / ``p.p.s`` (one optional space
    after each inner period); any other marker is searched (lowercased) as a regular expression, as in IFEval.
    IFEval's pattern also allows leading whitespace and any trailing text, which never changes whether it
    matches, so only the marker itself is searched.  The marker may appear anywhere, not only at the end.
    """

    instruction_id = "detectable_content:postscript"
    arg_keys = ("postscript_marker",)

    def _build(self, postscript_marker=None):
        marker = postscript_marker.strip() if isinstance(postscript_marker, str) else postscript_marker
        self._postscript_marker = marker or self._rng.choice(_POSTSCRIPT_MARKERS)
        if self._postscript_marker == "P.P.S":
            self._pattern = re.compile(r"p\.\s?p\.\s?s", re.MULTILINE)
        elif self._postscript_marker == "P.S.":
            self._pattern = re.compile(r"p\.\s?s\.", re.MULTILINE)
        else:
            self._pattern = _compile_user_pattern(self._postscript_marker.lower(), re.MULTILINE)
        return f"At the end of your response, add a postscript that starts with {self._postscript_marker}"

    def _check(self, response):
        return self._pattern.search(response.lower()) is not None


# ---------------------------------------------------------------------------------------------------------------
# detectable format


# IFEval counts bullets with ``^\s*\*[^\*].*$`` and ``^\s*-.*$`` (MULTILINE).  Their leading ``\s*`` may run across
# blank lines, which makes the search quadratic on long runs of blank lines.  Skipping only whitespace other than
# newlines gives the same count: a match that would start on a blank line starts instead at the next line start,
# reaching the same bullet and ending at the same place, and the next search only depends on where a match ends.
_STAR_BULLET = re.compile(r"^[^\S\n]*\*[^\*].*$", re.MULTILINE)
_DASH_BULLET = re.compile(r"^[^\S\n]*-.*$", re.MULTILINE)


def _count_bullets(text: str) -> int:
    """IFEval's bullet count: ``*`` lines (not ``**``) plus ``-`` lines, found independently and added."""
    return sum(1 for _ in _STAR_BULLET.finditer(text)) + sum(1 for _ in _DASH_BULLET.finditer(text))


class NumberOfBulletLists(HardConstraint):
    """``detectable_format:number_bullet_lists``: exactly N markdown bullet lines (``* item`` or ``- item``).

    As in IFEval, every line whose first non-space character is ``-`` counts (so a ``---`` rule counts too),
    and ``*`` counts unless followed by another ``*`` (which rules out ``**bold**`` lines).
    """

    instruction_id = "detectable_format:number_bullet_lists"
    arg_keys = ("num_bullets",)

    def _build(self, num_bullets=None):
        self._num_bullets = self._count_arg(num_bullets, "num_bullets", 1, 5)
        return (f"Your answer must contain exactly {self._num_bullets} bullet points, written as markdown "
                f"bullets such as:\n* This is point 1.\n* This is point 2")

    def _check(self, response):
        return _count_bullets(response) == self._num_bullets


class ConstrainedResponse(HardConstraint):
    """``detectable_format:constrained_response``: the response contains one of "My answer is yes.",
    "My answer is no." or "My answer is maybe." (anywhere, case-sensitive, as in IFEval)."""

    instruction_id = "detectable_format:constrained_response"

    def _build(self):
        return "Answer with one of the following options: " + ", ".join(f'"{o}"' for o in _CONSTRAINED_OPTIONS)

    def _check(self, response):
        response = response.strip()
        return any(option in response for option in _CONSTRAINED_OPTIONS)


# IFEval's patterns, with the text between the stars captured: a span counts when that text is not blank.
_SINGLE_HIGHLIGHT = re.compile(r"\*([^\n\*]*)\*")
_DOUBLE_HIGHLIGHT = re.compile(r"\*\*([^\n\*]*)\*\*")


class NumberOfHighlightedSections(HardConstraint):
    """``detectable_format:number_highlighted_sections``: at least N non-empty ``*highlighted*`` spans.

    As in IFEval, ``*x*`` spans and ``**x**`` spans are counted separately and added, on one line each.
    """

    instruction_id = "detectable_format:number_highlighted_sections"
    arg_keys = ("num_highlights",)

    def _build(self, num_highlights=None):
        self._num_highlights = self._count_arg(num_highlights, "num_highlights", 1, 4)
        return (f"Highlight at least {self._num_highlights} sections of your answer with markdown, "
                f"i.e. *highlighted section*.")

    def _check(self, response):
        count = sum(map(bool, map(str.strip, _SINGLE_HIGHLIGHT.findall(response))))
        count += sum(map(bool, map(str.strip, _DOUBLE_HIGHLIGHT.findall(response))))
        return count >= self._num_highlights


class MultipleSections(HardConstraint):
    """``detectable_format:multiple_sections``: at least N section headers "<splitter> <number>".

    The splitter (e.g. ``Section``) is used as a case-sensitive regular expression, as in IFEval.
    """

    instruction_id = "detectable_format:multiple_sections"
    arg_keys = ("section_spliter", "num_sections")

    def _build(self, section_spliter=None, num_sections=None):
        word = section_spliter.strip() if isinstance(section_spliter, str) else section_spliter
        self._section_spliter = word or self._rng.choice(_SECTION_WORDS)
        self._num_sections = self._count_arg(num_sections, "num_sections", 1, 5)
        self._pattern = _compile_user_pattern(r"\s?" + self._section_spliter + r"\s?\d+\s?")
        return (f"Your response must have {self._num_sections} sections. Mark the beginning of each section "
                f"with {self._section_spliter} X, such as:\n{self._section_spliter} 1\n[content of section 1]\n"
                f"{self._section_spliter} 2\n[content of section 2]")

    def _check(self, response):
        return len(self._pattern.split(response)) - 1 >= self._num_sections


class JsonFormat(HardConstraint):
    """``detectable_format:json_format``: the whole response parses as JSON, optionally inside a markdown code
    fence (```` ```json ````, ```` ```Json ````, ```` ```JSON ```` or a bare ```` ``` ````)."""

    instruction_id = "detectable_format:json_format"

    def _build(self):
        return "Wrap your entire output in JSON format. You may use markdown code ticks such as ```."

    def _check(self, response):
        body = response.strip()
        for fence in ("```json", "```Json", "```JSON", "```"):
            body = body.removeprefix(fence)
        body = body.removesuffix("```").strip()
        try:
            json.loads(body)
        except ValueError:
            return False
        except RecursionError:
            return False
        return True


class Title(HardConstraint):
    """``detectable_format:title``: a title in double angular brackets such as ``<<poem of joy>>``.

    Same verdict as IFEval's ``<<[^\\n]+>>`` search: on each line the greedy match runs from the first ``<<`` to
    the last ``>>``, and it must contain something besides brackets and spaces.  Computed per line, linearly.
    """

    instruction_id = "detectable_format:title"

    def _build(self):
        return "Your answer must contain a title wrapped in double angular brackets, such as <<poem of joy>>."

    def _check(self, response):
        if "<<" not in response:
            return False
        for line in response.split("\n"):
            start = line.find("<<")
            if start < 0:
                continue
            stop = line.rfind(">>")
            if stop >= start + 3 and line[start:stop + 2].lstrip("<").rstrip(">").strip():
                return True
        return False


# ---------------------------------------------------------------------------------------------------------------
# combination, start/end, punctuation


class TwoResponses(HardConstraint):
    """``combination:two_responses``: exactly two different responses separated by ``******``.

    Empty pieces are allowed only before the first or after the last separator, as in IFEval.
    """

    instruction_id = "combination:two_responses"

    def _build(self):
        return "Give two different responses. Separate the two responses, and only them, with six asterisks: ******."

    def _check(self, response):
        pieces = response.split("******")
        last = len(pieces) - 1
        kept = []
        for i, piece in enumerate(pieces):
            if piece.strip():
                kept.append(piece)
            elif i not in (0, last):
                return False
        return len(kept) == 2 and kept[0].strip() != kept[1].strip()


class RepeatPrompt(HardConstraint):
    """``combination:repeat_prompt``: the response starts with the request, repeated word for word
    (case-insensitive, ignoring surrounding whitespace).  ``prompt_to_repeat`` is required."""

    instruction_id = "combination:repeat_prompt"
    arg_keys = ("prompt_to_repeat",)

    def _build(self, prompt_to_repeat=None):
        if not prompt_to_repeat or not isinstance(prompt_to_repeat, str):
            raise ValueError("combination:repeat_prompt needs prompt_to_repeat (the request to repeat)")
        self._prompt_to_repeat = prompt_to_repeat
        self._prefix = prompt_to_repeat.strip().lower()
        return ("First repeat the request word for word without change, then give your answer (1. do not say "
                "any words or characters before repeating the request; 2. the request you need to repeat does "
                "not include this sentence)")

    def _check(self, response):
        return response.strip().lower().startswith(self._prefix)


class EndPhrase(HardConstraint):
    """``startend:end_checker``: the response ends with the phrase (case-insensitive; surrounding whitespace
    and double quotes around the response are ignored, as in IFEval)."""

    instruction_id = "startend:end_checker"
    arg_keys = ("end_phrase",)

    def _build(self, end_phrase=None):
        phrase = end_phrase.strip() if isinstance(end_phrase, str) else end_phrase
        self._end_phrase = phrase or self._rng.choice(_END_PHRASES)
        self._suffix = self._end_phrase.strip().lower()
        return f"Finish your response with this exact phrase: {self._end_phrase} No other words should follow it."

    def _check(self, response):
        return response.strip().strip('"').lower().endswith(self._suffix)


class Quotation(HardConstraint):
    """``startend:quotation``: the whole response is wrapped in double quotation marks (ASCII ``"``)."""

    instruction_id = "startend:quotation"

    def _build(self):
        return "Wrap your entire response in double quotation marks."

    def _check(self, response):
        body = response.strip()
        return len(body) > 1 and body[0] == '"' and body[-1] == '"'


class NoComma(HardConstraint):
    """``punctuation:no_comma``: no ASCII comma anywhere (other comma characters such as ``，`` are allowed,
    as in IFEval)."""

    instruction_id = "punctuation:no_comma"

    def _build(self):
        return "Do not use any commas anywhere in your response."

    def _check(self, response):
        return "," not in response


# ---------------------------------------------------------------------------------------------------------------
# registry

HARD_CONSTRAINTS: dict[str, type[HardConstraint]] = {
    cls.instruction_id: cls
    for cls in (
        KeywordExistence, KeywordFrequency, ForbiddenWords, LetterFrequency,
        ResponseLanguage,
        NumberOfSentences, NumberOfParagraphs, NumberOfWords, NthParagraphFirstWord,
        NumberOfPlaceholders, Postscript,
        NumberOfBulletLists, ConstrainedResponse, NumberOfHighlightedSections, MultipleSections, JsonFormat,
        Title,
        TwoResponses, RepeatPrompt,
        EndPhrase, Quotation,
        CapitalWordFrequency, EnglishCapital, EnglishLowercase,
        NoComma,
    )
}


def category_of(instruction_id: str) -> str:
    """The category of an instruction id: the part before the colon (``"keywords:existence"`` -> ``"keywords"``)."""
    return instruction_id.split(":", 1)[0]


def get_constraint_class(instruction_id: str) -> type[HardConstraint]:
    """The verifier class for an id; ValueError naming the id when it is not a hard constraint."""
    try:
        return HARD_CONSTRAINTS[instruction_id]
    except KeyError:
        raise ValueError(f"unknown hard constraint id {instruction_id!r}") from None
