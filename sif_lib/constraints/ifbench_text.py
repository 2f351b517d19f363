"""Offline text resources the IFBench verifiers need beyond :mod:`sif_lib.constraints.text`.

* **Stop words** are NLTK's English stop-word list (NLTK took it from the Snowball project's English list),
  held here as a literal without its apostrophe forms (``don't``, ``you're`` ...): the one check that uses it
  compares ``\\w+`` tokens, which never contain an apostrophe, so it counts the same as with NLTK's corpus and
  needs no NLTK data.
* **Syllables** come from the dictionary that the ``syllapy`` package ships, read from its data file without
  importing the package, with syllapy's rules for words the dictionary lacks.
* **Emoji** are the single code points in the ``emoji`` package's table.
* **Part-of-speech tags** come from NLTK's averaged perceptron tagger, looked up on NLTK's data path.

Nothing is downloaded.  A missing package or data file raises :class:`MissingResourceError` naming it.  The
module also holds what the IFBench verifier modules share: :class:`FixedInstruction` (a verifier without
arguments) and the punctuation helpers.
"""

from __future__ import annotations

import csv
import importlib.util
import re
import string
from functools import lru_cache
from pathlib import Path
from typing import ClassVar

from sif_lib.constraints.hard import HardConstraint

__all__ = [
    "ENGLISH_STOP_WORDS",
    "STRIP_CHARS",
    "FixedInstruction",
    "MissingResourceError",
    "count_stop_words",
    "count_syllables",
    "drop_punctuation",
    "first_token_tag",
    "is_emoji",
    "require",
]


class MissingResourceError(LookupError):
    """A package or data file a verifier needs is not installed; the message names it and how to get it."""


# What IFBench strips from the ends of a word: ASCII punctuation and spaces.
STRIP_CHARS = string.punctuation + " "
_NO_PUNCTUATION = str.maketrans("", "", string.punctuation)


def drop_punctuation(text: str) -> str:
    """``text`` without any ASCII punctuation character."""
    return text.translate(_NO_PUNCTUATION)


class FixedInstruction(HardConstraint):
    """An IFBench verifier without arguments: ``text`` is its instruction.  ``needs`` names the resource its
    check loads (see :func:`require`), if any."""

    text: ClassVar[str] = ""
    needs: ClassVar[str | None] = None

    def _build(self):
        return self.text


ENGLISH_STOP_WORDS = frozenset("""
    a about above after again against ain all am an and any are aren as at be because been before being below
    between both but by can couldn d did didn do does doesn doing don down during each few for from further had
    hadn has hasn have haven having he her here hers herself him himself his how i if in into is isn it its
    itself just ll m ma me mightn more most mustn my myself needn no nor not now o of off on once only or other
    our ours ourselves out over own re s same shan she should shouldn so some such t than that the their theirs
    them themselves then there these they this those through to too under until up ve very was wasn we were
    weren what when where which while who whom why will with won wouldn y you your yours yourself yourselves
""".split())

_WORD = re.compile(r"\w+")


def count_stop_words(text: str) -> int:
    """Number of ``\\w+`` tokens of ``text`` that are English stop words, ignoring case."""
    return sum(1 for m in _WORD.finditer(text) if m.group().lower() in ENGLISH_STOP_WORDS)


# ---------------------------------------------------------------------------------------------------------------
# Syllables

_DIGIT = re.compile(r"\d")
_VOWEL_RUN = re.compile(r"[aeiouy]+")


@lru_cache(maxsize=1)
def _syllable_table() -> dict[str, int]:
    spec = importlib.util.find_spec("syllapy")
    if spec is None or not spec.submodule_search_locations:
        raise MissingResourceError("words:odd_even_syllables needs the syllable dictionary of the 'syllapy' "
                                   "package, which is not installed (pip install syllapy)")
    path = Path(next(iter(spec.submodule_search_locations))) / "data.csv"
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            return {row[0]: int(row[1]) for row in csv.reader(handle) if len(row) >= 2}
    except OSError:
        raise MissingResourceError(f"words:odd_even_syllables needs {path}, the syllable dictionary of the "
                                   f"'syllapy' package; it is missing") from None


def count_syllables(word: str) -> int:
    """Syllables in ``word`` as syllapy counts them.

    Surrounding punctuation is stripped and case ignored; a word with a digit, or nothing left, has 0.  A word in
    the dictionary gets its entry; ``head-tail`` gets the sum of its parts (0 when either part has 0); any other
    word gets one syllable per run of vowels (``aeiouy``), one less for a final ``e``, one more for a final
    consonant + ``le``, and at least one.
    """
    word = word.strip().lower().strip(string.punctuation)
    if not word or _DIGIT.search(word):
        return 0
    known = _syllable_table().get(word)
    if known is not None:
        return known
    cut = word.find("-")
    if 0 < cut < len(word) - 1:
        head, tail = count_syllables(word[:cut]), count_syllables(word[cut + 1:])
        return head + tail if head and tail else 0
    n = len(_VOWEL_RUN.findall(word))
    if word.endswith("e"):
        n -= 1
    if word.endswith("le") and len(word) > 2 and word[-3] not in "aeiouy":
        n += 1
    return max(n, 1)


# ---------------------------------------------------------------------------------------------------------------
# Emoji


@lru_cache(maxsize=1)
def _emoji_table():
    try:
        from emoji import EMOJI_DATA
    except ImportError:
        raise MissingResourceError("format:emoji needs the emoji table of the 'emoji' package, which is not "
                                   "installed (pip install emoji)") from None
    return EMOJI_DATA


def is_emoji(char: str) -> bool:
    """True when ``char`` is one whole emoji in the ``emoji`` package's table."""
    return char in _emoji_table()


# ---------------------------------------------------------------------------------------------------------------
# Part-of-speech tags

_TAGGER_RESOURCE = "taggers/averaged_perceptron_tagger_eng/"


@lru_cache(maxsize=1)
def _tagger():
    import nltk.data

    try:
        nltk.data.find(_TAGGER_RESOURCE)
    except LookupError:
        searched = ", ".join(str(p) for p in nltk.data.path[:4])
        raise MissingResourceError(
            "words:start_verb needs NLTK's English part-of-speech tagger 'averaged_perceptron_tagger_eng', "
            f"which is not on NLTK's data path ({searched}, ...); it is never downloaded here: install it into "
            "one of those folders or point NLTK_DATA at a copy") from None
    from nltk.tag.perceptron import PerceptronTagger

    return PerceptronTagger()


def first_token_tag(tokens: list[str]) -> str:
    """The Penn Treebank tag NLTK's ``pos_tag(tokens)`` gives the first token.

    The tagger looks two tokens ahead and only at earlier tags behind, so tagging the first three tokens gives the
    first tag of the whole list.
    """
    return _tagger().tag(tokens[:3])[0][1]


_CHECKS = {
    "stop words": lambda: None,
    "syllapy": _syllable_table,
    "emoji": _emoji_table,
    "tagger": _tagger,
}


def require(resource: str) -> None:
    """Raise :class:`MissingResourceError` now unless ``resource`` (``"syllapy"``, ``"emoji"`` or ``"tagger"``)
    is available; loads it as a side effect."""
    _CHECKS[resource]()
