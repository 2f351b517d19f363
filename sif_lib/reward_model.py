"""The constraint-wise binary reward model: its input, its training (stage 04) and its scorer (stages 05-07).

The model is a two-class sequence classifier on a causal-LM backbone. It sees one response and one constraint,
never the instruction, in the paper's template (:data:`RM_TEMPLATE`), and its soft score is
``softmax(logits)[1]``, the probability that the response adheres.

Training reads the stage-03 pseudo-labels: ``(o_k, c_k)`` is labelled 1 and ``(o_{k-1}, c_k)`` is labelled 0.
The loss is cross-entropy over the two classes, which for two classes is the paper's binary cross-entropy.
Pairs are split into train and held-out by *parent instruction*, so that no held-out response or constraint
was seen in training.

Simplifications against the paper:

* the backbone is the policy's own (SmolLM2-135M on CPU) rather than a 7B model; ``reward_model.backbone``
  points at any other spec;
* the paper trains fully in fp16 with DeepSpeed; here full fine-tuning runs in fp32 on CPU and with bf16
  autocast (fp32 master weights) on a GPU, and LoRA/QLoRA are offered for large backbones;
* a LoRA run is merged into the backbone before saving, so every scorer loads one plain directory.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import random
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

from sif_lib.errors import InputError

RM_TEMPLATE = ("You need to determine whether the response adheres to this constraint. "
               "Output 1 if it does, otherwise output 0. Response: {response} Constraint: {constraint}")
RM_FORMAT = "sif-rm/1"
META_FILE = "sif_rm.json"
CARD_FILE = "README.md"
STAGE = "04_train_reward_model"


# ---------------------------------------------------------------------------------------------------------------
# Input


def rm_input(response: str, constraint_description: str, tokenizer: Any = None, max_length: int | None = None) -> str:
    """The paper's classifier input for one (response, constraint) pair.

    With a tokenizer and ``max_length``, the *response* is cut (at a token boundary) so that the whole text,
    constraint included, fits in ``max_length`` tokens: the constraint is what the classifier is asked about,
    so it must never be the part that is lost. Only when the template and the constraint alone exceed the limit
    is the response dropped entirely; the tokenizer's own truncation then cuts the constraint's tail.
    """
    text = RM_TEMPLATE.format(response=response, constraint=constraint_description)
    if tokenizer is None or max_length is None:
        return text
    if _n_tokens(tokenizer, text) <= max_length:
        return text
    return _truncated_input(tokenizer, response, constraint_description, max_length)


def _n_tokens(tokenizer: Any, text: str) -> int:
    return len(tokenizer(text, add_special_tokens=True)["input_ids"])


def _truncated_input(tokenizer: Any, response: str, constraint: str, max_length: int) -> str:
    bare = RM_TEMPLATE.format(response="", constraint=constraint)
    budget = max_length - _n_tokens(tokenizer, bare)
    if budget <= 0:
        return bare
    enc = tokenizer(response, add_special_tokens=False, return_offsets_mapping=getattr(tokenizer, "is_fast", False))
    ids = enc["input_ids"]
    offsets = enc.get("offset_mapping")
    # Tokens can merge across the response/constraint boundary, so the first cut may overshoot by a token or
    # two; shrink until the assembled text really fits.
    while budget > 0:
        if offsets is not None:
            cut = response[:offsets[min(budget, len(ids)) - 1][1]]
        else:
            cut = tokenizer.decode(ids[:budget], skip_special_tokens=True)
        text = RM_TEMPLATE.format(response=cut.rstrip(), constraint=constraint)
        overflow = _n_tokens(tokenizer, text) - max_length
        if overflow <= 0:
            return text
        budget -= max(1, overflow)
    return bare


def encode_pairs(tokenizer: Any, pairs: Sequence[tuple[str, str]], max_length: int,
                 stats: dict | None = None) -> list[list[int]]:
    """Token ids of each pair's input. One batched tokenizer call; only over-long inputs are re-cut.

    ``stats``, when given, receives ``truncated``: how many responses had to be cut.
    """
    texts = [RM_TEMPLATE.format(response=r, constraint=c) for r, c in pairs]
    if not texts:
        return []
    ids = tokenizer(texts, add_special_tokens=True)["input_ids"]
    truncated = 0
    for i, row in enumerate(ids):
        if len(row) > max_length:
            truncated += 1
            text = _truncated_input(tokenizer, pairs[i][0], pairs[i][1], max_length)
            ids[i] = tokenizer(text, add_special_tokens=True, truncation=True, max_length=max_length)["input_ids"]
    if stats is not None:
        stats["truncated"] = truncated
    return ids


# ---------------------------------------------------------------------------------------------------------------
# Scoring


class RewardScorer:
    """Scores (response, constraint description) pairs with a trained classifier: P(adheres) in [0, 1].

    :meth:`score` encodes the pairs (:func:`encode_pairs`) and hands the token ids to :meth:`score_ids`. Inputs
    are sorted by length before batching, so a batch holds inputs of similar length and little padding; the
    scores come back in input order. Padding is on the right, so an input scores the same alone as in a batch
    (up to float rounding).
    """

    def __init__(self, model: Any, tokenizer: Any, max_length: int, batch_size: int = 16, info: dict | None = None):
        self.model = model
        self.tokenizer = tokenizer
        self.tokenizer.padding_side = "right"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.max_length = int(max_length)
        self.batch_size = max(1, int(batch_size))
        self.info = info or {}
        self.model.eval()

    @classmethod
    def from_dir(cls, path: str | Path, device: str = "auto", batch_size: int = 16, dtype: str = "auto") -> "RewardScorer":
        """Load a directory written by :func:`train_reward_model` (a run's ``rm/``)."""
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        from sif_lib.models import device_for, torch_dtype

        path = Path(path)
        if not (path / "config.json").is_file():
            raise InputError(f"{path}: not a reward-model directory (no config.json); train one with stage 04")
        meta = _read_meta(path)
        target = device_for(device)
        # fp32 on CPU (its kernels are fastest there); bf16 or the requested dtype on a GPU.
        torch_type = torch.float32 if target == "cpu" else torch_dtype(dtype)
        tokenizer = AutoTokenizer.from_pretrained(str(path))
        model = AutoModelForSequenceClassification.from_pretrained(str(path), dtype=torch_type)
        if model.config.pad_token_id is None:
            model.config.pad_token_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None \
                else tokenizer.eos_token_id
        model.to(target)
        return cls(model, tokenizer, meta["max_length"], batch_size=batch_size, info={**meta, "model_dir": str(path)})

    @property
    def vocab_size(self) -> int:
        """How many token ids the model can embed: ids at or above this would fail inside the forward pass."""
        embeddings = getattr(self.model, "get_input_embeddings", lambda: None)()
        return int(getattr(embeddings, "num_embeddings", 0) or len(self.tokenizer))

    def score(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        """P(label 1) for each (response, constraint description) pair, in input order."""
        pairs = [_check_pair(p, i) for i, p in enumerate(pairs)]
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
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        device = next(self.model.parameters()).device
        pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        scores = [0.0] * len(ids)
        with torch.inference_mode():
            for start in range(0, len(order), self.batch_size):
                chunk = order[start:start + self.batch_size]
                width = max(len(ids[i]) for i in chunk)
                input_ids = torch.full((len(chunk), width), pad_id, dtype=torch.long)
                mask = torch.zeros((len(chunk), width), dtype=torch.long)
                for row, i in enumerate(chunk):
                    input_ids[row, :len(ids[i])] = torch.tensor(ids[i], dtype=torch.long)
                    mask[row, :len(ids[i])] = 1
                logits = self.model(input_ids=input_ids.to(device), attention_mask=mask.to(device)).logits
                probs = torch.softmax(logits.float(), dim=-1)[:, 1].tolist()
                for i, p in zip(chunk, probs):
                    scores[i] = float(p)
        return scores


def _read_meta(path: Path) -> dict:
    from sif_lib.runs import read_json

    meta_path = path / META_FILE
    meta = read_json(meta_path, "this directory was not written by the reward-model stage")
    if not isinstance(meta, dict) or not isinstance(meta.get("max_length"), int):
        raise InputError(f"{meta_path}: key 'max_length' must be an integer")
    return meta


def _check_pair(pair: Any, index: int) -> tuple[str, str]:
    if not isinstance(pair, (tuple, list)) or len(pair) != 2 or not all(isinstance(x, str) for x in pair):
        raise InputError(f"pair {index}: expected (response: str, constraint: str), got {type(pair).__name__}")
    return pair[0], pair[1]


class _JsonHttp:
    """JSON requests to one service that ride out overload and restarts, but never hang.

    A 503 (the service is full) and a connection failure (refused, reset, timed out) are retried with
    exponential backoff and full jitter, waiting at least the server's ``Retry-After``, until ``deadline_s``
    after the first attempt; then one RuntimeError names the URL and the last error. Each attempt has its own
    ``timeout``, cut to what is left of the deadline. Any other HTTP error (a 4xx above all) is not retried:
    sending the same request again cannot help.
    """

    BACKOFF_S = 0.1
    MAX_BACKOFF_S = 5.0

    def __init__(self, base_url: str, timeout: float, deadline_s: float):
        self.base_url = base_url
        self.timeout = float(timeout)
        self.deadline_s = float(deadline_s)
        self.retries = 0  # attempts beyond the first, over this client's life (for benches and tests)

    def request(self, path: str, payload: dict | None = None) -> dict:
        import http.client
        import urllib.error
        import urllib.request

        url = self.base_url + path
        body = None if payload is None else json.dumps(payload).encode("utf-8")
        began = time.monotonic()
        deadline = began + self.deadline_s
        attempt = 0
        while True:
            attempt += 1
            retry_after = 0.0
            request = urllib.request.Request(url, data=body, method="GET" if body is None else "POST",
                                             headers={"Content-Type": "application/json"})
            try:
                timeout = max(0.05, min(self.timeout, deadline - time.monotonic()))
                with urllib.request.urlopen(request, timeout=timeout) as response:
                    raw = response.read()
                try:
                    return json.loads(raw)
                except ValueError:
                    raise RuntimeError(f"{url}: the reply is not JSON: {raw[:200]!r}") from None
            except urllib.error.HTTPError as err:
                reason = _error_reason(err)
                if err.code != 503:
                    raise RuntimeError(f"{url}: HTTP {err.code}: {reason}") from None
                last = f"HTTP 503: {reason}"
                retry_after = _retry_after(err.headers.get("Retry-After"))
            except urllib.error.URLError as err:
                last = f"cannot reach the reward service ({err.reason})"
            except (OSError, http.client.HTTPException) as err:  # reset or timed out while reading the reply
                last = f"connection failed ({type(err).__name__}: {err})"
            backoff = random.uniform(0, min(self.MAX_BACKOFF_S, self.BACKOFF_S * 2 ** (attempt - 1)))
            delay = retry_after + backoff
            if time.monotonic() + delay >= deadline:
                raise RuntimeError(f"{url}: gave up after {attempt} attempts in {time.monotonic() - began:.1f} s "
                                   f"(deadline_s {self.deadline_s:g}); last error: {last}")
            self.retries += 1
            time.sleep(delay)


def _error_reason(err: Any) -> str:
    try:
        detail = json.loads(err.read())
    except (ValueError, OSError):
        return str(err.reason)
    error = detail.get("error", detail.get("message", err.reason)) if isinstance(detail, dict) else err.reason
    # vLLM nests its reason: {"error": {"message": ..., "type": ..., "code": ...}}
    if isinstance(error, dict):
        error = error.get("message", error)
    return str(error)


def _retry_after(value: str | None) -> float:
    try:
        return max(0.0, float(value)) if value else 0.0
    except ValueError:  # the HTTP-date form; the backoff alone then paces the retry
        return 0.0


def _base_url(url: str, suffixes: Sequence[str]) -> str:
    url = url.rstrip("/")
    for suffix in suffixes:
        if url.endswith(suffix):
            url = url[: -len(suffix)]
    return url


class HttpRewardScorer:
    """The same interface as :class:`RewardScorer`, backed by a running ``sif serve-rm`` (``POST /score``).

    Overload (503) and connection failures are retried until ``deadline_s``; see :class:`_JsonHttp`.
    """

    def __init__(self, url: str, timeout: float = 120.0, max_pairs_per_request: int = 512, deadline_s: float = 120.0):
        self.base_url = _base_url(url, ("/score",))
        self.timeout = timeout
        self.max_pairs_per_request = max(1, int(max_pairs_per_request))
        self.http = _JsonHttp(self.base_url, timeout, deadline_s)

    def score(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        pairs = [_check_pair(p, i) for i, p in enumerate(pairs)]
        scores: list[float] = []
        for start in range(0, len(pairs), self.max_pairs_per_request):
            chunk = pairs[start:start + self.max_pairs_per_request]
            reply = self.http.request("/score", {"pairs": [{"response": r, "constraint": c} for r, c in chunk]})
            got = reply.get("scores") if isinstance(reply, dict) else None
            if not isinstance(got, list) or len(got) != len(chunk):
                raise RuntimeError(f"{self.base_url}/score: malformed reply (expected {len(chunk)} scores)")
            scores.extend(float(s) for s in got)
        return scores

    def health(self) -> dict:
        return self.http.request("/health")


class VllmClassifyScorer:
    """The same interface as :class:`RewardScorer`, backed by vLLM's classification endpoint (``POST /classify``).

    For ``vllm serve RM_DIR --runner pooling --convert classify`` (or ``sif serve-rm``, which speaks the same
    protocol). The pairs are encoded here, with the reward model's own tokenizer and ``max_length``
    (:func:`encode_pairs`: the response is cut so that the constraint survives), and sent as token ids, so the
    server classifies exactly the input the in-process scorer would. The score is ``probs[1]``, P(label 1).
    The server must serve that same model, with a context of at least ``max_length`` tokens.
    """

    def __init__(self, url: str, tokenizer: Any, max_length: int, model: str | None = None, timeout: float = 120.0,
                 deadline_s: float = 120.0, max_inputs_per_request: int = 512):
        self.base_url = _base_url(url, ("/classify", "/v1"))
        self.tokenizer = tokenizer
        self.max_length = int(max_length)
        self.model = model
        self.max_inputs_per_request = max(1, int(max_inputs_per_request))
        self.http = _JsonHttp(self.base_url, timeout, deadline_s)

    @classmethod
    def from_dir(cls, url: str, rm_dir: str | Path, model: str | None = None, **kwargs: Any) -> "VllmClassifyScorer":
        """The client for the model in ``rm_dir`` (a run's ``rm/``): only its tokenizer and ``max_length`` load."""
        from transformers import AutoTokenizer

        rm_dir = Path(rm_dir)
        if not (rm_dir / META_FILE).is_file():
            raise InputError(f"{rm_dir / META_FILE}: missing input: scoring.rm_api vllm encodes pairs with the "
                             f"reward model's tokenizer; run stage {STAGE} first")
        meta = _read_meta(rm_dir)
        try:
            tokenizer = AutoTokenizer.from_pretrained(str(rm_dir))
        except (OSError, ValueError) as err:
            raise InputError(f"{rm_dir}: cannot load the reward model's tokenizer ({err})") from None
        return cls(url, tokenizer, meta["max_length"], model=model, **kwargs)

    def model_name(self) -> str:
        """``model`` as given, else the one model the server's ``/v1/models`` lists (asked once)."""
        if self.model is None:
            reply = self.http.request("/v1/models")
            names = [m.get("id") for m in reply.get("data", []) if isinstance(m, dict)] if isinstance(reply, dict) else []
            if len(names) != 1 or not isinstance(names[0], str):
                raise RuntimeError(f"{self.base_url}/v1/models: expected one served model, got {names}; "
                                   "set scoring.rm_model")
            self.model = names[0]
        return self.model

    def score(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        pairs = [_check_pair(p, i) for i, p in enumerate(pairs)]
        return self.score_ids(encode_pairs(self.tokenizer, pairs, self.max_length))

    def score_ids(self, ids: Sequence[Sequence[int]]) -> list[float]:
        url = f"{self.base_url}/classify"
        scores: list[float] = []
        for start in range(0, len(ids), self.max_inputs_per_request):
            chunk = [list(row) for row in ids[start:start + self.max_inputs_per_request]]
            reply = self.http.request("/classify", {"model": self.model_name(), "input": chunk})
            data = reply.get("data") if isinstance(reply, dict) else None
            if not isinstance(data, list) or len(data) != len(chunk):
                raise RuntimeError(f"{url}: malformed reply (expected {len(chunk)} results in 'data')")
            try:
                data = sorted(data, key=lambda d: d["index"])
                probs = [d["probs"] for d in data]
            except (KeyError, TypeError):
                raise RuntimeError(f"{url}: malformed reply (each result needs 'index' and 'probs')") from None
            for p in probs:
                if not isinstance(p, list) or len(p) != 2:
                    raise RuntimeError(f"{url}: the model has {len(p) if isinstance(p, list) else '?'} classes; "
                                       "a sif reward model has 2")
            scores.extend(float(p[1]) for p in probs)
        return scores


def make_scorer(params: Any, run_dir: str | Path):
    """The scorer a stage should use: the HTTP service when ``scoring.rm_url`` is set, else ``run_dir/rm``.

    ``scoring.rm_api`` names the service's protocol: ``sif`` (``sif serve-rm``) or ``vllm`` (``/classify``,
    which also needs ``run_dir/rm`` for its tokenizer).
    """
    scoring = params.scoring
    rm_dir = Path(run_dir) / "rm"
    if scoring.rm_url and scoring.rm_api == "vllm":
        return VllmClassifyScorer.from_dir(scoring.rm_url, rm_dir, model=scoring.rm_model)
    if scoring.rm_url:
        return HttpRewardScorer(scoring.rm_url)
    if not (rm_dir / "config.json").is_file():
        raise InputError(f"{rm_dir}: missing input: run stage {STAGE} first (or set scoring.rm_url)")
    return RewardScorer.from_dir(rm_dir, device=params.run.device, batch_size=params.scoring.batch_size,
                                 dtype=params.run.dtype)


# ---------------------------------------------------------------------------------------------------------------
# Metrics (implemented here so that their definitions are explicit and testable)


def accuracy(probs: Sequence[float], labels: Sequence[int], threshold: float = 0.5) -> float | None:
    if not probs:
        return None
    return sum(int(p >= threshold) == int(y) for p, y in zip(probs, labels)) / len(probs)


def roc_auc(scores: Sequence[float], labels: Sequence[int]) -> float | None:
    """Area under the ROC curve: P(a random positive outscores a random negative), a tie counting one half.

    Computed as the Mann-Whitney U statistic from average ranks, which handles tied scores exactly. ``None``
    when one class is absent (the AUC is undefined).
    """
    n = len(scores)
    n_pos = sum(1 for y in labels if y)
    n_neg = n - n_pos
    if n_pos == 0 or n_neg == 0:
        return None
    order = sorted(range(n), key=lambda i: scores[i])
    ranks = [0.0] * n
    i = 0
    while i < n:
        j = i
        while j + 1 < n and scores[order[j + 1]] == scores[order[i]]:
            j += 1
        average = (i + j) / 2 + 1  # ranks are 1-based; a tied run shares its mean rank
        for k in range(i, j + 1):
            ranks[order[k]] = average
        i = j + 1
    rank_sum = sum(r for r, y in zip(ranks, labels) if y)
    return (rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def calibration(probs: Sequence[float], labels: Sequence[int], n_bins: int = 10) -> dict:
    """Reliability bins and expected calibration error of P(label 1).

    ``n_bins`` equal-width bins over [0, 1] (1.0 falls in the last). In each bin, the mean predicted
    probability is compared with the observed share of label 1; ECE is the bin-size-weighted mean of
    ``|share - mean probability|``. Empty bins are reported with ``count`` 0 and contribute nothing.
    """
    bins = [{"lower": b / n_bins, "upper": (b + 1) / n_bins, "count": 0, "mean_prob": None, "positive_rate": None}
            for b in range(n_bins)]
    sums = [[0.0, 0] for _ in range(n_bins)]
    for p, y in zip(probs, labels):
        b = min(int(p * n_bins), n_bins - 1)
        bins[b]["count"] += 1
        sums[b][0] += p
        sums[b][1] += int(y)
    ece = 0.0
    total = len(probs)
    for b, (s, pos) in zip(bins, sums):
        if b["count"]:
            b["mean_prob"] = s / b["count"]
            b["positive_rate"] = pos / b["count"]
            ece += b["count"] / total * abs(b["positive_rate"] - b["mean_prob"])
    return {"bins": bins, "ece": ece if total else None}


# ---------------------------------------------------------------------------------------------------------------
# Training data


def load_pairs(path: Path) -> list[dict]:
    """Validated pseudo-label rows; a bad row is an InputError naming file, line and key."""
    from sif_lib.runs import iter_jsonl

    rows = []
    for number, row in enumerate(iter_jsonl(path), start=1):
        where = f"{path}:{number}"
        constraint = row.get("constraint")
        if not isinstance(constraint, dict) or not isinstance(constraint.get("description"), str):
            raise InputError(f"{where}: key 'constraint.description' must be a string")
        if not isinstance(row.get("response"), str):
            raise InputError(f"{where}: key 'response' must be a string")
        label = row.get("label")
        if isinstance(label, bool) or label not in (0, 1):
            raise InputError(f"{where}: key 'label' must be 0 or 1, got {label!r}")
        if not isinstance(row.get("parent"), str) or not row["parent"]:
            raise InputError(f"{where}: key 'parent' must be a non-empty string")
        kind = row.get("kind", constraint.get("kind"))
        if kind not in ("hard", "soft"):
            raise InputError(f"{where}: key 'kind' must be 'hard' or 'soft', got {kind!r}")
        verifier = row.get("verifier")
        if verifier is not None and not isinstance(verifier, bool):
            raise InputError(f"{where}: key 'verifier' must be true, false or null")
        rows.append({**row, "kind": kind, "label": int(label), "verifier": verifier})
    if not rows:
        raise InputError(f"{path}: no pseudo-label pairs")
    return rows


def split_by_parent(rows: list[dict], eval_fraction: float, seed: int) -> tuple[list[dict], list[dict]]:
    """Train and held-out pairs, split by parent instruction (seeded); at least one parent on each side."""
    parents = sorted({r["parent"] for r in rows})
    random.Random(seed).shuffle(parents)
    n_eval = 0
    if eval_fraction > 0 and len(parents) >= 2:
        n_eval = min(len(parents) - 1, max(1, round(eval_fraction * len(parents))))
    held = set(parents[:n_eval])
    return [r for r in rows if r["parent"] not in held], [r for r in rows if r["parent"] in held]


def answered_pairs(rows: list[dict], answer_mode: str) -> tuple[list[dict], list[tuple[str, str]]]:
    """The rows whose response has an answer under ``model.answer_mode``, each with the classifier's
    ``(answer, constraint description)`` pair: for a reasoning model the text after ``</think>``, as the reward
    reads it. A response with no answer (no ``</think>`` under require_think, nothing after it) is left out:
    the reward never asks the reward model about one, so it is neither trained nor measured on it."""
    from sif_lib.constraints import extract_answer

    kept, pairs = [], []
    for row in rows:
        answer = (extract_answer(row["response"], answer_mode) or "").strip()
        if answer:
            kept.append(row)
            pairs.append((answer, row["constraint"]["description"]))
    return kept, pairs


def _counts(rows: list[dict]) -> dict:
    n = len(rows)
    hard = sum(r["kind"] == "hard" for r in rows)
    positives = sum(r["label"] for r in rows)
    return {
        "pairs": n,
        "parents": len({r["parent"] for r in rows}),
        "hard": hard,
        "soft": n - hard,
        "hard_share": hard / n if n else None,
        "positives": positives,
        "positive_share": positives / n if n else None,
        "hard_with_verifier": sum(r["kind"] == "hard" and r["verifier"] is not None for r in rows),
    }


# ---------------------------------------------------------------------------------------------------------------
# Training


def _check_mode(mode: str) -> None:
    import importlib.util

    import torch

    if mode not in ("full", "lora", "qlora"):
        raise InputError(f"reward_model.mode: unknown mode {mode!r} (use full, lora or qlora)")
    if mode == "qlora" and not (torch.cuda.is_available() and importlib.util.find_spec("bitsandbytes")):
        raise InputError("reward_model.mode: qlora needs a CUDA GPU and the bitsandbytes package "
                         "(pip install '.[gpu]'); use mode full or lora on this machine")


class _PairDataset:
    """Tokenized pairs for the Trainer; padding is left to the collator (dynamic, per batch)."""

    def __init__(self, ids: list[list[int]], labels: list[int]):
        self.items = [{"input_ids": i, "attention_mask": [1] * len(i), "labels": y} for i, y in zip(ids, labels)]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict:
        return self.items[index]


def _lora_config(rm: Any):
    from peft import LoraConfig, TaskType

    # SEQ_CLS keeps the fresh classification head ("score") fully trainable; it is listed explicitly so that
    # this holds for backbones whose head is named otherwise by peft's defaults.
    return LoraConfig(task_type=TaskType.SEQ_CLS, r=rm.lora_r, lora_alpha=rm.lora_alpha, lora_dropout=0.05,
                      target_modules="all-linear", modules_to_save=["score", "classifier"])


def train_reward_model(rows: list[dict], out_dir: Path, params: Any, progress: bool = True) -> dict:
    """Train on pseudo-label rows and write the model directory; returns the metrics dict.

    ``out_dir`` is built in a temporary sibling and renamed into place, so a failed run never leaves a
    half-written model that looks complete.
    """
    import torch
    from transformers import DataCollatorWithPadding, Trainer, TrainingArguments

    from sif_lib import models

    rm = params.reward_model
    _check_mode(rm.mode)
    backbone = rm.backbone or params.model.policy
    key = "reward_model.backbone" if rm.backbone else "model.policy"
    device = models.device_for(params.run.device)
    on_gpu = device.startswith("cuda")
    if rm.mode == "qlora" and not on_gpu:
        raise InputError("reward_model.mode: qlora needs run.device cuda (or auto with a GPU)")

    train_rows, eval_rows = split_by_parent(rows, rm.eval_fraction, params.run.seed)
    if not train_rows:
        raise InputError("pseudo-labels: no training pairs left after the held-out split")

    tokenizer = models.load_tokenizer(backbone, key, padding_side="right")
    answer_mode = params.model.answer_mode
    n_split = len(train_rows)
    train_rows, train_pairs = answered_pairs(train_rows, answer_mode)
    if not train_rows:
        raise InputError(f"pseudo-labels: no training pair has an answer under model.answer_mode {answer_mode!r}")
    encode_stats: dict = {}
    train_ids = encode_pairs(tokenizer, train_pairs, rm.max_length, encode_stats)
    dataset = _PairDataset(train_ids, [r["label"] for r in train_rows])

    # Full fine-tuning keeps fp32 master weights (bf16 autocast on a GPU); LoRA freezes the base, so its base
    # weights can sit in bf16; QLoRA loads them in 4 bits.
    load_dtype = "float32" if (not on_gpu or rm.mode == "full") else params.run.dtype
    model = models.load_sequence_classifier(backbone, num_labels=2, dtype=load_dtype, device=device,
                                            load_in_4bit=rm.mode == "qlora", key=key)
    model.config.pad_token_id = tokenizer.pad_token_id
    if rm.mode in ("lora", "qlora"):
        from peft import get_peft_model, prepare_model_for_kbit_training

        if rm.mode == "qlora":
            model = prepare_model_for_kbit_training(model)
        model = get_peft_model(model, _lora_config(rm))

    amp_bf16 = on_gpu and torch.cuda.is_bf16_supported()
    steps_per_epoch = math.ceil(len(dataset) / (rm.batch_size * rm.grad_accum))
    total_steps = max(1, math.ceil(steps_per_epoch * rm.epochs))
    with tempfile.TemporaryDirectory(prefix="sif-rm-trainer-") as scratch:
        args = TrainingArguments(
            output_dir=scratch,
            per_device_train_batch_size=rm.batch_size,
            gradient_accumulation_steps=rm.grad_accum,
            learning_rate=rm.learning_rate,
            num_train_epochs=rm.epochs,
            lr_scheduler_type="linear",
            warmup_steps=0,
            logging_steps=max(1, total_steps // 50),
            logging_first_step=True,
            save_strategy="no",
            eval_strategy="no",
            report_to=[],
            seed=params.run.seed,
            use_cpu=not on_gpu,
            bf16=amp_bf16,
            fp16=on_gpu and not amp_bf16,
            optim="adamw_torch",
            dataloader_pin_memory=on_gpu,
            disable_tqdm=not progress,
        )
        trainer = Trainer(model=model, args=args, train_dataset=dataset,
                          data_collator=DataCollatorWithPadding(tokenizer))
        began = time.monotonic()
        result = trainer.train()
        train_seconds = time.monotonic() - began
        loss_curve = [{"step": e["step"], "epoch": round(e.get("epoch", 0.0), 4), "loss": e["loss"]}
                      for e in trainer.state.log_history if "loss" in e]

    from sif_lib.runs import atomic_write_text, write_json

    counts = {"all": _counts(rows), "train": _counts(train_rows), "eval": _counts(eval_rows)}
    meta = {
        "format": RM_FORMAT,
        "backbone": backbone,
        "mode": rm.mode,
        "input_template": RM_TEMPLATE,
        "answer_mode": answer_mode,
        "max_length": rm.max_length,
        "num_labels": 2,
        "positive_label": 1,
        "score": "softmax(logits)[1]",
        "training": {"learning_rate": rm.learning_rate, "epochs": rm.epochs, "batch_size": rm.batch_size,
                     "grad_accum": rm.grad_accum, "eval_fraction": rm.eval_fraction, "seed": params.run.seed,
                     "lora_r": rm.lora_r if rm.mode != "full" else None,
                     "lora_alpha": rm.lora_alpha if rm.mode != "full" else None,
                     "train_seconds": round(train_seconds, 2), "device": device},
        "data": {**counts, "eval_parents": sorted({r["parent"] for r in eval_rows})},
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }
    out_dir = Path(out_dir)
    tmp = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=out_dir.name + ".tmp-"))
    try:
        _save_model(model, tokenizer, tmp, rm.mode, backbone, key, device)
        write_json(tmp / META_FILE, meta)
        # The held-out figures come from the saved directory, so they describe exactly what later stages load.
        scorer = RewardScorer.from_dir(tmp, device=device, batch_size=max(8, rm.batch_size))
        metrics = evaluate_pairs(scorer, eval_rows, answer_mode)
        metrics.update({
            "backbone": backbone,
            "mode": rm.mode,
            "max_length": rm.max_length,
            "train_seconds": round(train_seconds, 2),
            "train_steps": int(result.global_step),
            "final_train_loss": loss_curve[-1]["loss"] if loss_curve else None,
            "mean_train_loss": float(result.training_loss),
            "counts": counts,
            "truncated_train_inputs": encode_stats["truncated"],
            "train_pairs_without_answer": n_split - len(train_rows),
            "loss_curve": loss_curve,
        })
        meta["metrics"] = {k: v for k, v in metrics.items() if k not in ("loss_curve", "reliability", "counts")}
        write_json(tmp / META_FILE, meta)
        atomic_write_text(tmp / CARD_FILE, model_card(meta))
        _replace_dir(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return metrics


def _save_model(model: Any, tokenizer: Any, target: Path, mode: str, backbone: str, key: str, device: str) -> None:
    if mode == "lora":
        model = model.merge_and_unload()
    elif mode == "qlora":
        # A 4-bit base cannot absorb the adapter exactly; reload the base in bf16 and merge into that.
        import torch
        from peft import PeftModel

        from sif_lib import models

        with tempfile.TemporaryDirectory(prefix="sif-rm-adapter-") as adapter_dir:
            model.save_pretrained(adapter_dir)
            base = models.load_sequence_classifier(backbone, num_labels=2, dtype="bfloat16", device=device, key=key)
            base.config.pad_token_id = tokenizer.pad_token_id
            model = PeftModel.from_pretrained(base, adapter_dir).merge_and_unload()
            model.to(torch.bfloat16)
    model.config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(str(target))
    tokenizer.padding_side = "right"
    tokenizer.save_pretrained(str(target))


def _replace_dir(new: Path, target: Path) -> None:
    old = None
    if target.exists():
        old = target.with_name(target.name + f".old-{int(time.time() * 1000)}")
        target.rename(old)
    new.rename(target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def evaluate_pairs(scorer: Any, rows: list[dict], answer_mode: str = "after_think", n_bins: int = 10) -> dict:
    """Held-out figures against the pseudo-labels, plus hard pairs judged by the verifier's truth, on the pairs
    whose response has an answer (:func:`answered_pairs`)."""
    n_rows = len(rows)
    rows, pairs = answered_pairs(rows, answer_mode)
    probs = scorer.score(pairs) if pairs else []
    labels = [r["label"] for r in rows]
    cal = calibration(probs, labels, n_bins)
    by_kind = {}
    for kind in ("hard", "soft"):
        idx = [i for i, r in enumerate(rows) if r["kind"] == kind]
        by_kind[kind] = {"pairs": len(idx), "accuracy": accuracy([probs[i] for i in idx], [labels[i] for i in idx]),
                         "auc": roc_auc([probs[i] for i in idx], [labels[i] for i in idx])}
    truth = [i for i, r in enumerate(rows) if r["kind"] == "hard" and r["verifier"] is not None]
    truth_labels = [int(rows[i]["verifier"]) for i in truth]
    return {
        "eval_pairs": len(rows),
        "eval_pairs_without_answer": n_rows - len(rows),
        "eval_accuracy": accuracy(probs, labels),
        "eval_auc": roc_auc(probs, labels),
        "eval_ece": cal["ece"],
        "eval_by_kind": by_kind,
        "hard_truth_pairs": len(truth),
        "hard_truth_accuracy": accuracy([probs[i] for i in truth], truth_labels),
        "hard_truth_auc": roc_auc([probs[i] for i in truth], truth_labels),
        # How often the pseudo-label itself equals the verifier on those pairs: the ceiling a model that
        # learned the pseudo-labels perfectly would reach against the truth.
        "hard_pseudo_label_agreement": accuracy([float(rows[i]["label"]) for i in truth], truth_labels),
        "reliability": cal["bins"],
    }


# ---------------------------------------------------------------------------------------------------------------
# Card, stage, figures


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def model_card(meta: dict) -> str:
    m, data, train = meta["metrics"], meta["data"], meta["training"]
    return f"""# Constraint-wise binary reward model

A two-class sequence classifier that reads one response and one constraint and outputs the probability
that the response adheres to the constraint (`softmax(logits)[1]`). It reproduces the reward model of
arXiv 2508.02150 at a small scale.

## Backbone and training
- Backbone: `{meta['backbone']}`; mode: {meta['mode']} (LoRA adapters are merged into this directory).
- Input (at most {meta['max_length']} tokens; a long response is cut, the constraint never is):
  `{meta['input_template']}`
- Cross-entropy over two classes; learning rate {train['learning_rate']}, {train['epochs']} epochs,
  batch {train['batch_size']} x accumulation {train['grad_accum']}, seed {train['seed']},
  {train['train_seconds']} s on {train['device']}.

## Data
Self-supervised pseudo-labels: the policy's response to an instruction with constraints c1..ck is a positive for
ck, its response to c1..c(k-1) a negative. No human or teacher labels.
- Training pairs: {data['train']['pairs']} from {data['train']['parents']} instructions
  ({data['train']['hard']} hard-constraint, {data['train']['soft']} soft; {_fmt(data['train']['positive_share'])} positive).
- Held-out pairs: {data['eval']['pairs']} from {data['eval']['parents']} other instructions.

## Held-out metrics
| metric | value |
|---|---|
| accuracy vs pseudo-labels | {_fmt(m.get('eval_accuracy'))} |
| ROC-AUC vs pseudo-labels | {_fmt(m.get('eval_auc'))} |
| expected calibration error | {_fmt(m.get('eval_ece'))} |
| accuracy on hard pairs vs the verifier's truth ({m.get('hard_truth_pairs')} pairs) | {_fmt(m.get('hard_truth_accuracy'))} |
| pseudo-label agreement with the verifier on those pairs | {_fmt(m.get('hard_pseudo_label_agreement'))} |

## Intended use and limits
- Intended use: the soft-constraint reward of GRPO training in this workbench, and research on self-supervised
  reward models. Scores are probabilities meant to be averaged with 0/1 verifier results.
- It never sees the instruction, only the response and one constraint.
- Pseudo-labels are noisy: a response written with a constraint in its prompt need not satisfy it. The hard-pair
  figures above measure how noisy.
- A small backbone and a few hundred pairs give a weak judge; use its scores for relative ranking within this
  workbench, not as a general-purpose evaluator. Hard (code-verifiable) constraints should be scored by their
  verifiers, which the paper found better and harder to game.
"""


def run_reward_model_stage(ctx: Any, progress: bool = True) -> dict:
    """Stage 04: read ``data/pseudo_labels.jsonl``, write ``rm/`` and ``metrics/04_train_reward_model.json``."""
    path = ctx.require("data", "pseudo_labels.jsonl", stage="03_generate_pseudo_labels")
    rows = load_pairs(path)
    metrics = train_reward_model(rows, ctx.path("rm"), ctx.params, progress=progress)
    ctx.write_metrics(STAGE, metrics)
    return metrics


def metrics_table(metrics: dict):
    """The headline figures as a two-column table."""
    import pandas as pd

    counts = metrics["counts"]
    rows = [
        ("backbone / mode", f"{metrics['backbone']} / {metrics['mode']}"),
        ("training pairs (instructions)", f"{counts['train']['pairs']} ({counts['train']['parents']})"),
        ("held-out pairs (instructions)", f"{counts['eval']['pairs']} ({counts['eval']['parents']})"),
        ("hard-constraint share of pairs", _fmt(counts["all"]["hard_share"])),
        ("positive share (label balance)", _fmt(counts["all"]["positive_share"])),
        ("held-out accuracy", _fmt(metrics["eval_accuracy"])),
        ("held-out ROC-AUC", _fmt(metrics["eval_auc"])),
        ("held-out ECE", _fmt(metrics["eval_ece"])),
        ("held-out accuracy, soft pairs", _fmt(metrics["eval_by_kind"]["soft"]["accuracy"])),
        ("held-out accuracy, hard pairs (pseudo-labels)", _fmt(metrics["eval_by_kind"]["hard"]["accuracy"])),
        (f"hard pairs vs verifier truth ({metrics['hard_truth_pairs']})", _fmt(metrics["hard_truth_accuracy"])),
        ("pseudo-label = verifier on those pairs", _fmt(metrics["hard_pseudo_label_agreement"])),
        ("train steps / seconds", f"{metrics['train_steps']} / {metrics['train_seconds']}"),
        ("final train loss", _fmt(metrics["final_train_loss"], 4)),
    ]
    return pd.DataFrame(rows, columns=["metric", "value"]).set_index("metric")


def reliability_figure(metrics: dict):
    """Reliability diagram: observed share of label 1 against mean predicted probability per bin."""
    import plotly.graph_objects as go

    bins = [b for b in metrics["reliability"] if b["count"]]
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="perfect calibration",
                             line=dict(dash="dash", color="gray")))
    fig.add_trace(go.Scatter(
        x=[b["mean_prob"] for b in bins], y=[b["positive_rate"] for b in bins], mode="lines+markers",
        name="reward model", marker=dict(size=[6 + 24 * math.sqrt(b["count"] / max(1, metrics["eval_pairs"]))
                                              for b in bins]),
        text=[f"[{b['lower']:.1f}, {b['upper']:.1f}): {b['count']} pairs" for b in bins],
        hovertemplate="%{text}<br>mean P=%{x:.3f}<br>share of 1s=%{y:.3f}<extra></extra>"))
    fig.update_layout(title=f"Held-out reliability (ECE {_fmt(metrics['eval_ece'])})",
                      xaxis_title="mean predicted P(adheres)", yaxis_title="share labelled 1",
                      xaxis_range=[0, 1], yaxis_range=[0, 1], width=560, height=460)
    return fig


def loss_figure(metrics: dict):
    import plotly.graph_objects as go

    curve = metrics["loss_curve"]
    fig = go.Figure(go.Scatter(x=[p["step"] for p in curve], y=[p["loss"] for p in curve], mode="lines+markers",
                               name="train loss"))
    fig.update_layout(title="Training loss (cross-entropy)", xaxis_title="optimizer step", yaxis_title="loss",
                      width=640, height=380)
    return fig

