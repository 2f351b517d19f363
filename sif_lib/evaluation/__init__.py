"""Stage 07's logic: what is evaluated (:mod:`~sif_lib.evaluation.benchmarks`, :mod:`~sif_lib.evaluation.holdout`,
:mod:`~sif_lib.evaluation.math_accuracy`), the answers (:mod:`~sif_lib.evaluation.generate`), the scores
(:mod:`~sif_lib.evaluation.scores`, with the IFEval scorer :mod:`~sif_lib.evaluation.ifeval`), the report, and the
comparison of runs (:mod:`~sif_lib.evaluation.compare`).
"""
