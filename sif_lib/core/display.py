"""Small pieces the stage views and comparison commands share: HTML tables and constraint badges (escaped and
dependency-free), plain-text tables, shares and deltas as the reports print them, and which parameters set runs
apart."""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from typing import Any


def percent(value: Any) -> str:
    """A share as percent with one decimal (``0.306`` -> ``30.6``); a dash where there is no number."""
    return f"{100 * value:.1f}" if isinstance(value, (int, float)) else "–"


def points(value: Any) -> str:
    """A difference of shares in signed percentage points (``0.06`` -> ``+6.0``); a dash where there is none."""
    return f"{100 * value:+.1f}" if isinstance(value, (int, float)) else "–"


def delta_points(value: float | None, interval: Sequence[float] | None) -> str:
    """A delta in points with its paired 95% interval, labelled when the interval contains 0."""
    if value is None or not interval:
        return points(value)
    low, high = interval
    text = f"{points(value)} [{points(low)}, {points(high)}]"
    return text + " (interval contains 0)" if low <= 0 <= high else text


def badge_html(constraint: dict) -> str:
    """A HARD (red) or SOFT (blue) badge and the constraint's category."""
    colour = "#c0392b" if constraint["kind"] == "hard" else "#2471a3"
    return (f"<span style='background:{colour};color:white;border-radius:3px;padding:0 4px;font-size:80%'>"
            f"{constraint['kind'].upper()}</span> <span style='color:#666;font-size:85%'>"
            f"[{html.escape(constraint['category'])}]</span>")


def table_html(header: Sequence[str], rows: Iterable[Sequence[Any]], style: str = "") -> str:
    """A plain HTML table; every cell is escaped."""
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table style='{style}'><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def format_table(rows: list[dict[str, str]]) -> str:
    """A plain-text table with aligned columns, headed by the rows' keys."""
    header = list(rows[0])
    widths = [max(len(h), *(len(r[h]) for r in rows)) for h in header]
    line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
    return "\n".join([line(header), line(["-" * w for w in widths])] + [line([r[h] for h in header]) for r in rows])


def differing_keys(flats: Sequence[dict[str, Any]], ignore: Iterable[str] = ()) -> list[str]:
    """The keys, sorted, whose value is not the same in all of ``flats`` (runs' ``Params.flat()``)."""
    keys = sorted({k for flat in flats for k in flat} - set(ignore))
    return [k for k in keys if len({repr(flat.get(k)) for flat in flats}) > 1]
