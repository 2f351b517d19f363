"""Stage 03's logic: the policy's rollouts over the curriculum ladders (:mod:`~sif_lib.labels.rollouts`) and the
self-supervised pseudo-labels made from them, with their audit (:mod:`~sif_lib.labels.pseudo_labels`); and the
degenerate variants of those answers (:mod:`~sif_lib.labels.degenerate_variants`) that stage 04 trains and
measures the reward model on.
"""
