"""Stage 07: IFEval before/after, the curriculum hold-out, reasoning retention, the summary and report.html.

Most tests use a small hand-built run directory (:func:`build_eval_run`): hand-written curriculum and math rows,
a LoRA adapter with random (non-zero) weights on the tiny model as the "trained" policy, and a fresh reward-model
head on the tiny backbone. It exercises every code path of the stage in seconds without depending on stages
01-06. One slow test checks the same things on the real smoke pipeline run.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import IFEVAL_DIR, REPO, SMOKE, require_shared, run_sif, write_untrained_rm

from sif_lib.core.errors import InputError
from sif_lib.core.io import read_jsonl, write_json, write_jsonl
from sif_lib.evaluation import id_groups
from sif_lib.runner.runs import RunContext

# Small enough for seconds on 2 cores with the tiny model; the figures are real, the model is random.
EVAL_OVERRIDES = {"evaluation": {"limit": 6, "max_new_tokens": 8, "batch_size": 4, "math_items": 3,
                                 "math_max_new_tokens": 8, "holdout_limit": 6}}

NO_COMMA = {"id": "punctuation:no_comma", "kind": "hard", "category": "punctuation",
            "description": "Do not use any commas in your response.", "kwargs": {}}
LOWER = {"id": "change_case:english_lowercase", "kind": "hard", "category": "change_case",
         "description": "Write your entire response in lowercase letters.", "kwargs": {}}
SHORT = {"id": "length_constraints:number_words", "kind": "hard", "category": "length_constraints",
         "description": "Answer with less than 400 words.", "kwargs": {"relation": "less than", "num_words": 400}}
FORMAL = {"id": "tone-formal", "kind": "soft", "category": "Tone and emotion",
          "description": "Keep the tone formal and polite throughout.", "kwargs": {}}
EXAMPLE = {"id": "element-example", "kind": "soft", "category": "Element",
           "description": "Include one concrete example.", "kwargs": {}}


def curriculum_rows() -> list[dict]:
    """Three held-out ladders (L0..Ln, n = 3, 2, 1) and one training ladder, in the stage-02 format."""
    ladders = [("inst-00101", "Describe a lighthouse.", [NO_COMMA, FORMAL, SHORT]),
               ("inst-00102", "Explain how bread rises.", [FORMAL, LOWER]),
               ("inst-00103", "Name three rivers.", [EXAMPLE])]
    rows = []
    for parent, seed, constraints in ladders:
        for k in range(len(constraints) + 1):
            rows.append({"id": f"{parent}-L{k}", "parent": parent, "level": k, "n_constraints": len(constraints),
                         "constraints": constraints[:k],
                         "prompt": " ".join([seed] + [c["description"] for c in constraints[:k]]),
                         "seed_prompt": seed, "split": "heldout"})
    rows.append({"id": "inst-00001-L1", "parent": "inst-00001", "level": 1, "n_constraints": 1,
                 "constraints": [NO_COMMA], "prompt": "Train prompt. Do not use any commas.", "seed_prompt": "x",
                 "split": "train"})
    return rows


def reasoning_rows() -> list[dict]:
    from sif_lib.synthesis.math_items import make_prompt

    items = [("What is 2 + 3?", "5"), ("What is half of 9?", "4.5"), ("What is 7 times 6?", "42"),
             ("What is 10 minus 4?", "6")]
    rows = [{"id": f"math-{i:05d}", "kind": "reasoning", "question": q, "answer": a, "prompt": make_prompt(q),
             "source": "hand", "split": "heldout"} for i, (q, a) in enumerate(items)]
    rows.append({**rows[0], "id": "math-train", "split": "train"})
    return rows


def _save_adapter(target: Path) -> None:
    import torch
    from peft import LoraConfig, get_peft_model

    from sif_lib.policy import models

    torch.manual_seed(1)
    base = models.load_causal_lm("tiny", dtype="float32", device="cpu")
    # Non-zero LoRA weights, so that the "trained" policy really answers differently from the base.
    model = get_peft_model(base, LoraConfig(r=4, lora_alpha=16, target_modules="all-linear", task_type="CAUSAL_LM",
                                            init_lora_weights=False))
    model.save_pretrained(target)


def _save_reward_model(target: Path) -> None:
    write_untrained_rm(target)


def build_eval_run(root: Path, overrides: dict | None = None, with_rm: bool = True) -> RunContext:
    """A run directory with just what stage 07 reads (see the module docstring)."""
    ctx = RunContext.open(root, SMOKE, overrides=overrides or EVAL_OVERRIDES)
    write_jsonl(ctx.path("data", "curriculum.jsonl"), curriculum_rows())
    write_jsonl(ctx.path("data", "reasoning.jsonl"), reasoning_rows())
    _save_adapter(ctx.path("grpo", "adapter"))
    if with_rm:
        _save_reward_model(ctx.path("rm"))
    return ctx


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    """A built run on which stage 07 has run once; returns (ctx, summary, log lines)."""
    require_shared()
    from sif_lib.stages.s07_evaluate import run as run_evaluation_stage

    ctx = build_eval_run(tmp_path_factory.mktemp("eval") / "run")
    log: list[str] = []
    summary = run_evaluation_stage(ctx, echo=log.append)
    return ctx, summary, log


LOOP = " ".join(["*highlighted section*"] * 30)  # no comma: it meets no_comma, and is degenerate
PLAIN = "the lighthouse stands on the rock and guides the ships home at night"
# Answers written over the cached ones (by IFEval key or hold-out id): (base, trained).
DEGENERATE_ANSWERS = {
    "ifeval": {1001: ("Day one is Tokyo, day two is Kyoto and day three is Osaka.", LOOP),
               1019: ("what are the two young boys holding in their hands?",) * 2},
    "holdout": {"inst-00101-L1": ("The lighthouse is tall, white and old and it guides the ships.", LOOP),
                **{pid: (PLAIN,) * 2 for pid in ("inst-00101-L2", "inst-00101-L3", "inst-00102-L1",
                                                 "inst-00102-L2", "inst-00103-L1")}},
}


def evaluated_run(root: Path) -> RunContext:
    """A built run (:func:`build_eval_run`) on which stage 07 has run once."""
    require_shared()
    from sif_lib.stages.s07_evaluate import run as run_evaluation_stage

    ctx = build_eval_run(root)
    run_evaluation_stage(ctx, echo=lambda _: None)
    return ctx


def with_degenerate_answers(ctx: RunContext, echo=lambda _: None) -> dict:
    """Write :data:`DEGENERATE_ANSWERS` over the cached answers of an evaluated run and rerun stage 07 (which
    reuses the answers and rescores them); returns the summary. One trained answer per set turns degenerate while
    gaining its check (``no_comma``); the other rewritten prompts get the same clean answer on both sides."""
    from sif_lib.stages.s07_evaluate import run as run_evaluation_stage

    for name, side in (("base", 0), ("trained", 1)):
        for key, field in (("ifeval", "key"), ("holdout", "id")):
            path = ctx.root / "eval" / f"{key}_{name}" / "generations.jsonl"
            rows = read_jsonl(path)
            for row in rows:
                if row[field] in DEGENERATE_ANSWERS[key]:
                    row["response"] = DEGENERATE_ANSWERS[key][row[field]][side]
            write_jsonl(path, rows)
    return run_evaluation_stage(ctx, echo=echo)


# ---------------------------------------------------------------------------------------------------------------
# Hold-out: selection and aggregation against hand-computed values.

def test_load_holdout_keeps_heldout_levels_and_balances(tmp_path):
    from sif_lib.evaluation.curriculum_holdout import load_holdout

    path = tmp_path / "curriculum.jsonl"
    write_jsonl(path, curriculum_rows())
    every = load_holdout(path)
    assert [r["id"] for r in every] == ["inst-00101-L1", "inst-00102-L1", "inst-00103-L1", "inst-00101-L2",
                                        "inst-00102-L2", "inst-00101-L3"]  # no L0, no train row
    # A cap of 3 takes one per level before a second from any level.
    assert sorted(r["level"] for r in load_holdout(path, limit=3)) == [1, 2, 3]
    assert sorted(r["level"] for r in load_holdout(path, limit=4)) == [1, 1, 2, 3]


def test_load_holdout_errors_name_the_file_and_line(tmp_path):
    from sif_lib.evaluation.curriculum_holdout import load_holdout

    path = tmp_path / "curriculum.jsonl"
    write_jsonl(path, [{"id": "a", "level": 1, "prompt": "p", "split": "heldout"}])
    with pytest.raises(InputError, match=r"curriculum.jsonl:1: .*'constraints'"):
        load_holdout(path)
    write_jsonl(path, [r for r in curriculum_rows() if r["split"] == "train"])
    with pytest.raises(InputError, match="no held-out rows"):
        load_holdout(path)


def test_holdout_aggregate_matches_hand_computation():
    from sif_lib.evaluation.curriculum_holdout import aggregate, compare

    def v(prompt, level, kind, category, score):
        return {"id": prompt, "level": level, "constraint": category, "kind": kind, "category": category,
                "score": score}

    verdicts = [
        v("a", 1, "hard", "punctuation", 1.0),
        v("b", 1, "soft", "Tone", 0.2),
        v("c", 2, "hard", "punctuation", 0.0), v("c", 2, "soft", "Tone", 0.8),
        v("d", 2, "hard", "punctuation", 1.0), v("d", 2, "hard", "change_case", 1.0),
    ]
    out = aggregate(verdicts)
    assert out["n_prompts"] == 4 and out["n_constraints"] == 6
    assert out["hard"] == pytest.approx(3 / 4)
    assert out["soft"] == pytest.approx(0.5)
    # composite: mean over prompts of the mean over each prompt's constraints = (1 + .2 + .4 + 1) / 4
    assert out["composite"] == pytest.approx(0.65)
    assert out["levels"]["L1"]["composite"] == pytest.approx(0.6)
    assert out["levels"]["L2"]["composite"] == pytest.approx(0.7)
    assert out["levels"]["L2"]["hard"] == pytest.approx(2 / 3)
    # prompts with hard constraints: a (all pass), c (fails), d (all pass)
    assert out["all_hard_satisfied"] == pytest.approx(2 / 3)
    assert out["categories"]["punctuation"] == {"kind": "hard", "n": 3, "mean": pytest.approx(2 / 3)}
    assert out["categories"]["Tone"]["mean"] == pytest.approx(0.5)

    better = aggregate([{**x, "score": 1.0} for x in verdicts])
    delta = compare(out, better)
    assert delta["composite"] == pytest.approx(0.35)
    assert delta["levels"]["L1"]["soft"] == pytest.approx(0.8)


def test_unscored_soft_constraints_are_counted_not_guessed():
    from sif_lib.evaluation.curriculum_holdout import aggregate

    out = aggregate([{"id": "a", "level": 1, "constraint": "x", "kind": "hard", "category": "p", "score": 0.0},
                     {"id": "a", "level": 1, "constraint": "y", "kind": "soft", "category": "T", "score": None}])
    assert out["soft"] is None and out["n_soft_unscored"] == 1
    assert out["composite"] == 0.0


class FixedScorer:
    """Stands in for the reward model: records what it was asked and answers a fixed probability."""

    def __init__(self, probability: float):
        self.probability = probability
        self.seen: list[tuple[str, str]] = []

    def score(self, pairs):
        self.seen.extend(pairs)
        return [self.probability] * len(pairs)


def _mode(answer_mode: str):
    from sif_lib.config.params import params_from_dict

    return params_from_dict({"model": {"answer_mode": answer_mode}})


def test_holdout_verdicts_use_verifier_rm_and_answer_mode():
    from sif_lib.evaluation.curriculum_holdout import holdout_verdicts

    row = {"id": "x-L3", "level": 3, "constraints": [NO_COMMA, FORMAL, LOWER]}
    scorer = FixedScorer(0.25)
    verdicts = holdout_verdicts(_mode("after_think"), [row, row], ["all lowercase and no commas", "Hello, World"],
                                 scorer)
    assert [v["score"] for v in verdicts] == [1.0, 0.25, 1.0, 0.0, 0.25, 0.0]
    assert scorer.seen == [("all lowercase and no commas", FORMAL["description"]),
                           ("Hello, World", FORMAL["description"])]

    # Only the text after </think> is judged; under require_think a missing tag scores 0 everywhere.
    scorer = FixedScorer(0.9)
    thought = "<think>Hmm, commas, Capitals.</think>\nfine answer"
    assert [v["score"] for v in holdout_verdicts(_mode("after_think"), [row], [thought], scorer)] == [1.0, 0.9, 1.0]
    assert scorer.seen == [("fine answer", FORMAL["description"])]
    assert [v["score"] for v in holdout_verdicts(_mode("require_think"), [row], ["fine answer"], scorer)] == [0.0] * 3


# ---------------------------------------------------------------------------------------------------------------
# Reasoning.

def test_reasoning_accuracy_matches_hand_computation(tmp_path):
    from sif_lib.evaluation.math_accuracy import accuracy, score_responses, synthetic_task

    path = tmp_path / "reasoning.jsonl"
    write_jsonl(path, reasoning_rows())
    task = synthetic_task(path, limit=3)
    assert [i["id"] for i in task.items] == ["math-00000", "math-00001", "math-00002"]
    responses = ["so 2 + 3 = \\boxed{5}", "half is \\boxed{9/2}", "7 times 6 is 42"]  # the last has no box
    correct = score_responses(task, responses, "after_think")
    assert correct == [True, True, False]
    # With the exact (Clopper-Pearson) 95% interval of 2 of 3.
    assert accuracy(correct) == {"n": 3, "correct": 2, "accuracy": pytest.approx(2 / 3, abs=1e-6),
                                 "ci95": [0.094299, 0.991596]}
    assert score_responses(task, ["<think>\\boxed{5}</think> \\boxed{4}"] * 3, "after_think") == [False] * 3
    assert accuracy([]) == {"n": 0, "correct": 0, "accuracy": None, "ci95": None}


def test_gsm8k_path_that_does_not_exist_names_the_key():
    from sif_lib.evaluation.math_accuracy import gsm8k_task

    with pytest.raises(InputError, match="evaluation.gsm8k_path"):
        gsm8k_task("/no/such/gsm8k.jsonl", 10)


# ---------------------------------------------------------------------------------------------------------------
# IFEval inputs and the trained policy.

def test_ifeval_missing_path_names_the_key(tmp_path, monkeypatch):
    from sif_lib.config import params as params_module
    from sif_lib.evaluation.benchmarks import IFEvalTask

    ctx = RunContext.open(tmp_path / "run", SMOKE, overrides={"evaluation": {"ifeval_path": "/no/such/input.jsonl"}})
    with pytest.raises(InputError, match=r"evaluation\.ifeval_path.*/no/such/input.jsonl"):
        IFEvalTask.load(ctx.params, tmp_path)
    # Nowhere to find them: no param, no $SIF_IFEVAL_PATH, no ../shared from here or from the checkout.
    monkeypatch.delenv(params_module.IFEVAL_ENV, raising=False)
    monkeypatch.setattr(params_module, "CHECKOUT", None)
    monkeypatch.chdir(tmp_path)
    ctx = RunContext.open(tmp_path / "run", SMOKE, overrides={"evaluation": {"ifeval_path": None}})
    assert ctx.params.evaluation.ifeval_path is None
    with pytest.raises(InputError, match=r"evaluation\.ifeval_path: no IFEval prompts "
                                         r"found.*SIF_IFEVAL_PATH.*ifeval_hub_id"):
        IFEvalTask.load(ctx.params, tmp_path)


def test_ifeval_limit_is_the_first_n_prompts(tmp_path):
    require_shared()
    from sif_lib.evaluation.benchmarks import IFEvalTask

    ctx = RunContext.open(tmp_path / "run", SMOKE, overrides={"evaluation": {"limit": 5}})
    task = IFEvalTask.load(ctx.params, tmp_path)
    official = read_jsonl(IFEVAL_DIR / "input_data.jsonl")
    assert task.rows == official[:5]
    assert read_jsonl(task.input_path) == official[:5]


def test_missing_trained_policy_is_a_clear_error(tmp_path):
    from sif_lib.policy.answers import trained_policy

    ctx = RunContext.open(tmp_path / "run", SMOKE)
    with pytest.raises(InputError, match="06_train_grpo"):
        trained_policy(ctx.root, ctx.params)


# ---------------------------------------------------------------------------------------------------------------
# The stage on a built run.

def test_stage_writes_summary_and_metrics(evaluated):
    ctx, summary, _ = evaluated
    assert json.loads((ctx.root / "eval" / "summary.json").read_text()) == summary
    assert ctx.read_metrics("07_evaluate") == summary
    for name in ("base", "trained"):
        figures = summary["ifeval"][name]
        assert figures["n_prompts"] == 6
        assert figures["prompt_loose"] >= figures["prompt_strict"] and figures["inst_loose"] >= figures["inst_strict"]
        # Prompt-level strict is the share of prompts whose every instruction passes: check it from the scores.
        scored = read_jsonl(ctx.root / "eval" / f"ifeval_{name}" / "eval_results_strict.jsonl")
        assert figures["prompt_strict"] == pytest.approx(sum(r["follow_all_instructions"] for r in scored) / 6)
        rows = read_jsonl(ctx.root / "eval" / f"ifeval_{name}" / "responses.jsonl")
        assert [set(r) for r in rows] == [{"prompt", "response"}] * 6
    assert summary["policies"]["trained"]["adapter"].endswith("grpo/adapter")
    assert summary["decoding"]["ifeval"]["temperature"] == 0.0 and summary["decoding"]["math"]["max_new_tokens"] == 8
    # The random adapter must actually change what the model says.
    base = read_jsonl(ctx.root / "eval" / "ifeval_base" / "responses.jsonl")
    trained = read_jsonl(ctx.root / "eval" / "ifeval_trained" / "responses.jsonl")
    assert [r["response"] for r in base] != [r["response"] for r in trained]
    holdout = summary["holdout"]
    assert holdout["n_prompts"] == 6 and holdout["soft_scorer"] == "reward_model"
    assert set(holdout["base"]["levels"]) == {"L1", "L2", "L3"}
    assert holdout["base"]["n_soft_unscored"] == holdout["trained"]["n_soft_unscored"] == 0
    # The tiny base model answers with special tokens only (an empty answer scores 0); the adapter makes it talk.
    assert 0.0 < holdout["trained"]["soft"] < 1.0
    assert summary["reasoning"]["synthetic"]["n"] == 3
    from sif_lib.constraints.repetition import repetition_summary
    for name in ("base", "trained"):
        texts = [r["response"] for r in read_jsonl(ctx.root / "eval" / f"holdout_{name}" / "generations.jsonl")]
        assert summary["repetition"][name]["holdout"] == repetition_summary(texts)
        assert set(summary["repetition"][name]) == {"ifeval", "holdout", "math_synthetic"}
    md = (ctx.root / "eval" / "summary.md").read_text()
    assert "IFEval prompt-level loose" in md and "Hold-out L3" in md and "61.7 → 71.7" in md
    # Every delta carries its paired interval, which contains the delta itself.
    for metric in ("prompt_strict", "inst_strict", "prompt_loose", "inst_loose"):
        low, high = summary["ifeval"]["delta_ci95"][metric]
        assert low <= summary["ifeval"]["delta"][metric] + 1e-9 and summary["ifeval"]["delta"][metric] <= high + 1e-9
    for key in ("hard", "soft", "composite"):
        low, high = holdout["delta_ci95"][key]
        assert low <= holdout["delta"][key] + 1e-9 and holdout["delta"][key] <= high + 1e-9
    assert set(holdout["delta_ci95"]["levels"]) == {"L1", "L2", "L3"}
    assert summary["reasoning"]["synthetic"]["delta_ci95"] is not None
    flips = summary["ifeval"]["flips"]["prompt_strict"]
    assert flips["gained"] - flips["lost"] == round(6 * summary["ifeval"]["delta"]["prompt_strict"])
    assert "Paired pass/fail changes" in md and "IFEval prompts, strict:" in md
    # Degenerate answers: the detector on each set's scored answers, with each prompt's constraints.
    from sif_lib.constraints.degenerate import degenerate_summary
    from sif_lib.evaluation.degenerate_figures import ifeval_constraints

    constraints = [ifeval_constraints(r) for r in read_jsonl(ctx.root / "eval" / "ifeval_input_data.jsonl")]
    for name in ("base", "trained"):
        answers = [r["response"] for r in read_jsonl(ctx.root / "eval" / f"ifeval_{name}" / "responses.jsonl")]
        assert summary["degenerate"]["ifeval"][name] == degenerate_summary(answers, constraints)
    for key in ("ifeval", "holdout"):
        d, c = summary["degenerate"][key], summary["clean"][key]
        assert d["n"] == 6 and c["n_prompts"] + c["n_excluded"] == 6
        assert c["n_prompts"] <= 6 - max(d["base"]["degenerate"], d["trained"]["degenerate"])
        assert d["delta"] == pytest.approx((d["trained"]["degenerate"] - d["base"]["degenerate"]) / 6, abs=1e-6)
    assert summary["degenerate"]["gallery"]["file"] == "degenerate_gallery.jsonl"
    assert (ctx.root / "eval" / "degenerate_gallery.jsonl").is_file() and "## Degenerate answers" in md


def _prompt(key, strict, loose=None):
    from sif_lib.evaluation.ifeval_scoring import PromptResult

    return PromptResult(key=key, prompt="p", response="r", instruction_id_list=["x"] * len(strict), strict=strict,
                        loose=loose if loose is not None else strict)


def test_paired_intervals_tell_a_real_change_from_noise():
    from sif_lib.evaluation import paired

    # 40 prompts: 20 flip from fail to pass, none back. The interval of prompt-level strict excludes 0.
    base = [_prompt(i, [False, True]) for i in range(40)]
    trained = [_prompt(i, [i < 20, True]) for i in range(40)]
    found = paired.ifeval_intervals(base, trained, n_resamples=500)
    low, high = found["intervals"]["prompt_strict"]
    assert 0 < low <= 0.5 <= high < 1
    assert found["flips"]["prompt_strict"] == {"paired": 40, "gained": 20, "lost": 0,
                                               "sign_test_p": pytest.approx(2 * 0.5 ** 20, rel=1e-3)}
    # Instruction level counts instructions: 20 of 80 more followed is +0.25.
    low, high = found["intervals"]["inst_strict"]
    assert low <= 0.25 <= high and low > 0
    # Ten gained and ten lost: the same totals, an interval around 0.
    noisy = [_prompt(i, [i < 10 or 20 <= i < 30, True]) for i in range(40)]
    mixed = [_prompt(i, [10 <= i < 30, True]) for i in range(40)]
    low, high = paired.ifeval_intervals(noisy, mixed, n_resamples=500)["intervals"]["prompt_strict"]
    assert low < 0 < high
    with pytest.raises(ValueError, match="different prompts"):
        paired.ifeval_intervals(base, trained[:-1])


def test_holdout_and_math_intervals_pair_by_prompt_and_item():
    from sif_lib.evaluation import paired

    def verdicts(passed):
        return [{"id": f"p{i}", "level": 1 + i % 2, "kind": "hard", "score": float(ok)}
                for i, ok in enumerate(passed)] + [{"id": f"p{i}", "level": 1 + i % 2, "kind": "soft", "score": 0.5}
                                                   for i in range(len(passed))]

    found = paired.holdout_intervals(verdicts([False] * 30), verdicts([True] * 15 + [False] * 15), n_resamples=500)
    assert found["flips"]["hard"]["gained"] == 15 and found["flips"]["hard"]["lost"] == 0
    assert found["intervals"]["hard"][0] > 0
    assert found["intervals"]["soft"] == [0.0, 0.0]  # the soft scores did not move
    assert set(found["intervals"]["levels"]) == {"L1", "L2"}
    same = paired.accuracy_intervals([True, False, False], [True, False, False])
    assert same == {"interval": [0.0, 0.0], "flips": {"paired": 3, "gained": 0, "lost": 0, "sign_test_p": 1.0}}


def test_report_labels_a_delta_whose_interval_contains_zero():
    from sif_lib.core.display import delta_points

    assert delta_points(0.05, [-0.02, 0.12]) == "+5.0 [-2.0, +12.0] (interval contains 0)"
    assert delta_points(0.05, [0.01, 0.09]) == "+5.0 [+1.0, +9.0]"
    assert delta_points(0.05, None) == "+5.0"


def test_holdout_summary_recomputes_from_saved_verdicts(evaluated):
    from sif_lib.evaluation.curriculum_holdout import aggregate

    ctx, summary, _ = evaluated
    for name in ("base", "trained"):
        verdicts = read_jsonl(ctx.root / "eval" / f"holdout_{name}" / "verdicts.jsonl")
        assert len(verdicts) == 1 + 1 + 1 + 2 + 2 + 3  # constraints of the six held-out prompts
        assert aggregate(verdicts) == summary["holdout"][name]


def test_cli_rescoring_reproduces_the_summary(evaluated, tmp_path):
    ctx, summary, _ = evaluated
    for name in ("base", "trained"):
        folder = ctx.root / "eval" / f"ifeval_{name}"
        out = tmp_path / name
        run_sif("ifeval", "score", "--input-data", summary["ifeval"]["input_data"],
                "--responses", str(folder / "responses.jsonl"), "--output-dir", str(out), check=True)
        scores = json.loads((out / "scores.json").read_text())
        figures = summary["ifeval"][name]
        assert scores["n_prompts"] == figures["n_prompts"]
        assert scores["strict"]["prompt_level"] == figures["prompt_strict"]
        assert scores["strict"]["instruction_level"] == figures["inst_strict"]
        assert scores["loose"]["prompt_level"] == figures["prompt_loose"]
        assert scores["loose"]["instruction_level"] == figures["inst_loose"]
        assert (out / "eval_results_loose.jsonl").read_text() == (folder / "eval_results_loose.jsonl").read_text()


def test_rerun_reuses_every_cached_set_without_loading_a_model(evaluated):
    from sif_lib.stages.s07_evaluate import run as run_evaluation_stage

    ctx, summary, first_log = evaluated
    assert any("loaded" in line for line in first_log)
    log: list[str] = []
    again = run_evaluation_stage(ctx, echo=log.append)
    assert not any("loaded" in line for line in log), log
    assert sum("reusing" in line for line in log) == 6  # ifeval, holdout, math for each policy
    assert again["ifeval"] == summary["ifeval"] and again["holdout"] == summary["holdout"]


def test_interrupted_set_resumes_from_its_partial_file(tmp_path):
    from sif_lib.config.params import load_params
    from sif_lib.evaluation.generate import _sampling
    from sif_lib.policy.answers import GENERATIONS, PolicyRunner, base_policy

    params = load_params(SMOKE)
    prompts = [f"Say the number {i}." for i in range(5)]
    log: list[str] = []
    runner = PolicyRunner(base_policy(params), params, echo=log.append)
    full = runner.answer(tmp_path / "a", prompts, _sampling(6, 0), batch_size=2)
    # Simulate a crash after the first batch: a partial file with two rows and an incomplete record.
    folder = tmp_path / "b"
    runner.answer(folder, prompts[:2], _sampling(6, 0), batch_size=2)
    record = json.loads((folder / "generation.json").read_text())
    rows = read_jsonl(folder / GENERATIONS)
    full_record = json.loads((tmp_path / "a" / "generation.json").read_text())
    record.update(n_prompts=5, prompts_sha1=full_record["prompts_sha1"], complete=False)
    write_json(folder / "generation.json", record)
    (folder / "generations.partial.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (folder / GENERATIONS).unlink()
    log.clear()
    resumed = runner.answer(folder, prompts, _sampling(6, 0), batch_size=2)
    assert any("resuming after 2" in line for line in log)
    assert json.loads((folder / "generation.json").read_text())["generated"] == 3
    assert resumed == full
    assert not (folder / "generations.partial.jsonl").exists()


def test_answers_copied_from_another_run_are_reused_when_the_weights_match(tmp_path):
    """--reuse copies the base policy's answer caches; a model directory is matched by content, not by path, and
    a cache whose weights differ is regenerated."""
    from sif_lib.config.params import load_params
    from sif_lib.evaluation.generate import _sampling
    from sif_lib.policy import models
    from sif_lib.policy.answers import BASE_ANSWER_CACHES, PolicyRunner, copy_answer_caches, spec_policy

    params = load_params(SMOKE)
    source, target = tmp_path / "source", tmp_path / "target"
    for run in (source, target):  # the same weights under two run directories, as stage 00's model after --reuse
        models.load_causal_lm("tiny", dtype="float32", device="cpu").save_pretrained(run / "policy")
        models.load_tokenizer("tiny").save_pretrained(run / "policy")
    prompts = ["Say one.", "Say two."]
    answers = PolicyRunner(spec_policy("base", str(source / "policy")), params).answer(
        source / "eval" / "ifeval_base", prompts, _sampling(6, 0), batch_size=2)
    assert copy_answer_caches(source, target, BASE_ANSWER_CACHES) == ["eval/ifeval_base"]
    assert copy_answer_caches(source, target, BASE_ANSWER_CACHES) == []  # never over an existing cache
    log: list[str] = []
    again = PolicyRunner(spec_policy("base", str(target / "policy")), params, echo=log.append).answer(
        target / "eval" / "ifeval_base", prompts, _sampling(6, 0), batch_size=2)
    assert again == answers and any("reusing 2 cached" in line for line in log), log
    assert not any("loaded" in line for line in log)

    import torch
    other = models.load_causal_lm("tiny", dtype="float32", device="cpu")
    with torch.no_grad():
        next(other.parameters()).add_(1.0)
    other.save_pretrained(tmp_path / "other")
    models.load_tokenizer("tiny").save_pretrained(tmp_path / "other")
    log.clear()
    PolicyRunner(spec_policy("base", str(tmp_path / "other")), params, echo=log.append).answer(
        target / "eval" / "ifeval_base", prompts, _sampling(6, 0), batch_size=2)
    assert any("loaded" in line for line in log), log


def test_trained_answers_copied_by_reuse_are_matched_by_the_adapters_content(tmp_path):
    """A run that reuses another's stage 06 copies its trained answers (TRAINED_ANSWER_CACHES); the adapter is
    known by its content and its base's, not its path, so they are reused there; another adapter generates."""
    from sif_lib.config.params import load_params
    from sif_lib.evaluation.generate import _sampling
    from sif_lib.policy.answers import TRAINED_ANSWER_CACHES, PolicyRunner, copy_answer_caches, trained_policy

    params = load_params(SMOKE)
    source, target = tmp_path / "source", tmp_path / "target"
    for run in (source, target):
        _save_adapter(run / "grpo" / "adapter")  # the same seed: the same weights, as a copied grpo/ holds
    mine, theirs = trained_policy(target, params), trained_policy(source, params)
    assert mine.adapter != theirs.adapter and mine.fingerprint == theirs.fingerprint
    assert mine.fingerprint.endswith("@spec:tiny")  # the base's part: here a spec, a local model its content hash
    prompts = ["Say one.", "Say two."]
    answers = PolicyRunner(theirs, params).answer(source / "eval" / "ifeval_trained", prompts, _sampling(6, 0),
                                                  batch_size=2)
    assert copy_answer_caches(source, target, TRAINED_ANSWER_CACHES) == ["eval/ifeval_trained"]
    log: list[str] = []
    again = PolicyRunner(mine, params, echo=log.append).answer(target / "eval" / "ifeval_trained", prompts,
                                                               _sampling(6, 0), batch_size=2)
    assert again == answers and not any("loaded" in line for line in log), log

    import torch
    from safetensors.torch import load_file, save_file

    weights = target / "grpo" / "adapter" / "adapter_model.safetensors"
    tensors = load_file(weights)
    first = sorted(tensors)[0]
    with torch.no_grad():
        tensors[first] = tensors[first] + 1.0
    save_file(tensors, weights)
    log.clear()
    PolicyRunner(trained_policy(target, params), params, echo=log.append).answer(
        target / "eval" / "ifeval_trained", prompts, _sampling(6, 0), batch_size=2)
    assert any("loaded" in line for line in log), log


