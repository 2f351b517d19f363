"""Stage 00, the cold start: its SFT data is written by no model but the policy (math by the generator, plans by
rule, instruction answers by the base policy itself), its seeds and questions stay out of the RL set and the
hold-out, the SFT learns, and every later stage loads the SFT model; disabled, the stage is skipped."""

from __future__ import annotations

import json

import pytest
from conftest import REPO

from sif_lib.cold_start.sft_set import THINK_CLOSE, cold_start_math, cold_start_questions, completion, plan
from sif_lib.core.errors import InputError
from sif_lib.core.io import read_jsonl
from sif_lib.runner.runs import COLD_START_POLICY, RunContext
from sif_lib.synthesis import stepped_math
from sif_lib.synthesis.instructions import compose_cold_start, compose_instructions, question_key
from sif_lib.synthesis.seeds import load_seeds

SMOKE = REPO / "params" / "smoke.yaml"
COLD = {"cold_start": {"enabled": True, "n_math": 12, "n_instructions": 12, "answer_max_new_tokens": 16,
                       "epochs": 4.0, "batch_size": 4, "learning_rate": 3.0e-3, "max_length": 256,
                       "level_check_items": 2},
        "synthesis": {"math_steps": 2, "reasoning_share": 0.3}, "model": {"answer_mode": "require_think"}}


def _params(overrides=COLD):
    from sif_lib.config.params import load_params

    return load_params(SMOKE, overrides)


def test_reserved_seeds_and_questions_stay_out_of_the_rl_set_and_the_hold_out():
    params = _params()
    seeds = load_seeds(None)
    cold = compose_cold_start(params, seeds)
    assert len(cold) == 12 and all(row["split"] == "cold_start" and row["id"].startswith("cold-") for row in cold)
    rl = compose_instructions(params, seeds)[0]
    assert {r["seed_id"] for r in cold}.isdisjoint({r["seed_id"] for r in rl})
    assert {r["split"] for r in rl} == {"train", "heldout"}
    questions = cold_start_questions(params)
    assert len(questions) == 12 == len({question_key(i["question"]) for i in cold_start_math(params)})
    from sif_lib.synthesis.instructions import compose_reasoning

    items, _ = compose_reasoning(params, 40, 20, exclude_questions=questions)
    assert items and not questions & {question_key(i["question"]) for i in items}
    # Off, nothing is reserved. The reserved seeds are the last of the shuffled list, so while seeds are ample
    # (390 bundled, 32 used here) the RL set is the same with the cold start on or off.
    off = _params({})
    assert not compose_cold_start(off, seeds) and not cold_start_questions(off)
    assert compose_instructions(off, seeds)[0] == rl
    with pytest.raises(InputError, match="cold_start.n_instructions"):
        compose_instructions(_params({"cold_start": {"enabled": True, "n_instructions": len(seeds.seeds)}}), seeds)


def test_plan_and_completion_are_built_by_rule():
    inst = {"seed": "Write a poem about rain.", "constraints": [
        {"description": "Do not use any commas."}, {"description": "Use a hopeful tone."}]}
    assert plan(inst) == ("The request: Write a poem about rain.\nThe answer must:\n1. Do not use any commas.\n"
                          "2. Use a hopeful tone.")
    assert completion(" plan ", "answer\n") == "<think>\nplan\n</think>\nanswer"


@pytest.fixture(scope="module")
def cold_run(tmp_path_factory):
    """Stage 00 on the tiny model, then stage 01, in one run directory."""
    from sif_lib.stages import s00_cold_start, s01_synthesize_constraints

    root = tmp_path_factory.mktemp("cold") / "run"
    ctx = RunContext.open(root, SMOKE, overrides=COLD, cold_start_stage=True)
    metrics = s00_cold_start.run(ctx, echo=lambda _: None, progress=False)
    s01_synthesize_constraints.run(RunContext.open(root))
    return root, metrics


