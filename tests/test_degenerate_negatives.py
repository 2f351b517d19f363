"""Degenerate variants of the policy's answers: the programs, the training negatives they give the reward model,
and the held-out measurement of clean answers against their variants."""

from __future__ import annotations

import json
import random

import pytest

from sif_lib.config.params import params_from_dict
from sif_lib.constraints.degenerate import degeneration, is_degenerate
from sif_lib.core import stats
from sif_lib.core.errors import InputError
from sif_lib.labels import degenerate_variants as dv
from sif_lib.reward_model import degenerate_negatives as dn
from sif_lib.reward_model import training as rm_training
from sif_lib.reward_model.rm_input import answered_pairs
from sif_lib.runner.runs import RunContext
from sif_lib.stages import s04_train_reward_model as s04

ANSWER = ("Moving to a new apartment takes some planning. Start by listing what you own and what you need. "
          "Book the movers two weeks ahead, since weekends fill up fast.\nPack one room at a time and label "
          "every box with its room. Keep a bag with chargers, papers and a change of clothes. On the day, check "
          "each room before you hand back the keys.")
SOFT = {"id": "soft:contradictory:two_registers", "kind": "soft", "category": "Contradictory",
        "description": "Sound confident yet open to other views.",
        "kwargs": {"pair": "confident yet open to other views"}}
HIGHLIGHT = {"id": "detectable_format:number_highlighted_sections", "kind": "hard", "category": "detectable_format",
             "description": "Highlight at least 1 sections of your answer with markdown, i.e. *highlighted section*.",
             "kwargs": {"num_highlights": 1}}
POSTSCRIPT = {"id": "detectable_content:postscript", "kind": "hard", "category": "detectable_content",
              "description": "At the end of your response, add a postscript that starts with P.P.S.",
              "kwargs": {"postscript_marker": "P.P.S"}}
KEYWORDS = {"id": "keywords:existence", "kind": "hard", "category": "keywords",
            "description": "Include the keywords 'pocket', 'theory' in your response.",
            "kwargs": {"keywords": ["pocket", "theory"]}}


# -- the programs -----------------------------------------------------------------------------------------------


def test_variants_are_deterministic_under_a_seed():
    for kind in dv.VARIANT_KINDS:
        first = dv.variant(ANSWER, SOFT, kind, "s:1")
        assert first is not None and first != ANSWER, kind
        assert dv.variant(ANSWER, SOFT, kind, "s:1") == first
    assert any(dv.variant(ANSWER, SOFT, k, "s:1") != dv.variant(ANSWER, SOFT, k, "s:2")
               for k in ("loop", "stuff", "tail_loop", "shuffle"))
    with pytest.raises(ValueError, match="unknown variant kind"):
        dv.variant(ANSWER, SOFT, "paraphrase", 0)


@pytest.mark.parametrize("constraint", [SOFT, HIGHLIGHT, POSTSCRIPT, KEYWORDS], ids=lambda c: c["id"])
def test_variants_are_what_they_claim(constraint):
    assert not is_degenerate(ANSWER, [constraint])
    n_words = len(ANSWER.split())
    for seed in range(20):
        made = {k: dv.variant(ANSWER, constraint, k, seed) for k in dv.VARIANT_KINDS}
        for kind in dv.FLAGGED_KINDS:  # the detector flags every kind but shuffle
            assert made[kind] is not None and is_degenerate(made[kind], [constraint]), (kind, made[kind])
        assert "loop" in degeneration(made["loop"]).reasons
        assert "tail_loop" in degeneration(made["tail_loop"]).reasons
        assert "repeated_line" in degeneration(made["repeated_line"]).reasons
        assert len(made["truncate"].split()) < 3 and ANSWER.startswith(made["truncate"])
        assert sorted(made["shuffle"].split()) == sorted(ANSWER.split())
        # Loops keep about the answer's length, so the reward model's token limit cuts them where it cuts it.
        lengths = {k: len(made[k].split()) for k in ("loop", "repeated_line", "tail_loop", "shuffle")}
        assert n_words <= lengths["loop"] <= n_words + 12 and lengths["shuffle"] == n_words
        assert n_words <= lengths["repeated_line"] <= n_words * 4 // 3 and abs(lengths["tail_loop"] - n_words) <= 12
    # Stuffing repeats the constraint's own marker or phrase.
    marker = {SOFT["id"]: "confident yet open to other views", HIGHLIGHT["id"]: "*", POSTSCRIPT["id"]: "P.P.S",
              KEYWORDS["id"]: "pocket theory"}[constraint["id"]]
    assert all(dv.variant(ANSWER, constraint, "stuff", seed).count(marker) >= 6 for seed in range(5))


def test_short_answers_give_no_variant_rather_than_a_wrong_one():
    assert dv.variant("Yes.", SOFT, "loop", 0) is None
    assert dv.variant("Yes, fine.", SOFT, "truncate", 0) is None
    assert dv.variant("One sentence only, no more.", SOFT, "shuffle", 0) is None


