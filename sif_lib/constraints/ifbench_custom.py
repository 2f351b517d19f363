"""IFBench's one-off tasks: ``custom:*``.  Each instruction is a whole task with a fixed answer shape.

Each reproduces the IFBench reference's verdict, quirks included; the class docstrings name the quirks.  Where the
reference raises an exception on some response (an empty CSV field, malformed CSV), the check fails instead.
"""

from __future__ import annotations

import csv
import io
import re
import unicodedata

from sif_lib.constraints import text as _text
from sif_lib.constraints.ifbench_text import STRIP_CHARS, FixedInstruction, drop_punctuation

__all__ = [
    "CharacterReverse", "CsvCity", "CsvQuotes", "CsvSpecialCharacter", "DateFormatList", "EuropeanCapitalsSort",
    "McqCountLength", "Multiples", "ReverseNewline", "SentenceAlphabet", "WordReverse",
]


def _ascii_folded(text: str) -> str:
    """``text`` decomposed (NFKD) with everything outside ASCII dropped: ``São Tomé`` -> ``Sao Tome``."""
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")


def _csv_rows(text: str, delimiter: str = ",") -> list[list[str]] | None:
    try:
        return list(csv.reader(io.StringIO(text), delimiter=delimiter))
    except csv.Error:
        return None


class Multiples(FixedInstruction):
    """``custom:multiples``: the runs of digits are exactly 14, 21, 28, 35, 42, 49, in order."""

    instruction_id = "custom:multiples"
    text = "Count from 10 to 50 but only print multiples of 7."
    _WANTED = [str(n) for n in range(14, 51, 7)]

    def _check(self, response):
        return re.findall(r"\d+", response) == self._WANTED


_QUESTION_SPLIT = re.compile(r"\n*(?:Question \d+[\.|\):;]?\s*)")
_OPTION_LINE = re.compile(r"[A-Ea-e][\.|\)]\s*\w+")


class McqCountLength(FixedInstruction):
    """``custom:mcq_count_length``: the response starts with ``Question`` and holds four questions, split at
    ``Question <n>``, each with exactly five option lines (``A.`` to ``E)``, either case) and each question's text
    (the lines before its first option) longer than the one before."""

    instruction_id = "custom:mcq_count_length"
    text = ("Generate 4 multiple choice questions with 5 options each about '20th century art history'. Each "
            "question should start with the label \"Question\". The questions should get progressively longer. "
            "Do not provide an explanation.")

    def _check(self, response):
        # The reference keeps response[response.find("Question"):]: with no "Question" at all that is the last
        # character, which equals a one-character response.
        if response[response.find("Question"):] != response:
            return False
        questions = [q.strip() for q in _QUESTION_SPLIT.split(response) if q.strip()]
        if len(questions) != 4:
            return False
        lengths = []
        for question in questions:
            stem, options = "", 0
            for line in question.split("\n"):
                if _OPTION_LINE.match(line.strip()):
                    options += 1
                elif not options:
                    stem += " " + line.strip()
            if options != 5:
                return False
            lengths.append(len(stem.strip()))
        return all(a < b for a, b in zip(lengths, lengths[1:]))


class ReverseNewline(FixedInstruction):
    """``custom:reverse_newline``: from the first line naming Zimbabwe on, at least 52 non-empty lines in
    reverse alphabetical order (lines stripped of punctuation and spaces, accents folded to ASCII, compared as
    strings)."""

    instruction_id = "custom:reverse_newline"
    text = "List the countries of Africa in reverse alphabetical order, each on a new line."

    def _check(self, response):
        lines = [s for s in (line.strip(STRIP_CHARS) for line in response.split("\n")) if s]
        start = next((i for i, line in enumerate(lines) if "Zimbabwe" in line), None)
        if start is None or len(lines) - start < 52:
            return False
        folded = [_ascii_folded(line) for line in lines[start:]]
        return folded == sorted(folded, reverse=True)


class WordReverse(FixedInstruction):
    """``custom:word_reverse``: lowercased, punctuation removed and the word order reversed, the response reads
    ``bald eagle`` somewhere and is one Punkt sentence."""

    instruction_id = "custom:word_reverse"
    text = ("What animal is the national symbol of the US? Respond to this query, but make your sentence in reverse "
            "order of what it should be, per word.")

    def _check(self, response):
        reversed_text = " ".join(drop_punctuation(response.lower().strip()).split()[::-1])
        return "bald eagle" in reversed_text and reversed_text in _text.split_sentences(reversed_text)


class CharacterReverse(FixedInstruction):
    """``custom:character_reverse``: the response holds ``elgae dlab`` ("bald eagle" backwards), ignoring
    case."""

    instruction_id = "custom:character_reverse"
    text = ("What animal is the national symbol of the US? Respond to this query, but make your sentence in reverse "
            "order of what it should be, per letter.")

    def _check(self, response):
        return "elgae dlab" in response.lower()


class SentenceAlphabet(FixedInstruction):
    """``custom:sentence_alphabet``: exactly 26 Punkt sentences whose first words start with a, b, c ... z in
    turn, ignoring case (the first character of the word, punctuation included)."""

    instruction_id = "custom:sentence_alphabet"
    text = ("Tell me a 26-sentence story where each sentence's first "
            "word starts with the letters of the alphabet in order.")

    def _check(self, response):
        sentences = _text.split_sentences(response)
        if len(sentences) != 26:
            return False
        for i, sentence in enumerate(sentences):
            words = sentence.split()
            if not words or words[0].lower()[0] != chr(ord("a") + i):
                return False
        return True


