"""Headless-Chromium checks: a sif_lib widget live in JupyterLab, and report.html rendering offline.

Skipped with a reason when ``/usr/bin/chromium`` or the ``playwright`` package is missing (the browser comes
from the system package manager; playwright's own browser download is never used). Every wait is bounded, and
the JupyterLab server is always stopped, its whole process group with it.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from conftest import REPO

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
TIMEOUT_MS = 60_000

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.is_file(), reason=f"{CHROMIUM} is absent (apt-get install chromium)"),
    pytest.mark.skipif(importlib.util.find_spec("playwright") is None,
                       reason="the playwright Python package is absent (pip install playwright)"),
]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _browser(playwright):
    return playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, timeout=TIMEOUT_MS)


def _api(base: str, token: str, path: str, method: str = "GET"):
    request = urllib.request.Request(f"{base}{path}", method=method, headers={"Authorization": f"token {token}"})
    with urllib.request.urlopen(request, timeout=5) as reply:
        body = reply.read()
    return json.loads(body) if body else None


def _pids_using(marker: str) -> list[int]:
    """Processes whose command line mentions ``marker`` (this test's private runtime dir: its own kernels)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker in (entry / "cmdline").read_bytes().decode(errors="replace"):
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


def _stop(proc: subprocess.Popen, base: str, token: str, runtime: Path) -> None:
    """Ask the server to shut down (it stops its kernels); escalate to signals if it does not."""
    try:
        _api(base, token, "/api/shutdown", method="POST")
        proc.wait(timeout=20)
    except (urllib.error.URLError, OSError, subprocess.TimeoutExpired):
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(proc.pid, sig)
                proc.wait(timeout=10)
                break
            except ProcessLookupError:
                break
            except subprocess.TimeoutExpired:
                continue
    # Kernels run in sessions of their own; any left behind still name this test's runtime dir.
    for pid in _pids_using(str(runtime)):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@pytest.fixture
def lab(tmp_path):
    """JupyterLab on 127.0.0.1 with a token, serving ``tmp_path/lab``; yields (base URL, token, root)."""
    root = tmp_path / "lab"
    root.mkdir()
    runtime = tmp_path / "jupyter-runtime"
    port, token = _free_port(), secrets.token_hex(16)
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(tmp_path / "jupyter-config"), "JUPYTER_RUNTIME_DIR": str(runtime)}
    cmd = [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
           f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")
    base = f"http://127.0.0.1:{port}"
    with open(tmp_path / "lab.log", "w") as log:
        proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            deadline = time.monotonic() + 60
            while True:
                if proc.poll() is not None:
                    raise AssertionError(f"JupyterLab exited {proc.returncode}: "
                                         f"{(tmp_path / 'lab.log').read_text()[-2000:]}")
                try:
                    _api(base, token, "/api/status")
                    break
                except (urllib.error.URLError, OSError):
                    pass
                if time.monotonic() > deadline:
                    raise AssertionError("JupyterLab did not answer within 60 s")
                time.sleep(0.5)
            yield base, token, root
        finally:
            _stop(proc, base, token, runtime)


def _wait_for_idle_kernel(base: str, token: str, notebook: str, timeout: float = 60) -> None:
    """Until the notebook's kernel has started and is idle: a cell run earlier may be dropped by the page."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for session in _api(base, token, "/api/sessions") or []:
            state = (session.get("kernel") or {}).get("execution_state")
            if session.get("path", "").endswith(notebook) and state == "idle":
                return
        time.sleep(0.5)
    raise AssertionError(f"no idle kernel for {notebook} within {timeout:.0f} s")


def _widget_notebook(path: Path) -> None:
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    cell = nbformat.v4.new_code_cell(
        "import json\n"
        "from sif_lib.widgets.explorer import CurriculumExplorer\n\n"
        "explorer = CurriculumExplorer(json.load(open('curriculum.json')))\n"
        "explorer.widget")
    cell.id = "explorer"
    nb.cells = [cell]
    nbformat.write(nb, path)


def test_curriculum_explorer_renders_and_checks_live_in_jupyterlab(lab, tmp_path):
    from playwright.sync_api import sync_playwright
    from test_evaluation import curriculum_rows

    base, token, root = lab
    (root / "curriculum.json").write_text(json.dumps(curriculum_rows()))
    _widget_notebook(root / "explorer.ipynb")
    with sync_playwright() as p:
        browser = _browser(p)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.set_default_timeout(TIMEOUT_MS)
            page.goto(f"{base}/lab/tree/explorer.ipynb?token={token}")
            page.wait_for_selector(".jp-Notebook .jp-Cell .jp-InputArea-editor")
            _wait_for_idle_kernel(base, token, "explorer.ipynb")
            try:
                page.click(".jp-Cell .jp-InputArea-editor")
                page.keyboard.press("Shift+Enter")
                widget = page.wait_for_selector(".jp-OutputArea .jupyter-widgets.widget-vbox")
                assert widget.is_visible()
                page.wait_for_selector(".jp-OutputArea .widget-dropdown select")
                assert "Ladder of inst-00101" in widget.inner_text()
                assert "0/2 hard constraints satisfied" in widget.inner_text()
                # A keystroke travels to the kernel and the verifiers' verdict comes back.
                page.fill(".jp-OutputArea .jupyter-widgets textarea", "a short answer without any commas")
                page.wait_for_function("() => document.querySelector('.jp-OutputArea .widget-vbox')"
                                       ".innerText.includes('2/2 hard constraints satisfied')")
            finally:
                page.screenshot(path=str(tmp_path / "explorer.png"), full_page=True)
        finally:
            browser.close()
    assert (tmp_path / "explorer.png").stat().st_size > 10_000


@contextlib.contextmanager
def _offline_report_page(report: Path):
    """A Chromium page with ``report`` open, every request beyond file:// refused; yields (page, page errors)
    and, once the browser is closed, asserts that the report tried to reach no network."""
    from playwright.sync_api import sync_playwright

    attempted: list[str] = []

    def only_files(route):
        if route.request.url.startswith("file://"):
            route.continue_()
        else:
            attempted.append(route.request.url)
            route.abort()

    with sync_playwright() as p:
        browser = _browser(p)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.set_default_timeout(TIMEOUT_MS)
            page.route("**/*", only_files)
            errors: list[str] = []
            page.on("pageerror", lambda err: errors.append(str(err)))
            page.goto(report.resolve().as_uri())
            yield page, errors
        finally:
            browser.close()
    assert not attempted, f"the report tried to reach the network: {attempted}"


def _assert_report_renders_offline(report: Path, screenshot: Path, expected_plots: int) -> None:
    with _offline_report_page(report) as (page, errors):
        page.wait_for_selector(".js-plotly-plot .main-svg")
        page.wait_for_function(f"() => document.querySelectorAll('.js-plotly-plot').length >= {expected_plots}")
        plots = page.locator(".js-plotly-plot")
        assert plots.count() == expected_plots
        # Each chart drew its traces (bars or markers), not just an empty frame.
        assert page.locator(".js-plotly-plot g.trace").count() >= expected_plots
        assert page.locator(".js-plotly-plot .point").count() > 0
        page.screenshot(path=str(screenshot), full_page=True)
    assert not errors, errors


def test_exported_report_renders_plotly_offline(tmp_path):
    """export_report on a run whose notebook 07 holds plotly figures (a small executed stand-in notebook)."""
    import nbformat
    from nbclient import NotebookClient

    from sif_lib.evaluation.report import export_report

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_markdown_cell("# Stand-in evaluation notebook"),
                nbformat.v4.new_code_cell("from sif_lib.core import plots\nimport plotly.graph_objects as go\n"
                                          "plots.configure()\ngo.Figure(go.Bar(x=['a', 'b'], y=[1, 3]))"),
                nbformat.v4.new_code_cell("go.Figure(go.Scatter(x=[0, 1], y=[20, 30], mode='markers'))")]
    NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(REPO)}}).execute()
    run = tmp_path / "run"
    (run / "notebooks").mkdir(parents=True)
    nbformat.write(nb, run / "notebooks" / "07_evaluate.ipynb")
    report = export_report(run)
    _assert_report_renders_offline(report, tmp_path / "report.png", expected_plots=2)


@pytest.mark.slow
def test_smoke_run_report_renders_offline(smoke_run, tmp_path):
    _assert_report_renders_offline(smoke_run / "report.html", tmp_path / "smoke-report.png", expected_plots=3)


def test_report_shows_degenerate_figures_and_gallery(tmp_path):
    """Stage 07 and notebook 07 on a built run whose cached answers were rewritten so that one trained answer
    per set turns degenerate while gaining a check: report.html shows the degenerate rows, the clean-prompt
    column and the gallery, offline."""
    from test_evaluation import LOOP, _execute_stage_notebook, evaluated_run, with_degenerate_answers

    from sif_lib.evaluation.report import export_report

    ctx = evaluated_run(tmp_path / "run")
    with_degenerate_answers(ctx)
    _execute_stage_notebook(ctx)
    report = export_report(ctx.root)
    with _offline_report_page(report) as (page, _):
        try:
            heading = page.get_by_role("heading", name=re.compile("Degenerate answers that gained checks"))
            heading.scroll_into_view_if_needed()
            assert heading.is_visible()
            row = page.locator("tr", has_text="Degenerate answers, hold-out (share; lower is better) (n=6)")
            assert row.count() == 1 and row.is_visible()
            assert "(0 of 6)" in row.inner_text() and "(1 of 6)" in row.inner_text()
            assert page.locator("tr", has_text="Degenerate answers, IFEval").first.is_visible()
            assert page.locator("th", has_text="clean prompts: base → trained").first.is_visible()
            assert page.locator("th", has_text="clean prompts: Δ points").first.is_visible()
            clean = page.locator("tr", has_text="Hold-out hard constraints satisfied (verifier)").first
            assert "(n=5)" in clean.inner_text() and "..." not in clean.inner_text()  # shown whole
            examples = page.locator(".sif-degenerate-example")
            assert examples.count() == 2
            first = examples.first
            first.scroll_into_view_if_needed()
            assert first.is_visible()
            text = first.inner_text()
            assert "stuffed" in text and "punctuation:no_comma" in text and LOOP[:40] in text
            assert "Day one is Tokyo" in text  # the base answer, beside the trained one
            assert examples.nth(1).locator("pre").nth(1).is_visible()
        finally:
            page.screenshot(path=str(tmp_path / "degenerate-report.png"), full_page=True)


# The notebook on show: JupyterLab keeps the other open notebooks' cells in the page, hidden.
SHOWN = ".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook"


def _run_all_cells(page, base: str, token: str, notebook: str, timeout_s: float = 180) -> None:
    """Open a notebook as it is, run every cell, and wait until each code cell has run; a cell that raises fails
    the test with its error."""
    page.goto(f"{base}/lab/tree/{notebook}?token={token}")
    page.wait_for_selector(f"{SHOWN} .jp-CodeCell .jp-InputArea-editor")
    _wait_for_idle_kernel(base, token, notebook.rsplit("/", 1)[-1])
    # Command mode, select every cell, run the selection in place: Esc, Ctrl+A, Ctrl+Enter (Shift+Enter would
    # also add an empty cell after the last one).
    page.click(f"{SHOWN} .jp-CodeCell .jp-InputPrompt")
    page.keyboard.press("Escape")
    page.keyboard.press("Control+a")
    page.keyboard.press("Control+Enter")
    # textContent, not innerText: JupyterLab keeps cells scrolled out of view unrendered.
    prompts = f"() => [...document.querySelectorAll('{SHOWN} .jp-CodeCell .jp-InputPrompt')].map(p => p.textContent)"
    failed = f"{SHOWN} .jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']:has-text('Error')"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if page.locator(failed).count():
            raise AssertionError(f"{notebook}: a cell failed:\n{page.locator(failed).first.inner_text()[-2000:]}")
        shown = page.evaluate(prompts)
        if shown and all(re.search(r"\[\d+\]", text) for text in shown):
            return
        time.sleep(0.5)
    raise AssertionError(f"{notebook}: cells still running after {timeout_s:.0f} s (prompts: {page.evaluate(prompts)})")


def test_notebooks_run_as_opened_in_jupyterlab(lab, tmp_path):
    """Notebooks 01 and 02 with their committed parameters cells, nothing injected and nothing edited: the
    relative paths there ("../params/cpu_demo.yaml", "../outputs/interactive") mean the checkout's folders seen
    from notebooks/. The lab serves a copy of the checkout's layout, so the run writes into that copy."""
    import shutil

    from playwright.sync_api import sync_playwright

    base, token, root = lab
    shutil.copytree(REPO / "notebooks", root / "notebooks", ignore=shutil.ignore_patterns("*.ipynb_checkpoints"))
    shutil.copytree(REPO / "params", root / "params")
    with sync_playwright() as p:
        browser = _browser(p)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.set_default_timeout(TIMEOUT_MS)
            try:
                _run_all_cells(page, base, token, "notebooks/01_synthesize_constraints.ipynb")
                page.wait_for_selector(f"{SHOWN} .jp-OutputArea .js-plotly-plot .main-svg")
                _run_all_cells(page, base, token, "notebooks/02_decompose_curriculum.ipynb")
                widget = page.wait_for_selector(f"{SHOWN} .jp-OutputArea .jupyter-widgets.widget-vbox")
                page.wait_for_selector(f"{SHOWN} .jp-OutputArea .widget-dropdown select")
                assert "Ladder of" in widget.inner_text()
            finally:
                page.screenshot(path=str(tmp_path / "notebook-02.png"), full_page=True)
        finally:
            browser.close()
    run = root / "outputs" / "interactive"
    assert (run / "data" / "instructions.jsonl").is_file() and (run / "data" / "curriculum.jsonl").is_file()
    assert (run / "metrics" / "02_decompose_curriculum.json").is_file()
    assert not (root.parent / "params").exists() and not (root.parent / "outputs").exists()
