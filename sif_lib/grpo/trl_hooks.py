"""The one place that reaches into TRL's private surface: ``GRPOTrainer._generate_single_turn`` (and the
metrics store ``_metrics`` it appends to).

Written against TRL 1.16.0, whose signature is pinned in :data:`HOOKED` and checked by
``tests/test_trl_hooks.py``. Three things need the moment between "completions are generated" and "the loss is
computed", which no callback or reward function sees:

* timing the rollouts (``timing/generate_s``, ``timing/rollout_tokens`` in the log history): TRL reports its
  own profiling only to external trackers (wandb, trackio); the forward pass is timed through the public
  ``compute_loss`` (``sif bench grpo`` splits a step with it);
* generating with the LoRA update merged into the weights (:func:`lora_merged`, ``grpo.merge_lora_for_generation``),
  9% faster rollouts on 2 CPU cores; the exact base weights are restored before the loss.

* decoding the rollouts with :func:`sif_lib.policy.decoding.decode` (finished completions leave the batch) where
  TRL would call ``model.generate`` in a single process; anything else goes to TRL's own path. There,
  ``grpo.greedy_members`` decodes the first completions of each group greedily: the greedy answer is what the
  probe and the evaluation read, and a sampled-only group may never show the loops greedy decoding falls into.
  The loss then treats the greedy completion like a sample (TRL recomputes its log-probabilities at the
  training temperature), a deliberate bias towards scoring what evaluation sees.

What uses public surface instead: reward scoring is timed by the reward function itself (``timing/reward_s``
through TRL's ``log_metric``), and the reward components are logged the same way.

If TRL changes ``_generate_single_turn`` (its name, parameters, or its ``(completion_ids, logprobs)`` return),
the signature test fails before any training does; without this module (``grpo.merge_lora_for_generation:
false``), training would lose only these timings.
"""

from __future__ import annotations

import contextlib
import inspect
import time

from sif_lib.policy import decoding, models

# The private method and the parameters it had in the TRL release this module was written for.
HOOKED = {"_generate_single_turn": ["self", "prompt_ids", "images", "multimodal_fields", "num_generations",
                                    "has_tool_images"]}


def hooked_signatures() -> dict[str, list[str]]:
    """The installed TRL's parameters of each hooked method (compare with :data:`HOOKED`)."""
    from trl import GRPOTrainer  # heavy: only when checked or training

    return {name: list(inspect.signature(getattr(GRPOTrainer, name)).parameters) for name in HOOKED}


@contextlib.contextmanager
def lora_merged(model):
    """Inside the block, each LoRA layer's weight is ``W + BA``; afterwards the exact base weights are back.

    Unmerged, every decoding step runs two extra small matmuls per adapted layer (about 10% of SmolLM2's
    decoding time on 2 CPU cores, more when threads contend); merging costs one copy of the adapted weights.
    PEFT's own ``unmerge_adapter`` subtracts the update again, which leaves rounding drift in the frozen
    weights after many steps, so the originals are copied back instead. Rollouts sampled this way come from
    the same policy (up to float rounding), and the GRPO loss recomputes every log-probability with the
    unmerged model. A model without LoRA layers, or with base weights below float32 (where the merge would
    round the update away: :func:`sif_lib.policy.models.lora_merge_keeps_update`), is left as it is.
    """
    from peft.tuners.lora import LoraLayer  # heavy: only when training

    layers = [m for m in model.modules() if isinstance(m, LoraLayer)]
    if not layers or not hasattr(model, "merge_adapter") or not models.lora_merge_keeps_update(model):
        yield model
        return
    saved = [layer.get_base_layer().weight.detach().clone() for layer in layers]
    model.merge_adapter()
    try:
        yield model
    finally:
        for layer, weight in zip(layers, saved):
            layer.get_base_layer().weight.data.copy_(weight)
            layer.merged_adapters = []


