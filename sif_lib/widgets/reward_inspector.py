"""``RewardInspector``: see how one response is rewarded, constraint by constraint.

Pick an instruction and one of the responses the policy wrote for it (or edit the text freely in the box), and
the inspector shows every constraint's score: a hard constraint's verifier verdict (✓/✗, scoring 1/0), a soft
constraint's reward-model probability, and the aggregated reward, the mean over constraints that GRPO
optimises (``sif_lib.reward.composite.score_instruction``, with ``grpo.soft_reward: probability`` and hard constraints
by rules).

Programmatic API, used by the tests and handy in a notebook::

    inspector = RewardInspector(instructions, {"inst-00001": ["response", ...]}, scorer, answer_mode)
    inspector.select("inst-00001", 0)
    inspector.set_response("my own text")
    inspector.scores()   # [{"id", "kind", "description", "verdict", "prob", "score"}, ...]
    inspector.reward()   # float in [0, 1]
    display(inspector.widget)
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

import ipywidgets as w

from sif_lib.reward.composite import extract, score_instruction
from sif_lib.rm_service.clients import make_scorer
from sif_lib.runner.runs import RunContext
from sif_lib.stages.s05_analysis.ranking import load_run_responses

_CUSTOM = -1


class RewardInspector:
    """Interactive view of the reward of a response. ``scorer`` has ``score(pairs) -> list[float]``."""

    def __init__(self, instructions: Sequence[dict], responses_by_instruction: dict[str, list[str]], scorer: Any,
                 answer_mode: str = "after_think"):
        self.instructions = {inst["id"]: inst for inst in instructions}
        if not self.instructions:
            raise ValueError("nothing to inspect: no instructions given")
        self.responses = {k: list(v) for k, v in responses_by_instruction.items()}
        self.scorer = scorer
        self.answer_mode = answer_mode
        self._muted = False
        self._cache: tuple[str, str, Any] | None = None

        options = []
        for inst_id, inst in self.instructions.items():
            prompt = inst.get("seed") or inst.get("prompt", "")
            short = prompt if len(prompt) <= 60 else prompt[:57] + "..."
            n = len(self.responses.get(inst_id, []))
            options.append((f"{inst_id} · {n} responses · {short}", inst_id))
        self.instruction = w.Dropdown(options=options, description="instruction", layout=w.Layout(width="100%"),
                                      style={"description_width": "initial"})
        self.response_choice = w.Dropdown(options=[], description="response", layout=w.Layout(width="100%"),
                                          style={"description_width": "initial"})
        self.prompt_view = w.HTML()
        self.text = w.Textarea(placeholder="Pick a response above, or type your own...", continuous_update=False,
                               layout=w.Layout(width="100%", height="10em"))
        self.result_view = w.HTML()
        self.widget = w.VBox([self.instruction, self.prompt_view, self.response_choice, self.text, self.result_view],
                             layout=w.Layout(width="100%"))

        self.instruction.observe(lambda change: self._show_instruction(change["new"]), names="value")
        self.response_choice.observe(lambda change: self._show_response(change["new"]), names="value")
        self.text.observe(lambda change: self._refresh() if not self._muted else None, names="value")
        self._show_instruction(self.instruction.value)

    @classmethod
    def from_run(cls, ctx: RunContext, scorer: Any = None, max_instructions: int = 200) -> RewardInspector:
        """Instructions that have responses in the run, with those responses (rollouts and pseudo-label pairs)."""
        instructions, responses = load_run_responses(ctx)
        by_id: dict[str, list[str]] = {}
        for inst_id, items in responses.items():
            seen: list[str] = []
            for _, text in items:
                if text not in seen:
                    seen.append(text)
            by_id[inst_id] = seen
        chosen = [inst for inst in instructions if by_id.get(inst["id"])][:max_instructions] or instructions[:1]
        return cls(chosen, by_id, scorer or make_scorer(ctx.params, ctx.root), ctx.params.model.answer_mode)

    # -- programmatic API ------------------------------------------------------------------------------------

    def select(self, instruction_id: str, response_index: int = 0) -> RewardInspector:
        """Show an instruction and one of its responses (0-based)."""
        if instruction_id not in self.instructions:
            raise KeyError(f"unknown instruction {instruction_id!r}")
        n = len(self.responses.get(instruction_id, []))
        if not 0 <= response_index < n:
            raise IndexError(f"{instruction_id} has {n} responses; index {response_index} is out of range")
        if self.instruction.value != instruction_id:
            self.instruction.value = instruction_id
        self.response_choice.value = response_index
        self._show_response(response_index)
        return self

    def set_response(self, text: str) -> RewardInspector:
        """Score a custom response against the selected instruction."""
        self._muted = True
        try:
            self.response_choice.value = _CUSTOM
        finally:
            self._muted = False
        self.text.value = text
        self._refresh()
        return self

    @property
    def constraints(self) -> list[dict]:
        return self.instructions[self.instruction.value].get("constraints", [])

    def scores(self) -> list[dict]:
        """One row per constraint: id, kind, description, verdict (hard), prob (soft), score."""
        return self._scored().constraints

    def reward(self) -> float:
        """The aggregated reward: the mean of the constraint scores."""
        return self._scored().reward

    # -- internals -------------------------------------------------------------------------------------------

    def _scored(self):
        key = (self.instruction.value, self.text.value)
        if self._cache is not None and self._cache[:2] == key:
            return self._cache[2]
        constraints = self.constraints
        answer = extract(self.text.value, self.answer_mode)
        soft = [i for i, c in enumerate(constraints) if c.get("kind") != "hard"]
        probs: list[float | None] = [None] * len(constraints)
        if answer and soft:
            for i, p in zip(soft, self.scorer.score([(answer, constraints[i].get("description", "")) for i in soft])):
                probs[i] = p
        scored = score_instruction(answer, constraints, probs)
        self._cache = (key[0], key[1], scored)
        return scored

    def _show_instruction(self, inst_id: str) -> None:
        inst = self.instructions[inst_id]
        self.prompt_view.value = ("<div style='white-space:pre-wrap;border-left:3px solid #888;padding-left:8px'>"
                                  f"{html.escape(inst.get('prompt', ''))}</div>")
        responses = self.responses.get(inst_id, [])
        options = [(f"#{i}: {_short(r)}", i) for i, r in enumerate(responses)] + [("(custom text)", _CUSTOM)]
        self._muted = True
        try:
            self.response_choice.options = options
            self.response_choice.value = 0 if responses else _CUSTOM
        finally:
            self._muted = False
        self._show_response(self.response_choice.value)

    def _show_response(self, index: int | None) -> None:
        if self._muted or index is None:
            return
        if index != _CUSTOM:
            self._muted = True
            try:
                self.text.value = self.responses[self.instruction.value][index]
            finally:
                self._muted = False
        self._refresh()

    def _refresh(self) -> None:
        try:
            scored = self._scored()
        except Exception as err:  # a bad constraint in a hand-edited file, or an unreachable reward service
            self.result_view.value = f"<b style='color:#c0392b'>cannot score: {html.escape(str(err))}</b>"
            return
        rows = []
        for c in scored.constraints:
            if c["kind"] == "hard":
                mark = "✓" if c["verdict"] else "✗"
                how = f"<b style='color:{'#1e8449' if c['verdict'] else '#c0392b'}'>{mark}</b> verifier"
            else:
                how = "reward model P = " + ("n/a" if c["prob"] is None else f"{c['prob']:.3f}")
            rows.append(f"<tr><td>{c['kind'].upper()}</td><td>{html.escape(str(c['description']))}</td>"
                        f"<td>{how}</td><td style='text-align:right'>{c['score']:.3f}</td></tr>")
        note = ("" if scored.answer_found
                else "<p><i>No answer to score (empty, or no &lt;/think&gt;): every constraint scores 0.</i></p>")
        self.result_view.value = (
            "<table style='border-collapse:collapse'><tr><th>kind</th><th>constraint</th><th>judged by</th>"
            f"<th>score</th></tr>{''.join(rows)}</table>{note}"
            f"<p><b>reward = {scored.reward:.3f}</b> (mean over {len(scored.constraints)} constraints)</p>")


def _short(text: str, width: int = 70) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[:width - 3] + "..."
