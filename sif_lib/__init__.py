"""sif_lib: the library behind the self-supervised instruction-following notebooks (arXiv 2508.02150).

Each notebook in ``notebooks/`` is one stage of the method; :mod:`sif_lib.stages` has one module per notebook, in
pipeline order, over the packages that hold the logic, where it is tested: at the bottom the utilities
(:mod:`sif_lib.core`) and the verifiers (:mod:`sif_lib.constraints`); then the params schema
(:mod:`sif_lib.config`), the runner (:mod:`sif_lib.runner`) and the policy's runtime (:mod:`sif_lib.policy`); then
one package per concern of the method (:mod:`sif_lib.synthesis`, :mod:`sif_lib.labels`, :mod:`sif_lib.reward`,
:mod:`sif_lib.reward_model`, :mod:`sif_lib.rm_service`, :mod:`sif_lib.grpo`, :mod:`sif_lib.cold_start`,
:mod:`sif_lib.evaluation`) and the analysis across runs (:mod:`sif_lib.analysis`).
"""

__version__ = "0.1.0"
