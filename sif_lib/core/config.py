"""Typed run parameters, loaded from the YAML files in ``params/``.

Every field has a default and a help text (``sif params`` prints them). A params file only names the
fields it changes. An unknown key, a value of the wrong type or a missing file is an ``InputError`` whose
one line names the file and the key.

**Paths inside a params file are relative to that file's folder** (``accelerate_config:
accelerate/deepspeed_zero3.yaml`` next to ``params/gpu_full_zero3.yaml``); ``--set`` values are relative to the
current directory. Both are made absolute when the params are loaded, so the run's own ``params.yaml`` means the
same wherever a stage reads it. Model specs and seed sources may also be names (``tiny``, a hub id): only a
relative path that exists is anchored.

**Reads are recorded.** Every params field a stage reads is logged (:meth:`Params.reads`); a stage saves the
list in its metrics, and ``--reuse`` compares exactly those fields, so no table of "what a stage depends on"
can drift from the code.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Optional

import yaml

from sif_lib.constraints import usable_hard_ids
from sif_lib.core.errors import InputError
from sif_lib.core.io import CHECKOUT
from sif_lib.core.trl_fields import check_trl_passthrough
from sif_lib.core.types import check_value, type_name

IFEVAL_ENV = "SIF_IFEVAL_PATH"
SHARED_IFEVAL = Path("..") / "shared" / "benchmarks" / "ifeval" / "input_data.jsonl"


def opt(default: Any, help: str, **kwargs: Any) -> Any:
    """A dataclass field with a help text; mutable defaults are copied per instance."""
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda d=default: type(d)(d), metadata={"help": help}, **kwargs)
    return field(default=default, metadata={"help": help}, **kwargs)


class _Section:
    """Base of the params sections: reading a field adds ``section.field`` to the log its ``Params`` shares."""

    _log: set | None = None
    _section: str = ""

    def __getattribute__(self, name: str) -> Any:
        if not name.startswith("_"):
            log = object.__getattribute__(self, "_log")
            if log is not None and name in _FIELD_NAMES.get(type(self), ()):
                log.add(f"{object.__getattribute__(self, '_section')}.{name}")
        return object.__getattribute__(self, name)


@dataclass
class RunParams(_Section):
    seed: int = opt(0, "Seed for every random choice: data synthesis, sampling, training.")
    device: str = opt("auto", "'auto' (CUDA when present, else CPU), 'cpu' or 'cuda'.")
    dtype: str = opt("auto", "Model dtype: 'auto' (bf16 on a capable GPU, fp32 on CPU), float32, bfloat16, float16.")
    stage_timeout_s: int = opt(-1, "Kill a notebook stage after this many seconds; -1 means no limit.")


@dataclass
class ModelParams(_Section):
    policy: str = opt("smollm2-135m-instruct", "Policy model spec: smollm2-135m-instruct, tiny, a local HF dir, a .gguf file or a hub id.")
    answer_mode: Literal["after_think", "whole", "require_think"] = opt(
        "after_think", "Which part of a response is scored: text after </think> (whole text if absent), the whole text, "
        "or text after </think> with a missing tag scoring 0 (the paper).")
    system_prompt: Optional[str] = opt(None, "System message for chat prompts; null keeps the tokenizer's default.")
    enable_thinking: Optional[bool] = opt(None, "For chat templates with an enable_thinking switch (Qwen3-style): true or "
                                                "false is passed to every prompt rendering, null leaves the template's "
                                                "default. A template without the switch is never passed it.")


@dataclass
class SynthesisParams(_Section):
    seeds: Optional[str] = opt(None, "Seed tasks: null for the bundled set, or a JSONL/CSV path, a datasets directory or a hub dataset id.")
    seed_column: str = opt("task", "Column of the seed file that holds the task text.")
    strict: bool = opt(False, "Make a malformed seed row fatal instead of skipping and counting it.")
    n_instructions: int = opt(200, "Multi-constraint instructions to synthesize for training.")
    n_heldout: int = opt(40, "Extra instructions, on seeds never used for training, held out for evaluation.")
    min_constraints: int = opt(1, "Fewest constraints per instruction.")
    max_constraints: int = opt(5, "Most constraints per instruction (the paper uses up to 5).")
    hard_ratio: float = opt(0.4, "Share of hard (code-verifiable) constraints; the paper's data is about 40% hard.")
    hard_ids: Optional[list[str]] = opt(None, "Draw hard constraints only from these IFEval ids (e.g. punctuation:no_comma); null means every usable id.")
    reasoning_share: float = opt(0.32, "Share of reasoning items in the RL set (the paper mixes in 32%).")
    reasoning_source: Optional[str] = opt(None, "GSM8K or DeepScaleR-style JSONL of math items; null uses the offline generator.")
    paraphrase: bool = opt(False, "Let a local model (the policy) rewrite constraint sentences; verifier arguments stay unchanged.")


@dataclass
class RolloutParams(_Section):
    max_ladders: int = opt(48, "Curriculum ladders (instructions) answered at every level L0..Ln for pseudo-labels.")
    samples_per_prompt: int = opt(1, "Responses sampled per prompt.")
    max_new_tokens: int = opt(128, "Token budget per response.")
    temperature: float = opt(0.7, "Sampling temperature; 0 means greedy.")
    top_p: float = opt(1.0, "Nucleus sampling mass.")
    batch_size: int = opt(32, "Prompts decoded together (rollouts and the GRPO probe); on CPU, 32 beat 16 (sif bench generate).")
    backend: Literal["auto", "hf", "vllm"] = opt("auto", "'auto' uses vLLM when installed with a GPU present, else transformers generate().")
    hard_pairs: bool = opt(True, "Also make pseudo-label pairs for hard constraints (needed for the audit and RM hard-pair accuracy).")


@dataclass
class RewardModelParams(_Section):
    backbone: Optional[str] = opt(None, "Reward-model backbone spec; null means the policy's own base model.")
    mode: Literal["full", "lora", "qlora"] = opt("full", "Full fine-tuning, LoRA, or QLoRA (GPU with bitsandbytes only).")
    learning_rate: float = opt(5e-5, "Learning rate (the paper: 5e-6 for a 7B backbone).")
    epochs: float = opt(2.0, "Training epochs (the paper: 3).")
    batch_size: int = opt(8, "Per-device batch size.")
    grad_accum: int = opt(1, "Gradient accumulation steps (the paper: 8).")
    max_length: int = opt(384, "Token limit of one 'response + constraint' input.")
    eval_fraction: float = opt(0.2, "Held-out share of pseudo-label pairs, split by instruction.")
    lora_r: int = opt(16, "LoRA rank for mode lora/qlora.")
    lora_alpha: int = opt(32, "LoRA alpha for mode lora/qlora.")
    method: Literal["finetune", "linear_probe"] = opt(
        "finetune", "finetune: train the two-class classifier (the paper; reward_model.mode says how); linear_probe: "
                    "a logistic regression on the frozen backbone's last-token state (a baseline that trains in seconds).")
    hard_labels: Literal["pseudo", "verifier"] = opt(
        "pseudo", "Labels of hard-constraint pairs in training: the pseudo-labels (the paper), or the verifier's truth "
                  "(hard verifiers cost nothing and involve no external model). Soft pairs always keep pseudo-labels.")
    balance_classes: bool = opt(False, "Weight the loss by inverse class frequency (matters with verifier labels, whose "
                                       "classes are not balanced the way pseudo-labels are).")
    probe_c: Optional[float] = opt(None, "Inverse regularisation strength C of the linear probe's logistic regression; "
                                         "null: chosen by 5-fold cross-validation over the training instructions.")
    learning_curve: list[int] = opt([], "Also train on the first N training pairs of a seeded shuffle (by instruction), "
                                        "for each N, and report held-out AUC with bootstrap CIs: how much data the "
                                        "RM needs. Empty: no curve.")
    bootstrap: int = opt(1000, "Bootstrap resamples of the held-out pairs for confidence intervals.")
    check_model: bool = opt(False, "Halve the training instructions: the RM trains on one half, a check RM (rm_check/) "
                                   "on the other. GRPO's probe scores soft constraints with the check RM too: a "
                                   "soft gain the trained-against RM cannot inflate.")


@dataclass
class ScoringParams(_Section):
    rm_url: Optional[str] = opt(None, "URL of a running 'sif serve-rm'; null scores in-process.")
    rm_api: Literal["sif", "vllm"] = opt("sif", "Which protocol scoring.rm_url speaks: our `sif serve-rm` (POST /score) "
                                                "or vLLM's classification endpoint (POST /classify).")
    rm_model: Optional[str] = opt(None, "Model name sent to a vLLM /classify endpoint; null asks the server's /v1/models.")
    batch_size: int = opt(16, "Pairs per reward-model forward pass.")
    n_groups: int = opt(20, "Ranking groups (responses satisfying 1..k hard constraints) for Kendall tau.")
    group_size: int = opt(5, "Responses per ranking group (the paper's 5), spread over as many satisfied-constraint "
                             "counts as the rollouts offer; 0 keeps one response per distinct count (no truth ties).")
    bootstrap: int = opt(1000, "Bootstrap resamples of the groups for the confidence interval of Kendall tau.")
    judge_groups: int = opt(5, "Groups also scored by the generative judge, for the latency comparison.")
    judge_max_new_tokens: int = opt(24, "Token budget of the judge's short rationale and 1/0 verdict.")


@dataclass
class GRPOParams(_Section):
    curriculum: Literal["mixed", "staged", "off"] = opt("mixed", "mixed: all levels shuffled (paper); staged: L1 first then up to Ln; off: only full instructions (ablation).")
    staged_boundaries: list = opt([], "For curriculum staged: the step at which each next level opens (empty: evenly spaced).")
    soft_reward: Literal["probability", "binary"] = opt("probability", "Soft constraints score the RM probability, or its 0/1 threshold (ablation).")
    hard_reward: Literal["rules", "reward_model"] = opt("rules", "Hard constraints score by the verifier, or by the RM (ablation).")
    repetitive_penalty: float = opt(0.0, "Subtracted from the reward of a repetitive completion (over half its word 4-grams "
                                         "repeated; sif_lib.constraints.repetition). 0 is the paper's reward. Not generate()'s repetition_penalty.")
    finetune: Literal["lora", "qlora", "full"] = opt("lora", "LoRA (CPU default), QLoRA (GPU + bitsandbytes) or full fine-tuning.")
    max_steps: int = opt(60, "GRPO optimizer steps.")
    learning_rate: float = opt(2e-5, "Learning rate (the paper, full fine-tuning of 7B: 1e-6).")
    weight_decay: float = opt(0.01, "Weight decay (the paper: 0.01).")
    num_generations: int = opt(4, "Group size: completions per prompt (the paper: 5).")
    prompts_per_step: int = opt(8, "Prompts per optimizer step.")
    grad_accum: int = opt(1, "Gradient accumulation steps.")
    max_prompt_length: int = opt(384, "Prompt token limit.")
    max_completion_length: int = opt(96, "Completion token limit (the paper: 8192).")
    temperature: float = opt(1.0, "Rollout temperature (the paper: 1.0).")
    beta: float = opt(0.0, "KL coefficient (TRL estimates the KL with the low-variance k3 estimator); the paper's released "
                           "config adds a KL loss of 0.01.")
    loss_type: Literal["grpo", "dr_grpo", "dapo", "bnpo", "cispo", "sapo", "luspo", "vespo"] = opt(
        "dapo", "TRL's loss aggregation. 'dapo' (TRL 1.16's default) averages token losses over every active token of "
        "the global accumulated batch: the token-mean of the paper's verl run. 'grpo' averages per sequence first "
        "(the original GRPO, length-biased); 'bnpo' over the local batch's tokens; 'dr_grpo' divides by "
        "max_completion_length.")
    scale_rewards: Literal["group", "batch", "none"] = opt(
        "group", "Advantage scaling: by the std of the group's rewards (GRPO, the paper), of the batch's, or none (Dr. GRPO).")
    epsilon: float = opt(0.2, "Lower clipping bound of the importance ratio (PPO's epsilon).")
    epsilon_high: Optional[float] = opt(None, "Upper clipping bound; null means epsilon (DAPO's clip-higher uses 0.28).")
    num_iterations: int = opt(1, "Optimizer passes over each generated batch (TRL's mu); clipping only acts above 1 "
                                 "or with vLLM rollouts.")
    mask_truncated_completions: bool = opt(False, "Leave completions cut at max_completion_length out of the loss (DAPO).")
    top_entropy_quantile: float = opt(1.0, "Keep only this top quantile of tokens by entropy in the policy loss; 1.0 keeps "
                                           "all (the 'Beyond the 80/20 rule' paper suggests 0.2).")
    vllm_importance_sampling_correction: bool = opt(True, "With vLLM rollouts, reweight by the ratio of trainer to vLLM "
                                                          "log-probabilities (their numerics differ).")
    vllm_importance_sampling_mode: Literal["token_truncate", "token_mask", "sequence_truncate", "sequence_mask"] = opt(
        "sequence_mask", "How that correction treats ratios outside its bounds (TRL's vllm_importance_sampling_mode).")
    trl: dict = opt({}, "Any other field of TRL's GRPOConfig, passed through as given, e.g. {use_bias_correction_kl: false}. "
                        "Keys are checked against TRL's GRPOConfig when the params are loaded; a field a typed key "
                        "sets (learning_rate: grpo.learning_rate) must be set there.")
    lora_r: int = opt(16, "LoRA rank.")
    lora_alpha: int = opt(32, "LoRA alpha.")
    lora_target_modules: str = opt("all-linear", "LoRA target modules.")
    save_steps: int = opt(10, "Checkpoint every N steps; a killed run resumes from the last one.")
    logging_steps: int = opt(1, "Log metrics every N steps.")
    probe_size: int = opt(24, "Held-out curriculum prompts scored greedily before and after training.")
    merge_adapter: bool = opt(False, "Also export a merged model next to the LoRA adapter.")
    num_processes: int = opt(1, "Processes for training; above 1, notebook 06 shells out to 'accelerate launch'.")
    accelerate_config: Optional[str] = opt(None, "accelerate config YAML (e.g. DeepSpeed ZeRO-2/3) for multi-process runs.")
    use_vllm: bool = opt(False, "Generate rollouts with vLLM (GPU only).")
    vllm_mode: Literal["colocate", "server"] = opt("colocate", "vLLM inside the trainer processes, or a separate 'trl vllm-serve'.")
    gradient_checkpointing: bool = opt(False, "Trade compute for memory on large models.")
    merge_lora_for_generation: bool = opt(True, "Without vLLM, generate rollouts with the LoRA update merged into the "
                                                "weights (SmolLM2, 32 x 96 tokens: 9% faster on 2 CPU cores); the base weights are restored "
                                                "exactly afterwards from a copy of the adapted layers. LoRA on one process only.")
    rollout_batch_prompts: int = opt(0, "Prompts generated per rollout; a multiple of prompts_per_step gives several optimizer "
                                        "steps per rollout (the paper: 384 rollout / 96 per step). 0 means prompts_per_step.")
    lr_scheduler: Literal["linear", "constant", "cosine"] = opt("linear", "Learning-rate schedule after the (zero) warmup; the paper's verl run is constant.")
    save_total_limit: int = opt(2, "Checkpoints kept under grpo/checkpoints (older ones are deleted).")
    vllm_gpu_memory_utilization: float = opt(0.3, "GPU memory share vLLM may take in colocate mode.")
    vllm_tensor_parallel_size: int = opt(1, "vLLM tensor parallelism in colocate mode (the paper: 2).")
    vllm_server_url: Optional[str] = opt(None, "Base URL of 'trl vllm-serve' for vllm_mode server; null means http://localhost:8000.")
    seed: Optional[int] = opt(None, "Seed of GRPO training (TRL's seed, the curriculum order); null follows run.seed. Only training reads it: stages 01-05, the probe and the evaluation keep run.seed (sif run --seeds).")


@dataclass
class EvaluationParams(_Section):
    ifeval_path: Optional[str] = opt(None, f"IFEval prompts JSONL. Null looks, in this order, at ${IFEVAL_ENV}, then at "
                                           f"{SHARED_IFEVAL} from the current directory and from the checkout.")
    ifeval_hub_id: Optional[str] = opt(None, "Hub dataset id for IFEval prompts, used when ifeval_path is null (online users).")
    limit: int = opt(60, "Evaluate the first N IFEval prompts (a fixed subset); -1 for all 541.")
    max_new_tokens: int = opt(192, "Token budget per evaluation response (greedy decoding).")
    batch_size: int = opt(64, "Prompts decoded together; on CPU, larger batches of live answers are faster (sif bench generate).")
    math_items: int = opt(40, "Held-out synthetic math items for reasoning retention.")
    gsm8k_path: Optional[str] = opt(None, "Optional GSM8K-format JSONL scored as well.")
    gsm8k_limit: int = opt(100, "Items of the GSM8K file to score.")
    holdout_limit: int = opt(40, "Held-out curriculum prompts (levels L1..L5, balanced across levels) answered by base and "
                                 "trained; -1 for all.")
    math_max_new_tokens: int = opt(256, "Token budget per math response (reasoning retention needs room to work).")
    bootstrap: int = opt(1000, "Paired bootstrap resamples (over prompts or items) for the interval of each before/after delta.")


@dataclass
class Params:
    run: RunParams = field(default_factory=RunParams)
    model: ModelParams = field(default_factory=ModelParams)
    synthesis: SynthesisParams = field(default_factory=SynthesisParams)
    rollouts: RolloutParams = field(default_factory=RolloutParams)
    reward_model: RewardModelParams = field(default_factory=RewardModelParams)
    scoring: ScoringParams = field(default_factory=ScoringParams)
    grpo: GRPOParams = field(default_factory=GRPOParams)
    evaluation: EvaluationParams = field(default_factory=EvaluationParams)
    description: str = opt("", "One line saying what this params file is for.")

    def __post_init__(self) -> None:
        self._reads: set[str] = set()
        for f in dataclasses.fields(self):
            section = getattr(self, f.name)
            if isinstance(section, _Section):
                object.__setattr__(section, "_log", self._reads)
                object.__setattr__(section, "_section", f.name)

    def to_dict(self) -> dict:
        """Every field's value (not counted as reads)."""
        reads = set(self._reads)
        try:
            return dataclasses.asdict(self)
        finally:
            self._reads.clear()
            self._reads.update(reads)

    def flat(self) -> dict[str, Any]:
        """Every field's value keyed ``section.field`` (not counted as reads)."""
        return {(f"{name}.{key}" if isinstance(section, dict) else name): value
                for name, section in self.to_dict().items()
                for key, value in (section.items() if isinstance(section, dict) else [(None, section)])}

    def reads(self) -> list[str]:
        """The fields read since loading (or :meth:`forget_reads`), as ``section.field``, sorted."""
        return sorted(self._reads)

    def mark_read(self, keys) -> None:
        """Count reads made elsewhere (the training processes of a multi-process launch)."""
        self._reads.update(keys)

    def forget_reads(self) -> None:
        self._reads.clear()

    def value(self, dotted: str) -> Any:
        """The value of ``section.field``, without counting it as read."""
        return _lookup(self.to_dict(), dotted)


