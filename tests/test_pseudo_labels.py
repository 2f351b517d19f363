"""Pseudo-label pairs from a hand-built ladder, and the hard-constraint audit against hand-computed figures."""

import json

import nbformat
import pytest
import yaml
from conftest import REPO as REPO_ROOT

from sif_lib.core import stats
from sif_lib.core.errors import InputError
from sif_lib.core.io import read_jsonl, write_jsonl
from sif_lib.labels import pseudo_labels, rollouts
from sif_lib.runner.runs import RunContext
from sif_lib.stages import s03_generate_pseudo_labels as s03

NO_COMMA = {"id": "punctuation:no_comma", "kind": "hard", "category": "punctuation",
            "description": "Do not use any commas.", "kwargs": {}}
LOWER = {"id": "change_case:english_lowercase", "kind": "hard", "category": "change_case",
         "description": "Write only in lowercase letters.", "kwargs": {}}
FORMAL = {"id": "tone:formal", "kind": "soft", "category": "Tone and emotion", "description": "Use a formal tone.",
          "kwargs": {}}

# Verdicts checked by hand: the no-comma and lowercase verifiers on each response.
COMMA_CAPS = "Dear Sir, the sea is calm and the boats are resting."          # no_comma F, lower F
CAPS = "Dear Sir the sea is calm and the boats are resting."                 # no_comma T, lower F
LOWER_TEXT = "the sea is calm and the boats are resting in the harbor tonight."  # no_comma T, lower T
THINK = "<think>Well, let me see.</think>the sea is calm and the boats are resting in the harbor."
# THINK: after_think -> no_comma T, lower T; whole -> no_comma F (the comma is in the reasoning)

# Ladder A: c1 soft, c2 no_comma, c3 lowercase; two samples. Ladder B: c1 no_comma; two samples.
RESPONSES = {
    ("A", 0): ["Hello, World. The sea is calm tonight.", COMMA_CAPS, CAPS, LOWER_TEXT],
    ("A", 1): [LOWER_TEXT, CAPS, COMMA_CAPS, THINK],
    ("B", 0): ["Yes, indeed it is.", THINK],
    ("B", 1): ["Yes indeed it is.", "Yes, indeed it is."],
}
CONSTRAINTS = {"A": [FORMAL, NO_COMMA, LOWER], "B": [NO_COMMA]}


def ladder_rows(parent, constraints, split="train"):
    seed = f"Describe the harbor ({parent})."
    return [{"id": f"{parent}-L{k}", "parent": parent, "level": k, "n_constraints": len(constraints),
             "constraints": constraints[:k], "prompt": " ".join([seed] + [c["description"] for c in constraints[:k]]),
             "seed_prompt": seed, "split": split} for k in range(len(constraints) + 1)]


def curriculum():
    return ladder_rows("A", CONSTRAINTS["A"]) + ladder_rows("B", CONSTRAINTS["B"])


def rollout_rows(params):
    prompts = {r["id"]: r for r in curriculum()}
    rows = []
    for (parent, sample), texts in RESPONSES.items():
        for level, text in enumerate(texts):
            row = prompts[f"{parent}-L{level}"]
            rows.append({"ladder": parent, "id": row["id"], "level": level, "sample": sample, "prompt": row["prompt"],
                         "response": text, "model": params.model.policy,
                         "sampling": rollouts.sampling_record(params), "split": "train"})
    return rows


def ladders():
    return {"A": ladder_rows("A", CONSTRAINTS["A"]), "B": ladder_rows("B", CONSTRAINTS["B"])}


