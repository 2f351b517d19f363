"""From params to TRL's ``GRPOConfig``: typed fields for what the method needs, ``grpo.trl`` for the rest.

Every field of TRL's ``GRPOConfig`` is reachable from a params file without a code change:

* the fields the method and this workbench depend on are typed params fields (``grpo.loss_type``,
  ``grpo.beta``, ...), listed in :data:`TYPED` with the params key that sets each;
* a few are derived by the workbench and cannot be set (:data:`DERIVED`, each with its reason);
* any other field goes in ``grpo.trl: {field: value}`` and is passed through as given. A key that is not a
  ``GRPOConfig`` field, or one that a typed field owns, is a one-line error naming the key and the params file;
  the values are checked by TRL itself when the config is built.

Every default that matters is set explicitly, because TRL's differ from the Trainer's (TRL turns bf16 and
gradient checkpointing on by default). The stage records the effective config (``GRPOConfig.to_dict()``) in
``grpo/grpo_config.json`` and in the run manifest.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
from pathlib import Path
from typing import Any

from sif_lib.errors import InputError

# GRPOConfig field -> the params key that sets it.
TYPED = {
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
    "vllm_server_base_url": "grpo.vllm_server_url", "seed": "run.seed", "use_cpu": "run.device",
    "bf16": "run.dtype", "fp16": "run.dtype", "chat_template_kwargs": "model.enable_thinking",
}
# GRPOConfig fields the workbench derives itself, and why they cannot be set.
DERIVED = {
    "output_dir": "checkpoints always go to the run's grpo/checkpoints, where resume looks for them",
    "per_device_train_batch_size": "it follows from grpo.prompts_per_step x num_generations over grad_accum and "
                                   "the processes",
    "steps_per_generation": "it follows from grpo.rollout_batch_prompts",
    "generation_batch_size": "it follows from grpo.rollout_batch_prompts",
    "shuffle_dataset": "the dataset order is the curriculum (grpo.curriculum)",
    "remove_unused_columns": "the reward reads the dataset's extra columns",
    "model_init_kwargs": "the policy's dtype and device map follow run.dtype and grpo.finetune",
}
# Method settings shown by `sif params FILE`, in this order.
SHOWN = ["loss_type", "beta", "scale_rewards", "epsilon", "epsilon_high", "num_iterations",
         "mask_truncated_completions", "top_entropy_quantile", "temperature", "num_generations", "learning_rate",
         "lr_scheduler_type", "weight_decay"]


def grpo_config_fields() -> dict[str, Any]:
    """The fields of the installed TRL's ``GRPOConfig`` and their types (imports trl: a few seconds)."""
    import typing

    from trl import GRPOConfig

    try:
        hints = typing.get_type_hints(GRPOConfig)
    except Exception:  # an annotation this Python cannot evaluate: check names only
        hints = {}
    return {f.name: hints.get(f.name, Any) for f in dataclasses.fields(GRPOConfig)}


def check_passthrough(trl_fields: dict, source: str, known: dict[str, Any] | None = None) -> None:
    """Each ``grpo.trl`` key must be a ``GRPOConfig`` field that no typed or derived field owns, with a value of
    the field's declared type (TRL itself checks few values, so this is where a typo is caught)."""
    from sif_lib.config import _check_value, _type_name

    if not trl_fields:
        return
    known = grpo_config_fields() if known is None else known
    for key, value in trl_fields.items():
        dotted = f"grpo.trl.{key}"
        if key in TYPED:
            raise InputError(f"{source}: key '{dotted}' is set by '{TYPED[key]}': set that instead")
        if key in DERIVED:
            raise InputError(f"{source}: key '{dotted}' cannot be set: {DERIVED[key]}")
        if key not in known:
            close = difflib.get_close_matches(str(key), sorted(known), n=1)
            hint = f" (did you mean 'grpo.trl.{close[0]}'?)" if close else ""
            raise InputError(f"{source}: unknown key '{dotted}': not a field of TRL's GRPOConfig{hint}")
        if not _check_value(known[key], value):
            raise InputError(f"{source}: key '{dotted}' must be {_type_name(known[key])}, got {value!r}")


def method_settings(params) -> dict[str, Any]:
    """The loss and sampling settings that define the algorithm, as the trainer will get them (no trl import)."""
    g = params.grpo
    settings = {
        "loss_type": g.loss_type, "beta": g.beta, "scale_rewards": g.scale_rewards, "epsilon": g.epsilon,
        "epsilon_high": g.epsilon_high if g.epsilon_high is not None else g.epsilon,
        "num_iterations": g.num_iterations, "mask_truncated_completions": g.mask_truncated_completions,
        "top_entropy_quantile": g.top_entropy_quantile, "temperature": g.temperature,
        "num_generations": g.num_generations, "learning_rate": g.learning_rate, "lr_scheduler_type": g.lr_scheduler,
        "weight_decay": g.weight_decay,
    }
    if g.use_vllm:
        settings["vllm_importance_sampling_correction"] = g.vllm_importance_sampling_correction
        settings["vllm_importance_sampling_mode"] = g.vllm_importance_sampling_mode
    return {**settings, **g.trl}


