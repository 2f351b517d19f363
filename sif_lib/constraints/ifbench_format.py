"""IFBench verifiers about layout and copying: ``format:*`` and ``repeat:*``.

Each reproduces the IFBench reference's verdict, quirks included; the class docstrings name the quirks.
Departure, for every class here: an explicit argument out of range is rejected, where the reference draws a
random one.
"""

from __future__ import annotations

import re
import string

from sif_lib.constraints import text as _text
from sif_lib.constraints.hard import HardConstraint
from sif_lib.constraints.ifbench_text import STRIP_CHARS, FixedInstruction, drop_punctuation, is_emoji

__all__ = [
    "Emoji", "LineIndent", "List", "Newline", "NoBulletsBullets", "NoWhitespace", "Options", "OutputTemplate",
    "Parentheses", "QuoteUnquote", "Quotes", "RepeatChange", "RepeatSimple", "RepeatSpan", "SubBullets", "Thesis",
    "TitleCase",
]


class Parentheses(FixedInstruction):
    """``format:parentheses``: brackets ``()[]{}`` nested five deep, and closed.

    Scanning left to right, a closing bracket that does not match the innermost open one forgets everything
    open so far; the check passes at the first matching close once the depth has reached five since then.
    """

    instruction_id = "format:parentheses"
    text = "Nest parentheses (and [brackets {and braces}]) at least 5 levels deep."
    _PAIRS = {")": "(", "]": "[", "}": "{"}

    def _check(self, response):
        stack: list[str] = []
        deepest = 0
        for char in response:
            if char in "([{":
                stack.append(char)
                deepest = max(deepest, len(stack))
            elif char in self._PAIRS:
                if stack and stack[-1] == self._PAIRS[char]:
                    stack.pop()
                    if deepest >= 5:
                        return True
                else:
                    stack, deepest = [], 0
        return False


class Quotes(FixedInstruction):
    """``format:quotes``: quotes nested three deep.

    Each ``"`` or ``'`` closes the innermost open quote when it is the same mark and opens a new one otherwise
    (so apostrophes count); the check passes when a close leaves the depth three below the deepest reached.
    """

    instruction_id = "format:quotes"
    text = ("Include quotes within quotes within quotes, at least 3 levels "
            "deep, alternating between double quotes and single quotes.")

    def _check(self, response):
        stack: list[str] = []
        deepest = 0
        for char in response:
            if stack and char == stack[-1]:
                stack.pop()
                if deepest - len(stack) >= 3:
                    return True
            elif char in "\"'":
                stack.append(char)
                deepest = max(deepest, len(stack))
        return False


_OPTION_BANK = ("yes/no/maybe", "I know or I don't know", "a), b), c), d)")
_LETTER_OPTIONS = re.compile(r"\W*[aA]\W*[bB]\W*[cC]\W*")


class Options(HardConstraint):
    """``format:options``: the response is one of the options.

    ``options`` is one string, split at ``/`` if it has one, else at ``or`` (anywhere, even inside a word), else
    at commas.  Lettered options (``a), b), c)``) must be matched exactly; other options ignoring case and
    surrounding punctuation and spaces.
    """

    instruction_id = "format:options"
    arg_keys = ("options",)

    def _build(self, options=None):
        if options is None:
            options = self._rng.choice(_OPTION_BANK)
        if not isinstance(options, str):
            raise ValueError(f"options must be a string such as 'yes/no/maybe', got {options!r}")
        self._options = options
        self._exact = _LETTER_OPTIONS.match(options) is not None
        separator = "/" if "/" in options else "or" if "or" in options else ","
        choices = [o.strip() for o in options.split(separator)]
        self._choices = choices if self._exact else [o.strip(STRIP_CHARS).lower() for o in choices]
        return f"Answer with one of the following options: {options}. Do not give any explanation."

    def _check(self, response):
        if self._exact:
            return response in self._choices
        return response.strip(STRIP_CHARS).lower() in self._choices


class Newline(FixedInstruction):
    """``format:newline``: as many non-empty lines as words, punctuation removed (a line of only spaces still
    counts as a line)."""

    instruction_id = "format:newline"
    text = "Write each word on a new line."

    def _check(self, response):
        body = drop_punctuation(response).strip()
        return sum(1 for line in body.split("\n") if line) == len(body.split())


