"""Stage 07's logic: what is evaluated (:mod:`~sif_lib.evaluation.benchmarks`,
:mod:`~sif_lib.evaluation.curriculum_holdout`, :mod:`~sif_lib.evaluation.math_accuracy`), the answers
(:mod:`~sif_lib.evaluation.generate`), the scores (:mod:`~sif_lib.evaluation.scores`, with the IFEval and IFBench
scorers :mod:`~sif_lib.evaluation.ifeval_scoring` and :mod:`~sif_lib.evaluation.ifbench_scoring`), paired
intervals, thinking figures, degenerate answers and the report. Comparing runs is :mod:`sif_lib.analysis`'s.
"""