def test_the_answer_store_serves_a_later_run_only_what_the_same_writer_wrote(tmp_path):
    """run.answer_store: a set the base policy answered in one run is taken by another run of the same outputs
    folder without loading the model; another batch size, an unfinished store folder, an adapter or the switch
    off generate."""
    from sif_lib.config.params import load_params
    from sif_lib.evaluation.generate import _sampling
    from sif_lib.policy.answers import Policy, PolicyRunner, answer_store, base_policy

    params = load_params(SMOKE)
    first, second = tmp_path / "outputs" / "run-a", tmp_path / "outputs" / "run-b"
    store = answer_store(first, params)
    assert store == answer_store(second, params) == (tmp_path / "outputs" / ".cache" / "answers").resolve()
    prompts = ["Say one.", "Say two.", "Say three."]
    answers = PolicyRunner(base_policy(params), params, store=store).answer(
        first / "eval" / "ifeval_base", prompts, _sampling(6, 0), batch_size=2)
    [stored] = [p for p in store.iterdir() if not p.name.startswith(".")]
    assert read_jsonl(stored / "generations.jsonl") == [{"prompt": p, "response": a} for p, a in zip(prompts, answers)]
    assert json.loads((stored / "generation.json").read_text())["batch_size"] == 2

    log: list[str] = []
    got = PolicyRunner(base_policy(params), params, echo=log.append, store=store).answer(
        second / "eval" / "ifeval_base", prompts, _sampling(6, 0), batch_size=2, extra=[{"key": k} for k in range(3)])
    assert got == answers and any("taken from the answer store" in line for line in log), log
    assert not any("loaded" in line for line in log)
    assert [r["key"] for r in read_jsonl(second / "eval" / "ifeval_base" / "generations.jsonl")] == [0, 1, 2]
    assert json.loads((second / "eval" / "ifeval_base" / "generation.json").read_text())["from_store"] == str(stored)

    def generates(folder, batch_size=2, **kwargs) -> bool:
        log.clear()
        PolicyRunner(base_policy(params), params, echo=log.append, **kwargs).answer(
            second / folder, prompts, _sampling(6, 0), batch_size=batch_size)
        return any("loaded" in line for line in log)

    assert generates("other_batch", batch_size=3, store=store)  # padding differs: another key
    assert len([p for p in store.iterdir() if not p.name.startswith(".")]) == 2
    (stored / "generation.json").unlink()  # a folder without its record is not a finished set
    assert generates("unfinished", store=store)
    assert not generates("again", store=store)  # ...and the set just generated was stored again in its place
    assert generates("switched_off", store=None)
    assert PolicyRunner(Policy("trained", "tiny", adapter=str(tmp_path / "adapter")), params, store=store).store is None
    off = load_params(SMOKE, {"run": {"answer_store": False}})
    assert answer_store(first, off) is None