def describe_method(params) -> str:
    """``sif params FILE``'s account of the GRPO loss, one setting a line."""
    settings = method_settings(params)
    notes = {"loss_type": _LOSS_NOTES.get(settings["loss_type"], ""),
             "beta": ("no KL term" if not settings["beta"] else
                      "KL loss against the reference policy, k3 (low-variance) estimator"),
             "scale_rewards": {"group": "advantage / std of the group's rewards (GRPO)",
                               "batch": "advantage / std of the batch's rewards",
                               "none": "no scaling (Dr. GRPO)"}.get(str(settings["scale_rewards"]), "")}
    lines = ["grpo loss and sampling (TRL GRPOConfig):"]
    for key, value in settings.items():
        note = notes.get(key) or ("from grpo.trl" if key in params.grpo.trl else "")
        lines.append(f"  {key}: {value!r}" + (f"    # {note}" if note else ""))
    return "\n".join(lines)


_LOSS_NOTES = {
    "dapo": "token-mean over the global batch (the paper's verl loss_agg_mode token-mean)",
    "grpo": "per-sequence mean, then mean over sequences (the original GRPO; length-biased)",
    "bnpo": "token-mean over the local batch",
    "dr_grpo": "token sum / max_completion_length (Dr. GRPO)",
}


def batch_layout(g, world_size: int) -> dict:
    """How ``prompts_per_step x num_generations`` completions split over processes and accumulation steps."""
    completions = g.prompts_per_step * g.num_generations
    per_step_slots = g.grad_accum * world_size
    if completions % per_step_slots:
        raise InputError(f"key 'grpo.prompts_per_step': {g.prompts_per_step} prompts x {g.num_generations} generations "
                         f"= {completions} completions must divide evenly over grad_accum {g.grad_accum} x "
                         f"{world_size} process(es)")
    rollout_prompts = g.rollout_batch_prompts or g.prompts_per_step
    steps_per_rollout = rollout_prompts // g.prompts_per_step
    return {"completions_per_step": completions, "per_device_train_batch_size": completions // per_step_slots,
            "gradient_accumulation_steps": g.grad_accum, "processes": world_size,
            "rollout_prompts": rollout_prompts, "steps_per_rollout": steps_per_rollout,
            "steps_per_generation": g.grad_accum * steps_per_rollout}


def grpo_config_kwargs(params, output_dir: Path, world_size: int = 1,
                       chat_template_kwargs: dict | None = None) -> dict[str, Any]:
    """Every keyword the workbench passes to ``GRPOConfig``: typed, derived, defaults, then ``grpo.trl``."""
    from sif_lib import models

    g = params.grpo
    layout = batch_layout(g, world_size)
    on_cpu = models.device_for(params.run.device) == "cpu"
    dtype = str(models.torch_dtype(params.run.dtype)).replace("torch.", "")
    model_init: dict[str, Any] = {"dtype": dtype, "device_map": None}
    if g.finetune == "qlora":
        model_init["device_map"] = {"": int(os.environ.get("LOCAL_RANK", 0))}
    kwargs: dict[str, Any] = {
        "output_dir": str(output_dir), "max_steps": g.max_steps, "learning_rate": g.learning_rate,
        "weight_decay": g.weight_decay, "lr_scheduler_type": g.lr_scheduler,
        "per_device_train_batch_size": layout["per_device_train_batch_size"],
        "gradient_accumulation_steps": layout["gradient_accumulation_steps"],
        "steps_per_generation": layout["steps_per_generation"], "num_generations": g.num_generations,
        "max_completion_length": g.max_completion_length, "temperature": g.temperature, "beta": g.beta,
        "loss_type": g.loss_type, "scale_rewards": g.scale_rewards, "epsilon": g.epsilon,
        "epsilon_high": g.epsilon_high, "num_iterations": g.num_iterations,
        "mask_truncated_completions": g.mask_truncated_completions, "top_entropy_quantile": g.top_entropy_quantile,
        "seed": params.run.seed, "logging_steps": g.logging_steps, "save_strategy": "steps",
        "save_steps": g.save_steps, "save_total_limit": g.save_total_limit, "use_cpu": on_cpu,
        "bf16": not on_cpu and dtype == "bfloat16", "fp16": not on_cpu and dtype == "float16",
        "gradient_checkpointing": g.gradient_checkpointing,
        "shuffle_dataset": False,  # the curriculum order is the dataset order
        "remove_unused_columns": False, "model_init_kwargs": model_init,
        "chat_template_kwargs": chat_template_kwargs or None,
        # Workbench defaults that grpo.trl may change: no warmup (the paper), no tracker, progress bars on.
        "warmup_steps": 0, "report_to": [], "disable_tqdm": False, "log_completions": False,
    }
    if g.use_vllm:
        kwargs.update({"use_vllm": True, "vllm_mode": g.vllm_mode,
                       "vllm_gpu_memory_utilization": g.vllm_gpu_memory_utilization,
                       "vllm_tensor_parallel_size": g.vllm_tensor_parallel_size,
                       "vllm_importance_sampling_correction": g.vllm_importance_sampling_correction,
                       "vllm_importance_sampling_mode": g.vllm_importance_sampling_mode})
        if g.vllm_server_url:
            kwargs["vllm_server_base_url"] = g.vllm_server_url
    return {**kwargs, **g.trl}


def make_grpo_config(params, output_dir: Path, world_size: int = 1, chat_template_kwargs: dict | None = None):
    """The ``GRPOConfig`` for these params; TRL's own check of the values becomes a one-line InputError."""
    from trl import GRPOConfig

    kwargs = grpo_config_kwargs(params, output_dir, world_size, chat_template_kwargs)
    try:
        return GRPOConfig(**kwargs)
    except (TypeError, ValueError) as err:
        where = "grpo.trl" if params.grpo.trl else "grpo"
        raise InputError(f"key '{where}': TRL's GRPOConfig rejects these settings: "
                         f"{' '.join(str(err).split())}") from None
