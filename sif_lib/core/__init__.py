"""The utilities every layer shares, importing nothing of sif_lib outside this package: where things are, atomic
writes, JSON and JSONL (:mod:`~sif_lib.core.io`), the errors the command line turns into one line
(:mod:`~sif_lib.core.errors`), statistics (:mod:`~sif_lib.core.stats`), HTML and text tables
(:mod:`~sif_lib.core.display`) and plotly's set-up for the notebooks (:mod:`~sif_lib.core.plots`).
"""
