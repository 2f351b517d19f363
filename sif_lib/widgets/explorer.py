"""``CurriculumExplorer``: browse curriculum ladders and check a response against them, live.

Pick an instruction, read its ladder L0..Ln (each level adds one constraint, badged HARD or SOFT with its
category), choose the level to answer, and type or paste a response. Every hard constraint of that level is
checked by its verifier as you type (✓/✗); a soft constraint has no code check, so it is marked as needing
the reward model (stage 04).

The same object has a programmatic API, used by the tests and handy in a notebook::

    explorer = CurriculumExplorer(curriculum_rows)      # or the instructions of stage 01
    explorer.select("inst-00007")                       # or "inst-00007-L2" for a given level
    explorer.set_response("...")
    explorer.verdicts()   # {0: True, 1: None, 2: False}: constraint index -> verdict (None = soft)
    display(explorer.widget)
"""

from __future__ import annotations

import html
from collections.abc import Iterable

import ipywidgets as w

from sif_lib.constraints import check_constraint, extract_answer
from sif_lib.synthesis.curriculum import decompose

_HARD_COLOUR = "#c0392b"
_SOFT_COLOUR = "#2471a3"


def _badge(constraint: dict) -> str:
    colour = _HARD_COLOUR if constraint["kind"] == "hard" else _SOFT_COLOUR
    return (f"<span style='background:{colour};color:white;border-radius:3px;padding:0 5px;font-size:80%;"
            f"font-weight:bold'>{constraint['kind'].upper()}</span> "
            f"<span style='color:#666;font-size:85%'>{html.escape(constraint['category'])}</span>")


def _ladders(rows: Iterable[dict]) -> dict[str, list[dict]]:
    """Parent id -> rows L0..Ln. Curriculum rows are grouped; instructions are decomposed first."""
    ladders: dict[str, list[dict]] = {}
    for row in rows:
        if "parent" in row and "level" in row:
            ladders.setdefault(row["parent"], []).append(row)
        elif "constraints" in row and "seed" in row:
            ladders[row["id"]] = decompose(row)
        else:
            raise ValueError(f"row {row.get('id', '?')!r} is neither a curriculum row nor an instruction")
    for ladder in ladders.values():
        ladder.sort(key=lambda r: r["level"])
    return ladders


