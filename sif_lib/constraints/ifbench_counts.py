r"""IFBench verifiers that count: ``count:*`` and ``ratio:*``.

Each reproduces the IFBench reference's verdict, quirks included; the class docstrings name the quirks.
Sentences are Punkt English sentences, as NLTK's ``sent_tokenize`` gives them (:mod:`sif_lib.constraints.text`).
``\w+`` words are matched with Python's ``re``, as NLTK 3.9's ``RegexpTokenizer`` (the version the reference pins)
matches them; NLTK 3.10 moved that tokenizer to the ``regex`` engine, whose ``\w`` also takes combining marks, joiners
and emoji variation selectors, so under it the reference can count words differently on such text.
Departure, for every class here: an explicit argument out of range (a negative count) is rejected, where the
reference silently draws a random one.
"""

from __future__ import annotations

import re

from sif_lib.constraints import text as _text
from sif_lib.constraints.hard import HardConstraint
from sif_lib.constraints.ifbench_text import STRIP_CHARS, FixedInstruction, count_stop_words, drop_punctuation

__all__ = [
    "Conjunctions", "KeywordsMultiple", "Numbers", "PersonNames", "Pronouns", "PunctuationCover", "SentenceBalance",
    "SentenceType", "SentenceWords", "StopWords", "TrigramOverlap", "UniqueWordCount", "WordCountRange",
    "WordsJapanese",
]


class WordCountRange(HardConstraint):
    """``count:word_count_range``: between ``min_words`` and ``max_words`` ``\\w+`` words, both included."""

    instruction_id = "count:word_count_range"
    arg_keys = ("min_words", "max_words")

    def _build(self, min_words=None, max_words=None):
        self._min_words = self._count_arg(min_words, "min_words", 100, 500)
        spread = (int(self._min_words * 0.05), int(self._min_words * 0.1))
        self._max_words = self._count_arg(max_words, "max_words", self._min_words + spread[0],
                                          self._min_words + spread[1])
        return f"The response must contain between {self._min_words} and {self._max_words} words."

    def _check(self, response):
        return self._min_words <= _text.count_words(response) <= self._max_words


class UniqueWordCount(HardConstraint):
    """``count:unique_word_count``: at least N different words.

    Words are the whitespace-separated pieces, lowercased, with punctuation stripped from their ends; a piece that
    is all punctuation counts as one more word (the empty one), as in the reference.
    """

    instruction_id = "count:unique_word_count"
    arg_keys = ("N",)

    def _build(self, N=None):
        self._N = self._count_arg(N, "N", 100, 500)
        return f"Use at least {self._N} unique words in the response."

    def _check(self, response):
        return len({w.strip(STRIP_CHARS) for w in response.lower().split()}) >= self._N


class StopWords(HardConstraint):
    """``ratio:stop_words``: stop words are at most ``percentage`` % of the ``\\w+`` words (no words fails)."""

    instruction_id = "ratio:stop_words"
    arg_keys = ("percentage",)

    def _build(self, percentage=None):
        self._percentage = self._count_arg(percentage, "percentage", 1, 100)
        return ("Ensure that stop words constitute no more than "
                f"{self._percentage}% of the total words in your response.")

    def _check(self, response):
        words = _text.count_words(response)
        return bool(words) and count_stop_words(response) / words * 100 <= self._percentage


def _sentence_endings(response: str) -> tuple[int, int, int]:
    """(sentences ending in '.', in '?', in '!')."""
    ends = [s[-1:] for s in _text.split_sentences(response)]
    return ends.count("."), ends.count("?"), ends.count("!")


class SentenceType(FixedInstruction):
    """``ratio:sentence_type``: twice as many sentences end in '.' as in '?' (none of either passes)."""

    instruction_id = "ratio:sentence_type"
    text = "Maintain a 2:1 ratio of declarative to interrogative sentences."

    def _check(self, response):
        declarative, interrogative, _ = _sentence_endings(response)
        return declarative == 2 * interrogative


class SentenceBalance(FixedInstruction):
    """``ratio:sentence_balance``: as many sentences end in '.' as in '?' and in '!'."""

    instruction_id = "ratio:sentence_balance"
    text = "Ensure that the ratio of sentence types (declarative, interrogative, exclamatory) is balanced."

    def _check(self, response):
        declarative, interrogative, exclamatory = _sentence_endings(response)
        return declarative == interrogative == exclamatory


