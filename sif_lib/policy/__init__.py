"""The policy's runtime: model specs and one loader for them (:mod:`~sif_lib.policy.models`), batched chat
generation through transformers or vLLM (:mod:`~sif_lib.policy.generation`), the CPU decoder behind it
(:mod:`~sif_lib.policy.decoding`), and a policy's answers to fixed prompt sets, cached on disk and keyed by who
wrote them (:mod:`~sif_lib.policy.answers`, which is also where stages 06 and 07 find the trained policy).
"""
