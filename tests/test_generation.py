"""The shrinking decoder (sif_lib/policy/decoding.py) writes what ``model.generate`` writes.

Greedy equality is checked on the embedded SmolLM2-135M-Instruct, on prompts of different lengths, against
``generate`` on static batches in prompt order (what every stage did before). The decoder batches differently
(length-sorted, rows leave as they finish), so equality here is the claim the stages rely on.
"""

from __future__ import annotations

import pytest
import torch

from sif_lib.policy import decoding
from sif_lib.policy.generation import ChatGenerator, Sampling

PROMPTS = [
    "Write a haiku about rain.",
    "List three uses of a paperclip. Use bullet points.",
    "What is 17 + 25? Answer with the number only.",
    "Explain in two sentences why the sky is blue, and end your answer with the phrase 'That is all.'",
    "Write a title for a blog post about learning Rust, wrapped in double angular brackets like <<title>>.",
    "Say hello.",
    "Describe a cat without using any commas, in at most 40 words.",
    "Give a short motivational quote, in all capital letters.",
    "Translate 'good morning' into French and Spanish.",
    "Write a limerick about a programmer who never sleeps. Highlight one line with markdown, like *this*.",
]


def _static(generator: ChatGenerator, prompts, max_new_tokens: int, batch: int) -> list[str]:
    tok, answers = generator.tokenizer, []
    for start in range(0, len(prompts), batch):
        enc = tok([generator.render(p) for p in prompts[start:start + batch]], return_tensors="pt", padding=True,
                  add_special_tokens=False)
        with torch.no_grad():
            out = generator.model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False, temperature=None,
                                           top_p=None, top_k=None, pad_token_id=tok.pad_token_id)
        answers += [t.strip() for t in tok.batch_decode(out[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)]
    return answers


@pytest.fixture(scope="module")
def smollm2():
    return ChatGenerator("smollm2-135m-instruct", backend="hf", dtype="float32", device="cpu")


def test_shrinking_greedy_equals_generate_on_the_embedded_model(smollm2):
    assert smollm2.decoding == "shrinking" and decoding.supports(smollm2.model)
    expected = _static(smollm2, PROMPTS, max_new_tokens=48, batch=4)
    for batch in (3, 4, 10):  # other batch compositions than the reference's
        smollm2.stats.clear()
        got = smollm2.generate(PROMPTS, Sampling(max_new_tokens=48), batch_size=batch)
        assert got == expected, batch
    # Answers that end early left the batch: fewer decoded rows than answers x budget (the static batches' work).
    assert smollm2.stats["rows_decoded"] < len(PROMPTS) * 48
    assert smollm2.model.config._attn_implementation == "sdpa"  # the decoder's attention setting was restored


def test_generate_method_is_kept_and_equal(smollm2):
    static = ChatGenerator("smollm2-135m-instruct", backend="hf", model=smollm2.model, tokenizer=smollm2.tokenizer,
                           decoding="generate")
    assert static.generate(PROMPTS[:4], Sampling(max_new_tokens=24), batch_size=2) == \
        smollm2.generate(PROMPTS[:4], Sampling(max_new_tokens=24), batch_size=2)
    with pytest.raises(ValueError, match="decoding must be one of"):
        ChatGenerator("tiny", backend="hf", decoding="beam")


def test_sampling_is_seeded_and_draws_differ_between_seeds(smollm2):
    hot = Sampling(max_new_tokens=24, temperature=1.0, seed=3)
    first = smollm2.generate(PROMPTS[:4], hot, batch_size=4)
    assert smollm2.generate(PROMPTS[:4], hot, batch_size=4) == first
    other = smollm2.generate(PROMPTS[:4], Sampling(max_new_tokens=24, temperature=1.0, seed=4), batch_size=4)
    assert other != first


def test_windows_call_back_in_prompt_order():
    gen = ChatGenerator("tiny", backend="hf", dtype="float32", device="cpu")
    calls = []
    out = gen.generate(PROMPTS, Sampling(max_new_tokens=4), batch_size=2,
                       on_batch=lambda start, batch: calls.append((start, len(batch))))
    assert calls == [(0, 8), (8, 2)]  # windows of 4 batches, in order
    assert len(out) == len(PROMPTS)


def test_growing_cache_keeps_what_was_written():
    cache = decoding.GrowingCache()
    keys = [torch.randn(3, 2, n, 4) for n in (5, 1, 300)]  # the last outgrows the first buffer
    for k in keys:
        cache.update(k, -k, layer_idx=0)
    whole = torch.cat(keys, dim=2)
    assert torch.equal(cache.layers[0].keys, whole) and torch.equal(cache.layers[0].values, -whole)
    cache.keep_rows(torch.tensor([2, 0]))
    assert torch.equal(cache.layers[0].keys, whole[[2, 0]])
    cache.update(keys[1][:2], keys[1][:2], layer_idx=0)
    assert cache.get_seq_length() == whole.shape[2] + 1


def test_progress_counts_answers_as_they_end_inside_a_batch():
    """A batch of long answers takes minutes on a CPU (stage 07: 64 prompts, 192 tokens): progress must move as
    its answers end, not once per batch."""
    gen = ChatGenerator("tiny", backend="hf", dtype="float32", device="cpu")
    # The random-weight model samples almost uniformly: with every third token id ending an answer, the answers
    # of one batch end at different steps.
    gen.model.generation_config.eos_token_id = list(range(0, len(gen.tokenizer), 3))
    steps, reports = [], []
    gen.model.register_forward_hook(lambda *_: steps.append(1))
    prompts = PROMPTS[:8]
    out = gen.generate(prompts, Sampling(max_new_tokens=16, temperature=1.0, seed=0), batch_size=len(prompts),
                       on_progress=lambda done: reports.append((done, len(steps))))
    assert len(out) == len(prompts)
    counts = [done for done, _ in reports]
    assert counts == sorted(counts) and counts[-1] == len(prompts)
    # One batch, yet counts below its size, reported at different decoding steps while the batch still decoded.
    inside = [(done, step) for done, step in reports if done < len(prompts)]
    assert len({done for done, _ in inside}) >= 2 and len({step for _, step in inside}) >= 2
    assert max(step for _, step in inside) < len(steps)


def test_sample_rows_follows_the_distribution_and_never_draws_a_zero_weight():
    from scipy.stats import chisquare

    sample_rows = decoding.sample_rows

    weights = torch.tensor([0.0, 0.1, 0.0, 0.25, 0.05, 0.6, 0.0])
    probs = weights.repeat(4000, 1)
    drawn = sample_rows(probs, torch.Generator().manual_seed(0))
    counts = torch.bincount(drawn, minlength=len(weights))
    assert counts[weights == 0].sum() == 0
    nonzero = weights > 0
    expected = (weights[nonzero] / weights.sum() * len(drawn)).numpy()
    assert chisquare(counts[nonzero].numpy(), expected).pvalue > 1e-3
    # unnormalised rows and a row with one possible token
    single = torch.zeros(3, 49152)
    single[:, 17] = 5.0
    assert sample_rows(single).tolist() == [17, 17, 17]
    again = sample_rows(probs, torch.Generator().manual_seed(0))
    assert torch.equal(drawn, again)


def test_decode_samples_with_either_sampler_and_checks_the_name(smollm2):
    enc = smollm2.tokenizer([smollm2.render(p) for p in PROMPTS[:2]], return_tensors="pt", padding=True,
                            add_special_tokens=False)
    for sampler in ("cdf", "multinomial"):
        out = decoding.decode(smollm2.model, enc["input_ids"], enc["attention_mask"], 8, temperature=1.0,
                              generator=torch.Generator().manual_seed(1), sampler=sampler)
        assert len(out) == 2 and all(1 <= len(row) <= 8 for row in out)
    with pytest.raises(ValueError, match="sampler"):
        decoding.decode(smollm2.model, enc["input_ids"], enc["attention_mask"], 2, temperature=1.0, sampler="gumbel")


def test_repeated_prompts_are_prefilled_once_and_decode_as_alone(smollm2):
    texts = [smollm2.render(p) for p in (PROMPTS[0], PROMPTS[0], PROMPTS[3], PROMPTS[3], PROMPTS[0])]
    enc = smollm2.tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    calls = []
    hook = smollm2.model.register_forward_pre_hook(lambda module, args, kwargs: calls.append(kwargs["input_ids"].shape),
                                                   with_kwargs=True)
    try:
        repeated = decoding.decode(smollm2.model, enc["input_ids"], enc["attention_mask"], 24)
    finally:
        hook.remove()
    assert calls[0][0] == 2  # the prompt pass ran the two distinct prompts only
    assert repeated[0] == repeated[1] == repeated[4] and repeated[2] == repeated[3]
    alone = smollm2.tokenizer([texts[0], texts[2]], return_tensors="pt", padding=True, add_special_tokens=False)
    assert decoding.decode(smollm2.model, alone["input_ids"], alone["attention_mask"], 24) == [repeated[0], repeated[2]]
    sampled = decoding.decode(smollm2.model, enc["input_ids"], enc["attention_mask"], 24, temperature=1.0,
                              generator=torch.Generator().manual_seed(5))
    assert len({tuple(row) for row in sampled}) > 1  # repeats share the prompt, not the draws
