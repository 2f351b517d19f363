"""Stage 05: Kendall tau-b, position consistency, ranking groups, the scoring stage and the reward inspector."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import write_untrained_rm

from sif_lib.config.params import params_from_dict
from sif_lib.constraints import check_constraint
from sif_lib.core import stats
from sif_lib.runner.runs import RunContext
from sif_lib.stages import s05_score_rewards as s05
from sif_lib.stages.s05_analysis import ranking

NO_COMMA = {"id": "punctuation:no_comma", "kind": "hard", "category": "punctuation",
            "description": "Do not use any commas.", "kwargs": {}}
LOWER = {"id": "change_case:english_lowercase", "kind": "hard", "category": "change_case",
         "description": "Write everything in lowercase.", "kwargs": {}}
SHORT = {"id": "length_constraints:number_words", "kind": "hard", "category": "length_constraints",
         "description": "Answer with less than 6 words.", "kwargs": {"num_words": 6, "relation": "less than"}}
TONE = {"id": "tone:formal", "kind": "soft", "category": "Tone and emotion", "description": "Use a formal tone.",
        "kwargs": {}}

INSTRUCTIONS = [
    {"id": "inst-00001", "seed": "Greet the world.", "constraints": [NO_COMMA, TONE, LOWER, SHORT], "prompt": "p1"},
    {"id": "inst-00002", "seed": "One hard only.", "constraints": [NO_COMMA, TONE], "prompt": "p2"},
    {"id": "inst-00003", "seed": "No spread.", "constraints": [NO_COMMA, LOWER], "prompt": "p3"},
    {"id": "inst-00004", "seed": "Two distinct.", "constraints": [LOWER, SHORT], "prompt": "p4"},
]
# Satisfied counts of inst-00001's hard constraints: 0, 1, 2, 3, and a repeat of 3.
RESPONSES = {
    "inst-00001": ["Hello, World this is long text", "Hello world this is a long text", "hello, world",
                   "hello world", "<think>plan</think>tiny answer"],
    "inst-00002": ["alpha", "beta, gamma"],
    "inst-00003": ["Alpha, Beta", "Gamma, Delta"],
    "inst-00004": ["hi there", "THIS IS A MUCH LONGER ANSWER TEXT"],
}


# -- statistics -------------------------------------------------------------------------------------------------


def test_kendall_tau_b_hand_values():
    assert stats.kendall_tau_b([1, 2, 3], [10, 20, 30]) == pytest.approx(1.0)
    assert stats.kendall_tau_b([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    # One discordant pair of three.
    assert stats.kendall_tau_b([3, 2, 1], [0.9, 0.2, 0.5]) == pytest.approx(1 / 3)
    # x = [1, 2, 2, 3], y = [1, 3, 2, 4]: C = 5, D = 0, one pair tied in x: 5 / sqrt(5 * 6).
    assert stats.kendall_tau_b([1, 2, 2, 3], [1, 3, 2, 4]) == pytest.approx(5 / 30 ** 0.5)
    # Ties in the scores: C = 2, D = 0, one tie in y: 2 / sqrt(3 * 2).
    assert stats.kendall_tau_b([3, 2, 1], [0.5, 0.5, 0.1]) == pytest.approx(2 / 6 ** 0.5)
    assert stats.kendall_tau_b([1, 2, 3], [0.4, 0.4, 0.4]) is None
    assert stats.kendall_tau_b([1], [1]) is None


def test_position_consistency_hand_values():
    assert stats.rank_positions([0.9, 0.2, 0.5]) == [1, 3, 2]
    assert stats.rank_positions([0.5, 0.5, 0.1, 0.7]) == [2.5, 2.5, 4, 1]
    assert stats.position_consistency([3, 2, 1], [0.9, 0.2, 0.5]) == pytest.approx(1 / 3)
    assert stats.position_consistency([3, 2, 1], [0.8, 0.5, 0.1]) == pytest.approx(1.0)
    # A tie spans positions 1 and 2, so it matches neither: only the last response is in place.
    assert stats.position_consistency([3, 2, 1], [0.5, 0.5, 0.1]) == pytest.approx(1 / 3)
    assert stats.position_consistency([4, 3, 2, 1], [1, 2, 3, 4]) == 0.0


# -- groups -----------------------------------------------------------------------------------------------------


def _responses():
    return {k: [(f"L{i}#0", r) for i, r in enumerate(v)] for k, v in RESPONSES.items()}


def test_groups_keep_one_response_per_distinct_count():
    groups, stats = ranking.build_groups(INSTRUCTIONS, _responses(), n_groups=10)
    assert [g.instruction_id for g in groups] == ["inst-00001", "inst-00004"]
    first = groups[0]
    assert first.truth == [3, 2, 1, 0]
    assert first.responses == ["hello world", "hello, world", "Hello world this is a long text",
                               "Hello, World this is long text"]
    assert [c["id"] for c in first.constraints] == [NO_COMMA["id"], LOWER["id"], SHORT["id"]]
    assert first.candidates == 5
    assert groups[1].truth == [2, 0]
    assert (stats.with_two_hard, stats.eligible, stats.used, stats.sizes) == (3, 2, 2, {4: 1, 2: 1})
    assert [g.instruction_id for g in ranking.build_groups(INSTRUCTIONS, _responses(), n_groups=1)[0]] == ["inst-00001"]


def test_groups_of_five_spread_over_counts_and_allow_truth_ties():
    groups, stats = ranking.build_groups(INSTRUCTIONS, _responses(), n_groups=10, group_size=5)
    # inst-00004 has only two distinct responses, too few for a group of five.
    assert [g.instruction_id for g in groups] == ["inst-00001"] and stats.sizes == {5: 1}
    assert groups[0].truth == [3, 3, 2, 1, 0]
    assert groups[0].responses[:2] == ["hello world", "<think>plan</think>tiny answer"]
    # Round-robin over counts: with three responses at count 2 and one at 0, a group of 3 takes 2, 0, then 2.
    by_count = {2: [("a", "a", []), ("b", "b", []), ("c", "c", [])], 0: [("z", "z", [])]}
    assert [p[0] for p in ranking._pick(by_count, 3)] == ["a", "b", "z"]


def test_mean_ci_brackets_the_mean_and_narrows_with_more_groups():
    few = stats.mean_ci([1.0, 0.0, 0.5, 1.0, 0.2], n_resamples=500)
    many = stats.mean_ci([1.0, 0.0, 0.5, 1.0, 0.2] * 20, n_resamples=500)
    assert few[0] < 0.54 < few[1] and many[0] < 0.54 < many[1]
    assert many[1] - many[0] < few[1] - few[0]
    assert stats.mean_ci([0.3], n_resamples=500) is None and stats.mean_ci([0.3, 0.3]) == [0.3, 0.3]


def _verifier_scorer(invert: bool = False):
    by_description = {c["description"]: c for c in (NO_COMMA, LOWER, SHORT, TONE)}

    def score(pairs):
        out = []
        for answer, description in pairs:
            c = by_description[description]
            ok = check_constraint(answer, c["id"], c["kwargs"]) if c["kind"] == "hard" else True
            out.append(float(ok != invert))
        return out

    return score


def test_agreement_of_a_perfect_and_an_inverted_scorer():
    groups, _ = ranking.build_groups(INSTRUCTIONS, _responses(), n_groups=10)
    perfect = ranking.agreement(groups, ranking.score_groups(groups, _verifier_scorer()))
    assert perfect["kendall_tau"] == pytest.approx(1.0) and perfect["position_consistency"] == pytest.approx(1.0)
    assert perfect["truth_accuracy"] == 1.0 and perfect["pairs"] == 4 * 3 + 2 * 2 and perfect["groups"] == 2
    inverted = ranking.agreement(groups, ranking.score_groups(groups, _verifier_scorer(invert=True)))
    assert inverted["kendall_tau"] == pytest.approx(-1.0) and inverted["position_consistency"] == 0.0
    assert inverted["truth_accuracy"] == 0.0
    constant = ranking.agreement(groups, ranking.score_groups(groups, lambda pairs: [0.5] * len(pairs)))
    assert constant["kendall_tau"] == 0.0  # undefined tau counts as no information


# -- the stage --------------------------------------------------------------------------------------------------


def _write_run(root: Path) -> None:
    data = root / "data"
    data.mkdir(parents=True)
    (data / "instructions.jsonl").write_text("".join(json.dumps(i) + "\n" for i in INSTRUCTIONS))
    rows = [{"ladder": inst, "id": f"{inst}-L{level}", "level": level, "sample": 0, "prompt": "p", "response": text,
             "model": "tiny", "sampling": {}, "split": "train"}
            for inst, texts in RESPONSES.items() for level, text in enumerate(texts)]
    (data / "rollouts.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


@pytest.fixture(scope="module")
def fresh_rm(tmp_path_factory) -> Path:
    """A reward-model directory with an untrained head: enough to exercise loading and scoring."""
    return write_untrained_rm(tmp_path_factory.mktemp("rm-fresh") / "rm", max_length=96, backbone="tiny",
                              mode="full", data={"eval_parents": ["inst-00004", "inst-00002"]})


def test_scoring_stage_writes_metrics(tmp_path, fresh_rm):
    import shutil

    _write_run(tmp_path)
    shutil.copytree(fresh_rm, tmp_path / "rm")
    params = params_from_dict({"run": {"device": "cpu", "dtype": "float32"}, "model": {"policy": "tiny"},
                               "reward_model": {"max_length": 96},
                               "scoring": {"n_groups": 5, "judge_groups": 1, "judge_max_new_tokens": 4,
                                           "group_size": 0, "bootstrap": 200}})
    ctx = RunContext(tmp_path, params)
    metrics = s05.run(ctx, progress=False)
    saved = ctx.read_metrics("05_score_rewards")
    for key in ("kendall_tau", "position_consistency", "n_groups", "rm_seconds_per_group", "judge_seconds_per_group",
                "ratio", "rm_truth_accuracy", "judge_truth_accuracy", "judge_unparsable"):
        assert key in saved, key
    assert saved["n_groups"] == 2 and saved["judge_groups"] == 1 and saved["judge_pairs"] == 12
    # The averages are those of the per-group records.
    groups = saved["groups"]
    taus = [g["rm_tau"] if g["rm_tau"] is not None else 0.0 for g in groups]
    assert saved["kendall_tau"] == pytest.approx(sum(taus) / len(taus))
    low, high = saved["kendall_tau_ci95"]
    assert min(taus) <= low <= saved["kendall_tau"] <= high <= max(taus)
    assert saved["group_distinct_truth_counts"] == {"2": 1, "4": 1}
    assert saved["rm_pairs"] == 16 and saved["rm_truth_accuracy"] is not None
    assert saved["rm_seconds_per_group"] > 0 and saved["judge_seconds_per_group"] > 0 and saved["ratio"] > 0
    assert isinstance(saved["judge_unparsable"], int) and saved["judge_unparsable"] <= saved["judge_pairs"]
    assert saved["groups"][0]["truth"] == [3, 2, 1, 0] and len(saved["groups"][0]["rm_scores"]) == 4
    assert saved["groups"][0]["judge_scores"] is not None and saved["groups"][1]["judge_scores"] is None
    assert metrics["kendall_tau"] == saved["kendall_tau"]
    assert saved["n_groups_rm_heldout"] == 1 and [g["rm_heldout"] for g in saved["groups"]] == [False, True]
    assert saved["kendall_tau_rm_heldout"] == pytest.approx(saved["groups"][1]["rm_tau"] or 0.0)
    assert "generative judge, 1 judged groups" in s05.ranking_table(saved).index
    assert s05.latency_table(saved).loc["judge / RM time ratio", "seconds per group"] == f"{saved['ratio']:.3f}"
    assert len(s05.groups_table(saved)) == 2


def test_scoring_stage_without_groups(tmp_path, fresh_rm):
    data = tmp_path / "data"
    data.mkdir()
    (data / "instructions.jsonl").write_text(json.dumps(INSTRUCTIONS[1]) + "\n")
    (data / "rollouts.jsonl").write_text(json.dumps({"ladder": "inst-00002", "level": 0, "sample": 0,
                                                     "response": "x"}) + "\n")
    params = params_from_dict({"run": {"device": "cpu"}, "model": {"policy": "tiny"}})
    from sif_lib.reward_model.scorer import RewardScorer

    metrics = s05.run(RunContext(tmp_path, params), scorer=RewardScorer.from_dir(fresh_rm),
                                        progress=False)
    assert metrics["n_groups"] == 0 and metrics["kendall_tau"] is None and "note" in metrics
    assert metrics["n_groups_rm_heldout"] is None
    assert (tmp_path / "metrics" / "05_score_rewards.json").is_file()


# -- the inspector ----------------------------------------------------------------------------------------------


class _FixedScorer:
    def __init__(self, value: float):
        self.value = value
        self.calls: list[list[tuple[str, str]]] = []

    def score(self, pairs):
        self.calls.append(list(pairs))
        return [self.value] * len(pairs)


def test_reward_inspector_programmatic():
    from sif_lib.widgets.reward_inspector import RewardInspector

    scorer = _FixedScorer(0.8)
    inspector = RewardInspector(INSTRUCTIONS, RESPONSES, scorer, answer_mode="after_think")
    inspector.select("inst-00001", 3)  # "hello world": every hard constraint holds
    rows = inspector.scores()
    assert [r["kind"] for r in rows] == ["hard", "soft", "hard", "hard"]
    assert [r["verdict"] for r in rows] == [True, None, True, True]
    assert rows[1]["prob"] == pytest.approx(0.8) and rows[1]["score"] == pytest.approx(0.8)
    assert inspector.reward() == pytest.approx((1 + 0.8 + 1 + 1) / 4)
    assert scorer.calls[-1] == [("hello world", "Use a formal tone.")]
    assert "✓" in inspector.result_view.value and "reward = 0.950" in inspector.result_view.value

    inspector.select("inst-00001", 4)  # the think block is cut before scoring
    assert scorer.calls[-1] == [("tiny answer", "Use a formal tone.")]

    inspector.set_response("Hello, World, this is far too long for the limit")
    assert [r["verdict"] for r in inspector.scores()] == [False, None, False, False]
    assert inspector.reward() == pytest.approx(0.8 / 4)
    assert inspector.response_choice.value == -1 and "✗" in inspector.result_view.value

    inspector.set_response("   ")  # no answer: every constraint scores 0 and the RM is not asked
    assert inspector.reward() == 0.0 and "No answer" in inspector.result_view.value

    inspector.select("inst-00004", 0)
    assert inspector.text.value == "hi there" and len(inspector.scores()) == 2
    with pytest.raises(IndexError):
        inspector.select("inst-00004", 5)
    with pytest.raises(KeyError):
        inspector.select("inst-99999", 0)
    assert type(inspector.widget).__name__ == "VBox"