def test_a_set_inside_another_sets_answers_is_copied_only_from_the_same_writer(tmp_path):
    """Stage 07's hold-out prompts are a subset of stage 06's probe: answered by the same policy with the same
    decoding, they are copied (no model loaded); other decoding or a prompt the probe lacks generates."""
    from sif_lib.config.params import load_params
    from sif_lib.evaluation.generate import _sampling
    from sif_lib.policy.answers import PolicyRunner, base_policy

    params = load_params(SMOKE)
    prompts = [f"Say the number {i}." for i in range(4)]
    probe = tmp_path / "grpo" / "probe_before"
    full = PolicyRunner(base_policy(params), params).answer(probe, prompts, _sampling(6, 0), batch_size=2)
    log: list[str] = []
    runner = PolicyRunner(base_policy(params), params, echo=log.append)
    subset = [prompts[2], prompts[0]]
    got = runner.answer(tmp_path / "holdout_base", subset, _sampling(6, 0), batch_size=2,
                        extra=[{"id": "x"}, {"id": "y"}], borrow_from=[probe])
    assert got == [full[2], full[0]]
    assert any("copied from probe_before" in line for line in log) and not any("loaded" in line for line in log)
    rows = read_jsonl(tmp_path / "holdout_base" / "generations.jsonl")
    assert [r["id"] for r in rows] == ["x", "y"] and [r["prompt"] for r in rows] == subset
    assert json.loads((tmp_path / "holdout_base" / "generation.json").read_text())["borrowed_from"] == str(probe)
    # A second call finds its own cache; other decoding, or a prompt the probe never answered, is generated.
    log.clear()
    runner.answer(tmp_path / "holdout_base", subset, _sampling(6, 0), batch_size=2, borrow_from=[probe])
    assert any("reusing 2 cached" in line for line in log)
    for folder, asked, sampling in (("longer", subset, _sampling(7, 0)), ("new", ["Say ten."], _sampling(6, 0))):
        log.clear()
        runner.answer(tmp_path / folder, asked, sampling, batch_size=2, borrow_from=[probe])
        assert not any("copied" in line for line in log), log
        assert json.loads((tmp_path / folder / "generation.json").read_text())["generated"] == len(asked)


