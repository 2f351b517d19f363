"""Launching stage 06's training on several processes or machines: ``accelerate launch -m sif_lib.grpo``.

A Jupyter kernel cannot host multi-process training, so when ``grpo.num_processes > 1`` notebook 06 runs
:func:`launch_command` and waits; the same command is what a cluster job runs on every node (the README's Slurm
recipe). Each process runs :func:`main`: it trains with :func:`sif_lib.grpo.trainer.train_grpo`, dies with its
launcher, and tears its process group down before it exits.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from sif_lib.core.errors import InputError, ServiceError
from sif_lib.grpo.config import device_of
from sif_lib.grpo.trainer import train_grpo
from sif_lib.runner.runs import RunContext


def launch_command(ctx: RunContext, machine_args: Sequence[str] = ()) -> list[str]:
    """``accelerate launch`` of this module on ``grpo.num_processes`` processes (in all, over every machine).

    The shipped accelerate configs are written for GPU servers (bf16); on a CPU run the flags adapt them rather
    than a copy: ``--mixed_precision no``, since the CPU trains in fp32 (``run.dtype``), and DeepSpeed then
    runs on its CPU accelerator with gloo. ``machine_args`` are added as given, e.g. ``--num_machines 2
    --machine_rank 1 --main_process_ip HOST --main_process_port PORT`` on each machine of a multi-node run.
    """
    g = ctx.params.grpo
    cmd = [sys.executable, "-m", "accelerate.commands.launch"]
    if g.accelerate_config:
        cmd += ["--config_file", str(Path(g.accelerate_config))]
    else:
        # torchrun-style processes; on a machine without CUDA they train on CPU over gloo (use_cpu=True).
        cmd += ["--multi_gpu"]
    if device_of(ctx.params) == "cpu":
        cmd += ["--mixed_precision", "no"]
    cmd += ["--num_processes", str(g.num_processes), *machine_args]
    return cmd + ["-m", "sif_lib.grpo", "--params", str(ctx.root / "params.yaml"), "--run-dir", str(ctx.root)]


def run_streaming(cmd: Sequence[str], echo=None) -> None:
    """Run a command, copying its output through as it comes (progress bars included); raise on failure."""
    echo = echo or (lambda text: (sys.stdout.write(text), sys.stdout.flush()))
    tail = b""
    proc = subprocess.Popen(list(cmd), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        while chunk := os.read(proc.stdout.fileno(), 4096):
            tail = (tail + chunk)[-4000:]
            echo(chunk.decode("utf-8", errors="replace"))
        code = proc.wait()
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    if code != 0:
        last = tail.decode("utf-8", errors="replace").strip().splitlines()[-15:]
        raise RuntimeError(f"{' '.join(cmd[:4])} ... exited with status {code}:\n" + "\n".join(last))


def _exit_with_launcher() -> None:
    """Ask Linux to kill this worker when its launcher dies. torchrun starts each worker in a session of its own,
    so a launcher killed with SIGKILL (an OOM kill, a scheduler's cancel) would otherwise leave the workers
    training on, writing checkpoints under a run that is about to be resumed."""
    if not sys.platform.startswith("linux"):
        return
    launcher = os.getppid()
    libc = ctypes.CDLL(None, use_errno=True)
    pr_set_pdeathsig = 1
    libc.prctl(pr_set_pdeathsig, signal.SIGKILL)
    if os.getppid() != launcher:  # the launcher died before the request took effect
        os.kill(os.getpid(), signal.SIGKILL)


def _close_process_group() -> None:
    """Tear the process group down before exit; without it a rank can abort on exit (SIGABRT in gloo)."""
    import torch.distributed as dist  # heavy: torch (this module is imported by stage 06's notebook too)

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sif_lib.grpo",
                                     description="Train the GRPO policy of a run directory (stage 06's training).")
    parser.add_argument("--params", required=True, help="params YAML (normally the run's own params.yaml)")
    parser.add_argument("--run-dir", required=True, help="run directory with data/ and rm/")
    args = parser.parse_args(argv)
    if "LOCAL_RANK" in os.environ:
        _exit_with_launcher()
    try:
        ctx = RunContext.open(args.run_dir, args.params)
        result = train_grpo(ctx)
    except InputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except ServiceError as err:  # the reward service stopped answering: one line, no traceback per process
        print(f"error: {err}", file=sys.stderr)
        return 1
    finally:
        _close_process_group()
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"trained to step {result['global_step']} (resumed from {result['resumed_from']}); "
              f"saved {result['saved_to']}")
    return 0
