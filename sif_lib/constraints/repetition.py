"""Repetition in generated text: a watch for the degenerate loops that a small policy can fall into under RL.

Rule-checked constraints can be met by degenerate text ("1. 1. 1. ..." contains no comma and many list
markers). The soft reward model is meant to punish such answers, but a small one trained on a few hundred
pseudo-labels does not always. These figures make the failure visible next to the reward; they are a
diagnostic, not part of the reward.

A completion counts as *repetitive* when it has at least ``min_words`` words and fewer than ``threshold`` of
its word n-grams (n = 4) are distinct: more than half of it repeats what it has already said. Ordinary prose
and lists score near 1.0; a loop of one phrase scores near 0. Words are whitespace tokens, lower-cased, so the
measure needs no tokenizer and reads the same for every policy.
"""

from __future__ import annotations

from collections.abc import Iterable

NGRAM = 4
THRESHOLD = 0.5
MIN_WORDS = 16


def distinct_ngram_ratio(text: str, n: int = NGRAM) -> float | None:
    """Distinct word n-grams over all word n-grams; None when the text has fewer than ``n`` words."""
    words = text.lower().split()
    grams = [tuple(words[i:i + n]) for i in range(len(words) - n + 1)]
    if not grams:
        return None
    return len(set(grams)) / len(grams)


def is_repetitive(text: str, n: int = NGRAM, threshold: float = THRESHOLD, min_words: int = MIN_WORDS) -> bool:
    """True when a text of at least ``min_words`` words has a distinct n-gram ratio below ``threshold``."""
    if len(text.split()) < min_words:
        return False
    ratio = distinct_ngram_ratio(text, n)
    return ratio is not None and ratio < threshold


def repetition_summary(texts: Iterable[str]) -> dict:
    """How many texts are repetitive, their share, and the mean distinct 4-gram ratio (over texts long enough
    to have one)."""
    texts = list(texts)
    ratios = [r for r in (distinct_ngram_ratio(t) for t in texts) if r is not None]
    repetitive = sum(is_repetitive(t) for t in texts)
    return {"n": len(texts), "repetitive": repetitive,
            "repetitive_share": round(repetitive / len(texts), 4) if texts else None,
            "mean_distinct_4grams": round(sum(ratios) / len(ratios), 4) if ratios else None}
