"""How much a reasoning policy thinks, and whether it closes its thinking, read from its raw outputs.

A reasoning policy writes ``<think> ... </think>answer``. Under ``model.answer_mode: require_think`` an output
without ``</think>`` scores 0 everywhere, so the share of outputs that close their thinking bounds every score,
and training can move it (a policy may learn to think less, or to stop before it runs out of tokens). These
figures are read from the *raw* outputs, never from the extracted answers, whatever the answer mode:

* ``closed``: outputs that contain ``</think>``; ``closed_share`` with its exact (Clopper-Pearson) 95% interval;
* ``mean_think_tokens``: the mean length of the thinking of the closed outputs, the text before the last
  ``</think>`` with a leading ``<think>`` (and surrounding whitespace) removed; None when none close;
* ``mean_think_tokens_all``: the same over every output, where an unclosed output's whole text (a leading
  ``<think>`` removed) counts as thinking: a cut-off output thought for its whole budget.

Lengths are tokens of the policy's tokenizer (no special tokens added) when one is given, else whitespace words
(``unit`` says which). Words are a rough proxy: they do not compare with token budgets such as
``evaluation.max_new_tokens``. A policy that never writes ``</think>`` (a non-reasoning model, ``answer_mode``
whole or after_think) has a closed share of 0 and everything it writes counted as "thinking" in
``mean_think_tokens_all``; that figure means nothing for such a policy.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from statistics import fmean
from typing import Any

from sif_lib.constraints.extraction import THINK_CLOSE, THINK_OPEN
from sif_lib.core.stats import difference

__all__ = ["compare_thinking", "think_part", "think_stats", "thinking_summary"]


def think_part(text: str) -> tuple[str, bool]:
    """``(thinking, closed)``: the text before the last ``</think>`` (the whole text when there is none), with a
    leading ``<think>`` and surrounding whitespace removed, and whether ``</think>`` occurs."""
    text = text or ""
    cut = text.rfind(THINK_CLOSE)
    closed = cut >= 0
    thought = (text[:cut] if closed else text).strip()
    if thought.startswith(THINK_OPEN):
        thought = thought[len(THINK_OPEN):].strip()
    return thought, closed


def _lengths(texts: Sequence[str], tokenizer: Any) -> list[int]:
    if tokenizer is None:
        return [len(t.split()) for t in texts]
    if not texts:
        return []
    return [len(ids) for ids in tokenizer(list(texts), add_special_tokens=False)["input_ids"]]


def _mean(values: Sequence[int]) -> float | None:
    return round(fmean(values), 4) if values else None


def think_stats(texts: Sequence[str], tokenizer: Any = None) -> dict:
    """Closed share (with its exact 95% interval) and mean thinking length of raw outputs (module docstring)."""
    from scipy.stats import binomtest

    parts = [think_part(t) for t in texts]
    n, closed = len(parts), sum(c for _, c in parts)
    lengths = _lengths([t for t, _ in parts], tokenizer)
    ci = None
    if n:
        interval = binomtest(closed, n).proportion_ci(confidence_level=0.95, method="exact")
        ci = [round(float(interval.low), 6), round(float(interval.high), 6)]
    return {"n": n, "closed": closed, "closed_share": round(closed / n, 6) if n else None, "closed_share_ci95": ci,
            "mean_think_tokens": _mean([k for k, (_, c) in zip(lengths, parts) if c]),
            "mean_think_tokens_all": _mean(lengths), "unit": "tokens" if tokenizer is not None else "words"}


def compare_thinking(base: Mapping, trained: Mapping) -> dict:
    """Trained minus base for the closed share and the mean thinking lengths (None where either is missing)."""
    def delta(key: str) -> float | None:
        return difference(base.get(key), trained.get(key))

    return {key: delta(key) for key in ("closed_share", "mean_think_tokens", "mean_think_tokens_all")}


def thinking_summary(outputs: Mapping[str, Mapping[str, Sequence[str]]], tokenizer: Any = None) -> dict:
    """``{set: {"base", "trained", "delta"}}`` from stage 07's raw outputs ``{policy: {set: [text]}}``."""
    out = {}
    for name in outputs["base"]:
        base, trained = think_stats(outputs["base"][name], tokenizer), think_stats(outputs["trained"][name], tokenizer)
        out[name] = {"base": base, "trained": trained, "delta": compare_thinking(base, trained)}
    return out
