"""``model.answer_mode`` governs every place that reads an answer, and chat templates get the thinking switch
only when they have one.

One thinking response (commas in its reasoning, none in its answer) and one response without ``</think>``
(a comma in it) go through each reader: the reward (and so the probe), the reward model's input in training and
evaluation, the pseudo-label verifier, the hold-out, IFEval, math, the repetition diagnostic and the judge.
Each must read the text after ``</think>`` under after_think / require_think and the whole text under whole;
under require_think a response without ``</think>`` has no answer and fails.
"""

from __future__ import annotations

import json

import pytest

from sif_lib.config.params import params_from_dict
from sif_lib.constraints.repetition import is_repetitive
from sif_lib.core.io import read_jsonl
from sif_lib.evaluation import curriculum_holdout, math_accuracy
from sif_lib.evaluation.benchmarks import IFEvalTask
from sif_lib.evaluation.scores import score_ifeval_stage
from sif_lib.labels.pseudo_labels import hard_verifier
from sif_lib.policy.generation import render_prompt, template_kwargs
from sif_lib.reward import heldout
from sif_lib.reward_model.rm_eval import evaluate_pairs
from sif_lib.reward_model.rm_input import answered_pairs
from sif_lib.runner.runs import RunContext
from sif_lib.stages.s05_analysis.judge import GenerativeJudge

THINKING = "<think>First, a plan, with commas, and more.</think>\n\nA plain answer without any comma at all"
ANSWER = "A plain answer without any comma at all"
NO_THINK = "A plain answer, with a comma"
NO_COMMA = {"id": "punctuation:no_comma", "kind": "hard", "description": "Do not use any commas.", "kwargs": {}}
FORMAL = {"id": "tone:formal", "kind": "soft", "category": "Tone and emotion", "description": "Be formal."}
MODES = ["after_think", "whole", "require_think"]

# What each mode must make of the two responses: the text read (None: no answer), and the no-comma verdict.
EXPECTED = {
    "after_think": {THINKING: (ANSWER, True), NO_THINK: (NO_THINK, False)},
    "whole": {THINKING: (THINKING, False), NO_THINK: (NO_THINK, False)},
    "require_think": {THINKING: (ANSWER, True), NO_THINK: (None, False)},
}


class RecordingScorer:
    """Passes pairs to a real reward model (an untrained tiny one) and records what it was asked."""

    def __init__(self, inner):
        self.inner, self.seen = inner, []

    def score(self, pairs):
        self.seen.extend(pairs)
        return self.inner.score(pairs)


@pytest.fixture(scope="module")
def rm(tmp_path_factory):
    from conftest import write_untrained_rm

    from sif_lib.reward_model.scorer import RewardScorer

    root = tmp_path_factory.mktemp("rm")
    return RewardScorer.from_dir(write_untrained_rm(root), device="cpu")


def params(mode):
    return params_from_dict({"run": {"device": "cpu", "dtype": "float32"}, "model": {"policy": "tiny",
                                                                                      "answer_mode": mode}})


@pytest.mark.parametrize("mode", MODES)
def test_reward_and_probe(mode, rm):
    scorer = RecordingScorer(rm)
    items = [{"id": f"p{i}", "kind": "instruction", "level": 2, "prompt": "Write.", "answer": None,
              "constraints": [NO_COMMA, FORMAL]} for i in range(2)]
    rows = heldout.score(params(mode), items, [THINKING, NO_THINK], scorer)
    for row, response in zip(rows, [THINKING, NO_THINK]):
        text, verdict = EXPECTED[mode][response]
        assert row["constraints"][0]["verdict"] is verdict
        assert row["answer_found"] is (text is not None)
    assert [r for r, _ in scorer.seen] == [t for t, _ in (EXPECTED[mode][THINKING], EXPECTED[mode][NO_THINK])
                                           if t is not None]


def _pair_row(response, label, parent):
    return {"pair_id": f"{parent}-{label}", "parent": parent, "level": 1, "kind": "hard", "constraint": NO_COMMA,
            "response": response, "label": label, "source_level": 1 - label, "verifier": None}


@pytest.mark.parametrize("mode", MODES)
def test_reward_model_input_in_training_and_evaluation(mode, rm):
    rows = [_pair_row(THINKING, 1, "a"), _pair_row(NO_THINK, 0, "b")]
    kept, pairs = answered_pairs(rows, mode)
    expected = [EXPECTED[mode][r["response"]][0] for r in rows]
    assert [p for p, _ in pairs] == [t for t in expected if t is not None]
    assert len(kept) == len(pairs)
    scorer = RecordingScorer(rm)
    figures = evaluate_pairs(scorer, rows, mode)
    assert [r for r, _ in scorer.seen] == [t for t in expected if t is not None]
    assert figures["eval_pairs_without_answer"] == expected.count(None)


