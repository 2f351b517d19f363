"""Evaluation: IFEval scoring and the evaluation stage."""
