"""Package data, no code: the seed tasks instructions are synthesized from (``seed_tasks.jsonl``) and the
soft-constraint library (``soft_constraints.yaml``)."""
