"""Batched decoding that keeps only live sequences in the batch: the CPU path of :class:`ChatGenerator`.

``model.generate`` decodes a static batch until its longest member ends: every finished sequence keeps costing
a row of every matrix product (on the evaluation workload of the demo, 30% of the decoded rows). Its default
KV cache also concatenates the whole cache at every step. This loop differs in three ways, and in nothing else:

* a finished sequence leaves the batch (its rows of the KV cache are dropped), so the batch shrinks as
  answers end;
* grouped-query attention shares its key/value heads inside torch's kernel also under a padding mask
  (:func:`sdpa_gqa_attention`), instead of copying them to every query head;
* the KV cache grows in place: keys and values are views into a buffer that doubles when full
  (:class:`GrowingCache`), instead of a new concatenated tensor per step and layer;
* a prompt repeated in the batch (GRPO's group of completions per prompt) is run through the model once, and its
  KV cache rows copied to its repeats;
* a sampled token comes from one uniform draw per row against the row's cumulative distribution
  (:func:`sample_rows`), where ``torch.multinomial`` draws an exponential variate for every vocabulary entry.

Greedy decoding picks the same tokens as ``generate`` (``tests/test_generation.py`` checks token-for-token
equality on the embedded model, under other batch compositions than the reference's). Sampling uses transformers'
own temperature, top-k, top-p and min-p warpers and a seeded ``torch.Generator``: the same distribution as
``generate``'s, other draws (``sampler="multinomial"`` draws as ``torch.multinomial`` does, for comparison).

Why by hand: on the evaluation workload on 2 CPU cores, transformers' continuous batching (``generate_batch``) was
1.17x as fast as static ``generate`` and its static cache 0.98x, this loop 2.68x (``sif bench generate`` prints
all of them).

Simplification: only models whose every layer attends to the full context (no sliding-window layers); others
fall back to ``generate`` (:func:`supports`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from transformers import AttentionInterface
from transformers.cache_utils import Cache, DynamicCache, DynamicLayer
from transformers.generation.logits_process import (
    MinPLogitsWarper,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

GQA_SDPA = "sif_sdpa_gqa"


def sdpa_gqa_attention(module, query, key, value, attention_mask, dropout=0.0, scaling=None, is_causal=None,
                       **kwargs):
    """transformers' SDPA attention, except that grouped-query heads are shared inside torch's kernel
    (``enable_gqa``) also when there is a padding mask. transformers copies every key and value head to each
    query head whenever a mask is given (its fused GQA path is for masks on CUDA); on a padded CPU batch of 32
    that copy took as long as the attention itself."""
    if attention_mask is not None:
        attention_mask = attention_mask[:, :, :, : key.shape[-2]]
    if is_causal is None:
        is_causal = query.shape[2] > 1 and attention_mask is None and getattr(module, "is_causal", True)
    out = F.scaled_dot_product_attention(query, key, value, attn_mask=attention_mask, dropout_p=dropout,
                                         scale=scaling, is_causal=is_causal, enable_gqa=True)
    return out.transpose(1, 2).contiguous(), None


AttentionInterface.register(GQA_SDPA, sdpa_gqa_attention)
# The mask must be built exactly as for "sdpa": an attention name without a mask function gets no padding mask.
AttentionMaskInterface.register(GQA_SDPA, sdpa_mask)


@contextmanager
def gqa_attention(model):
    """Decode with :func:`sdpa_gqa_attention` when the model uses SDPA; the model's setting is restored after."""
    before = getattr(model.config, "_attn_implementation", None)
    if before != "sdpa":
        yield
        return
    model.set_attn_implementation(GQA_SDPA)
    try:
        yield
    finally:
        model.set_attn_implementation(before)


