"""The reward, stages 04-06: the reward model's input (:mod:`~sif_lib.reward.rm_input`), training
(:mod:`~sif_lib.reward.training`; degenerate negatives and the held-out figure on degenerate answers,
:mod:`~sif_lib.reward.degenerate_negatives`) and scoring (:mod:`~sif_lib.reward.scorers`, over HTTP
:mod:`~sif_lib.reward.clients`, served by :mod:`~sif_lib.reward.server`), the composite reward GRPO trains on
(:mod:`~sif_lib.reward.composite`), the held-out scorer the probe and the evaluation share
(:mod:`~sif_lib.reward.heldout`), and the ranking agreement and judge of stage 05 (:mod:`~sif_lib.reward.ranking`,
:mod:`~sif_lib.reward.judge`).
"""
