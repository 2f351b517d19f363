"""Degenerate answers in the report: the rows of the before/after table, the clean-prompt figure beside each
headline figure, the paired flips, and the gallery of answers that gained checks by turning degenerate.

Everything is read from ``eval/summary.json``'s ``degenerate`` and ``clean`` sections and from
``eval/degenerate_gallery.jsonl`` (:mod:`sif_lib.evaluation.degenerate_figures`). A summary written before those
existed gets "n/a" in the table and a line saying so instead of the gallery.
"""

from __future__ import annotations

import html
from pathlib import Path

from sif_lib.core.display import delta_points, percent
from sif_lib.evaluation.degenerate_figures import GALLERY, read_gallery

SETS = (("ifeval", "IFEval"), ("ifbench", "IFBench"), ("holdout", "hold-out"))
CLEAN_COLUMN = "clean prompts: base → trained (n)"
CLEAN_DELTA = "clean prompts: Δ points"
MISSING = "n/a"



def share_text(figures: dict) -> str:
    """A degenerate share in percent with its exact 95% interval: ``3.1 [1.9, 4.9] (17 of 541)``."""
    ci = figures.get("share_ci95")
    interval = f" [{percent(ci[0])}, {percent(ci[1])}]" if ci else ""
    return f"{percent(figures.get('share'))}{interval} ({figures.get('degenerate')} of {figures.get('n')})"


def degenerate_rows(summary: dict) -> list[tuple[str, str, str, str]]:
    """(figure, base, trained, Δ) per set: the degenerate share, base against trained; none for an older summary."""
    section = summary.get("degenerate") or {}
    rows = []
    for key, label in SETS:
        d = section.get(key)
        if d:
            rows.append((f"Degenerate answers, {label} (share; lower is better) (n={d['n']})", share_text(d["base"]),
                         share_text(d["trained"]), delta_points(d["delta"], d.get("delta_ci95"))))
    return rows


def clean_cells(summary: dict, key: str, metric: str) -> tuple[str, str]:
    """One headline figure on the prompts where neither answer is degenerate, as the two cells of the table:
    ``base → trained (n=prompts)`` and Δ with its paired interval; "n/a" for a summary without ``clean``."""
    section = (summary.get("clean") or {}).get(key)
    if not section:
        return MISSING, MISSING
    before, after = (section.get(p, {}).get(metric) for p in ("base", "trained"))
    delta = delta_points((section.get("delta") or {}).get(metric), (section.get("delta_ci95") or {}).get(metric))
    return f"{percent(before)} → {percent(after)} (n={section['n_prompts']})", delta


def flips_lines(summary: dict) -> list[str]:
    """Per set, the prompts whose answer turned degenerate and turned clean, with the exact sign test."""
    lines = []
    for key, label in SETS:
        f = ((summary.get("degenerate") or {}).get(key) or {}).get("flips")
        if f:
            lines.append(f"{label} answers: {f['became_degenerate']} turned degenerate, {f['became_clean']} turned "
                         f"clean of {f['paired']} (p = {f['sign_test_p']:.3g})")
    return lines


def gains_text(gains: dict | None) -> str:
    """Instructions newly met and no longer met, and how many of each came with a degenerate answer:
    ``77 newly met, 36 of them by a degenerate answer (47%); 40 no longer met, 12 of them met before by one``."""
    if not gains:
        return MISSING
    text = f"{gains['gained']} newly met, {gains['gained_degenerate']} of them by a degenerate answer"
    if gains["gained"]:
        text += f" ({percent(gains['gained_degenerate'] / gains['gained'])}%)"
    return text + f"; {gains['lost']} no longer met, {gains['lost_degenerate']} of them met before by one"


def gains_lines(summary: dict) -> list[str]:
    """Per benchmark, the instructions (loose) newly met and lost, with how many came with a degenerate answer."""
    section = summary.get("degenerate") or {}
    return [f"{label} instructions: {gains_text(section[key]['gains'])}"
            for key, label in SETS if (section.get(key) or {}).get("gains")]


