"""The policy stage 06 trains: the merged export and the cleanup of an earlier mode's outputs. Where it lives
(``grpo/adapter``, ``grpo/model`` or ``grpo/merged``) and how it answers is
:func:`sif_lib.policy.answers.trained_policy`'s, which stage 07 shares.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from sif_lib.core.io import staged_dir
from sif_lib.policy import models
from sif_lib.policy.answers import grpo_dir
from sif_lib.runner.runs import RunContext


def export_merged(ctx: RunContext) -> Path:
    """Merge ``grpo/adapter`` into the base policy and save ``grpo/merged``, in float32 whatever ``run.dtype``:
    a 4-bit base cannot absorb an adapter at all, and a bf16 one rounds most of a small update away
    (:func:`sif_lib.policy.models.lora_merge_keeps_update`). A server that loads the merged model in bf16 rounds
    it the same way; serving the adapter beside the base keeps it."""
    params = ctx.params
    out = grpo_dir(ctx.root)
    model = models.load_causal_lm(params.model.policy, dtype="float32", device=params.run.device,
                                  key="model.policy", adapter=out / "adapter")
    merged = model.merge_and_unload()
    target = out / "merged"
    with staged_dir(target) as tmp:  # written whole: checked, then renamed into place
        merged.save_pretrained(str(tmp))
        models.load_tokenizer(params.model.policy, key="model.policy").save_pretrained(str(tmp))
    del model, merged
    models.release_memory()
    return target


def remove_stale_outputs(out: Path, g) -> None:
    """A rerun in another mode must not leave an older policy where stage 07 would look first."""
    if g.finetune == "full":
        for name in ("adapter", "merged"):
            shutil.rmtree(out / name, ignore_errors=True)
    else:
        shutil.rmtree(out / "model", ignore_errors=True)
        if not g.merge_adapter:
            shutil.rmtree(out / "merged", ignore_errors=True)
