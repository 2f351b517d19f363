"""Degenerate answers in the reports: stage 07's ``degenerate`` and ``clean`` sections and gallery, the report
table, ``summary.md`` and the gallery's HTML, on hand-built ``eval/`` folders; and the rollout browser's filter.
(``sif report --markdown`` and ``sif compare``: ``test_seeds_report.py``; the probe: ``test_grpo.py``; stage 07
and report.html on a built run: ``test_evaluation.py`` and ``test_browser.py``.)

The folder (:func:`write_eval_dir`) holds what stage 07 saves: the IFEval subset, each policy's scored answers
and the IFEval scorer's verdicts on them (scored by the real scorer), and the hold-out's answers and verdicts.
The answers are chosen so that every figure can be worked out by hand: one trained IFEval answer and one
trained hold-out answer turn degenerate (``*highlighted section*`` thirty times: no comma, so it passes
``no_comma``) while gaining their check; one base IFEval answer is degenerate (two words) and the trained one is
clean; the other prompts are clean on both sides.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from sif_lib.core.io import read_jsonl, write_jsonl

LOOP = " ".join(["*highlighted section*"] * 30)
NO_COMMA = "Do not use any commas in your response."
LOWER = "Write your entire response in lowercase letters."

# (key, prompt, instruction, base answer, trained answer)
IFEVAL = [
    (1, f"Write about the sea. {NO_COMMA}", "punctuation:no_comma",
     "The sea is wide, deep and blue and it covers most of the planet.", LOOP),
    (2, f"Describe a cat. {LOWER}", "change_case:english_lowercase",
     "A cat is a small animal that likes to sleep in the sun.",
     "a cat is a small animal that likes to sleep in the sun."),
    (3, f"Describe a river. {NO_COMMA}", "punctuation:no_comma",
     "Rivers run to the sea and they never stop moving.", "Rivers run to the sea and they never stop moving."),
    (4, f"Describe rain. {LOWER}", "change_case:english_lowercase",
     "ok ok", "rain falls on the hills and the fields turn green again."),
]

HARD_NO_COMMA = {"id": "punctuation:no_comma", "kind": "hard", "category": "punctuation", "kwargs": {}}
HARD_LOWER = {"id": "change_case:english_lowercase", "kind": "hard", "category": "change_case", "kwargs": {}}
SOFT = {"id": "tone-formal", "kind": "soft", "category": "Tone and emotion", "kwargs": {}}
HOLDOUT = [  # id, level, constraints, base answer, trained answer, base scores, trained scores
    ("h1", 1, [HARD_NO_COMMA], "The lighthouse is tall, white and old and it guides the ships home.", LOOP,
     [0.0], [1.0]),
    ("h2", 2, [HARD_NO_COMMA, SOFT], "Bread rises because yeast makes gas, which fills the dough slowly.",
     "Bread rises because yeast makes gas that fills the dough slowly.", [0.0, 0.4], [1.0, 0.6]),
    ("h3", 1, [HARD_LOWER], "three rivers are the nile and the amazon and the danube.",
     "the nile and the amazon and the danube are three rivers.", [1.0], [1.0]),
]


def holdout_rows() -> list[dict]:
    return [{"id": pid, "level": level, "constraints": cons, "prompt": f"Prompt {pid}."}
            for pid, level, cons, *_ in HOLDOUT]


def write_eval_dir(eval_dir: Path) -> None:
    """The files stage 07 leaves in ``eval/`` for the answers above (the IFEval verdicts by the real scorer)."""
    from sif_lib.evaluation.benchmarks import score_ifeval

    write_jsonl(eval_dir / "ifeval_input_data.jsonl",
                [{"key": k, "prompt": p, "instruction_id_list": [i], "kwargs": [{}]} for k, p, i, _, _ in IFEVAL])
    for column, name in ((3, "base"), (4, "trained")):
        folder = eval_dir / f"ifeval_{name}"
        write_jsonl(folder / "responses.jsonl", [{"prompt": row[1], "response": row[column]} for row in IFEVAL])
        score_ifeval(eval_dir / "ifeval_input_data.jsonl", folder / "responses.jsonl", folder)
    for offset, name in ((0, "base"), (1, "trained")):
        folder = eval_dir / f"holdout_{name}"
        write_jsonl(folder / "generations.jsonl", [{"prompt": f"Prompt {pid}.", "response": answers[offset],
                                                    "id": pid, "level": level}
                                                   for pid, level, _, *answers, _, _ in HOLDOUT])
        write_jsonl(folder / "verdicts.jsonl", [
            {"id": pid, "level": level, "constraint": c["id"], "kind": c["kind"], "category": c["category"],
             "score": scores[offset][j]}
            for pid, level, cons, _, _, *scores in HOLDOUT for j, c in enumerate(cons)])


@pytest.fixture
def eval_dir(tmp_path):
    folder = tmp_path / "run" / "eval"
    write_eval_dir(folder)
    return folder


def test_degenerate_and_clean_figures_by_hand(eval_dir):
    from sif_lib.evaluation.degenerate_figures import degenerate_figures

    degenerate, clean = degenerate_figures(eval_dir, "whole", holdout_rows(), n_resamples=200)
    ifeval = degenerate["ifeval"]
    assert ifeval["n"] == 4 and ifeval["base"]["degenerate"] == 1 and ifeval["trained"]["degenerate"] == 1
    assert ifeval["base"]["reasons"]["near_empty"] == 1 and ifeval["trained"]["reasons"]["stuffed"] == 1
    low, high = ifeval["trained"]["share_ci95"]
    assert ifeval["trained"]["share"] == 0.25 and low < 0.25 < high
    assert ifeval["delta"] == 0.0
    assert ifeval["flips"] == {"paired": 4, "became_degenerate": 1, "became_clean": 1, "sign_test_p": 1.0}
    low, high = ifeval["delta_ci95"]
    assert low < 0 < high
    holdout = degenerate["holdout"]
    assert (holdout["base"]["degenerate"], holdout["trained"]["degenerate"]) == (0, 1)
    assert holdout["delta"] == pytest.approx(1 / 3, abs=1e-6)
    assert holdout["flips"]["became_degenerate"] == 1 and holdout["flips"]["became_clean"] == 0
    assert degenerate["gallery"] == {"file": "degenerate_gallery.jsonl", "ifeval": 1, "holdout": 1}
    # Newly met: no_comma by the loop (prompt 1), lowercase by clean answers (prompt 2, and prompt 4, whose base
    # "ok ok" the reference check does not take for English); none lost.
    assert ifeval["gains"] == {"gained": 3, "gained_degenerate": 1, "lost": 0, "lost_degenerate": 0, "by_id": {
        "change_case:english_lowercase": {"gained": 2, "gained_degenerate": 0, "lost": 0, "lost_degenerate": 0},
        "punctuation:no_comma": {"gained": 1, "gained_degenerate": 1, "lost": 0, "lost_degenerate": 0}}}

    # Clean: IFEval prompts 2 and 3 only (1 turned degenerate, 4 was degenerate before).
    c = clean["ifeval"]
    assert c["n_prompts"] == 2 and c["n_excluded"] == 2
    assert c["base"]["prompt_strict"] == 0.5 and c["trained"]["prompt_strict"] == 1.0
    assert c["base"]["inst_loose"] == 0.5 and c["trained"]["inst_loose"] == 1.0
    assert c["delta"]["prompt_loose"] == 0.5 and c["flips"]["prompt_strict"]["gained"] == 1
    assert c["delta_ci95"]["prompt_strict"][0] <= 0.5 <= c["delta_ci95"]["prompt_strict"][1]
    # Hold-out: h2 and h3 (h1 turned degenerate).
    h = clean["holdout"]
    assert h["n_prompts"] == 2 and h["n_excluded"] == 1
    assert (h["base"]["hard"], h["trained"]["hard"]) == (0.5, 1.0)
    assert (h["base"]["soft"], h["trained"]["soft"]) == (0.4, 0.6)
    assert h["base"]["composite"] == pytest.approx(0.6) and h["trained"]["composite"] == pytest.approx(0.9)
    assert h["delta"]["hard"] == 0.5 and h["flips"]["hard"] == {"paired": 2, "gained": 1, "lost": 0,
                                                                "sign_test_p": 1.0}
    assert set(h["delta_ci95"]) == {"hard", "soft", "composite"}


def test_gains_count_each_newly_met_and_lost_instruction_with_the_answer_that_carried_it():
    """Per instruction, not per prompt: a prompt with two instructions gains two; a loss counts the base answer."""
    from sif_lib.constraints.degenerate import Degeneration
    from sif_lib.evaluation.degenerate_figures import ifeval_gains
    from sif_lib.evaluation.ifeval_scoring import PromptResult

    def row(ids, loose):
        return PromptResult(key=0, prompt="", response="", instruction_id_list=ids, strict=loose, loose=loose)

    ids = ["a", "b"]
    rows = {"base": [row(ids, [False, False]), row(ids, [True, True]), row(["a"], [True])],
            "trained": [row(ids, [True, True]), row(ids, [True, False]), row(["a"], [False])]}
    clean, loop = Degeneration(()), Degeneration(("looping",))
    verdicts = {"base": [clean, clean, loop], "trained": [loop, clean, clean]}
    gains = ifeval_gains(rows, verdicts)
    assert (gains["gained"], gains["gained_degenerate"], gains["lost"], gains["lost_degenerate"]) == (2, 2, 2, 1)
    assert gains["by_id"]["a"] == {"gained": 1, "gained_degenerate": 1, "lost": 1, "lost_degenerate": 1}
    assert gains["by_id"]["b"] == {"gained": 1, "gained_degenerate": 1, "lost": 1, "lost_degenerate": 0}


def test_gallery_lists_the_answers_that_gained_checks_by_turning_degenerate(eval_dir):
    from sif_lib.evaluation.degenerate_figures import degenerate_figures, read_gallery

    degenerate_figures(eval_dir, "whole", holdout_rows(), n_resamples=50)
    gallery = read_gallery(eval_dir.parent)
    assert [(g["set"], g["id"]) for g in gallery] == [("ifeval", 1), ("holdout", "h1")]
    first = gallery[0]
    assert first["trained_answer"] == LOOP and first["base_answer"].startswith("The sea is wide,")
    assert first["gained"] == ["punctuation:no_comma"] and first["lost"] == []
    assert "stuffed" in first["reasons"] and "loop" in first["reasons"]
    assert first["prompt"] == IFEVAL[0][1]
    assert gallery[1]["gained"] == ["punctuation:no_comma"] and gallery[1]["level"] == 1
    assert read_gallery(eval_dir.parent / "absent") == []


def test_answer_mode_and_constraints_reach_the_detector(eval_dir):
    """The hold-out answer is cut by the answer mode, and a required keyword stuffed is seen only with the
    prompt's constraints."""
    from sif_lib.evaluation.degenerate_figures import degenerate_figures

    stuffed = "The word bread is here. " + " ".join(["bread"] * 12) + " and that is all I can say about it."
    rows = read_jsonl(eval_dir / "holdout_trained" / "generations.jsonl")
    rows[2]["response"] = f"<think>{LOOP}</think>{stuffed}"
    write_jsonl(eval_dir / "holdout_trained" / "generations.jsonl", rows)
    keyword = {"id": "keywords:existence", "kind": "hard", "category": "keywords", "kwargs": {"keywords": ["bread"]}}
    with_keyword = holdout_rows()
    with_keyword[2]["constraints"] = [keyword]
    plain, _ = degenerate_figures(eval_dir, "after_think", holdout_rows(), n_resamples=0)
    assert plain["holdout"]["trained"]["degenerate"] == 1  # the loop is thinking; the answer reads as clean text
    seen, _ = degenerate_figures(eval_dir, "after_think", with_keyword, n_resamples=0)
    assert seen["holdout"]["trained"]["degenerate"] == 2 and seen["holdout"]["trained"]["reasons"]["stuffed"] == 2
    whole, _ = degenerate_figures(eval_dir, "whole", holdout_rows(), n_resamples=0)
    assert whole["holdout"]["trained"]["degenerate"] == 2  # the whole output holds the loop


