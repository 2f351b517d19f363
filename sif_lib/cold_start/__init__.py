"""Stage 00's parts: the cold-start SFT set (:mod:`~sif_lib.cold_start.sft_set`) and its fine-tuning
(:mod:`~sif_lib.cold_start.sft`). Together they turn a non-reasoning policy into one that thinks in
``<think>…</think>`` before it answers, without any model but the policy writing its data."""