def _lookup(data: dict, dotted: str) -> Any:
    section, _, key = dotted.partition(".")
    return (data.get(section) or {}).get(key) if key else data.get(section)


_FIELD_NAMES: dict[type, frozenset[str]] = {}


def _register_fields() -> None:
    for cls in (RunParams, ModelParams, SynthesisParams, RolloutParams, RewardModelParams, ScoringParams,
                GRPOParams, EvaluationParams):
        _FIELD_NAMES[cls] = frozenset(f.name for f in dataclasses.fields(cls))


_register_fields()

# Fields that hold file paths, and fields that hold a path or a name (model specs, seed sources, hub ids).
PATH_FIELDS = ("synthesis.reasoning_source", "grpo.accelerate_config", "evaluation.ifeval_path",
               "evaluation.gsm8k_path")
PATH_OR_NAME_FIELDS = ("model.policy", "reward_model.backbone", "synthesis.seeds")


_FLOAT_STRING = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)[eE][+-]?\d+")  # YAML 1.1 reads `5e-5` (no dot) as a string


def _apply(obj: Any, data: dict, source: str, prefix: str = "") -> None:
    hints = typing.get_type_hints(type(obj))
    names = [f.name for f in dataclasses.fields(obj)]
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if key not in names:
            close = difflib.get_close_matches(str(key), names, n=1)
            hint = f" (did you mean '{prefix}{close[0]}'?)" if close else ""
            raise InputError(f"{source}: unknown key '{dotted}'{hint}")
        tp = hints[key]
        current = getattr(obj, key)
        if dataclasses.is_dataclass(current):
            if not isinstance(value, dict):
                raise InputError(f"{source}: key '{dotted}' must be a mapping of {type(current).__name__} fields")
            _apply(current, value, source, dotted + ".")
            continue
        if typing.get_origin(tp) is Literal and value is False and "off" in typing.get_args(tp):
            value = "off"  # YAML 1.1 reads a bare `off` as false
        if isinstance(value, str) and _FLOAT_STRING.fullmatch(value.strip()) and (
                tp is float or (typing.get_origin(tp) is typing.Union and float in typing.get_args(tp))):
            value = float(value)  # what was meant; any other string is left for the type check to reject
        if not check_value(tp, value):
            raise InputError(f"{source}: key '{dotted}' must be {type_name(tp)}, got {value!r}")
        if tp is float or (typing.get_origin(tp) is typing.Union and float in typing.get_args(tp) and isinstance(value, int)):
            value = float(value)
        setattr(obj, key, value)