def trainer_class():
    """TRL's ``GRPOTrainer`` with the generation hook (a class made on first use: importing trl is slow)."""
    from trl import GRPOTrainer  # heavy: only when training

    class SifGRPOTrainer(GRPOTrainer):
        """GRPOTrainer plus generation timings in the log history and, optionally, LoRA-merged generation."""

        merge_lora_for_generation = False  # set by train_grpo when the params allow it
        shrinking_decoder = False  # set by train_grpo: rollouts by sif_lib.policy.decoding where TRL would generate()
        greedy_members = 0  # set by train_grpo: completions per group decoded greedily (shrinking decoder only)

        def _metric_store(self):
            return self._metrics["train" if self.model.training else "eval"]

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            """TRL's loss, timed while training: ``timing/forward_s`` (the forward pass and the loss), averaged per
            micro-batch in the log, as TRL averages its metrics."""
            start = time.perf_counter()
            out = super().compute_loss(model, inputs, return_outputs=return_outputs,
                                       num_items_in_batch=num_items_in_batch)
            if model.training:
                self._metric_store()["timing/forward_s"].append(time.perf_counter() - start)
            return out

        def _generate_single_turn(self, prompt_ids, images, multimodal_fields, num_generations,
                                  has_tool_images=False):
            store = self._metric_store()
            start = time.perf_counter()
            with self._lora_merged():
                shrinking = self.shrinking_decoder and self._plain_sampling(images, multimodal_fields, has_tool_images)
                store["timing/shrinking_decoder"].append(float(shrinking))
                if shrinking:
                    completion_ids, logprobs = self._decode_shrinking(prompt_ids, num_generations), None
                else:
                    completion_ids, logprobs = super()._generate_single_turn(
                        prompt_ids, images, multimodal_fields, num_generations, has_tool_images)
            store["timing/generate_s"].append(time.perf_counter() - start)
            store["timing/rollout_tokens"].append(float(sum(len(c) for c in completion_ids)))
            return completion_ids, logprobs

        def _plain_sampling(self, images, multimodal_fields, has_tool_images) -> bool:
            """Whether TRL would take its plain ``model.generate`` path on a text-only, single-process model,
            with sampling settings that :func:`sif_lib.policy.decoding.decode` applies the same way."""
            config = self.generation_config
            return (not self.use_vllm and not self.use_transformers_continuous_batching and images is None
                    and not multimodal_fields and not has_tool_images and not self.is_deepspeed_enabled
                    and not self.is_fsdp_enabled and self.args.generation_kwargs is None
                    and config.repetition_penalty in (None, 1.0) and config.cache_implementation is None
                    and decoding.supports(self.accelerator.unwrap_model(self.model)))

        def _decode_shrinking(self, prompt_ids, num_generations: int = 1) -> list[list[int]]:
            """TRL's rollouts, decoded by :func:`sif_lib.policy.decoding.decode`: finished completions leave the
            batch. Same sampling distribution as TRL's ``generate`` call (its temperature, top-k, top-p, min-p
            and end-of-sequence ids), other random draws; each completion ends at its first EOS, kept, as TRL
            keeps it. With ``greedy_members`` k, rows ``i`` with ``i % num_generations < k`` (TRL repeats each
            prompt ``num_generations`` times in a row) are decoded greedily, in the same batch as the sampled ones
            (in a batch of their own, every step decoded twice: 65-78 s per demo step, against 37 s without them)."""
            from trl.models.utils import unwrap_model_for_generation

            config = self.generation_config
            greedy = [i for i in range(len(prompt_ids))
                      if num_generations > 1 and i % num_generations < self.greedy_members]
            with unwrap_model_for_generation(self.model_wrapped, self.accelerator,
                                             generation_kwargs=self.generation_kwargs,
                                             gradient_checkpointing_kwargs=self.args.gradient_checkpointing_kwargs
                                             ) as model:
                ids, mask = decoding.left_pad(list(prompt_ids), self._tokenizer.pad_token_id, self.accelerator.device)
                return decoding.decode(model, ids, mask, config.max_new_tokens, temperature=config.temperature,
                                       top_p=config.top_p, top_k=config.top_k, min_p=config.min_p,
                                       eos=set(self.eos_token_ids), greedy_rows=greedy)

        def _lora_merged(self):
            model = self.accelerator.unwrap_model(self.model)
            if self.merge_lora_for_generation and not self.use_vllm:
                return lora_merged(model)
            return contextlib.nullcontext()

    return SifGRPOTrainer
