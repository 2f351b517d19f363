"""Stage 04: the reward model's input, metrics, training (full and LoRA), saving and scoring."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from sif_lib.config.params import params_from_dict
from sif_lib.core import stats
from sif_lib.core.errors import InputError
from sif_lib.reward_model import finetune, rm_input
from sif_lib.reward_model import training as rm_training
from sif_lib.reward_model.scorer import RewardScorer
from sif_lib.rm_service import clients
from sif_lib.runner.runs import RunContext
from sif_lib.stages import s04_train_reward_model as s04

WORDS = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda".split()


def make_rows(n_parents: int = 8, seed: int = 0) -> list[dict]:
    """Pseudo-label rows in stage 03's format: hard pairs (no commas) and soft pairs, positive and negative."""
    rng = random.Random(seed)
    rows = []
    for p in range(n_parents):
        parent = f"inst-{p:05d}"
        for k in (1, 2, 3):
            kind = "hard" if k != 2 else "soft"
            constraint = {"id": "punctuation:no_comma" if kind == "hard" else "tone:formal", "kind": kind,
                          "category": "punctuation" if kind == "hard" else "Tone and emotion",
                          "description": "Do not use any commas." if kind == "hard" else "Use a formal tone.",
                          "kwargs": {}}
            positive = " ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 30)))
            negative = ", ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 30)))
            for label, response in ((1, positive), (0, negative)):
                rows.append({"pair_id": f"{parent}-c{k}-s0-{'pos' if label else 'neg'}", "parent": parent, "level": k,
                             "sample": 0, "constraint": constraint, "kind": kind, "response": response,
                             "label": label, "source_level": k if label else k - 1,
                             "verifier": ("," not in response) if kind == "hard" else None})
    # One hard pair whose pseudo-label disagrees with the verifier, as happens in real runs.
    rows[0] = {**rows[0], "response": "alpha, beta", "verifier": False}
    return rows


def write_labels(root: Path, rows: list[dict]) -> Path:
    path = root / "data" / "pseudo_labels.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def tiny_ctx(root: Path, **reward_model) -> RunContext:
    params = params_from_dict({
        "run": {"device": "cpu", "dtype": "float32", "seed": 0},
        "model": {"policy": "tiny"},
        "reward_model": {"epochs": 1.0, "batch_size": 8, "max_length": 64, "eval_fraction": 0.25, **reward_model},
    })
    return RunContext(root, params)


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("rm-full")
    write_labels(root, make_rows())
    ctx = tiny_ctx(root)
    metrics = s04.run(ctx, progress=False)
    return ctx, metrics


@pytest.fixture(scope="module")
def tokenizer():
    from sif_lib.policy.models import load_tokenizer

    return load_tokenizer("tiny", padding_side="right")


# -- input ------------------------------------------------------------------------------------------------------


def test_rm_input_is_the_papers_template():
    text = rm_input.rm_input("The sky is blue.", "Answer in one sentence.")
    assert text == ("You need to determine whether the response adheres to this constraint. Output 1 if it does, "
                    "otherwise output 0. Response: The sky is blue. Constraint: Answer in one sentence.")


def test_rm_input_truncates_the_response_not_the_constraint(tokenizer):
    response = " ".join(f"word{i}" for i in range(400))
    constraint = "Mention the colour purple exactly twice."
    text = rm_input.rm_input(response, constraint, tokenizer, max_length=60)
    assert len(tokenizer(text)["input_ids"]) <= 60
    assert text.endswith(f" Constraint: {constraint}")
    kept = text.split("Response: ", 1)[1].rsplit(" Constraint: ", 1)[0]
    assert kept and response.startswith(kept) and len(kept) < len(response)
    # A short input is left alone.
    assert rm_input.rm_input("short", constraint, tokenizer, 60) == rm_input.rm_input("short", constraint)


def test_encode_pairs_fits_every_input(tokenizer):
    pairs = [("x " * n, "Keep it brief.") for n in (1, 10, 300)]
    stats: dict = {}
    ids = rm_input.encode_pairs(tokenizer, pairs, 60, stats)
    assert [len(i) <= 60 for i in ids] == [True, True, True]
    assert stats["truncated"] == 1
    assert tokenizer.decode(ids[2]).endswith("Constraint: Keep it brief.")


# -- metrics ----------------------------------------------------------------------------------------------------


