"""The reward model as an HTTP service: ``sif serve-rm`` (:mod:`~sif_lib.rm_service.server`), its one worker
thread that packs concurrent requests into shared batches (:mod:`~sif_lib.rm_service.batcher`), the request bodies
of ``POST /score`` and vLLM's ``POST /classify`` (:mod:`~sif_lib.rm_service.wire`), the closing of connections
answered early (:mod:`~sif_lib.rm_service.linger`), and the clients that stages score through
(:mod:`~sif_lib.rm_service.clients`, whose ``make_scorer`` picks a client or the in-process scorer from the
params).
"""
