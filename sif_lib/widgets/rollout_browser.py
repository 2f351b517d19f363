"""``RolloutBrowser``: step through the completions GRPO sampled and see how each was scored.

Rows come from a run's ``grpo/rollouts.jsonl`` (one per completion: step, prompt, completion, kind, level,
per-constraint verdicts and reward-model probabilities, reward). Pick a step with the slider and a completion
with the dropdown; the view shows the prompt, the completion, and a table of its constraints: the verifier's
✓/✗ for a hard one, the RM probability for a soft one, and the score that entered the mean.

Each instruction rollout also shows why it is degenerate, if it is (:mod:`sif_lib.constraints.degenerate`): the
reasons the reward recorded, or, for rows logged before it recorded them, the detector's reasons on the scored
answer (``model.answer_mode``, read from the run's ``params.yaml``). The "only degenerate" box narrows the
dropdown to those rollouts.

Programmatic use (tests, or a notebook without a front end)::

    browser = RolloutBrowser.from_run(run_dir)
    browser.select(step=3, index=0)
    browser.current()   # the selected row, a dict
    browser.only_degenerate.value = True   # the dropdown lists only degenerate rollouts
    display(browser.widget)
"""

from __future__ import annotations

import html
from collections.abc import Iterable
from pathlib import Path

import ipywidgets as w
import yaml

from sif_lib.constraints import answer_text
from sif_lib.constraints.degenerate import degeneration
from sif_lib.core.io import iter_jsonl