def test_roc_auc_hand_values_with_ties():
    assert stats.roc_auc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]) == pytest.approx(0.75)
    # Positives 0.5 and 0.9 against negatives 0.5, 0.5: (0.5 + 0.5 + 1 + 1) / 4.
    assert stats.roc_auc([0.5, 0.5, 0.5, 0.9], [0, 1, 0, 1]) == pytest.approx(0.75)
    assert stats.roc_auc([0.3, 0.3], [0, 1]) == pytest.approx(0.5)
    assert stats.roc_auc([0.9, 0.1], [0, 1]) == pytest.approx(0.0)
    assert stats.roc_auc([0.2, 0.7], [1, 1]) is None


def test_calibration_hand_values():
    cal = stats.calibration([0.05, 0.15, 0.85, 0.95, 1.0], [0, 1, 1, 1, 1], n_bins=10)
    # |0-0.05| + |1-0.15| + |1-0.85| + 2 * |1-0.975|, over 5 pairs.
    assert cal["ece"] == pytest.approx((0.05 + 0.85 + 0.15 + 2 * 0.025) / 5)
    counts = [b["count"] for b in cal["bins"]]
    assert counts == [1, 1, 0, 0, 0, 0, 0, 0, 1, 2]  # 1.0 falls in the last bin
    assert cal["bins"][9]["mean_prob"] == pytest.approx(0.975)
    assert cal["bins"][2]["mean_prob"] is None
    assert stats.accuracy([0.5, 0.49, 0.9], [1, 1, 0]) == pytest.approx(1 / 3)


# -- data -------------------------------------------------------------------------------------------------------


def test_split_is_by_parent_and_seeded():
    rows = make_rows(10)
    train, held = rm_training.split_by_parent(rows, 0.2, seed=3)
    assert {r["parent"] for r in train}.isdisjoint({r["parent"] for r in held})
    assert len({r["parent"] for r in held}) == 2 and len(train) + len(held) == len(rows)
    assert rm_training.split_by_parent(rows, 0.2, seed=3)[1] == held
    assert rm_training.split_by_parent(rows, 0.0, seed=3)[1] == []


def test_bad_pseudo_label_row_names_file_line_and_key(tmp_path):
    rows = make_rows(2)
    rows[3] = {**rows[3], "label": 2}
    path = write_labels(tmp_path, rows)
    with pytest.raises(InputError, match=r"pseudo_labels.jsonl:4: key 'label'"):
        rm_training.load_pairs(path)


def test_missing_pseudo_labels_points_at_stage_03(tmp_path):
    with pytest.raises(InputError, match="03_generate_pseudo_labels"):
        s04.run(tiny_ctx(tmp_path), progress=False)


def test_qlora_on_cpu_is_a_clear_error(tmp_path):
    write_labels(tmp_path, make_rows(2))
    with pytest.raises(InputError, match="qlora needs a CUDA GPU"):
        s04.run(tiny_ctx(tmp_path, mode="qlora"), progress=False)
    assert not (tmp_path / "rm" / "config.json").exists()


# -- training and the saved model -------------------------------------------------------------------------------


def test_full_training_writes_model_card_and_metrics(full_run):
    ctx, metrics = full_run
    rm_dir = ctx.root / "rm"
    for name in ("config.json", "model.safetensors", "tokenizer.json", "sif_rm.json", "README.md"):
        assert (rm_dir / name).is_file(), name
    meta = json.loads((rm_dir / "sif_rm.json").read_text())
    assert meta["backbone"] == "tiny" and meta["mode"] == "full" and meta["max_length"] == 64
    assert meta["input_template"] == rm_input.RM_TEMPLATE
    assert meta["data"]["train"]["pairs"] + meta["data"]["eval"]["pairs"] == 48
    card = (rm_dir / "README.md").read_text()
    assert "Intended use and limits" in card and "Held-out metrics" in card and "`tiny`" in card

    saved = ctx.read_metrics("04_train_reward_model")
    for key in ("eval_accuracy", "eval_auc", "eval_ece", "hard_truth_accuracy", "counts", "train_seconds"):
        assert key in saved
    assert saved["counts"]["eval"]["parents"] == 2 and saved["eval_pairs"] == 12
    # The figures are those of the saved model on the held-out pairs, recomputed here from its scores.
    rows = [r for r in make_rows()
            if r["parent"] in set(json.loads((rm_dir / "sif_rm.json").read_text())["data"]["eval_parents"])]
    probs = RewardScorer.from_dir(rm_dir, device="cpu").score(
        [(r["response"], r["constraint"]["description"]) for r in rows])
    assert saved["eval_auc"] == pytest.approx(stats.roc_auc(probs, [r["label"] for r in rows]), abs=1e-6)
    assert saved["eval_accuracy"] == pytest.approx(stats.accuracy(probs, [r["label"] for r in rows]), abs=1e-6)
    assert saved["hard_truth_pairs"] == saved["counts"]["eval"]["hard_with_verifier"]
    assert saved["loss_curve"] and all(p["loss"] > 0 for p in saved["loss_curve"])
    assert sum(b["count"] for b in saved["reliability"]) == saved["eval_pairs"]
    # The figures build from the saved metrics.
    assert s04.reliability_figure(saved).data and s04.loss_figure(saved).data
    assert "held-out ROC-AUC vs pseudo-labels (95% CI)" in s04.metrics_table(saved).index
    low, high = saved["eval_auc_ci95"]
    assert low <= saved["eval_auc"] <= high


