"""Seed tasks: the open-ended prompts that constraints are attached to.

The paper draws about 3,000 seeds from public instruction sets. The workbench ships its own small set
(``sif_lib/data/seed_tasks.jsonl``, written for this project) so that everything runs offline, and it loads a
user's seeds from a JSONL or CSV file, a ``datasets`` directory saved with ``save_to_disk``, or, when online,
a hub dataset id.

Every source is read row by row through the same checks. A row that cannot be used (bad JSON, missing or
empty column, a value that is not a string, a repeat of an earlier task or id) is reported as
``"<file>:<line>: <problem>"``. By default it is skipped and the message is kept in ``SeedSet.skipped``;
with ``strict=True`` the first such row raises :class:`~sif_lib.core.errors.InputError`.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from sif_lib.core.errors import InputError

BUNDLED_NAME = "seed_tasks.jsonl"
DEFAULT_DOMAIN = "general"

_JSONL_SUFFIXES = {".jsonl", ".ndjson", ".json"}
_CSV_SUFFIXES = {".csv", ".tsv"}
# "owner/name" or "owner/name:split", with an optional "hf:" prefix that forces a hub lookup.
_HUB_ID = re.compile(r"^(?:hf:|hub:)?[A-Za-z0-9][\w.-]*/[\w.-]+(?::[\w.-]+)?$")


@dataclass(frozen=True)
class Seed:
    id: str
    domain: str
    task: str

    def to_dict(self) -> dict:
        return {"id": self.id, "domain": self.domain, "task": self.task}


@dataclass
class SeedSet:
    """Loaded seeds plus one message per skipped row, so a caller can report what was dropped."""

    seeds: list[Seed]
    skipped: list[str] = field(default_factory=list)
    source: str = BUNDLED_NAME

    def __len__(self) -> int:
        return len(self.seeds)

    def __iter__(self) -> Iterator[Seed]:
        return iter(self.seeds)

    def domains(self) -> dict[str, int]:
        """Number of seeds per domain, most common first."""
        return dict(Counter(s.domain for s in self.seeds).most_common())


# One row as read from a source: where it came from, and either the parsed record or why it could not be parsed.
@dataclass(frozen=True)
class _Row:
    where: str
    default_id: str
    record: dict | None = None
    problem: str | None = None


def load_seeds(source: str | Path | None = None, column: str = "task", strict: bool = False,
               limit: int | None = None, *, id_column: str = "id", domain_column: str = "domain") -> SeedSet:
    """Load seed tasks.

    ``source`` is one of:

    * ``None``: the bundled set;
    * a ``.jsonl``/``.ndjson``/``.json`` file with one JSON object per line, or a ``.csv``/``.tsv`` file with a
      header row;
    * a directory written by ``Dataset.save_to_disk`` or ``DatasetDict.save_to_disk`` (split ``train`` unless
      given as ``dir:split``; a single-split dict uses its only split);
    * a hub dataset id ``owner/name`` or ``owner/name:split`` (default split ``train``), which needs network
      access. Prefix ``hf:`` to force a hub lookup.

    ``column`` names the field holding the task text. ``id_column`` and ``domain_column`` are optional: a row
    without an id gets ``<file stem>-<line>``, a row without a domain gets ``"general"``. ``limit`` stops
    after that many usable seeds.
    """
    if not isinstance(column, str) or not column:
        raise InputError(f"column must be a non-empty string, got {column!r}")
    if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 0):
        raise InputError(f"limit must be a non-negative integer or None, got {limit!r}")

    label, rows = _open_source(source, column)
    return _collect(rows, label, column, id_column, domain_column, strict, limit)


def _open_source(source: str | Path | None, column: str) -> tuple[str, Iterable[_Row]]:
    if source is None:
        text = resources.files("sif_lib.data").joinpath(BUNDLED_NAME).read_text(encoding="utf-8")
        return BUNDLED_NAME, _jsonl_rows(text, BUNDLED_NAME, "seed")

    raw = str(source)
    path = Path(raw).expanduser()
    if path.is_dir():
        return _disk_dataset(path, None, column)
    if path.is_file():
        return path.name, _file_rows(path, column)

    # "dir:split" for a saved DatasetDict.
    if ":" in raw:
        base, _, split = raw.rpartition(":")
        base_path = Path(base).expanduser()
        if base and split and base_path.is_dir():
            return _disk_dataset(base_path, split, column)

    if _looks_like_hub_id(raw):
        return _hub_dataset(raw, column)
    raise InputError(f"{raw}: no such file or directory")


def _looks_like_hub_id(raw: str) -> bool:
    if raw.startswith(("hf:", "hub:")):
        return True
    if not _HUB_ID.match(raw) or raw.startswith((".", "~")):
        return False
    return Path(raw.split(":")[0]).suffix.lower() not in _JSONL_SUFFIXES | _CSV_SUFFIXES


def _file_rows(path: Path, column: str) -> Iterable[_Row]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(f"{path.name}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    suffix = path.suffix.lower()
    if suffix in _CSV_SUFFIXES:
        return _csv_rows(text, path.name, path.stem, column, delimiter="\t" if suffix == ".tsv" else ",")
    if suffix == ".json" and text.lstrip().startswith("["):
        return _json_array_rows(text, path.name, path.stem)
    if suffix in _JSONL_SUFFIXES:
        return _jsonl_rows(text, path.name, path.stem)
    raise InputError(f"{path.name}: unknown seed file type {suffix or '(none)'!r}; "
                     "use .jsonl, .json, .csv or .tsv, or a datasets directory")


def _jsonl_rows(text: str, name: str, stem: str) -> Iterator[_Row]:
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{name}:{lineno}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            yield _Row(where, f"{stem}-{lineno}", problem=f"invalid JSON ({exc.msg})")
            continue
        if not isinstance(record, dict):
            yield _Row(where, f"{stem}-{lineno}", problem=f"expected a JSON object, got {type(record).__name__}")
            continue
        yield _Row(where, f"{stem}-{lineno}", record=record)


def _json_array_rows(text: str, name: str, stem: str) -> Iterator[_Row]:
    # A JSON array has no useful line numbers per item, so items are numbered instead.
    try:
        items = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{name}:{exc.lineno}: invalid JSON ({exc.msg})") from exc
    for index, record in enumerate(items, start=1):
        where = f"{name} item {index}"
        if not isinstance(record, dict):
            yield _Row(where, f"{stem}-{index}", problem=f"expected a JSON object, got {type(record).__name__}")
        else:
            yield _Row(where, f"{stem}-{index}", record=record)


def _csv_rows(text: str, name: str, stem: str, column: str, delimiter: str) -> Iterator[_Row]:
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        header = next(reader)
    except StopIteration:
        raise InputError(f"{name}: empty file, expected a header row") from None
    except csv.Error as exc:
        raise InputError(f"{name}:1: cannot parse header ({exc})") from exc
    header = [h.strip() for h in header]
    # A column missing from the header would make every row fail the same way; say so once.
    if column not in header:
        raise InputError(f"{name}:1: no column {column!r} in header (columns: {', '.join(header) or 'none'})")

    start = 2  # A quoted field can span lines, so each row is reported at the line where it starts.
    while True:
        try:
            values = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise InputError(f"{name}:{reader.line_num}: cannot parse CSV ({exc})") from exc
        lineno, start = start, reader.line_num + 1
        if not values or not any(v.strip() for v in values):
            continue
        # Short rows leave trailing columns absent rather than empty, so "missing" is reported for them.
        record = {key: value for key, value in zip(header, values)}
        yield _Row(f"{name}:{lineno}", f"{stem}-{lineno}", record=record)


def _disk_dataset(path: Path, split: str | None, column: str) -> tuple[str, Iterable[_Row]]:
    import datasets  # Heavy import, only needed for this source type.

    try:
        loaded = datasets.load_from_disk(str(path))
    except (FileNotFoundError, ValueError) as exc:
        raise InputError(f"{path}: not a directory written by save_to_disk ({exc})") from exc
    if isinstance(loaded, datasets.DatasetDict):
        splits = list(loaded.keys())
        if split is None:
            split = "train" if "train" in loaded else (splits[0] if len(splits) == 1 else None)
        if split is None or split not in loaded:
            raise InputError(f"{path}: choose a split with '{path}:<split>' (splits: {', '.join(splits)})")
        table = loaded[split]
        label = f"{path.name}[{split}]"
    else:
        if split is not None:
            raise InputError(f"{path}: a single dataset has no split {split!r}")
        table, label = loaded, path.name
    return label, _table_rows(table, label, path.name, column)


def _hub_dataset(raw: str, column: str) -> tuple[str, Iterable[_Row]]:
    name = raw.split(":", 1)[1] if raw.startswith(("hf:", "hub:")) else raw
    name, _, split = name.partition(":")
    split = split or "train"
    import datasets

    try:
        table = datasets.load_dataset(name, split=split)
    except Exception as exc:  # The hub client raises many unrelated types; all mean "could not load it".
        raise InputError(f"{raw}: not a local file or directory, and loading it from the hub failed "
                         f"({type(exc).__name__}: {exc}). Offline? Point to a JSONL/CSV file or a "
                         "save_to_disk directory instead.") from exc
    label = f"{name}[{split}]"
    return label, _table_rows(table, label, name.replace("/", "_"), column)


def _table_rows(table: Any, label: str, stem: str, column: str) -> Iterator[_Row]:
    if column not in table.column_names:
        raise InputError(f"{label}: no column {column!r} (columns: {', '.join(table.column_names)})")
    for index, record in enumerate(table, start=1):
        yield _Row(f"{label} row {index}", f"{stem}-{index}", record=dict(record))


def _collect(rows: Iterable[_Row], label: str, column: str, id_column: str, domain_column: str,
             strict: bool, limit: int | None) -> SeedSet:
    seeds: list[Seed] = []
    skipped: list[str] = []
    first_task: dict[str, str] = {}
    first_id: dict[str, str] = {}

    def reject(where: str, problem: str) -> None:
        message = f"{where}: {problem}"
        if strict:
            raise InputError(message)
        skipped.append(message)

    for row in rows:
        if limit is not None and len(seeds) >= limit:
            break
        if row.problem is not None:
            reject(row.where, row.problem)
            continue
        record = row.record or {}
        if column not in record or record[column] is None:
            reject(row.where, f"missing column {column!r}")
            continue
        value = record[column]
        if not isinstance(value, str):
            reject(row.where, f"column {column!r} is {type(value).__name__}, expected a string")
            continue
        task = value.strip()
        if not task:
            reject(row.where, f"empty column {column!r}")
            continue

        seed_id = _optional_text(record.get(id_column)) or row.default_id
        domain = _optional_text(record.get(domain_column)) or DEFAULT_DOMAIN
        key = " ".join(task.split()).casefold()
        if key in first_task:
            reject(row.where, f"duplicate task (first seen at {first_task[key]})")
            continue
        if seed_id in first_id:
            reject(row.where, f"duplicate id {seed_id!r} (first seen at {first_id[seed_id]})")
            continue
        first_task[key] = row.where
        first_id[seed_id] = row.where
        seeds.append(Seed(id=seed_id, domain=domain, task=task))

    if not seeds and limit != 0:
        detail = f"; first problem: {skipped[0]}" if skipped else ""
        raise InputError(f"{label}: no usable seeds in column {column!r} ({len(skipped)} rows skipped{detail})")
    return SeedSet(seeds=seeds, skipped=skipped, source=label)


def _optional_text(value: Any) -> str | None:
    # Ids are often integers in user files; accept them, but not floats or containers.
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None
