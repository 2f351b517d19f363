"""The constraint-wise binary reward model of stage 04: its input text (:mod:`~sif_lib.reward_model.rm_input`), its
training data, splits and check model (:mod:`~sif_lib.reward_model.training`), the fine-tune
(:mod:`~sif_lib.reward_model.finetune`) or linear probe (:mod:`~sif_lib.reward_model.linear_probe`) that trains it,
degenerate negatives (:mod:`~sif_lib.reward_model.degenerate_negatives`), its held-out figures
(:mod:`~sif_lib.reward_model.rm_eval`), and the trained model scored in process
(:mod:`~sif_lib.reward_model.scorer`).
"""
