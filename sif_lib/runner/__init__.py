"""The runner: the stage table every other list derives from (:mod:`~sif_lib.runner.stage_table`), ``sif run``
executing the stage notebooks (:mod:`~sif_lib.runner.pipeline`), the run directory and a stage's context in it
(:mod:`~sif_lib.runner.runs`), one writer per run (:mod:`~sif_lib.runner.runlock`), repeated seeds
(:mod:`~sif_lib.runner.seed_runs`), live progress (:mod:`~sif_lib.runner.progress`), the stage kernels and why one
died (:mod:`~sif_lib.runner.kernels`), room on disk before a run (:mod:`~sif_lib.runner.disk_space`) and where the
trainers' curves go (:mod:`~sif_lib.runner.tracking`). It finds each stage's module by the name the table gives, so
it imports no stage.
"""
