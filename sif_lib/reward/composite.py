"""The composite self-supervised reward (paper section 5), as a TRL reward function.

An **instruction item** scores the mean over its constraints of r_i:

* a hard constraint: 1 or 0 from the code verifier (``grpo.hard_reward: rules``), or the reward model's
  probability (``grpo.hard_reward: reward_model``, the paper's ablation that invites reward hacking);
* a soft constraint: the reward model's probability R_s(o, c) = softmax(logits)[1]
  (``grpo.soft_reward: probability``), or its 0/1 threshold at 0.5 (``binary``, the paper's ablation).

A **reasoning item** scores 1 for the exact final answer (the last ``\\boxed{}``), 0 otherwise.

Only the *answer* part of a completion is scored (``model.answer_mode``): for a ``<think>`` model the text after
``</think>``. An empty answer, or a missing ``</think>`` in ``require_think`` mode, fails every constraint and
every reasoning item; the reward model is not even asked.

``make_reward_function(params, scorer)`` returns one callable for ``trl.GRPOTrainer``. It scores the whole
batch with a single reward-model call, and reports the components through TRL's ``log_metric`` hook, so they
appear in the trainer's log history next to TRL's own ``reward``:

* ``components/hard``: mean scored value over the batch's hard constraints;
* ``components/hard_verifier``: the verifier's verdicts, logged when the RM scores hard constraints (it shows
  whether a rising RM score is real);
* ``components/soft``: mean scored value over soft constraints (probabilities, or 0/1 under ``binary``);
* ``components/reasoning_accuracy``, ``components/no_answer`` and ``levels/L<k>`` (reward per level);
* ``components/repetitive``: the share of completions whose answer loops (:mod:`sif_lib.constraints.repetition`);
* ``timing/reward_s``: the seconds this call took (the reward model's forward passes, mostly).

Beyond the paper, two guards against degenerate text, both off by default (the reward is then the paper's). A
small policy can meet rule checks with degenerate loops (``*highlighted section*`` thirty times has highlights
and no comma), and a small reward model does not always punish them:

* ``grpo.degenerate_gate``: an instruction answer that :mod:`sif_lib.constraints.degenerate` calls degenerate
  (near-empty, looping, ending in a loop, a marker or required phrase stuffed) scores ``grpo.degenerate_reward``
  (0 by default) instead of its composite. Still self-supervised: a rule on the text, no model and no label.
  Every scored item records its ``degenerate`` reasons, gate or not, and ``components/degenerate`` logs the share.
  ``grpo.degenerate_scope: marker`` narrows the gate: a looping or near-empty answer still scores
  ``degenerate_reward``, but one whose only fault is a stuffed marker or a copied example (``*highlighted
  section*``) has its rules checked again without those markers, so only the rules they met go unpaid. Zeroing
  the whole answer taught a small policy to write no highlights, placeholders or bullets at all.
* ``grpo.repetitive_penalty`` (older, weaker): subtracts a fixed amount when over half the answer's word 4-grams
  repeat.

One function rather than several weighted ones keeps the composite exactly the paper's mean over an item's
constraints; the component means are diagnostics, not summands. A component absent from a batch (no reasoning
item, say) is not logged for that step, and with several training processes TRL averages the processes' batch
means without weighting them by size. The scoring helpers
(``instruction_reward``, ``score_instruction``, ``reasoning_reward``) are pure and tested on their own.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sif_lib.config.params import Params
from sif_lib.constraints import check_constraints, extract_answer
from sif_lib.constraints.degenerate import TEXT_REASONS, degeneration, near_empty, strip_stuffing
from sif_lib.constraints.math_answer import score_reasoning
from sif_lib.constraints.repetition import is_repetitive

SOFT_THRESHOLD = 0.5


# ---------------------------------------------------------------------------------------------------------------
# Text handling

def completion_text(completion: Any) -> str:
    """A completion as text: TRL passes a string, or a list of chat messages for conversational datasets."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, dict):
        return str(completion.get("content") or "")
    if isinstance(completion, (list, tuple)):
        parts = [m.get("content") or "" for m in completion
                 if isinstance(m, dict) and m.get("role", "assistant") == "assistant"]
        return "".join(str(p) for p in parts)
    return "" if completion is None else str(completion)


