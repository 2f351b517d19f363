"""The composite reward against hand-computed values (a fixed-probability scorer stands in for the RM)."""

from __future__ import annotations

import json

import pytest

from sif_lib.config.params import params_from_dict
from sif_lib.reward.composite import (
    CompositeReward,
    completion_text,
    instruction_reward,
    make_reward_function,
    reasoning_reward,
    score_instruction,
    soft_value,
    summarize,
)

NO_COMMA = {"id": "punctuation:no_comma", "kind": "hard", "description": "Do not use any commas.", "kwargs": {}}
LOWER = {"id": "change_case:english_lowercase", "kind": "hard",
         "description": "Write everything in lowercase letters.", "kwargs": {}}
WARM = {"id": "soft:tone:warm", "kind": "soft", "description": "Keep a warm tone.", "kwargs": {}}
SHORT = {"id": "soft:style:concise", "kind": "soft", "description": "Be concise.", "kwargs": {}}
CONSTRAINTS = [NO_COMMA, LOWER, WARM, SHORT]

PROBS = {WARM["description"]: 0.8, SHORT["description"]: 0.3,
         NO_COMMA["description"]: 0.9, LOWER["description"]: 0.6}


class FixedScorer:
    """Test double for the reward model: a fixed probability per constraint description; records its calls."""

    def __init__(self, probs=PROBS):
        self.probs = probs
        self.calls: list[list[tuple[str, str]]] = []

    def score(self, pairs):
        self.calls.append(list(pairs))
        return [self.probs[c] for _, c in pairs]


def reward_fn(scorer, soft="probability", hard="rules", mode="after_think", **kw):
    params = params_from_dict({"model": {"answer_mode": mode}, "grpo": {"soft_reward": soft, "hard_reward": hard}})
    return make_reward_function(params, scorer, **kw)


def instruction_batch(*completions, constraints=CONSTRAINTS, level=4):
    n = len(completions)
    return dict(prompts=[[{"role": "user", "content": "p"}]] * n, completions=list(completions),
                kind=["instruction"] * n, level=[level] * n, constraints=[json.dumps(constraints)] * n,
                answer=[None] * n)


def test_hard_and_soft_mix():
    scorer = FixedScorer()
    fn = reward_fn(scorer)
    rewards = fn(**instruction_batch("hello world", "Hello, World"))
    # both hard satisfied: (1 + 1 + 0.8 + 0.3) / 4; both violated: (0 + 0 + 0.8 + 0.3) / 4
    assert rewards == pytest.approx([0.775, 0.275])
    # One RM call for the whole batch, soft constraints only, on the answers.
    assert len(scorer.calls) == 1
    assert scorer.calls[0] == [("hello world", WARM["description"]), ("hello world", SHORT["description"]),
                               ("Hello, World", WARM["description"]), ("Hello, World", SHORT["description"])]


def test_pure_instruction_reward():
    soft = [None, None, 0.8, 0.3]
    assert instruction_reward("hello world", CONSTRAINTS, soft) == pytest.approx(0.775)
    assert instruction_reward("hello, world", CONSTRAINTS, soft) == pytest.approx((0 + 1 + 0.8 + 0.3) / 4)
    assert instruction_reward("hello world", CONSTRAINTS, soft, soft_reward="binary") == pytest.approx(0.75)
    item = score_instruction("hello, world", CONSTRAINTS, soft, level=4)
    assert item.verdicts() == [False, True]
    assert [c["score"] for c in item.constraints] == pytest.approx([0.0, 1.0, 0.8, 0.3])
    with pytest.raises(ValueError):
        instruction_reward("hello world", CONSTRAINTS, [None, None, None, 0.3])  # a soft one without an RM score


def test_binary_soft_ablation():
    fn = reward_fn(FixedScorer(), soft="binary")
    # 0.8 -> 1 and 0.3 -> 0
    assert fn(**instruction_batch("hello world", "Hello, World")) == pytest.approx([0.75, 0.25])
    assert soft_value(0.5, "binary") == 1.0 and soft_value(0.4999, "binary") == 0.0
    assert soft_value(0.37) == 0.37


def test_reward_model_for_hard_ablation():
    scorer = FixedScorer()
    metrics = {}
    fn = reward_fn(scorer, hard="reward_model")
    rewards = fn(**instruction_batch("Hello, World"), log_metric=lambda k, v: metrics.__setitem__(k, v))
    # The RM's 0.9 and 0.6 replace the verifier's 0 and 0 for the hard constraints.
    assert rewards == pytest.approx([(0.9 + 0.6 + 0.8 + 0.3) / 4])
    assert {c for _, c in scorer.calls[0]} == set(PROBS)
    # The verifier's truth is still logged next to the RM's view of the hard constraints.
    assert metrics["components/hard"] == pytest.approx(0.75)
    assert metrics["components/hard_verifier"] == 0.0


