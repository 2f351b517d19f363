"""Rule rewrites (sif_lib/cold_start/rule_rewrites.py): every rewrite is held to the IFEval verifier and to the
degenerate-answer detector, and an answer a program cannot fix is refused rather than forced."""

from __future__ import annotations

import pytest

from sif_lib.cold_start.rule_rewrites import REWRITERS, rewrite
from sif_lib.constraints import check_constraint
from sif_lib.constraints.degenerate import is_degenerate
from sif_lib.constraints.hard import get_constraint_class

ANSWER = ("Moving to a new apartment takes planning, patience and a few good boxes. Start packing two weeks early, "
          "one room at a time. Label every box with its room and what is inside. Book the movers or a van as soon as "
          "you know the date. Keep a bag with documents, chargers and a change of clothes. Clean the new place before "
          "the furniture arrives. Finally, update your address with the bank and the post office.")
REQUEST = "Offer tips for a smooth move to a new apartment."


def verifies(text: str, c: dict) -> bool:
    return check_constraint(text, c["id"], c.get("kwargs"))


def _constraint(iid: str, seed: int) -> dict:
    built = get_constraint_class(iid).from_args({"prompt_to_repeat": REQUEST} if iid == "combination:repeat_prompt"
                                                else {}, seed=seed)
    return {"id": iid, "kind": "hard", "kwargs": built.get_instruction_args()}


@pytest.mark.parametrize("iid", sorted(REWRITERS))
def test_each_rewrite_meets_its_rule_or_is_refused(iid):
    met = 0
    for seed in range(8):
        c = _constraint(iid, seed)
        out = rewrite(ANSWER, [c], REQUEST)
        if verifies(ANSWER, c):
            assert out == ANSWER  # a rule already met is left alone
        if out is not None:
            met += 1
            assert verifies(out, c) and not is_degenerate(out, [c]), (iid, c["kwargs"], out)
    # "at least N words/sentences" cannot be met by cutting; every other draw of the arguments can be met
    assert met >= (2 if iid.startswith("length_constraints:number_") else 8), iid


def test_several_rules_are_met_together_and_a_met_rule_is_left_alone():
    constraints = [{"id": "change_case:english_lowercase", "kwargs": {}},
                   {"id": "startend:end_checker", "kwargs": {"end_phrase": "Any other questions?"}},
                   {"id": "startend:quotation", "kwargs": {}},
                   {"id": "punctuation:no_comma", "kwargs": {}}]
    out = rewrite(ANSWER, constraints, REQUEST)
    assert out is not None and out.startswith('"moving to a new apartment') and out.endswith('any other questions?"')
    assert "," not in out
    plain = "Pack early. Label boxes. Book a van."
    assert rewrite(plain, [{"id": "punctuation:no_comma", "kwargs": {}}], REQUEST) == plain


def test_content_rules_and_degenerate_answers_are_refused():
    keyword = {"id": "keywords:existence", "kind": "hard", "kwargs": {"keywords": ["theory"]}}
    assert rewrite(ANSWER, [keyword], REQUEST) is None  # no program writes content
    assert rewrite(ANSWER + " theory.", [keyword], REQUEST) is not None  # already met: kept
    loop = "Pack your boxes early. " * 12
    assert rewrite(loop, [{"id": "change_case:english_lowercase", "kwargs": {}}], REQUEST) is None
    short = "Pack early."
    assert rewrite(short, [{"id": "detectable_format:number_bullet_lists", "kwargs": {"num_bullets": 3}}],
                   REQUEST) is None  # fewer sentences than bullets


def test_sif_rewrites_reads_stage_07s_files_and_names_a_missing_one(tmp_path, capsys):
    import json

    from sif_lib.cli import main

    eval_dir = tmp_path / "eval"
    (eval_dir / "ifeval_base").mkdir(parents=True)
    rows = [{"key": 1, "prompt": "Tell me about moving.", "instruction_id_list": ["change_case:english_lowercase"],
             "kwargs": [{}]},
            {"key": 2, "prompt": "Write about boxes.", "instruction_id_list": ["keywords:existence",
                                                                             "punctuation:no_comma"],
             "kwargs": [{"keywords": ["theory"], "relation": None}, {}]}]
    (eval_dir / "ifeval_input_data.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (eval_dir / "ifeval_base" / "responses.jsonl").write_text(
        json.dumps({"prompt": rows[0]["prompt"], "response": ANSWER}) + "\n"
        + json.dumps({"prompt": rows[1]["prompt"], "response": ANSWER}) + "\n")
    assert main(["rewrites", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "| change_case:english_lowercase | 1 | 0% | 100% | yes |" in out
    assert "| keywords:existence | 1 | 0% | 0% |  |" in out  # no program writes content
    assert "| whole prompts (every instruction) | 2 | 0% | 50% |  |" in out
    (eval_dir / "ifeval_base" / "responses.jsonl").unlink()
    assert main(["rewrites", str(tmp_path)]) == 2
    assert "responses.jsonl: not found" in capsys.readouterr().err


def test_cold_start_rows_carry_rewritten_answers_and_drop_what_no_program_fixes():
    from sif_lib.cold_start.sft_set import REWRITTEN_SOURCE, instruction_rows
    from sif_lib.stages.s00_cold_start import check_figures

    soft = {"id": "soft:tone:warm", "kind": "soft", "kwargs": {}, "description": "Sound warm."}
    lower = {"id": "change_case:english_lowercase", "kind": "hard", "kwargs": {}, "description": "Lowercase only."}
    keyword = {"id": "keywords:existence", "kind": "hard", "kwargs": {"keywords": ["theory"]},
               "description": "Include the keyword 'theory'."}
    items = [{"id": f"cold-{i}", "prompt": f"{REQUEST} ({i})", "seed": REQUEST, "n_constraints": 2,
              "constraints": cs} for i, cs in enumerate([[lower, soft], [keyword, soft], [soft]])]
    answers = [ANSWER, ANSWER, ANSWER]
    plain = instruction_rows(items, answers, "tiny")
    assert [r["answer"] for r in plain] == answers and {r["answer_source"] for r in plain} == {"policy"}
    rows = instruction_rows(items, answers, "tiny", rewrite_answers=True)
    assert [r["id"] for r in rows] == ["cold-0", "cold-2"]  # no program writes the keyword in
    assert rows[0]["answer"] == ANSWER.lower() and rows[0]["answer_source"] == REWRITTEN_SOURCE
    assert rows[1]["answer"] == ANSWER and rows[1]["answer_source"] == "policy"
    assert rows[0]["constraints"] == [lower] and rows[1]["constraints"] == []  # the hard ones, for trained ids
    figures = check_figures(rows, ["<think>plan</think>" + ANSWER.lower(), ANSWER])
    assert figures["hard"] == {"n": 1, "met": 1}