def prompt_text(prompt: Any) -> str:
    """The user turn of a prompt (string, or chat messages) for logs."""
    if isinstance(prompt, str):
        return prompt
    if isinstance(prompt, (list, tuple)):
        users = [m.get("content") or "" for m in prompt if isinstance(m, dict) and m.get("role") == "user"]
        return str(users[-1]) if users else ""
    return "" if prompt is None else str(prompt)


def extract(text: str, answer_mode: str) -> str | None:
    """The scored part of a response, or None when there is none (missing ``</think>`` in require_think mode,
    or nothing but whitespace)."""
    answer = extract_answer(text, answer_mode)
    if answer is None:
        return None
    answer = answer.strip()
    return answer or None


# ---------------------------------------------------------------------------------------------------------------
# Pure scoring helpers

def soft_value(probability: float, soft_reward: str = "probability") -> float:
    """The reward-model probability, or its 0/1 threshold for the binary ablation."""
    if soft_reward == "binary":
        return 1.0 if probability >= SOFT_THRESHOLD else 0.0
    if soft_reward != "probability":
        raise ValueError(f"soft_reward must be 'probability' or 'binary', got {soft_reward!r}")
    return float(probability)


def rm_scored(constraint: dict, hard_reward: str = "rules") -> bool:
    """Whether the reward model scores this constraint: every soft one, and hard ones under the RM ablation."""
    return constraint.get("kind") != "hard" or hard_reward == "reward_model"


def hard_verdicts(answer: str | None, constraints: Sequence[dict]) -> list[bool]:
    """The verifier's verdict on each hard constraint (an empty answer fails all of them)."""
    hard = [c for c in constraints if c.get("kind") == "hard"]
    if not hard:
        return []
    if not answer:
        return [False] * len(hard)
    # The answer is already extracted, so the verifier reads it whole.
    return [bool(v) for v in check_constraints(answer, hard, answer_mode="whole")]


@dataclass
class ItemScore:
    """One scored completion. ``constraints`` holds a row per constraint: id, kind, description, the verifier's
    ``verdict`` (hard only), the RM ``prob`` (where the RM was asked) and the ``score`` that entered the mean."""

    kind: str
    reward: float
    answer_found: bool
    level: int | None = None
    constraints: list[dict] = field(default_factory=list)
    correct: bool | None = None
    repetitive: bool = False
    degenerate: list[str] = field(default_factory=list)
    stripped: bool = False  # scored on the answer with stuffed markers removed (grpo.degenerate_scope "marker")

    def values(self, kind: str) -> list[float]:
        return [c["score"] for c in self.constraints if c["kind"] == kind]

    def verdicts(self) -> list[bool]:
        return [c["verdict"] for c in self.constraints if c["kind"] == "hard"]

    def probs(self, kind: str = "soft") -> list[float]:
        return [c["prob"] for c in self.constraints if c["kind"] == kind and c["prob"] is not None]

    def to_dict(self) -> dict:
        return {"kind": self.kind, "level": self.level, "reward": self.reward, "answer_found": self.answer_found,
                "correct": self.correct, "repetitive": self.repetitive, "degenerate": self.degenerate,
                "stripped": self.stripped, "constraints": self.constraints}


def score_instruction(answer: str | None, constraints: Sequence[dict], soft_scores: Sequence[float | None],
                      soft_reward: str = "probability", hard_reward: str = "rules",
                      verdicts: Sequence[bool] | None = None, level: int | None = None) -> ItemScore:
    """Score an instruction item.

    ``soft_scores[i]`` is the reward model's probability for constraint i wherever the RM scores it
    (see ``rm_scored``), else None. ``verdicts`` (one per hard constraint, in order) may be passed when already
    computed. The reward is the mean of the per-constraint scores; an item without constraints scores 0.
    """
    if len(soft_scores) != len(constraints):
        raise ValueError(f"soft_scores has {len(soft_scores)} entries for {len(constraints)} constraints")
    if verdicts is None:
        verdicts = hard_verdicts(answer, constraints)
    verdict_iter = iter(verdicts)
    rows = []
    for constraint, prob in zip(constraints, soft_scores):
        kind = "hard" if constraint.get("kind") == "hard" else "soft"
        verdict = next(verdict_iter) if kind == "hard" else None
        if not answer:
            score, prob = 0.0, None
        elif rm_scored(constraint, hard_reward):
            if prob is None:
                raise ValueError(f"constraint {constraint.get('id')!r} needs a reward-model probability")
            # The binary threshold is the soft-reward ablation; RM-scored hard constraints keep the probability.
            score = soft_value(prob, soft_reward) if kind == "soft" else float(prob)
        else:
            score = 1.0 if verdict else 0.0
        rows.append({"id": constraint.get("id"), "kind": kind, "category": constraint.get("category"),
                     "description": constraint.get("description", ""),
                     "verdict": verdict, "prob": None if prob is None else float(prob), "score": score})
    reward = sum(r["score"] for r in rows) / len(rows) if rows else 0.0
    return ItemScore(kind="instruction", reward=reward, answer_found=bool(answer), level=level, constraints=rows)


