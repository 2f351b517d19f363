"""Checking a math answer: the last ``\\boxed{...}`` of a response against the gold answer.

Answer checking is deliberately simple: the last ``\\boxed{...}`` is extracted, both sides are normalised
(``normalize_answer``) and compared as strings, or as exact rationals when both are numbers. It does not try
symbolic equivalence (``\\sqrt{8}`` vs ``2\\sqrt{2}``), which a real math grader would.
"""

from __future__ import annotations

import re
from fractions import Fraction

_BOX = re.compile(r"\\(?:boxed|fbox)\b\s*")
_ANSWER_IS = re.compile(r"answer\s+is\s*:?\s*\$?\s*(-?\d[\d,]*(?:\.\d+)?(?:\s*/\s*\d+)?)", re.IGNORECASE)


def extract_boxed(text: str | None, fallback: bool = False) -> str | None:
    """Contents of the last ``\\boxed{...}`` (or ``\\fbox``), with nested braces; ``\\boxed 5`` is accepted too.

    With ``fallback=True`` and no box, the last number after "answer is" is returned instead. Scoring does not
    use the fallback, since the prompt asks for a box and a lenient parser invites unboxed guessing.
    """
    if not text:
        return None
    for match in reversed(list(_BOX.finditer(text))):
        start = match.end()
        if start < len(text) and text[start] == "{":
            content = _balanced(text, start)
            if content is not None:
                return content.strip()
        else:
            bare = re.match(r"[^\s$]+", text[start:])
            if bare:
                return bare.group(0).rstrip(".,;")
    if fallback:
        found = _ANSWER_IS.findall(text)
        if found:
            return found[-1].replace(" ", "")
    return None


def _balanced(text: str, open_at: int) -> str | None:
    depth = 0
    i = open_at
    while i < len(text):
        ch = text[i]
        if ch == "\\":  # \{ and \} are literal braces and do not nest.
            i += 2
            continue
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return text[open_at + 1:i]
        i += 1
    return None


_SPACING = ("\\(", "\\)", "\\[", "\\]", "\\left", "\\right", "\\!", "\\,", "\\;", "\\:", "\\quad", "\\displaystyle")
_TEXT_CMD = re.compile(r"\\(?:text|textbf|textit|mathrm|mathbf|mbox|operatorname)\s*\{([^{}]*)\}")
_FRAC = re.compile(r"\\frac\s*\{([^{}]*)\}\s*\{([^{}]*)\}")
_FRAC_SHORT = re.compile(r"\\frac\s*(\d)\s*(\d)")
_NUMBER = re.compile(r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)")
_UNIT_TAIL = re.compile(r"^(?P<num>[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:/\d+)?)\s*"
                        r"(?P<unit>[a-zA-Z][a-zA-Z\s./-]*(?:\^\{?[23]\}?|[²³])?)$")
_SIMPLE_PARENS = re.compile(r"\(([-+]?[\d.]+)\)")


def normalize_answer(s: str | int | float | None) -> str:
    """Canonical text of an answer for comparison.

    Removes math delimiters, ``\\left``/``\\right`` and spacing commands, ``\\text{}``-style wrappers, ``$``,
    ``%``, degree signs, a leading "answer:" or single-letter ``x =``, thousands separators, trailing unit
    words after a number and all whitespace. ``\\frac{a}{b}``, ``\\dfrac`` and ``a/b`` of integers become a
    reduced ``a/b`` (or an integer), decimals lose trailing zeros, and text answers are lower-cased, so
    "Thursday" matches "thursday" and "(B)" matches "B".
    """
    if s is None:
        return ""
    text = str(s).strip()
    boxed = extract_boxed(text)
    if boxed is not None and text.startswith(("\\boxed", "\\fbox", "$\\boxed")):
        text = boxed
    for token in _SPACING:
        text = text.replace(token, " ")
    text = text.replace("\\$", "").replace("$", "").replace("\\%", "").replace("%", "")
    text = re.sub(r"\^\s*\{?\s*\\circ\s*\}?", "", text).replace("°", "")
    for _ in range(3):  # Wrappers can nest, e.g. \text{\textbf{5}}.
        text = _TEXT_CMD.sub(r"\1", text)
    text = text.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    text = _FRAC_SHORT.sub(r"\\frac{\1}{\2}", text)
    for _ in range(3):
        text = _FRAC.sub(lambda m: f"({m.group(1).strip()})/({m.group(2).strip()})", text)
    text = _SIMPLE_PARENS.sub(r"\1", text)
    text = text.strip().rstrip(".").strip()
    text = re.sub(r"^(?:the\s+)?(?:final\s+)?answer\s*(?:is)?\s*[:=]?\s*", "", text, flags=re.IGNORECASE)
    text = re.sub(r"^[a-zA-Z]\s*=\s*(?=\S)", "", text)
    text = re.sub(r"(?<=\d),(?=\d{3}(?!\d))", "", text)
    text = re.sub(r"\b(?:dollars?|usd|cents?)\b", "", text, flags=re.IGNORECASE).strip()
    unit = _UNIT_TAIL.match(text.strip())
    if unit:
        text = unit.group("num")
    text = re.sub(r"\s+", "", text).rstrip(".")
    if re.fullmatch(r"\(?[A-Za-z]\)?", text):  # Multiple-choice letter.
        text = text.strip("()")
    number = _to_fraction(text)
    if number is not None:
        return _canonical_number(text, number)
    return text if "\\" in text else text.lower()


