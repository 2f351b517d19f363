"""Plotly set-up shared by the notebooks.

Figures render twice in one output: as plotly's own mimetype (interactive in JupyterLab) and as HTML with
plotly.js embedded, so that an executed notebook exported to HTML keeps its charts interactive offline.
Stage-specific figures are built next to the data they plot (each stage module has its own).
"""

from __future__ import annotations

import plotly.io as pio

RENDERER = "plotly_mimetype+notebook"
TEMPLATE = "plotly_white"


def configure() -> None:
    pio.renderers.default = RENDERER
    pio.templates.default = TEMPLATE