def test_report_helpers_read_the_summary(evaluated):
    from sif_lib.evaluation import report

    ctx, summary, _ = evaluated
    table = report.summary_table(summary)
    assert "IFEval prompt-level loose, Pr(L) (n=6)" in table.index
    base = summary["ifeval"]["base"]["prompt_loose"]
    assert table.loc["IFEval prompt-level loose, Pr(L) (n=6)", "base"] == f"{100 * base:.1f}"
    share = summary["repetition"]["trained"]["holdout"]["repetitive_share"]
    assert table.loc["Repetitive answers, hold-out (share; lower is better)", "trained"] == f"{100 * share:.1f}"
    older = {k: v for k, v in summary.items() if k != "repetition"}  # summaries written before the diagnostic
    assert not any(i.startswith("Repetitive") for i in report.summary_table(older).index)
    assert len(report.paper_table()) == 4
    d = summary["degenerate"]["ifeval"]["trained"]
    assert table.loc["Degenerate answers, IFEval (share; lower is better) (n=6)", "trained"].endswith(
        f"({d['degenerate']} of 6)")
    fig = report.ifeval_category_figure(summary)
    cats = sorted(summary["ifeval"]["base"]["categories"])
    assert list(fig.data[0].x) == cats
    c = cats[0]
    expected = 100 * (summary["ifeval"]["trained"]["categories"][c]["inst_strict"]
                      - summary["ifeval"]["base"]["categories"][c]["inst_strict"])
    assert fig.data[0].y[0] == pytest.approx(expected)
    assert len(report.holdout_level_figure(summary).data) == 6
    categories = report.holdout_category_table(summary)
    assert set(categories.index) == {"punctuation", "change_case", "length_constraints", "Tone and emotion", "Element"}
    trained = summary["holdout"]["trained"]["categories"]["Tone and emotion"]["mean"]
    assert categories.loc["Tone and emotion", "trained"] == f"{100 * trained:.1f}"
    assert categories.loc["punctuation", "kind"] == "hard" and categories.loc["punctuation", "constraints"] == 3
    assert report.tradeoff_figure(summary).data[0].x[0] == pytest.approx(
        100 * summary["reasoning"]["synthetic"]["base"]["accuracy"])


