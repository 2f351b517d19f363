"""Batched chat generation behind one interface: transformers ``generate`` (CPU or GPU) or vLLM.

Every stage that makes the policy write (rollouts, the judge, probes, evaluation) goes through
``ChatGenerator.generate``, so decoding settings mean the same thing everywhere.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sif_lib.policy import decoding, models

# Batches per window of prompts that is sorted by prompt length; also the unit of progress and resume.
WINDOW_BATCHES = 4
DECODINGS = ("shrinking", "generate")


@dataclass
class Sampling:
    max_new_tokens: int = 128
    temperature: float = 0.0  # 0 means greedy
    top_p: float = 1.0
    seed: int = 0

    def to_dict(self) -> dict:
        return dict(max_new_tokens=self.max_new_tokens, temperature=self.temperature, top_p=self.top_p,
                    seed=self.seed)


def chat_messages(prompt: str, system_prompt: str | None = None) -> list[dict]:
    messages = [{"role": "system", "content": system_prompt}] if system_prompt else []
    return messages + [{"role": "user", "content": prompt}]


def template_kwargs(tokenizer, enable_thinking: bool | None) -> dict:
    """Extra ``apply_chat_template`` arguments: ``enable_thinking`` (``model.enable_thinking``) for a template
    that reads it (Qwen3-style), nothing for one that does not, or when the params leave it unset. Jinja ignores
    unknown variables, so passing the switch to a template without it would silently mean nothing."""
    template = getattr(tokenizer, "chat_template", None) or ""
    if isinstance(template, dict):  # named templates
        template = " ".join(str(t) for t in template.values())
    if enable_thinking is None or "enable_thinking" not in template:
        return {}
    return {"enable_thinking": bool(enable_thinking)}


def render_prompt(tokenizer, prompt: str, system_prompt: str | None = None, enable_thinking: bool | None = None) -> str:
    """A user prompt as the policy sees it: chat template, generation prompt, and the thinking switch."""
    return tokenizer.apply_chat_template(chat_messages(prompt, system_prompt), tokenize=False,
                                         add_generation_prompt=True, **template_kwargs(tokenizer, enable_thinking))


def vllm_available() -> bool:
    if importlib.util.find_spec("vllm") is None:
        return False
    import torch

    return torch.cuda.is_available()


def _finish_counter(on_progress: Callable[[int], None], done_before: int) -> Callable[[int], None]:
    """A decoder's ``on_finish`` that reports ``done_before`` plus the answers of this batch ended so far: a
    batch of long answers takes minutes on a CPU, and its answers end one by one."""
    ended = 0

    def finish(_row: int) -> None:
        nonlocal ended
        ended += 1
        on_progress(done_before + ended)

    return finish


class ChatGenerator:
    """Answers user prompts with a causal LM. ``backend`` is 'hf', 'vllm' or 'auto'. With 'hf', ``decoding`` is
    'shrinking' (:mod:`sif_lib.policy.decoding`, the same greedy tokens as ``generate``, measured faster) or
    'generate' (``model.generate`` on static batches, kept for comparison and for models the loop does not take)."""

    def __init__(self, spec: str, backend: str = "auto", dtype: str = "auto", device: str = "auto",
                 system_prompt: str | None = None, adapter: str | None = None, model=None, tokenizer=None,
                 enable_thinking: bool | None = None, decoding: str = "shrinking"):
        if decoding not in DECODINGS:
            raise ValueError(f"decoding must be one of {DECODINGS}, got {decoding!r}")
        self.spec = spec
        self.decoding = decoding
        self.stats: dict = {}  # rows_decoded: batch rows summed over decoding steps (the work done)
        self.sampler = "cdf"  # how the shrinking decoder draws a sampled token (decoding.decode's ``sampler``)
        self.system_prompt = system_prompt
        self.enable_thinking = enable_thinking
        self.backend = ("vllm" if vllm_available() and adapter is None and model is None else "hf") \
            if backend == "auto" else backend
        self.tokenizer = tokenizer or models.load_tokenizer(spec)
        self._vllm = None
        if self.backend == "vllm":
            from vllm import LLM

            self._vllm = LLM(model=models.resolve(spec), dtype="auto", seed=0)
            self.model = None
        else:
            self.model = model if model is not None else self._load(spec, dtype, device, adapter)
            self.model.eval()

    @staticmethod
    def _load(spec: str, dtype: str, device: str, adapter: str | None):
        if adapter is None:
            return models.load_causal_lm(spec, dtype=dtype, device=device)
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # deprecations inside peft's adapter load and merge
            model = models.load_causal_lm(spec, dtype=dtype, device=device, adapter=adapter)
            # Folding the LoRA update into the weights once makes decoding as cheap as the base model's; in a
            # lower precision than float32 the fold would round most of a small update away, so it stays apart.
            return model.merge_and_unload() if models.lora_merge_keeps_update(model) else model

    def render(self, prompt: str) -> str:
        return render_prompt(self.tokenizer, prompt, self.system_prompt, self.enable_thinking)

    def generate(self, prompts: Sequence[str], sampling: Sampling, batch_size: int = 16,
                 on_batch: Callable[[int, list[str]], None] | None = None,
                 on_progress: Callable[[int], None] | None = None) -> list[str]:
        """One completion per prompt, in order. ``on_batch(start, outputs)`` is called with each finished run of
        consecutive prompts; ``on_progress(done)`` with the answers done so far: as each answer ends, where the
        decoder lets answers leave the batch (the 'shrinking' decoding), else after every decoded batch."""
        if self.backend == "vllm":
            return self._generate_vllm(prompts, sampling, batch_size, on_batch)
        return self._generate_hf(prompts, sampling, batch_size, on_batch, on_progress)

    def _generate_hf(self, prompts, sampling, batch_size, on_batch, on_progress=None):
        """Prompts in windows of ``WINDOW_BATCHES`` batches; inside a window, batches of similar prompt length
        (less left padding), decoded by :func:`sif_lib.policy.decoding.decode` (finished answers leave the batch).
        ``on_batch`` is called once per window, in prompt order, so resuming works on whole windows."""
        import torch

        device = next(self.model.parameters()).device
        shrinking = self.decoding == "shrinking" and decoding.supports(self.model)
        outputs: list[str] = []
        window = batch_size * WINDOW_BATCHES
        for start in range(0, len(prompts), window):
            texts = [self.render(p) for p in prompts[start:start + window]]
            lengths = [len(ids) for ids in self.tokenizer(texts, add_special_tokens=False)["input_ids"]]
            order = sorted(range(len(texts)), key=lambda i: lengths[i], reverse=True)
            answers: list[str] = [""] * len(texts)
            for b in range(0, len(order), batch_size):
                rows = order[b:b + batch_size]
                enc = self.tokenizer([texts[i] for i in rows], return_tensors="pt", padding=True,
                                     add_special_tokens=False).to(device)
                # One seed per batch, from the batch's place: reruns draw the same samples.
                seed = sampling.seed + start + b
                if shrinking:
                    generator = None
                    if sampling.temperature > 0:
                        generator = torch.Generator(device=device).manual_seed(seed)
                    ids = decoding.decode(self.model, enc["input_ids"], enc["attention_mask"],
                                          sampling.max_new_tokens, sampling.temperature, sampling.top_p,
                                          generator, self.stats, sampler=self.sampler,
                                          on_finish=_finish_counter(on_progress, start + b) if on_progress else None)
                else:
                    ids = self._static_batch(enc, sampling, seed)
                for i, new in zip(rows, ids):
                    answers[i] = self.tokenizer.decode(new, skip_special_tokens=True).strip()
                if on_progress:
                    on_progress(start + b + len(rows))
            outputs.extend(answers)
            if on_batch:
                on_batch(start, answers)
        return outputs

    def _static_batch(self, enc, sampling, seed, **generate_kwargs):
        """``model.generate`` on one batch: every row decodes until the longest ends (other models than
        :func:`~sif_lib.policy.decoding.supports` takes, ``decoding='generate'``, and the benchmark's reference);
        ``generate_kwargs`` go to ``generate`` as well (the benchmark's static cache)."""
        import torch

        kwargs = dict(max_new_tokens=sampling.max_new_tokens, pad_token_id=self.tokenizer.pad_token_id,
                      **generate_kwargs)
        if sampling.temperature > 0:
            kwargs.update(do_sample=True, temperature=sampling.temperature, top_p=sampling.top_p)
            torch.manual_seed(seed)
        else:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        with torch.no_grad():
            out = self.model.generate(**enc, **kwargs)
        new = out[:, enc["input_ids"].shape[1]:]
        self.stats["rows_decoded"] = self.stats.get("rows_decoded", 0) + new.numel()
        return new.tolist()

    def _generate_vllm(self, prompts, sampling, batch_size, on_batch):
        from vllm import SamplingParams

        outputs: list[str] = []
        # vLLM batches internally; chunks only exist so that progress and resume work the same as with hf.
        chunk = max(batch_size, 64)
        for start in range(0, len(prompts), chunk):
            texts = [self.render(p) for p in prompts[start:start + chunk]]
            # One seed per request, keyed by position: a single shared seed would make vLLM return the same
            # sample for a prompt repeated to draw several samples.
            params = [SamplingParams(max_tokens=sampling.max_new_tokens, temperature=sampling.temperature,
                                     top_p=sampling.top_p, seed=sampling.seed + start + i) for i in range(len(texts))]
            results = self._vllm.generate(texts, params, use_tqdm=False)
            batch = [r.outputs[0].text.strip() for r in results]
            outputs.extend(batch)
            if on_batch:
                on_batch(start, batch)
        return outputs
