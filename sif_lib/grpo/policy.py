"""The policy stage 06 trains, and where it lives: ``grpo/adapter`` (LoRA, QLoRA), ``grpo/model`` (full
fine-tuning) or ``grpo/merged`` (an adapter merged into the base, with ``grpo.merge_adapter``).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from sif_lib.core import models
from sif_lib.core.answers import Policy, fingerprint_dir
from sif_lib.core.errors import InputError
from sif_lib.core.io import staged_dir
from sif_lib.core.stages import producer


def grpo_dir(root: Path) -> Path:
    return Path(root) / "grpo"


def trained_policy_kwargs(run_dir: str | Path, params) -> dict:
    """How to load the trained policy: ``{"spec": ..., "adapter": ...}`` for ``models.load_causal_lm`` or
    ``ChatGenerator``. A full fine-tune's ``grpo/model`` comes first, then a merged ``grpo/merged``, then the
    base policy with ``grpo/adapter`` on top."""
    out = grpo_dir(Path(run_dir))
    if (out / "model" / "config.json").is_file():
        return {"spec": str(out / "model"), "adapter": None}
    if (out / "merged" / "config.json").is_file():
        return {"spec": str(out / "merged"), "adapter": None}
    if (out / "adapter" / "adapter_config.json").is_file():
        return {"spec": params.model.policy, "adapter": str(out / "adapter")}
    raise InputError(f"{out}: no trained policy (adapter/, merged/ or model/): run stage "
                     f"{producer('grpo').name} first")


def export_merged(ctx) -> Path:
    """Merge ``grpo/adapter`` into the base policy and save ``grpo/merged`` (a QLoRA adapter is merged into
    the full-precision base, since a 4-bit base cannot absorb it exactly)."""
    params = ctx.params
    out = grpo_dir(ctx.root)
    model = models.load_causal_lm(params.model.policy, dtype=params.run.dtype, device=params.run.device,
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


def trained_policy(run_dir: Path, params) -> Policy:
    """The policy stage 06 trained (see :func:`trained_policy_kwargs`), with a fingerprint of its weights."""
    kwargs = trained_policy_kwargs(run_dir, params)
    weights = Path(kwargs["adapter"] or kwargs["spec"])
    fingerprint = fingerprint_dir(weights) if weights.is_dir() else f"spec:{kwargs['spec']}"
    return Policy("trained", str(kwargs["spec"]), kwargs["adapter"], fingerprint)
