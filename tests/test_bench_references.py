"""``sif bench verifiers`` (its IFBench part) and ``sif bench scoring``: our scorers timed beside the reference
implementations, which are named on the command line and never imported into our process.

The real references need packages and NLTK data this machine may lack, so the plumbing is tested with stand-in
checkouts laid out like the real ones (allenai/IFBench's ``run_eval.py`` and ``evaluation_lib.py``, google-research's
``instruction_following_eval/evaluation_main.py``) whose verdicts come from our own scorers. Each also tries to
reach the network when imported, as the real ones do when NLTK data is missing: the call must be refused.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import IFEVAL_DIR, SHARED, require_shared

IFBENCH_DIR = SHARED / "benchmarks" / "ifbench"

_NETWORK = '''
import socket
try:
    socket.create_connection(("example.org", 80), timeout=5)
    NETWORK = "reached"
except OSError as err:
    NETWORK = str(err)
'''

_EVALUATION_LIB = _NETWORK + '''
import json, types
from sif_lib.evaluation.{bench}_scoring import score_response

def read_prompt_list(path):
    return [types.SimpleNamespace(**json.loads(line)) for line in open(path) if line.strip()]

def read_prompt_to_response_dict(path):
    found = {{}}
    for row in map(json.loads, open(path)):
        found[row["prompt"]] = found[row["prompt"].strip()] = row["response"]
    return found

def _verdicts(inp, responses, mode):
    response = responses.get(inp.prompt, responses.get(inp.prompt.strip()))
    kwargs = [{{k: v for k, v in kw.items() if v is not None}} for kw in inp.kwargs]
    strict, loose = score_response(response, inp.instruction_id_list, kwargs)
    return types.SimpleNamespace(follow_instruction_list=strict if mode == "strict" else loose)

def test_instruction_following_strict(inp, responses):
    return _verdicts(inp, responses, "strict")

def test_instruction_following_loose(inp, responses):
    return _verdicts(inp, responses, "loose")
'''

_MAIN = '''
import json, os, sys
{import_lib}
args = dict(a[2:].split("=", 1) for a in sys.argv[1:])
inputs = evaluation_lib.read_prompt_list(args["input_data"])
responses = evaluation_lib.read_prompt_to_response_dict(args["input_response_data"])
{makedirs}
for mode in ("strict", "loose"):
    check = getattr(evaluation_lib, "test_instruction_following_" + mode)
    with open(os.path.join(args["output_dir"], "{prefix}eval_results_" + mode + ".jsonl"), "w") as out:
        for inp in inputs:
            out.write(json.dumps({{"follow_instruction_list": check(inp, responses).follow_instruction_list}}) + "\\n")
with open(os.path.join(args["output_dir"], "network.txt"), "w") as out:
    out.write(evaluation_lib.NETWORK)
'''


def _stand_ins(root: Path) -> tuple[Path, Path]:
    """(IFEval reference folder, IFBench checkout), laid out like the real ones."""
    ifbench = root / "IFBench"
    (ifbench / "ifbench").mkdir(parents=True)
    (ifbench / "ifbench" / "instructions_registry.py").write_text("")
    (ifbench / "evaluation_lib.py").write_text(_EVALUATION_LIB.format(bench="ifbench"))
    (ifbench / "run_eval.py").write_text(_MAIN.format(import_lib="import evaluation_lib", prefix="dev_responses-",
                                                      makedirs='os.makedirs(args["output_dir"], exist_ok=True)'))
    ifeval = root / "google-research" / "instruction_following_eval"
    ifeval.mkdir(parents=True)
    (ifeval / "__init__.py").write_text("")
    (ifeval / "evaluation_lib.py").write_text(_EVALUATION_LIB.format(bench="ifeval"))
    (ifeval / "evaluation_main.py").write_text(
        _MAIN.format(import_lib="from instruction_following_eval import evaluation_lib", prefix="",
                     # like google-research's evaluation_main, it writes into --output_dir without creating it
                     makedirs=""))
    return ifeval, ifbench


@pytest.fixture(scope="module")
def stand_ins(tmp_path_factory):
    require_shared()
    if not (IFBENCH_DIR / "dev_responses.jsonl").is_file():
        pytest.skip(f"{IFBENCH_DIR} is absent: the IFBench data lives in ../shared beside the checkout")
    return _stand_ins(tmp_path_factory.mktemp("references"))


def test_ifbench_verifiers_say_when_no_reference_is_named(stand_ins, tmp_path, capsys):
    from sif_lib.bench.verifiers import bench_ifbench
    from sif_lib.constraints.ifbench import missing_resources

    figures = bench_ifbench(1)
    out = capsys.readouterr().out
    n_start_verb = 3  # dev prompts whose only instruction is words:start_verb
    assert figures["responses"] == 164 - (n_start_verb if missing_resources(["words:start_verb"]) else 0)
    assert figures["reference"] is None and "--ifbench-reference PATH" in out and "reference: not measured" in out
    figures = bench_ifbench(1, reference=tmp_path)
    assert figures["reference"] is None and "not an allenai/IFBench checkout" in figures["reference_note"]


def test_ifbench_reference_is_timed_beside_ours_in_a_child_process(stand_ins, capsys):
    from sif_lib.bench.verifiers import bench_ifbench

    _, ifbench = stand_ins
    figures = bench_ifbench(1, reference=ifbench)
    ref = figures["reference"]
    assert ref["agree_strict"] == ref["agree_loose"] == figures["instructions"]
    assert ref["instructions_per_s"] > 0 and ref["root"] == str(ifbench)
    out = capsys.readouterr().out
    assert f"verdicts agree on {figures['instructions']}/{figures['instructions']} strict" in out
    assert "ours / reference" in out


def test_scoring_bench_times_whole_processes_offline(stand_ins, tmp_path, monkeypatch, capsys):
    from sif_lib.bench import scoring

    ifeval, ifbench = stand_ins
    made: list[list[str]] = []
    network: list[str] = []  # what each reference's attempt to reach the network met
    run = scoring.run_timed

    def timed(command, cwd=None):
        made.append(command)
        result = run(command, cwd)
        if command[1] == "-c":
            network.append((Path(command[-1].split("=", 1)[1]) / "network.txt").read_text())
        return result

    monkeypatch.setattr(scoring, "run_timed", timed)
    results = scoring.bench_scoring(1, ifeval_reference_path=ifeval, ifbench_reference_path=ifbench)
    out = capsys.readouterr().out
    golden = sum(1 for line in (IFEVAL_DIR / "gpt4_golden_dev.jsonl").read_text().splitlines() if line.strip())
    assert results["ifeval"]["responses"] == golden
    for name in ("ifeval", "ifbench"):
        found = results[name]
        assert found["ours"]["runs"] == found["reference"]["runs"] == 1
        assert found["ours"]["wall_s"] > 0 and found["reference"]["cpu_s"] > 0
        assert found["reference_note"].startswith("verdicts agree on") and "ours / reference" in out
    agree = results["ifbench"]["reference_note"].split()[3]
    assert agree.split("/")[0] == agree.split("/")[1]
    assert len(made) == 8  # per benchmark: ours and the reference, once untimed and once timed
    # The references ran offline: the network call each makes when imported was refused.
    assert len(network) == 4 and all("refused while a reference" in line for line in network), network