def test_cold_start_data_comes_from_the_generator_rules_and_the_policy_itself(cold_run):
    root, metrics = cold_run
    rows = read_jsonl(root / "data" / "cold_start.jsonl")
    math = {i["id"]: i for i in cold_start_math(_params())}
    for row in (r for r in rows if r["kind"] == "math"):
        item = math[row["id"]]  # every math row is a generator item, word for word
        assert row["think"] == stepped_math.worked_solution(item) and row["gold"] == item["answer"]
        assert row["answer"] == f"The answer is \\boxed{{{item['answer']}}}." and row["prompt"] == item["prompt"]
        assert row["think_source"] == row["answer_source"] == "generator"
    # Instruction answers: exactly what the base policy (the tiny model) wrote, as its own generation record says.
    record = json.loads((root / "cold_start" / "base_answers" / "generation.json").read_text())
    assert record["policy"]["spec"] == "tiny" and record["sampling"]["temperature"] > 0
    written = {g["prompt"]: g["response"]
               for g in read_jsonl(root / "cold_start" / "base_answers" / "generations.jsonl")}
    cold = {c["prompt"]: c for c in compose_cold_start(_params(), load_seeds(None))}
    instruction_rows = [r for r in rows if r["kind"] == "instruction"]
    assert instruction_rows
    for row in instruction_rows:
        assert row["answer"] == written[row["prompt"]] and row["model"] == "tiny"
        assert row["think"] == plan(cold[row["prompt"]])  # the rule's plan, from the item's own constraints
        assert (row["think_source"], row["answer_source"]) == ("rule", "policy")
    assert {r["split"] for r in rows} == {"sft", "check"}
    # Stage 01 kept the cold start's questions out of data/reasoning.jsonl.
    reasoning = {question_key(r["question"]) for r in read_jsonl(root / "data" / "reasoning.jsonl")}
    assert reasoning and not reasoning & {question_key(i["question"]) for i in math.values()}


def test_sft_learns_and_later_stages_load_the_thinking_policy(cold_run):
    root, metrics = cold_run
    training = metrics["training"]
    assert training["train_steps"] >= 6 and training["final_loss"] < training["first_loss"] - 1.0, training  # nats
    policy = root.joinpath(*COLD_START_POLICY)
    assert (policy / "config.json").is_file() and (policy / "sft.json").is_file()
    assert metrics["check"]["base"]["thinking"]["n"] == metrics["check"]["n"] > 0
    levels = metrics["level_check"]  # two fresh problems per number of steps, strict and flexible
    assert list(levels) == ["1", "2", "3"] and all(f["strict"]["n"] == f["flexible"]["n"] == 2 for f in levels.values())
    later = RunContext.open(root)
    assert later.params.model.policy == str(policy) and later.base_policy == "tiny"
    assert "cold_start.learning_rate" in later.params.reads()  # --reuse compares what made the policy
    own = RunContext.open(root, cold_start_stage=True)
    assert own.params.model.policy == "tiny"
    # A finished SFT is reused by a rerun of the stage (same data and settings), not trained again.
    from sif_lib.stages import s00_cold_start

    lines = []
    again = s00_cold_start.run(own, echo=lines.append, progress=False)
    assert again["training"] == training and any("reusing the thinking policy" in line for line in lines)


def test_a_later_stage_without_the_sft_policy_names_stage_00(tmp_path):
    with pytest.raises(InputError, match="00_cold_start"):
        RunContext.open(tmp_path / "run", SMOKE, overrides=COLD)


def test_disabled_stage_writes_only_that_it_is_off(tmp_path):
    from sif_lib.stages import s00_cold_start

    ctx = RunContext.open(tmp_path / "run", SMOKE, cold_start_stage=True)
    assert s00_cold_start.run(ctx) == {"enabled": False,
                                       "note": "cold_start.enabled is false: the policy is used as it is",
                                       **{k: v for k, v in ctx.read_metrics("00").items()
                                          if k in ("params_read", "peak_rss_mb")}}
    assert not (tmp_path / "run" / "cold_start").exists() and not (tmp_path / "run" / "data").exists()


def test_sft_examples_are_prompt_completion_with_the_closing_tag():
    from sif_lib.cold_start.sft_set import sft_examples

    [example] = sft_examples([{"prompt": "Q?", "think": "t", "answer": "a"}], system_prompt="Be brief.")
    assert example["prompt"] == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Q?"}]
    assert example["completion"][0]["role"] == "assistant" and THINK_CLOSE in example["completion"][0]["content"]


def test_sft_examples_without_think_train_on_the_answer_alone():
    """cold_start.think false: an instruction item's completion is its answer only (no plan, no tags); a math item
    keeps its worked solution in front of the boxed answer, in plain text."""
    from sif_lib.cold_start.sft_set import sft_examples

    rows = [{"kind": "instruction", "prompt": "Q?", "think": "The request: Q", "answer": " all lowercase.\n"},
            {"kind": "math", "prompt": "2+2?", "think": "2 + 2 = 4", "answer": "The answer is \\boxed{4}."}]
    instruction, math = (e["completion"][0]["content"] for e in sft_examples(rows, think=False))
    assert instruction == "all lowercase."
    assert math == "2 + 2 = 4\nThe answer is \\boxed{4}." and THINK_CLOSE not in math


