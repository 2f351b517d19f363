"""The workloads and the reference implementations that ``sif bench verifiers`` and ``sif bench scoring`` measure
our scorers against.

* **Data** is read from ``shared/benchmarks/`` beside the checkout (or beside the working directory): IFEval's
  GPT-4 golden responses (``ifeval/gpt4_golden_dev.jsonl``, prompts and responses in one file) and IFBench's
  published dev responses (``ifbench/``). :func:`ifbench_workload` writes the IFBench prompts those responses
  answer, less any prompt with an instruction whose check cannot run here (``words:start_verb`` without NLTK's
  tagger data), so that both sides score the same instructions.
* **Throughput in process** (``sif bench verifiers``): :func:`reference_loop` times IFBench's reference the way
  ours is timed, one untimed pass and then ``repeats`` timed passes of strict and loose scoring over the workload,
  in a child process (:data:`_IFBENCH_LOOP`).
* **References** are never dependencies: each is a checkout named on the command line. IFEval's is
  google-research's ``instruction_following_eval`` (the folder, or the folder above it), run as
  ``python -m instruction_following_eval.evaluation_main``; IFBench's is a checkout of allenai/IFBench, run as
  ``python run_eval.py`` in it. They run in a child process (their own imports and NLTK set-up stay out of ours),
  under :data:`OFFLINE_PRELUDE`, which makes every network call fail: the references download NLTK data they lack
  when they are imported, and a benchmark must not reach the network. IFEval's makes no call with the data
  present; IFBench's asks for NLTK's old ``punkt`` pickle and the tagger on every import, is refused, prints
  ``[nltk_data] Error loading ...`` and goes on (neither is used by the checks measured).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from sif_lib.constraints.ifbench import missing_resources
from sif_lib.core.errors import InputError
from sif_lib.core.io import read_jsonl, write_jsonl

__all__ = ["OFFLINE_PRELUDE", "ifbench_reference", "ifbench_workload", "ifeval_reference", "reference_command",
           "reference_loop", "reference_verdicts", "shared_file"]

_SHARED = Path("shared") / "benchmarks"

# Python source run with ``python -c`` before a reference: sockets refuse to connect or resolve, then
# ``argv[1]`` (``module`` or ``path``) says how ``argv[2]`` runs, with ``argv[2:]`` as its own argv.
OFFLINE_PRELUDE = """\
import runpy, socket, sys
def _refuse(*args, **kwargs):
    raise OSError("network access is refused while a reference implementation is measured")
socket.socket.connect = socket.socket.connect_ex = socket.socket.sendto = _refuse
socket.create_connection = socket.getaddrinfo = socket.gethostbyname = _refuse
"""
_RUN = """\
kind, target = sys.argv[1], sys.argv[2]
sys.argv = sys.argv[2:]
if kind == "module":
    runpy.run_module(target, run_name="__main__", alter_sys=True)
else:
    runpy.run_path(target, run_name="__main__")
"""


def shared_file(*parts: str) -> Path:
    """``shared/benchmarks/<parts>`` beside the checkout, or beside the working directory; InputError naming
    where it was looked for."""
    candidates = [Path(__file__).resolve().parents[3] / _SHARED.joinpath(*parts),
                  Path.cwd().resolve().parent / _SHARED.joinpath(*parts)]
    for path in candidates:
        if path.exists():
            return path
    raise InputError(f"{candidates[0]}: not found (the benchmark data lives in shared/ beside the checkout)")


def ifbench_workload(folder: Path) -> tuple[Path, Path, dict[str, int]]:
    """``(input data, responses, left out)``: writes ``folder/ifbench_dev_input.jsonl``, the IFBench test rows
    that have a published dev response, less those with an instruction whose check cannot run here; ``left out``
    counts those instructions by id (every instruction of a left-out prompt is counted)."""
    responses = shared_file("ifbench", "dev_responses.jsonl")
    answered = {str(row["key"]) for row in read_jsonl(responses)}
    rows = [row for row in read_jsonl(shared_file("ifbench", "IFBench_test.jsonl")) if str(row["key"]) in answered]
    unavailable = missing_resources(i for row in rows for i in row["instruction_id_list"])
    kept, left_out = [], {}
    for row in rows:
        if any(i in unavailable for i in row["instruction_id_list"]):
            for instruction_id in row["instruction_id_list"]:
                left_out[instruction_id] = left_out.get(instruction_id, 0) + 1
        else:
            kept.append(row)
    path = Path(folder) / "ifbench_dev_input.jsonl"
    write_jsonl(path, kept)
    return path, responses, left_out


def ifbench_reference(path: str | Path) -> Path:
    """The root of an allenai/IFBench checkout (``run_eval.py``, ``evaluation_lib.py``, ``ifbench/``)."""
    root = Path(path).expanduser().resolve()
    missing = [name for name in ("run_eval.py", "evaluation_lib.py", "ifbench/instructions_registry.py")
               if not (root / name).is_file()]
    if missing:
        raise InputError(f"{root}: not an allenai/IFBench checkout (no {', '.join(missing)})")
    return root


def ifeval_reference(path: str | Path) -> Path:
    """The folder that holds google-research's ``instruction_following_eval`` package, given it or that folder."""
    given = Path(path).expanduser().resolve()
    root = given.parent if given.name == "instruction_following_eval" else given
    if not (root / "instruction_following_eval" / "evaluation_main.py").is_file():
        raise InputError(f"{given}: no instruction_following_eval/evaluation_main.py there (name google-research's "
                         f"instruction_following_eval folder, or the folder above it)")
    return root


