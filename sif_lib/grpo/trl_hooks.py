"""The one place that reaches into TRL's private surface: ``GRPOTrainer._generate_single_turn`` (and the
metrics store ``_metrics`` it appends to).

Written against TRL 1.16.0, whose signature is pinned in :data:`HOOKED` and checked by
``tests/test_trl_hooks.py``. Two things need the moment between "completions are generated" and "the loss is
computed", which no callback or reward function sees:

* timing the rollouts (``timing/generate_s``, ``timing/rollout_tokens`` in the log history): TRL reports its
  own profiling only to external trackers (wandb, trackio);
* generating with the LoRA update merged into the weights (:func:`lora_merged`, ``grpo.merge_lora_for_generation``),
  9% faster rollouts on 2 CPU cores; the exact base weights are restored before the loss.

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
    unmerged model. A model without LoRA layers is left as it is.
    """
    from peft.tuners.lora import LoraLayer  # heavy: only when training

    layers = [m for m in model.modules() if isinstance(m, LoraLayer)]
    if not layers or not hasattr(model, "merge_adapter"):
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

        def _metric_store(self):
            return self._metrics["train" if self.model.training else "eval"]

        def _generate_single_turn(self, prompt_ids, *args, **kwargs):
            store = self._metric_store()
            start = time.perf_counter()
            with self._lora_merged():
                completion_ids, logprobs = super()._generate_single_turn(prompt_ids, *args, **kwargs)
            store["timing/generate_s"].append(time.perf_counter() - start)
            store["timing/rollout_tokens"].append(float(sum(len(c) for c in completion_ids)))
            return completion_ids, logprobs

        def _lora_merged(self):
            model = self.accelerator.unwrap_model(self.model)
            if self.merge_lora_for_generation and not self.use_vllm:
                return lora_merged(model)
            return contextlib.nullcontext()

    return SifGRPOTrainer