def test_a_degenerate_trained_answer_is_counted_left_out_of_clean_figures_and_shown(tmp_path):
    from sif_lib.evaluation.degenerate_figures import read_gallery
    from sif_lib.evaluation.degenerate_report import CLEAN_COLUMN
    from sif_lib.evaluation.report import summary_table

    summary = with_degenerate_answers(evaluated_run(tmp_path / "run"))
    holdout = summary["degenerate"]["holdout"]
    assert (holdout["base"]["degenerate"], holdout["trained"]["degenerate"]) == (0, 1)
    assert holdout["flips"]["became_degenerate"] == 1 and "stuffed" in holdout["trained"]["reasons"]
    # The full hold-out gains the no_comma check of inst-00101-L1; without that prompt nothing moved.
    assert summary["holdout"]["flips"]["hard"]["gained"] >= 1
    clean = summary["clean"]["holdout"]
    assert clean["n_prompts"] == 5 and clean["n_excluded"] == 1
    assert clean["delta"]["hard"] == 0.0 and clean["flips"]["hard"]["gained"] == 0
    ifeval = summary["clean"]["ifeval"]
    assert summary["degenerate"]["ifeval"]["flips"]["became_degenerate"] >= 1 and ifeval["n_prompts"] >= 1
    gallery = read_gallery(tmp_path / "run")
    assert [(g["set"], g["id"]) for g in gallery] == [("ifeval", 1001), ("holdout", "inst-00101-L1")]
    assert all(g["gained"] == ["punctuation:no_comma"] and g["trained_answer"] == LOOP for g in gallery)
    table = summary_table(summary)
    assert table.loc["Degenerate answers, hold-out (share; lower is better) (n=6)", "trained"].endswith("(1 of 6)")
    assert table.loc["Hold-out hard constraints satisfied (verifier)", CLEAN_COLUMN].endswith("(n=5)")