def test_scorer_batches_in_input_order(full_run):
    ctx, _ = full_run
    scorer = RewardScorer.from_dir(ctx.root / "rm", device="cpu", batch_size=3)
    pairs = [(" ".join(WORDS[: (i * 7) % 11 + 1]) + ("," if i % 2 else ""), f"Constraint number {i}.")
             for i in range(10)]
    pairs.append(("word " * 500, "A very long response, cut to fit."))
    batched = scorer.score(pairs)
    single = [scorer.score([p])[0] for p in pairs]
    assert batched == pytest.approx(single, abs=1e-5)
    assert scorer.score(pairs[::-1]) == pytest.approx(batched[::-1], abs=1e-5)
    assert len(set(round(s, 6) for s in batched)) > 1
    assert scorer.score([]) == []


def test_make_scorer_needs_a_trained_model(tmp_path, full_run):
    ctx, _ = full_run
    scorer = clients.make_scorer(ctx.params, ctx.root)
    assert isinstance(scorer, RewardScorer)
    with pytest.raises(InputError, match="04_train_reward_model"):
        clients.make_scorer(ctx.params, tmp_path)
    http = params_from_dict({"scoring": {"rm_url": "http://127.0.0.1:9/score"}})
    assert isinstance(clients.make_scorer(http, tmp_path), clients.HttpRewardScorer)


def test_lora_training_saves_a_merged_model(tmp_path):
    write_labels(tmp_path, make_rows(4))
    ctx = tiny_ctx(tmp_path, mode="lora", lora_r=4, lora_alpha=8)
    metrics = s04.run(ctx, progress=False)
    rm_dir = tmp_path / "rm"
    assert not (rm_dir / "adapter_config.json").exists()
    assert json.loads((rm_dir / "sif_rm.json").read_text())["mode"] == "lora"
    assert metrics["mode"] == "lora" and metrics["train_steps"] >= 1
    # The merged directory loads as a plain classifier and scores what the stage's own evaluation scored.
    eval_rows = [r for r in make_rows(4)
                 if r["parent"] in set(json.loads((rm_dir / "sif_rm.json").read_text())["data"]["eval_parents"])]
    probs = RewardScorer.from_dir(rm_dir, device="cpu").score(
        [(r["response"], r["constraint"]["description"]) for r in eval_rows])
    assert metrics["eval_auc"] == pytest.approx(stats.roc_auc(probs, [r["label"] for r in eval_rows]), abs=1e-6)


def test_lora_merge_keeps_adapter_and_head(tmp_path):
    """What the saved directory scores must equal what the trained LoRA model scored in memory."""
    import torch
    from peft import get_peft_model

    from sif_lib.policy import models

    params = tiny_ctx(tmp_path, mode="lora", lora_r=4, lora_alpha=8).params
    tokenizer = models.load_tokenizer("tiny", padding_side="right")
    model = models.load_sequence_classifier("tiny", device="cpu", dtype="float32")
    model = get_peft_model(model, finetune._lora_config(params.reward_model))
    torch.manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:  # LoRA B starts at zero; move it (and the head) as training would
                p.add_(torch.randn_like(p) * 0.5)
    model.eval()
    in_memory = RewardScorer(model, tokenizer, 64)
    pairs = [("alpha, beta gamma", "Do not use any commas."), ("delta", "Use a formal tone.")]
    expected = in_memory.score(pairs)

    target = tmp_path / "merged"
    target.mkdir()
    finetune.save_model(model, tokenizer, target, "lora", "tiny", "model.policy", "cpu")
    (target / rm_input.META_FILE).write_text(json.dumps({"max_length": 64}))
    assert RewardScorer.from_dir(target, device="cpu").score(pairs) == pytest.approx(expected, abs=2e-4)


