"""Stage 06's logic: GRPO with TRL on the composite reward (the stage itself is :mod:`sif_lib.stages.s06_train_grpo`).

In the order a training run uses them: :mod:`~sif_lib.grpo.rl_set` (prompts and curriculum order),
:mod:`~sif_lib.grpo.config` (params to ``GRPOConfig``), :mod:`~sif_lib.grpo.trainer` (``train_grpo``),
:mod:`~sif_lib.grpo.trl_hooks` (the one private TRL hook), :mod:`~sif_lib.grpo.checkpoints`,
:mod:`~sif_lib.grpo.launch` (``accelerate launch -m sif_lib.grpo``), :mod:`~sif_lib.grpo.policy_export` (the trained
policy's export), :mod:`~sif_lib.grpo.probe` (held-out probe) and :mod:`~sif_lib.grpo.series` (per-step figures).
"""