def instruction_reward(answer: str | None, constraints: Sequence[dict], soft_scores: Sequence[float | None],
                       soft_reward: str = "probability", hard_reward: str = "rules") -> float:
    """The composite reward of an instruction item: the mean over its constraints (see ``score_instruction``)."""
    return score_instruction(answer, constraints, soft_scores, soft_reward, hard_reward).reward


def reasoning_reward(answer: str | None, gold: Any) -> float:
    """1.0 for the exact final answer in the (extracted) response, else 0.0."""
    if not answer:
        return 0.0
    return float(score_reasoning(answer, gold))


def summarize(scores: Iterable[ItemScore]) -> dict:
    """Component means over scored items: what the TRL metrics and the probe report.

    ``hard`` and ``soft`` average the scores that entered the reward; ``hard_satisfaction`` is the verifier's
    rate and ``soft_prob`` the raw RM probability, both independent of the ablation switches.
    """
    scores = list(scores)
    out: dict[str, Any] = {"n": len(scores)}

    def mean(values: list[float]) -> float | None:
        return sum(values) / len(values) if values else None

    inst = [s for s in scores if s.kind == "instruction"]
    reas = [s for s in scores if s.kind == "reasoning"]
    out["reward"] = mean([s.reward for s in scores])
    out["hard"] = mean([v for s in inst for v in s.values("hard")])
    out["hard_satisfaction"] = mean([1.0 if v else 0.0 for s in inst for v in s.verdicts()])
    out["soft"] = mean([v for s in inst for v in s.values("soft")])
    answered = [s for s in inst if s.answer_found]
    out["soft_prob"] = mean([p for s in answered for p in s.probs("soft")] +
                            [0.0 for s in inst if not s.answer_found for c in s.constraints if c["kind"] == "soft"])
    out["instruction_reward"] = mean([s.reward for s in inst])
    out["reasoning_accuracy"] = mean([s.reward for s in reas])
    out["no_answer"] = mean([0.0 if s.answer_found else 1.0 for s in scores])
    out["repetitive"] = mean([1.0 if s.repetitive else 0.0 for s in scores])
    out["degenerate"] = mean([1.0 if s.degenerate else 0.0 for s in inst])
    levels: dict[int, list[ItemScore]] = {}
    for s in inst:
        if s.level is not None:
            levels.setdefault(int(s.level), []).append(s)
    out["per_level"] = {
        str(level): {"n": len(items), "reward": mean([s.reward for s in items]),
                     "hard_satisfaction": mean([1.0 if v else 0.0 for s in items for v in s.verdicts()]),
                     "soft_prob": mean([c["prob"] if c["prob"] is not None else 0.0
                                        for s in items for c in s.constraints if c["kind"] == "soft"])}
        for level, items in sorted(levels.items())}
    return out


# ---------------------------------------------------------------------------------------------------------------
# The TRL reward function

def _constraint_list(value: Any, where: str) -> list[dict]:
    if value is None:
        return []
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as err:
            raise ValueError(f"{where}: constraints column is not valid JSON ({err.msg})") from None
    if not isinstance(value, list) or not all(isinstance(c, dict) for c in value):
        raise ValueError(f"{where}: constraints must be a list of constraint objects")
    return value


def _or_none(values: Sequence[Any] | None, n: int) -> list:
    return list(values) if values is not None else [None] * n


