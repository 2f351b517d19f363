"""A stage that goes well ends its kernel quietly: no ERROR line from the kernel on the terminal.

papermill shuts a stage's kernel down as soon as the reply to its last request (``kernel_info``, sent after the last
cell) arrives, and jupyter_client's shutdown used to interrupt the kernel first (SIGINT). A kernel still finishing
that request's handler (a garbage collection of a large heap, a busy CPU: stage 05 holds the judge and the reward
model) let SIGINT raise there and logged ``[IPKernelApp] ERROR | KeyboardInterrupt caught in kernel.``. The test
makes that pause certain, on a stage that judges with the tiny model as stage 05 does.
"""

from __future__ import annotations

import json

from conftest import SMOKE

from sif_lib.runner import pipeline

STAGE = "01_synthesize_constraints"  # the stage whose notebook the test replaces

JUDGE = """
import json
from pathlib import Path
from sif_lib.policy.generation import ChatGenerator
from sif_lib.stages.s05_analysis.judge import GenerativeJudge

judge = GenerativeJudge(ChatGenerator("tiny", backend="hf", dtype="float32", device="cpu"), max_new_tokens=4)
verdicts = judge.judge([("Hello there.", "Say hello."), ("No.", "Answer in French.")])
Path(run_dir, "metrics").mkdir(parents=True, exist_ok=True)
Path(run_dir, "metrics", "%s.json").write_text(json.dumps({"verdicts": verdicts}))
""" % STAGE  # noqa: UP031 -- the code holds braces of its own

# ipykernel logs each reply at debug level right after sending it, still inside the request's handler: a pause
# there holds the kernel in the handler while papermill, holding the reply, shuts it down.
PAUSE_AFTER_LAST_REPLY = """
import time

def pause_after_reply(message, *args, **kwargs):
    if args and "kernel_info_reply" in str(args[0]):
        time.sleep(1.0)

get_ipython().kernel.log.debug = pause_after_reply
"""


def _notebook(*sources: str) -> dict:
    cells = [{"cell_type": "code", "execution_count": None, "id": f"c{i}", "metadata": {}, "outputs": [],
              "source": source} for i, source in enumerate(sources)]
    cells[0]["metadata"]["tags"] = ["parameters"]
    return {"cells": cells, "nbformat": 4, "nbformat_minor": 5,
            "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}}}


def test_a_kernel_busy_with_its_last_reply_is_shut_down_without_an_error_line(tmp_path, monkeypatch, capfd):
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    (notebooks / f"{STAGE}.ipynb").write_text(json.dumps(_notebook(
        'run_dir = ""\nparams_file = ""', JUDGE, PAUSE_AFTER_LAST_REPLY)))
    monkeypatch.setattr(pipeline, "notebooks_dir", lambda: notebooks)
    said: list[str] = []
    run = pipeline.run_pipeline(SMOKE, run_id="k", outputs=tmp_path / "runs", only="01", echo=said.append)
    record = json.loads((run / "manifest.json").read_text())["stages"][STAGE]
    assert record["status"] == "ok", record
    assert len(json.loads((run / "metrics" / f"{STAGE}.json").read_text())["verdicts"]) == 2
    # The kernel inherits this process's stdout and stderr: what it logs would be on the terminal.
    captured = capfd.readouterr()
    lines = said + captured.out.splitlines() + captured.err.splitlines()
    assert not [line for line in lines if "ERROR" in line or "KeyboardInterrupt" in line], lines