def _fmt(value, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _constraint_rows(row: dict) -> str:
    cells = []
    for c in row.get("constraints") or []:
        if c.get("verdict") is not None:
            verdict = "<span style='color:#1e8449'>✓</span>" if c["verdict"] else "<span style='color:#c0392b'>✗</span>"
        else:
            verdict = ""
        cells.append(
            f"<tr><td>{html.escape(str(c.get('kind', '')))}</td>"
            f"<td><code>{html.escape(str(c.get('id', '')))}</code></td>"
            f"<td>{html.escape(str(c.get('description', '')))}</td><td style='text-align:center'>{verdict}</td>"
            f"<td style='text-align:right'>{_fmt(c.get('prob'))}</td>"
            f"<td style='text-align:right'>{_fmt(c.get('score'), 2)}</td></tr>")
    if not cells:
        return ""
    return ("<table style='border-collapse:collapse;width:100%;font-size:90%'>"
            "<tr style='border-bottom:1px solid #ccc'><th>kind</th><th>constraint</th><th>description</th>"
            "<th>verdict</th><th>RM prob</th><th>score</th></tr>" + "".join(cells) + "</table>")


def degenerate_reasons(row: dict, answer_mode: str = "whole") -> list[str]:
    """Why a rollout is degenerate (empty: it is not): the reasons the reward recorded, else the detector's on
    the scored answer. Reasoning items are not judged (a bare number is a fine answer there)."""
    if row.get("kind") == "reasoning":
        return []
    if "degenerate" in row:
        return list(row["degenerate"] or [])
    return list(degeneration(answer_text(row.get("completion"), answer_mode), row.get("constraints")).reasons)


def render_row(row: dict, reasons: list[str] | None = None) -> str:
    """HTML for one rollout row; ``reasons`` (default: :func:`degenerate_reasons`) say why it is degenerate."""
    reasons = degenerate_reasons(row) if reasons is None else reasons
    kind = row.get("kind", "instruction")
    head = (f"<b>step {row.get('step')}</b> · {html.escape(str(row.get('id')))} · {kind} · "
            f"level {row.get('level')} · <b>reward {_fmt(row.get('reward'))}</b>")
    if not row.get("answer_found", True):
        head += " · <span style='color:#c0392b'>no answer (empty, or no &lt;/think&gt;)</span>"
    if kind == "reasoning":
        head += f" · {'correct' if row.get('correct') else 'wrong'} final answer"
    if row.get("repetitive"):
        head += " · <span style='color:#b9770e'>repetitive: over half its word 4-grams repeat</span>"
    if reasons:
        head += f" · <span style='color:#c0392b'>degenerate: {html.escape(', '.join(reasons))}</span>"
    box = ("white-space:pre-wrap;border:1px solid #ddd;border-radius:4px;padding:6px;margin:4px 0;"
           "max-height:18em;overflow:auto")
    return (f"<div>{head}</div><div style='color:#666;margin-top:6px'>prompt</div>"
            f"<div style='{box};background:#f8f9fa'>{html.escape(str(row.get('prompt', '')))}</div>"
            f"<div style='color:#666'>completion</div><div "
            f"style='{box}'>{html.escape(str(row.get('completion', '')))}</div>"
            + _constraint_rows(row))


class RolloutBrowser:
    """An ipywidgets browser over GRPO rollout rows (see the module docstring)."""

    def __init__(self, rows: Iterable[dict], answer_mode: str = "whole"):
        self._by_step: dict[int, list[dict]] = {}
        for row in rows:
            if row.get("step") is None:
                continue
            self._by_step.setdefault(int(row["step"]), []).append(row)
        self._reasons = {step: [degenerate_reasons(r, answer_mode) for r in rows]
                         for step, rows in self._by_step.items()}
        self.steps = sorted(self._by_step)
        self._step = self.steps[0] if self.steps else None
        self._index = 0

        if self.steps:
            self.step = w.SelectionSlider(options=self.steps, value=self._step, description="step",
                                          continuous_update=False, layout=w.Layout(width="60%"))
        else:
            self.step = w.SelectionSlider(options=[0], value=0, description="step", disabled=True)
        self.completion = w.Dropdown(description="completion", layout=w.Layout(width="100%"),
                                     style={"description_width": "initial"})
        total = sum(bool(r) for reasons in self._reasons.values() for r in reasons)
        self.only_degenerate = w.Checkbox(value=False, indent=False, layout=w.Layout(width="auto"),
                                          description=f"only degenerate ({total} of "
                                                      f"{sum(map(len, self._reasons.values()))} rollouts)")
        self.view = w.HTML()
        self.widget = w.VBox([self.step, self.only_degenerate, self.completion, self.view])
        self.step.observe(self._on_step, names="value")
        self.completion.observe(self._on_completion, names="value")
        self.only_degenerate.observe(self._on_filter, names="value")
        self._refresh_options()

    @classmethod
    def from_file(cls, path: str | Path, answer_mode: str = "whole") -> RolloutBrowser:
        path = Path(path)
        return cls(iter_jsonl(path, tolerate_torn_tail=True) if path.is_file() else [], answer_mode)

    @classmethod
    def from_run(cls, run_dir: str | Path) -> RolloutBrowser:
        params = Path(run_dir) / "params.yaml"
        model = ((yaml.safe_load(params.read_text()) or {}).get("model") or {}) if params.is_file() else {}
        return cls.from_file(Path(run_dir) / "grpo" / "rollouts.jsonl", model.get("answer_mode") or "whole")

    def rows(self, step: int) -> list[dict]:
        return list(self._by_step.get(step, []))

    def reasons(self, step: int, index: int) -> list[str]:
        """Why completion ``index`` of ``step`` is degenerate (empty: it is not)."""
        return list(self._reasons[step][index])

    def degenerate_indices(self, step: int) -> list[int]:
        """The completions of ``step`` that are degenerate."""
        return [i for i, reasons in enumerate(self._reasons.get(step, [])) if reasons]

    def _label(self, i: int, row: dict) -> str:
        prompt = str(row.get("prompt", "")).replace("\n", " ")
        short = prompt if len(prompt) <= 60 else prompt[:57] + "..."
        level = "math" if row.get("kind") == "reasoning" else f"L{row.get('level')}"
        return f"#{i} · {level} · reward {_fmt(row.get('reward'), 2)} · {short}"

    def _shown(self) -> list[int]:
        """Indices of the step's completions the dropdown lists (all, or the degenerate ones)."""
        if self._step is None:
            return []
        if self.only_degenerate.value:
            return self.degenerate_indices(self._step)
        return list(range(len(self._by_step.get(self._step, []))))

    def _refresh_options(self) -> None:
        rows = self._by_step.get(self._step, []) if self._step is not None else []
        shown = self._shown()
        self.completion.unobserve(self._on_completion, names="value")
        self.completion.options = [(self._label(i, rows[i]), i) for i in shown]
        if self._index not in shown:
            self._index = shown[0] if shown else 0
        self.completion.value = self._index if shown else None
        self.completion.observe(self._on_completion, names="value")
        self._render()

    def _render(self) -> None:
        row = self.current()
        if row is None:
            filtered = bool(self._by_step) and self.only_degenerate.value
            self.view.value = ("<i>No degenerate rollouts at this step.</i>" if filtered
                               else "<i>No rollouts logged yet.</i>")
            return
        self.view.value = render_row(row, self._reasons[self._step][self._index])

    def _on_step(self, change) -> None:
        self._step = change["new"]
        self._index = 0
        self._refresh_options()

    def _on_filter(self, change) -> None:
        self._refresh_options()

    def _on_completion(self, change) -> None:
        if change["new"] is not None:
            self._index = change["new"]
            self._render()

    def select(self, step: int, index: int = 0) -> dict:
        """Show completion ``index`` of ``step`` (an index among all of the step's completions; a clean one
        unticks "only degenerate"); returns the row. KeyError/IndexError when absent."""
        if step not in self._by_step:
            raise KeyError(f"no rollouts logged at step {step} (steps: "
                           f"{self.steps[:5]}{'...' if len(self.steps) > 5 else ''})")
        rows = self._by_step[step]
        if not 0 <= index < len(rows):
            raise IndexError(f"step {step} has {len(rows)} completions, not index {index}")
        if self.only_degenerate.value and not self._reasons[step][index]:
            self.only_degenerate.value = False  # the filter would hide it
        if self._step != step:
            self._step = step
            self.step.value = step  # fires _on_step, which resets the index
        self._index = index
        self._refresh_options()
        return self.current()

    def current(self) -> dict | None:
        """The selected rollout row (None when none is listed)."""
        rows = self._by_step.get(self._step, []) if self._step is not None else []
        return rows[self._index] if rows and self._index in self._shown() else None
