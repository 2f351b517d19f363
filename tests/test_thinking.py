"""Thinking figures of the evaluation (:mod:`sif_lib.evaluation.thinking`, the report's Thinking section), and
the paper's rule under ``model.answer_mode: require_think``: a completion without ``</think>`` scores 0 in every
scoring path, while the same text behind ``<think>plan</think>`` scores above 0.

The text meets its constraint (no comma; a correct ``\\boxed{}``), so a 0 can come only from the missing
``</think>``. Already covered in ``tests/test_answer_mode.py``, and not repeated here: the math evaluation of a
bare ``\\boxed{6}`` without ``</think>`` (``test_ifeval_math_and_repetition``: 0 under require_think, correct
otherwise). Its other require_think checks use a response that fails its constraint anyway (a comma), so they
show that no answer is read (``answer_found``, what the RM is asked), not that a met constraint is zeroed.
"""

from __future__ import annotations

import json

import pytest
from scipy.stats import binomtest

from sif_lib.config.params import params_from_dict
from sif_lib.evaluation import curriculum_holdout, ifeval_scoring, math_accuracy, report
from sif_lib.evaluation.benchmarks import IFEvalTask
from sif_lib.evaluation.scores import score_ifeval_stage
from sif_lib.evaluation.thinking import compare_thinking, think_part, think_stats, thinking_summary
from sif_lib.reward import heldout
from sif_lib.reward.composite import make_reward_function, summarize
from sif_lib.runner.runs import RunContext

# ---------------------------------------------------------------------------------------------------------------
# think_stats

OUTPUTS = [
    "<think>a b c</think> the answer",      # closed, 3 words of thinking
    "no think at all here",                 # unclosed: 5 words, all of it counted as thinking
    "",                                     # unclosed and empty: 0
    "plan one two</think>answer",           # closed without a leading <think>: 3
    "<think>x</think>y</think> z",          # two </think>: the thinking runs to the last one, "x</think>y": 1 word
    "  <think>\ncut off reasoning",         # unclosed leading <think>: "cut off reasoning", 3
]


def test_think_part_cuts_at_the_last_close_and_drops_a_leading_open():
    assert think_part(OUTPUTS[0]) == ("a b c", True)
    assert think_part(OUTPUTS[1]) == ("no think at all here", False)
    assert think_part(OUTPUTS[2]) == ("", False)
    assert think_part(OUTPUTS[3]) == ("plan one two", True)
    assert think_part(OUTPUTS[4]) == ("x</think>y", True)
    assert think_part(OUTPUTS[5]) == ("cut off reasoning", False)


def test_think_stats_in_words_on_hand_written_outputs():
    stats = think_stats(OUTPUTS)
    ci = binomtest(3, 6).proportion_ci(method="exact")
    assert stats == {"n": 6, "closed": 3, "closed_share": 0.5,
                     "closed_share_ci95": [round(ci.low, 6), round(ci.high, 6)],
                     "mean_think_tokens": round((3 + 3 + 1) / 3, 4),
                     "mean_think_tokens_all": round((3 + 5 + 0 + 3 + 1 + 3) / 6, 4), "unit": "words"}
    assert stats["closed_share_ci95"][0] == pytest.approx(ci.low, abs=1e-6)


def test_think_stats_edge_cases():
    assert think_stats([]) == {"n": 0, "closed": 0, "closed_share": None, "closed_share_ci95": None,
                               "mean_think_tokens": None, "mean_think_tokens_all": None, "unit": "words"}
    none_closed = think_stats(["plain answer", "another one here"])
    assert none_closed["closed"] == 0 and none_closed["mean_think_tokens"] is None
    assert none_closed["closed_share_ci95"][0] == 0.0 and none_closed["mean_think_tokens_all"] == 2.5
    all_closed = think_stats(["<think></think>ok"] * 4)
    ci = binomtest(4, 4).proportion_ci(method="exact")
    assert all_closed["closed_share"] == 1.0 and all_closed["closed_share_ci95"] == [round(ci.low, 6), 1.0]
    assert all_closed["mean_think_tokens"] == 0.0


