import json

import pytest
import torch

from sif_lib.core.errors import InputError
from sif_lib.policy import models


def test_parse_spec_kinds(tmp_path):
    assert models.parse_spec("smollm2-135m-instruct").kind == "bundled"
    assert models.parse_spec("tiny").kind == "tiny"
    assert models.parse_spec("Qwen/Qwen2.5-1.5B-Instruct").kind == "hub"
    (tmp_path / "config.json").write_text("{}")
    assert models.parse_spec(str(tmp_path)).kind == "local"


@pytest.mark.parametrize("spec", ["/no/such/model", "./missing-dir", "/tmp/none.gguf"])
def test_missing_model_path_is_one_clear_line(spec):
    with pytest.raises(InputError) as err:
        models.parse_spec(spec, key="model.policy")
    assert "model.policy" in str(err.value) and spec in str(err.value) and "\n" not in str(err.value)


def test_directory_without_config_is_rejected(tmp_path):
    with pytest.raises(InputError, match="no config.json"):
        models.parse_spec(str(tmp_path))


def test_bundled_smollm2_is_converted_once_to_safetensors():
    path = models.resolve("smollm2-135m-instruct")
    files = {p.name for p in __import__("pathlib").Path(path).iterdir()}
    assert "config.json" in files and any(name.endswith(".safetensors") for name in files)
    cached = __import__("pathlib").Path(path) / "config.json"
    stamp = cached.stat().st_mtime_ns
    assert models.resolve("smollm2-135m-instruct") == path  # cached: no second conversion
    assert cached.stat().st_mtime_ns == stamp


def test_tiny_model_builds_fast_and_shares_the_tokenizer():
    model = models.load_causal_lm("tiny", dtype="float32", device="cpu")
    tokenizer = models.load_tokenizer("tiny")
    assert tokenizer.padding_side == "left" and tokenizer.pad_token is not None
    assert model.config.vocab_size == len(models.load_tokenizer("smollm2-135m-instruct"))
    assert sum(p.numel() for p in model.parameters()) < 10_000_000
    again = models.load_causal_lm("tiny", dtype="float32", device="cpu")
    for a, b in zip(model.parameters(), again.parameters()):
        assert torch.equal(a, b)


def test_sequence_classifier_has_two_labels():
    clf = models.load_sequence_classifier("tiny", dtype="float32", device="cpu")
    tok = models.load_tokenizer("tiny")
    logits = clf(**tok(["a response", "another, longer response"], return_tensors="pt", padding=True)).logits
    assert logits.shape == (2, 2)


def test_qlora_without_gpu_is_a_clear_error():
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(InputError, match="qlora needs a CUDA GPU"):
        models.quantization_config(True)


def test_gguf_file_spec_round_trip():
    gguf = models._bundled_gguf()
    parsed = models.parse_spec(str(gguf))
    assert parsed.kind == "gguf" and parsed.source.endswith(".gguf")


def _decode_warnings(tokenizer, ids) -> tuple[str, list[str]]:
    """Decode ``ids``; return the text and every warning and transformers log record of WARNING or above."""
    import logging
    import warnings

    from transformers.utils import logging as hf_logging

    class Records(logging.Handler):
        def __init__(self):
            super().__init__(logging.WARNING)
            self.lines: list[str] = []

        def emit(self, record):
            self.lines.append(record.getMessage())

    hf_logging.warning_once.cache_clear()  # a message already logged once in this process is otherwise not logged
    handler, library = Records(), hf_logging.get_logger("transformers")
    library.addHandler(handler)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            text = tokenizer.decode(ids, skip_special_tokens=True)
    finally:
        library.removeHandler(handler)
    return text, handler.lines + [str(w.message) for w in caught]


def test_tokenizers_decode_without_a_clean_up_warning_and_to_the_same_text(tmp_path):
    """SmolLM2's tokenizer config asks for clean_up_tokenization_spaces, which transformers ignores for a BPE
    tokenizer, with a warning at the first decode (stderr, so in every stage's executed notebook and report.html).
    The tokenizers the pipeline loads say False: the same text, no warning."""
    from conftest import write_untrained_rm
    from transformers import AutoTokenizer

    from sif_lib.reward_model.scorer import RewardScorer

    text = "Hello , world ! It 's fine . Is it ? Yes : no ; 'quoted' n't"
    raw = AutoTokenizer.from_pretrained(models.resolve("tiny"))
    assert raw.clean_up_tokenization_spaces  # what the tokenizer's own config says
    ids = raw(text, add_special_tokens=False)["input_ids"]
    expected, said = _decode_warnings(raw, ids)
    assert any("clean_up_tokenization_spaces" in line for line in said), said  # the warning, as stages saw it
    assert expected == text  # transformers skipped the clean-up: spaces before punctuation stay

    # A reward-model directory written before this fix keeps the setting in its tokenizer config.
    rm_dir = write_untrained_rm(tmp_path / "rm")
    config = json.loads((rm_dir / "tokenizer_config.json").read_text())
    (rm_dir / "tokenizer_config.json").write_text(json.dumps({**config, "clean_up_tokenization_spaces": True}))
    for tokenizer in (models.load_tokenizer("tiny"), models.load_tokenizer("tiny", padding_side="right"),
                      RewardScorer.from_dir(rm_dir, device="cpu").tokenizer):
        got, said = _decode_warnings(tokenizer, ids)
        assert said == [] and got == expected
