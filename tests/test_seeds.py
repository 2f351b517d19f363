"""Seed loading: the bundled set, each source type, and how bad rows are reported."""

from __future__ import annotations

import json
import re

import pytest

from sif_lib.core.errors import InputError
from sif_lib.synthesis.seeds import Seed, SeedSet, load_seeds


def _write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


# ---- bundled set

def test_bundled_set_is_large_diverse_and_unique():
    seeds = load_seeds()
    assert isinstance(seeds, SeedSet)
    assert len(seeds) >= 300
    assert seeds.skipped == []
    domains = seeds.domains()
    assert len(domains) >= 12
    assert min(domains.values()) >= 10  # no token domains
    ids = [s.id for s in seeds]
    assert len(set(ids)) == len(ids)
    assert all(re.fullmatch(r"seed-\d{4}", i) for i in ids)
    tasks = [" ".join(s.task.split()).casefold() for s in seeds]
    assert len(set(tasks)) == len(tasks)


def test_bundled_tasks_look_like_open_ended_prompts():
    for seed in load_seeds():
        assert 25 <= len(seed.task) <= 200, seed
        assert seed.task[0].isupper() and seed.task[-1] in ".?", seed
        assert "{" not in seed.task and "TODO" not in seed.task


def test_bundled_file_rows_are_complete_json_objects():
    from importlib import resources

    text = resources.files("sif_lib.data").joinpath("seed_tasks.jsonl").read_text(encoding="utf-8")
    rows = [json.loads(line) for line in text.splitlines()]
    assert all(set(r) == {"id", "domain", "task"} for r in rows)


def test_limit_stops_early():
    assert [s.id for s in load_seeds(limit=5)] == ["seed-0001", "seed-0002", "seed-0003", "seed-0004", "seed-0005"]
    assert len(load_seeds(limit=0)) == 0
    with pytest.raises(InputError, match="limit"):
        load_seeds(limit=-1)


# ---- file sources

def test_jsonl_with_named_column_and_defaults(tmp_path):
    path = _write(tmp_path / "mine.jsonl", "\n".join([
        json.dumps({"prompt": "Describe a walk by the sea.", "id": "a1", "domain": "travel"}),
        "",
        json.dumps({"prompt": "Explain how kites fly."}),
    ]) + "\n")
    seeds = load_seeds(path, column="prompt")
    assert seeds.seeds == [Seed("a1", "travel", "Describe a walk by the sea."),
                           Seed("mine-3", "general", "Explain how kites fly.")]
    assert seeds.source == "mine.jsonl"


def test_csv_with_named_column_and_quoted_multiline_field(tmp_path):
    path = _write(tmp_path / "seeds.csv",
                  'id,text,domain\n'
                  '1,Plan a picnic.,food\n'
                  '2,"Write a poem\nabout rain.",writing\n'
                  '3,Explain tides.\n')
    seeds = load_seeds(str(path), column="text")
    assert [s.task for s in seeds] == ["Plan a picnic.", "Write a poem\nabout rain.", "Explain tides."]
    assert [s.id for s in seeds] == ["1", "2", "3"]
    assert seeds.seeds[2].domain == "general"


def test_tsv_is_read_with_tabs(tmp_path):
    path = _write(tmp_path / "seeds.tsv", "task\tdomain\nSketch a garden plan, with paths.\thome\n")
    assert load_seeds(path).seeds[0].task == "Sketch a garden plan, with paths."


def test_malformed_jsonl_rows_are_skipped_with_file_and_line(tmp_path):
    path = _write(tmp_path / "seeds.jsonl", "\n".join([
        json.dumps({"task": "A good task."}),
        "{not json",
        json.dumps({"other": "no task here"}),
        json.dumps({"task": "   "}),
        json.dumps({"task": 42}),
        json.dumps(["a", "list"]),
        json.dumps({"task": "a good   TASK."}),
        json.dumps({"task": "Another good task."}),
    ]) + "\n")
    seeds = load_seeds(path)
    assert [s.task for s in seeds] == ["A good task.", "Another good task."]
    assert len(seeds.skipped) == 6
    assert seeds.skipped[0].startswith("seeds.jsonl:2: invalid JSON")
    assert seeds.skipped[1] == "seeds.jsonl:3: missing column 'task'"
    assert seeds.skipped[2] == "seeds.jsonl:4: empty column 'task'"
    assert seeds.skipped[3] == "seeds.jsonl:5: column 'task' is int, expected a string"
    assert seeds.skipped[4].startswith("seeds.jsonl:6: expected a JSON object")
    assert seeds.skipped[5] == "seeds.jsonl:7: duplicate task (first seen at seeds.jsonl:1)"