def test_from_dir_rejects_a_plain_directory(tmp_path):
    with pytest.raises(InputError, match="not a reward-model directory"):
        RewardScorer.from_dir(tmp_path)


# -- GPU ---------------------------------------------------------------------------------------------------------


@pytest.mark.gpu
@pytest.mark.parametrize("mode", ["full", "lora", "qlora"])
def test_training_on_a_gpu(tmp_path, mode):
    import importlib.util

    import torch

    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    if mode == "qlora" and importlib.util.find_spec("bitsandbytes") is None:
        pytest.skip("qlora needs bitsandbytes")
    write_labels(tmp_path, make_rows(4))
    ctx = tiny_ctx(tmp_path, mode=mode, lora_r=4, lora_alpha=8)
    ctx.params.run.device = "cuda"
    ctx.params.run.dtype = "auto"
    metrics = s04.run(ctx, progress=False)
    assert metrics["mode"] == mode and metrics["train_steps"] >= 1
    scorer = RewardScorer.from_dir(tmp_path / "rm", device="cuda")
    scores = scorer.score([("alpha beta", "Do not use any commas."), ("gamma, delta", "Do not use any commas.")])
    assert len(scores) == 2 and scores != [scores[0]] * 2


def title_rows(n_parents: int, seed: int = 0) -> list[dict]:
    """Pairs a classifier must separate: responses that open with a <<title>> (label 1, the verifier agrees) and
    the same kind of text without one (label 0)."""
    words = "river mountain quiet bright paper window garden morning letter silver story travel music careful".split()
    rng = random.Random(seed)
    constraint = {"id": "detectable_format:title", "kind": "hard", "category": "detectable_format",
                  "description": "Your answer must contain a title, wrapped in double angular brackets.", "kwargs": {}}
    rows = []
    for p in range(n_parents):
        for label in (1, 0):
            body = " ".join(rng.choice(words) for _ in range(rng.randint(8, 30)))
            response = f"<<{rng.choice(words)} {rng.choice(words)}>>\n{body}" if label else body
            rows.append({"pair_id": f"t{p}-{label}", "parent": f"t{p:04d}", "level": 1, "sample": 0,
                         "constraint": constraint, "kind": "hard", "response": response, "label": label,
                         "source_level": 1 - label, "verifier": bool(label)})
    return rows


def test_training_learns_separable_pairs(tmp_path):
    """If training stopped learning, this fails: 150 training pairs that differ only by a <<title>> must give a
    held-out ROC-AUC of at least 0.95 against the verifier, and a training loss well below ln 2."""
    write_labels(tmp_path, title_rows(100))
    ctx = tiny_ctx(tmp_path, epochs=3.0, learning_rate=5e-4, batch_size=16)
    metrics = s04.run(ctx, progress=False)
    assert metrics["hard_truth_pairs"] == 50
    assert metrics["hard_truth_auc"] >= 0.95 and metrics["eval_auc"] >= 0.95
    assert metrics["final_train_loss"] < 0.5  # ln 2 = 0.693 is chance


def test_check_model_trains_on_the_other_half_of_the_instructions(tmp_path):
    write_labels(tmp_path, make_rows(n_parents=12))
    ctx = tiny_ctx(tmp_path, check_model=True, bootstrap=100)
    metrics = s04.run(ctx, progress=False)
    main = json.loads((tmp_path / "rm" / "sif_rm.json").read_text())
    check = json.loads((tmp_path / "rm_check" / "sif_rm.json").read_text())
    # 12 instructions: 3 held out, the other 9 split 5 / 4, disjoint; both are evaluated on the same held-out ones.
    assert main["data"]["train"]["parents"] + check["data"]["train"]["parents"] == 9
    assert main["data"]["eval_parents"] == check["data"]["eval_parents"]
    assert metrics["check_model"]["eval_pairs"] == metrics["eval_pairs"]
    assert metrics["check_model"]["counts"]["train"]["pairs"] == check["data"]["train"]["pairs"]
    train_main, train_check = rm_training.split_halves(
        rm_training.prepare(make_rows(n_parents=12), ctx.params)[0], seed=0)
    assert not {r["parent"] for r in train_main} & {r["parent"] for r in train_check}
    # Turning the check model off removes the stale one, so that no later stage reads it.
    s04.run(tiny_ctx(tmp_path, bootstrap=100), progress=False)
    assert not (tmp_path / "rm_check").exists()


