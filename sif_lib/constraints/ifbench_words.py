"""IFBench verifiers about words and sentences: ``words:*`` and ``sentence:*``.

Each reproduces the IFBench reference's verdict, quirks included; the class docstrings name the quirks.  "Words"
differ from check to check, as in the reference: mostly whitespace-separated pieces, with ASCII punctuation
removed or stripped from their ends as each docstring says; NLTK ``word_tokenize`` tokens where named.  Sentences
are Punkt English sentences (NLTK's ``sent_tokenize``).  Departure, for every class here: an explicit argument
out of range (a negative count, a position below 1) is rejected, where the reference draws a random one.
"""

from __future__ import annotations

import re
import string
from collections import Counter

from sif_lib.constraints import text as _text
from sif_lib.constraints.hard import HardConstraint
from sif_lib.constraints.ifbench_text import (
    STRIP_CHARS,
    FixedInstruction,
    count_syllables,
    drop_punctuation,
    first_token_tag,
)

__all__ = [
    "AlliterationIncrement", "Alphabet", "Consonants", "KeywordSentence", "KeywordsSpecificPosition", "LastFirst",
    "NoConsecutive", "OddEvenSyllables", "Palindrome", "ParagraphLastFirst", "PrimeLengths", "Repeats",
    "SentenceIncrement", "StartVerb", "Vowel", "WordsPosition",
]


def _position_arg(inst: HardConstraint, value, name: str, low: int, high: int) -> int:
    out = inst._count_arg(value, name, low, high)
    if out < 1:
        raise ValueError(f"{name} must be at least 1, got {out}")
    return out


class Alphabet(FixedInstruction):
    """``words:alphabet``: the words (punctuation removed) start with consecutive letters of the alphabet, from
    whichever letter the first starts with, ``z`` followed by ``a``.  A first word not starting with a letter
    a-z (either case) fails."""

    instruction_id = "words:alphabet"
    text = "Each word must start with the next letter of the alphabet, looping back to 'A' after 'Z'."

    def _check(self, response):
        letters = string.ascii_lowercase
        words = drop_punctuation(response).strip(STRIP_CHARS).split()
        if not words:
            return False
        first = words[0][0].lower()
        if first not in letters:
            return False
        at = letters.index(first)
        for word in words[1:]:
            at = (at + 1) % 26
            if word.lower()[0] != letters[at]:
                return False
        return True


class Vowel(FixedInstruction):
    """``words:vowel``: one line (after stripping the response) using at most three of the vowels a e i o u."""

    instruction_id = "words:vowel"
    text = "Write a paragraph using words that contain only three types of vowels."

    def _check(self, response):
        lines = response.strip().split("\n")
        return len(lines) == 1 and len(set(lines[0].lower()) & set("aeiou")) <= 3


_CLUSTER = re.compile(r"[bcdfghjklmnpqrstvwxyz]{2}")


class Consonants(FixedInstruction):
    """``words:consonants``: every whitespace-separated word, punctuation and all, has two consonants in a row
    (``y`` counts as a consonant)."""

    instruction_id = "words:consonants"
    text = "Ensure each word in your response has at least one consonant cluster (two or more consonants together)."

    def _check(self, response):
        return all(_CLUSTER.search(word) for word in response.lower().split())


class AlliterationIncrement(FixedInstruction):
    """``sentence:alliteration_increment``: each sentence scores more than the one before, the first more than
    -1 (so anything).  A sentence scores 2 for each run of consecutive words sharing a first character, plus 1
    for each word after the second in that run; leading punctuation of words is stripped first."""

    instruction_id = "sentence:alliteration_increment"
    text = "Each sentence must have a longer sequence of consecutive alliterative words than the previous one."

    def _check(self, response):
        previous = -1
        for sentence in _text.split_sentences(response):
            words = [w for w in (w.lstrip(STRIP_CHARS) for w in sentence.lower().split()) if w]
            score, in_run = 0, False
            for a, b in zip(words, words[1:]):
                same = a[0] == b[0]
                if same:
                    score += 1 if in_run else 2
                in_run = same
            if score <= previous:
                return False
            previous = score
        return True


