"""Small HTML pieces the stage views share (tables and constraint badges), escaped and dependency-free."""

from __future__ import annotations

import html
from typing import Any, Iterable, Sequence


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