_NORTHERN_CAPITALS = [
    "Reykjavik", "Helsinki", "Oslo", "Tallinn", "Stockholm", "Riga", "Moscow", "Copenhagen", "Vilnius", "Minsk",
    "Dublin", "Berlin", "Amsterdam", "Warsaw", "London", "Brussels", "Prague", "Luxembourg", "Paris", "Vienna",
    "Bratislava", "Budapest", "Vaduz", "Chisinau", "Bern", "Ljubljana", "Zagreb",
]


class EuropeanCapitalsSort(FixedInstruction):
    """``custom:european_capitals_sort``: exactly the 27 capitals north of 45°, north to south, separated by
    commas (accents folded to ASCII, blank items ignored, nothing else allowed)."""

    instruction_id = "custom:european_capitals_sort"
    text = ("Give me the names of all capital cities of european countries whose latitude "
            "is higher than than 45 degrees? List the capital cities without country "
            "names, separated by commas, sorted by latitude, from highest to lowest.")

    def _check(self, response):
        items = [item.strip() for item in _ascii_folded(response).split(",") if item.strip()]
        return items == _NORTHERN_CAPITALS


class CsvCity(FixedInstruction):
    """``custom:csv_city``: comma-separated CSV with the header ``ID,Country,City,Year,Count`` and seven rows of
    five fields."""

    instruction_id = "custom:csv_city"
    text = ('Generate CSV data: The column names are ["ID", "Country", "City", "Year", "Count"], the data should be '
            'comma delimited. Please generate 7 rows.')
    _HEADER = ["ID", "Country", "City", "Year", "Count"]

    def _check(self, response):
        rows = _csv_rows(response)
        return (rows is not None and len(rows) == 8 and rows[0] == self._HEADER
                and all(len(row) == 5 for row in rows[1:]))


_PRODUCT_HEADER = re.compile(r'^(ProductID|"ProductID"),[ \t]*(Category|"Category"),[ \t]*(Brand|"Brand"),'
                             r'[ \t]*(Price|"Price"),[ \t]*(Stock|"Stock")$')
_SPECIAL_FIELD = re.compile(r'".*[^\d\w\s].*"')


class CsvSpecialCharacter(FixedInstruction):
    """``custom:csv_special_character``: the ProductID/Category/Brand/Price/Stock header (names optionally
    quoted), 14 rows, and a field in double quotes holding a character that is neither a letter, digit nor space.

    As in the reference, every ``"`` is tripled before parsing, so a quoted field keeps its quotes; rows are checked
    in order and the check passes at the first row holding such a field, provided the rows before it (and that
    row) have five fields.
    """

    instruction_id = "custom:csv_special_character"
    text = ('Generate CSV data: The column names are ["ProductID", "Category", "Brand", "Price", "Stock"], the data '
            'should be comma delimited. Please generate 14 rows. Add one field which contains a special character '
            'and enclose it in double quotes.')

    def _check(self, response):
        if not _PRODUCT_HEADER.match(response.split("\n")[0].strip()):
            return False
        rows = _csv_rows(response.replace('"', '"""'))
        if rows is None or len(rows) != 15:
            return False
        for row in rows[1:]:
            if len(row) != 5:
                return False
            if any(_SPECIAL_FIELD.match(field) for field in row):
                return True
        return False


_STUDENT_HEADER = re.compile(r'^(StudentID|"StudentID")\t *(Subject|"Subject")\t *(Grade|"Grade")\t *'
                             r'(Semester|"Semester")\t *(Score|"Score")$')


class CsvQuotes(FixedInstruction):
    """``custom:csv_quotes``: tab-separated, the StudentID/Subject/Grade/Semester/Score header, three rows, and
    every field (header included) in double quotes.  Every ``"`` is tripled before parsing, as in the reference, so
    the quotes survive; an empty field fails (the reference raises there)."""

    instruction_id = "custom:csv_quotes"
    text = ('Generate CSV data: The column names are ["StudentID", "Subject", "Grade", "Semester", "Score"], the '
            'data should be tab delimited. Please generate 3 rows and enclose each single field in double quotes.')

    def _check(self, response):
        if not _STUDENT_HEADER.match(response.split("\n")[0].strip()):
            return False
        rows = _csv_rows(response.replace('"', '"""'), delimiter="\t")
        if rows is None or len(rows) != 4:
            return False
        for row in rows:
            if len(row) != 5:
                return False
            for field in row:
                field = field.strip()
                if not field or field[0] != '"' or field[-1] != '"':
                    return False
        return True


_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class DateFormatList(FixedInstruction):
    """``custom:date_format_list``: comma-separated ``YYYY-MM-DD`` dates with years 1769-1821.

    As in the reference, a month is only checked to be at most 12 (``00`` passes) and a day against the month's
    length (29 for February, none for month ``00``).
    """

    instruction_id = "custom:date_format_list"
    text = ("List the start dates of all the battles Napoleon fought separated by commas, use the following date "
            "format: YYYY-MM-DD. Do not provide an explanation.")

    def _check(self, response):
        for item in response.strip().split(","):
            item = item.strip()
            if not _DATE.match(item):
                return False
            year, month, day = (int(part) for part in item.split("-"))
            if not 1769 <= year <= 1821 or month > 12:
                return False
            if day > (31 if month in (1, 3, 5, 7, 8, 10, 12) else 30 if month in (4, 6, 9, 11)
                      else 29 if month == 2 else day):
                return False
        return True
