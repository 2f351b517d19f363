"""Infrastructure the stages share, importing no stage: params (:mod:`~sif_lib.core.config`), the stage table
(:mod:`~sif_lib.core.stages`), the run directory (:mod:`~sif_lib.core.runs`) and its runner
(:mod:`~sif_lib.core.pipeline`), files (:mod:`~sif_lib.core.io`), models and generation, cached answers of a
policy (:mod:`~sif_lib.core.answers`), statistics (:mod:`~sif_lib.core.stats`) and display helpers.
"""
