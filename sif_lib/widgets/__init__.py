"""Interactive notebook widgets (ipywidgets) for inspecting a run's data."""
