"""The repetition diagnostic: distinct word 4-grams, the repetitive flag and the summary."""

from __future__ import annotations

import pytest

from sif_lib.constraints.repetition import distinct_ngram_ratio, is_repetitive, repetition_summary

LOOP = " ".join(["1."] * 30)
PROSE = ("Start by checking whether the part that failed can be bought on its own, then look for a repair guide "
         "written for your exact model before you open anything up.")


def test_distinct_ngram_ratio_counts_word_four_grams():
    assert distinct_ngram_ratio("a b c d") == 1.0
    # 5 four-grams: (a b a b) twice, (b a b a), (b a b c), (a b c d)
    assert distinct_ngram_ratio("a b a b a b c d") == pytest.approx(4 / 5)
    assert distinct_ngram_ratio(LOOP) == pytest.approx(1 / 27)
    assert distinct_ngram_ratio("A b C d a B c D") == pytest.approx(4 / 5)  # case-folded: (a b c d) twice
    assert distinct_ngram_ratio("too short") is None


def test_is_repetitive_needs_enough_words_and_a_low_ratio():
    assert is_repetitive(LOOP)
    assert not is_repetitive(PROSE)
    assert not is_repetitive(" ".join(["yes"] * 15))  # below the 16-word minimum
    assert is_repetitive(" ".join(["yes"] * 16))
    half = " ".join(f"w{i}" for i in range(20)) + " " + " ".join(f"w{i}" for i in range(20))
    assert distinct_ngram_ratio(half) == pytest.approx(20 / 37)  # just above one half: not repetitive
    assert not is_repetitive(half)
    assert is_repetitive(half + " " + " ".join(f"w{i}" for i in range(20)))


def test_repetition_summary():
    summary = repetition_summary([LOOP, PROSE, "", "ok"])
    assert summary["n"] == 4 and summary["repetitive"] == 1 and summary["repetitive_share"] == 0.25
    assert summary["mean_distinct_4grams"] == pytest.approx(round((1 / 27 + 1.0) / 2, 4))
    assert repetition_summary([]) == {"n": 0, "repetitive": 0, "repetitive_share": None,
                                      "mean_distinct_4grams": None}


def test_rollout_browser_marks_repetitive_rows():
    from sif_lib.widgets.rollout_browser import render_row

    row = {"step": 1, "id": "x", "kind": "instruction", "level": 1, "reward": 0.5, "prompt": "p",
           "completion": LOOP, "constraints": []}
    assert "repetitive" not in render_row(row)  # rows written before the flag existed
    assert "repetitive" in render_row({**row, "repetitive": True})
    assert "repetitive" not in render_row({**row, "repetitive": False})
