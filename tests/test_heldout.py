"""The held-out scorer the GRPO probe and the evaluation share, and its cache: scores are reused only while the
answers, the reward settings and the reward model are the ones they were made with."""

from __future__ import annotations

import pytest
from conftest import write_untrained_rm

from sif_lib.config.params import params_from_dict
from sif_lib.reward import heldout
from sif_lib.reward.composite import summarize
from sif_lib.reward_model.scorer import RewardScorer

NO_COMMA = {"id": "punctuation:no_comma", "kind": "hard", "category": "punctuation", "description": "No commas.",
            "kwargs": {}}
FORMAL = {"id": "soft:tone:formal", "kind": "soft", "category": "Tone and emotion", "description": "Be formal."}
ROWS = [{"id": f"h{i}-L2", "level": 2, "prompt": f"Prompt {i}.", "constraints": [NO_COMMA, FORMAL]} for i in range(3)]
ANSWERS = ["plain words here", "words, with commas", "<think>hm</think>"]


class Counting:
    """A real (untrained) reward model that counts the pairs it is asked about."""

    def __init__(self, inner):
        self.inner, self.pairs = inner, 0
        self.fingerprint = inner.fingerprint

    def score(self, pairs):
        self.pairs += len(pairs)
        return self.inner.score(pairs)


@pytest.fixture(scope="module")
def rm(tmp_path_factory):
    return RewardScorer.from_dir(write_untrained_rm(tmp_path_factory.mktemp("rm") / "rm"), device="cpu")


def params(**grpo):
    return params_from_dict({"run": {"device": "cpu", "dtype": "float32"}, "grpo": grpo})


def test_score_cache_is_keyed_by_answers_reward_settings_and_reward_model(tmp_path, rm):
    items = heldout.items_from_curriculum(ROWS)
    path = tmp_path / "probe.jsonl"
    scorer = Counting(rm)
    first = heldout.score_cached(path, params(), items, ANSWERS, scorer)
    asked = scorer.pairs
    assert asked == 2  # the soft constraint of the two answered prompts; "<think>hm</think>" has no answer
    assert heldout.score_cached(path, params(), items, ANSWERS, scorer) == first and scorer.pairs == asked
    # Each of these changes a score, so each rescores.
    heldout.score_cached(path, params(soft_reward="binary"), items, ANSWERS, scorer)
    assert scorer.pairs == 2 * asked
    heldout.score_cached(path, params(soft_reward="binary", repetitive_penalty=0.5), items, ANSWERS, scorer)
    assert scorer.pairs == 3 * asked
    heldout.score_cached(path, params(soft_reward="binary", repetitive_penalty=0.5), items,
                         ["other words", *ANSWERS[1:]], scorer)
    assert scorer.pairs == 4 * asked
    scorer.fingerprint = "rm:retrained"
    heldout.score_cached(path, params(soft_reward="binary", repetitive_penalty=0.5), items,
                         ["other words", *ANSWERS[1:]], scorer)
    assert scorer.pairs == 5 * asked
    # A damaged cache is rescored, not trusted.
    path.write_text("not json\n")
    heldout.score_cached(path, params(soft_reward="binary", repetitive_penalty=0.5), items,
                         ["other words", *ANSWERS[1:]], scorer)
    assert scorer.pairs == 6 * asked


def test_probe_and_evaluation_read_the_same_scores(rm):
    """The probe summarises the rows the evaluation turns into verdicts: one scoring, two views."""
    from sif_lib.evaluation.curriculum_holdout import aggregate, holdout_verdicts

    rows = heldout.score(params(), heldout.items_from_curriculum(ROWS), ANSWERS, rm)
    summary = summarize(heldout.item_scores(rows))
    verdicts = holdout_verdicts(params(), ROWS, ANSWERS, rm)
    assert verdicts == heldout.constraint_verdicts(rows)
    figures = aggregate(verdicts)
    assert figures["hard"] == pytest.approx(summary["hard_satisfaction"]) == pytest.approx(1 / 3)
    # aggregate() rounds its means to 6 decimals and the summary does not: they agree to 5e-7 absolute, which
    # pytest.approx's default (1e-6 relative) does not always allow.
    assert figures["soft"] == pytest.approx(summary["soft_prob"], abs=1e-6)
    assert figures["composite"] == pytest.approx(summary["reward"], abs=1e-6)


def test_without_a_reward_model_soft_constraints_stay_unscored():
    rows = heldout.score(params(), heldout.items_from_curriculum(ROWS), ANSWERS, None)
    verdicts = heldout.constraint_verdicts(rows, soft_scored=False)
    assert [v["score"] for v in verdicts if v["kind"] == "soft"] == [None] * 3
    assert [v["score"] for v in verdicts if v["kind"] == "hard"] == [1.0, 0.0, 0.0]
    assert [r["reward"] for r in rows] == [1.0, 0.0, 0.0]  # over hard constraints only