def _to_fraction(text: str) -> Fraction | None:
    # Only plain decimals and integer ratios: no exponents, so a hostile "1e999999" cannot blow up memory.
    if len(text) > 64:
        return None
    if _NUMBER.fullmatch(text):
        return Fraction(text)
    ratio = re.fullmatch(r"([-+]?\d+)/([-+]?\d+)", text)
    if ratio and int(ratio.group(2)) != 0:
        return Fraction(int(ratio.group(1)), int(ratio.group(2)))
    return None


def _canonical_number(text: str, value: Fraction) -> str:
    if value.denominator == 1:
        return str(value.numerator)
    if "/" in text:
        return f"{value.numerator}/{value.denominator}"
    text = text.lstrip("+")
    if text.startswith("."):
        text = "0" + text
    elif text.startswith("-."):
        text = "-0" + text[1:]
    return text.rstrip("0").rstrip(".") if "." in text else text


def answers_match(pred: str | None, gold: str | int | float) -> bool:
    """Equal after normalisation, or numerically equal (``0.5`` vs ``1/2``); comma-separated lists element-wise."""
    if pred is None:
        return False
    a, b = normalize_answer(pred), normalize_answer(gold)
    if not a or not b:
        return False
    if a == b:
        return True
    fa, fb = _to_fraction(a), _to_fraction(b)
    if fa is not None and fb is not None:
        return fa == fb
    if "," in a and "," in b:
        left, right = a.split(","), b.split(",")
        return len(left) == len(right) and all(answers_match(x, y) for x, y in zip(left, right))
    return False


def score_reasoning(completion: str | None, answer: str | int | float) -> float:
    """1.0 when the completion's last boxed answer matches ``answer``, else 0.0.

    The whole completion is searched; stripping a reasoning model's ``<think>`` block is the caller's job.
    """
    return 1.0 if answers_match(extract_boxed(completion), answer) else 0.0


# A number as lm-eval's GSM8K "flexible-extract" reads it: an optional sign and dollar sign, digits with optional
# thousands commas, optional decimals. A sign only counts when no word character precedes it ("3-4" is 3 and 4).
_LAST_NUMBER = re.compile(r"(?:(?<![\w.])-)?(?:\$-?)?(?:\d{1,3}(?:,\d{3})+(?!\d)|\d+)(?:\.\d+)?")


def last_number(text: str | None) -> str | None:
    """The last number in ``text`` without ``$`` or thousands commas ("so 1,250 apples." gives ``1250``,
    "$-3.50" gives ``-3.50``), or None when there is none. A ratio ``9/2`` reads as its last number, 2."""
    if not text:
        return None
    found = _LAST_NUMBER.findall(text)
    if not found:
        return None
    value = found[-1].replace("$", "").replace(",", "")
    return "-" + value.replace("-", "") if "-" in value else value


def score_flexible(text: str | None, gold: str | int | float) -> float:
    """1.0 when the last number of ``text`` matches ``gold`` as :func:`answers_match` decides, else 0.0.

    The flexible extraction of lm-eval's GSM8K, for evaluation only: it ignores whether the answer was boxed,
    so it separates "cannot compute" from "does not follow the answer format". The RL reward stays
    :func:`score_reasoning`.
    """
    return 1.0 if answers_match(last_number(text), gold) else 0.0