class CompositeReward:
    """The composite reward as a TRL reward function (see the module docstring).

    ``rollout_log``, when set, receives one JSON line per scored completion (step, prompt, completion, kind,
    level, per-constraint verdicts and probabilities, reward). Several training processes may append to it at
    once, so each write holds an exclusive lock on the file.
    """

    __name__ = "composite"

    def __init__(self, scorer: Any, answer_mode: str = "after_think", soft_reward: str = "probability",
                 hard_reward: str = "rules", rollout_log: str | Path | None = None, process_index: int = 0,
                 repetitive_penalty: float = 0.0, degenerate_gate: bool = False, degenerate_reward: float = 0.0,
                 degenerate_scope: str = "answer"):
        soft_value(0.0, soft_reward)  # validates the name
        if hard_reward not in ("rules", "reward_model"):
            raise ValueError(f"hard_reward must be 'rules' or 'reward_model', got {hard_reward!r}")
        if repetitive_penalty < 0:
            raise ValueError(f"repetitive_penalty must be at least 0, got {repetitive_penalty}")
        self.repetitive_penalty = float(repetitive_penalty)
        self.degenerate_gate = bool(degenerate_gate)
        self.degenerate_reward = float(degenerate_reward)
        if degenerate_scope not in ("answer", "marker"):
            raise ValueError(f"degenerate_scope must be 'answer' or 'marker', got {degenerate_scope!r}")
        self.degenerate_scope = degenerate_scope
        self.scorer = scorer
        self.answer_mode = answer_mode
        self.soft_reward = soft_reward
        self.hard_reward = hard_reward
        self.rollout_log = Path(rollout_log) if rollout_log else None
        self.process_index = process_index

    def score_batch(self, completions: Sequence[Any], kind: Sequence[str], level: Sequence[Any],
                    constraints: Sequence[Any], answer: Sequence[Any], ids: Sequence[Any] | None = None
                    ) -> list[ItemScore]:
        """Score a batch; every RM-scored (answer, constraint description) pair goes in one ``scorer.score`` call."""
        n = len(completions)
        ids = list(ids) if ids is not None else [None] * n
        answers = [extract(completion_text(c), self.answer_mode) for c in completions]
        parsed = [_constraint_list(constraints[i], f"item {ids[i] or i}") if kind[i] != "reasoning" else []
                  for i in range(n)]

        pairs: list[tuple[str, str]] = []
        slots: list[tuple[int, int]] = []
        for i, cons in enumerate(parsed):
            if not answers[i]:
                continue
            for j, c in enumerate(cons):
                if rm_scored(c, self.hard_reward):
                    pairs.append((answers[i], str(c.get("description", ""))))
                    slots.append((i, j))
        probs: list[list[float | None]] = [[None] * len(cons) for cons in parsed]
        if pairs:
            if self.scorer is None:
                raise ValueError("a reward-model scorer is needed: the batch has RM-scored constraints")
            scored = list(self.scorer.score(pairs))
            if len(scored) != len(pairs):
                raise ValueError(f"the scorer returned {len(scored)} probabilities for {len(pairs)} pairs")
            for (i, j), p in zip(slots, scored):
                probs[i][j] = float(p)

        results = []
        for i in range(n):
            lvl = None if level[i] is None else int(level[i])
            if kind[i] == "reasoning":
                r = reasoning_reward(answers[i], answer[i])
                results.append(ItemScore(kind="reasoning", reward=r, answer_found=bool(answers[i]), level=lvl,
                                         correct=r == 1.0))
            else:
                results.append(score_instruction(answers[i], parsed[i], probs[i], self.soft_reward,
                                                 self.hard_reward, level=lvl))
            if kind[i] != "reasoning":
                # A missing answer already scores 0 everywhere; only a present one can be degenerate text.
                results[-1].degenerate = list(degeneration(answers[i], parsed[i]).reasons) if answers[i] else []
                if self.degenerate_gate and results[-1].degenerate:
                    self._gate(results[-1], answers[i], parsed[i], probs[i], lvl)
            if answers[i] and is_repetitive(answers[i]):
                results[-1].repetitive = True
                results[-1].reward -= self.repetitive_penalty
        return results

    def _gate(self, item: ItemScore, answer: str, constraints: list[dict],
              probs: list[float | None], level: int | None) -> None:
        """Apply the degenerate gate to ``item``, the score of ``answer``. Scope "answer": the whole reward becomes
        ``degenerate_reward``. Scope "marker": only a looping or near-empty answer does; an answer whose only
        fault is a stuffed marker or a copied example is scored again, its rules checked on the text with those
        removed (:func:`~sif_lib.constraints.degenerate.strip_stuffing`) and its RM probabilities kept, so that
        the rules met by stuffing go unpaid and the rest of the answer is still paid."""
        text_fault = any(r in TEXT_REASONS for r in item.degenerate)
        if self.degenerate_scope == "answer" or text_fault or self.hard_reward != "rules":
            item.reward = self.degenerate_reward
            return
        stripped = strip_stuffing(answer, constraints)
        if near_empty(stripped):
            item.reward = self.degenerate_reward
            return
        again = score_instruction(stripped, constraints, probs, self.soft_reward, self.hard_reward, level=level)
        item.reward, item.constraints, item.stripped = again.reward, again.constraints, True

    def __call__(self, prompts: Sequence[Any], completions: Sequence[Any], kind: Sequence[str] | None = None,
                 level: Sequence[Any] | None = None, constraints: Sequence[Any] | None = None,
                 answer: Sequence[Any] | None = None, id: Sequence[Any] | None = None,  # noqa: A002 (TRL column)
                 trainer_state: Any = None, log_metric: Callable[[str, float], None] | None = None,
                 **_: Any) -> list[float]:
        n = len(completions)
        kinds = list(kind) if kind is not None else ["instruction"] * n
        began = time.perf_counter()
        scores = self.score_batch(completions, kinds, _or_none(level, n), _or_none(constraints, n),
                                  _or_none(answer, n), id)
        if log_metric is not None:
            log_metric("timing/reward_s", time.perf_counter() - began)
            self._log_metrics(scores, log_metric)
        if self.rollout_log is not None:
            step = (trainer_state.global_step + 1) if trainer_state is not None else None
            self._append_log(step, prompts, completions, scores, id)
        return [s.reward for s in scores]

    def _log_metrics(self, scores: list[ItemScore], log_metric: Callable[[str, float], None]) -> None:
        summary = summarize(scores)
        # Only components present in this batch are logged, so an absent one never shows up as a zero.
        for key, name in (("hard", "components/hard"), ("soft", "components/soft"),
                          ("reasoning_accuracy", "components/reasoning_accuracy"),
                          ("no_answer", "components/no_answer"), ("repetitive", "components/repetitive"),
                          ("degenerate", "components/degenerate")):
            if summary[key] is not None:
                log_metric(name, summary[key])
        if self.hard_reward == "reward_model" and summary["hard_satisfaction"] is not None:
            log_metric("components/hard_verifier", summary["hard_satisfaction"])
        for level, row in summary["per_level"].items():
            log_metric(f"levels/L{level}", row["reward"])

    def _append_log(self, step, prompts, completions, scores, ids) -> None:
        lines = []
        for i, s in enumerate(scores):
            row = {"step": step, "rank": self.process_index, "id": ids[i] if ids is not None else None,
                   "prompt": prompt_text(prompts[i]), "completion": completion_text(completions[i]), **s.to_dict()}
            lines.append(json.dumps(row, ensure_ascii=False))
        self.rollout_log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.rollout_log, "a", encoding="utf-8") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                handle.write("".join(line + "\n" for line in lines))
                handle.flush()
                os.fsync(handle.fileno())
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def make_reward_function(params: Params, scorer: Any, rollout_log: str | Path | None = None,
                         process_index: int = 0) -> CompositeReward:
    """The reward function for ``trl.GRPOTrainer``: ``f(prompts, completions, **dataset_columns) -> list[float]``.

    The dataset columns it reads are ``kind`` ("instruction" | "reasoning"), ``level``, ``constraints`` (a JSON
    string or a list of constraint objects) and ``answer`` (the gold answer of reasoning items).
    """
    return CompositeReward(scorer, answer_mode=params.model.answer_mode, soft_reward=params.grpo.soft_reward,
                           hard_reward=params.grpo.hard_reward, rollout_log=rollout_log, process_index=process_index,
                           repetitive_penalty=params.grpo.repetitive_penalty,
                           degenerate_gate=params.grpo.degenerate_gate, degenerate_reward=params.grpo.degenerate_reward,
                           degenerate_scope=params.grpo.degenerate_scope)
