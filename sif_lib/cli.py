"""The ``sif`` command (also ``python -m sif_lib``).

    sif run PARAMS.yaml [--run-id ID] [--from STAGE] [--to STAGE]    run the notebook pipeline
            [--only STAGE]
            [--set SECTION.KEY=VALUE ...] [--reuse RUN_DIR]           (override params; copy earlier stages)
            [--seeds 0,1,2]                                           (GRPO and evaluation once per seed)
    sif status RUN_DIR                                                one line per stage: state, times, memory
    sif params [PARAMS.yaml]                                          check a params file, or list every field
    sif model prepare [SPEC]                                          convert/cache a model spec
    sif ifeval score --input-data F --responses F --output-dir D     score IFEval responses
    sif ifbench score --input-data F --responses F --output-dir D    score IFBench responses
    sif serve-rm --model DIR [--host 127.0.0.1 --port N]              serve the reward model over HTTP
    sif bench verifiers|scoring|reward|grpo|serve-rm|generate          print speed and memory figures
    sif compare RUN_DIR RUN_DIR...                                    compare runs (table and HTML), across seeds too
    sif report RUN_DIR... --markdown [--output FILE]                  the measured tables as Markdown
    sif results [DOC] [--outputs DIR] [--strict]                      regenerate docs/RESULTS.md's tables
    sif compare-rm RUN_DIR RUN_DIR...                                 compare their reward models (stage 04)
    sif rewrites RUN_DIR                                              IFEval ids a rule rewrite can make met

Bad input ends with one line on stderr naming the file, line or key, and exit status 2.
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

from sif_lib.config.params import describe_params
from sif_lib.core.errors import InputError
from sif_lib.runner.runlock import refuse_if_running
from sif_lib.runner.seed_runs import compare_command, display_path
from sif_lib.synthesis.params_checks import check_constraint_ids, load_checked_params

# Each subcommand imports the module it runs when it runs: `sif params` or `sif status` must answer in a moment,
# not after importing the training, serving and benchmarking code (and their imports) they never use.


def _terminate_as_interrupt(signum, frame) -> None:
    raise KeyboardInterrupt  # a scheduler's SIGTERM stops a run the way Ctrl-C does


def _cmd_run(args: argparse.Namespace) -> int:
    # A run directory another `sif run` is writing is refused before the runner's imports, which take seconds.
    refuse_if_running(args.params, args.outputs, args.run_id, args.from_stage, args.only, args.to_stage, args.reuse,
                      args.seeds)
    from sif_lib.runner import pipeline

    overrides = pipeline.parse_overrides(args.set) if args.set else None
    signal.signal(signal.SIGTERM, _terminate_as_interrupt)
    try:
        if args.seeds is not None:
            run_dirs = pipeline.run_seeds(args.params, args.seeds, run_id=args.run_id, outputs=args.outputs,
                                          overrides=overrides, reuse=args.reuse, log_output=args.verbose,
                                          from_stage=args.from_stage, to_stage=args.to_stage, only=args.only,
                                          space_check=not args.no_space_check, checks=(check_constraint_ids,),
                                          answers_from=tuple(args.answers_from or ()))
        else:
            run_dir = pipeline.run_pipeline(args.params, run_id=args.run_id, from_stage=args.from_stage,
                                            to_stage=args.to_stage, only=args.only, outputs=args.outputs,
                                            log_output=args.verbose, overrides=overrides, reuse=args.reuse,
                                            space_check=not args.no_space_check, checks=(check_constraint_ids,),
                                            answers_from=tuple(args.answers_from or ()))
    except pipeline.StageFailed as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except pipeline.RunInterrupted as err:
        print(err, file=sys.stderr)
        return 130
    if args.seeds is None:
        print(f"run finished: {run_dir}")
        return 0
    print("seed runs finished:")
    print("\n".join(f"  {display_path(d)}" for d in run_dirs))
    print("compare them with:")
    print(f"  {compare_command(run_dirs)}")
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    from sif_lib.runner.pipeline import stage_lines

    print("\n".join(stage_lines(Path(args.run_dir))))
    return 0


def _cmd_params(args: argparse.Namespace) -> int:
    if args.params:
        from sif_lib.grpo.config import describe_method

        params = load_checked_params(args.params)
        print(f"{args.params}: ok ({params.description or 'no description'})")
        print(describe_method(params))
    else:
        print(describe_params())
    return 0


def _cmd_model(args: argparse.Namespace) -> int:
    from sif_lib.policy import models

    print(models.resolve(args.spec))
    return 0


def _cmd_ifeval_score(args: argparse.Namespace) -> int:
    from sif_lib.evaluation.ifeval_scoring import run_score_command

    return run_score_command(args.input_data, args.responses, args.output_dir, allow_missing=args.allow_missing)


def _cmd_ifbench_score(args: argparse.Namespace) -> int:
    from sif_lib.evaluation.ifbench_scoring import run_score_command

    return run_score_command(args.input_data, args.responses, args.output_dir, allow_missing=args.allow_missing,
                             skip_unavailable=args.skip_unavailable)


def _cmd_serve_rm(args: argparse.Namespace) -> int:
    from sif_lib.rm_service.server import serve

    serve(args.model, host=args.host, port=args.port, max_batch=args.max_batch,
          max_request_bytes=args.max_request_bytes, max_pairs=args.max_pairs, device=args.device,
          backlog=args.backlog, max_inflight=args.max_inflight, served_model_name=args.served_model_name,
          verbose=not args.quiet)
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    if args.what == "verifiers":
        from sif_lib.bench.verifiers import bench_verifiers

        bench_verifiers(n_repeats=args.repeats, ifbench_reference_path=args.ifbench_reference,
                        reference_python=args.reference_python)
    elif args.what == "scoring":
        from sif_lib.bench.scoring import bench_scoring

        bench_scoring(repeats=args.repeats, ifeval_reference_path=args.ifeval_reference,
                      ifbench_reference_path=args.ifbench_reference, reference_python=args.reference_python)
    elif args.what == "reward":
        from sif_lib.bench.rm_speed import bench_reward

        bench_reward(args.params, rm_dir=args.rm, n_pairs=args.pairs)
    elif args.what == "serve-rm":
        from sif_lib.bench.rm_service_load import bench_serve_rm

        bench_serve_rm(args.params, rm_dir=args.rm, clients=tuple(args.clients),
                       pairs_per_request=args.pairs_per_request, n_requests=args.requests)
    elif args.what == "generate":
        from sif_lib.bench.decode_speed import bench_generate

        bench_generate(args.params, workload=args.workload, n_prompts=args.prompts,
                       methods=args.methods.split(",") if args.methods else None)
    else:
        from sif_lib.bench.grpo_step import bench_grpo

        bench_grpo(args.params, steps=args.steps)
    return 0


def _cmd_compare(args: argparse.Namespace) -> int:
    from sif_lib.analysis.compare_runs import compare_runs

    compare_runs(args.run_dirs, output=args.output)
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from sif_lib.analysis.markdown_tables import write_markdown_report

    write_markdown_report(args.run_dirs, output=args.output)
    return 0


def _cmd_results(args: argparse.Namespace) -> int:
    from sif_lib.analysis.results_doc import regenerate

    regenerate(args.document, outputs=args.outputs, strict=args.strict)
    return 0


def _cmd_compare_rm(args: argparse.Namespace) -> int:
    from sif_lib.analysis.compare_reward_models import compare_reward_models

    compare_reward_models(args.run_dirs)
    return 0


def _cmd_rewrites(args: argparse.Namespace) -> int:
    from sif_lib.analysis.rewrite_coverage import print_rewrite_coverage

    print_rewrite_coverage(args.run_dir)
    return 0


def _int_list(value: str) -> list[int]:
    try:
        return [int(x) for x in value.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {value!r}") from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sif", description="Self-supervised instruction-following workbench.")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="execute the notebook pipeline with papermill")
    run.add_argument("params", help="params YAML file, e.g. params/cpu_demo.yaml")
    run.add_argument("--run-id", help="run directory name under outputs/ (default: <params>-<timestamp>)")
    run.add_argument("--from", dest="from_stage", metavar="STAGE",
                     help="resume: run this stage and the ones after it (default run: the latest of this params file)")
    run.add_argument("--to", dest="to_stage", metavar="STAGE",
                     help="stop after this stage (e.g. --to 05_score_rewards before a multi-node GRPO run)")
    run.add_argument("--only", metavar="STAGE", help="run just this stage")
    run.add_argument("--outputs", help="parent folder of run directories (default: outputs/)")
    run.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE",
                     help="override one params field for this run (repeatable), e.g. --set grpo.max_steps=4; "
                          "kept in the manifest and applied again on resume")
    run.add_argument("--reuse", metavar="RUN_DIR",
                     help="with --from STAGE: start a new run whose stages before STAGE are copied from RUN_DIR "
                          "(same data and reward model; for ablations). Their params must match")
    run.add_argument("--answers-from", action="append", metavar="RUN_DIR",
                     help="copy the base policy's cached answers of RUN_DIR into the run (repeatable); each cache is "
                          "used only where its record (weights, decoding, prompts) matches, else regenerated")
    run.add_argument("--seeds", metavar="N,N,...",
                     help="stages 01-05 once (or from --reuse RUN_DIR), then GRPO and evaluation once per seed, "
                          "each in <run-id>-seed<N> with grpo.seed=N; prints the runs and the sif compare command")
    run.add_argument("--verbose", action="store_true", help="stream notebook cell output")
    run.add_argument("--no-space-check", action="store_true",
                     help="start even when the disk has less free space than the run is estimated to need")
    run.set_defaults(func=_cmd_run)

    status = sub.add_parser("status", help="one line per stage of a run: state, start, seconds, peak memory")
    status.add_argument("run_dir", help="a run directory, e.g. outputs/cpu_demo-20261122-113536")
    status.set_defaults(func=_cmd_status)

    params = sub.add_parser(
        "params", help="check a params file, or list every field with its help",
        description="Check a params file and print its effective GRPO loss settings, or, without a file, list "
                    "every field with its default and help. A params file names only the fields it changes; an "
                    "empty file is an error, and a file holding just {} means every default.")
    params.add_argument("params", nargs="?", help="params YAML file (omit to list every field)")
    params.set_defaults(func=_cmd_params)

    model = sub.add_parser("model", help="model utilities")
    model_sub = model.add_subparsers(dest="model_command", required=True)
    prepare = model_sub.add_parser("prepare", help="convert and cache a model spec; prints its directory")
    prepare.add_argument("spec", nargs="?", default="smollm2-135m-instruct")
    prepare.set_defaults(func=_cmd_model)

    ifeval = sub.add_parser("ifeval", help="IFEval tools")
    ifeval_sub = ifeval.add_subparsers(dest="ifeval_command", required=True)
    score = ifeval_sub.add_parser("score", help="score responses against IFEval prompts, strict and loose")
    score.add_argument("--input-data", required=True, help="prompts JSONL: key, prompt, instruction_id_list, kwargs")
    score.add_argument("--responses", required=True, help="responses JSONL: prompt, response")
    score.add_argument("--output-dir", required=True, help="where eval_results_{strict,loose}.jsonl and scores.json go")
    score.add_argument("--allow-missing", action="store_true", help="count a prompt without a response as failed")
    score.set_defaults(func=_cmd_ifeval_score)

    ifbench = sub.add_parser("ifbench", help="IFBench tools")
    ifbench_sub = ifbench.add_subparsers(dest="ifbench_command", required=True)
    score = ifbench_sub.add_parser("score", help="score responses against IFBench prompts, strict and loose")
    score.add_argument("--input-data", required=True, help="prompts JSONL: key, prompt, instruction_id_list, kwargs")
    score.add_argument("--responses", required=True, help="responses JSONL: prompt (or key), response")
    score.add_argument("--output-dir", required=True, help="where eval_results_{strict,loose}.jsonl and scores.json go")
    score.add_argument("--allow-missing", action="store_true", help="count a prompt without a response as failed")
    score.add_argument("--skip-unavailable", action="store_true",
                       help="leave out instructions whose check cannot run here (words:start_verb without NLTK's "
                            "tagger data) instead of stopping")
    score.set_defaults(func=_cmd_ifbench_score)

    serve = sub.add_parser("serve-rm", help="serve the constraint-wise reward model over HTTP")
    serve.add_argument("--model", required=True, help="reward-model directory (a run's rm/)")
    serve.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8765)
    serve.add_argument("--max-batch", type=int, default=32, help="pairs per forward pass")
    serve.add_argument("--max-pairs", type=int, default=1024, help="most pairs one request may carry")
    serve.add_argument("--max-request-bytes", type=int, default=4_000_000, help="largest request body accepted")
    serve.add_argument("--backlog", type=int, default=1024,
                       help="listen backlog: connections the kernel queues until the server accepts them "
                            "(capped by net.core.somaxconn)")
    serve.add_argument("--max-inflight", type=int, default=256,
                       help="requests handled or queued at once; more are answered 503 with Retry-After")
    serve.add_argument("--served-model-name", help="the name GET /v1/models lists and POST /classify accepts "
                                                   "(default: --model as given)")
    serve.add_argument("--device", default="auto", help="auto, cpu or cuda")
    serve.add_argument("--quiet", action="store_true", help="do not log each request")
    serve.set_defaults(func=_cmd_serve_rm)

    bench = sub.add_parser("bench", help="print speed and memory figures")
    bench.add_argument("what", choices=["verifiers", "scoring", "reward", "grpo", "serve-rm", "generate"])
    bench.add_argument("--repeats", type=int, default=3, help="verifiers: passes over the golden GPT-4 "
                                                              "response set and IFBench's dev responses; "
                                                              "scoring: timed runs of each command")
    bench.add_argument("--ifbench-reference", metavar="PATH",
                       help="verifiers, scoring: a checkout of allenai/IFBench, timed beside our scorer")
    bench.add_argument("--ifeval-reference", metavar="PATH",
                       help="scoring: google-research's instruction_following_eval folder, timed beside ours")
    bench.add_argument("--reference-python", metavar="PYTHON",
                       help="verifiers, scoring: the interpreter that runs the references (default: this one)")
    bench.add_argument("--params", default="params/smoke.yaml", help="reward/grpo/serve-rm: params file")
    bench.add_argument("--rm", help="reward/serve-rm: a trained reward-model directory "
                                    "(default: a fresh head on the backbone)")
    bench.add_argument("--pairs", type=int, default=64, help="reward: pairs to score")
    bench.add_argument("--steps", type=int, default=3, help="grpo: steps to time (after one warm-up step)")
    bench.add_argument("--clients", type=_int_list, default=[1, 32, 200],
                       help="serve-rm: comma-separated numbers of concurrent clients (default 1,32,200)")
    bench.add_argument("--pairs-per-request", type=int, default=4, help="serve-rm: pairs each batched request carries")
    bench.add_argument("--workload", choices=["eval", "rollouts"], default="eval",
                       help="generate: stage 07's greedy IFEval answers, or GRPO's sampled rollouts")
    bench.add_argument("--prompts", type=int, default=64, help="generate: prompts of the workload")
    bench.add_argument("--methods", help="generate: comma-separated subset of the methods (default: all)")
    bench.add_argument("--requests", type=int, default=800,
                       help="serve-rm: requests per batched setting (at least two per client)")
    bench.set_defaults(func=_cmd_bench)

    compare = sub.add_parser("compare", help="compare run directories: a table and an HTML report; "
                                             "runs that differ only in their seed are summarised "
                                             "per setting, with paired tests across seeds")
    compare.add_argument("run_dirs", nargs="+")
    compare.add_argument("--output", help="HTML file (default: outputs/compare-<timestamp>.html)")
    compare.set_defaults(func=_cmd_compare)

    report = sub.add_parser("report", help="the measured tables of run directories as Markdown: stage times, "
                                           "memory and before/after figures per run; settings across seeds")
    report.add_argument("run_dirs", nargs="+")
    report.add_argument("--markdown", action="store_true", required=True, help="write Markdown (the one format)")
    report.add_argument("--output", help="write to this file instead of printing")
    report.set_defaults(func=_cmd_report)

    results = sub.add_parser("results", help="rewrite the sif-report blocks of the results document with the "
                                             "current tables of the runs each names")
    results.add_argument("document", nargs="?", default="docs/RESULTS.md",
                         help="the results document (default: docs/RESULTS.md)")
    results.add_argument("--outputs", help="read the blocks' outputs/RUN directories from this folder instead")
    results.add_argument("--strict", action="store_true",
                         help="a block whose runs are not on this disk is an error (default: keep its body)")
    results.set_defaults(func=_cmd_results)

    compare_rm = sub.add_parser("compare-rm", help="compare the reward models of run directories (stage 04's "
                                                   "held-out AUCs with bootstrap intervals)")
    compare_rm.add_argument("run_dirs", nargs="+")
    compare_rm.set_defaults(func=_cmd_compare_rm)

    rewrites = sub.add_parser("rewrites", help="per IFEval id of a run's stage 07: the base answers that meet it, "
                                               "and those a rule rewrite makes meet it")
    rewrites.add_argument("run_dir")
    rewrites.set_defaults(func=_cmd_rewrites)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except InputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (``sif ... | head``): stop quietly, as Unix tools do.
        sys.stderr.close()
        return 141


if __name__ == "__main__":
    sys.exit(main())
