"""Stage 06 with the real TRL GRPOTrainer on the tiny model: curriculum modes, ablations, orders, launchers."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import pytest
from conftest import REPO, SMOKE, write_untrained_rm

from sif_lib.config.params import load_params, params_from_dict
from sif_lib.core.errors import InputError
from sif_lib.core.io import read_jsonl
from sif_lib.grpo import config as grpo_config
from sif_lib.grpo import launch as grpo_launch
from sif_lib.grpo import rl_set, trl_hooks
from sif_lib.policy.answers import trained_policy_kwargs
from sif_lib.runner.runs import RunContext
from sif_lib.stages import s06_train_grpo as s06

TINY_GRPO = {"max_steps": 2, "num_generations": 2, "prompts_per_step": 2, "max_completion_length": 8,
             "probe_size": 2, "save_steps": 1}


def build_base(root: Path) -> Path:
    """Stage 01/02 data from the smoke params, and an RM directory: the tiny model with a fresh two-class head
    (an untrained classifier is still a real one; its probabilities just carry no meaning)."""
    from sif_lib.stages.s01_synthesize_constraints import run as run_synthesis_stage
    from sif_lib.stages.s02_decompose_curriculum import run as run_curriculum_stage

    ctx = RunContext.open(root, SMOKE)
    run_synthesis_stage(ctx)
    run_curriculum_stage(ctx)
    write_untrained_rm(root / "rm")
    return root


def clone_run(base: Path, root: Path, grpo_overrides: dict | None = None) -> RunContext:
    root.mkdir(parents=True)
    shutil.copytree(base / "data", root / "data")
    shutil.copytree(base / "rm", root / "rm")
    return RunContext.open(root, SMOKE, overrides={"grpo": {**TINY_GRPO, **(grpo_overrides or {})}})


@pytest.fixture(scope="module")
def base_run(tmp_path_factory) -> Path:
    return build_base(tmp_path_factory.mktemp("grpo-base"))


# ---------------------------------------------------------------------------------------------------------------
# Curriculum orders (no training)


def _items(levels=(1, 2, 3), per_level=6, n_reasoning=4):
    items = []
    for parent in range(per_level):
        for level in levels:
            items.append({"id": f"i{parent}-L{level}", "kind": "instruction", "level": level,
                          "n_constraints": max(levels), "constraints": [], "prompt": "p", "answer": None})
    items += [{"id": f"m{i}", "kind": "reasoning", "level": 0, "n_constraints": 0, "constraints": [],
               "prompt": "q", "answer": "1"} for i in range(n_reasoning)]
    return items


def test_level_schedule():
    assert rl_set.level_schedule(10, 3) == [1, 1, 1, 2, 2, 2, 2, 3, 3, 3]
    assert rl_set.level_schedule(6, 3, [1, 5]) == [1, 2, 2, 2, 2, 3]
    assert rl_set.level_schedule(4, 1) == [1, 1, 1, 1]
    with pytest.raises(InputError, match="staged_boundaries"):
        rl_set.level_schedule(10, 3, [5])
    with pytest.raises(InputError, match="increasing"):
        rl_set.level_schedule(10, 3, [5, 5])


def test_staged_order_opens_levels_in_turn():
    items = _items()
    rows = rl_set.build_order(items, "staged", n_rollouts=9, rollout_prompts=4, steps_per_rollout=1, max_steps=9)
    assert len(rows) == 36
    blocks = [rows[i:i + 4] for i in range(0, 36, 4)]
    caps = rl_set.level_schedule(9, 3)
    assert caps == [1, 1, 1, 2, 2, 2, 3, 3, 3]
    for cap, block in zip(caps, blocks):
        levels = [r["level"] for r in block if r["kind"] == "instruction"]
        assert max(levels) <= cap
        # reasoning keeps its overall share (4 of 22 items) in every block: round(4 * 4/22) = 1
        assert sum(r["kind"] == "reasoning" for r in block) == 1
    stage_levels = [{r["level"] for b in blocks[s:s + 3] for r in b if r["kind"] == "instruction"} for s in (0, 3, 6)]
    assert stage_levels[0] == {1}
    assert max(stage_levels[1]) == 2 and max(stage_levels[2]) == 3
    # Deterministic for a seed.
    again = rl_set.build_order(items, "staged", 9, 4, 1, 9)
    assert [r["id"] for r in again] == [r["id"] for r in rows]


def test_mixed_and_off_orders():
    items = _items()
    mixed = rl_set.build_order(items, "mixed", n_rollouts=11, rollout_prompts=4, steps_per_rollout=1, max_steps=11)
    # One full pass over all 22 items before anything repeats, then a reshuffled pass.
    assert sorted(r["id"] for r in mixed[:22]) == sorted(it["id"] for it in items)
    assert [r["id"] for r in mixed[22:]] != [r["id"] for r in mixed[:22]]
    assert {r["level"] for r in mixed[:8]} != {1}  # levels are mixed from the start
    off = rl_set.build_order(items, "off", 5, 4, 1, 5)
    assert {r["level"] for r in off if r["kind"] == "instruction"} == {3}
    assert any(r["kind"] == "reasoning" for r in off)
    with pytest.raises(InputError, match="no instruction prompts"):
        rl_set.build_order([it for it in items if it["kind"] == "reasoning"], "mixed", 1, 4, 1, 1)


def test_batch_layout_and_paper_params():
    params = load_params(REPO / "params" / "paper_7b.yaml")
    layout = grpo_config.batch_layout(params.grpo, world_size=8)
    # 96 prompts x 5 = 480 completions per optimizer step = 1 per device x 60 accumulation x 8 processes;
    # a rollout of 384 prompts serves 4 optimizer steps.
    assert layout["per_device_train_batch_size"] == 1
    assert layout["steps_per_rollout"] == 4
    assert layout["per_device_train_batch_size"] * 8 * layout["steps_per_generation"] == 384 * 5
    assert params.model.answer_mode == "require_think" and params.grpo.beta == 0.01
    bad = params_from_dict({"grpo": {"prompts_per_step": 3, "num_generations": 2, "grad_accum": 4}})
    with pytest.raises(InputError, match="grpo.prompts_per_step"):
        grpo_config.batch_layout(bad.grpo, world_size=1)


def test_gpu_features_fail_clearly_on_cpu():
    import torch

    if torch.cuda.is_available():
        pytest.skip("checks the CPU-only error path")
    for grpo_params, key in (({"finetune": "qlora"}, "grpo.finetune"), ({"use_vllm": True}, "grpo.use_vllm")):
        params = params_from_dict({"run": {"device": "cpu"}, "grpo": grpo_params})
        with pytest.raises(InputError, match=key):
            grpo_config.check_params(params)


# ---------------------------------------------------------------------------------------------------------------
# Real GRPO steps


def _curriculum_n(run: Path) -> dict[str, int]:
    return {r["id"]: r["n_constraints"] for r in read_jsonl(run / "data" / "curriculum.jsonl")}


@pytest.mark.parametrize("overrides", [
    {"curriculum": "mixed", "probe_size": 2, "merge_adapter": True},
    {"curriculum": "staged"},
    {"curriculum": "off"},
    {"soft_reward": "binary"},
    {"hard_reward": "reward_model"},
], ids=["mixed", "staged", "off", "soft-binary", "hard-rm"])
def test_two_grpo_steps(base_run, tmp_path, overrides):
    ctx = clone_run(base_run, tmp_path / "run", {"probe_size": 0, **overrides})
    metrics = s06.run(ctx, echo=lambda *_: None)
    run = ctx.root
    g = ctx.params.grpo

    saved = json.loads((run / "metrics" / "06_train_grpo.json").read_text())
    assert saved["steps"] == metrics["steps"] == 2 and saved["series"]["step"] == [1, 2]
    assert len(saved["series"]["reward"]) == 2
    assert saved["settings"]["curriculum"] == g.curriculum
    assert (run / "grpo" / "adapter" / "adapter_config.json").is_file()
    state = json.loads((run / "grpo" / "checkpoints" / "checkpoint-2" / "trainer_state.json").read_text())
    assert state["global_step"] == 2

    rows = read_jsonl(run / "grpo" / "rollouts.jsonl")
    assert Counter(r["step"] for r in rows) == {1: 4, 2: 4}  # 2 prompts x 2 completions per step
    # One process on CPU: the rollouts came from the shrinking decoder, not TRL's generate().
    history = json.loads((run / "grpo" / "train_result.json").read_text())["log_history"]
    used = [h["timing/shrinking_decoder"] for h in history if "timing/shrinking_decoder" in h]
    assert used and all(u == 1.0 for u in used)
    # The logged reward of each step is the mean of the rewards the function returned.
    for step, logged in zip((1, 2), saved["series"]["reward"]):
        assert logged == pytest.approx(sum(r["reward"] for r in rows if r["step"] == step) / 4, abs=1e-5)
    instruction_rows = [r for r in rows if r["kind"] == "instruction"]
    soft = [c for r in instruction_rows if r["answer_found"] for c in r["constraints"] if c["kind"] == "soft"]
    hard = [c for r in instruction_rows if r["answer_found"] for c in r["constraints"] if c["kind"] == "hard"]

    if g.curriculum == "off":
        n = _curriculum_n(run)
        assert all(r["level"] == n[r["id"]] for r in instruction_rows)
    if g.soft_reward == "binary":
        assert soft and all(c["score"] in (0.0, 1.0) for c in soft)
    else:
        assert all(c["score"] == c["prob"] for c in soft)
    if g.hard_reward == "reward_model":
        assert hard and all(c["prob"] is not None and c["score"] == c["prob"] for c in hard)
        assert "components/hard_verifier" in saved["series"]
    else:
        assert all(c["prob"] is None and c["score"] == float(c["verdict"]) for c in hard)
    if g.probe_size:
        _check_probe_adapter_browser(run, ctx, saved)


def _check_probe_adapter_browser(run: Path, ctx, saved: dict) -> None:
    from sif_lib.policy import models
    from sif_lib.widgets.rollout_browser import RolloutBrowser

    assert saved["probe"]["before"]["n"] == 2 and saved["probe"]["after"]["n"] == 2
    assert len(read_jsonl(run / "grpo" / "probe_before.jsonl")) == 2
    assert len(read_jsonl(run / "grpo" / "probe_after.jsonl")) == 2
    degenerate = saved["probe"]["degenerate"]  # the detector on the probe's answers, before and after
    assert degenerate["before"]["n"] == degenerate["after"]["n"] == 2 and degenerate["flips"]["paired"] == 2
    assert degenerate["clean"]["prompts"] <= 2 and "soft_turned_degenerate" in degenerate

    model = models.load_causal_lm("tiny", dtype="float32", device="cpu", adapter=run / "grpo" / "adapter")
    lora_b = [p for name, p in model.named_parameters() if "lora_B" in name]
    assert lora_b and any(p.abs().sum().item() > 0 for p in lora_b)  # trained away from the zero init
    # With merge_adapter, stage 07 gets the merged directory.
    assert trained_policy_kwargs(run, ctx.params) == {"spec": str(run / "grpo" / "merged"), "adapter": None}

    browser = RolloutBrowser.from_run(run)
    assert browser.steps == [1, 2]
    row = browser.select(2, 3)
    assert row is browser.current() and row["step"] == 2
    assert browser.step.value == 2 and browser.completion.value == 3
    with pytest.raises(KeyError):
        browser.select(9)
    assert browser.only_degenerate.description.startswith("only degenerate (")


def test_accelerate_launch_two_processes(base_run, tmp_path):
    """num_processes > 1 shells out to `accelerate launch -m sif_lib.grpo`; on CPU the processes train over gloo."""
    ctx = clone_run(base_run, tmp_path / "run", {"num_processes": 2, "probe_size": 0})
    out: list[str] = []
    metrics = s06.run(ctx, echo=out.append)
    assert any("accelerate.commands.launch" in line for line in out)
    assert metrics["steps"] == 2 and metrics["layout"]["processes"] == 2
    rows = read_jsonl(ctx.root / "grpo" / "rollouts.jsonl")
    assert Counter((r["step"], r["rank"]) for r in rows) == {(1, 0): 2, (1, 1): 2, (2, 0): 2, (2, 1): 2}
    assert (ctx.root / "grpo" / "adapter" / "adapter_config.json").is_file()


def test_streaming_launcher_raises_with_the_output_tail():
    import sys

    seen: list[str] = []
    with pytest.raises(RuntimeError, match="status 3") as err:
        grpo_launch.run_streaming([sys.executable, "-c", "print('step 1 of 2'); raise SystemExit(3)"], echo=seen.append)
    assert "step 1 of 2" in "".join(seen) and "step 1 of 2" in str(err.value)
    grpo_launch.run_streaming([sys.executable, "-c", "print('fine')"], echo=seen.append)


def test_lora_merged_generation_matches_and_restores_exact_weights():
    import torch
    from peft import LoraConfig, get_peft_model

    from sif_lib.policy import models

    torch.manual_seed(0)
    model = get_peft_model(models.load_causal_lm("tiny", dtype="float32", device="cpu"),
                           LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", task_type="CAUSAL_LM"))
    for name, param in model.named_parameters():
        if "lora_B" in name:  # a fresh adapter is a no-op (B = 0); give it an update to merge
            torch.nn.init.normal_(param, std=0.05)
    model.eval()
    base = {n: p.detach().clone() for n, p in model.named_parameters() if "base_layer" in n}
    ids = torch.tensor([[1, 5, 9, 13, 17, 21]])
    with torch.no_grad():
        unmerged = model(input_ids=ids).logits
        with trl_hooks.lora_merged(model):
            assert any("base_layer" in n and not torch.equal(p, base[n]) for n, p in model.named_parameters())
            merged = model(input_ids=ids).logits
        after = model(input_ids=ids).logits
    assert torch.allclose(merged, unmerged, atol=1e-4)
    assert torch.equal(after, unmerged)
    assert all(torch.equal(p, base[n]) for n, p in model.named_parameters() if "base_layer" in n)
    assert not any(getattr(m, "merged", False) for m in model.modules())


def test_a_bf16_lora_model_is_not_merged_because_the_merge_rounds_a_small_update_away(tmp_path):
    """Folded into bf16 weights, an update of about a hundredth of the weights' size mostly rounds away; the
    generation hook and the evaluation's loader keep such a model unmerged, as it was trained."""
    import torch
    from peft import LoraConfig, get_peft_model

    from sif_lib.policy import models
    from sif_lib.policy.generation import ChatGenerator

    torch.manual_seed(0)
    model = get_peft_model(models.load_causal_lm("tiny", dtype="bfloat16", device="cpu"),
                           LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", task_type="CAUSAL_LM"))
    for name, param in model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(param, std=1e-4)
    model.eval()
    assert not models.lora_merge_keeps_update(model)
    assert models.lora_merge_keeps_update(models.load_causal_lm("tiny", dtype="float32", device="cpu"))
    layer = next(m for m in model.modules() if hasattr(m, "get_delta_weight"))
    weight, delta = layer.get_base_layer().weight, layer.get_delta_weight("default")
    kept = ((weight.float() + delta).to(torch.bfloat16) != weight).float().mean().item()
    assert kept < 0.7, kept  # merged in bf16, most of the update's elements round back to the base weight
    ids = torch.tensor([[1, 5, 9, 13, 17, 21]])
    base_weights = {n: p.detach().clone() for n, p in model.named_parameters()}
    with torch.no_grad():
        unmerged = model(input_ids=ids).logits
        with trl_hooks.lora_merged(model):
            assert all(torch.equal(p, base_weights[n]) for n, p in model.named_parameters())
        with model.disable_adapter():
            plain = model(input_ids=ids).logits
    assert not torch.equal(unmerged, plain)  # the adapter does change the bf16 model's output
    model.save_pretrained(tmp_path / "adapter")
    generator = ChatGenerator("tiny", dtype="bfloat16", device="cpu", adapter=str(tmp_path / "adapter"))
    assert any("lora_" in n for n, _ in generator.model.named_parameters())  # loaded unmerged
    with torch.no_grad():
        assert torch.equal(generator.model(input_ids=ids).logits, unmerged)


def test_hard_check_flips_pairs_the_probe_and_computes_the_sign_test():
    from sif_lib.grpo.probe import hard_check_flips

    def row(item_id, verdicts, soft_prob=0.5):
        constraints = [{"id": f"h{i}", "kind": "hard", "verdict": v} for i, v in enumerate(verdicts)]
        return {"id": item_id, "constraints": constraints + [{"id": "soft:x", "kind": "soft", "verdict": None,
                                                              "prob": soft_prob}]}

    before = [row("a", [False, False, True]), row("b", [False, True]), row("only-before", [False])]
    after = [row("a", [True, True, True], 0.9), row("b", [True, True])]
    # 3 gained, 0 lost: p = 2 * (1/2)^3; the soft constraint and the unpaired item do not count.
    assert hard_check_flips(before, after) == {"paired": 5, "gained": 3, "lost": 0, "sign_test_p": 0.25}
    # 3 gained, 1 lost: p = 2 * (1 + 4) / 16.
    after[1] = row("b", [True, False])
    assert hard_check_flips(before, after) == {"paired": 5, "gained": 3, "lost": 1, "sign_test_p": 0.625}
    assert hard_check_flips(before, before)["sign_test_p"] == 1.0


def test_probe_repetition_separates_loops_from_fluent_answers():
    from sif_lib.grpo.probe import probe_repetition

    loop, prose = " ".join(["1."] * 30), "A short plain answer that says one thing once and stops there."

    def row(item_id, completion, verdicts):
        return {"id": item_id, "completion": completion,
                "constraints": [{"id": f"h{i}", "kind": "hard", "verdict": v} for i, v in enumerate(verdicts)]}

    before = [row("a", prose, [False, False]), row("b", prose, [False]), row("c", loop, [True])]
    # "a" gains a check fluently, "b" gains its check only by looping, "c" loops before and after.
    after = [row("a", prose, [True, False]), row("b", loop, [True]), row("c", loop, [True])]
    rep = probe_repetition(before, after)
    assert rep["before"]["repetitive"] == 1 and rep["after"]["repetitive"] == 2 and rep["after"]["n"] == 3
    assert rep["fluent"] == {"prompts": 1, "hard_checks": 2, "hard_before": 0.0, "hard_after": 0.5,
                             "paired": 2, "gained": 1, "lost": 0, "sign_test_p": 1.0}
    # Only the scored answer counts: thinking that loops before a fluent answer does not make it repetitive.
    thinking = [row("a", f"<think>{loop}</think>{prose}", [True, False])]
    assert probe_repetition(before[:1], thinking, "after_think")["after"]["repetitive"] == 0
    assert probe_repetition(before[:1], thinking, "whole")["after"]["repetitive"] == 1


def test_probe_degenerate_counts_turned_answers_and_their_soft_probability():
    from sif_lib.grpo.probe import probe_degenerate

    loop, prose = " ".join(["*highlighted section*"] * 30), "A short plain answer that says one thing once and stops."
    stuffed = "The word bread is here. " + " ".join(["bread"] * 12) + " and that is all I can say about it today."

    def row(item_id, completion, verdicts, soft=None):
        constraints = [{"id": f"h{i}", "kind": "hard", "verdict": v, "prob": None, "score": float(v)}
                       for i, v in enumerate(verdicts)]
        if soft is not None:  # (prob, score): an unscored soft constraint has score None
            constraints.append({"id": "soft:tone", "kind": "soft", "verdict": None, "prob": soft[0], "score": soft[1]})
        return {"id": item_id, "completion": completion, "constraints": constraints}

    before = [row("a", prose, [False, False], (0.3, 0.3)), row("b", prose, [False], (0.2, 0.2)),
              row("c", loop, [True]), row("d", prose, [True], (0.5, 0.5)), row("e", prose, [False], (0.6, 0.6))]
    # a: gains a check and stays clean; b: turns degenerate, gains its check, soft 0.2 -> 0.9; c: degenerate on
    # both sides; d: no answer after training (degenerate: near_empty; a missing answer's soft prob is None -> 0);
    # e: stuffs the keyword it was asked for, seen only with the prompt's constraints.
    after = [row("a", prose, [True, False], (0.4, 0.4)), row("b", loop, [True], (0.9, 0.9)), row("c", loop, [True]),
             row("d", "", [False], (None, 0.0)), row("e", stuffed, [True], (0.7, 0.7))]
    found = probe_degenerate(before, after, n_resamples=200)
    assert (found["before"]["degenerate"], found["after"]["degenerate"]) == (1, 3)
    assert found["before"]["n"] == 5 and found["after"]["share_ci95"][0] < 0.6 < found["after"]["share_ci95"][1]
    assert found["delta"] == 0.4 and found["delta_ci95"][0] <= 0.4 <= found["delta_ci95"][1]
    assert found["flips"] == {"paired": 5, "became_degenerate": 2, "became_clean": 0, "sign_test_p": 0.5}
    # Clean pairs: a and e: 3 hard checks, 0 met before, 2 after.
    assert found["clean"] == {"prompts": 2, "hard_checks": 3, "hard_before": 0.0, "hard_after": 0.6667,
                              "paired": 3, "gained": 2, "lost": 0, "sign_test_p": 0.5}
    # Turned degenerate: b (0.2 -> 0.9) and d (0.5 -> 0, no answer).
    assert found["soft_turned_degenerate"] == {"prompts": 2, "n": 2, "before": 0.35, "after": 0.45, "delta": 0.1}
    lines = s06.degenerate_rows(found)  # what notebook 06's summary table shows
    assert lines["probe degenerate answers before → after"].startswith("1 of 5 [")
    assert "2 turned degenerate, 0 turned clean" in lines["probe degenerate answers before → after"]
    assert lines["probe soft P(adheres) on answers that turned degenerate (must not rise)"] == (
        "0.35 → 0.45 (2 soft constraints on 2 prompts)")
    assert s06.degenerate_rows(None) == {}
    keyword = [{"id": "keywords:existence", "kind": "hard", "kwargs": {"keywords": ["bread"]}}]
    seen = probe_degenerate(before, after, constraints={"e": keyword}, n_resamples=0)
    assert seen["after"]["degenerate"] == 4 and seen["after"]["reasons"]["stuffed"] == 3  # b, c and e
    assert seen["soft_turned_degenerate"]["n"] == 3 and seen["soft_turned_degenerate"]["after"] == 0.5333
    assert seen["clean"]["prompts"] == 1
    # No reward model: soft constraints unscored, so there is no soft figure to give.
    unscored = [row(r["id"], r["completion"], [c["verdict"] for c in r["constraints"] if c["kind"] == "hard"],
                    (None, None)) for r in after]
    bare = probe_degenerate(before, unscored, n_resamples=0)["soft_turned_degenerate"]
    assert bare == {"prompts": 2, "n": 0, "before": None, "after": None, "delta": None}


def test_probe_comparison_reads_the_saved_probes_with_their_constraints(tmp_path):
    from sif_lib.core.io import write_jsonl
    from sif_lib.grpo.probe import probe_comparison

    stuffed = "Here is bread. " + " ".join(["bread"] * 12) + " and that is all I can say about it for now."
    rows = {"before": [{"id": "x", "completion": "A plain short answer about bread and butter today.",
                        "constraints": [{"id": "h", "kind": "hard", "verdict": False}]}],
            "after": [{"id": "x", "completion": stuffed,
                       "constraints": [{"id": "h", "kind": "hard", "verdict": True}]}]}
    for when, got in rows.items():
        write_jsonl(tmp_path / f"probe_{when}.jsonl", got)
    items = [{"id": "x", "constraints": [{"id": "keywords:existence", "kind": "hard",
                                          "kwargs": {"keywords": ["bread"]}}]}]
    with_items = probe_comparison(tmp_path, "whole", n_resamples=0, items=items)
    assert with_items["degenerate"]["flips"]["became_degenerate"] == 1
    assert probe_comparison(tmp_path, "whole", n_resamples=0)["degenerate"]["flips"]["became_degenerate"] == 0
    assert with_items["hard_flips"]["gained"] == 1 and with_items["soft_check"] is None


def test_check_model_shift_pairs_soft_constraints_under_both_reward_models():
    from sif_lib.grpo.probe import check_model_shift

    class LengthScorer:  # a "check RM" that likes longer answers: P = min(1, words / 10)
        def score(self, pairs):
            return [min(1.0, len(answer.split()) / 10) for answer, _ in pairs]

    def row(item_id, completion, prob):
        return {"id": item_id, "completion": completion,
                "constraints": [{"id": "h", "kind": "hard", "verdict": True},
                                {"id": "soft:tone", "kind": "soft", "description": "Be formal.", "prob": prob}]}

    before = [row("a", "two words", 0.2), row("b", "four words right here", 0.4), row("c", "x", 0.5)]
    after = [row("a", "now there are six words", 0.9), row("b", "four words right here", 0.8),
             row("c", "<think>only thinking", 0.9)]
    shift = check_model_shift(before, after, LengthScorer(), answer_mode="after_think", n_resamples=200)
    assert shift["pairs"] == 3 and shift["prompts"] == 3
    # "c" has no answer after thinking: it scores 0 under the check RM, as in the reward.
    check, trained = shift["check_rm"], shift["training_rm"]
    assert check["before"] == pytest.approx((0.2 + 0.4 + 0.1) / 3, abs=1e-4)
    assert check["after"] == pytest.approx((0.5 + 0.4 + 0.0) / 3, abs=1e-4)
    assert check["delta"] == pytest.approx(0.2 / 3, abs=1e-4)
    assert trained["delta"] == pytest.approx((0.7 + 0.4 + 0.4) / 3, abs=1e-4)
    low, high = trained["delta_ci95"]
    assert 0.4 <= low <= trained["delta"] <= high <= 0.7
    assert check_model_shift(before, [], LengthScorer()) == {"pairs": 0}


def test_greedy_members_decode_the_first_completion_of_each_group_greedily():
    """``grpo.greedy_members``: in each group of ``num_generations`` rows (TRL repeats a prompt that many times in a
    row), the first k rows are the greedy answer, the rest samples; checked against the decoder run greedily."""
    from types import SimpleNamespace

    import torch
    from accelerate import Accelerator
    from transformers import GenerationConfig

    from sif_lib.policy import decoding, models

    model = models.load_causal_lm("tiny", dtype="float32", device="cpu")
    tokenizer = models.load_tokenizer("tiny")
    config = GenerationConfig(max_new_tokens=12, temperature=1.0, top_p=1.0, top_k=0, min_p=None, do_sample=True)
    fake = SimpleNamespace(generation_config=config, model_wrapped=model, accelerator=Accelerator(cpu=True),
                           generation_kwargs={}, args=SimpleNamespace(gradient_checkpointing_kwargs=None),
                           _tokenizer=tokenizer, eos_token_ids=[-1], greedy_members=1)
    prompts = [[11, 12, 13, 14]] * 4 + [[21, 22, 23]] * 4
    torch.manual_seed(0)
    out = trl_hooks.trainer_class()._decode_shrinking(fake, prompts, 4)
    ids, mask = decoding.left_pad([[11, 12, 13, 14], [21, 22, 23]], tokenizer.pad_token_id)
    greedy = decoding.decode(model, ids, mask, 12, temperature=0.0, eos={-1})
    assert out[0] == greedy[0] and out[4] == greedy[1]
    # the other members are samples at temperature 1 from a random model: not all of them the greedy answer
    assert any(out[i] != greedy[0] for i in (1, 2, 3)) and any(out[i] != greedy[1] for i in (5, 6, 7))
