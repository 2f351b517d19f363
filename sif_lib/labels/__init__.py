"""Stage 03's logic: the policy's rollouts over the curriculum ladders (:mod:`~sif_lib.labels.rollouts`) and the
self-supervised pseudo-labels made from them, with their audit (:mod:`~sif_lib.labels.pseudo_labels`).
"""