def params_from_dict(data: dict, source: str = "<params>", base: Path | None = None) -> Params:
    """Params from a nested dict; relative paths in it are anchored at ``base`` (default: the current directory)."""
    params = Params()
    _apply(params, anchor_paths(data or {}, base or Path.cwd()), source)
    _finish(params, source)
    return params


def anchor_paths(data: dict, base: Path) -> dict:
    """A copy of ``data`` whose relative paths are absolute, anchored at ``base``: every path field, and a path
    or name field whose value names an existing file or folder there."""
    out = {k: (dict(v) if isinstance(v, dict) else v) for k, v in data.items()}
    for dotted in PATH_FIELDS + PATH_OR_NAME_FIELDS:
        section, key = dotted.split(".")
        value = (out.get(section) or {}).get(key) if isinstance(out.get(section), dict) else None
        if not isinstance(value, str) or not value.strip():
            continue
        suffix = ""
        if dotted == "synthesis.seeds" and not Path(value).expanduser().exists():
            base_part, sep, split = value.rpartition(":")  # "file.jsonl:train" names a split of a file
            if base_part and (base / base_part).exists():
                value, suffix = base_part, sep + split
        path = Path(value).expanduser()
        if path.is_absolute():
            continue
        if dotted in PATH_FIELDS or (base / path).exists():
            out[section][key] = str((base / path).resolve()) + suffix
    return out