def test_with_answer_keeps_a_reasoning_prefix():
    response = "<think>plan it</think>\n\nThe answer."
    for mode in ("after_think", "require_think"):
        assert answered_pairs([{"response": dn.with_answer(response, "loop loop", mode),
                                "constraint": SOFT}], mode)[1] == [("loop loop", SOFT["description"])]
    assert dn.with_answer(response, "x y", "whole") == "x y"


# -- training data ----------------------------------------------------------------------------------------------

WORDS = ("garden river window market lantern pebble violin harbour meadow candle orchard bridge village "
         "compass blanket kettle ribbon saddle thistle walnut").split()


def _sentence(rng: random.Random) -> str:
    return " ".join(rng.sample(WORDS, rng.randint(6, 10))).capitalize() + "."


def make_rows(n_parents: int = 24, seed: int = 0) -> list[dict]:
    """Stage-03 rows of two-constraint ladders (one soft, one hard), answers of 3-5 clean sentences. Positives
    and negatives are drawn alike: the pseudo-labels carry nothing about degeneration."""
    rng = random.Random(seed)
    rows = []
    for p in range(n_parents):
        parent = f"inst-{p:05d}"
        answers = [" ".join(_sentence(rng) for _ in range(rng.randint(3, 5))) for _ in range(3)]
        for k, constraint in ((1, SOFT), (2, KEYWORDS)):
            for label, level in ((1, k), (0, k - 1)):
                rows.append({"pair_id": f"{parent}-c{k}-s0-{'pos' if label else 'neg'}", "parent": parent,
                             "level": k, "sample": 0, "constraint": constraint, "kind": constraint["kind"],
                             "response": answers[level], "label": label, "source_level": level,
                             "verifier": None if constraint["kind"] == "soft" else False})
    return rows


def _params(**reward_model):
    return params_from_dict({"run": {"device": "cpu", "dtype": "float32", "seed": 0}, "model": {"policy": "tiny"},
                             "reward_model": {"eval_fraction": 0.25, "max_length": 96, "batch_size": 16,
                                              "bootstrap": 200, **reward_model}})


def test_switch_off_gives_exactly_the_training_rows_of_before():
    rows = make_rows()
    params = _params()
    train, held, prepared = rm_training.prepare(rows, params)
    before = answered_pairs(rm_training.split_by_parent(rows, 0.25, 0)[0], "after_think")[0]
    assert train == before and not any("variant" in r for r in train)
    assert prepared["degenerate_negatives"]["added"] == 0
    assert rm_training.prepare(rows, _params(degenerate_negatives=0.0))[0] == before


def test_negatives_come_from_training_instructions_only():
    rows = make_rows()
    train, held, prepared = rm_training.prepare(rows, _params(degenerate_negatives=1.5, degenerate_kinds=[
        "loop", "stuff", "truncate"]))
    added = [r for r in train if r.get("variant")]
    originals = {r["pair_id"]: r for r in train if not r.get("variant")}
    positives = sum(r["label"] for r in originals.values())
    assert len(added) == prepared["degenerate_negatives"]["added"]
    assert positives <= len(added) <= 2 * positives  # 1.5 per positive: one each, a second for about half
    held_parents = {r["parent"] for r in held}
    assert held_parents and not {r["parent"] for r in added} & held_parents
    held_answers = {r["response"] for r in held}
    for r in added:
        source = originals[r["source_pair_id"]]
        assert source["label"] == 1 and r["label"] == 0 and r["verifier"] is None
        assert r["parent"] == source["parent"] and r["constraint"] == source["constraint"]
        assert r["variant"] in ("loop", "stuff", "truncate") and r["response"] not in held_answers
        assert is_degenerate(r["response"], [r["constraint"]])
    again = rm_training.prepare(rows, _params(degenerate_negatives=1.5, degenerate_kinds=["loop", "stuff", "truncate"]))
    assert again[0] == train  # seeded
    # The check model's halves keep each variant with its source instruction.
    first, second = rm_training.split_halves(train, 0)
    for half in (first, second):
        parents = {r["parent"] for r in half}
        assert all(r["parent"] in parents for r in half if r.get("variant"))


def test_bad_degenerate_params_are_clear_errors():
    with pytest.raises(InputError, match="degenerate_kinds"):
        rm_training.prepare(make_rows(), _params(degenerate_negatives=1.0, degenerate_kinds=["paraphrase"]))
    with pytest.raises(InputError, match="degenerate_negatives"):
        rm_training.prepare(make_rows(), _params(degenerate_negatives=-1.0))


# -- the held-out measurement -----------------------------------------------------------------------------------


