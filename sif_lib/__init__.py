"""sif_lib: the library behind the self-supervised instruction-following notebooks (arXiv 2508.02150).

Each notebook in ``notebooks/`` is one stage of the method; :mod:`sif_lib.stages` has one module per notebook, in
pipeline order, over the concern packages that hold the logic, where it is tested: :mod:`sif_lib.core` (params,
run directory, stage table, runner, I/O, models), :mod:`sif_lib.constraints`, :mod:`sif_lib.synthesis`,
:mod:`sif_lib.labels`, :mod:`sif_lib.reward`, :mod:`sif_lib.grpo` and :mod:`sif_lib.evaluation`.
"""

__version__ = "0.1.0"