# ---------------------------------------------------------------------------------------------------------------
# The report: table rows, the clean column, summary.md and the gallery.

def hand_summary(eval_dir: Path, with_sections: bool = True) -> dict:
    """A summary in the shape stage 07 writes, its IFEval and hold-out figures computed from the hand-built files."""
    from sif_lib.evaluation import curriculum_holdout as holdout_eval
    from sif_lib.evaluation.degenerate_figures import degenerate_figures, ifeval_figures, ifeval_results

    input_rows = read_jsonl(eval_dir / "ifeval_input_data.jsonl")
    ifeval = {"n_prompts": 4, "source": "hand", "delta_ci95": {}, "flips": {}}
    for name in ("base", "trained"):
        ifeval[name] = ifeval_figures(ifeval_results(eval_dir / f"ifeval_{name}", input_rows))
    ifeval["delta"] = {m: ifeval["trained"][m] - ifeval["base"][m] for m in ("prompt_strict", "inst_strict",
                                                                              "prompt_loose", "inst_loose")}
    holdout = {"n_prompts": 3, "note": None}
    for name in ("base", "trained"):
        holdout[name] = holdout_eval.aggregate(read_jsonl(eval_dir / f"holdout_{name}" / "verdicts.jsonl"))
    holdout["delta"] = holdout_eval.compare(holdout["base"], holdout["trained"])
    summary = {"run_id": "hand", "batch_size": 4, "ifeval": ifeval, "holdout": holdout,
               "policies": {"base": {"spec": "tiny"}, "trained": {"spec": "tiny", "adapter": "grpo/adapter"}},
               "decoding": {"ifeval": {"max_new_tokens": 8}, "math": {"max_new_tokens": 8}}}
    if with_sections:
        summary["degenerate"], summary["clean"] = degenerate_figures(eval_dir, "whole", holdout_rows(),
                                                                     n_resamples=200)
    return summary