def default_ifeval_path() -> str | None:
    """Where the IFEval prompts are when ``evaluation.ifeval_path`` is null: ``$SIF_IFEVAL_PATH``, else
    ``../shared/...`` seen from the current directory, else from the checkout (a notebook's kernel runs in
    ``notebooks/``)."""
    if os.environ.get(IFEVAL_ENV):
        return str(Path(os.environ[IFEVAL_ENV]).expanduser().resolve())
    for root in (Path.cwd(), CHECKOUT):
        if root is not None and (root / SHARED_IFEVAL).is_file():
            return str((root / SHARED_IFEVAL).resolve())
    return None


def _finish(params: Params, source: str) -> None:
    """Validate, fill the IFEval default, and start the read log empty."""
    _validate(params, source)
    ev = params.evaluation
    if ev.ifeval_path is None and ev.ifeval_hub_id is None:
        ev.ifeval_path = default_ifeval_path()
    params.forget_reads()


def _validate(p: Params, source: str) -> None:
    """Cross-field checks that a type alone cannot express."""
    s = p.synthesis
    if not 1 <= s.min_constraints <= s.max_constraints <= 10:
        raise InputError(f"{source}: key 'synthesis.min_constraints'/'max_constraints' must satisfy 1 <= min <= max <= 10")
    if not 0.0 <= s.hard_ratio <= 1.0:
        raise InputError(f"{source}: key 'synthesis.hard_ratio' must lie in [0, 1], got {s.hard_ratio}")
    if s.hard_ids is not None:
        usable = usable_hard_ids()
        unknown = [hid for hid in s.hard_ids if hid not in usable]
        if unknown:
            close = difflib.get_close_matches(unknown[0], usable, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise InputError(f"{source}: key 'synthesis.hard_ids': {unknown[0]!r} is not a usable hard constraint id{hint}")
        if not s.hard_ids and s.hard_ratio > 0:
            raise InputError(f"{source}: key 'synthesis.hard_ids' is empty but 'synthesis.hard_ratio' is {s.hard_ratio}")
    if any(not isinstance(n, int) or n < 2 for n in p.reward_model.learning_curve):
        raise InputError(f"{source}: key 'reward_model.learning_curve' must list pair counts of at least 2, "
                         f"got {p.reward_model.learning_curve}")
    if p.scoring.group_size < 0 or p.scoring.group_size == 1 or p.scoring.bootstrap < 0:
        raise InputError(f"{source}: key 'scoring.group_size' must be 0 or at least 2, and 'scoring.bootstrap' "
                         "at least 0")
    if (p.reward_model.probe_c is not None and p.reward_model.probe_c <= 0) or p.reward_model.bootstrap < 0:
        raise InputError(f"{source}: key 'reward_model.probe_c' must be above 0 and 'reward_model.bootstrap' at least 0")
    for key, value in (("synthesis.reasoning_share", s.reasoning_share),
                       ("reward_model.eval_fraction", p.reward_model.eval_fraction)):
        if not 0.0 <= value < 1.0:
            raise InputError(f"{source}: key '{key}' must lie in [0, 1), got {value}")
    for key, value in (("grpo.max_steps", p.grpo.max_steps), ("grpo.num_generations", p.grpo.num_generations),
                       ("grpo.prompts_per_step", p.grpo.prompts_per_step), ("rollouts.batch_size", p.rollouts.batch_size)):
        if value < 1:
            raise InputError(f"{source}: key '{key}' must be at least 1, got {value}")
    if p.grpo.repetitive_penalty < 0:
        raise InputError(f"{source}: key 'grpo.repetitive_penalty' must be at least 0, got {p.grpo.repetitive_penalty}")
    if p.grpo.num_generations < 2:
        raise InputError(f"{source}: key 'grpo.num_generations' must be at least 2 (GRPO compares a group)")
    g = p.grpo
    if g.num_iterations < 1:
        raise InputError(f"{source}: key 'grpo.num_iterations' must be at least 1, got {g.num_iterations}")
    if g.epsilon <= 0 or (g.epsilon_high is not None and g.epsilon_high < g.epsilon):
        raise InputError(f"{source}: key 'grpo.epsilon' must be above 0 and 'grpo.epsilon_high' (when set) at least "
                         f"epsilon, got {g.epsilon} and {g.epsilon_high}")
    if not 0.0 <= g.top_entropy_quantile <= 1.0:
        raise InputError(f"{source}: key 'grpo.top_entropy_quantile' must lie in [0, 1], got {g.top_entropy_quantile}")
    if g.trl:
        check_trl_passthrough(g.trl, source)


# ---------------------------------------------------------------------------------------------------------------
# Loading


def read_params_file(path: str | Path) -> dict:
    """The mapping in a params YAML file. Every way a file can be unusable is one InputError naming it: missing,
    a directory, unreadable, not UTF-8, empty (an explicit ``{}`` means all defaults), not YAML, not a mapping."""
    path = Path(path)
    if path.is_dir():
        raise InputError(f"{path}: is a directory, not a params file")
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"{path}: params file not found") from None
    except OSError as err:
        raise InputError(f"{path}: cannot read the params file ({err.strerror or err})") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = raw[:err.start].count(b"\n") + 1
        raise InputError(f"{path}:{line}: not a UTF-8 text file (byte {err.start}); is it the params YAML?") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        raise InputError(f"{path}{where}: not valid YAML ({getattr(err, 'problem', err)})") from None
    if data is None:
        # An empty or truncated file must not silently start the full default pipeline.
        raise InputError(f"{path}: the params file is empty; write {{}} to run with every default")
    if not isinstance(data, dict):
        raise InputError(f"{path}: a params file must be a mapping of sections, got a YAML {type(data).__name__}")
    return data


def load_params(path: str | Path, overrides: dict | None = None) -> Params:
    """Read a params YAML file, apply optional overrides (a nested dict), and validate. Paths in the file are
    anchored at its folder, paths in the overrides at the current directory."""
    path = Path(path)
    data = read_params_file(path)
    params = Params()
    _apply(params, anchor_paths(data, path.resolve().parent), str(path))
    if overrides:
        _apply(params, anchor_paths(overrides, Path.cwd()), f"{path} (overrides)")
    _finish(params, str(path))
    return params


def describe_params() -> str:
    """Every field with its default and help text, as the ``sif params`` command prints it."""
    lines = []
    for section in dataclasses.fields(Params):
        value = getattr(Params(), section.name)
        if not dataclasses.is_dataclass(value):
            continue
        lines.append(f"{section.name}:")
        for f in dataclasses.fields(value):
            lines.append(f"  {f.name}: {getattr(value, f.name)!r}\n      {f.metadata.get('help', '')}")
    return "\n".join(lines)
