"""The reward function: the composite reward GRPO trains on (:mod:`~sif_lib.reward.composite`: verifiers for hard
constraints, the reward model's probability for soft ones, the answer part ``model.answer_mode`` selects, and the
reward switches), and the held-out scorer that scores unseen prompts with that same reward for stage 06's probe
and stage 07's curriculum hold-out (:mod:`~sif_lib.reward.heldout`). The reward model itself is
:mod:`sif_lib.reward_model`; this package calls it only through the scorer it is handed.
"""
