"""Extract the final answer that the constraints are checked on.

Reasoning models write ``<think> ... </think>`` before their answer; only the answer is scored.
"""

from __future__ import annotations

__all__ = ["ANSWER_MODES", "THINK_CLOSE", "THINK_OPEN", "answer_text", "extract_answer"]

THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"
ANSWER_MODES = ("after_think", "whole", "require_think")


def extract_answer(text: str | None, mode: str = "after_think") -> str | None:
    """The part of a model output that constraints are checked on.

    Modes:

    * ``"after_think"``: the text after the last ``</think>``, with surrounding whitespace removed.  Without a
      ``</think>`` the whole text, unchanged, is the answer, except that an unclosed leading ``<think>`` block
      (reasoning cut off before it finished) is stripped too, which leaves an empty answer.
    * ``"whole"``: the text unchanged, as IFEval scores a response.
    * ``"require_think"``: like ``"after_think"``, but None when there is no ``</think>``; the paper scores such
      an output 0.

    Whitespace around the text after ``</think>`` is removed because a reasoning model's answer usually starts
    with blank lines there, which would otherwise count as an empty first paragraph.  None in gives None out.
    """
    if mode not in ANSWER_MODES:
        raise ValueError(f"answer mode must be one of {ANSWER_MODES}, got {mode!r}")
    if text is None:
        return None
    if mode == "whole":
        return text
    cut = text.rfind(THINK_CLOSE)
    if cut >= 0:
        return text[cut + len(THINK_CLOSE):].strip()
    if mode == "require_think":
        return None
    if text.lstrip().startswith(THINK_OPEN):
        return ""
    return text


def answer_text(text: str | None, mode: str = "after_think") -> str:
    """:func:`extract_answer` for callers that need a string: no answer becomes ``""``."""
    answer = extract_answer(text, mode)
    return "" if answer is None else answer