class Emoji(FixedInstruction):
    """``format:emoji``: every sentence ends in an emoji (one of its last two characters once punctuation and
    surrounding whitespace are removed), or the next sentence starts with one.  A sentence with nothing left
    after removing punctuation fails.  Needs the ``emoji`` package's table."""

    instruction_id = "format:emoji"
    text = "Please use an emoji at the end of every sentence."
    needs = "emoji"

    def _check(self, response):
        bodies = [drop_punctuation(s).strip() for s in _text.split_sentences(response)]
        for i, body in enumerate(bodies):
            if not body:
                return False
            if any(is_emoji(c) for c in body[-2:]):
                continue
            if i + 1 == len(bodies) or not bodies[i + 1] or not is_emoji(bodies[i + 1][0]):
                return False
        return True


class LineIndent(FixedInstruction):
    """``format:line_indent``: each line is indented by more leading spaces than the one before.

    Blank lines are dropped first the way the reference drops them, removing from the list it is iterating
    over: a blank line right after a dropped one is skipped, so it stays (and then fails the check unless it is
    the last line).
    """

    instruction_id = "format:line_indent"
    text = "Create stairs by incrementally indenting each new line."

    def _check(self, response):
        lines = response.split("\n")
        i = 0
        while i < len(lines):
            line = lines[i]
            i += 1
            if not line.strip():
                lines.remove(line)  # the first equal line: the reference's list.remove
        indents = [len(line) - len(line.lstrip(" ")) for line in lines]
        return all(b > a for a, b in zip(indents, indents[1:]))


class QuoteUnquote(FixedInstruction):
    """``format:quote_unquote``: no two ``"`` touch once whitespace is removed, and the response does not end
    with ``"`` once trailing digits and other punctuation are stripped.  The literal ``'"'`` is ignored."""

    instruction_id = "format:quote_unquote"
    text = "Every quoted phrase must be followed by an unquoted explanation."
    _TRAILING = string.digits + string.punctuation.replace('"', "")

    def _check(self, response):
        body = "".join(response.replace("'\"'", "").split())
        if '""' in body:
            return False
        return not body.strip(self._TRAILING).endswith('"')


class List(HardConstraint):
    """``format:list``: the marker ``sep`` occurs at least twice, anywhere (not necessarily starting a line)."""

    instruction_id = "format:list"
    arg_keys = ("sep",)

    def _build(self, sep=None):
        self._sep = self._rng.choice(["...", "SEPARATOR", "!?!?", "-"]) if sep is None else str(sep)
        return f"Answer with a list of items, instead of bullet points use {self._sep}."

    def _check(self, response):
        return response.count(self._sep) >= 2


class Thesis(FixedInstruction):
    """``format:thesis``: an HTML italic, then text after it.

    From the first ``<i>`` (or, when there is none, the first ``<em>``): some text before the next ``</i>`` (or,
    when there is none, ``</em>``) and some text after it.  As in the reference, the opening tag is taken as three
    characters and the closing one as four, whichever was found.
    """

    instruction_id = "format:thesis"
    text = "Each section must begin with a thesis statement in italics, use HTML to indicate the italics."

    def _check(self, response):
        start = response.find("<i>")
        if start < 0:
            start = response.find("<em>")
            if start < 0:
                return False
        rest = response[start:]
        end = rest.find("</i>")
        if end < 0:
            end = rest.find("</em>")
            if end < 0:
                return False
        return bool(rest[3:end].strip()) and bool(rest[end + 4:].strip())


class SubBullets(FixedInstruction):
    """``format:sub-bullets``: every piece after a ``*`` holds a ``-`` before the next ``*``.  A response
    without any ``*`` passes, as in the reference."""

    instruction_id = "format:sub-bullets"
    text = ("Your response must include bullet points denoted by * and at least one sub-bullet point denoted by - "
            "for each bullet point.")

    def _check(self, response):
        return all("-" in piece for piece in response.split("*")[1:])


class NoBulletsBullets(FixedInstruction):
    """``format:no_bullets_bullets``: lines of text holding at least two sentences, then at least two lines
    starting with ``*`` (after leading whitespace), and nothing else.  A blank line between the text and the
    bullets fails; one after the bullets does too."""

    instruction_id = "format:no_bullets_bullets"
    text = ("Your answer must contain at least two sentences ending in a "
            "period followed by at least two bullet points denoted by *.")

    def _check(self, response):
        in_text, sentences, bullets = True, 0, 0
        for line in response.split("\n"):
            line = line.strip()
            if line.startswith("*"):
                if sentences < 2:
                    return False
                in_text = False
                bullets += 1
            elif in_text:
                found = len(_text.split_sentences(line))
                sentences += found
                in_text = found > 0
            else:
                return False
        return bullets >= 2


