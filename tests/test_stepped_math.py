"""Stepped math (:mod:`sif_lib.synthesis.stepped_math`), its use in stage 01, and strict vs flexible math scoring."""

from __future__ import annotations

import json
import re
from types import SimpleNamespace

import pytest

from sif_lib.config.params import params_from_dict
from sif_lib.constraints.math_answer import last_number, score_flexible, score_reasoning
from sif_lib.core.errors import InputError
from sif_lib.evaluation import math_accuracy
from sif_lib.synthesis import instructions, math_items
from sif_lib.synthesis.stepped_math import FAMILIES, SOURCE, generate_stepped_items, worked_solution

STEP = re.compile(r"^[^:]+: (\d+) ([-+*/]) (\d+) = (\d+)$")


@pytest.mark.parametrize("level", [1, 2, 3])
def test_items_have_the_level_steps_and_a_solution_that_computes_the_answer(level):
    items = generate_stepped_items(120, 0, level)
    assert len(items) == 120 and len({i["question"] for i in items}) == 120
    assert {i["family"] for i in items} == set(FAMILIES) and len(FAMILIES) >= 6
    assert {i["steps"] for i in items} == ({3, 4} if level == 3 else {level})
    keys = set(math_items.generate_math_items(1, 0)[0])
    for item in items:
        assert keys <= set(item) and item["source"] == SOURCE and item["kind"] == "reasoning"
        assert item["prompt"] == math_items.make_prompt(item["question"])
        assert len(item["solution"]) == item["steps"]
        for line in item["solution"]:
            a, sign, b, result = STEP.match(line).groups()
            ops = {"+": int(a) + int(b), "-": int(a) - int(b), "*": int(a) * int(b), "/": int(a) / int(b)}
            assert ops[sign] == int(result), line
            # The question gives the data, never a worked step.
            assert line.split(": ", 1)[1] not in item["question"]
        assert item["solution"][-1].rsplit("= ", 1)[1] == item["answer"]
        assert "=" not in item["question"] and re.fullmatch(r"\d+", item["answer"])
        assert worked_solution(item).splitlines() == item["solution"] + [f"So the answer is {item['answer']}."]


def test_example_solution_format():
    item = generate_stepped_items(1, 0, 1)[0]
    assert re.fullmatch(r"[a-z][\w ]*: \d+ [-+*/] \d+ = \d+", item["solution"][0])


def test_generation_is_deterministic():
    assert generate_stepped_items(30, 5, 2) == generate_stepped_items(30, 5, 2)
    assert generate_stepped_items(30, "5", 3) == generate_stepped_items(30, "5", 3)
    assert generate_stepped_items(30, 5, 2) != generate_stepped_items(30, 6, 2)
    # Asking for more items keeps the first ones.
    assert generate_stepped_items(40, 5, 3)[:30] == generate_stepped_items(30, 5, 3)


@pytest.mark.parametrize("n, steps", [(5, 0), (5, 4), (5, None), (5, "2"), (5, True), (-1, 2), (2.0, 2)])
def test_bad_arguments_are_refused(n, steps):
    with pytest.raises(InputError, match="steps must be|n must be"):
        generate_stepped_items(n, 0, steps)


# ---------------------------------------------------------------------------------------------------------------
# Stage 01 and the params.

def test_compose_reasoning_with_math_steps_and_excluded_questions():
    params = params_from_dict({"synthesis": {"math_steps": 2}})
    rows, info = instructions.compose_reasoning(params, 20, 6)
    assert info == {"reasoning_source": "generated-stepped-2", "reasoning_shortfall": 0}
    assert sum(r["split"] == "heldout" for r in rows) == 6 and len(rows) == 26
    assert all(r["steps"] == 2 and len(r["solution"]) == 2 and r["source"] == SOURCE for r in rows)

    excluded = {rows[0]["question"].upper(), "  " + rows[-1]["question"].replace(" ", "   ")}
    kept, info = instructions.compose_reasoning(params, 20, 6, exclude_questions=excluded)
    assert len(kept) == 26 and info["reasoning_excluded"] == 2 and info["reasoning_shortfall"] == 0
    keys = {instructions.question_key(r["question"]) for r in kept}
    assert not keys & {instructions.question_key(q) for q in excluded}

    plain, _ = instructions.compose_reasoning(params_from_dict({}), 5, 2)
    assert all("solution" not in r and "steps" not in r for r in plain)
    assert instructions.question_key("  What IS\n 2 + 2? ") == "what is 2 + 2?"


def test_math_steps_is_validated():
    with pytest.raises(InputError, match=r"synthesis\.math_steps"):
        params_from_dict({"synthesis": {"math_steps": 5}})
    assert params_from_dict({"synthesis": {"math_steps": 3}}).synthesis.math_steps == 3