def test_pairs_use_o_k_as_positive_and_o_k_minus_1_as_negative():
    from sif_lib.config.params import Params

    pairs, skipped = pseudo_labels.build_pairs(ladders(), rollout_rows(Params()), hard_pairs=True)
    assert skipped == {}
    assert len(pairs) == 2 * (3 * 2 + 1 * 2)
    by_id = {p["pair_id"]: p for p in pairs}
    assert len(by_id) == len(pairs)
    for (parent, sample), texts in RESPONSES.items():
        for k, constraint in enumerate(CONSTRAINTS[parent], start=1):
            pos, neg = by_id[f"{parent}-c{k}-s{sample}-pos"], by_id[f"{parent}-c{k}-s{sample}-neg"]
            assert (pos["response"], pos["label"], pos["source_level"]) == (texts[k], 1, k)
            assert (neg["response"], neg["label"], neg["source_level"]) == (texts[k - 1], 0, k - 1)
            for row in (pos, neg):
                assert row["constraint"] == constraint and row["kind"] == constraint["kind"]
                assert row["level"] == k and row["parent"] == parent and row["sample"] == sample
    assert by_id["A-c1-s0-pos"]["verifier"] is None and by_id["A-c1-s1-neg"]["verifier"] is None
    verdicts = {pid: p["verifier"] for pid, p in by_id.items() if p["kind"] == "hard"}
    assert verdicts == {
        "A-c2-s0-pos": True, "A-c2-s0-neg": False, "A-c3-s0-pos": True, "A-c3-s0-neg": False,
        "A-c2-s1-pos": False, "A-c2-s1-neg": True, "A-c3-s1-pos": True, "A-c3-s1-neg": False,
        "B-c1-s0-pos": True, "B-c1-s0-neg": False, "B-c1-s1-pos": False, "B-c1-s1-neg": True,
    }


def test_hard_pairs_flag_and_answer_mode():
    from sif_lib.config.params import Params

    rows = rollout_rows(Params())
    soft_only, skipped = pseudo_labels.build_pairs(ladders(), rows, hard_pairs=False)
    assert {p["kind"] for p in soft_only} == {"soft"} and len(soft_only) == 4
    assert skipped == {"hard_pairs_off": 6}
    # 'whole' scores the reasoning too: the comma inside <think> now breaks "no commas".
    whole, _ = pseudo_labels.build_pairs(ladders(), rows, answer_mode="whole")
    assert {p["pair_id"]: p["verifier"] for p in whole}["B-c1-s0-pos"] is False
    # A missing level leaves its pairs out and says so.
    partial, skipped = pseudo_labels.build_pairs(ladders(), [r for r in rows if r["id"] != "A-L2"])
    assert skipped == {"missing_response": 4} and len(partial) == 16 - 8


def hand_pairs():
    """Four hard pairs with chosen verdicts, plus soft rows the audit must ignore."""
    def row(parent, level, cid, label, verdict):
        return {"pair_id": f"{parent}-c{level}-s0-{'pos' if label else 'neg'}", "parent": parent, "level": level,
                "sample": 0, "constraint": {"id": cid, "kind": "hard"}, "kind": "hard", "response": "",
                "label": label, "source_level": level - 1 + label, "verifier": verdict}

    rows = [
        row("p", 1, "x:a", 1, True), row("p", 1, "x:a", 0, False),   # concordant
        row("q", 1, "x:b", 1, True), row("q", 1, "x:b", 0, True),    # tie, both met
        row("p", 2, "x:b", 1, False), row("p", 2, "x:b", 0, True),   # discordant
        row("q", 2, "x:a", 1, False), row("q", 2, "x:a", 0, False),  # tie, neither
        row("r", 3, "x:a", 1, True),                                  # a positive without its negative
    ]
    soft = {"pair_id": "s", "parent": "p", "level": 3, "sample": 0, "constraint": {"id": "t", "kind": "soft"},
            "kind": "soft", "response": "", "label": 0, "source_level": 2, "verifier": None}
    return rows + [soft, dict(soft, label=1)]


