"""Cross-run analysis: comparing runs, seeds and reward models, Markdown tables from runs, and the results document.
"""