class GrowingLayer(DynamicLayer):
    """A cache layer whose keys and values are views into a buffer that doubles when full."""

    def update(self, key_states, value_states, *args, **kwargs):
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
            self._keys_buffer = self._values_buffer = None
        length = self.keys.shape[-2] if self.keys.numel() else 0
        new = key_states.shape[-2]
        buffer = self._keys_buffer
        if buffer is None or buffer.shape[0] != key_states.shape[0] or length + new > buffer.shape[-2] \
                or self.keys.data_ptr() != buffer.data_ptr():
            self._allocate(key_states, value_states, max(2 * (length + new), 256), length)
        self._keys_buffer[..., length:length + new, :] = key_states
        self._values_buffer[..., length:length + new, :] = value_states
        self.keys = self._keys_buffer[..., :length + new, :]
        self.values = self._values_buffer[..., :length + new, :]
        return self.keys, self.values

    def _allocate(self, key_states, value_states, capacity: int, length: int) -> None:
        shape = (*key_states.shape[:-2], capacity, key_states.shape[-1])
        keys, values = key_states.new_empty(shape), value_states.new_empty(shape)
        if length:  # what is cached so far (also after a crop or a row selection replaced the views)
            keys[..., :length, :] = self.keys
            values[..., :length, :] = self.values
        self._keys_buffer, self._values_buffer = keys, values

    def keep_rows(self, rows: torch.Tensor) -> None:
        if not self.is_initialized or self.keys.numel() == 0:
            return
        length = self.keys.shape[-2]
        self._keys_buffer = self._keys_buffer.index_select(0, rows)
        self._values_buffer = self._values_buffer.index_select(0, rows)
        self.keys = self._keys_buffer[..., :length, :]
        self.values = self._values_buffer[..., :length, :]


class GrowingCache(DynamicCache):
    """A ``DynamicCache`` of :class:`GrowingLayer`; ``keep_rows`` drops finished sequences."""

    def __init__(self):
        Cache.__init__(self, layer_class_to_replicate=GrowingLayer)

    def keep_rows(self, rows: torch.Tensor) -> None:
        for layer in self.layers:
            layer.keep_rows(rows)


def supports(model) -> bool:
    """Decoder-only models with full attention in every layer (Llama, Qwen2/3 without sliding windows, ...)."""
    config = model.config
    if getattr(config, "is_encoder_decoder", False):
        return False
    layer_types = getattr(config, "layer_types", None)
    if layer_types and any(kind != "full_attention" for kind in layer_types):
        return False
    return not (getattr(config, "sliding_window", None) and getattr(config, "use_sliding_window", True))