def test_report_table_puts_degenerate_rows_first_and_clean_figures_beside_each_headline(eval_dir):
    from sif_lib.evaluation import report
    from sif_lib.evaluation.degenerate_report import CLEAN_COLUMN, CLEAN_DELTA

    summary = hand_summary(eval_dir)
    table = report.summary_table(summary)
    assert list(table.index[:2]) == ["Degenerate answers, IFEval (share; lower is better) (n=4)",
                                     "Degenerate answers, hold-out (share; lower is better) (n=3)"]
    row = table.loc["Degenerate answers, hold-out (share; lower is better) (n=3)"]
    low, high = summary["degenerate"]["holdout"]["trained"]["share_ci95"]
    assert row["base"].startswith("0.0 [") and row["base"].endswith("(0 of 3)")
    assert row["trained"] == f"33.3 [{100 * low:.1f}, {100 * high:.1f}] (1 of 3)"
    assert row["Δ points"].startswith("+33.3 [")
    clean = summary["clean"]["ifeval"]
    lo, hi = clean["delta_ci95"]["inst_loose"]
    assert table.loc["IFEval instruction-level loose (n=4)", CLEAN_COLUMN] == "50.0 → 100.0 (n=2)"
    assert table.loc["IFEval instruction-level loose (n=4)", CLEAN_DELTA] == (
        f"+50.0 [{100 * lo:+.1f}, {100 * hi:+.1f}]{' (interval contains 0)' if lo <= 0 else ''}")
    assert table.loc["Hold-out hard constraints satisfied (verifier)", CLEAN_COLUMN] == "50.0 → 100.0 (n=2)"
    assert table.loc["Hold-out hard constraints satisfied (verifier)", CLEAN_DELTA].startswith("+50.0 [")
    assert table.loc["Hold-out soft constraints, mean RM probability", CLEAN_COLUMN] == "40.0 → 60.0 (n=2)"
    assert table.loc["Hold-out L1 composite reward (n=2)", CLEAN_COLUMN] == ""
    assert table.loc["Degenerate answers, IFEval (share; lower is better) (n=4)", CLEAN_DELTA] == ""
    # Every cell fits pandas' default column width (50), so the notebook shows it whole.
    assert max(len(v) for v in table.to_numpy().ravel() if v) <= 50
    md = report.summary_markdown(summary)
    assert "## Degenerate answers" in md and "| Degenerate answers, IFEval" in md
    assert "IFEval answers: 1 turned degenerate, 1 turned clean of 4 (p = 1)" in md
    assert "1 on IFEval, 1 on the hold-out (`eval/degenerate_gallery.jsonl`)" in md
    assert ("IFEval instructions: 3 newly met, 1 of them by a degenerate answer (33.3%); 0 no longer met, 0 of "
            "them met before by one") in md
    from sif_lib.evaluation.degenerate_figures import ifeval_results
    from sif_lib.evaluation.id_groups import id_breakdown

    results = [ifeval_results(eval_dir / f"ifeval_{name}", read_jsonl(eval_dir / "ifeval_input_data.jsonl"))
               for name in ("base", "trained")]
    summary["ifeval"]["by_id"] = id_breakdown(*results, trained={"punctuation:no_comma"}, n_resamples=50)["by_id"]
    by_id = report.id_table(summary)
    assert by_id.loc["punctuation:no_comma", report.GAINED_DEGENERATE] == "1 of 1"
    assert by_id.loc["change_case:english_lowercase", report.GAINED_DEGENERATE] == "0 of 2"

    older = hand_summary(eval_dir, with_sections=False)  # a summary written before the sections existed
    table = report.summary_table(older)
    assert not any(i.startswith("Degenerate") for i in table.index)
    assert table.loc["IFEval prompt-level strict (n=4)", CLEAN_COLUMN] == "n/a"
    assert table.loc["IFEval prompt-level strict (n=4)", CLEAN_DELTA] == "n/a"
    assert "no degenerate-answer figures" in report.summary_markdown(older)


