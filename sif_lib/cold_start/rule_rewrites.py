"""Programs that rewrite one of the policy's own answers so that it meets a hard constraint it did not meet.

Why: SmolLM2-135M never writes an all-lowercase answer, ends on a set phrase or wraps its answer in JSON, so for
those IFEval ids every GRPO group scores zero and gives no gradient. No stronger model may write the missing
examples; a program can, for rules that are about form rather than content: lowercase the answer, append the
phrase, wrap it. Such rewrites of the policy's own answers are SFT data that can make an id learnable.

Each rewriter changes the answer as little as its rule needs and is then held to the verifier of
:mod:`sif_lib.constraints.hard`: :func:`rewrite` returns None unless every constraint of the item verifies on
the result and the result is not degenerate (:mod:`sif_lib.constraints.degenerate`), so a rewrite never teaches a
loop or a stuffed marker.

Simplifications, each a choice of what not to fake:

* only ids whose rule is about form have a rewriter (:data:`REWRITERS`); rules about content (keywords, the
  response language, placeholders for details the answer lacks, a yes/no verdict, a second different response,
  a paragraph that must start with a given word) are left to the policy: a program could meet their checks only
  with text that does not mean what the rule asks (the answer cut in two halves, an arbitrary word in front);
* a postscript is one sentence from a small fixed list, and a title is made of the request's first words:
  the program does not understand the answer;
* "at least N words or sentences" cannot be met by cutting, so only "less than" has a rewriter;
* structure (bullets, sections, paragraphs, highlights) is cut along the answer's own sentences (Punkt), so an
  answer with fewer sentences than the rule needs is not rewritten.
"""

from __future__ import annotations

import json
import re
import zlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sif_lib.constraints import check_constraint
from sif_lib.constraints.degenerate import is_degenerate
from sif_lib.constraints.text import count_words, split_sentences

Rewriter = Callable[[str, Mapping[str, Any], str], "str | None"]

POSTSCRIPTS = ("I hope this helps.", "Thank you for reading.", "Let me know if you have any questions.",
               "Feel free to ask for more details.")
_LEADING_MARKER = re.compile(r"^\s*(?:[-*]+|\d+[.)])\s+")
_REQUEST_VERBS = {"write", "give", "create", "compose", "make", "generate", "describe", "explain", "draft",
                  "list", "tell", "provide", "please", "can", "you", "could", "me", "us", "a", "an", "the"}


def _flat_sentences(answer: str) -> list[str]:
    """The answer's sentences on one line each, list markers and section words removed."""
    lines = [_LEADING_MARKER.sub("", line).strip() for line in answer.replace("***", "\n").splitlines()]
    text = " ".join(line for line in lines if line and set(line) - set("-*#="))
    return [s.strip() for s in split_sentences(text) if s.strip()]


def _groups(items: Sequence[str], n: int) -> list[list[str]] | None:
    """``items`` cut into ``n`` consecutive, non-empty groups of near-equal size (None when too few)."""
    if n < 1 or len(items) < n:
        return None
    size, extra = divmod(len(items), n)
    out, start = [], 0
    for i in range(n):
        stop = start + size + (1 if i < extra else 0)
        out.append(list(items[start:stop]))
        start = stop
    return out


def lowercase(answer: str, kwargs: Mapping[str, Any], request: str) -> str:
    return answer.lower()


def uppercase(answer: str, kwargs: Mapping[str, Any], request: str) -> str:
    return answer.upper()


def capital_words(answer: str, kwargs: Mapping[str, Any], request: str) -> str | None:
    """At least N all-capital words: the first words of the answer in capitals; less than N: none but ``I``."""
    n, relation = int(kwargs["capital_frequency"]), kwargs["capital_relation"]
    if relation == "less than":
        return re.sub(r"\b[A-Z]{2,}\b", lambda m: m.group(0).capitalize(), answer)
    words = list(re.finditer(r"\b[A-Za-z]{2,}\b", answer))
    if len(words) < n:
        return None
    out, last = [], 0
    for m in words[:n]:
        out += [answer[last:m.start()], m.group(0).upper()]
        last = m.end()
    return "".join(out) + answer[last:]


def end_phrase(answer: str, kwargs: Mapping[str, Any], request: str) -> str:
    body = answer.rstrip().rstrip('"')
    return f"{body}\n\n{kwargs['end_phrase'].strip()}"


def quotation(answer: str, kwargs: Mapping[str, Any], request: str) -> str:
    body = answer.strip().strip('"')
    return f'"{body}"'


def json_wrap(answer: str, kwargs: Mapping[str, Any], request: str) -> str:
    return "```json\n" + json.dumps({"response": answer.strip()}, ensure_ascii=False, indent=2) + "\n```"


def repeat_request(answer: str, kwargs: Mapping[str, Any], request: str) -> str:
    return f"{kwargs['prompt_to_repeat'].strip()}\n\n{answer.strip()}"


def no_comma(answer: str, kwargs: Mapping[str, Any], request: str) -> str:
    return re.sub(r"\s*,\s*", " ", answer).strip()


