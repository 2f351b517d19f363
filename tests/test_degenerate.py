"""The degenerate-answer detector against hand-made examples, both ways: text it must flag (with the reason it
must give) and ordinary answers, lists and letters it must leave alone."""

import pytest

from sif_lib.constraints.degenerate import REASONS, degenerate_summary, degeneration, is_degenerate, tail_loop, tail_run

HIGHLIGHT_LOOP = " ".join(["*highlighted section*"] * 30)
POSTSCRIPT_LOOP = "\n".join(["P.P.S. I'm going to make it a reality."] * 6)
LATE_LOOP = ("The history of the city starts in the twelfth century when traders from the coast settled on the "
             "river bank and built a market. Over time the market grew into a town with walls and a church. "
             + "and then the town grew and grew " * 4 + "and then the town")
NUMBER_LOOP = "1. 1. 1. 1. 1. 1. 1. 1. 1. 1. 1. 1."

DEGENERATE = [
    ("", "near_empty"),
    ("   \n  ", "near_empty"),
    ("Yes.", "near_empty"),
    ("*Title*", "near_empty"),
    ("<<poem of joy>>\n", "near_empty"),
    ("<<A Very Long Title With Many Words>> Yes.", "near_empty"),
    ("!!! ??? ...", "near_empty"),
    (HIGHLIGHT_LOOP, "stuffed"),
    (HIGHLIGHT_LOOP, "loop"),
    (POSTSCRIPT_LOOP, "repeated_line"),
    (POSTSCRIPT_LOOP, "stuffed"),
    (LATE_LOOP, "tail_loop"),
    (NUMBER_LOOP, "loop"),
    ("I love it. " * 12, "loop"),
    ("Here is a list:\n* apples\n* pears\n* apples are great\n* apples are great\n* apples are great", "repeated_line"),
    ("Dear [name], thank you [name]. Regards [name] and [name] again.", "stuffed"),
    ("See *this* and *this* and also *this* here, nothing more to say about it.", "stuffed"),
    ("P.S. one. P.S. two. P.S. three and that is all.", "stuffed"),
    ("hahahaha " + "no no no no no no no no no no no no", "tail_loop"),
    ("<<poem of joy>>\n\n* This is point 1.\n* This is point 2.", "template_copy"),
    ("\n".join(f"* This is bullet {i}" for i in range(1, 9)), "numbered_lines"),
    ("Here are my reasons:\n1. Reason number 1 is good.\n2. Reason number 2 is good.\n3. Reason number 3 is good.",
     "numbered_lines"),
    ("Museums matter. *highlighted section* They keep the past close and teach every visitor something.",
     "template_copy"),
]

CLEAN = [
    "The quick brown fox jumps over the lazy dog.",
    "Here are three tips:\n* Sleep eight hours.\n* Drink water.\n* Walk every day.\n\nP.S. Start small.",
    "Dear [name],\n\nThank you for your letter of [date]. I will reply soon.\n\nBest,\n[my name]",
    ("*Section 1: Origins* The town began as a market.\n\n*Section 2: Growth* It grew under the counts.\n\n"
     "*Section 3: Today* It is a quiet port."),
    ("<<A Poem of Rain>>\nRain on the roof,\nrain on the road,\nthe town keeps its secrets\nand carries its load."),
    "I think so too. Yes, I agree with you, and I would add that it depends on the weather tomorrow.",
    # a keyword asked for three times, met three times, is not stuffing
    "The bank opened early. The bank was busy. By noon the bank had closed its doors for lunch and a long talk.",
    # "no" three times at the end: a short refrain, under the tail-loop's 10 words
    "Will he come back? I asked my sister, and she said no, no, no.",
    "<<The Joy of Poems>>\nA poem is a small house of words, and joy is the light left on in it.",
    "Step 1: mix the flour. Step 2: add the eggs. Step 3: bake for twenty minutes at 180 degrees.",
    # numbered headers and items that differ in more than their number
    "SECTION 1\nThe town began as a market.\nSECTION 2\nIt grew under the counts.\nSECTION 3\nIt is a port.",
    "Day 1: Rest\nDay 2: Rest\nDay 3: Rest\nDay 4: Run five miles along the river before breakfast.",
    "* Step 1: mix the flour\n* Step 2: add the eggs\n* Step 3: bake for 20 minutes\n* Step 4: let it cool",
    # a templated part under a third of the lines
    ("Essay\nThe sea is wide.\nIt is deep.\nIt is old.\nShips cross it.\nFish live in it.\nReferences:\n"
     "[1] [Author's name], [Title]\n[2] [Author's name], [Title]\n[3] [Author's name], [Title]"),
]


