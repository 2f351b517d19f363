"""One module per notebook, in the order the method runs (:mod:`sif_lib.core.stages` is the table).

Each module's ``run(ctx) -> metrics`` is the stage: it reads what earlier stages wrote, calls the logic in the
concern packages (:mod:`sif_lib.synthesis`, :mod:`sif_lib.labels`, :mod:`sif_lib.reward`, :mod:`sif_lib.grpo`,
:mod:`sif_lib.evaluation`), writes its artifacts and ``metrics/<stage>.json``. Its other functions are the
tables and figures its notebook shows.
"""