_CONJUNCTIONS = frozenset({"and", "but", "for", "nor", "or", "so", "yet"})


class Conjunctions(HardConstraint):
    """``count:conjunctions``: at least N different coordinating conjunctions.

    As in the reference, "different" compares the whitespace-separated pieces as written, so ``and``, ``And`` and
    ``and,`` count as three.
    """

    instruction_id = "count:conjunctions"
    arg_keys = ("small_n",)

    def _build(self, small_n=None):
        self._small_n = self._count_arg(small_n, "small_n", 2, 6)
        return f"Use at least {self._small_n} different coordinating conjunctions in the response."

    def _check(self, response):
        found = {w for w in response.split() if w.strip(STRIP_CHARS).lower() in _CONJUNCTIONS}
        return len(found) >= self._small_n


_PERSON_NAMES = (
    "Emma", "Liam", "Sophia", "Jackson", "Olivia", "Noah", "Ava", "Lucas", "Isabella", "Mason", "Mia", "Ethan",
    "Charlotte", "Alexander", "Amelia", "Benjamin", "Harper", "Leo", "Zoe", "Daniel", "Chloe", "Samuel", "Lily",
    "Matthew", "Grace", "Owen", "Abigail", "Gabriel", "Ella", "Jacob", "Scarlett", "Nathan", "Victoria", "Elijah",
    "Layla", "Nicholas", "Audrey", "David", "Hannah", "Christopher", "Penelope", "Thomas", "Nora", "Andrew", "Aria",
    "Joseph", "Claire", "Ryan", "Stella", "Jonathan",
)
_PERSON_NAME_RE = re.compile(r"\b(?:" + "|".join(_PERSON_NAMES) + r")\b")


class PersonNames(HardConstraint):
    """``count:person_names``: at least N different names of the fixed list of 50, each as a whole word with
    its case as listed."""

    instruction_id = "count:person_names"
    arg_keys = ("N",)

    def _build(self, N=None):
        self._N = self._count_arg(N, "N", 1, 50)
        return (f"Mention at least {self._N} different person names in the response, from this list of person "
                f"names: {', '.join(_PERSON_NAMES)} .")

    def _check(self, response):
        return len(set(_PERSON_NAME_RE.findall(response))) >= self._N


def _trigrams(text: str) -> set[str]:
    return {text[i:i + 3] for i in range(len(text) - 2)}


class TrigramOverlap(HardConstraint):
    """``ratio:overlap``: the share of the response's distinct character trigrams that also occur in
    ``reference_text`` is within 2 points of ``percentage``.  A response shorter than three characters fails.
    ``reference_text`` is required."""

    instruction_id = "ratio:overlap"
    arg_keys = ("reference_text", "percentage")

    def _build(self, reference_text=None, percentage=None):
        if not isinstance(reference_text, str) or not reference_text:
            raise ValueError("ratio:overlap needs reference_text (the text to overlap with)")
        self._reference_text = reference_text
        self._reference_trigrams = _trigrams(reference_text)
        self._percentage = self._count_arg(percentage, "percentage", 1, 100)
        return f"Maintain a trigram overlap of {self._percentage}% (±2%) with the provided reference text."

    def _check(self, response):
        grams = _trigrams(response)
        if not grams:
            return False
        share = len(grams & self._reference_trigrams) / len(grams)
        return self._percentage - 2 <= share * 100 <= self._percentage + 2


_DIGITS = re.compile(r"\d+")


class Numbers(HardConstraint):
    """``count:numbers``: exactly N runs of digits once punctuation is removed (so ``3.14`` and ``1,000`` are one
    number each, and ``2-3`` is one too)."""

    instruction_id = "count:numbers"
    arg_keys = ("N",)

    def _build(self, N=None):
        self._N = self._count_arg(N, "N", 1, 6)
        return f"Include exactly {self._N} numbers in the response."

    def _check(self, response):
        return len(_DIGITS.findall(drop_punctuation(response))) == self._N


