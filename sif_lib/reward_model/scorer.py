"""The reward model scored in process (:class:`RewardScorer`); the same interface over HTTP is
:mod:`sif_lib.rm_service.clients`, and :func:`sif_lib.rm_service.clients.make_scorer` picks what the params ask for.

The score of a (response, constraint) pair is P(the response adheres) = ``softmax(logits)[1]`` of the
classifier that stage 04 trains (:mod:`sif_lib.reward_model.training`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sif_lib.core.errors import InputError
from sif_lib.policy.models import device_for, torch_dtype, without_bpe_cleanup
from sif_lib.reward_model.linear_probe import HEAD_TYPE, last_token_states, predict
from sif_lib.reward_model.rm_input import check_pair, encode_pairs, padded_batches, read_meta


class RewardScorer:
    """Scores (response, constraint description) pairs with a trained classifier: P(adheres) in [0, 1].

    :meth:`score` encodes the pairs (:func:`encode_pairs`) and hands the token ids to :meth:`score_ids`. Inputs
    are sorted by length before batching, so a batch holds inputs of similar length and little padding; the
    scores come back in input order. Padding is on the right, so an input scores the same alone as in a batch
    (up to float rounding).
    """

    def __init__(self, model: Any, tokenizer: Any, max_length: int, batch_size: int = 16, info: dict | None = None,
                 head: dict | None = None):
        self.model = model
        # A linear probe's logistic head over the backbone (sif_lib.reward_model.linear_probe), or None.
        self.head = head
        self.tokenizer = tokenizer
        self.tokenizer.padding_side = "right"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.max_length = int(max_length)
        self.batch_size = max(1, int(batch_size))
        self.info = info or {}
        self.model.eval()

    @classmethod
    def from_dir(cls, path: str | Path, device: str = "auto", batch_size: int = 16,
                 dtype: str = "auto") -> RewardScorer:
        """Load a directory written by :func:`train_reward_model` (a run's ``rm/``)."""
        import torch  # heavy: only when a model is loaded
        from transformers import AutoModel, AutoModelForSequenceClassification, AutoTokenizer

        path = Path(path)
        if not (path / "config.json").is_file():
            raise InputError(f"{path}: not a reward-model directory (no config.json); train one with stage 04")
        meta = read_meta(path)
        target = device_for(device)
        # fp32 on CPU (its kernels are fastest there); bf16 or the requested dtype on a GPU.
        torch_type = torch.float32 if target == "cpu" else torch_dtype(dtype)
        tokenizer = without_bpe_cleanup(AutoTokenizer.from_pretrained(str(path)))
        head = meta.get("head") if isinstance(meta.get("head"), dict) else None
        if head is not None and head.get("type") != HEAD_TYPE:
            raise InputError(f"{path / 'sif_rm.json'}: key 'head.type' must be {HEAD_TYPE!r}, got {head.get('type')!r}")
        # A linear probe reads the backbone's hidden states; a fine-tuned classifier has its own head.
        loader = AutoModel if head is not None else AutoModelForSequenceClassification
        model = loader.from_pretrained(str(path), dtype=torch_type)
        if model.config.pad_token_id is None:
            model.config.pad_token_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None \
                else tokenizer.eos_token_id
        model.to(target)
        return cls(model, tokenizer, meta["max_length"], batch_size=batch_size, info={**meta, "model_dir": str(path)},
                   head=head)

    @property
    def fingerprint(self) -> str:
        """Identifies the trained model: a hash of its ``sif_rm.json`` (which records when and how it was trained)."""
        meta = {k: v for k, v in self.info.items() if k != "model_dir"}
        return "rm:" + hashlib.sha1(json.dumps(meta, sort_keys=True, default=str).encode()).hexdigest()[:16]

    @property
    def vocab_size(self) -> int:
        """How many token ids the model can embed: ids at or above this would fail inside the forward pass."""
        embeddings = getattr(self.model, "get_input_embeddings", lambda: None)()
        return int(getattr(embeddings, "num_embeddings", 0) or len(self.tokenizer))

    def score(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        """P(label 1) for each (response, constraint description) pair, in input order."""
        pairs = [check_pair(p, i) for i, p in enumerate(pairs)]
        return self.score_ids(encode_pairs(self.tokenizer, pairs, self.max_length))

    def score_ids(self, ids: Sequence[Sequence[int]]) -> list[float]:
        """P(label 1) for each input given as token ids (as :func:`encode_pairs` makes them), in input order.

        The ids are used as given: the caller keeps them within ``max_length`` and the vocabulary.
        """
        import torch

        for i, row in enumerate(ids):
            if not row:
                raise InputError(f"input {i}: no token ids")
        if not ids:
            return []
        device = next(self.model.parameters()).device
        pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        scores = [0.0] * len(ids)
        with torch.inference_mode():
            for chunk, input_ids, mask in padded_batches(ids, self.batch_size, pad_id):
                if self.head is not None:
                    states = last_token_states(self.model, input_ids.to(device), mask.to(device)).cpu().numpy()
                    probs = [float(p) for p in predict(self.head, states)]
                else:
                    logits = self.model(input_ids=input_ids.to(device), attention_mask=mask.to(device)).logits
                    probs = torch.softmax(logits.float(), dim=-1)[:, 1].tolist()
                for i, p in zip(chunk, probs):
                    scores[i] = float(p)
        return scores
