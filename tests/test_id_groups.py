"""IFEval figures per instruction id and per group of ids (trained, untrained, held out), and the params switch
that keeps ids out of training: ``synthesis.heldout_ids``."""

from __future__ import annotations

import json

import pytest
from conftest import REPO

from sif_lib.analysis import replicates
from sif_lib.analysis.markdown_tables import RunFiles, demo_rows
from sif_lib.config.params import load_params
from sif_lib.core.errors import InputError
from sif_lib.evaluation import id_groups
from sif_lib.evaluation.ifeval_scoring import PromptResult
from sif_lib.evaluation.report import id_table, summary_rows
from sif_lib.synthesis.instructions import compose_cold_start, compose_instructions, hard_pool
from sif_lib.synthesis.params_checks import check_constraint_ids
from sif_lib.synthesis.seeds import load_seeds

A, B, C = "punctuation:no_comma", "detectable_format:title", "change_case:english_lowercase"
SMOKE = REPO / "params" / "smoke.yaml"


def synthesis_params(**synthesis):
    return load_params(SMOKE, {"synthesis": synthesis, "cold_start": {"n_instructions": 20}})


def row(key, ids, loose, strict=None):
    return PromptResult(key, f"p{key}", "r", list(ids), list(strict or loose), list(loose))


def test_trained_ids_are_the_hard_ids_of_the_training_data_only(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    hard = lambda iid: {"kind": "hard", "id": iid}  # noqa: E731
    (data / "instructions.jsonl").write_text("\n".join(json.dumps(r) for r in [
        {"split": "train", "constraints": [hard(A), {"kind": "soft", "id": "soft:tone", "category": "tone"}]},
        {"split": "heldout", "constraints": [hard(B)]},  # the curriculum hold-out: evaluated, not trained on
    ]) + "\n")
    assert id_groups.trained_ids(tmp_path) == {A}
    (data / "cold_start.jsonl").write_text(json.dumps({"split": "sft", "constraints": [hard(C)]}) + "\n")
    assert id_groups.trained_ids(tmp_path) == {A, C}


def test_group_figures_pool_the_instructions_of_the_group():
    base = [row(0, [A, B], [False, True]), row(1, [A], [False]), row(2, [B, C], [False, False]),
            row(3, [A], [True])]
    trained = [row(0, [A, B], [True, True]), row(1, [A], [True]), row(2, [B, C], [False, True]),
               row(3, [A], [True])]
    fig = id_groups.group_figures(base, trained, [A], n_resamples=200, seed=0)
    assert (fig["n_instructions"], fig["n_prompts"]) == (3, 3)
    assert fig["base"]["inst_loose"] == pytest.approx(1 / 3, abs=1e-5) and fig["trained"]["inst_loose"] == 1.0
    assert fig["delta"]["inst_loose"] == pytest.approx(2 / 3, abs=1e-5)
    low, high = fig["delta_ci95"]["inst_loose"]
    assert 0 <= low <= 2 / 3 <= high <= 1
    none = id_groups.group_figures(base, trained, ["startend:quotation"], n_resamples=200)
    assert none["n_instructions"] == 0 and none["base"]["inst_loose"] is None and none["delta"]["inst_loose"] is None

    out = id_groups.id_breakdown(base, trained, trained={A}, held_out=[C], n_resamples=200, seed=0)
    groups = out["groups"]
    assert groups["trained"]["ids"] == [A] and groups["untrained"]["ids"] == sorted([B, C])
    assert groups["held_out"]["ids"] == [C]
    assert groups["untrained"]["n_instructions"] == 3
    assert groups["untrained"]["delta"]["inst_loose"] == pytest.approx(1 / 3, abs=1e-5)
    assert groups["all"]["n_instructions"] == 6
    assert groups["all"]["trained"]["inst_loose"] == pytest.approx(5 / 6, abs=1e-5)
    assert set(out["by_id"]) == {A, B, C} and out["by_id"][A]["in_training"] and not out["by_id"][C]["in_training"]
    assert out["leaked"] == []
    assert "held_out" not in id_groups.id_breakdown(base, trained, trained={A}, n_resamples=0)["groups"]
    assert id_groups.id_breakdown(base, trained, trained={A, C}, held_out=[C], n_resamples=0)["leaked"] == [C]


def test_heldout_ids_never_reach_training_data():
    params = synthesis_params(heldout_ids=[A, B, C, "startend:quotation"], n_instructions=60, hard_ratio=0.8)
    pool = hard_pool(params.synthesis)
    assert pool and not {A, B, C, "startend:quotation"} & set(pool)
    seeds = load_seeds(None)
    instructions, _ = compose_instructions(params, seeds)
    cold = compose_cold_start(params, seeds)
    drawn = {c["id"] for r in instructions + cold for c in r["constraints"] if c["kind"] == "hard"}
    assert len(drawn) > 5 and not drawn & {A, B, C, "startend:quotation"}


def test_heldout_ids_are_checked_in_one_line():
    with pytest.raises(InputError, match=r"^p\.yaml: key 'synthesis\.heldout_ids': 'punctuation:no_coma' is not an "
                                         r"IFEval or IFBench constraint id \(did you mean 'punctuation:no_comma'\?\)$"):
        check_constraint_ids(synthesis_params(heldout_ids=["punctuation:no_coma"]), "p.yaml")
    with pytest.raises(InputError, match="also in 'synthesis.hard_ids'"):
        check_constraint_ids(synthesis_params(heldout_ids=[A], hard_ids=[A, B]), "p.yaml")
    check_constraint_ids(synthesis_params(heldout_ids=[A], hard_ids=[B]), "p.yaml")


def _summary() -> dict:
    base = [row(0, [A, B], [False, True]), row(1, [A], [False]), row(2, [B, C], [False, False])]
    trained = [row(0, [A, B], [True, True]), row(1, [A], [True]), row(2, [B, C], [False, False])]
    out = id_groups.id_breakdown(base, trained, trained={A}, held_out=[C], n_resamples=100)
    figures = {"prompt_strict": 0.1, "inst_strict": 0.2, "prompt_loose": 0.1, "inst_loose": 0.2}
    return {"ifeval": {"n_prompts": 3, "base": figures, "trained": figures, "delta": dict.fromkeys(figures, 0.0),
                       "id_groups": out["groups"], "by_id": out["by_id"]}}


def test_reports_show_the_groups_and_the_ids():
    summary = _summary()
    labels = [r["benchmark"] for r in summary_rows(summary)]
    assert "IFEval instruction-level loose, trained ids (1 ids, n=2 instructions)" in labels
    assert "IFEval instruction-level loose, held-out ids (kept out of training by design) (1 ids, n=1 instructions)" \
        in labels
    trained_row = next(r for r in summary_rows(summary) if "trained ids" in r["benchmark"])
    assert (trained_row["base"], trained_row["trained"]) == ("0.0", "100.0")
    table = id_table(summary)
    assert list(table.index) == [A, C, B]  # trained, then held out, then untrained
    assert list(table["training"]) == ["trained", "held out", "untrained"]
    older = {"ifeval": {k: v for k, v in summary["ifeval"].items() if k not in ("id_groups", "by_id")}}
    assert not [r for r in summary_rows(older) if " ids (" in r["benchmark"]]
    assert "before stage 07 reported" in id_table(older)

    assert replicates.HEADLINE[[m.key for m in replicates.HEADLINE].index("ifeval.trained_ids")].value(
        summary, "trained") == 1.0


def test_markdown_tables_carry_the_groups(tmp_path):
    run = tmp_path / "r"
    (run / "eval").mkdir(parents=True)
    (run / "manifest.json").write_text(json.dumps({"stages": {}}))
    (run / "eval" / "summary.json").write_text(json.dumps(_summary()))
    rows = {r[""]: r["r"] for r in demo_rows([RunFiles(run)])}
    assert rows["IFEval instruction-level loose, trained ids, %"].startswith("0.0 → 100.0 (+100.0")
    assert rows["IFEval instruction-level loose, trained ids, %"].endswith("; 1 ids, 2 instructions")
    assert "IFEval instruction-level loose, untrained ids, %" in rows