def test_compare_rm_shows_what_differs_and_the_intervals(tmp_path, full_run, capsys):
    from sif_lib.analysis.compare_reward_models import compare_reward_models

    ctx, metrics = full_run
    scores = [json.loads(line) for line in (ctx.root / "rm" / "eval_scores.jsonl").read_text().splitlines()]
    assert len(scores) == metrics["eval_pairs"]
    for name, method, flip in (("a", "finetune", False), ("b", "linear_probe", True)):
        run = tmp_path / name
        (run / "metrics").mkdir(parents=True)
        (run / "rm").mkdir()
        (run / "params.yaml").write_text(f"reward_model:\n  method: {method}\n")
        (run / "metrics" / "04_train_reward_model.json").write_text(json.dumps({**metrics, "method": method}))
        (run / "rm" / "eval_scores.jsonl").write_text("".join(
            json.dumps({**r, "prob": 1 - r["prob"] if flip else r["prob"]}) + "\n" for r in scores))
    rows = compare_reward_models([tmp_path / "a", tmp_path / "b"])
    assert [r["differs in"] for r in rows] == ["method=finetune", "method=linear_probe"]
    # Run b scores every pair 1 - p: on the same pairs its AUC is 1 - AUC, a paired difference of 1 - 2 AUC.
    assert rows[0]["Δ hard AUC vs first (paired)"] == "n/a"
    hard_n = sum(r["kind"] == "hard" and r["verifier"] is not None for r in scores)
    assert rows[1]["Δ hard AUC vs first (paired)"].startswith(f"{1 - 2 * metrics['hard_truth_auc']:+.3f}")
    assert rows[1]["Δ hard AUC vs first (paired)"].endswith(f"(n={hard_n})")
    low, high = metrics["hard_truth_auc_ci95"]
    assert rows[0]["hard AUC vs truth"] == (f"{metrics['hard_truth_auc']:.3f} [{low:.3f}, {high:.3f}] "
                                            f"(n={metrics['hard_truth_pairs']})")
    assert "linear_probe" in capsys.readouterr().out
    with pytest.raises(InputError, match="stage 04"):
        compare_reward_models([tmp_path])


def test_linear_probe_learns_separable_pairs_and_scores_as_saved(tmp_path):
    """The frozen-backbone baseline: a logistic regression on last-token states, C chosen by cross-validation
    over training instructions, saved with the backbone; the scorer that later stages load reproduces it, and the
    learning curve trains it again on subsets."""
    write_labels(tmp_path, title_rows(100))
    ctx = tiny_ctx(tmp_path, method="linear_probe", learning_curve=[20, 60], bootstrap=200)
    metrics = s04.run(ctx, progress=False)
    assert metrics["method"] == "linear_probe" and metrics["hard_truth_pairs"] == 50
    assert metrics["hard_truth_auc"] >= 0.95
    low, high = metrics["hard_truth_auc_ci95"]
    assert low <= metrics["hard_truth_auc"] <= high
    meta = json.loads((tmp_path / "rm" / "sif_rm.json").read_text())
    assert meta["head"]["type"] == "logistic" and meta["head"]["c"] in (0.001, 0.01, 0.1, 1.0, 10.0)
    assert len(meta["head"]["c_cv_auc"]) == 5 and "cross-validation" in (tmp_path / "rm" / "README.md").read_text()
    # Reloaded from disk, the scorer gives the figures the stage reported.
    held = [r for r in title_rows(100) if r["parent"] in set(meta["data"]["eval_parents"])]
    probs = RewardScorer.from_dir(tmp_path / "rm").score([(r["response"], r["constraint"]["description"])
                                                                   for r in held])
    assert stats.roc_auc(probs, [r["label"] for r in held]) == pytest.approx(metrics["eval_auc"])
    # One curve point per size, then the full training set, each on the same held-out pairs.
    assert [p["pairs"] for p in metrics["learning_curve"]] == [20, 60, metrics["counts"]["train"]["pairs"]]
    assert metrics["learning_curve"][-1]["hard_truth_auc"] == pytest.approx(metrics["hard_truth_auc"])
    # A vLLM /classify endpoint cannot serve the logistic head: a clear error, not wrong scores.
    params = params_from_dict({"model": {"policy": "tiny"},
                               "scoring": {"rm_url": "http://127.0.0.1:9", "rm_api": "vllm"}})
    with pytest.raises(InputError, match="linear-probe"):
        clients.make_scorer(params, tmp_path)


