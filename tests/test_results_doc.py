"""``sif results``: the results document's tables regenerate from the runs they name. Built here from the
session's smoke run: a block's body becomes exactly what ``sif report RUN --markdown`` prints, the prose around it
stays as written, a block whose run is absent keeps its body (one line says so; ``--strict`` fails), and a
malformed marker is one error line naming the file and line."""

from __future__ import annotations

import pytest
from conftest import REPO

from sif_lib.analysis.results_doc import parse_blocks
from sif_lib.cli import main

BEFORE = "# Results\n\nProse before the block, kept as written.\n\n"
AFTER = "\nProse after the block: `sif report` made the table above.\n"


def _document(path, runs: str, body: str = "a table from an older version of the code") -> str:
    text = f"{BEFORE}<!-- sif-report: {runs} -->\n{body}\n<!-- /sif-report -->\n{AFTER}"
    path.write_text(text)
    return text


def _split(text: str) -> tuple[str, str, str]:
    """(prose before the block with its opening marker, the body, the closing marker and the prose after)."""
    head, _, rest = text.partition(" -->\n")
    body, _, tail = rest.partition("<!-- /sif-report -->")
    return head, body.rstrip("\n"), tail


@pytest.mark.slow
def test_results_regenerates_a_block_from_the_smoke_run(smoke_run, tmp_path, capsys):
    doc = tmp_path / "RESULTS.md"
    old = _document(doc, "outputs/smoke")
    assert main(["results", str(doc), "--outputs", str(smoke_run.parent)]) == 0
    assert f"{doc}: 1 of 1 blocks regenerated" in capsys.readouterr().out
    assert main(["report", str(smoke_run), "--markdown"]) == 0
    report = capsys.readouterr().out
    new = doc.read_text()
    assert _split(new)[1] == report.rstrip("\n")  # the body is `sif report`'s output, line for line
    assert "### Per run" in report and f"`{smoke_run}`" in report
    assert _split(new)[0] == _split(old)[0] and _split(new)[2] == _split(old)[2]  # the prose is untouched
    assert new.startswith(BEFORE) and new.endswith(AFTER)
    # A second pass finds nothing to change.
    assert main(["results", str(doc), "--outputs", str(smoke_run.parent)]) == 0
    assert "nothing changed" in capsys.readouterr().out and doc.read_text() == new


def test_an_absent_run_keeps_the_body_and_says_so_on_one_line(tmp_path, capsys):
    doc = tmp_path / "RESULTS.md"
    old = _document(doc, "outputs/gone-run")
    assert main(["results", str(doc), "--outputs", str(tmp_path / "outputs")]) == 0
    out, err = capsys.readouterr()
    kept = [line for line in out.splitlines() if "not on this disk" in line]
    assert kept == [f"{doc}, line 5: {tmp_path / 'outputs' / 'gone-run'} not "
                    "on this disk; the block's body is left as it was"], out
    assert doc.read_text() == old and not err


def test_strict_makes_an_absent_run_an_error(tmp_path, capsys):
    doc = tmp_path / "RESULTS.md"
    old = _document(doc, "outputs/gone-run")
    assert main(["results", str(doc), "--outputs", str(tmp_path), "--strict"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and err.startswith(f"error: {doc}, line 5: ") and "--strict" in err
    assert doc.read_text() == old


@pytest.mark.parametrize("marker, line", [
    ("<!-- sif-report outputs/a -->\nbody\n<!-- /sif-report -->", 5),  # no colon
    ("<!-- sif-report: -->\nbody\n<!-- /sif-report -->", 5),  # no run
    ("<!-- sif-report: outputs/a --rows hard -->\nbody\n<!-- /sif-report -->", 5),  # sif report has no such option
    ("<!-- sif-report: outputs/a -->\nbody", 5),  # never closed
    ("<!-- sif-report: outputs/a -->\n<!-- sif-report: outputs/b -->\n<!-- /sif-report -->", 6),  # nested
    ("body\n<!-- /sif-report -->", 6),  # closed, never opened
    ("<!-- sif-report: outputs/a -->\nbody\n<!-- /sif-report", 7),  # closing marker cut short
])
def test_a_malformed_marker_is_one_error_line_naming_file_and_line(tmp_path, capsys, marker, line):
    doc = tmp_path / "RESULTS.md"
    doc.write_text(f"{BEFORE}{marker}\n{AFTER}")
    old = doc.read_text()
    assert main(["results", str(doc), "--outputs", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and err.startswith(f"error: {doc}, line {line}: "), err
    assert doc.read_text() == old


def test_a_missing_document_is_one_error_line(tmp_path, capsys):
    assert main(["results", str(tmp_path / "nowhere.md")]) == 2
    err = capsys.readouterr().err
    assert err.strip() == f"error: {tmp_path / 'nowhere.md'}: no such file (the results document, e.g. docs/RESULTS.md)"


def test_the_project_results_document_has_well_formed_blocks():
    """docs/RESULTS.md parses, and its blocks name run directories under outputs/ (what `sif results` reads)."""
    path = REPO / "docs" / "RESULTS.md"
    blocks = parse_blocks(path.read_text().split("\n"), path)
    assert len(blocks) >= 3
    assert all(run.startswith("outputs/") for block in blocks for run in block.runs)