# ---------------------------------------------------------------------------------------------------------------
# Strict and flexible scoring.

@pytest.mark.parametrize("text, number", [
    ("so 1,250 apples.", "1250"), ("$3.50", "3.50"), ("-4", "-4"), ("It costs $-2.", "-2"),
    ("the answer is \\boxed{42}.", "42"), ("first 3, then 12", "12"), ("no number here", None), ("", None),
    ("pages 3-4", "4"), ("2,000,000 people", "2000000"),
])
def test_last_number(text, number):
    assert last_number(text) == number


def test_score_flexible():
    assert score_flexible("so 1,250 apples.", "1250") == 1.0
    assert score_flexible("$3.50", "3.5") == 1.0
    assert score_flexible("she is -4 down", "-4") == 1.0
    assert score_flexible("no number at all", "3") == 0.0
    assert score_flexible(None, "3") == 0.0
    assert score_flexible("\\boxed{6}", "6") == 1.0 and score_flexible("the total is 6", "6") == 1.0
    assert score_flexible("\\boxed{6}, as 2 * 3 shows", "6") == 0.0  # the last number counts


def test_strict_and_flexible_disagree_on_an_unboxed_answer():
    task = math_accuracy.MathTask("t", "test", [{"id": "a", "answer": "6"}, {"id": "b", "answer": "6"}])
    responses = ["3 + 3 = 6, so the answer is 6.", "\\boxed{6}"]
    assert math_accuracy.score_responses(task, responses, "after_think") == [False, True]
    assert math_accuracy.score_responses(task, responses, "after_think", "flexible") == [True, True]
    assert score_reasoning(responses[0], "6") == 0.0
    # Without </think>, require_think scores both ways wrong.
    for extraction in math_accuracy.EXTRACTIONS:
        assert math_accuracy.score_responses(task, responses, "require_think", extraction) == [False, False]
    with pytest.raises(ValueError, match="extraction"):
        math_accuracy.score_responses(task, responses, "after_think", "loose")


@pytest.mark.parametrize("correct", [[True, False, True], [True] * 5, [False] * 4, [True] * 3 + [False] * 37])
def test_accuracy_interval_is_clopper_pearson(correct):
    from scipy.stats import binomtest

    got = math_accuracy.accuracy(correct)
    ci = binomtest(sum(correct), len(correct)).proportion_ci(method="exact")
    assert got["ci95"] == [round(ci.low, 6), round(ci.high, 6)]
    assert got["ci95"][0] <= got["accuracy"] <= got["ci95"][1]
    assert math_accuracy.accuracy([])["ci95"] is None


def test_stage_scores_carry_flexible_figures(tmp_path):
    from sif_lib.evaluation.report import flips_lines
    from sif_lib.evaluation.scores import score_reasoning_stage

    items = [{"id": f"m{i}", "answer": str(i), "prompt": f"q{i}"} for i in range(4)]
    task = math_accuracy.MathTask("synthetic", "test", items)
    outputs = {"base": {"math_synthetic": ["0", "1", "\\boxed{2}", "no"]},
               "trained": {"math_synthetic": ["\\boxed{0}", "\\boxed{1}", "\\boxed{2}", "3"]}}
    ctx = SimpleNamespace(root=tmp_path, params=params_from_dict({"evaluation": {"bootstrap": 50}}))
    entry = score_reasoning_stage(ctx, [task], outputs)["synthetic"]
    assert entry["base"]["accuracy"] == 0.25 and entry["trained"]["accuracy"] == 0.75
    assert entry["delta"] == 0.5 and entry["flips"]["gained"] == 2
    flexible = entry["flexible"]
    assert set(flexible) == {"base", "trained", "delta", "delta_ci95", "flips"}
    assert flexible["base"]["accuracy"] == 0.75 and flexible["trained"]["accuracy"] == 1.0
    assert flexible["delta"] == 0.25 and flexible["flips"]["gained"] == 1 and flexible["base"]["ci95"]
    rows = [json.loads(line) for line in (tmp_path / "eval" / "math_synthetic_base" / "scored.jsonl").open()]
    assert [(r["correct"], r["correct_flexible"]) for r in rows] == [(False, True), (False, True), (True, True),
                                                                     (False, False)]
    text = math_accuracy.math_accuracy_text(entry)
    assert text.startswith("strict 25.0% [") and "; flexible 75.0% [" in text and "(+50.0)" in text
    lines = flips_lines({"ifeval": {}, "reasoning": {"synthetic": entry}})
    assert [line.split(":")[0] for line in lines] == ["synthetic math items, strict", "synthetic math items, flexible"]