def test_gallery_html_shows_both_answers_reasons_and_gains_escaped(eval_dir):
    from sif_lib.evaluation.degenerate_figures import degenerate_figures
    from sif_lib.evaluation.degenerate_report import gallery_markup

    run_dir = eval_dir.parent
    assert "evaluated before the degenerate-answer gallery existed" in gallery_markup(run_dir)
    degenerate_figures(eval_dir, "whole", holdout_rows(), n_resamples=0)
    page = gallery_markup(run_dir)
    assert "2 trained answer(s) gained a check while turning degenerate" in page
    assert page.count("<div class='sif-degenerate-example'>") == 2
    assert "The sea is wide, deep and blue" in page and "*highlighted section* *highlighted section*" in page
    assert "loop, tail_loop, stuffed" in page and "<code>punctuation:no_comma</code>" in page
    assert "IFEval · 1" in page and "hold-out L1 · h1" in page
    rows = read_jsonl(eval_dir / "degenerate_gallery.jsonl")
    rows[0]["prompt"] = "<script>alert(1)</script> & more"
    write_jsonl(eval_dir / "degenerate_gallery.jsonl", rows)
    page = gallery_markup(run_dir, n=1)
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt; &amp; more" in page
    assert "the first 1 are shown" in page
    write_jsonl(eval_dir / "degenerate_gallery.jsonl", [])
    assert "No trained answer gained a check" in gallery_markup(run_dir)


