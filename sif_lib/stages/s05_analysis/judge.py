"""A generative judge on the policy's backbone: the slow alternative the reward model is compared with.

The paper's Table 6 compares its classifier with an LLM judge that answers 1/0 per constraint (QwQ-32B). Here
the judge is the policy model itself, prompted per (response, constraint) to give a one-sentence rationale and
end with a 1 or 0 verdict, decoded greedily with ``scoring.judge_max_new_tokens`` tokens. The verdict is the
last standalone 0 or 1 in its output; an output without one counts as 0 and is counted as unparsable, since a
reward pipeline has to do *something* with it and 0 is what it would do.

A reasoning model judging thinks first: its verdict is read from the answer part of its output
(``model.answer_mode``), so under ``require_think`` an output without ``</think>`` is unparsable.

Like the reward model, the judge sees only the response (cut to ``reward_model.max_length`` tokens, the RM's
budget) and the constraint, never the instruction, so the two are compared on the same information.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from sif_lib.config.params import Params
from sif_lib.constraints.extraction import answer_text
from sif_lib.policy.generation import ChatGenerator, Sampling

JUDGE_PROMPT = (
    "Does the response below satisfy the constraint?\n\n"
    "Response:\n{response}\n\n"
    "Constraint: {constraint}\n\n"
    "Give a one-sentence rationale, then end with your verdict as a single digit: "
    "1 if the response satisfies the constraint, 0 if it does not."
)

# A 0 or 1 that is not part of a longer number ("10", "0.5", "2021").
_VERDICT = re.compile(r"(?<![\d.])[01](?!\d|\.\d)")


def parse_verdict(text: str) -> int | None:
    """The last standalone 0/1 in ``text``; None when there is none."""
    found = _VERDICT.findall(text or "")
    return int(found[-1]) if found else None


class GenerativeJudge:
    """Judges (response, constraint) pairs with a chat model; ``score`` matches the reward scorers' interface."""

    def __init__(self, generator: Any, max_new_tokens: int = 24, batch_size: int = 16,
                 max_response_tokens: int | None = None, answer_mode: str = "whole"):
        self.generator = generator
        self.answer_mode = answer_mode
        self.max_new_tokens = max_new_tokens
        self.batch_size = max(1, batch_size)
        self.max_response_tokens = max_response_tokens
        self.unparsable = 0
        self.judged = 0
        self.last_outputs: list[str] = []

    @classmethod
    def from_params(cls, params: Params) -> GenerativeJudge:
        generator = ChatGenerator(params.model.policy, backend=params.rollouts.backend, dtype=params.run.dtype,
                                  device=params.run.device, system_prompt=params.model.system_prompt,
                                  enable_thinking=params.model.enable_thinking)
        return cls(generator, max_new_tokens=params.scoring.judge_max_new_tokens, batch_size=params.scoring.batch_size,
                   max_response_tokens=params.reward_model.max_length, answer_mode=params.model.answer_mode)

    def prompt(self, response: str, constraint: str) -> str:
        return JUDGE_PROMPT.format(response=self._cut(response), constraint=constraint)

    def _cut(self, response: str) -> str:
        if self.max_response_tokens is None:
            return response
        tokenizer = self.generator.tokenizer
        enc = tokenizer(response, add_special_tokens=False, return_offsets_mapping=getattr(tokenizer, "is_fast", False))
        ids = enc["input_ids"]
        if len(ids) <= self.max_response_tokens:
            return response
        if enc.get("offset_mapping") is not None:
            return response[:enc["offset_mapping"][self.max_response_tokens - 1][1]]
        return tokenizer.decode(ids[:self.max_response_tokens], skip_special_tokens=True)

    def judge(self, pairs: Sequence[tuple[str, str]]) -> list[int]:
        """0/1 verdicts in input order; unparsable outputs become 0 and are counted in ``self.unparsable``."""
        prompts = [self.prompt(r, c) for r, c in pairs]
        outputs = self.generator.generate(prompts, Sampling(max_new_tokens=self.max_new_tokens, temperature=0.0),
                                          batch_size=self.batch_size) if prompts else []
        self.last_outputs = outputs
        verdicts = []
        for text in outputs:
            # A thinking judge's verdict is in its answer, not among the digits of its reasoning.
            verdict = parse_verdict(answer_text(text, self.answer_mode))
            if verdict is None:
                self.unparsable += 1
                verdict = 0
            verdicts.append(verdict)
        self.judged += len(verdicts)
        return verdicts

    def score(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        return [float(v) for v in self.judge(pairs)]
