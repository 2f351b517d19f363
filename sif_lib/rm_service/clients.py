"""Clients of a reward model served over HTTP, with the in-process scorer's interface: ``score(pairs)``, and
:func:`make_scorer`, which picks the scorer a stage uses: one of these, or the reward model in process.

* :class:`HttpRewardScorer` speaks our ``sif serve-rm`` (``POST /score``);
* :class:`VllmClassifyScorer` speaks vLLM's classification endpoint (``POST /classify``), for
  ``vllm serve RM_DIR --runner pooling --convert classify`` (``sif serve-rm`` answers it too).

Both retry a 503 (the service is at capacity) and a failed connection with exponential backoff and jitter,
honouring ``Retry-After``, until a deadline; then they raise one :class:`ServiceError` (a RuntimeError) naming the
URL and the last error. A 4xx is the caller's mistake and is not retried. A reply must hold one probability in
[0, 1] per pair; anything else (a missing, null or non-finite score) is an error, never a default reward.
"""

from __future__ import annotations

import http.client
import json
import math
import random
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sif_lib.config.params import Params
from sif_lib.core.errors import InputError, ServiceError
from sif_lib.policy.models import without_bpe_cleanup
from sif_lib.reward_model.rm_input import META_FILE, check_pair, encode_pairs, read_meta
from sif_lib.reward_model.scorer import RewardScorer
from sif_lib.runner.stage_table import producer