class Palindrome(FixedInstruction):
    """``words:palindrome``: at least ten words (punctuation removed, ignoring case) of five or more characters
    that read the same backwards; repeats count."""

    instruction_id = "words:palindrome"
    text = "Include at least 10 single-word palindromes, each at least 5 characters long."

    def _check(self, response):
        words = drop_punctuation(response).lower().split()
        return sum(1 for w in words if len(w) >= 5 and w == w[::-1]) >= 10


_PRIMES = frozenset({2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59, 61, 67, 71, 73, 79, 83, 89, 97})


class PrimeLengths(FixedInstruction):
    """``words:prime_lengths``: every word (punctuation removed) has a prime number of characters, at most 97."""

    instruction_id = "words:prime_lengths"
    text = "Use only words with lengths that are prime numbers."

    def _check(self, response):
        return all(len(w) in _PRIMES for w in drop_punctuation(response).split())


class StartVerb(FixedInstruction):
    """``words:start_verb``: NLTK's perceptron tagger tags the first ``word_tokenize`` token as a verb (``VB*``).

    Needs the tagger's data (``averaged_perceptron_tagger_eng``) on NLTK's data path; without it the check
    raises :class:`~sif_lib.constraints.ifbench_text.MissingResourceError`.
    """

    instruction_id = "words:start_verb"
    text = "The response must start with a verb."
    needs = "tagger"

    def _check(self, response):
        tokens = _text.word_tokenize(response)
        return bool(tokens) and "VB" in first_token_tag(tokens)


class Repeats(HardConstraint):
    """``words:repeats``: no word (lowercased, punctuation removed) occurs more than ``small_n`` times."""

    instruction_id = "words:repeats"
    arg_keys = ("small_n",)

    def _build(self, small_n=None):
        self._small_n = self._count_arg(small_n, "small_n", 1, 5)
        return f"The response should not repeat any word more than {self._small_n} times."

    def _check(self, response):
        counts = Counter(drop_punctuation(response.lower()).split())
        return max(counts.values(), default=0) <= self._small_n


class KeywordSentence(HardConstraint):
    """``sentence:keyword``: sentence N holds ``word`` as a whole word (``\\b`` boundaries), ignoring case."""

    instruction_id = "sentence:keyword"
    arg_keys = ("word", "N")

    def _build(self, word=None, N=None):
        self._word = word if isinstance(word, str) and word else self._words(1)[0]
        self._N = _position_arg(self, N, "N", 1, 20)
        self._pattern = re.compile(r"\b" + re.escape(self._word) + r"\b", re.IGNORECASE)
        return f'The response must include keyword "{self._word}" in the {self._N}-th sentence.'

    def _check(self, response):
        sentences = _text.split_sentences(response)
        return len(sentences) >= self._N and bool(self._pattern.search(sentences[self._N - 1]))


class OddEvenSyllables(FixedInstruction):
    """``words:odd_even_syllables``: consecutive words (punctuation removed) alternate between odd and even
    syllable counts, as syllapy counts them (a word with a digit has 0 syllables, so counts as even)."""

    instruction_id = "words:odd_even_syllables"
    text = "Alternate between words with odd and even numbers of syllables."
    needs = "syllapy"

    def _check(self, response):
        parity = [count_syllables(w) % 2 for w in drop_punctuation(response).lower().split()]
        return all(a != b for a, b in zip(parity, parity[1:]))