@pytest.mark.parametrize("text,reason", DEGENERATE)
def test_degenerate_examples_are_flagged_with_their_reason(text, reason):
    verdict = degeneration(text)
    assert verdict.degenerate and reason in verdict.reasons, verdict.reasons


@pytest.mark.parametrize("text", CLEAN)
def test_clean_examples_are_left_alone(text):
    assert degeneration(text).reasons == ()


def test_missing_answer_is_near_empty():
    assert degeneration(None).reasons == ("near_empty",)


def test_phrase_stuffing_needs_the_constraint_and_counts_against_what_it_asks():
    text = ("Our plan uses the river. river river river. The river is wide, the river is calm, and the river "
            "carries boats to the sea every morning.")
    keyword = [{"id": "keywords:existence", "kwargs": {"keywords": ["river"]}}]
    assert "stuffed" not in degeneration(text).reasons  # no constraint: the text alone does not show it
    assert "stuffed" in degeneration(text, keyword).reasons
    # the same count is what a frequency constraint asks for: not stuffing
    asked = [{"id": "keywords:frequency", "kwargs": {"keyword": "river", "frequency": 7, "relation": "at least"}}]
    assert "stuffed" not in degeneration(text, asked).reasons
    # kwargs as JSON text (the datasets copy) read the same
    assert "stuffed" in degeneration(text, [{"kwargs": '{"keywords": ["river"]}'}]).reasons


def test_end_phrase_repeated_is_stuffing():
    text = ("I hope it helps. Any other questions? Any other questions? Any other questions? Any other questions?")
    ending = [{"id": "startend:end_checker", "kwargs": {"end_phrase": "Any other questions?"}}]
    assert "stuffed" in degeneration(text, ending).reasons


def test_tail_run_counts_the_periodic_end():
    words = "a b c x y x y x y x".split()
    assert tail_run(words, 2) == 7  # "x y x y x y x": three full copies and a cut one
    assert tail_run(words, 3) == 0
    assert not tail_loop("a b c x y x y x y x")  # 7 words: under the 10-word floor
    assert tail_loop("a b c " + "x y " * 6 + "x")


def test_detector_is_never_looser_than_the_audit_count():
    """Every text the earlier audit counted (under 3 words, under half the 4-grams distinct, one line 3+ times)
    is degenerate here too."""
    from sif_lib.constraints.repetition import distinct_ngram_ratio

    texts = [t for t, _ in DEGENERATE] + CLEAN + ["one two", "a b a b a b a b", "x\nx\nx"]
    for text in texts:
        words = text.split()
        ratio = distinct_ngram_ratio(text)
        lines = [" ".join(line.lower().split()) for line in text.splitlines() if line.strip()]
        audit = len(words) < 3 or (ratio is not None and ratio < 0.5) or any(lines.count(line) >= 3 for line in lines)
        if audit:
            assert is_degenerate(text), text


def test_summary_counts_reasons_with_an_exact_interval():
    answers = [HIGHLIGHT_LOOP, CLEAN[0], CLEAN[1], "", LATE_LOOP]
    out = degenerate_summary(answers)
    assert out["n"] == 5 and out["degenerate"] == 3 and out["share"] == 0.6
    low, high = out["share_ci95"]
    assert 0.1 < low < 0.6 < high < 1.0
    assert set(out["reasons"]) == set(REASONS)
    assert out["reasons"]["near_empty"] == 1 and out["reasons"]["tail_loop"] >= 1
    assert degenerate_summary([])["share_ci95"] is None


def test_strip_stuffing_removes_stuffed_markers_and_keeps_honest_ones():
    from sif_lib.constraints.degenerate import strip_stuffing

    text = "* This is point 1.\n* a real point\nwe met *at noon* and *at noon* and *at noon* under the *old oak*"
    stripped = strip_stuffing(text)
    assert "point 1" not in stripped and "* a real point" in stripped
    assert "*at noon*" not in stripped and "*old oak*" in stripped
    assert strip_stuffing("P.S. hi\nP.S. hi\nP.S. hi").count("P.S.") == 0
    assert strip_stuffing("thanks\nP.S. see you soon") == "thanks\nP.S. see you soon"
    stuffed = "banana banana banana banana is what i say"
    assert "banana" not in strip_stuffing(stuffed, [{"kwargs": {"keywords": ["banana"]}}])
    assert strip_stuffing(stuffed) == stuffed  # a repeated word is only stuffing against a constraint that asks for it
    # "* *Bold*" bullets hold whitespace-only "highlights" between the bullet stars: not stuffing, as for the detector
    bullets = "* *one:\n* *two:\n* *three:\n* *four:"
    assert strip_stuffing(bullets) == bullets and not is_degenerate(bullets)