def markdown_lines(summary: dict) -> list[str]:
    """The degenerate-answers section of ``eval/summary.md``."""
    if not summary.get("degenerate"):
        return ["## Degenerate answers", "", "This summary has no degenerate-answer figures (written before they "
                "were added).", ""]
    gallery = summary["degenerate"].get("gallery") or {}
    lines = ["## Degenerate answers", "",
             "Degenerate: near-empty, looping, repeating a line, ending in a loop, or stuffing a marker or required "
             "phrase (`sif_lib.constraints.degenerate`). Shares carry their exact 95% interval; the \"clean "
             "prompts\" columns give each headline figure on the prompts where neither answer is degenerate.", ""]
    lines += [f"- {line}" for line in flips_lines(summary) + gains_lines(summary)]
    on_ifbench = f"{gallery['ifbench']} on IFBench, " if "ifbench" in gallery else ""
    lines += ["", f"Answers that gained a check while turning degenerate: {gallery.get('ifeval', 0)} on IFEval, "
              f"{on_ifbench}{gallery.get('holdout', 0)} on the hold-out (`eval/{gallery.get('file', GALLERY)}`).",
              ""]
    return lines


def _answer_cell(title: str, text: str) -> str:
    cell = "vertical-align:top;text-align:left;border:1px solid #ddd;padding:6px;width:50%"
    pre = "white-space:pre-wrap;text-align:left;font-size:0.85em;max-height:22em;overflow:auto;margin:0"
    return f"<td style='{cell}'><b>{html.escape(title)}</b><pre style='{pre}'>{html.escape(text or '')}</pre></td>"


def gallery_markup(run_dir: str | Path, n: int = 6) -> str:
    """The gallery as HTML text: per example the prompt, base and trained answers side by side, the trained
    answer's reasons and the checks it gained (everything escaped)."""
    rows = read_gallery(run_dir)
    if not rows:
        found = (Path(run_dir) / "eval" / GALLERY).is_file()
        return ("<p class='sif-degenerate-gallery'>No trained answer gained a check while turning degenerate.</p>"
                if found else "<p class='sif-degenerate-gallery'>This run was evaluated before the degenerate-answer "
                              "gallery existed: rerun stage 07.</p>")
    parts = [f"<p>{len(rows)} trained answer(s) gained a check while turning degenerate (the base answer was clean)"
             f"{f'; the first {n} are shown' if len(rows) > n else ''}.</p>"]
    for row in rows[:n]:
        where = dict(SETS).get(row["set"], row["set"]) if row["set"] != "holdout" else f"hold-out L{row.get('level')}"
        gained = ", ".join(f"<code>{html.escape(str(g))}</code>" for g in row.get("gained") or [])
        lost = ", ".join(f"<code>{html.escape(str(g))}</code>" for g in row.get("lost") or [])
        parts.append(
            f"<div class='sif-degenerate-example'><h4>{html.escape(where)} · {html.escape(str(row.get('id')))}</h4>"
            f"<p style='white-space:pre-wrap'><b>Prompt:</b> {html.escape(row.get('prompt') or '')}</p>"
            f"<p><b>Reasons:</b> {html.escape(', '.join(row.get('reasons') or []))} · <b>Checks gained</b> "
            f"({html.escape(row.get('checks', ''))}): {gained}" + (f" · <b>lost:</b> {lost}" if lost else "") + "</p>"
            "<table style='width:100%;border-collapse:collapse;table-layout:fixed'><tr>"
            + _answer_cell("base answer", row.get("base_answer", ""))
            + _answer_cell("trained answer (degenerate)", row.get("trained_answer", "")) + "</tr></table></div>")
    return "<div class='sif-degenerate-gallery'>" + "".join(parts) + "</div>"


def gallery_html(run_dir: str | Path, n: int = 6):
    """:func:`gallery_markup` as displayable HTML (notebook 07)."""
    from IPython.display import HTML

    return HTML(gallery_markup(run_dir, n))