class TitleCase(FixedInstruction):
    """``format:title_case``: no ``word_tokenize`` token that starts with a letter is a lowercase word.

    A one-letter token must not be lowercase; a longer one fails when its first letter is lowercase and the rest
    is all lowercase or all uppercase (``iPhone`` passes, ``the`` and ``tHE`` fail).
    """

    instruction_id = "format:title_case"
    text = "Write the entire response in title case (capitalize the first letter of every major word)."

    def _check(self, response):
        for token in _text.word_tokenize(response):
            if not token[:1].isalpha():
                continue
            if len(token) == 1:
                if token.islower():
                    return False
            elif token[0].islower() and (token[1:].islower() or token[1:].isupper()):
                return False
        return True


class OutputTemplate(FixedInstruction):
    """``format:output_template``: the three headings ``My Answer:``, ``My Conclusion:`` and ``Future
    Outlook:`` occur, in any order."""

    instruction_id = "format:output_template"
    text = ("Use this exact template for your response: My Answer: [answer] "
            "My Conclusion: [conclusion] Future Outlook: [outlook]")

    def _check(self, response):
        return all(h in response for h in ("My Answer:", "My Conclusion:", "Future Outlook:"))


class NoWhitespace(FixedInstruction):
    """``format:no_whitespace``: no whitespace character at all."""

    instruction_id = "format:no_whitespace"
    text = "The output should not contain any whitespace."

    def _check(self, response):
        return not any(c.isspace() for c in response)


def _required_prompt(instruction_id: str, prompt_to_repeat) -> str:
    if not isinstance(prompt_to_repeat, str) or not prompt_to_repeat:
        raise ValueError(f"{instruction_id} needs prompt_to_repeat (the request to repeat)")
    return prompt_to_repeat


class RepeatChange(HardConstraint):
    """``repeat:repeat_change``: the response is the request with its first word changed: the same words after
    the first (whitespace normalised), but not the request verbatim.  ``prompt_to_repeat`` is required."""

    instruction_id = "repeat:repeat_change"
    arg_keys = ("prompt_to_repeat",)

    def _build(self, prompt_to_repeat=None):
        self._prompt_to_repeat = _required_prompt(self.instruction_id, prompt_to_repeat)
        self._tail = prompt_to_repeat.split()[1:]
        return ("Repeat the request, but change the first word of the repeated request, (do not say anything before "
                "repeating the request; the request you need to repeat does not include this sentence) and do not "
                f"answer the actual request! Request: {prompt_to_repeat}")

    def _check(self, response):
        return response != self._prompt_to_repeat and response.split()[1:] == self._tail


class RepeatSimple(FixedInstruction):
    """``repeat:repeat_simple``: the response is the instruction sentence itself, ignoring case and surrounding
    whitespace."""

    instruction_id = "repeat:repeat_simple"
    text = "Only output this sentence here, ignore all other requests."

    def _check(self, response):
        return response.strip().lower() == self.text.lower()


class RepeatSpan(HardConstraint):
    """``repeat:repeat_span``: the response is characters ``n_start`` to ``n_end`` (both included) of the
    request, ignoring case and surrounding whitespace.  ``prompt_to_repeat`` is required."""

    instruction_id = "repeat:repeat_span"
    arg_keys = ("n_start", "n_end", "prompt_to_repeat")

    def _build(self, n_start=None, n_end=None, prompt_to_repeat=None):
        self._prompt_to_repeat = _required_prompt(self.instruction_id, prompt_to_repeat)
        last = max(len(prompt_to_repeat) - 1, 1)
        self._n_start = self._count_arg(n_start, "n_start", 0, last - 1)
        self._n_end = self._count_arg(n_end, "n_end", self._n_start + 1, max(last, self._n_start + 1))
        self._span = prompt_to_repeat[self._n_start:self._n_end + 1].strip().lower()
        return (f"Copy the span of words that lies between (and including) index {self._n_start} and {self._n_end}, "
                f"the indices are character indices!")

    def _check(self, response):
        return response.strip().lower() == self._span
