"""Verdict-for-verdict parity with the IFEval reference implementation on the GPT-4 golden responses."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sif_lib.evaluation.ifeval_scoring import run_score_command, score_response

IFEVAL = Path(__file__).resolve().parents[2] / "shared" / "benchmarks" / "ifeval"


def _read(name: str) -> list[dict]:
    path = IFEVAL / name
    if not path.is_file():
        pytest.skip(f"{path} is absent: the IFEval data lives in ../shared beside the checkout")
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


@pytest.fixture(scope="module")
def golden() -> list[dict]:
    return _read("gpt4_golden_dev.jsonl")


@pytest.fixture(scope="module")
def input_data() -> list[dict]:
    return _read("input_data.jsonl")


@pytest.fixture(scope="module")
def ours(golden) -> dict[int, tuple[list[bool], list[bool]]]:
    return {row["key"]: score_response(row["response"], row["instruction_id_list"], row["kwargs"]) for row in golden}


def test_every_strict_and_loose_verdict_matches_the_reference(golden, ours):
    assert len(golden) == 274
    checked, mismatches = 0, []
    for row in golden:
        strict, loose = ours[row["key"]]
        for i, instruction_id in enumerate(row["instruction_id_list"]):
            if i in row["reference_nondeterministic"]:
                continue
            checked += 1
            if strict[i] != row["strict"][i] or loose[i] != row["loose"][i]:
                mismatches.append(f"{row['key']} {instruction_id} {row['kwargs'][i]}: strict {strict[i]} "
                                  f"(ref {row['strict'][i]}), loose {loose[i]} (ref {row['loose'][i]})")
    assert checked == sum(len(r["instruction_id_list"]) - len(r["reference_nondeterministic"]) for r in golden)
    assert checked > 400
    assert not mismatches, "\n".join(mismatches)


def test_every_instruction_type_is_exercised(golden):
    seen = {i for row in golden for i in row["instruction_id_list"]}
    from sif_lib.constraints import HARD_CONSTRAINTS

    assert seen == set(HARD_CONSTRAINTS)


def test_reference_nondeterministic_items_are_deterministic_here(golden, ours):
    flagged = [(row, i) for row in golden for i in row["reference_nondeterministic"]]
    assert flagged, "the golden file lists the nondeterministic letter_frequency items"
    for row, i in flagged:
        assert row["instruction_id_list"][i] == "keywords:letter_frequency"
        kw = row["kwargs"][i]
        assert not kw["letter"].isalpha()
        # Counted as written: the verdict follows from the number of those characters in the response.
        count = row["response"].lower().count(kw["letter"])
        expected = count < kw["let_frequency"] if kw["let_relation"] == "less than" else count >= kw["let_frequency"]
        for _ in range(3):
            strict, _ = score_response(row["response"], row["instruction_id_list"], row["kwargs"])
            assert strict[i] == expected == ours[row["key"]][0][i]


def _expected_scores(golden, ours, input_data) -> dict[str, float]:
    """The four accuracies over all IFEval prompts, with the golden verdicts where a response exists (ours for
    the reference's nondeterministic items) and failures where none does."""
    by_key = {row["key"]: row for row in golden}
    prompts_all = {"strict": 0, "loose": 0}
    instructions_all = {"strict": 0, "loose": 0}
    n_instructions = 0
    for prompt in input_data:
        n = len(prompt["instruction_id_list"])
        n_instructions += n
        row = by_key.get(prompt["key"])
        if row is None:
            continue
        for mode, index in (("strict", 0), ("loose", 1)):
            verdicts = list(row[mode])
            for i in row["reference_nondeterministic"]:
                verdicts[i] = ours[row["key"]][index][i]
            prompts_all[mode] += all(verdicts)
            instructions_all[mode] += sum(verdicts)
    return {
        "prompt_strict": prompts_all["strict"] / len(input_data),
        "instruction_strict": instructions_all["strict"] / n_instructions,
        "prompt_loose": prompts_all["loose"] / len(input_data),
        "instruction_loose": instructions_all["loose"] / n_instructions,
    }


def test_scorer_end_to_end_with_missing_responses(golden, ours, input_data, tmp_path, capsys):
    responses = tmp_path / "responses.jsonl"
    with responses.open("w", encoding="utf-8") as handle:
        for row in golden:
            handle.write(json.dumps({"key": row["key"], "prompt": row["prompt"], "response": row["response"]}) + "\n")
    out = tmp_path / "out"

    assert run_score_command(IFEVAL / "input_data.jsonl", responses, out, allow_missing=True) == 0
    printed = capsys.readouterr().out
    assert "prompt-level accuracy" in printed and "instruction-level accuracy" in printed

    scores = json.loads((out / "scores.json").read_text(encoding="utf-8"))
    expected = _expected_scores(golden, ours, input_data)
    assert scores["n_prompts"] == len(input_data) == 541
    assert scores["n_missing_responses"] == 541 - 274  # the Shinto prompt's old wording still matches by key
    assert scores["n_unmatched_responses"] == 0
    assert scores["strict"]["prompt_level"] == pytest.approx(expected["prompt_strict"], abs=1e-12)
    assert scores["strict"]["instruction_level"] == pytest.approx(expected["instruction_strict"], abs=1e-12)
    assert scores["loose"]["prompt_level"] == pytest.approx(expected["prompt_loose"], abs=1e-12)
    assert scores["loose"]["instruction_level"] == pytest.approx(expected["instruction_loose"], abs=1e-12)
    assert set(scores["by_category"]) == {i.split(":")[0] for p in input_data for i in p["instruction_id_list"]}
    assert sum(c["instructions"] for c in scores["by_instruction"].values()) == scores["n_instructions"]

    golden_by_prompt = {row["key"]: row for row in golden}
    keys = [p["key"] for p in input_data]
    for name, mode in (("eval_results_strict.jsonl", "strict"), ("eval_results_loose.jsonl", "loose")):
        lines = [json.loads(line) for line in (out / name).read_text(encoding="utf-8").splitlines()]
        assert len(lines) == 541
        for key, line in zip(keys, lines):
            assert set(line) == {"prompt", "response", "instruction_id_list", "follow_all_instructions",
                                 "follow_instruction_list"}
            assert line["follow_all_instructions"] == all(line["follow_instruction_list"])
            row = golden_by_prompt.get(key)
            if row is None:
                assert line["response"] == "" and not any(line["follow_instruction_list"])
            else:
                assert line["response"] == row["response"]
                skip = set(row["reference_nondeterministic"])
                assert [v for i, v in enumerate(line["follow_instruction_list"]) if i not in skip] == \
                       [v for i, v in enumerate(row[mode]) if i not in skip]


def test_missing_responses_are_an_error_by_default(golden, tmp_path, capsys):
    responses = tmp_path / "responses.jsonl"
    responses.write_text("".join(json.dumps({"prompt": r["prompt"], "response": r["response"]}) + "\n"
                                 for r in golden[:3]), encoding="utf-8")
    assert run_score_command(IFEVAL / "input_data.jsonl", responses, tmp_path / "out") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "input_data.jsonl:" in err and "no response for prompt key" in err


def test_the_sif_command_runs_the_scorer(golden, tmp_path, capsys):
    from sif_lib.cli import main

    responses = tmp_path / "responses.jsonl"
    responses.write_text("".join(json.dumps({"key": r["key"], "response": r["response"]}) + "\n" for r in golden),
                         encoding="utf-8")
    rc = main(["ifeval", "score", "--input-data", str(IFEVAL / "input_data.jsonl"), "--responses", str(responses),
               "--output-dir", str(tmp_path / "out"), "--allow-missing"])
    assert rc == 0
    assert (tmp_path / "out" / "scores.json").is_file()