def sample_rows(probs: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """One index per row of ``probs`` (rows of non-negative weights), drawn with probability proportional to its
    weight: the first index whose cumulative weight exceeds ``u`` times the row's total, ``u`` uniform on [0, 1).

    ``torch.multinomial`` draws one exponential variate per entry instead: for SmolLM2's 49,152-token vocabulary
    that was 15 ms of a 170 ms decoding step at 16 rows on 2 CPU cores; this is one cumulative sum and one binary
    search per row (rollouts at 32 rows: 1.16x the tokens/s, ``sif bench generate``). The cumulative sum is taken
    in float64, so an entry's share is off by at most about 1e-11 of the total (49,152 roundings of 1e-16), far
    below any probability a float32 softmax expresses; an entry of weight 0 is never drawn."""
    cdf = probs.cumsum(-1, dtype=torch.float64)
    u = torch.rand((probs.shape[0], 1), generator=generator, dtype=torch.float64, device=probs.device)
    picked = torch.searchsorted(cdf, u * cdf[:, -1:], right=True).squeeze(1)
    return picked.clamp_(max=probs.shape[-1] - 1)


def eos_ids(model) -> set[int]:
    eos = model.generation_config.eos_token_id
    if eos is None:
        eos = model.config.eos_token_id
    return set(eos if isinstance(eos, (list, tuple)) else [eos]) - {None}


def decode(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, max_new_tokens: int,
           temperature: float = 0.0, top_p: float = 1.0, generator: torch.Generator | None = None,
           stats: dict | None = None, top_k: int | None = None, min_p: float | None = None,
           eos: set[int] | None = None, greedy_rows: Sequence[int] = (),
           on_finish: Callable[[int], None] | None = None, sampler: str = "cdf") -> list[list[int]]:
    """New token ids for each row of a left-padded batch, each ending at its first end-of-sequence token (kept,
    as ``generate`` keeps it) or after ``max_new_tokens``. Sampling (``temperature`` > 0) applies transformers'
    warpers in ``generate``'s order: temperature, top-k, top-p, min-p. ``eos`` defaults to the model's.
    ``greedy_rows`` are decoded greedily in the same batch as the sampled ones (one pass of decoding steps, not
    two: on a CPU a step costs about the same for 4 rows as for 16).
    ``stats`` (optional) receives ``rows_decoded``: the batch rows summed over steps, the work done.
    ``on_finish(row)`` (optional) is called as each row's answer ends, with the row's index in the batch: at its
    end-of-sequence token, or at the last step for the rows that ran to ``max_new_tokens``.
    ``sampler``: ``"cdf"`` (:func:`sample_rows`) or ``"multinomial"`` (``torch.multinomial``: same distribution,
    other draws, slower; ``sif bench generate`` times both)."""
    if sampler not in ("cdf", "multinomial"):
        raise ValueError(f"sampler must be 'cdf' or 'multinomial', got {sampler!r}")
    warpers = []
    if temperature > 0:
        warpers.append(TemperatureLogitsWarper(temperature))
        if top_k:
            warpers.append(TopKLogitsWarper(top_k))
        if top_p is not None and top_p < 1.0:
            warpers.append(TopPLogitsWarper(top_p))
        if min_p:
            warpers.append(MinPLogitsWarper(min_p))
    with torch.no_grad(), gqa_attention(model):
        return _decode(model, input_ids, attention_mask, max_new_tokens, warpers, temperature > 0, generator, stats,
                       eos if eos is not None else eos_ids(model), greedy_rows, on_finish,
                       sample_rows if sampler == "cdf" else _multinomial)


def left_pad(rows: list[list[int]], pad_id: int, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Token id lists as a left-padded batch and its attention mask."""
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        if row:
            ids[i, width - len(row):] = torch.tensor(row, dtype=torch.long)
            mask[i, width - len(row):] = 1
    return ids.to(device), mask.to(device)


def _prefill(model, input_ids, mask, positions, cache: GrowingCache) -> torch.Tensor:
    """The prompt pass: each distinct prompt row is run once and its KV cache rows copied to its repeats (GRPO
    samples every prompt ``num_generations`` times, so 4 of its 16 rows are computed instead of 16). Returns the
    last position's logits for every row."""
    unique, inverse = torch.unique(torch.cat([input_ids, mask.to(input_ids.dtype)], dim=1), dim=0,
                                   return_inverse=True)
    if len(unique) == len(input_ids):
        return model(input_ids=input_ids, attention_mask=mask, position_ids=positions, past_key_values=cache,
                     use_cache=True, logits_to_keep=1).logits[:, -1]
    device = input_ids.device
    first = torch.full((len(unique),), len(input_ids), dtype=torch.long, device=device)
    first.scatter_reduce_(0, inverse, torch.arange(len(input_ids), device=device), reduce="amin")
    logits = model(input_ids=input_ids[first], attention_mask=mask[first], position_ids=positions[first],
                   past_key_values=cache, use_cache=True, logits_to_keep=1).logits[:, -1]
    cache.keep_rows(inverse)
    return logits[inverse]


def _multinomial(probs: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    return torch.multinomial(probs, 1, generator=generator).squeeze(1)


def _decode(model, input_ids, attention_mask, max_new_tokens, warpers, sample, generator, stats, eos, greedy_rows=(),
            on_finish=None, draw=sample_rows):
    cache = GrowingCache()
    mask = attention_mask
    positions = (mask.long().cumsum(-1) - 1).clamp(min=0)
    logits = _prefill(model, input_ids, mask, positions, cache)
    next_position = positions[:, -1:] + 1
    live = torch.arange(input_ids.shape[0])  # the original row of each row still in the batch
    out: list[list[int]] = [[] for _ in range(input_ids.shape[0])]
    greedy = torch.zeros(input_ids.shape[0], dtype=torch.bool, device=logits.device)
    greedy[list(greedy_rows)] = True
    rows_decoded = 0
    for step in range(max_new_tokens):
        rows_decoded += len(live)
        if sample:
            scores = logits.float()
            for warp in warpers:
                scores = warp(None, scores)
            tokens = draw(torch.softmax(scores, dim=-1), generator)
            if greedy_rows:
                tokens = torch.where(greedy, logits.argmax(dim=-1), tokens)
        else:
            tokens = logits.argmax(dim=-1)
        keep = []
        last = step == max_new_tokens - 1
        for i, (row, token) in enumerate(zip(live.tolist(), tokens.tolist())):
            out[row].append(token)
            if token not in eos:
                keep.append(i)
            if on_finish is not None and (last or token in eos):
                on_finish(row)
        if not keep or last:
            break
        if len(keep) < len(live):
            rows = torch.tensor(keep, device=tokens.device)
            cache.keep_rows(rows)
            live = live[rows.cpu()]
            tokens, mask, next_position, greedy = tokens[rows], mask[rows], next_position[rows], greedy[rows]
        mask = torch.cat([mask, mask.new_ones((len(live), 1))], dim=1)
        logits = model(input_ids=tokens[:, None], attention_mask=mask, position_ids=next_position,
                       past_key_values=cache, use_cache=True).logits[:, -1]
        next_position = next_position + 1
    if stats is not None:
        stats["rows_decoded"] = stats.get("rows_decoded", 0) + rows_decoded
    return out