def test_changed_examples_are_the_flipped_prompts(tmp_path):
    from sif_lib.evaluation.report import changed_examples

    def rows(verdicts):
        return [{"prompt": f"p{i}", "response": f"r{i}", "instruction_id_list": ["punctuation:no_comma"],
                 "follow_all_instructions": ok, "follow_instruction_list": [ok]} for i, ok in enumerate(verdicts)]

    eval_dir = tmp_path / "eval"
    write_jsonl(eval_dir / "ifeval_base" / "eval_results_loose.jsonl", rows([False, True, False, True, False]))
    write_jsonl(eval_dir / "ifeval_trained" / "eval_results_loose.jsonl", rows([True, False, False, True, True]))
    got = changed_examples(tmp_path, n=4)
    assert [(e["prompt"], e["change"]) for e in got] == [("p0", "gained"), ("p4", "gained"), ("p1", "lost")]
    assert [e["prompt"] for e in changed_examples(tmp_path, n=1)] == ["p0"]


def _execute_stage_notebook(ctx: RunContext) -> Path:
    import papermill

    out = ctx.path("notebooks", "07_evaluate.ipynb")
    papermill.execute_notebook(str(REPO / "notebooks" / "07_evaluate.ipynb"), str(out),
                               parameters={"run_dir": str(ctx.root), "params_file": str(ctx.root / "params.yaml")},
                               cwd=str(REPO / "notebooks"), progress_bar=False, kernel_name="python3")
    return out