def test_reasoning_items():
    scorer = FixedScorer()
    fn = reward_fn(scorer)
    rewards = fn(prompts=["q"] * 3,
                 completions=["so the total is \\boxed{42}", "I think \\boxed{41}", "no boxed answer: 42"],
                 kind=["reasoning"] * 3, level=[0] * 3, constraints=["[]"] * 3, answer=["42"] * 3)
    assert rewards == [1.0, 0.0, 0.0]
    assert scorer.calls == []
    assert reasoning_reward("\\boxed{3/4}", "0.75") == 1.0
    assert reasoning_reward(None, "1") == 0.0


def test_think_extraction_modes():
    text = "<think>Hmm, let me think, ok.</think>\n\nhello world"
    soft = [None, None, 0.8, 0.3]
    # after_think scores only the answer: the commas inside <think> do not count.
    assert reward_fn(FixedScorer())(**instruction_batch(text)) == pytest.approx([0.775])
    # whole scores everything, so no_comma and lowercase fail.
    assert reward_fn(FixedScorer(), mode="whole")(**instruction_batch(text)) == pytest.approx([0.275])
    # require_think: the same text passes, but without </think> the item scores 0 and the RM is not asked.
    scorer = FixedScorer()
    fn = reward_fn(scorer, mode="require_think")
    assert fn(**instruction_batch(text, "hello world")) == pytest.approx([0.775, 0.0])
    assert [r for r, _ in scorer.calls[0]] == ["hello world", "hello world"]
    # A reasoning item with the right answer but no </think> also scores 0 under require_think.
    assert fn(prompts=["q"], completions=["\\boxed{7}"], kind=["reasoning"], level=[0], constraints=["[]"],
              answer=["7"]) == [0.0]
    assert fn(prompts=["q"], completions=["<think>7</think>\\boxed{7}"], kind=["reasoning"], level=[0],
              constraints=["[]"], answer=["7"]) == [1.0]
    assert instruction_reward("hello world", CONSTRAINTS, soft) == pytest.approx(0.775)


def test_empty_answer_fails_everything():
    scorer = FixedScorer()
    fn = reward_fn(scorer)
    # An empty answer would pass no_comma and lowercase if it were checked; it must not.
    rewards = fn(**instruction_batch("", "   \n", "<think>cut off before the end"))
    assert rewards == [0.0, 0.0, 0.0]
    assert scorer.calls == []
    assert instruction_reward("", CONSTRAINTS, [None] * 4) == 0.0


def test_conversational_completions_and_metrics(tmp_path):
    scorer = FixedScorer()
    log = tmp_path / "rollouts.jsonl"
    fn = reward_fn(scorer, rollout_log=log)
    metrics: dict[str, list[float]] = {}

    class State:
        global_step = 6

    batch = instruction_batch([{"role": "assistant", "content": "hello world"}], "Hello, World", level=2)
    batch["level"] = [2, 1]
    rewards = fn(**batch, trainer_state=State(), log_metric=lambda k, v: metrics.setdefault(k, []).append(v))
    assert rewards == pytest.approx([0.775, 0.275])
    assert completion_text([{"role": "assistant", "content": "a"}, {"role": "assistant", "content": "b"}]) == "ab"
    assert metrics["components/hard"] == [0.5]
    assert metrics["components/soft"] == pytest.approx([(0.8 + 0.3) / 2])
    assert metrics["levels/L2"] == pytest.approx([0.775]) and metrics["levels/L1"] == pytest.approx([0.275])
    assert "components/reasoning_accuracy" not in metrics and "components/hard_verifier" not in metrics
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    assert [r["step"] for r in rows] == [7, 7]
    assert rows[0]["prompt"] == "p" and rows[0]["completion"] == "hello world"
    assert [c["verdict"] for c in rows[1]["constraints"]] == [False, False, None, None]
    assert [c["prob"] for c in rows[1]["constraints"]] == [None, None, 0.8, 0.3]


def test_summarize_components():
    soft = [None, None, 0.8, 0.3]
    scores = [score_instruction("hello world", CONSTRAINTS, soft, level=1),
              score_instruction("", CONSTRAINTS, [None] * 4, level=2)]
    s = summarize(scores)
    assert s["reward"] == pytest.approx((0.775 + 0.0) / 2)
    assert s["hard_satisfaction"] == 0.5  # 2 of 4 hard verdicts
    assert s["soft_prob"] == pytest.approx((0.8 + 0.3 + 0 + 0) / 4)  # unanswered soft constraints count 0
    assert s["no_answer"] == 0.5
    assert s["per_level"]["1"]["reward"] == pytest.approx(0.775) and s["per_level"]["2"]["reward"] == 0.0


