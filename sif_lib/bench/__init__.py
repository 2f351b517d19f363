"""Speed and memory benchmarks behind ``sif bench``, one module per measurement: decoding speed
(:mod:`~sif_lib.bench.decode_speed`), one GRPO step (:mod:`~sif_lib.bench.grpo_step`), reward-model scoring
against a judge (:mod:`~sif_lib.bench.rm_speed`), the reward service under concurrent clients
(:mod:`~sif_lib.bench.rm_service_load`), the verifiers (:mod:`~sif_lib.bench.verifiers`) and the scoring commands
(:mod:`~sif_lib.bench.scoring`), the last two beside the reference implementations
(:mod:`~sif_lib.bench.references`)."""
