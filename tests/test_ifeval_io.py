"""IFEval scorer input handling: every bad input names its file and line (or prompt), and nothing crashes."""

from __future__ import annotations

import json

import pytest

from sif_lib.core.errors import InputError
from sif_lib.evaluation.ifeval_scoring import (
    PromptRecord,
    ResponseRecord,
    format_report,
    load_prompts,
    load_responses,
    loose_variants,
    run_score_command,
    score,
    write_results,
)

PROMPTS = [
    {"key": 1, "prompt": "Write without commas.", "instruction_id_list": ["punctuation:no_comma"], "kwargs": [{}]},
    {"key": 2, "prompt": "Two bullets, please.", "instruction_id_list": [
        "detectable_format:number_bullet_lists", "length_constraints:number_words"],
     "kwargs": [{"num_bullets": 2}, {"num_words": 4, "relation": "at least"}]},
    {"key": 3, "prompt": "Quote it.", "instruction_id_list": ["startend:quotation"], "kwargs": [{}]},
]


def _write(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture
def prompts_file(tmp_path):
    return _write(tmp_path / "input_data.jsonl", PROMPTS)


def test_malformed_json_line_names_file_and_line(tmp_path, prompts_file, capsys):
    responses = _write(tmp_path / "responses.jsonl", [
        {"prompt": "Write without commas.", "response": "ok"},
        "",
        '{"prompt": "Two bullets, please.", "response": "oops"',
    ])
    with pytest.raises(InputError, match=r"responses\.jsonl:3: not valid JSON"):
        load_responses(responses)
    assert run_score_command(prompts_file, responses, tmp_path / "out") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "responses.jsonl:3:" in err
    assert not (tmp_path / "out").exists()


def test_missing_response_field(tmp_path):
    path = _write(tmp_path / "responses.jsonl", [{"prompt": f"p{i}", "response": "x"} for i in range(16)]
                  + [{"prompt": "b"}])
    with pytest.raises(InputError) as err:
        load_responses(path)
    assert str(err.value) == f"{path}:17: missing field 'response'"


def test_response_row_needs_a_prompt_or_key(tmp_path):
    path = _write(tmp_path / "responses.jsonl", [{"response": "x"}])
    with pytest.raises(InputError, match=r"responses\.jsonl:1: missing field 'prompt'"):
        load_responses(path)


@pytest.mark.parametrize("row,message", [
    ({"prompt": "p", "kwargs": [{}]}, "missing field 'instruction_id_list'"),
    ({"instruction_id_list": ["punctuation:no_comma"], "kwargs": [{}]}, "missing field 'prompt'"),
    ({"prompt": "p", "instruction_id_list": ["punctuation:no_comma"]}, "missing field 'kwargs'"),
    ({"prompt": "p", "instruction_id_list": ["punctuation:no_comma"], "kwargs": []}, "one object per instruction"),
    ({"prompt": "p", "instruction_id_list": ["no:such"], "kwargs": [{}]}, "unknown instruction id 'no:such'"),
    ({"prompt": "p", "instruction_id_list": ["length_constraints:number_words"],
      "kwargs": [{"num_words": 3, "relation": "about"}]}, "relation"),
    ([1, 2], "expected a JSON object"),
])
def test_bad_prompt_rows(tmp_path, row, message):
    path = _write(tmp_path / "input_data.jsonl", [PROMPTS[0], row])
    with pytest.raises(InputError) as err:
        load_prompts(path)
    assert str(err.value).startswith(f"{path}:2: ")
    assert message in str(err.value)


def test_unreadable_inputs(tmp_path):
    with pytest.raises(InputError, match=r"absent\.jsonl: file not found"):
        load_prompts(tmp_path / "absent.jsonl")
    empty = _write(tmp_path / "empty.jsonl", [""])
    with pytest.raises(InputError, match="no prompts"):
        load_prompts(empty)
    binary = tmp_path / "binary.jsonl"
    binary.write_bytes(b'{"prompt": "a", "response": "x"}\n\xff\xfe\n')
    with pytest.raises(InputError, match=r"binary\.jsonl:2: not UTF-8"):
        load_responses(binary)


def test_duplicates_are_rejected(tmp_path):
    path = _write(tmp_path / "responses.jsonl", [{"key": 5, "response": "a"}, {"key": 5, "response": "b"}])
    with pytest.raises(InputError, match=r":2: second response for key 5 \(first on line 1\)"):
        load_responses(path)
    path = _write(tmp_path / "input_data.jsonl", [PROMPTS[0], PROMPTS[0]])
    with pytest.raises(InputError, match=r":2: duplicate key 1"):
        load_prompts(path)


def test_missing_response_names_the_prompt(tmp_path, prompts_file):
    responses = _write(tmp_path / "responses.jsonl", [{"prompt": "Write without commas.", "response": "ok"},
                                                      {"key": 3, "response": '"quoted"'}])
    with pytest.raises(InputError) as err:
        score(load_prompts(prompts_file), load_responses(responses))
    assert str(err.value).startswith(f"{prompts_file}:2: no response for prompt key 2")
    assert "Two bullets, please." in str(err.value)

    report = score(load_prompts(prompts_file), load_responses(responses), allow_missing=True)
    assert report.n_missing == 1
    assert [r.strict for r in report.rows] == [[True], [False, False], [True]]
    assert report.prompt_level_strict == pytest.approx(2 / 3)
    assert report.instruction_level_strict == pytest.approx(2 / 4)


def test_score_strict_loose_and_files(tmp_path, prompts_file):
    responses = _write(tmp_path / "responses.jsonl", [
        {"prompt": "Write without commas.", "response": "Sure, here it is:\nNo commas at all here"},
        {"key": 2, "response": "Here you go\n* one item\n* two items\nHope that helps"},
        {"prompt": "Quote it.", "response": '"Quoted text"'},
        {"prompt": "Not in the prompt file.", "response": "ignored"},
    ])
    report = score(load_prompts(prompts_file), load_responses(responses))
    # the first line's comma fails strict; dropping the first line passes loose
    assert report.rows[0].strict == [False] and report.rows[0].loose == [True]
    assert report.rows[1].strict == [True, True]
    assert report.n_unmatched_responses == 1
    assert report.prompt_level_strict == pytest.approx(2 / 3)
    assert report.prompt_level_loose == 1.0
    assert report.by_category["punctuation"] == {"instructions": 1, "strict": 0.0, "loose": 1.0}
    assert report.by_instruction["startend:quotation"]["strict"] == 1.0

    paths = write_results(report, tmp_path / "out" / "nested")
    assert [p.name for p in paths] == ["eval_results_strict.jsonl", "eval_results_loose.jsonl", "scores.json"]
    strict_rows = [json.loads(x) for x in paths[0].read_text(encoding="utf-8").splitlines()]
    assert strict_rows[0] == {"instruction_id_list": ["punctuation:no_comma"], "prompt": "Write without commas.",
                              "response": "Sure, here it is:\nNo commas at all here",
                              "follow_all_instructions": False, "follow_instruction_list": [False]}
    scores = json.loads(paths[2].read_text(encoding="utf-8"))
    assert scores["loose"]["prompt_level"] == 1.0 and scores["n_prompts"] == 3
    table = format_report(report)
    assert "66.67%" in table and "100.00%" in table and "startend:quotation" in table


def test_answer_mode_scores_the_final_answer():
    prompts = [PromptRecord(key=1, prompt="p", instruction_id_list=["punctuation:no_comma"], kwargs=[{}])]
    responses = [ResponseRecord(key=1, response="<think>hmm, well</think>\nNo commas")]
    assert score(prompts, responses).rows[0].strict == [False]
    assert score(prompts, responses, answer_mode="after_think").rows[0].strict == [True]
    assert score(prompts, [ResponseRecord(key=1, response="No tag")], answer_mode="require_think").rows[0].strict \
        == [False]


def test_loose_variants_follow_the_reference_order():
    assert loose_variants("*a*\nb\n*c*") == ["*a*\nb\n*c*", "a\nb\nc", "b\n*c*", "*a*\nb", "b", "b\nc", "a\nb", "b"]


def test_unwritable_output_dir(tmp_path, prompts_file, capsys):
    responses = _write(tmp_path / "responses.jsonl", [{"key": k, "response": "x"} for k in (1, 2, 3)])
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    assert run_score_command(prompts_file, responses, blocker / "out") == 2
    assert "cannot write results" in capsys.readouterr().err
