"""From params to TRL's ``GRPOConfig``: typed fields for what the method needs, ``grpo.trl`` for the rest.

Every field of TRL's ``GRPOConfig`` is reachable from a params file without a code change:

* the fields the method and this workbench depend on are typed params fields (``grpo.loss_type``,
  ``grpo.beta``, ...), listed in :data:`sif_lib.config.trl_fields.TRL_TYPED` with the params key that sets each;
* a few are derived by the workbench and cannot be set (:data:`~sif_lib.config.trl_fields.TRL_DERIVED`, with reasons);
* any other field goes in ``grpo.trl: {field: value}`` and is passed through as given. A key that is not a
  ``GRPOConfig`` field, or one that a typed field owns, is a one-line error naming the key and the params file;
  the values are checked by TRL itself when the config is built.

Every default that matters is set explicitly, because TRL's differ from the Trainer's (TRL turns bf16 and
gradient checkpointing on by default). The stage records the effective config (``GRPOConfig.to_dict()``) in
``grpo/grpo_config.json`` and in the run manifest.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

from sif_lib.config.params import Params
from sif_lib.core.errors import InputError
from sif_lib.policy import models
from sif_lib.runner import tracking

# Method settings shown by `sif params FILE`, in this order.
SHOWN = ["loss_type", "beta", "scale_rewards", "epsilon", "epsilon_high", "num_iterations",
         "mask_truncated_completions", "top_entropy_quantile", "temperature", "num_generations", "learning_rate",
         "lr_scheduler_type", "weight_decay"]


def method_settings(params: Params) -> dict[str, Any]:
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


def describe_method(params: Params) -> str:
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


def grpo_config_kwargs(params: Params, output_dir: Path, world_size: int = 1, chat_template_kwargs: dict | None = None,
                       log_dir: Path | None = None) -> dict[str, Any]:
    """Every keyword the workbench passes to ``GRPOConfig``: typed, derived, defaults, then ``grpo.trl``.
    ``log_dir`` is where ``run.report_to`` sends the training curves (:mod:`sif_lib.runner.tracking`); without
    it the trainer reports nowhere."""
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
        "seed": params.run.seed if g.seed is None else g.seed, "logging_steps": g.logging_steps,
        "save_strategy": "steps",
        "save_steps": g.save_steps, "save_total_limit": g.save_total_limit, "use_cpu": on_cpu,
        "bf16": not on_cpu and dtype == "bfloat16", "fp16": not on_cpu and dtype == "float16",
        "gradient_checkpointing": g.gradient_checkpointing,
        "shuffle_dataset": False,  # the curriculum order is the dataset order
        "remove_unused_columns": False, "model_init_kwargs": model_init,
        "chat_template_kwargs": chat_template_kwargs or None,
        # Workbench defaults that grpo.trl may change: no warmup (the paper), progress bars on.
        "warmup_steps": 0, "disable_tqdm": False, "log_completions": False,
        **tracking.config_kwargs(params, log_dir),
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


def make_grpo_config(params: Params, output_dir: Path, world_size: int = 1, chat_template_kwargs: dict | None = None,
                     log_dir: Path | None = None):
    """The ``GRPOConfig`` for these params; TRL's own check of the values becomes a one-line InputError."""
    from trl import GRPOConfig  # heavy: only when training

    kwargs = grpo_config_kwargs(params, output_dir, world_size, chat_template_kwargs, log_dir)
    try:
        return GRPOConfig(**kwargs)
    except (TypeError, ValueError) as err:
        where = "grpo.trl" if params.grpo.trl else "grpo"
        raise InputError(f"key '{where}': TRL's GRPOConfig rejects these settings: "
                         f"{' '.join(str(err).split())}") from None


# ---------------------------------------------------------------------------------------------------------------
# Settings that only make sense together


def device_of(params: Params) -> str:
    """Where training runs: ``run.device``, with ``auto`` meaning CUDA when present."""
    return models.device_for(params.run.device)


def check_params(params: Params, world_size: int | None = None) -> None:
    """Settings that only make sense together; each failure names its key."""
    g = params.grpo
    for key, value in (("grpo.save_steps", g.save_steps), ("grpo.logging_steps", g.logging_steps),
                       ("grpo.save_total_limit", g.save_total_limit), ("grpo.grad_accum", g.grad_accum),
                       ("grpo.max_completion_length", g.max_completion_length),
                       ("grpo.max_prompt_length", g.max_prompt_length), ("grpo.num_processes", g.num_processes)):
        if value < 1:
            raise InputError(f"key '{key}' must be at least 1, got {value}")
    if g.rollout_batch_prompts < 0 or (g.rollout_batch_prompts and g.rollout_batch_prompts % g.prompts_per_step):
        raise InputError(f"key 'grpo.rollout_batch_prompts' must be 0 or a multiple of grpo.prompts_per_step "
                         f"({g.prompts_per_step}), got {g.rollout_batch_prompts}")
    batch_layout(g, world_size or g.num_processes)
    device = device_of(params)
    if g.finetune == "qlora":
        if device != "cuda":
            raise InputError("key 'grpo.finetune': qlora needs a CUDA GPU (run.device is cpu)")
        models.quantization_config(True)  # InputError without bitsandbytes
    if g.use_vllm and (device != "cuda" or importlib.util.find_spec("vllm") is None):
        raise InputError("key 'grpo.use_vllm': vLLM rollouts need a CUDA "
                         "GPU and the vllm package (pip install '.[gpu]')")
    if g.accelerate_config:
        path = Path(g.accelerate_config)
        if not path.is_file():
            raise InputError(f"key 'grpo.accelerate_config': file not found: {path}")
        if g.num_processes > 1 and "deepspeed" in path.read_text().lower() \
                and importlib.util.find_spec("deepspeed") is None:
            raise InputError(f"key 'grpo.accelerate_config': {path.name} uses DeepSpeed, which is not installed "
                             "(pip install '.[gpu]')")


def make_peft_config(g):
    if g.finetune == "full":
        return None
    from peft import LoraConfig  # heavy: only when training

    return LoraConfig(r=g.lora_r, lora_alpha=g.lora_alpha, target_modules=g.lora_target_modules,
                      task_type="CAUSAL_LM")
