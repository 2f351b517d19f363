"""Before a run starts: room on disk for what its params will write, and a model cache that can be written.

:func:`estimate` adds up what the selected stages will write, from the size of the models they save (measured
where the model is on disk, else derived from its GGUF file); :func:`check_space` refuses a run whose file system
has less free space than that, and warns below twice that. An estimate, with these simplifications: a saved model
is as large as its base model on disk (a reward model saved in bf16 on a GPU is half that); a LoRA adapter is
:data:`ADAPTER_SHARE` of the model; a checkpoint of trained weights holds them and Adam's two moments; a hub model
not yet downloaded has no known size and is left out (said so). Space already taken by an earlier attempt of the
same run is not counted again, nor are the stages that ``--reuse`` copies from another run.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from sif_lib.config.params import Params
from sif_lib.core.errors import StorageError
from sif_lib.core.io import at_nearest_existing, free_bytes, human_bytes
from sif_lib.policy import models
from sif_lib.runner.stage_table import enabled, stage

MiB = 2**20
DATA_BYTES = 100 * MiB   # data, executed notebooks, logs and evaluation of a run (a demo run writes about 25 MB)
TINY_BYTES = 20 * MiB    # the tiny test model with its tokenizer (16 MB)
GGUF_EXPANSION = 5.5     # a 4-bit GGUF file dequantized to float32 safetensors (the bundled SmolLM2: 98 MB -> 541 MB)
ADAPTER_SHARE = 0.05     # a rank-16 LoRA adapter on every linear layer of SmolLM2-135M: about 4% of the weights
ADAM_COPIES = 3          # trained weights and Adam's two moments


def _dir_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file())


def model_bytes(spec: str) -> tuple[int | None, Path | None]:
    """A model's size on disk (None when unknown) and, when it must still be converted into the cache, the
    cache folder it will go to."""
    parsed = models.parse_spec(spec)
    if parsed.kind == "local":
        return _dir_bytes(Path(parsed.source)), None
    target = models.cache_target(spec)
    if target is not None:
        if (target / "config.json").is_file():
            return _dir_bytes(target), None
        if parsed.kind == "tiny":
            return TINY_BYTES, target
        return int(models.gguf_file(spec).stat().st_size * GGUF_EXPANSION), target
    from huggingface_hub.constants import HF_HUB_CACHE  # light; only for a hub id

    blobs = Path(HF_HUB_CACHE) / ("models--" + parsed.source.replace("/", "--")) / "blobs"  # snapshots link here
    return (_dir_bytes(blobs) if blobs.is_dir() else None), None


def estimate(params: Params, stages: list[str]) -> dict:
    """What the ``stages`` of a run under ``params`` write: ``{"outputs": bytes, "cache": bytes, "parts":
    [(what, bytes)], "unknown": [spec], "cache_dirs": [folder]}``."""
    policy, policy_cache = model_bytes(params.model.policy)
    backbone_spec = params.reward_model.backbone or params.model.policy
    backbone, backbone_cache = model_bytes(backbone_spec)
    unknown = sorted({spec for spec, size in ((params.model.policy, policy), (backbone_spec, backbone))
                      if size is None})
    policy, backbone = policy or 0, backbone or 0
    adapter = int(policy * ADAPTER_SHARE)
    parts = [("data, notebooks, logs, evaluation", DATA_BYTES)]

    def runs(name: str) -> bool:
        return stage(name).name in stages and enabled(stage(name).name, params)

    if runs("cold_start"):
        cs = params.cold_start
        checkpoint = ADAM_COPIES * (policy if cs.finetune == "full" else adapter)
        parts.append(("cold start: policy and two checkpoints while one is saved", policy + 2 * checkpoint))
    if runs("train_reward_model"):
        copies = 2 if params.reward_model.check_model else 1
        parts.append((f"reward model{'s' if copies > 1 else ''}", copies * backbone))
    if runs("train_grpo"):
        g = params.grpo
        full = g.finetune == "full"
        checkpoint = ADAM_COPIES * (policy if full else adapter)
        kept = max(1, g.save_total_limit) + 1  # the kept ones, and the one being saved
        final = policy if full else adapter + (policy if g.merge_adapter else 0)
        parts.append((f"GRPO: {kept} checkpoints and the trained policy", kept * checkpoint + final))
    cache_dirs = sorted({d for d in (policy_cache, backbone_cache) if d is not None})
    cache = (policy if policy_cache else 0) + (backbone if backbone_cache and backbone_cache != policy_cache else 0)
    return {"outputs": sum(size for _, size in parts), "cache": cache, "parts": parts, "unknown": unknown,
            "cache_dirs": cache_dirs}


def _device(path: Path) -> int | None:
    return at_nearest_existing(path, lambda folder: os.stat(folder).st_dev)


def check_cache_writable(folders: list[Path]) -> None:
    """A model that must be converted into the cache fails at once, not minutes into a stage, when the cache
    cannot be written."""
    for folder in folders:
        cache = Path(folder).parent
        try:
            cache.mkdir(parents=True, exist_ok=True)
            fd, probe = tempfile.mkstemp(dir=cache, prefix=".sif-write-check-")
            os.close(fd)
            os.unlink(probe)
        except OSError as err:
            reason = err.strerror or type(err).__name__
            raise StorageError(f"{cache}: the model cache cannot be written ({reason.lower()}); "
                               f"{models.CACHE_HINT}") from None


def check_space(params: Params, stages: list[str], run_dir: Path, echo=print) -> dict:
    """Refuse the run when a file system it writes has less free space than :func:`estimate` says it needs;
    warn below twice that. Returns the estimate."""
    need = estimate(params, stages)
    check_cache_writable(need["cache_dirs"])
    wants: dict[int | None, list] = {}
    for path, size in ((run_dir, need["outputs"]), *((d, need["cache"]) for d in need["cache_dirs"][:1])):
        if size:
            entry = wants.setdefault(_device(path), [path, 0])
            entry[1] += size
    for path, size in wants.values():
        free = free_bytes(path)
        if free is None:
            continue
        detail = ", ".join(f"{what} {human_bytes(n)}" for what, n in need["parts"] if n)
        if free < size:
            raise StorageError(f"{path}: {human_bytes(free)} free, and this run needs about {human_bytes(size)} "
                               f"there (an estimate: {detail}); free some space, or pass --no-space-check")
        if free < 2 * size:
            echo(f"warning: {path}: {human_bytes(free)} free; this run needs about {human_bytes(size)} there")
    for spec in need["unknown"]:
        echo(f"note: the free-space check does not count {spec} (its size is unknown until it is downloaded)")
    return need