class PunctuationCover(FixedInstruction):
    """``count:punctuation``: an interrobang (``?!``, ``!?`` or ``‽``), and ``. , ! ? ; :`` each at least once
    besides the first ``?!`` (or, when there is none, the first ``!?``)."""

    instruction_id = "count:punctuation"
    text = ("Use every standard punctuation mark at least once, "
            "including semicolons, colons, and the interrobang (?!).")

    def _check(self, response):
        if "?!" in response:
            rest = response.replace("?!", "", 1)
        elif "!?" in response:
            rest = response.replace("!?", "", 1)
        elif "‽" in response:
            rest = response
        else:
            return False
        return set(".,!?;:") <= set(rest)


_JAPANESE = re.compile(r"[\u3040-\u30ff\u4e00-\u9fff]")


class WordsJapanese(HardConstraint):
    """``count:words_japanese``: every Nth whitespace-separated word holds a kana or kanji character.

    Words that are empty once punctuation is stripped from their ends, or all digits, are exempt (they still
    count as positions).
    """

    instruction_id = "count:words_japanese"
    arg_keys = ("N",)

    def _build(self, N=None):
        self._N = self._count_arg(N, "N", 1, 30)
        if self._N < 1:
            raise ValueError(f"N must be at least 1, got {self._N}")
        return f"Every {self._N}th word of your response must be in Japanese."

    def _check(self, response):
        for word in response.split()[self._N - 1::self._N]:
            word = word.strip(STRIP_CHARS)
            if word and not word.isdigit() and not _JAPANESE.search(word):
                return False
        return True


_PRONOUNS = frozenset("""
    i me we us you he him she her it they them my mine our ours your yours his hers its their theirs myself
    ourselves yourself yourselves himself herself itself themselves this that these those who whom whose which
    what whoever whomever whatever whichever anybody anyone anything everybody everyone everything nobody
    nothing somebody someone something each either neither both all some any none
""".split())


class Pronouns(HardConstraint):
    """``count:pronouns``: at least N pronoun tokens (NLTK ``word_tokenize`` tokens of the lowercased response,
    with ``/`` read as a space so that ``she/her`` counts twice)."""

    instruction_id = "count:pronouns"
    arg_keys = ("N",)

    def _build(self, N=None):
        self._N = self._count_arg(N, "N", 1, 25)
        return f"The response should include at least {self._N} pronouns."

    def _check(self, response):
        tokens = _text.word_tokenize(response.replace("/", " ").lower())
        return sum(1 for t in tokens if t in _PRONOUNS) >= self._N


class KeywordsMultiple(HardConstraint):
    """``count:keywords_multiple``: the five keywords occur exactly 1, 2, 3, 5 and 7 times, counted as
    non-overlapping substrings, ignoring case (so ``art`` is found in ``start``)."""

    instruction_id = "count:keywords_multiple"
    arg_keys = ("keyword1", "keyword2", "keyword3", "keyword4", "keyword5")
    _TIMES = (1, 2, 3, 5, 7)

    def _build(self, **keywords):
        drawn = iter(self._words(5))
        for key in self.arg_keys:
            value = keywords.get(key)
            setattr(self, "_" + key, value.strip() if isinstance(value, str) else next(drawn))
        self._wanted = [(getattr(self, "_" + key).lower(), n) for key, n in zip(self.arg_keys, self._TIMES)]
        return (f"Include keyword {self._keyword1} once in your response, keyword {self._keyword2} twice in your "
                f"response, keyword {self._keyword3} three times in your response, keyword {self._keyword4} five "
                f"times in your response, and keyword {self._keyword5} seven times in your response.")

    def _check(self, response):
        low = response.lower()
        return all(low.count(keyword) == n for keyword, n in self._wanted)


class SentenceWords(FixedInstruction):
    """``ratio:sentence_words``: exactly three sentences of the same length in characters (ignoring surrounding
    whitespace).  The instruction also asks for all different words; the reference does not check that, nor do
    we."""

    instruction_id = "ratio:sentence_words"
    text = ("Respond with three sentences, all containing the same number of characters "
            "but using all different words.")

    def _check(self, response):
        sentences = _text.split_sentences(response)
        return len(sentences) == 3 and len({len(s.strip()) for s in sentences}) == 1