@pytest.mark.parametrize("mode", MODES)
def test_pseudo_label_verifier_and_holdout(mode, rm):
    verify = hard_verifier(mode)
    for response in (THINKING, NO_THINK):
        assert verify(response, NO_COMMA) is EXPECTED[mode][response][1]
    scorer = RecordingScorer(rm)
    row = {"id": "h-L2", "level": 2, "constraints": [NO_COMMA, FORMAL]}
    verdicts = curriculum_holdout.holdout_verdicts(params(mode), [row, row], [THINKING, NO_THINK], scorer)
    hard = [v["score"] for v in verdicts if v["kind"] == "hard"]
    assert hard == [float(EXPECTED[mode][r][1]) for r in (THINKING, NO_THINK)]
    assert [r for r, _ in scorer.seen] == [t for t in (EXPECTED[mode][THINKING][0], EXPECTED[mode][NO_THINK][0])
                                           if t is not None]


@pytest.mark.parametrize("mode", MODES)
def test_ifeval_math_and_repetition(mode, tmp_path):
    ctx = RunContext(tmp_path, params(mode))
    row = {"key": 1, "prompt": "Say something without commas.", "instruction_id_list": ["punctuation:no_comma"],
           "kwargs": [{}]}
    (tmp_path / "input.jsonl").write_text(json.dumps(row) + "\n")
    task = IFEvalTask(rows=[row], source="test", input_path=tmp_path / "input.jsonl")
    figures = score_ifeval_stage(ctx, task, {"base": {"ifeval": [THINKING]}, "trained": {"ifeval": [NO_THINK]}})
    assert figures["base"]["prompt_strict"] == float(EXPECTED[mode][THINKING][1])
    assert figures["trained"]["prompt_strict"] == 0.0
    saved = read_jsonl(tmp_path / "eval" / "ifeval_base" / "responses.jsonl")
    assert saved[0]["response"] == (EXPECTED[mode][THINKING][0] or "")

    math = math_accuracy.MathTask("t", "test", [{"id": "m", "answer": "6"}])
    # A boxed number in the reasoning is not the answer: only the whole-text reading counts it.
    thought = "<think>Six apples: \\boxed{6}</think> The answer is the number of apples."
    assert math_accuracy.score_responses(math, [thought], mode) == [mode == "whole"]
    assert math_accuracy.score_responses(math, ["\\boxed{6}"], mode) == [mode != "require_think"]

    loop = "<think>" + "again and again " * 30 + "</think> A short, varied, and fluent answer."
    from sif_lib.evaluation.scores import scored_answers

    assert is_repetitive(scored_answers([loop], mode)[0]) is (mode == "whole")


class FixedOutputs:
    """A generator that answers every prompt with one fixed text: the judge's parsing is what is tested."""

    def __init__(self, text, tokenizer):
        self.text, self.tokenizer = text, tokenizer

    def generate(self, prompts, sampling, batch_size=16):
        return [self.text] * len(prompts)


@pytest.mark.parametrize("mode", MODES)
def test_judge_reads_its_verdict_from_the_answer(mode):
    from sif_lib.policy import models

    tokenizer = models.load_tokenizer("tiny")
    # A digit in the reasoning is not a verdict: the answer part ("Yes.") holds none, so it is unparsable (0).
    judge = GenerativeJudge(FixedOutputs("<think>It meets it, so 1.</think> Yes.", tokenizer), answer_mode=mode)
    assert judge.judge([("response", "constraint")]) == [1 if mode == "whole" else 0]
    assert judge.unparsable == (0 if mode == "whole" else 1)
    judge = GenerativeJudge(FixedOutputs("The verdict: 1", tokenizer), answer_mode=mode)
    assert judge.judge([("response", "constraint")]) == [0 if mode == "require_think" else 1]
    assert judge.unparsable == (1 if mode == "require_think" else 0)


QWEN3_STYLE = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
               "{% if add_generation_prompt %}<|im_start|>assistant\n"
               "{% if enable_thinking is defined and enable_thinking is false %}<think>\n\n</think>\n\n{% endif %}"
               "{% endif %}")


def test_thinking_switch_reaches_templates_that_have_one_only(tmp_path):
    from sif_lib.grpo.config import make_grpo_config
    from sif_lib.policy import models

    smol = models.load_tokenizer("tiny")
    qwen = models.load_tokenizer("tiny")
    qwen.chat_template = QWEN3_STYLE
    assert template_kwargs(smol, False) == {} and template_kwargs(smol, True) == {}
    assert template_kwargs(qwen, None) == {}
    assert template_kwargs(qwen, False) == {"enable_thinking": False}
    assert render_prompt(qwen, "Hi", enable_thinking=False).endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")
    assert render_prompt(qwen, "Hi", enable_thinking=True).endswith("<|im_start|>assistant\n")
    assert render_prompt(smol, "Hi", enable_thinking=False) == render_prompt(smol, "Hi")
    # The trainer renders its prompts with the same switch.
    p = params_from_dict({"run": {"device": "cpu", "dtype": "float32"}, "model": {"enable_thinking": False}})
    args = make_grpo_config(p, tmp_path, chat_template_kwargs=template_kwargs(qwen, p.model.enable_thinking))
    assert args.chat_template_kwargs == {"enable_thinking": False}
    assert make_grpo_config(p, tmp_path, chat_template_kwargs=template_kwargs(smol, False)).chat_template_kwargs is None
