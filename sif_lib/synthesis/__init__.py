"""Stages 01 and 02's logic, the training data: seed tasks (:mod:`~sif_lib.synthesis.seeds`), multi-constraint
instructions (:mod:`~sif_lib.synthesis.instructions`, optionally paraphrased by :mod:`~sif_lib.synthesis.paraphrase`),
math items for the reasoning mix (:mod:`~sif_lib.synthesis.math_items`) and the curriculum ladders
(:mod:`~sif_lib.synthesis.curriculum`).
"""
