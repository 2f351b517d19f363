"""Reasoning items: the offline generator, external loaders and answer checking."""

from __future__ import annotations

import json
import math
import re
from fractions import Fraction

import pytest

from sif_lib.constraints.math_answer import answers_match, extract_boxed, normalize_answer, score_reasoning
from sif_lib.core.errors import InputError
from sif_lib.synthesis.math_items import FAMILIES, format_exact, generate_math_items, load_math_jsonl

DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]


def _ints(text: str) -> list[int]:
    return [int(x) for x in re.findall(r"\d+", text)]


# ---- generator

def test_generator_is_deterministic_and_seed_dependent():
    a = generate_math_items(60, seed=3)
    assert a == generate_math_items(60, seed=3)
    assert [i["question"] for i in a] != [i["question"] for i in generate_math_items(60, seed=4)]


def test_generated_item_schema():
    items = generate_math_items(40, seed=0, difficulty=None)
    assert len({i["id"] for i in items}) == 40
    assert len({i["question"] for i in items}) == 40
    assert {i["family"] for i in items} == set(FAMILIES)  # round-robin covers every family
    for item in items:
        assert item["source"] == "synthetic-math" and item["kind"] == "reasoning"
        assert item["prompt"].startswith(item["question"]) and "\\boxed{}" in item["prompt"]
        assert item["difficulty"] in (1, 2, 3)
        # Integers, short decimals, reduced fractions, or a weekday.
        assert re.fullmatch(r"-?\d+(\.\d{1,3})?|\d+/\d+|[A-Z][a-z]+day", item["answer"]), item


def test_generator_arguments_are_validated():
    with pytest.raises(InputError):
        generate_math_items(5, seed=0, difficulty=4)
    with pytest.raises(InputError, match="calculus"):
        generate_math_items(5, seed=0, families=["calculus"])
    assert {i["family"] for i in generate_math_items(12, seed=0, families=["ages", "money"])} == {"ages", "money"}
    assert generate_math_items(0, seed=0) == []


def test_difficulty_widens_numbers():
    def biggest(level):
        return max(max(_ints(i["question"])) for i in generate_math_items(200, seed=1, difficulty=level,
                                                                            families=["remainders", "algebra"]))
    assert biggest(3) > biggest(1)


