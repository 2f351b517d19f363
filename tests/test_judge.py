"""The generative judge: verdict parsing, prompting and a run on the tiny model."""

from __future__ import annotations

import pytest

from sif_lib.config.params import params_from_dict
from sif_lib.stages.s05_analysis.judge import JUDGE_PROMPT, GenerativeJudge, parse_verdict


@pytest.mark.parametrize("text, verdict", [
    ("The response has no commas. Verdict: 1", 1),
    ("It uses commas, so 0.", 0),
    ("1 because it starts well, but the end fails: 0", 0),
    ("Rationale: fine.\n1\n", 1),
    ("I would say 0 then change my mind: 1.", 1),
    ("Score: 10/10", None),
    ("probability 0.5", None),
    ("Written in 2021.", None),
    ("It does.", None),
    ("", None),
    ("**1**", 1),
    ("verdict=0", 0),
])
def test_parse_verdict(text, verdict):
    assert parse_verdict(text) == verdict


class _Tokenizer:
    is_fast = False

    def __call__(self, text, add_special_tokens=False, return_offsets_mapping=False):
        return {"input_ids": text.split()}

    def decode(self, ids, skip_special_tokens=True):
        return " ".join(ids)


class _Generator:
    def __init__(self, outputs):
        self.outputs = outputs
        self.tokenizer = _Tokenizer()
        self.prompts = []

    def generate(self, prompts, sampling, batch_size=16, on_batch=None):
        self.prompts.extend(prompts)
        assert sampling.temperature == 0.0 and sampling.max_new_tokens == 12
        return self.outputs[:len(prompts)]


def test_judge_counts_unparsable_verdicts_as_zero():
    generator = _Generator(["Fine. 1", "No idea", "Fails: 0"])
    judge = GenerativeJudge(generator, max_new_tokens=12, max_response_tokens=3)
    pairs = [("one two three four five", "Be brief."), ("a b", "Use b."), ("c", "Use d.")]
    assert judge.judge(pairs) == [1, 0, 0]
    assert judge.unparsable == 1 and judge.judged == 3
    assert generator.prompts[0] == JUDGE_PROMPT.format(response="one two three", constraint="Be brief.")
    assert "Response:\na b\n" in generator.prompts[1]
    assert judge.score(pairs[:1]) == [1.0]


def test_judge_on_the_tiny_model():
    params = params_from_dict({"run": {"device": "cpu", "dtype": "float32"}, "model": {"policy": "tiny"},
                               "reward_model": {"max_length": 32},
                               "scoring": {"judge_max_new_tokens": 6, "batch_size": 2}})
    judge = GenerativeJudge.from_params(params)
    pairs = [("alpha beta " * 40, "Do not use commas."), ("gamma", "Write formally."), ("delta", "Be kind.")]
    verdicts = judge.judge(pairs)
    assert len(verdicts) == 3 and set(verdicts) <= {0, 1}
    assert len(judge.last_outputs) == 3 and judge.judged == 3
    assert judge.unparsable == sum(parse_verdict(t) is None for t in judge.last_outputs)
    # The long response was cut to the reward model's token budget before prompting.
    assert len(judge.generator.tokenizer(judge._cut("alpha beta " * 40), add_special_tokens=False)["input_ids"]) <= 32