def test_think_stats_counts_tokens_with_a_tokenizer():
    from sif_lib.policy.models import load_tokenizer

    tokenizer = load_tokenizer("tiny")
    stats = think_stats(OUTPUTS, tokenizer)

    def n_tokens(text):
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    lengths = [n_tokens(think_part(t)[0]) for t in OUTPUTS]
    assert stats["unit"] == "tokens" and stats["closed"] == 3
    assert stats["mean_think_tokens"] == round((lengths[0] + lengths[3] + lengths[4]) / 3, 4)
    assert stats["mean_think_tokens_all"] == round(sum(lengths) / 6, 4)
    # Tokens, not words: "x</think>y" is one word and several tokens.
    assert lengths[4] > 1 and stats["mean_think_tokens"] != think_stats(OUTPUTS)["mean_think_tokens"]


def test_compare_and_summary_per_set():
    outputs = {"base": {"ifeval": ["no thinking"], "holdout": ["<think>a b</think>x", "y"]},
               "trained": {"ifeval": ["<think>a</think>ok"], "holdout": ["<think>a</think>x", "<think>b</think>y"]}}
    found = thinking_summary(outputs)
    assert set(found) == {"ifeval", "holdout"}
    assert found["holdout"]["delta"] == {"closed_share": 0.5, "mean_think_tokens": -1.0,
                                         "mean_think_tokens_all": -0.5}
    assert found["ifeval"]["delta"]["mean_think_tokens"] is None  # the base closes nothing
    assert compare_thinking(found["ifeval"]["base"], found["ifeval"]["trained"]) == found["ifeval"]["delta"]


def test_report_thinking_table_and_the_line_for_a_policy_that_does_not_think():
    thinking = thinking_summary({"base": {"ifeval": ["<think>a b</think>x", "y"], "math_gsm8k": ["z"]},
                                 "trained": {"ifeval": ["<think>a</think>x", "<think>b</think>y"],
                                             "math_gsm8k": ["<think>c d e</think>z"]}})
    summary = {"answer_mode": "require_think", "thinking": thinking}
    rows = report.thinking_rows(summary)
    assert [r["set"] for r in rows] == ["IFEval (n=2)", "math_gsm8k (n=1)"]
    assert rows[0]["closed </think> %, base → trained"].startswith("50.0 [1.3, 98.7] → 100.0 [15.8, 100.0]")
    assert rows[0]["Δ points"] == "+50.0" and rows[0]["mean thinking (words), closed outputs"] == "2.0 → 1.0"
    assert rows[1]["mean thinking (words), closed outputs"] == "– → 3.0"
    md = "\n".join(report.thinking_markdown(summary))
    assert md.startswith("## Thinking") and "| IFEval (n=2) | 50.0 [1.3, 98.7] → 100.0 [15.8, 100.0] |" in md
    assert report.thinking_table(summary).loc["IFEval (n=2)", "Δ points"] == "+50.0"

    silent = {"answer_mode": "whole", "thinking": thinking_summary({"base": {"ifeval": ["a", "b"]},
                                                                   "trained": {"ifeval": ["c", "d"]}})}
    line = report.thinking_rows(silent)
    assert line == ("The policy does not think: no output of either policy contains `</think>` "
                    "(answer_mode: whole).")
    assert report.thinking_markdown(silent) == ["## Thinking", "", line, ""]
    assert report.thinking_table(silent).data == line
    assert report.thinking_rows({}) is None and report.thinking_markdown({}) == []  # an older summary


# ---------------------------------------------------------------------------------------------------------------
# require_think: no </think>, score 0; the same text behind <think>plan</think>, above 0.

TEXT = "a plain answer without any comma at all"
MATH = "Six apples in all. The answer is \\boxed{6}"
PLAN = "<think>plan</think>"
NO_COMMA = {"id": "punctuation:no_comma", "kind": "hard", "category": "punctuation",
            "description": "Do not use any commas.", "kwargs": {}}


def params(mode="require_think"):
    return params_from_dict({"run": {"device": "cpu", "dtype": "float32"},
                             "model": {"policy": "tiny", "answer_mode": mode}})


