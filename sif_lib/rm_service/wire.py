"""The reward service's request bodies: ``POST /score`` (ours) and ``POST /classify`` (vLLM's protocol).

Each parser returns what the batcher needs or raises :class:`BadRequest` with the HTTP status and a reason that
names the offending field, so every malformed request gets a 4xx and a JSON error.
"""

from __future__ import annotations

import json
from typing import Any


class BadRequest(Exception):
    def __init__(self, status: int, reason: str, close: bool = False):
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.close = close


def _parse_json(body: bytes) -> Any:
    try:
        return json.loads(body.decode("utf-8"))
    except UnicodeDecodeError:
        raise BadRequest(400, "body is not UTF-8 text") from None
    except json.JSONDecodeError as err:
        raise BadRequest(400, f"malformed JSON at line {err.lineno} column {err.colno}: {err.msg}") from None


def parse_pairs(body: bytes, max_pairs: int) -> list[tuple[str, str]]:
    data = _parse_json(body)
    if not isinstance(data, dict):
        raise BadRequest(400, "body must be a JSON object with key 'pairs'")
    if "pairs" not in data:
        raise BadRequest(400, "missing key 'pairs'")
    items = data["pairs"]
    if not isinstance(items, list):
        raise BadRequest(400, "key 'pairs' must be a list")
    if len(items) > max_pairs:
        raise BadRequest(413, f"too many pairs: {len(items)} (at most {max_pairs} per request)")
    pairs = []
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise BadRequest(400, f"pairs[{index}] must be an object with 'response' and 'constraint'")
        for key in ("response", "constraint"):
            if key not in item:
                raise BadRequest(400, f"pairs[{index}]: missing key '{key}'")
            if not isinstance(item[key], str):
                raise BadRequest(400, f"pairs[{index}].{key} must be a string, got {type(item[key]).__name__}")
        pairs.append((item["response"], item["constraint"]))
    return pairs


def _is_id(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def parse_classify(body: bytes, max_inputs: int, served: str) -> tuple[list, int | None, bool]:
    """(inputs, truncate_prompt_tokens, add_special_tokens); inputs are all strings or all token-id lists."""
    data = _parse_json(body)
    if not isinstance(data, dict):
        raise BadRequest(400, "body must be a JSON object with key 'input'")
    model = data.get("model")
    if model is not None and model != served:
        status = 400 if not isinstance(model, str) else 404
        raise BadRequest(status, f"model {model!r} is not served here; GET /v1/models lists {served!r}")
    truncate = data.get("truncate_prompt_tokens")
    if truncate is not None and (not _is_id(truncate) or truncate == 0 or truncate < -1):
        raise BadRequest(400, f"truncate_prompt_tokens must be -1 or a positive integer, got {truncate!r}")
    special = data.get("add_special_tokens", True)
    if not isinstance(special, bool):
        raise BadRequest(400, f"add_special_tokens must be true or false, got {type(special).__name__}")
    if "input" not in data:
        raise BadRequest(400, "missing key 'input'")
    raw = data["input"]
    if isinstance(raw, str):
        inputs: list = [raw]
    elif isinstance(raw, list) and raw and all(_is_id(x) for x in raw):
        inputs = [raw]
    elif isinstance(raw, list) and raw and (all(isinstance(x, str) for x in raw)
                                            or all(isinstance(x, list) for x in raw)):
        inputs = raw
    elif isinstance(raw, list) and not raw:
        raise BadRequest(400, "key 'input' must not be empty")
    else:
        raise BadRequest(400, "key 'input' must be a string, a list of strings, "
                              "a list of token ids or a list of token-id lists")
    if len(inputs) > max_inputs:
        raise BadRequest(413, f"too many inputs: {len(inputs)} (at most {max_inputs} per request)")
    for index, item in enumerate(inputs):
        if isinstance(item, list) and not all(_is_id(x) for x in item):
            raise BadRequest(400, f"input[{index}] must be a list of integer token ids")
    return inputs, (None if truncate in (None, -1) else truncate), special