def test_answers_cut_at_their_budget_end_at_their_last_complete_sentence():
    """cold_start.trim_cut_answers: a cut answer keeps its lines up to its last sentence end; one with no sentence
    end is left out; an answer that finished is kept whole even without a final stop."""
    from sif_lib.cold_start.sft_set import instruction_rows, trim_to_sentence_end

    assert trim_to_sentence_end("Tips:\n- Pack early.\n- Label \"boxes.\" Then call the mov") == \
        "Tips:\n- Pack early.\n- Label \"boxes.\""
    assert trim_to_sentence_end("e.g. this is cut") == "e.g." and trim_to_sentence_end("no end at all") == ""
    inst = {"id": "i", "prompt": "P", "seed": "P", "n_constraints": 0, "constraints": []}
    rows = instruction_rows([inst, {**inst, "id": "j"}, {**inst, "id": "k"}],
                            ["One. Two and thr", "never ends", "Whole answer with no stop"], "base",
                            cut=[True, True, False])
    assert [(r["id"], r["answer"], r.get("trimmed", False)) for r in rows] == [
        ("i", "One.", True), ("k", "Whole answer with no stop", False)]


def test_evaluation_baseline_original_compares_with_the_model_before_the_cold_start(tmp_path):
    """With the cold start on, stage 07's base is stage 00's SFT model unless evaluation.baseline is original."""
    from sif_lib.evaluation.generate import baseline_policy

    sft_dir = (tmp_path / "run").joinpath(*COLD_START_POLICY)
    sft_dir.mkdir(parents=True)
    (sft_dir / "config.json").write_text("{}")
    for baseline, expected in (("policy", str(sft_dir)), ("original", "tiny")):
        params = _params({**COLD, "evaluation": {"baseline": baseline}})
        ctx = RunContext(tmp_path / "run", params)
        ctx.use_cold_start_policy()
        assert ctx.base_policy == "tiny" and baseline_policy(ctx).spec == expected


def test_reuse_needs_a_finished_cold_start_when_it_is_on(tmp_path):
    """A run with the cold start on cannot reuse stages of a run that skipped it (their policy was the base
    model); a run with it off reuses a run made before stage 00 existed, recording 00 as skipped."""
    from sif_lib.runner import pipeline
    from sif_lib.runner.stage_table import STAGE_NAMES

    source = tmp_path / "source"
    source.mkdir()
    stages = {s: {"status": "ok", "params_read": []} for s in STAGE_NAMES[1:6]}  # no record of 00 at all
    (source / "manifest.json").write_text(json.dumps({"params": _params({}).to_dict(), "stages": stages}))
    copied = pipeline.reuse_stages(source, tmp_path / "off", list(STAGE_NAMES[:6]), _params({}))
    assert copied[STAGE_NAMES[0]]["status"] == "skipped" and all(copied[s]["status"] == "ok" for s in stages)
    with pytest.raises(InputError, match="00_cold_start is missing, not ok"):
        pipeline.reuse_stages(source, tmp_path / "on", list(STAGE_NAMES[:6]), _params())


def test_sft_ends_turns_where_the_model_stops():
    """The GGUF-converted SmolLM2 tokenizer names <|im_start|> as EOS while the model stops at <|im_end|>: the SFT
    (and the saved thinking policy's tokenizer) take the model's; the tiny model agrees with itself already."""
    from sif_lib.cold_start.sft import turn_end_token
    from sif_lib.policy import models

    for spec, expected in (("smollm2-135m-instruct", "<|im_end|>"), ("tiny", None)):
        tokenizer = models.load_tokenizer(spec)
        model = models.load_causal_lm(spec, dtype="float32", device="cpu")
        assert turn_end_token(model, tokenizer) == expected, spec


@pytest.mark.slow
def test_sif_run_runs_notebook_00_and_later_stages_use_its_policy(tmp_path):
    """Through the runner and papermill: stage 00 runs its notebook when enabled, and stage 03's rollouts are the
    SFT model's (the tiny model stands in for SmolLM2; answer_mode stays after_think, since 16 random tokens
    never close </think>)."""
    from conftest import run_sif

    run_sif("run", "params/smoke.yaml", "--run-id", "cold", "--outputs", str(tmp_path), "--to", "03",
            "--set", "cold_start.enabled=true", "--set", "cold_start.n_math=8", "--set", "cold_start.n_instructions=8",
            "--set", "cold_start.answer_max_new_tokens=8", "--set", "cold_start.batch_size=4",
            "--set", "synthesis.math_steps=1", check=True)
    run = tmp_path / "cold"
    manifest = json.loads((run / "manifest.json").read_text())
    assert all(manifest["stages"][s]["status"] == "ok" for s in list(manifest["stages"])[:4]), manifest["stages"]
    assert (run / "notebooks" / "00_cold_start.ipynb").is_file()
    policy = str(run.joinpath(*COLD_START_POLICY).resolve())
    assert {row["model"] for row in read_jsonl(run / "data" / "rollouts.jsonl")} == {policy}
    assert "cold_start.n_math" in manifest["stages"]["03_generate_pseudo_labels"]["params_read"]
    assert manifest["params"]["model"]["policy"] == "tiny"  # the params keep the base spec