def _recompute(item) -> str | None:
    """Solve some question shapes straight from their text, independently of the generator's arithmetic."""
    q = item["question"]
    n = _ints(q)
    if "shirts" in q:
        return str(n[0] * n[1] * n[2])
    if "shakes hands" in q:
        return str(math.comb(n[0], 2))
    if "medals" in q:
        return str(math.perm(n[0], 3))
    if "committee" in q:
        return str(math.comb(n[0], n[1]))
    if "cartons of" in q:
        return str(n[0] % n[1])
    if q.startswith("Today is"):
        day = next(d for d in DAYS if q.startswith(f"Today is {d}"))
        return DAYS[(DAYS.index(day) + n[0]) % 7]
    if "leaves a remainder" in q:
        floor, r, a, _, b = n
        return str(next(k for k in range(floor + 1, floor + 1000) if k % a == r and k % b == r))
    if "square field" in q:
        return str((n[0] // 4) ** 2)
    if "path" in q and "garden" in q:
        length, width, path = n
        return str((length + 2 * path) * (width + 2 * path) - length * width)
    if "three siblings" in q:
        total, gap_old, gap_mid = n
        youngest = Fraction(total - 2 * gap_mid - gap_old, 3)
        return format_exact(youngest + gap_mid + gap_old)
    if "thinks of a number" in q:
        if "multiplies the total" in q:
            a, b, m, result = n
            return format_exact((Fraction(result, m) - b) / a)
        a, b, result = n
        return format_exact(Fraction(result - b, a))
    if "paint the same fence" in q:
        ta, tb = n
        return format_exact(1 / (Fraction(1, ta) + Fraction(1, tb)))
    if "cups of rice" in q:
        servings, cups, wanted = n
        return format_exact(Fraction(cups * wanted, servings))
    return None


def test_answers_verified_by_recomputation():
    checked = 0
    for item in generate_math_items(400, seed=21, difficulty=None,
                                    families=["counting", "remainders", "geometry", "ages", "algebra", "rates",
                                              "ratios"]):
        expected = _recompute(item)
        if expected is not None:
            assert answers_match(item["answer"], expected), (item, expected)
            checked += 1
    assert checked > 150


def test_money_answers_have_cents_precision():
    pattern = re.compile(r"buys (\d+) notebooks at \$(\d+\.\d\d) each and (\d+) pens at \$(\d+\.\d\d) each, "
                         r"and pays with a \$(\d+) note")
    checked = 0
    for item in generate_math_items(60, seed=2, difficulty=3, families=["money"]):
        match = pattern.search(item["question"])
        if match:
            q1, p1, q2, p2, note = match.groups()
            assert Fraction(item["answer"]) == int(note) - int(q1) * Fraction(p1) - int(q2) * Fraction(p2) > 0
            checked += 1
    assert checked > 10


# ---- extraction

def test_extract_boxed_takes_the_last_box_with_nested_braces():
    text = r"First \boxed{3}. Then $\boxed{\frac{1}{2}}$ and finally \boxed{x^{2}+\{1\}} done."
    assert extract_boxed(text) == r"x^{2}+\{1\}"
    assert extract_boxed(r"so \boxed{\frac{\sqrt{3}}{2}}") == r"\frac{\sqrt{3}}{2}"
    assert extract_boxed(r"\fbox{12}") == "12"
    assert extract_boxed(r"thus \boxed 7.") == "7"


def test_extract_boxed_skips_unbalanced_and_missing():
    assert extract_boxed(r"\boxed{5} then \boxed{6") == "5"
    assert extract_boxed("The answer is 42.") is None
    assert extract_boxed("") is None and extract_boxed(None) is None


def test_extract_boxed_fallback_is_opt_in():
    assert extract_boxed("So the answer is 1,200 apples.", fallback=True) == "1,200"
    assert extract_boxed("So the answer is 3/4.", fallback=True) == "3/4"
    assert extract_boxed(r"answer is 9 but \boxed{10}", fallback=True) == "10"


# ---- normalisation and matching

@pytest.mark.parametrize("raw, expected", [
    ("$42$", "42"),
    ("42.0", "42"),
    ("1,234,567", "1234567"),
    ("  7  ", "7"),
    (r"\frac{3}{4}", "3/4"),
    (r"\dfrac{6}{8}", "3/4"),
    (r"\frac12", "1/2"),
    (r"-\frac{1}{2}", "-1/2"),
    ("10/4", "5/2"),
    ("6/3", "2"),
    ("x = 5", "5"),
    ("y=-3", "-3"),
    (r"\text{12 apples}", "12"),
    ("12 apples", "12"),
    ("3.5 hours", "3.5"),
    ("5 cm^2", "5"),
    (r"\$12.50", "12.5"),
    ("0.50", "0.5"),
    (".5", "0.5"),
    (r"25\%", "25"),
    (r"90^\circ", "90"),
    ("Thursday", "thursday"),
    ("(B)", "b"),
    ("The answer is 7", "7"),
    (r"\boxed{8}", "8"),
    (r"\left( 1, 2 \right)", "(1,2)"),
    (r"\sqrt{2}", r"\sqrt{2}"),
])
def test_normalize_answer(raw, expected):
    assert normalize_answer(raw) == expected


@pytest.mark.parametrize("pred, gold, same", [
    ("0.5", "1/2", True),
    (r"\frac{2}{4}", "0.5", True),
    ("1,000", "1000", True),
    ("$7.50", "7.5", True),
    ("x=3", "3", True),
    ("3, 4", "3,4.0", True),
    ("thursday", "Thursday", True),
    ("7", "8", False),
    ("1/3", "0.333", False),
    ("2and3", "23", False),
    ("", "0", False),
    (None, "0", False),
])
def test_answers_match(pred, gold, same):
    assert answers_match(pred, gold) is same


def test_huge_exponent_is_not_evaluated():
    assert normalize_answer("1e999999") == "1e999999"
    assert not answers_match("1e999999", "10")


def test_score_reasoning():
    assert score_reasoning(r"Work... so the total is \boxed{1,250}.", "1250") == 1.0
    assert score_reasoning(r"\boxed{\dfrac{5}{2}}", "2.5") == 1.0
    assert score_reasoning(r"\boxed{2} wait, actually \boxed{3}", "2") == 0.0
    assert score_reasoning("The answer is 1250.", "1250") == 0.0  # unboxed answers earn nothing
    assert score_reasoning(None, "1") == 0.0


def test_generated_items_score_their_own_answers():
    for item in generate_math_items(30, seed=5, difficulty=None):
        assert score_reasoning(f"reasoning... \\boxed{{{item['answer']}}}", item["answer"]) == 1.0
        assert score_reasoning(r"\boxed{999999}", item["answer"]) == 0.0


# ---- loaders

def test_load_gsm8k_style(tmp_path):
    path = tmp_path / "gsm.jsonl"
    path.write_text("\n".join([
        json.dumps({"question": "Ann has 3 apples and buys 4 more. How many?", "answer": "3 + 4 = 7\n#### 7"}),
        "",
        json.dumps({"question": "A farm sells 1,000 eggs a day for 2 days. How many?",
                    "answer": "1000 * 2 = <<1000*2=2000>>2000\n#### 2,000"}),
    ]) + "\n", encoding="utf-8")
    items = load_math_jsonl(path)
    assert [i["answer"] for i in items] == ["7", "2000"]
    assert [i["id"] for i in items] == ["gsm-1", "gsm-3"]
    assert all(i["kind"] == "reasoning" and i["source"] == "gsm" and "\\boxed{}" in i["prompt"] for i in items)
    assert items[0]["prompt"].startswith("Ann has 3 apples")


def test_load_deepscaler_style(tmp_path):
    path = tmp_path / "dsr.jsonl"
    path.write_text(json.dumps({"problem": "Compute $1/2 + 1/4$.", "answer": r"\frac{3}{4}", "solution": "..."})
                    + "\n" + json.dumps({"problem": "What is 6*7?", "answer": 42}) + "\n", encoding="utf-8")
    items = load_math_jsonl(path)
    assert [i["question"] for i in items] == ["Compute $1/2 + 1/4$.", "What is 6*7?"]
    assert [i["answer"] for i in items] == [r"\frac{3}{4}", "42"]
    assert score_reasoning(r"\boxed{0.75}", items[0]["answer"]) == 1.0


def test_load_with_custom_fields(tmp_path):
    path = tmp_path / "custom.jsonl"
    path.write_text(json.dumps({"q": "What is 2+2?", "final": "4", "id": "k1"}) + "\n", encoding="utf-8")
    items = load_math_jsonl(path, question_field="q", answer_field="final")
    assert items[0]["id"] == "k1" and items[0]["answer"] == "4"


@pytest.mark.parametrize("bad_line, message", [
    ("{broken", r"bad\.jsonl:2: not valid JSON"),
    (json.dumps({"question": "No answer here?"}), r"bad\.jsonl:2: missing field 'answer'"),
    (json.dumps({"text": "?", "answer": "1"}), r"bad\.jsonl:2: missing field 'question' or 'problem'"),
    (json.dumps({"question": "", "answer": "1"}), r"bad\.jsonl:2: field 'question' must be a non-empty string"),
    (json.dumps({"question": "Q?", "answer": "work\n####  "}), r"bad\.jsonl:2: field 'answer' has no final answer"),
])
def test_malformed_line_names_file_and_line(tmp_path, bad_line, message):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps({"question": "Fine?", "answer": "#### 1"}) + "\n" + bad_line + "\n", encoding="utf-8")
    with pytest.raises(InputError, match=message):
        load_math_jsonl(path)


def test_missing_math_file(tmp_path):
    with pytest.raises(InputError, match="nope.jsonl"):
        load_math_jsonl(tmp_path / "nope.jsonl")