def test_audit_matches_hand_computed_figures():
    audit = pseudo_labels.audit_hard_pseudo_labels(hand_pairs())
    assert audit["n_rows"] == 9
    o = audit["overall"]
    # Correct labels: pairs 1 (2), 2 (1), 3 (0), 4 (1), lone positive (1) -> 5 of 9.
    assert (o["n"], o["n_positive"], o["n_negative"]) == (9, 5, 4)
    assert o["accuracy"] == round(5 / 9, 4)
    assert o["positive_rate"] == 0.6 and o["negative_rate"] == 0.5 and o["steering_gap"] == 0.1
    l1, l2, l3 = (audit["per_level"][k] for k in ("1", "2", "3"))
    assert (l1["accuracy"], l1["positive_rate"], l1["negative_rate"], l1["steering_gap"]) == (0.75, 1.0, 0.5, 0.5)
    assert (l2["accuracy"], l2["positive_rate"], l2["negative_rate"], l2["steering_gap"]) == (0.25, 0.0, 0.5, -0.5)
    assert (l3["n"], l3["accuracy"], l3["positive_rate"], l3["negative_rate"], l3["steering_gap"]) == \
        (1, 1.0, 1.0, None, None)
    a, b = audit["per_constraint"]["x:a"], audit["per_constraint"]["x:b"]
    assert (a["n"], a["accuracy"], a["positive_rate"], a["negative_rate"]) == (5, 0.8, round(2 / 3, 4), 0.0)
    assert (b["n"], b["accuracy"], b["positive_rate"], b["negative_rate"]) == (4, 0.25, 0.5, 1.0)
    pw = audit["pairwise"]
    assert (pw["pairs"], pw["concordant"], pw["discordant"], pw["tie_both"], pw["tie_neither"]) == (4, 1, 1, 1, 1)
    assert pw["agreement"] == 0.75 and pw["strict_agreement"] == 0.25 and pw["tie_share"] == 0.5
    assert pw["tau"] == 0.0
    assert audit["pairwise_per_level"]["1"]["tau"] == 1.0 and audit["pairwise_per_level"]["2"]["tau"] == -1.0
    # Wilson 95% for 2 of 4 is [0.150, 0.850]; for 0 of n it starts at 0.
    assert stats.wilson(2, 4) == [0.15, 0.85]
    assert stats.wilson(0, 10)[0] == 0.0 and stats.wilson(0, 0) is None
    assert o["positive_rate_ci95"] == stats.wilson(3, 5)


def test_audit_of_no_hard_rows_is_empty_not_an_error():
    audit = pseudo_labels.audit_hard_pseudo_labels([p for p in hand_pairs() if p["kind"] == "soft"])
    assert audit["n_rows"] == 0 and audit["overall"]["accuracy"] is None and audit["pairwise"]["tau"] is None
    assert "No hard-constraint pairs" in s03.audit_html(audit)


def open_run(tmp_path, hard_pairs=True):
    params_file = tmp_path / "p.yaml"
    params_file.write_text(yaml.safe_dump({"run": {"device": "cpu", "dtype": "float32"}, "model": {"policy": "tiny"},
                                           "rollouts": {"max_ladders": 5, "samples_per_prompt": 2,
                                                        "max_new_tokens": 8, "hard_pairs": hard_pairs}}))
    ctx = RunContext.open(tmp_path / "run", params_file)
    write_jsonl(ctx.path("data", "curriculum.jsonl"), curriculum())
    write_jsonl(ctx.path("data", "rollouts.jsonl"), rollout_rows(ctx.params))
    return ctx