class _JsonHttp:
    """JSON requests to one service that ride out overload and restarts, but never hang.

    A 503 (the service is full) and a connection failure (refused, reset, timed out) are retried with
    exponential backoff and full jitter, waiting at least the server's ``Retry-After``, until ``deadline_s``
    after the first attempt; then one ServiceError names the URL and the last error. Each attempt has its own
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
                    raise ServiceError(f"{url}: the reply is not JSON: {raw[:200]!r}") from None
            except urllib.error.HTTPError as err:
                reason = _error_reason(err)
                if err.code != 503:
                    raise ServiceError(f"{url}: HTTP {err.code}: {reason}") from None
                last = f"HTTP 503: {reason}"
                retry_after = _retry_after(err.headers.get("Retry-After"))
            except urllib.error.URLError as err:
                last = f"cannot reach the reward service ({err.reason})"
            except (OSError, http.client.HTTPException) as err:  # reset or timed out while reading the reply
                last = f"connection failed ({type(err).__name__}: {err})"
            backoff = random.uniform(0, min(self.MAX_BACKOFF_S, self.BACKOFF_S * 2 ** (attempt - 1)))
            delay = retry_after + backoff
            if time.monotonic() + delay >= deadline:
                raise ServiceError(f"{url}: gave up after {attempt} attempts in {time.monotonic() - began:.1f} s "
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


def _probability(value: Any, url: str) -> float:
    """A score of a reply: a number in [0, 1]. Anything else is the service's fault, and no reward."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or not 0.0 <= value <= 1.0:
        raise ServiceError(f"{url}: malformed reply (a score of {value!r}, where a probability in [0, 1] belongs)")
    return float(value)


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

    @property
    def fingerprint(self) -> str:
        """The served model's own fingerprint (from ``/health``), or the service's address when it gives none."""
        if not hasattr(self, "_fingerprint"):
            served = self.health().get("fingerprint")
            self._fingerprint = str(served) if served else f"sif-serve-rm:{self.base_url}"
        return self._fingerprint

    def score(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        pairs = [check_pair(p, i) for i, p in enumerate(pairs)]
        scores: list[float] = []
        for start in range(0, len(pairs), self.max_pairs_per_request):
            chunk = pairs[start:start + self.max_pairs_per_request]
            reply = self.http.request("/score", {"pairs": [{"response": r, "constraint": c} for r, c in chunk]})
            got = reply.get("scores") if isinstance(reply, dict) else None
            if not isinstance(got, list) or len(got) != len(chunk):
                raise ServiceError(f"{self.base_url}/score: malformed reply (expected {len(chunk)} scores)")
            scores.extend(_probability(s, f"{self.base_url}/score") for s in got)
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
    def from_dir(cls, url: str, rm_dir: str | Path, model: str | None = None, **kwargs: Any) -> VllmClassifyScorer:
        """The client for the model in ``rm_dir`` (a run's ``rm/``): only its tokenizer and ``max_length`` load."""
        from transformers import AutoTokenizer  # heavy: only the tokenizer of the served model

        rm_dir = Path(rm_dir)
        if not (rm_dir / META_FILE).is_file():
            raise InputError(f"{rm_dir / META_FILE}: missing input: scoring.rm_api vllm encodes pairs with the "
                             f"reward model's tokenizer; run stage {producer('rm').name} first")
        meta = read_meta(rm_dir)
        try:
            tokenizer = without_bpe_cleanup(AutoTokenizer.from_pretrained(str(rm_dir)))
        except (OSError, ValueError) as err:
            raise InputError(f"{rm_dir}: cannot load the reward model's tokenizer ({err})") from None
        return cls(url, tokenizer, meta["max_length"], model=model, **kwargs)

    def model_name(self) -> str:
        """``model`` as given, else the one model the server's ``/v1/models`` lists (asked once)."""
        if self.model is None:
            reply = self.http.request("/v1/models")
            names = ([m.get("id") for m in reply.get("data", []) if isinstance(m, dict)]
                     if isinstance(reply, dict) else [])
            if len(names) != 1 or not isinstance(names[0], str):
                raise ServiceError(f"{self.base_url}/v1/models: expected one served "
                                   f"model, got {names}; set scoring.rm_model")
            self.model = names[0]
        return self.model

    @property
    def fingerprint(self) -> str:
        """The service, the served model and the input settings the scores come from."""
        return f"vllm-classify:{self.base_url}:{self.model}:{self.max_length}"

    def score(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        pairs = [check_pair(p, i) for i, p in enumerate(pairs)]
        return self.score_ids(encode_pairs(self.tokenizer, pairs, self.max_length))

    def score_ids(self, ids: Sequence[Sequence[int]]) -> list[float]:
        url = f"{self.base_url}/classify"
        scores: list[float] = []
        for start in range(0, len(ids), self.max_inputs_per_request):
            chunk = [list(row) for row in ids[start:start + self.max_inputs_per_request]]
            reply = self.http.request("/classify", {"model": self.model_name(), "input": chunk})
            data = reply.get("data") if isinstance(reply, dict) else None
            if not isinstance(data, list) or len(data) != len(chunk):
                raise ServiceError(f"{url}: malformed reply (expected {len(chunk)} results in 'data')")
            try:
                data = sorted(data, key=lambda d: d["index"])
                probs = [d["probs"] for d in data]
            except (KeyError, TypeError):
                raise ServiceError(f"{url}: malformed reply (each result needs 'index' and 'probs')") from None
            for p in probs:
                if not isinstance(p, list) or len(p) != 2:
                    raise ServiceError(f"{url}: the model has {len(p) if isinstance(p, list) else '?'} classes; "
                                       "a sif reward model has 2")
            scores.extend(_probability(p[1], url) for p in probs)
        return scores


def make_scorer(params: Params, run_dir: str | Path):
    """The scorer a stage should use: the HTTP service when ``scoring.rm_url`` is set, else ``run_dir/rm``.

    ``scoring.rm_api`` names the service's protocol: ``sif`` (``sif serve-rm``) or ``vllm`` (``/classify``,
    which also needs ``run_dir/rm`` for its tokenizer).
    """
    scoring = params.scoring
    rm_dir = Path(run_dir) / "rm"
    if scoring.rm_url and scoring.rm_api == "vllm":
        if (rm_dir / META_FILE).is_file() and read_meta(rm_dir).get("head"):
            raise InputError(f"{rm_dir}: a linear-probe reward model has a head vLLM's /classify cannot serve; "
                             "use scoring.rm_api sif (sif serve-rm) or score in process")
        return VllmClassifyScorer.from_dir(scoring.rm_url, rm_dir, model=scoring.rm_model)
    if scoring.rm_url:
        return HttpRewardScorer(scoring.rm_url)
    if not (rm_dir / "config.json").is_file():
        raise InputError(f"{rm_dir}: missing input: run stage {producer('rm').name} first (or set scoring.rm_url)")
    return RewardScorer.from_dir(rm_dir, device=params.run.device, batch_size=params.scoring.batch_size,
                                 dtype=params.run.dtype)