def test_short_csv_row_reports_missing_column_with_line(tmp_path):
    path = _write(tmp_path / "seeds.csv", "id,domain,task\n1,food,Plan a picnic.\n2,food\n3,food,Bake bread.\n")
    seeds = load_seeds(path)
    assert [s.task for s in seeds] == ["Plan a picnic.", "Bake bread."]
    assert seeds.skipped == ["seeds.csv:3: missing column 'task'"]


def test_strict_raises_on_first_bad_row(tmp_path):
    path = _write(tmp_path / "seeds.csv", "id,domain,task\n1,food,Plan a picnic.\n2,food\n")
    with pytest.raises(InputError, match=r"^seeds\.csv:3: missing column 'task'$"):
        load_seeds(path, strict=True)


def test_duplicate_ids_are_rejected(tmp_path):
    path = _write(tmp_path / "s.jsonl", json.dumps({"id": "x", "task": "One."}) + "\n"
                  + json.dumps({"id": "x", "task": "Two."}) + "\n")
    seeds = load_seeds(path)
    assert len(seeds) == 1 and "s.jsonl:2: duplicate id 'x'" in seeds.skipped[0]


def test_column_absent_from_csv_header_is_one_clear_error(tmp_path):
    path = _write(tmp_path / "seeds.csv", "id,prompt\n1,Hello there.\n")
    with pytest.raises(InputError, match=r"seeds\.csv:1: no column 'task'.*prompt"):
        load_seeds(path)


def test_no_usable_rows_is_an_error(tmp_path):
    path = _write(tmp_path / "seeds.jsonl", json.dumps({"text": "x"}) + "\n")
    with pytest.raises(InputError, match="no usable seeds"):
        load_seeds(path)


def test_missing_file_names_the_path(tmp_path):
    missing = tmp_path / "nope.jsonl"
    with pytest.raises(InputError, match=re.escape(str(missing))):
        load_seeds(missing)


def test_unknown_extension_is_rejected(tmp_path):
    path = _write(tmp_path / "seeds.txt", "Plan a picnic.\n")
    with pytest.raises(InputError, match="unknown seed file type"):
        load_seeds(path)


# ---- datasets sources

def test_datasets_directory_with_named_column(tmp_path):
    datasets = pytest.importorskip("datasets")
    ds = datasets.Dataset.from_dict({"instruction": ["Describe a lighthouse.", "", "Explain rainbows."],
                                     "category": ["writing", "writing", "science"]})
    ds.save_to_disk(str(tmp_path / "ds"))
    seeds = load_seeds(tmp_path / "ds", column="instruction", domain_column="category")
    assert [(s.task, s.domain) for s in seeds] == [("Describe a lighthouse.", "writing"),
                                                   ("Explain rainbows.", "science")]
    assert seeds.skipped == ["ds row 2: empty column 'instruction'"]
    with pytest.raises(InputError, match="no column 'task'"):
        load_seeds(tmp_path / "ds")


def test_datasets_dict_directory_with_split_suffix(tmp_path):
    datasets = pytest.importorskip("datasets")
    dd = datasets.DatasetDict({"train": datasets.Dataset.from_dict({"task": ["Train task."]}),
                               "test": datasets.Dataset.from_dict({"task": ["Test task one.", "Test task two."]})})
    dd.save_to_disk(str(tmp_path / "dd"))
    assert [s.task for s in load_seeds(tmp_path / "dd")] == ["Train task."]
    assert [s.task for s in load_seeds(f"{tmp_path / 'dd'}:test")] == ["Test task one.", "Test task two."]
    with pytest.raises(InputError, match="splits"):
        load_seeds(f"{tmp_path / 'dd'}:validation")


def test_hub_id_uses_load_dataset_with_split(monkeypatch):
    datasets = pytest.importorskip("datasets")
    calls = []

    def fake_load_dataset(name, split):
        calls.append((name, split))
        return datasets.Dataset.from_dict({"prompt": ["Hub task."]})

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    seeds = load_seeds("someone/instructions:validation", column="prompt")
    assert calls == [("someone/instructions", "validation")]
    assert seeds.seeds[0].task == "Hub task." and seeds.source == "someone/instructions[validation]"


def test_hub_failure_offline_is_an_input_error(monkeypatch):
    datasets = pytest.importorskip("datasets")

    def offline(name, split):
        raise ConnectionError("no network")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(InputError, match="someone/instructions.*no network"):
        load_seeds("someone/instructions")
