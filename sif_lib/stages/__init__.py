"""One module per notebook, in the order the method runs (:mod:`sif_lib.runner.stage_table` is the table).

Each module's ``run(ctx) -> metrics`` is the stage: it reads what earlier stages wrote, calls the logic in the
concern packages (:mod:`sif_lib.synthesis`, :mod:`sif_lib.labels`, :mod:`sif_lib.reward_model`,
:mod:`sif_lib.reward`, :mod:`sif_lib.grpo`, :mod:`sif_lib.evaluation`), writes its artifacts and
``metrics/<stage>.json``. Its other functions are the tables and figures its notebook shows. Analysis that only
one stage needs sits beside that stage (:mod:`sif_lib.stages.s05_analysis`).
"""
