import json

import pytest
from conftest import REPO

from sif_lib.core import io as io_
from sif_lib.core.errors import InputError
from sif_lib.runner import runs, stage_table


def test_stage_names_resolve():
    assert stage_table.stage_name("5") == "05_score_rewards"
    assert stage_table.stage_name("05") == "05_score_rewards"
    assert stage_table.stage_name("train_grpo") == "06_train_grpo"
    with pytest.raises(InputError, match="unknown stage"):
        stage_table.stage_name("08_party")


def test_atomic_jsonl_round_trip_and_errors(tmp_path):
    path = tmp_path / "d" / "rows.jsonl"
    assert io_.write_jsonl(path, [{"a": 1}, {"b": "é"}]) == 2
    assert io_.read_jsonl(path) == [{"a": 1}, {"b": "é"}]
    assert not list(path.parent.glob("*.tmp"))
    path.write_text('{"a": 1}\n{"b": \n')
    with pytest.raises(InputError, match=r"rows.jsonl:2: not valid JSON"):
        io_.read_jsonl(path)
    path.write_text('{"a": 1}\n{"b": 2')  # a torn last line, as a killed writer leaves it
    assert list(io_.iter_jsonl(path, tolerate_torn_tail=True)) == [{"a": 1}]
    path.write_text('[1, 2]\n')
    with pytest.raises(InputError, match="expected a JSON object"):
        io_.read_jsonl(path)


def test_run_context_writes_resolved_params(tmp_path):
    ctx = runs.RunContext.open(tmp_path / "r", REPO / "params" / "smoke.yaml")
    assert (ctx.root / "params.yaml").is_file()
    reopened = runs.RunContext.open(tmp_path / "r")
    assert reopened.params == ctx.params
    metrics = {"x": 1}
    ctx.write_metrics("01", metrics)
    saved = json.loads((ctx.root / "metrics" / "01_synthesize_constraints.json").read_text())
    assert saved == metrics and saved["x"] == 1 and saved["peak_rss_mb"] > 10
    with pytest.raises(InputError, match="run stage 03_generate_pseudo_labels first"):
        ctx.require("data", "rollouts.jsonl")


def test_atomic_files_get_ordinary_permissions(tmp_path):
    import os

    path = tmp_path / "a.json"
    io_.write_json(path, {"a": 1})
    mask = os.umask(0)
    os.umask(mask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~mask


def test_numbered_jsonl_reports_lines_and_skips_bom_and_blanks(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"a": 1}\n\n{"a": 2}\n')
    assert list(io_.iter_numbered_jsonl(path)) == [(1, {"a": 1}), (3, {"a": 2})]
    path.write_bytes(b'{"a": 1}\n\xff\xfe\n')
    with pytest.raises(InputError, match=r"rows\.jsonl:2: not UTF-8"):
        list(io_.iter_numbered_jsonl(path))