class CurriculumExplorer:
    """An ipywidgets view of curriculum ladders with live hard-constraint checks.

    ``rows``: curriculum rows (stage 02) or instructions (stage 01). ``answer_mode`` is how the answer is cut
    from the response before checking (``model.answer_mode``: after_think, whole, require_think).
    """

    def __init__(self, rows: Iterable[dict], answer_mode: str = "after_think"):
        self.answer_mode = answer_mode
        self._ladders = _ladders(rows)
        if not self._ladders:
            raise ValueError("nothing to explore: no curriculum rows or instructions given")
        self._level = 0
        self._current: str | None = None
        self._muted = False

        options = []
        for parent, ladder in self._ladders.items():
            top = ladder[-1]
            seed = top["seed_prompt"] if "seed_prompt" in top else top["prompt"]
            short = seed if len(seed) <= 60 else seed[:57] + "..."
            options.append((f"{parent} · {top['split']} · n={len(top['constraints'])} · {short}", parent))
        self.instruction = w.Dropdown(options=options, description="instruction",
                                      layout=w.Layout(width="100%"), style={"description_width": "initial"})
        self.level = w.ToggleButtons(options=[("L0", 0)], description="answer level",
                                     style={"description_width": "initial", "button_width": "3.5em"})
        self.ladder = w.HTML()
        self.response = w.Textarea(placeholder="Type or paste a response to the selected level...",
                                   layout=w.Layout(width="100%", height="10em"))
        self.verdict_view = w.HTML()
        self.widget = w.VBox([self.instruction, self.ladder, self.level, self.response, self.verdict_view],
                             layout=w.Layout(width="100%"))

        self.instruction.observe(lambda change: self._show_instruction(change["new"]), names="value")
        self.level.observe(lambda change: self._set_level(change["new"]), names="value")
        self.response.observe(lambda change: self._refresh_verdicts() if not self._muted else None, names="value")
        self._show_instruction(self.instruction.value)

    # -- programmatic API ------------------------------------------------------------------------------------

    @property
    def instruction_ids(self) -> list[str]:
        return list(self._ladders)

    def select(self, instruction_id: str) -> CurriculumExplorer:
        """Show an instruction (``inst-00007``, top level selected) or one level of it (``inst-00007-L2``)."""
        parent, level = instruction_id, None
        if instruction_id not in self._ladders and "-L" in instruction_id:
            parent, _, suffix = instruction_id.rpartition("-L")
            level = int(suffix) if suffix.isdigit() else None
        if parent not in self._ladders:
            raise KeyError(f"unknown instruction {instruction_id!r}")
        if self.instruction.value != parent:
            self.instruction.value = parent  # the observer redraws and selects the top level
        else:
            self._show_instruction(parent)
        if level is not None:
            if level >= len(self._ladders[parent]):
                raise KeyError(f"{parent} has no level {level}")
            self.level.value = level
        return self

    def set_response(self, text: str) -> CurriculumExplorer:
        self.response.value = text
        return self

    @property
    def constraints(self) -> list[dict]:
        """Constraints of the selected level."""
        return self._ladders[self._current][self._level]["constraints"]

    def verdicts(self) -> dict[int, bool | None]:
        """Constraint index (0-based, in the selected level) -> verifier verdict; None for a soft constraint."""
        return {i: verdict for i, (verdict, _) in enumerate(self._judge())}

    # -- internals -------------------------------------------------------------------------------------------

    def _judge(self) -> list[tuple[bool | None, str]]:
        answer = extract_answer(self.response.value, self.answer_mode)
        out = []
        for c in self.constraints:
            if c["kind"] != "hard":
                out.append((None, "needs the reward model"))
                continue
            try:
                ok = check_constraint(answer, c["id"], c.get("kwargs"))
            except ValueError as err:  # bad arguments in a hand-edited file
                out.append((False, f"verifier error: {err}"))
                continue
            out.append((ok, "satisfied" if ok else "violated"))
        return out

    def _show_instruction(self, parent: str) -> None:
        self._current = parent
        ladder = self._ladders[parent]
        top = len(ladder) - 1
        # Replacing the options fires value changes for the old ladder; ignore them until the new one is set.
        self._muted = True
        try:
            self.level.options = [(f"L{r['level']}", r["level"]) for r in ladder]
            self.level.value = top
        finally:
            self._muted = False
        self._level = top
        self._redraw()

    def _set_level(self, level: int | None) -> None:
        if self._muted or level is None:
            return
        self._level = level
        self._redraw()

    def _redraw(self) -> None:
        ladder = self._ladders[self._current]
        items = []
        for r in ladder:
            new = r["constraints"][-1] if r["constraints"] else None
            label = _badge(new) if new else "<span style='color:#666;font-size:85%'>bare seed</span>"
            style = "background:#fff7d6;" if r["level"] == self._level else ""
            items.append(f"<li style='{style}padding:2px 4px'><b>L{r['level']}</b> {label}<br>"
                         f"<span style='white-space:pre-wrap'>{html.escape(r['prompt'])}</span></li>")
        self.ladder.value = (f"<div><b>Ladder of {html.escape(self._current)}</b> "
                             f"<span style='color:#666'>(each level adds one constraint)</span>"
                             f"<ol style='list-style:none;padding-left:0'>{''.join(items)}</ol></div>")
        self._refresh_verdicts()

    def _refresh_verdicts(self) -> None:
        judged = self._judge()
        lines = []
        for i, (c, (verdict, note)) in enumerate(zip(self.constraints, judged)):
            if verdict is None:
                mark = "<span style='color:#888'>…</span>"
            elif verdict:
                mark = "<span style='color:#1e8449;font-weight:bold'>✓</span>"
            else:
                mark = "<span style='color:#c0392b;font-weight:bold'>✗</span>"
            lines.append(f"<tr><td>{mark}</td><td>c{i + 1}</td><td>{_badge(c)}</td>"
                         f"<td>{html.escape(c['description'])}</td>"
                         f"<td style='color:#666;font-size:85%'>{html.escape(note)}</td></tr>")
        hard = [v for v, _ in judged if v is not None]
        summary = (f"{sum(hard)}/{len(hard)} hard constraints satisfied" if hard else "no hard constraints")
        if not self.response.value.strip():
            summary += " (empty response)"
        soft = len(judged) - len(hard)
        if soft:
            summary += f"; {soft} soft constraint{'s' if soft > 1 else ''} left to the reward model"
        body = "".join(lines) or "<tr><td colspan=5>L0 has no constraints: the bare seed.</td></tr>"
        self.verdict_view.value = (f"<div><b>L{self._level} verdicts</b>: {summary}"
                                   f"<table>{body}</table></div>")
