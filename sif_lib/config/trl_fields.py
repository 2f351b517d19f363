"""``grpo.trl``: the fields of TRL's ``GRPOConfig`` that the params have no typed field for, passed through.

Every field of TRL's ``GRPOConfig`` is reachable from a params file without a code change. The fields the method
and this workbench depend on are typed params fields (:data:`TRL_TYPED` says which params key sets each); a few are
derived by the workbench and cannot be set (:data:`TRL_DERIVED`, with the reason); any other field goes in
``grpo.trl: {field: value}``. :func:`check_trl_passthrough` refuses a key that is not a ``GRPOConfig`` field, or
that a typed or derived field owns, and a value of the wrong type, each in one line naming the key and the file.
"""

from __future__ import annotations

import dataclasses
import difflib
import typing
from typing import Any

from sif_lib.config.types import check_value, type_name
from sif_lib.core.errors import InputError

# GRPOConfig field -> the params key that sets it.
TRL_TYPED = {
    "max_steps": "grpo.max_steps", "learning_rate": "grpo.learning_rate", "weight_decay": "grpo.weight_decay",
    "lr_scheduler_type": "grpo.lr_scheduler", "num_generations": "grpo.num_generations",
    "max_completion_length": "grpo.max_completion_length", "temperature": "grpo.temperature",
    "beta": "grpo.beta", "loss_type": "grpo.loss_type", "scale_rewards": "grpo.scale_rewards",
    "epsilon": "grpo.epsilon", "epsilon_high": "grpo.epsilon_high", "num_iterations": "grpo.num_iterations",
    "mask_truncated_completions": "grpo.mask_truncated_completions",
    "top_entropy_quantile": "grpo.top_entropy_quantile",
    "vllm_importance_sampling_correction": "grpo.vllm_importance_sampling_correction",
    "vllm_importance_sampling_mode": "grpo.vllm_importance_sampling_mode",
    "gradient_accumulation_steps": "grpo.grad_accum", "logging_steps": "grpo.logging_steps",
    "save_steps": "grpo.save_steps", "save_total_limit": "grpo.save_total_limit",
    "gradient_checkpointing": "grpo.gradient_checkpointing", "use_vllm": "grpo.use_vllm",
    "vllm_mode": "grpo.vllm_mode", "vllm_gpu_memory_utilization": "grpo.vllm_gpu_memory_utilization",
    "vllm_tensor_parallel_size": "grpo.vllm_tensor_parallel_size",
    "vllm_server_base_url": "grpo.vllm_server_url", "seed": "grpo.seed", "use_cpu": "run.device",
    "bf16": "run.dtype", "fp16": "run.dtype", "chat_template_kwargs": "model.enable_thinking",
    "report_to": "run.report_to",
}


# GRPOConfig fields the workbench derives itself, and why they cannot be set.
TRL_DERIVED = {
    "output_dir": "checkpoints always go to the run's grpo/checkpoints, where resume looks for them",
    "per_device_train_batch_size": "it follows from grpo.prompts_per_step x "
                                   "num_generations over grad_accum and the processes",
    "steps_per_generation": "it follows from grpo.rollout_batch_prompts",
    "generation_batch_size": "it follows from grpo.rollout_batch_prompts",
    "shuffle_dataset": "the dataset order is the curriculum (grpo.curriculum)",
    "remove_unused_columns": "the reward reads the dataset's extra columns",
    "model_init_kwargs": "the policy's dtype and device map follow run.dtype and grpo.finetune",
}


def trl_config_fields() -> dict[str, Any]:
    """The fields of the installed TRL's ``GRPOConfig`` and their types (imports trl: a few seconds)."""
    from trl import GRPOConfig  # heavy: only when grpo.trl is used

    try:
        hints = typing.get_type_hints(GRPOConfig)
    except Exception:  # an annotation this Python cannot evaluate: check names only
        hints = {}
    return {f.name: hints.get(f.name, Any) for f in dataclasses.fields(GRPOConfig)}


def check_trl_passthrough(trl_fields: dict, source: str, known: dict[str, Any] | None = None) -> None:
    """Each ``grpo.trl`` key must be a ``GRPOConfig`` field that no typed or derived field owns, with a value of
    the field's declared type (TRL itself checks few values, so this is where a typo is caught)."""
    if not trl_fields:
        return
    known = trl_config_fields() if known is None else known
    for key, value in trl_fields.items():
        dotted = f"grpo.trl.{key}"
        if key in TRL_TYPED:
            raise InputError(f"{source}: key '{dotted}' is set by '{TRL_TYPED[key]}': set that instead")
        if key in TRL_DERIVED:
            raise InputError(f"{source}: key '{dotted}' cannot be set: {TRL_DERIVED[key]}")
        if key not in known:
            close = difflib.get_close_matches(str(key), sorted(known), n=1)
            hint = f" (did you mean 'grpo.trl.{close[0]}'?)" if close else ""
            raise InputError(f"{source}: unknown key '{dotted}': not a field of TRL's GRPOConfig{hint}")
        if not check_value(known[key], value):
            raise InputError(f"{source}: key '{dotted}' must be {type_name(known[key])}, got {value!r}")