class LastFirst(FixedInstruction):
    """``words:last_first``: each sentence's last word, ignoring case, is the next sentence's first word.  Only
    punctuation at the sentence's end and start is stripped, so ``word,`` inside a sentence keeps its comma."""

    instruction_id = "words:last_first"
    text = "The last word of each sentence must become the first word of the next sentence."

    def _check(self, response):
        sentences = _text.split_sentences(response)
        for left, right in zip(sentences, sentences[1:]):
            last = left.rstrip(STRIP_CHARS).split()
            first = right.lstrip(STRIP_CHARS).split()
            if not last or not first or last[-1].lower() != first[0].lower():
                return False
        return True


class ParagraphLastFirst(FixedInstruction):
    """``words:paragraph_last_first``: every non-empty line starts and ends with the same word, ignoring case
    and punctuation at the line's two ends (punctuation next to an inner word stays)."""

    instruction_id = "words:paragraph_last_first"
    text = "Each paragraph must end with the same word it started with, separate paragraphs with a newline."

    def _check(self, response):
        for line in response.split("\n"):
            words = line.strip().lower().strip(STRIP_CHARS).split()
            if words and words[0] != words[-1]:
                return False
        return True


class SentenceIncrement(HardConstraint):
    """``sentence:increment``: each sentence has exactly ``small_n`` more words (punctuation removed) than the
    one before."""

    instruction_id = "sentence:increment"
    arg_keys = ("small_n",)

    def _build(self, small_n=None):
        self._small_n = self._count_arg(small_n, "small_n", 1, 5)
        return f"Each sentence must contain exactly {self._small_n} more words than the previous one."

    def _check(self, response):
        counts = [len(drop_punctuation(s).split()) for s in _text.split_sentences(response)]
        return bool(counts) and all(b == a + self._small_n for a, b in zip(counts, counts[1:]))


class NoConsecutive(FixedInstruction):
    """``words:no_consecutive``: no two consecutive words (lowercased, punctuation removed) share a first
    character."""

    instruction_id = "words:no_consecutive"
    text = "No two consecutive words can share the same first letter."

    def _check(self, response):
        words = drop_punctuation(response.lower()).split()
        return all(a[0] != b[0] for a, b in zip(words, words[1:]))


class KeywordsSpecificPosition(HardConstraint):
    """``words:keywords_specific_position``: in sentence ``n``, word ``m`` is ``keyword``, ignoring case.  Words
    are that sentence's ``word_tokenize`` tokens that hold a letter or digit."""

    instruction_id = "words:keywords_specific_position"
    arg_keys = ("keyword", "n", "m")

    def _build(self, keyword=None, n=None, m=None):
        self._keyword = keyword.strip() if isinstance(keyword, str) and keyword else self._words(1)[0]
        self._n = _position_arg(self, n, "n", 20, 30)
        self._m = _position_arg(self, m, "m", 30, 40)
        return (f"Include keyword {self._keyword} in the {self._n}-th "
                f"sentence, as the {self._m}-th word of that sentence.")

    def _check(self, response):
        sentences = _text.split_sentences(response)
        if len(sentences) < self._n:
            return False
        words = [t for t in _text.word_tokenize(sentences[self._n - 1]) if any(c.isalnum() for c in t)]
        return len(words) >= self._m and words[self._m - 1].lower() == self._keyword.lower()


class WordsPosition(HardConstraint):
    """``words:words_position``: the second ``word_tokenize`` token and the second to last are ``keyword``,
    ignoring case.  A last token that is punctuation (a substring of ``string.punctuation``, such as ``.``) is
    not counted, so then the token two before it must match."""

    instruction_id = "words:words_position"
    arg_keys = ("keyword",)

    def _build(self, keyword=None):
        self._keyword = keyword.strip() if isinstance(keyword, str) else self._words(1)[0]
        return (f"The second word in your response and the second to last word in your response should be the "
                f"word {self._keyword}.")

    def _check(self, response):
        tokens = _text.word_tokenize(response)
        back = 3 if tokens and tokens[-1] in string.punctuation else 2
        if len(tokens) < back:
            return False
        return tokens[1].lower() == tokens[-back].lower() == self._keyword.lower()