def reference_command(python: str, benchmark: str, input_data: Path, responses: Path, output_dir: Path) -> list[str]:
    """The whole-process command of a reference scorer (run in its root), offline."""
    kind, target = ("module", "instruction_following_eval.evaluation_main") if benchmark == "ifeval" \
        else ("path", "run_eval.py")
    return [python, "-c", OFFLINE_PRELUDE + _RUN, kind, target, f"--input_data={input_data}",
            f"--input_response_data={responses}", f"--output_dir={output_dir}"]


def reference_verdicts(output_dir: Path) -> dict[str, list[list[bool]]]:
    """``{"strict": [...], "loose": [...]}``: each prompt's instruction verdicts from a reference's result files
    (IFBench's carry the responses file's name as a prefix)."""
    found = {}
    for mode in ("strict", "loose"):
        files = sorted(Path(output_dir).glob(f"*eval_results_{mode}.jsonl"))
        if not files:
            raise InputError(f"{output_dir}: the reference wrote no eval_results_{mode}.jsonl")
        found[mode] = [row["follow_instruction_list"] for row in map(json.loads, files[0].read_text().splitlines())]
    return found


# Times the IFBench reference's own strict and loose functions over the workload, as run_eval.py calls them:
# argv is root, input data, responses, repeats; prints seconds, the first (untimed) pass and its verdicts as JSON.
_IFBENCH_LOOP = """\
import json, sys, time
root, input_path, responses_path, repeats = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
sys.path.insert(0, root)
import evaluation_lib
inputs = evaluation_lib.read_prompt_list(input_path)
responses = evaluation_lib.read_prompt_to_response_dict(responses_path)
def one_pass():
    return [(evaluation_lib.test_instruction_following_strict(inp, responses).follow_instruction_list,
             evaluation_lib.test_instruction_following_loose(inp, responses).follow_instruction_list)
            for inp in inputs]
start = time.perf_counter()
verdicts = one_pass()
warmup = time.perf_counter() - start
elapsed = 0.0
for _ in range(repeats):
    start = time.perf_counter()
    one_pass()
    elapsed += time.perf_counter() - start
print(json.dumps({"seconds": elapsed, "warmup_s": warmup, "verdicts": verdicts}))
"""


def reference_loop(python: str, root: Path, input_data: Path, responses: Path, repeats: int,
                   timeout: int = 1800) -> dict:
    """The IFBench reference timed in a child process (``seconds`` over ``repeats`` passes, ``warmup_s``, and
    ``verdicts``: per prompt, its strict and loose lists); InputError with its last line of output when it fails
    (a package or NLTK data file it needs is missing, say)."""
    try:
        proc = subprocess.run([python, "-c", OFFLINE_PRELUDE + _IFBENCH_LOOP, str(root), str(input_data),
                               str(responses), str(repeats)], cwd=root, capture_output=True, text=True,
                              timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise InputError(f"the reference at {root} did not run: {err}") from None
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise InputError(f"the reference at {root} failed (exit {proc.returncode}): {last}")
    return json.loads(proc.stdout.strip().splitlines()[-1])