def _reward(mode, completion, kind="instruction"):
    reward = make_reward_function(params(mode), scorer=None)  # hard constraints only: no reward model
    if kind == "instruction":
        return reward(["Write."], [completion], kind=["instruction"], level=[1], constraints=[[NO_COMMA]],
                      answer=[None])[0]
    return reward(["Count."], [completion], kind=["reasoning"], level=[None], constraints=[None], answer=["6"])[0]


@pytest.mark.parametrize("kind,text", [("instruction", TEXT), ("reasoning", MATH)])
def test_composite_grpo_reward(kind, text):
    assert _reward("require_think", text, kind) == 0.0
    assert _reward("require_think", PLAN + text, kind) == 1.0
    assert _reward("after_think", text, kind) == 1.0  # the text itself is right: only the missing </think> fails


def test_probe_scoring(tmp_path):
    # run_probe scores its greedy answers with heldout.score_cached and reports summarize(item_scores(rows)).
    items = [{"id": f"p{i}", "kind": "instruction", "level": 1, "prompt": "Write.", "constraints": [NO_COMMA],
              "answer": None} for i in range(2)]
    rows = heldout.score_cached(tmp_path / "probe_before.jsonl", params(), items, [TEXT, PLAN + TEXT], None)
    assert [r["reward"] for r in rows] == [0.0, 1.0]
    assert [r["answer_found"] for r in rows] == [False, True]
    assert summarize(heldout.item_scores(rows[:1]))["reward"] == 0.0
    assert summarize(heldout.item_scores(rows[1:]))["hard_satisfaction"] == 1.0


def test_holdout_verdicts():
    rows = [{"id": f"h{i}-L1", "level": 1, "prompt": "Write.", "constraints": [NO_COMMA]} for i in range(2)]
    verdicts = curriculum_holdout.holdout_verdicts(params(), rows, [TEXT, PLAN + TEXT], scorer=None)
    assert [v["score"] for v in verdicts] == [0.0, 1.0]
    assert curriculum_holdout.aggregate(verdicts[:1])["composite"] == 0.0
    assert curriculum_holdout.aggregate(verdicts[1:])["composite"] == 1.0


def test_ifeval_scoring_entry_and_stage(tmp_path):
    prompt = "Say something without commas."
    records = [ifeval_scoring.PromptRecord(key=k, prompt=prompt, instruction_id_list=["punctuation:no_comma"],
                                           kwargs=[{}])
               for k in (1, 2)]
    responses = [ifeval_scoring.ResponseRecord(response=TEXT, key=1),
                 ifeval_scoring.ResponseRecord(response=PLAN + TEXT, key=2)]
    found = ifeval_scoring.score(records, responses, answer_mode="require_think")
    assert [(r.strict, r.loose) for r in found.rows] == [([False], [False]), ([True], [True])]
    assert ifeval_scoring.score(records[:1], responses[:1], answer_mode="whole").prompt_level_strict == 1.0

    # Stage 07's path: the answers extracted under the mode, written out, scored as `sif ifeval score` does.
    row = {"key": 1, "prompt": prompt, "instruction_id_list": ["punctuation:no_comma"], "kwargs": [{}]}
    (tmp_path / "input.jsonl").write_text(json.dumps(row) + "\n")
    task = IFEvalTask(rows=[row], source="test", input_path=tmp_path / "input.jsonl")
    figures = score_ifeval_stage(RunContext(tmp_path, params()), task,
                                 {"base": {"ifeval": [TEXT]}, "trained": {"ifeval": [PLAN + TEXT]}})
    assert figures["base"]["prompt_strict"] == figures["base"]["prompt_loose"] == 0.0
    assert figures["trained"]["prompt_strict"] == figures["trained"]["prompt_loose"] == 1.0


def test_math_evaluation_with_think_prepended():
    # The bare text scoring 0 under require_think is test_answer_mode.test_ifeval_math_and_repetition's.
    task = math_accuracy.MathTask("t", "test", [{"id": "m", "answer": "6"}, {"id": "n", "answer": "6"}])
    assert math_accuracy.score_responses(task, [PLAN + "\\boxed{6}", PLAN + MATH], "require_think") == [True, True]
