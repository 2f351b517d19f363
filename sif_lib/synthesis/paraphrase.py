"""Optional paraphrase of constraint sentences by a local model (``synthesis.paraphrase``).

A local model (the policy) rewrites each constraint sentence. The verifier arguments never change, so a
rewrite is kept only if it passes :func:`paraphrase_is_faithful` (every number, quoted word, marker,
language name and argument value still present, no new numbers, the relation and any negation kept, most
content words kept, still a request rather than talk about it); otherwise the original sentence stays.
With the 135M default policy about 6% of sentences get a kept rewrite; the rest fall back. Each constraint
then records ``paraphrased`` and, when rewritten, ``original_description``.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from sif_lib.config.params import Params
from sif_lib.constraints import answer_text
from sif_lib.constraints.hard import LANGUAGE_NAMES
from sif_lib.policy.generation import ChatGenerator, Sampling
from sif_lib.synthesis.instructions import compose_prompt, normalize_sentence

_NUMBER = re.compile(r"\d+")
_QUOTED = re.compile(r"'([^']+)'|\"([^\"]+)\"|<<([^>]+)>>")
_MARKERS = re.compile(r"\*{2,}|<<|>>|\[[^\]]*\]|P\.P\.S|P\.S\.|```|\\boxed")
_RELATIONS = ("less than", "at least", "at most", "fewer than", "exactly", "more than")
_NEGATIONS = re.compile(r"\b(?:not|no|never|avoid|without|don't|nothing|none|neither|nor)\b", re.IGNORECASE)


def _kwarg_terms(kwargs: dict) -> list[str]:
    """Words and numbers a rewrite must keep, taken from the verifier arguments."""
    terms: list[str] = []
    for key, value in kwargs.items():
        if key == "prompt_to_repeat":
            continue  # The prompt is not in the sentence; it is the seed.
        values = value if isinstance(value, list) else [value]
        for v in values:
            if key == "language" and isinstance(v, str):
                terms.append(LANGUAGE_NAMES.get(v, v))
            elif isinstance(v, bool) or v is None:
                continue
            elif isinstance(v, (int, float, str)):
                terms.append(str(v))
    return terms


def key_terms(constraint: dict) -> list[str]:
    """What a rewrite of ``constraint['description']`` must still contain (compared case-insensitively)."""
    text = constraint["description"]
    terms = list(_NUMBER.findall(text))
    for match in _QUOTED.finditer(text):
        terms.append(next(g for g in match.groups() if g))
    terms += _MARKERS.findall(text)
    terms += [r for r in _RELATIONS if r in text.lower()]
    terms += [t for t in _kwarg_terms(constraint.get("kwargs") or {}) if t.lower() in text.lower()]
    unique: list[str] = []
    for t in terms:
        if t.strip() and t.lower() not in (u.lower() for u in unique):
            unique.append(t)
    return unique


_CONTENT_WORD = re.compile(r"[a-z]{4,}")


# Words that show the model talked about the task instead of doing it ("Rewrite the instruction to ...").
_META = re.compile(r"\b(?:instructions?|rewrit\w*|rephras\w*|paraphras\w*)\b", re.IGNORECASE)


# Openings of a reply or of a description ("The comparison is ...") rather than of a request to the reader.
_NOT_A_REQUEST = re.compile(r"^(?:I|I'm|I'll|I've|Sure|Here|Okay|OK|The|This|These|It|A|An)\b")


def _canonical(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


def paraphrase_is_faithful(constraint: dict, rewrite: str) -> bool:
    """A heuristic description check; true when the rewrite

    * differs from the original beyond case and punctuation, is one line, and is 0.5 to 2.5 times as long;
    * keeps every key term (:func:`key_terms`: numbers, quoted words, markers, relations, argument values such
      as keywords, a language name or a soft template's filled-in phrase) and adds no number;
    * keeps the polarity (a negation word present in both or in neither);
    * keeps at least half of the original's content words (four letters or more);
    * does not talk about the task ("rewrite", "instruction"), answer it in the first person, describe instead of
      request (an opening "The ..."/"This ..." the original lacks), or end on a colon.

    It rejects most unfaithful rewrites, not all: meaning is not checked beyond these surface cues.
    """
    original = constraint["description"]
    rewrite = rewrite.strip()
    if not rewrite or "\n" in rewrite or _canonical(rewrite) == _canonical(original):
        return False
    if not 0.5 * len(original) <= len(rewrite) <= 2.5 * len(original) + 20:
        return False
    low = rewrite.lower()
    if any(term.lower() not in low for term in key_terms(constraint)):
        return False
    if set(_NUMBER.findall(rewrite)) - set(_NUMBER.findall(original)):
        return False
    if bool(_NEGATIONS.search(original)) != bool(_NEGATIONS.search(rewrite)):
        return False
    words = set(_CONTENT_WORD.findall(original.lower()))
    if words and len(words & set(_CONTENT_WORD.findall(low))) < 0.5 * len(words):
        return False
    if _META.search(rewrite) and not _META.search(original):
        return False
    if rewrite.endswith(":"):
        return False
    return not (_NOT_A_REQUEST.match(rewrite) and not _NOT_A_REQUEST.match(original))


def _paraphrase_request(description: str) -> str:
    return ("Rewrite the following instruction so that it reads fluently. Keep its meaning, and keep every "
            "number, quoted word, name and symbol exactly as written. Reply with the rewritten instruction only, "
            f"on one line.\n\nInstruction: {description}")


# A short label before a colon: "Rewritten instruction:", "Reply:", "Rewrite the instruction so that it reads:".
_LEAD_IN = re.compile(r"^(?:(?:[\w' ]{0,40}\b(?:instructions?|rewrit\w*|rephras\w*|paraphras\w*)\b[\w' ]{0,30})"
                      r"|answer|reply|response|output)\s*:\s*", re.IGNORECASE)


def _clean_rewrite(text: str) -> str:
    """First non-empty line of a reply, without a label such as "Rewritten instruction:" or wrapping quotes."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    if not lines:
        return ""
    line = _LEAD_IN.sub("", lines[0]).strip()
    if len(line) > 1 and line[0] == line[-1] and line[0] in "\"'":
        line = line[1:-1].strip()
    return normalize_sentence(line)


def paraphrase_instructions(instructions: list[dict], generate: Callable[[list[str]], list[str]]) -> dict:
    """Rewrite constraint sentences in place with ``generate`` (a batch of requests -> a batch of replies).

    Multi-line descriptions (they carry a format example) are never rewritten. Each distinct sentence is asked
    once. Prompts are rebuilt from the kept sentences. Returns counts of attempts and kept rewrites.
    """
    originals = []
    for inst in instructions:
        for c in inst["constraints"]:
            if "\n" not in c["description"] and c["description"] not in originals:
                originals.append(c["description"])
    replies = generate([_paraphrase_request(d) for d in originals]) if originals else []
    rewrites = {d: _clean_rewrite(r) for d, r in zip(originals, replies)}
    kept = 0
    for inst in instructions:
        for c in inst["constraints"]:
            rewrite = rewrites.get(c["description"])
            if rewrite is not None and paraphrase_is_faithful(c, rewrite):
                c["original_description"] = c["description"]
                c["description"] = rewrite
                c["paraphrased"] = True
                kept += 1
            else:
                c["paraphrased"] = False
        inst["prompt"] = compose_prompt(inst["seed"], [c["description"] for c in inst["constraints"]])
    return {"paraphrase_requests": len(originals), "paraphrased_constraints": kept}


def policy_paraphraser(params: Params) -> Callable[[list[str]], list[str]]:
    """Greedy rewrites by the policy model through :class:`~sif_lib.policy.generation.ChatGenerator`."""
    generator = ChatGenerator(params.model.policy, dtype=params.run.dtype, device=params.run.device,
                              system_prompt=params.model.system_prompt, enable_thinking=params.model.enable_thinking)
    sampling = Sampling(max_new_tokens=64, temperature=0.0, seed=params.run.seed)
    # A reasoning policy thinks before it rewrites; only its answer part is the rewrite.
    return lambda requests: [answer_text(reply, params.model.answer_mode) for reply in
                             generator.generate(requests, sampling, batch_size=params.rollouts.batch_size)]
