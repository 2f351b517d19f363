"""``sif results``: the results document's tables, regenerated from the runs they name.

``docs/RESULTS.md`` is prose with generated blocks. A block is a marker naming run directories, the tables
``sif report RUN_DIR... --markdown`` makes of them, and a closing marker::

    <!-- sif-report: outputs/long192-s0 outputs/marker-s0 -->
    ### Per run
    ...
    <!-- /sif-report -->

:func:`regenerate` rewrites each block's body with what :func:`markdown_report` (the code behind ``sif report``)
makes of those runs now, and leaves every line outside the blocks as it was. A marker names run directories
only, as ``sif report`` takes them (``--markdown`` is implied, ``--output`` is the block itself). A block whose
runs are not all on this disk keeps its body, and one line says so; with ``strict`` that is an error and the
document is not written. A marker that cannot be read is an error naming the file and line.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sif_lib.analysis.markdown_tables import markdown_report
from sif_lib.core.errors import InputError
from sif_lib.core.io import atomic_write_text

OPEN = "<!-- sif-report:"
CLOSE = "<!-- /sif-report -->"
_OPEN_LINE = re.compile(r"<!-- sif-report:(.*)-->")


@dataclass
class Block:
    """One generated block: the marker's line number (1-based), the runs it names, and its body's lines."""
    line: int
    runs: list[str]
    start: int  # index of the first body line in the document's lines
    end: int  # index of the closing marker


def parse_blocks(lines: list[str], source: str | Path) -> list[Block]:
    """The blocks of a document split into lines; a malformed or unclosed marker is an :class:`InputError`."""
    blocks: list[Block] = []
    current: Block | None = None
    for index, raw in enumerate(lines):
        text = raw.strip()
        where = f"{source}, line {index + 1}"
        if text.startswith("<!-- /sif-report"):
            if text != CLOSE:
                raise InputError(f"{where}: malformed closing marker {text!r}; write {CLOSE!r}")
            if current is None:
                raise InputError(f"{where}: {CLOSE} without an opening {OPEN} ... --> marker")
            current.end = index
            blocks.append(current)
            current = None
        elif text.startswith("<!-- sif-report"):
            match = _OPEN_LINE.fullmatch(text)
            if not match:
                raise InputError(f"{where}: malformed marker {text!r}; write {OPEN} outputs/RUN ... -->")
            if current is not None:
                raise InputError(f"{where}: a marker inside the block opened on line {current.line}; close that "
                                 f"one first with {CLOSE}")
            runs = match.group(1).split()
            if not runs:
                raise InputError(f"{where}: the marker names no run directory; write {OPEN} outputs/RUN ... -->")
            options = [r for r in runs if r.startswith("-")]
            if options:
                raise InputError(f"{where}: {options[0]}: a marker names run directories only, as `sif report "
                                 f"RUN_DIR... --markdown` takes them")
            current = Block(line=index + 1, runs=runs, start=index + 1, end=-1)
    if current is not None:
        raise InputError(f"{source}, line {current.line}: the block opened here has no closing {CLOSE}")
    return blocks


def run_path(name: str, outputs: str | Path | None) -> Path:
    """Where a marker's run directory is: ``outputs/NAME`` under ``outputs`` when it is given, else as written
    (relative to the current directory, as ``sif report`` reads it)."""
    path = Path(name)
    if outputs is not None and len(path.parts) > 1 and path.parts[0] == "outputs":
        return Path(outputs, *path.parts[1:])
    return path


def regenerate(document: str | Path = "docs/RESULTS.md", outputs: str | Path | None = None, strict: bool = False,
               echo: Callable[[str], None] = print) -> str:
    """Rewrite every block of ``document`` from its runs; returns the new text. A block whose runs are not all
    here keeps its body (one line says so), or, with ``strict``, stops everything before a line is written."""
    path = Path(document)
    if not path.is_file():
        raise InputError(f"{path}: no such file (the results document, e.g. docs/RESULTS.md)")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise InputError(f"{path}: cannot be read ({err})") from None
    lines = text.split("\n")
    blocks = parse_blocks(lines, path)
    bodies: list[list[str] | None] = []
    for block in blocks:
        dirs = [run_path(name, outputs) for name in block.runs]
        absent = [str(d) for d in dirs if not d.is_dir()]
        if absent:
            message = (f"{path}, line {block.line}: {', '.join(absent)} not "
                       "on this disk; the block's body is left as it was")
            if strict:
                raise InputError(message + " (--strict)")
            echo(message)
            bodies.append(None)
            continue
        try:
            bodies.append(markdown_report(dirs).rstrip("\n").split("\n"))
        except InputError as err:
            raise InputError(f"{path}, line {block.line}: {err}") from None
    out: list[str] = []
    position = 0
    for block, body in zip(blocks, bodies):
        out += lines[position:block.start]
        out += lines[block.start:block.end] if body is None else body
        position = block.end
    out += lines[position:]
    new = "\n".join(out)
    regenerated = sum(body is not None for body in bodies)
    if new != text:
        atomic_write_text(path, new)
    echo(f"{path}: {regenerated} of {len(blocks)} blocks regenerated"
         + ("" if new != text else ", nothing changed"))
    return new
