"""What the reward model reads: the paper's template around one response and one constraint.

The model is a two-class sequence classifier. It sees one response and one constraint, never the instruction,
in the paper's template (:data:`RM_TEMPLATE`); its soft score is ``softmax(logits)[1]``. For a reasoning policy
the response is the answer part that ``model.answer_mode`` selects (:func:`answered_pairs`), as the reward
reads it. Every scorer, trainer and client builds its input here, so all of them classify the same text.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sif_lib.constraints import extract_answer
from sif_lib.core.errors import InputError
from sif_lib.core.io import read_json

RM_TEMPLATE = ("You need to determine whether the response adheres to this constraint. "
               "Output 1 if it does, otherwise output 0. Response: {response} Constraint: {constraint}")


RM_FORMAT = "sif-rm/1"


META_FILE = "sif_rm.json"


CARD_FILE = "README.md"


def rm_input(response: str, constraint_description: str, tokenizer: Any = None, max_length: int | None = None) -> str:
    """The paper's classifier input for one (response, constraint) pair.

    With a tokenizer and ``max_length``, the *response* is cut (at a token boundary) so that the whole text,
    constraint included, fits in ``max_length`` tokens: the constraint is what the classifier is asked about,
    so it must never be the part that is lost. Only when the template and the constraint alone exceed the limit
    is the response dropped entirely; the tokenizer's own truncation then cuts the constraint's tail.
    """
    text = RM_TEMPLATE.format(response=response, constraint=constraint_description)
    if tokenizer is None or max_length is None:
        return text
    if _n_tokens(tokenizer, text) <= max_length:
        return text
    return _truncated_input(tokenizer, response, constraint_description, max_length)


def _n_tokens(tokenizer: Any, text: str) -> int:
    return len(tokenizer(text, add_special_tokens=True)["input_ids"])


def _truncated_input(tokenizer: Any, response: str, constraint: str, max_length: int) -> str:
    bare = RM_TEMPLATE.format(response="", constraint=constraint)
    budget = max_length - _n_tokens(tokenizer, bare)
    if budget <= 0:
        return bare
    enc = tokenizer(response, add_special_tokens=False, return_offsets_mapping=getattr(tokenizer, "is_fast", False))
    ids = enc["input_ids"]
    offsets = enc.get("offset_mapping")
    # Tokens can merge across the response/constraint boundary, so the first cut may overshoot by a token or
    # two; shrink until the assembled text really fits.
    while budget > 0:
        if offsets is not None:
            cut = response[:offsets[min(budget, len(ids)) - 1][1]]
        else:
            cut = tokenizer.decode(ids[:budget], skip_special_tokens=True)
        text = RM_TEMPLATE.format(response=cut.rstrip(), constraint=constraint)
        overflow = _n_tokens(tokenizer, text) - max_length
        if overflow <= 0:
            return text
        budget -= max(1, overflow)
    return bare


def encode_pairs(tokenizer: Any, pairs: Sequence[tuple[str, str]], max_length: int,
                 stats: dict | None = None) -> list[list[int]]:
    """Token ids of each pair's input. One batched tokenizer call; only over-long inputs are re-cut.

    ``stats``, when given, receives ``truncated``: how many responses had to be cut.
    """
    texts = [RM_TEMPLATE.format(response=r, constraint=c) for r, c in pairs]
    if not texts:
        return []
    ids = tokenizer(texts, add_special_tokens=True)["input_ids"]
    truncated = 0
    for i, row in enumerate(ids):
        if len(row) > max_length:
            truncated += 1
            text = _truncated_input(tokenizer, pairs[i][0], pairs[i][1], max_length)
            ids[i] = tokenizer(text, add_special_tokens=True, truncation=True, max_length=max_length)["input_ids"]
    if stats is not None:
        stats["truncated"] = truncated
    return ids


def padded_batches(ids: Sequence[Sequence[int]], batch_size: int, pad_id: int):
    """Token-id inputs in batches of similar length (shortest first), right-padded: yields ``(indices,
    input_ids, attention_mask)`` with the indices into ``ids`` of each batch's rows. Batching by length keeps
    padding, and so wasted compute, small; callers put results back in input order by the indices."""
    import torch  # heavy: only where a model runs

    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    for start in range(0, len(order), batch_size):
        chunk = order[start:start + batch_size]
        width = max(len(ids[i]) for i in chunk)
        input_ids = torch.full((len(chunk), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(chunk), width), dtype=torch.long)
        for row, i in enumerate(chunk):
            input_ids[row, :len(ids[i])] = torch.tensor(ids[i], dtype=torch.long)
            mask[row, :len(ids[i])] = 1
        yield chunk, input_ids, mask


def read_meta(path: Path) -> dict:
    """A reward-model directory's ``sif_rm.json`` (its input settings and training record)."""
    meta_path = path / META_FILE
    meta = read_json(meta_path, "this directory was not written by the reward-model stage")
    if not isinstance(meta, dict) or not isinstance(meta.get("max_length"), int):
        raise InputError(f"{meta_path}: key 'max_length' must be an integer")
    return meta


def check_pair(pair: Any, index: int) -> tuple[str, str]:
    if not isinstance(pair, (tuple, list)) or len(pair) != 2 or not all(isinstance(x, str) for x in pair):
        raise InputError(f"pair {index}: expected (response: str, constraint: str), got {type(pair).__name__}")
    return pair[0], pair[1]


def answered_pairs(rows: list[dict], answer_mode: str) -> tuple[list[dict], list[tuple[str, str]]]:
    """The rows whose response has an answer under ``model.answer_mode``, each with the classifier's
    ``(answer, constraint description)`` pair: for a reasoning model the text after ``</think>``, as the reward
    reads it. A response with no answer (no ``</think>`` under require_think, nothing after it) is left out:
    the reward never asks the reward model about one, so it is neither trained nor measured on it."""
    kept, pairs = [], []
    for row in rows:
        answer = (extract_answer(row["response"], answer_mode) or "").strip()
        if answer:
            kept.append(row)
            pairs.append((answer, row["constraint"]["description"]))
    return kept, pairs
