"""sif_lib: the helper library behind the self-supervised instruction-following notebooks.

Each notebook in ``notebooks/`` is one stage of the method of arXiv 2508.02150; the logic of every stage lives
here, where it is tested.
"""

__version__ = "0.1.0"
