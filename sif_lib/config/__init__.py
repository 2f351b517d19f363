"""The params schema: the typed params a run is made of (:mod:`~sif_lib.config.params`: ``Params``, loading a
params file, the checks between fields), one dataclass per section with its defaults and help texts
(:mod:`~sif_lib.config.sections`), the type checks of YAML values (:mod:`~sif_lib.config.types`) and the TRL
``GRPOConfig`` fields passed through under ``grpo.trl`` (:mod:`~sif_lib.config.trl_fields`). It imports nothing of
sif_lib but :mod:`sif_lib.core`; the YAML files themselves live in the checkout's ``params/`` folder.
"""