def test_notebook_and_report_html_are_offline_and_interactive(evaluated):
    import re

    from sif_lib.evaluation.report import export_report, plotly_bundle_marker

    ctx, _, _ = evaluated
    _execute_stage_notebook(ctx)  # the stage itself is cached by now
    path = export_report(ctx.root)
    assert path == ctx.root / "report.html"
    page = path.read_text()
    assert plotly_bundle_marker() in page  # plotly.js inline
    assert page.count("Plotly.newPlot") >= 3
    assert not re.findall(r'<script[^>]*\ssrc="https?://', page)  # nothing fetched from a network
    assert "unpkg.com" not in page and "cdnjs" not in page
    assert "R1-Distill-Qwen-7B" in page and "sif-code" in page
    assert "Degenerate answers that gained checks" in page and "Degenerate answers, IFEval" in page
    assert "sif-degenerate-gallery" in page


def test_export_without_a_notebook_is_a_clear_error(tmp_path):
    from sif_lib.evaluation.report import export_report

    with pytest.raises(InputError, match="07_evaluate"):
        export_report(tmp_path)


# ---------------------------------------------------------------------------------------------------------------
# The real pipeline.

@pytest.mark.slow
def test_smoke_run_summary_is_reproducible_from_saved_responses(smoke_run, tmp_path):
    summary = json.loads((smoke_run / "eval" / "summary.json").read_text())
    assert summary["ifeval"]["n_prompts"] == 8
    for name in ("base", "trained"):
        out = tmp_path / name
        run_sif("ifeval", "score", "--input-data", str(smoke_run / "eval" / "ifeval_input_data.jsonl"),
                "--responses", str(smoke_run / "eval" / f"ifeval_{name}" / "responses.jsonl"),
                "--output-dir", str(out), check=True)
        scores = json.loads((out / "scores.json").read_text())
        assert scores["loose"]["prompt_level"] == summary["ifeval"][name]["prompt_loose"]
        assert scores["strict"]["instruction_level"] == summary["ifeval"][name]["inst_strict"]
    assert (smoke_run / "report.html").is_file()
    assert json.loads((smoke_run / "metrics" / "07_evaluate.json").read_text())["ifeval"] == summary["ifeval"]
    # The figures per group of instruction ids cover every instruction, and "trained" means the run's own data.
    groups = summary["ifeval"]["id_groups"]
    n_instructions = summary["ifeval"]["base"]["n_instructions"]
    assert groups["all"]["n_instructions"] == n_instructions
    assert groups["trained"]["n_instructions"] + groups["untrained"]["n_instructions"] == n_instructions
    assert groups["all"]["base"]["inst_loose"] == pytest.approx(summary["ifeval"]["base"]["inst_loose"])
    assert set(groups["trained"]["ids"]) <= id_groups.trained_ids(smoke_run)
    assert set(summary["ifeval"]["by_id"]) == set(groups["all"]["ids"])


def test_hub_prompts_drop_null_arguments_and_name_the_key(tmp_path, monkeypatch):
    """The hub copy of IFEval spells every unused argument as null; the subset written for rescoring must not."""
    import datasets

    from sif_lib.evaluation.benchmarks import IFEvalTask

    rows = [{"key": 7, "prompt": "Answer in under 20 words.",
             "instruction_id_list": ["length_constraints:number_words"],
             "kwargs": [{"num_words": 20, "relation": "less than", "language": None}]}]
    monkeypatch.setattr(datasets, "load_dataset", lambda hub_id, split: rows)
    ctx = RunContext.open(tmp_path / "run", SMOKE, overrides={"evaluation": {"ifeval_path": None,
                                                                            "ifeval_hub_id": "some/IFEval"}})
    task = IFEvalTask.load(ctx.params, tmp_path)
    assert task.source == "hub:some/IFEval"
    assert read_jsonl(task.input_path)[0]["kwargs"] == [{"num_words": 20, "relation": "less than"}]

    def offline(hub_id, split):
        raise ConnectionError("no network")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(InputError, match=r"evaluation\.ifeval_hub_id.*some/IFEval"):
        IFEvalTask.load(ctx.params, tmp_path)