def test_stage_writes_pairs_and_metrics(tmp_path):
    ctx = open_run(tmp_path)
    metrics = s03.make_pseudo_labels(ctx, {"rows": 12, "tokens_per_s": 1.0})
    pairs = read_jsonl(ctx.root / "data" / "pseudo_labels.jsonl")
    assert len(pairs) == 16 and pairs == pseudo_labels.load_pairs(ctx)
    for row in pairs:
        assert set(row) == {"pair_id", "parent", "level", "sample", "constraint", "kind", "response", "label",
                            "source_level", "verifier"}
    saved = json.loads((ctx.root / "metrics" / "03_generate_pseudo_labels.json").read_text())
    assert saved == json.loads(json.dumps(metrics))
    assert saved["rollouts"] == {"rows": 12, "tokens_per_s": 1.0}
    assert saved["pairs"]["by_kind"]["soft"] == {"rows": 4, "positive": 2, "negative": 2, "positive_share": 0.5}
    assert saved["pairs"]["by_kind"]["hard"]["rows"] == 12 and saved["pairs"]["pairs"] == 8
    assert saved["label_balance"] == {"rows": 16, "positive": 8, "negative": 8, "positive_share": 0.5}
    # Hard verdicts from the first test: positives 4 of 6 met, negatives 2 of 6 met.
    audit = saved["audit"]["overall"]
    assert audit["positive_rate"] == round(4 / 6, 4) and audit["negative_rate"] == round(2 / 6, 4)
    assert audit["accuracy"] == round(8 / 12, 4)
    assert saved["audit"]["pairwise"]["concordant"] == 4 and saved["audit"]["pairwise"]["discordant"] == 2

    html = s03.audit_html(saved["audit"])
    assert "punctuation:no_comma" in html and "66.7%" in html
    fig = s03.satisfaction_figure(saved["audit"])
    assert [list(t.y) for t in fig.data] == [[0.5, 0.5, 1.0], [0.5, 0.5, 0.0]]  # levels 1..3: positive, negative
    examples = s03.example_pairs(pairs, n=4)
    assert {(e["kind"], e["label"]) for e in examples} == {("hard", 1), ("hard", 0), ("soft", 1), ("soft", 0)}
    assert "<table>" in s03.examples_html(pairs)


def test_stage_without_pairs_or_with_foreign_rollouts_fails_clearly(tmp_path):
    ctx = open_run(tmp_path)
    rows = rollout_rows(ctx.params)
    for row in rows:
        row["model"] = "someone-else"
    write_jsonl(ctx.root / "data" / "rollouts.jsonl", rows)
    with pytest.raises(InputError, match="made by model 'someone-else'"):
        s03.make_pseudo_labels(ctx)
    write_jsonl(ctx.root / "data" / "rollouts.jsonl", [])
    with pytest.raises(InputError, match="no pseudo-label pairs could be built"):
        s03.make_pseudo_labels(ctx)


def test_notebook_cells_only_call_the_library():
    nb = nbformat.read(REPO_ROOT / "notebooks" / "03_generate_pseudo_labels.ipynb", as_version=4)
    ids = [c.id for c in nb.cells]
    assert len(ids) == len(set(ids))
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    for name in ("generate_rollouts", "make_pseudo_labels", "audit_html", "satisfaction_figure", "examples_html"):
        assert name in code
    assert not any(word in code for word in ("for ", "def ", "while ", "import json"))


def test_notebook_runs_on_the_tiny_model(tmp_path):
    import papermill

    ctx = open_run(tmp_path)
    (ctx.root / "data" / "rollouts.jsonl").unlink()
    out = tmp_path / "out.ipynb"
    papermill.execute_notebook(str(REPO_ROOT / "notebooks" / "03_generate_pseudo_labels.ipynb"), str(out),
                               parameters={"run_dir": str(ctx.root), "params_file": str(ctx.root / "params.yaml")},
                               cwd=str(REPO_ROOT / "notebooks"), progress_bar=False, kernel_name="python3")
    metrics = json.loads((ctx.root / "metrics" / "03_generate_pseudo_labels.json").read_text())
    assert metrics["rollouts"]["rows"] == 12 and metrics["rollouts"]["generated"] == 12
    assert metrics["pairs"]["rows"] == 16
    executed = nbformat.read(out, as_version=4)
    shown = json.dumps([c.get("outputs", []) for c in executed.cells])
    assert "application/vnd.plotly.v1+json" in shown and "Hard-constraint pseudo-labels" in shown