def test_repetitive_penalty_subtracts_from_looping_answers_only():
    loop = " ".join(["hello world"] * 12)  # no commas, all lowercase: both hard checks pass
    fluent = "hello world this answer says one thing and then stops without looping over it again and again"
    metrics: dict[str, list[float]] = {}
    plain = reward_fn(FixedScorer())(**instruction_batch(loop, fluent),
                                     log_metric=lambda k, v: metrics.setdefault(k, []).append(v))
    assert plain == pytest.approx([0.775, 0.775])  # the paper's reward cannot tell them apart
    assert metrics["components/repetitive"] == [0.5]
    params = params_from_dict({"grpo": {"repetitive_penalty": 0.5}})
    fn = make_reward_function(params, FixedScorer())
    assert fn(**instruction_batch(loop, fluent)) == pytest.approx([0.275, 0.775])
    scores = fn.score_batch([loop, fluent], ["instruction"] * 2, [1, 1], [CONSTRAINTS] * 2, [None] * 2)
    assert [s.repetitive for s in scores] == [True, False] and scores[0].to_dict()["repetitive"] is True
    assert summarize(scores)["repetitive"] == 0.5
    # A reasoning item that loops is penalised too: 1 for the right answer, minus the penalty.
    looped_answer = " ".join(["so"] * 20) + " \\boxed{4}"
    assert fn([["q"]], [looped_answer], kind=["reasoning"], level=[None], constraints=[None],
              answer=["4"]) == pytest.approx([0.5])
    with pytest.raises(ValueError, match="repetitive_penalty"):
        CompositeReward(None, repetitive_penalty=-1)


def test_degenerate_gate_pays_nothing_for_stuffed_or_looping_answers():
    stuffed = " ".join(["*highlighted section*"] * 30)  # no commas, all lowercase: both hard checks pass
    fluent = "hello world this answer says one thing and then stops without looping over it again and again"
    plain = make_reward_function(params_from_dict({}), FixedScorer())
    assert plain(**instruction_batch(stuffed, fluent)) == pytest.approx([0.775, 0.775])  # the paper's reward
    scores = plain.score_batch([stuffed, fluent], ["instruction"] * 2, [1, 1], [CONSTRAINTS] * 2, [None] * 2)
    assert "stuffed" in scores[0].degenerate and scores[1].degenerate == []  # recorded with the gate off too
    assert scores[0].to_dict()["degenerate"] == scores[0].degenerate
    assert summarize(scores)["degenerate"] == 0.5

    metrics: dict[str, list[float]] = {}
    gated = make_reward_function(params_from_dict({"grpo": {"degenerate_gate": True}}), FixedScorer())
    assert gated(**instruction_batch(stuffed, fluent),
                 log_metric=lambda k, v: metrics.setdefault(k, []).append(v)) == pytest.approx([0.0, 0.775])
    assert metrics["components/degenerate"] == [0.5]
    negative = make_reward_function(params_from_dict({"grpo": {"degenerate_gate": True, "degenerate_reward": -0.5}}),
                                    FixedScorer())
    assert negative(**instruction_batch(stuffed, fluent)) == pytest.approx([-0.5, 0.775])
    # Math is not gated: a bare boxed answer is short by design, and still earns its 1.
    assert gated([["q"]], ["\\boxed{4}"], kind=["reasoning"], level=[None], constraints=[None],
                 answer=["4"]) == pytest.approx([1.0])


HIGHLIGHT = {"id": "detectable_format:number_highlighted_sections", "kind": "hard",
             "description": "Highlight at least 1 section with markdown.", "kwargs": {"num_highlights": 1}}


def test_marker_scope_unpays_only_the_rules_met_by_stuffing():
    constraints = [HIGHLIGHT, NO_COMMA, WARM]
    probs = {**PROBS, HIGHLIGHT["description"]: 0.5}
    copied = "the garden was quiet in the morning and the birds sang softly\n*highlighted section*"
    honest = "the garden was *quiet* in the morning and the birds sang softly over the wet grass"
    looped = " ".join(["*highlighted section*"] * 30)
    batch = instruction_batch(copied, honest, looped, constraints=constraints)
    whole = make_reward_function(params_from_dict({"grpo": {"degenerate_gate": True}}), FixedScorer(probs))
    assert whole(**batch) == pytest.approx([0.0, (1 + 1 + 0.8) / 3, 0.0])
    marker = make_reward_function(params_from_dict({"grpo": {"degenerate_gate": True, "degenerate_scope": "marker"}}),
                                  FixedScorer(probs))
    # The copied example no longer meets the highlight rule, but its comma-free prose is still paid; a loop
    # (a text fault) is still gated whole.
    assert marker(**batch) == pytest.approx([(0 + 1 + 0.8) / 3, (1 + 1 + 0.8) / 3, 0.0])
    scores = marker.score_batch([copied], ["instruction"], [1], [constraints], [None])
    assert scores[0].stripped and scores[0].degenerate == ["template_copy"]
    assert [c["verdict"] for c in scores[0].constraints if c["kind"] == "hard"] == [False, True]
    with pytest.raises(ValueError, match="degenerate_scope"):
        CompositeReward(None, degenerate_scope="everything")