# ---------------------------------------------------------------------------------------------------------------
# The rollout browser's filter.

def test_rollout_browser_filters_degenerate_rollouts_and_shows_their_reasons():
    from sif_lib.widgets.rollout_browser import RolloutBrowser, degenerate_reasons

    prose = "A short plain answer that says one thing once and stops there."
    rows = [{"step": 1, "id": "a", "kind": "instruction", "level": 1, "completion": prose, "constraints": []},
            {"step": 1, "id": "b", "kind": "instruction", "level": 1, "completion": LOOP, "constraints": []},
            {"step": 1, "id": "c", "kind": "reasoning", "level": 0, "completion": "42", "constraints": []},
            # the reward's recorded reasons stand (here: a missing answer, which the reward leaves unflagged)
            {"step": 2, "id": "d", "kind": "instruction", "level": 1, "completion": "", "degenerate": []},
            {"step": 2, "id": "e", "kind": "instruction", "level": 2, "completion": prose, "degenerate": ["stuffed"]}]
    assert degenerate_reasons(rows[1]) == ["loop", "tail_loop", "stuffed", "template_copy"]
    assert degenerate_reasons(rows[2]) == [] and degenerate_reasons(rows[3]) == []
    # The answer mode decides what is read: a loop inside the thinking is not the answer.
    thinking = {**rows[0], "completion": f"<think>{LOOP}</think>{prose}"}
    assert degenerate_reasons(thinking, "after_think") == [] and degenerate_reasons(thinking, "whole")
    browser = RolloutBrowser(rows)
    assert browser.only_degenerate.description == "only degenerate (2 of 5 rollouts)"
    assert browser.degenerate_indices(1) == [1] and browser.reasons(2, 1) == ["stuffed"]
    assert len(browser.completion.options) == 3
    browser.only_degenerate.value = True
    assert [value for _, value in browser.completion.options] == [1]
    assert browser.current()["id"] == "b" and "degenerate: loop, tail_loop, stuffed" in browser.view.value
    browser.step.value = 2
    assert browser.current()["id"] == "e" and "degenerate: stuffed" in browser.view.value
    # Selecting a clean rollout unticks the filter rather than hiding the selection.
    assert browser.select(2, 0)["id"] == "d" and browser.only_degenerate.value is False
    assert "degenerate:" not in browser.view.value
    browser.only_degenerate.value = True
    assert browser.select(1, 1)["id"] == "b" and browser.only_degenerate.value is True
    only_clean = RolloutBrowser(rows[:1])
    only_clean.only_degenerate.value = True
    assert only_clean.current() is None and "No degenerate rollouts at this step" in only_clean.view.value