def title(answer: str, kwargs: Mapping[str, Any], request: str) -> str | None:
    """``<<Title>>`` from the request's first content words, on its own line above the answer."""
    words = re.findall(r"[A-Za-z][A-Za-z'-]*", request.split("\n")[0])
    while words and words[0].lower() in _REQUEST_VERBS:
        words.pop(0)
    if not words:
        return None
    return f"<<{' '.join(words[:5]).capitalize()}>>\n\n{answer.strip()}"


def postscript(answer: str, kwargs: Mapping[str, Any], request: str) -> str:
    note = POSTSCRIPTS[zlib.crc32(answer.encode()) % len(POSTSCRIPTS)]
    return f"{answer.rstrip()}\n\n{kwargs['postscript_marker'].strip()} {note}"


def highlights(answer: str, kwargs: Mapping[str, Any], request: str) -> str | None:
    """At least N ``*highlighted*`` spans: the answer's first N sentences, each on its own line."""
    sentences = _flat_sentences(answer.replace("*", ""))
    n = int(kwargs["num_highlights"])
    if len(sentences) < n:
        return None
    return "\n".join([f"*{s}*" for s in sentences[:n]] + sentences[n:])


def bullets(answer: str, kwargs: Mapping[str, Any], request: str) -> str | None:
    """Exactly N markdown bullets, the answer's sentences shared out among them."""
    groups = _groups(_flat_sentences(answer), int(kwargs["num_bullets"]))
    return None if groups is None else "\n".join("* " + " ".join(g) for g in groups)


def sections(answer: str, kwargs: Mapping[str, Any], request: str) -> str | None:
    """N sections headed ``<splitter> i``, the answer's sentences shared out among them."""
    groups = _groups(_flat_sentences(answer), int(kwargs["num_sections"]))
    word = kwargs["section_spliter"].strip()
    return None if groups is None else "\n\n".join(f"{word} {i}\n{' '.join(g)}" for i, g in enumerate(groups, 1))


def divided_paragraphs(answer: str, kwargs: Mapping[str, Any], request: str) -> str | None:
    """Exactly N paragraphs separated by ``***``."""
    groups = _groups(_flat_sentences(answer), int(kwargs["num_paragraphs"]))
    return None if groups is None else "\n\n***\n\n".join(" ".join(g) for g in groups)


def fewer_sentences(answer: str, kwargs: Mapping[str, Any], request: str) -> str | None:
    """Less than N sentences: the first N - 1 of them (at least N cannot be met by cutting)."""
    if kwargs["relation"] != "less than" or int(kwargs["num_sentences"]) < 2:
        return None
    return " ".join(_flat_sentences(answer)[:int(kwargs["num_sentences"]) - 1])


def fewer_words(answer: str, kwargs: Mapping[str, Any], request: str) -> str | None:
    """Less than N words: whole sentences while they fit."""
    if kwargs["relation"] != "less than":
        return None
    kept: list[str] = []
    for sentence in _flat_sentences(answer):
        if count_words(" ".join([*kept, sentence])) >= int(kwargs["num_words"]):
            break
        kept.append(sentence)
    return " ".join(kept) or None


# Structure first, then text changes, then case, then whole-answer wrappers: a later step must not undo an earlier
# one (lowercasing after appending the end phrase keeps both: the phrase check ignores case).
REWRITERS: dict[str, Rewriter] = {
    "length_constraints:number_sentences": fewer_sentences,
    "length_constraints:number_words": fewer_words,
    "detectable_format:number_bullet_lists": bullets,
    "detectable_format:multiple_sections": sections,
    "length_constraints:number_paragraphs": divided_paragraphs,
    "detectable_format:number_highlighted_sections": highlights,
    "detectable_format:title": title,
    "punctuation:no_comma": no_comma,
    "detectable_content:postscript": postscript,
    "startend:end_checker": end_phrase,
    "change_case:capital_word_frequency": capital_words,
    "change_case:english_lowercase": lowercase,
    "change_case:english_capital": uppercase,
    "combination:repeat_prompt": repeat_request,
    "startend:quotation": quotation,
    "detectable_format:json_format": json_wrap,
}
ORDER = {iid: i for i, iid in enumerate(REWRITERS)}


def rewrite(answer: str, constraints: Sequence[Mapping[str, Any]], request: str) -> str | None:
    """``answer`` rewritten to meet every hard constraint of ``constraints`` (records with ``kind``, ``id`` and
    ``kwargs``; soft ones are ignored), or None: an unmet id without a rewriter, a rewriter that cannot apply, a
    result that fails a verifier or is degenerate. Constraints already met are left to the answer as it is."""
    hard = [c for c in constraints if c.get("kind", "hard") == "hard"]
    text = answer.strip()
    for c in sorted(hard, key=lambda c: ORDER.get(c["id"], -1)):
        if check_constraint(text, c["id"], c.get("kwargs")):
            continue
        rewriter = REWRITERS.get(c["id"])
        if rewriter is None:
            return None
        text = rewriter(text, c.get("kwargs") or {}, request)
        if not text:
            return None
    if not all(check_constraint(text, c["id"], c.get("kwargs")) for c in hard) or is_degenerate(text, hard):
        return None
    return text