def test_verifier_labels_replace_hard_pseudo_labels_in_training_only():
    rows = make_rows(n_parents=8)
    params = params_from_dict({"reward_model": {"hard_labels": "verifier", "eval_fraction": 0.25}})
    train, held, prepared = rm_training.prepare(rows, params)
    flipped = [r for r in train if "pseudo_label" in r]
    assert prepared["relabelled_by_verifier"] == len(flipped)
    assert all(r["kind"] == "hard" and r["label"] == int(r["verifier"]) != r["pseudo_label"] for r in flipped)
    # make_rows plants one disagreeing pair (row 0); it is relabelled when it lands in training.
    assert len(flipped) == (rows[0]["parent"] not in {r["parent"] for r in held})
    # The held-out pairs keep their pseudo-labels: they are what the figures against pseudo-labels use.
    assert all("pseudo_label" not in r for r in held)
    assert rm_training.prepare(rows, params_from_dict({"reward_model": {"eval_fraction": 0.25}}))[2][
        "relabelled_by_verifier"] == 0


def test_bootstrap_interval_narrows_with_more_pairs():
    from sif_lib.reward_model.rm_eval import bootstrap_ci

    rng = random.Random(0)
    labels = [i % 2 for i in range(400)]
    scores = [0.6 * y + rng.random() for y in labels]
    small = bootstrap_ci(scores[:40], labels[:40], n_resamples=300)
    large = bootstrap_ci(scores, labels, n_resamples=300)
    auc = stats.roc_auc(scores, labels)
    assert large[0] < auc < large[1] and large[1] - large[0] < small[1] - small[0]
    assert bootstrap_ci([0.1, 0.2], [1, 1]) is None  # one class: AUC undefined


def test_paired_auc_difference_is_tighter_than_two_intervals():
    from sif_lib.reward_model.rm_eval import bootstrap_ci, paired_auc_difference

    rng = random.Random(1)
    labels = [i % 2 for i in range(300)]
    base = [0.5 * y + rng.random() for y in labels]
    better = [s + 0.15 * y for s, y in zip(base, labels)]  # the same noise, a little more signal
    diff, ci = paired_auc_difference(base, better, labels, n_resamples=300)
    assert diff == pytest.approx(stats.roc_auc(better, labels) - stats.roc_auc(base, labels), abs=1e-4)
    assert 0 < ci[0] <= diff <= ci[1]
    # Unpaired, the two intervals overlap: only the paired comparison tells the models apart.
    a, b = bootstrap_ci(base, labels, n_resamples=300), bootstrap_ci(better, labels, n_resamples=300)
    assert a[1] > b[0]
    assert paired_auc_difference(base, base, labels, n_resamples=100) == (0.0, [0.0, 0.0])


def test_label_noise_floor_hand_values():
    from sif_lib.reward_model.rm_eval import label_noise_floor

    def row(truth, label, kind="hard"):
        return {"kind": kind, "verifier": truth if kind == "hard" else None, "label": label}

    # Truly met: always labelled 1. Not met: labelled 1 half the time. H = 1/2 * 0 + 1/2 * ln 2.
    rows = [row(True, 1)] * 4 + [row(False, 1)] * 2 + [row(False, 0)] * 2 + [row(None, 1, "soft")] * 5
    assert label_noise_floor(rows) == {"hard_pairs": 8, "loss_floor": pytest.approx(0.3466, abs=1e-4)}
    assert label_noise_floor([row(True, 1), row(False, 0)])["loss_floor"] == 0.0
    assert label_noise_floor([row(None, 1, "soft")]) == {"hard_pairs": 0, "loss_floor": None}