def test_heldout_pairs_pair_clean_answers_with_their_variants_per_asked_constraint():
    rows = make_rows()
    _, held, _ = rm_training.prepare(rows, _params())
    pairs, found = dn.heldout_pairs(held, "after_think", seed=0, max_pairs=10_000)
    held_parents = {r["parent"] for r in held}
    assert {p["parent"] for p in pairs} == held_parents
    # o_0 answers no constraint; o_1 is asked the soft one; o_2 both.
    assert {(p["level"], p["kind"]) for p in pairs} == {(1, "soft"), (2, "soft"), (2, "hard")}
    assert found["clean_answers"] == 2 * len(held_parents) and found["degenerate_answers_skipped"] == 0
    assert {p["variant"] for p in pairs} == set(dv.VARIANT_KINDS)
    assert all(not is_degenerate(p["clean"]) and p["clean"] != p["degenerate"] for p in pairs)
    capped, _ = dn.heldout_pairs(held, "after_think", seed=0, max_pairs=7)
    assert sum(p["kind"] == "soft" for p in capped) == 7 and sum(p["kind"] == "hard" for p in capped) == 7


def test_unit_bootstrap_statistic_is_the_auc_of_the_resample():
    rng = random.Random(0)
    clean = [round(rng.random(), 1) for _ in range(60)]
    degenerate = [round(rng.random() * 0.8, 1) for _ in range(60)]
    units = [i // 4 for i in range(60)]
    n_units, statistic = dn.unit_auc(clean, degenerate, units)
    assert n_units == 15
    drawn = [rng.randrange(15) for _ in range(15)]
    rows = [i for u in drawn for i in range(60) if units[i] == u]
    expected = stats.roc_auc([clean[i] for i in rows] + [degenerate[i] for i in rows],
                             [1] * len(rows) + [0] * len(rows))
    assert statistic(drawn) == pytest.approx(expected)
    found = dn.pair_figures(clean, degenerate, units, n_resamples=200)
    assert found["pairs"] == 60 and found["answers"] == 15
    assert found["auc_ci95"][0] <= found["auc"] <= found["auc_ci95"][1]


def _run(root, **reward_model):
    (root / "data").mkdir(parents=True)
    (root / "data" / "pseudo_labels.jsonl").write_text("".join(json.dumps(r) + "\n" for r in make_rows(30)))
    ctx = RunContext(root, _params(method="linear_probe", probe_c=1.0, degenerate_eval_pairs=100, **reward_model))
    return s04.run(ctx, progress=False)


def test_negatives_teach_the_probe_to_score_degenerate_answers_low(tmp_path):
    """A frozen random-weight backbone and a linear probe: on pseudo-labels that carry nothing about
    degeneration, the held-out clean answers do not beat their variants (this random backbone even prefers the
    variants, as the trained policy's reward model did); with one degenerate negative per training positive they
    beat them clearly."""
    without = _run(tmp_path / "off")
    with_ = _run(tmp_path / "on", degenerate_negatives=1.0)
    off, on = without["degenerate_eval"], with_["degenerate_eval"]
    assert off["trained_kinds"] == [] and off["unseen_kinds"] == list(dv.VARIANT_KINDS)
    assert on["trained_kinds"] == ["loop", "truncate", "stuff", "repeated_line"]
    assert on["unseen_kinds"] == ["tail_loop", "shuffle"]
    assert off["soft"]["pairs"] == on["soft"]["pairs"] == 100  # the same held-out pairs (capped), whatever the training
    assert with_["degenerate_negatives"]["added"] > 0 and without["degenerate_negatives"]["added"] == 0
    assert on["soft"]["auc"] >= off["soft"]["auc"] + 0.3, (off["soft"]["auc"], on["soft"]["auc"])
    assert on["soft"]["auc"] >= 0.7 and on["soft"]["auc_ci95"][0] > off["soft"]["auc_ci95"][1]
    # The card and the notebook's table show the figure.
    card = (tmp_path / "on" / "rm" / "README.md").read_text()
    assert "Degenerate answers (held-out)" in card and "| soft | unseen kinds | no |" in card
    table = s04.degenerate_table(with_)
    assert set(table["variant"]) >= set(dv.VARIANT_KINDS) | {"all kinds", "unseen kinds"}
    scores = (tmp_path / "on" / "rm" / dn.SCORES_FILE).read_text().splitlines()
    assert len(scores) == on["soft"]["pairs"] + on["hard"]["pairs"]


def test_finetune_trains_on_the_negatives_through_the_same_data_path(tmp_path):
    (tmp_path / "data").mkdir()
    rows = make_rows(8)
    (tmp_path / "data" / "pseudo_labels.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    params = _params(method="finetune", epochs=1.0, max_length=64, degenerate_negatives=1.0, degenerate_eval_pairs=20)
    metrics = s04.run(RunContext(tmp_path, params), progress=False)
    added = metrics["degenerate_negatives"]["added"]
    train, _, _ = rm_training.prepare(rows, params)
    assert added > 0 and metrics["counts"]["train"]["pairs"] == len(train) == added + sum(
        not r.get("variant") for r in train)
    assert metrics["degenerate_eval"]["soft"]["pairs"] == 20
    meta = json.loads((tmp_path / "rm" / "sif_rm.json").read_text())
    assert meta["training"]["degenerate_kinds"] == metrics["degenerate_eval"]["trained_kinds"]
