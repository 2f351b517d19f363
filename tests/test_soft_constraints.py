"""The soft-constraint library: taxonomy, templates, sampling and the contradiction tables."""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest

from sif_lib.constraints import soft

EXPECTED_CATEGORIES = (
    "Lexical content", "Element", "Semantic",
    "Word count", "Sentence count", "Paragraph count", "Document count",
    "Tone and emotion", "Form and style", "Audience-specific", "Authorial style",
    "Fundamental format", "Bespoke format", "Specialized format",
    "Pragmatic", "Syntactic", "Morphological", "Phonological",
    "Role-based", "Task-specific", "Complex context", "Example", "Inverse", "Contradictory", "Rule",
)
METHOD_MD = Path(__file__).resolve().parents[2] / "shared" / "docs" / "METHOD.md"


def _method_md_categories(text: str) -> list[str]:
    """The category bullets of METHOD.md, with "Word/Sentence count" shorthand expanded."""
    block = text.split("CFBench taxonomy:", 1)[1].split("**GPT-4o.**", 1)[0]
    names: list[str] = []
    for line in block.splitlines():
        line = line.strip()
        if not line.startswith("- "):
            continue
        for item in line[2:].rstrip(";.").split(", "):
            if "/" in item:
                *heads, last = item.split("/")
                suffix = last.split(" ", 1)[1]
                names += [f"{h} {suffix}" for h in heads] + [last]
            else:
                names.append(item)
    return names


# ---- taxonomy

def test_categories_are_the_25_cfbench_names_in_order():
    assert tuple(c.name for c in soft.SOFT_CATEGORIES) == EXPECTED_CATEGORIES


@pytest.mark.skipif(not METHOD_MD.is_file(), reason="METHOD.md lives in ../shared beside the checkout")
def test_categories_match_method_md():
    assert _method_md_categories(METHOD_MD.read_text(encoding="utf-8")) == list(EXPECTED_CATEGORIES)


def test_every_category_has_a_group_and_description():
    for category in soft.SOFT_CATEGORIES:
        assert category.group in soft.GROUPS
        assert len(category.description) > 20
    assert soft.GROUP_OF["Word count"] == "numerical"
    assert soft.GROUP_OF["Bespoke format"] == "format"
    assert soft.GROUP_OF["Phonological"] == "linguistic"
    assert {c.group for c in soft.SOFT_CATEGORIES} == set(soft.GROUPS)


# ---- templates and renderings

def test_library_is_consistent():
    assert soft.library_problems() == []


def test_at_least_three_templates_per_category():
    counts = soft.template_counts()
    assert set(counts) == set(EXPECTED_CATEGORIES)
    assert min(counts.values()) >= 3


def test_many_distinct_renderings():
    renderings = soft.all_renderings()
    descriptions = [r["description"] for r in renderings]
    assert len(set(descriptions)) == len(descriptions)
    assert len(descriptions) >= 500
    assert min(soft.category_counts().values()) >= 10
    assert sum(soft.category_counts().values()) == len(renderings)


def test_every_rendering_records_its_category_and_params():
    slugs = {c.name: c.slug for c in soft.SOFT_CATEGORIES}
    for r in soft.all_renderings():
        assert set(r) == {"id", "kind", "category", "description", "kwargs"}
        assert r["kind"] == "soft"
        assert r["category"] in slugs
        assert r["id"].startswith(f"soft:{slugs[r['category']]}:")
        assert r["id"] in soft.TEMPLATE_BY_ID
        assert r["description"][0].isupper() and r["description"].rstrip('"').endswith(".")
        assert "{" not in r["description"]
        for value in r["kwargs"].values():
            assert value in r["description"]


def test_template_ids_are_stable():
    # Synthesised data stores these ids; renaming one breaks old runs.
    for template_id in ("soft:form_and_style:lowercase", "soft:fundamental_format:single_paragraph",
                        "soft:audience_specific:explain_to", "soft:role_based:speak_as",
                        "soft:word_count:tweet_length", "soft:audience_specific:language_learner"):
        assert template_id in soft.TEMPLATE_BY_ID


def test_numerical_categories_avoid_exact_counts():
    numerical = {c.name for c in soft.SOFT_CATEGORIES if c.group == "numerical"}
    for r in soft.all_renderings():
        if r["category"] in numerical:
            assert not re.search(r"\d", r["description"]), r["description"]
            assert not re.search(r"\bexactly\b|\bat least\b|\bat most\b", r["description"]), r["description"]


# ---- sampling

def test_sampling_is_deterministic_under_a_seed():
    first = [soft.sample_soft_constraint(random.Random(7)) for _ in range(3)]
    assert first[0] == first[1] == first[2]
    rng_a, rng_b = random.Random(11), random.Random(11)
    seq_a = [soft.sample_soft_constraint(rng_a) for _ in range(50)]
    seq_b = [soft.sample_soft_constraint(rng_b) for _ in range(50)]
    assert seq_a == seq_b
    rng_c = random.Random(12)
    assert [soft.sample_soft_constraint(rng_c) for _ in range(50)] != seq_a


def test_sampling_covers_categories_evenly():
    rng = random.Random(0)
    counts = {name: 0 for name in EXPECTED_CATEGORIES}
    for _ in range(2500):
        counts[soft.sample_soft_constraint(rng)["category"]] += 1
    assert min(counts.values()) > 50  # 100 expected per category


def test_sampling_a_named_category_by_name_or_slug():
    rng = random.Random(3)
    assert soft.sample_soft_constraint(rng, "Tone and emotion")["category"] == "Tone and emotion"
    assert soft.sample_soft_constraint(rng, "role_based")["category"] == "Role-based"
    with pytest.raises(ValueError, match="unknown soft-constraint category 'Vibes'"):
        soft.sample_soft_constraint(rng, "Vibes")


def test_sampling_respects_hard_ids_to_avoid():
    rng = random.Random(5)
    avoid = ("change_case:english_capital", "length_constraints:number_paragraphs")
    for _ in range(500):
        drawn = soft.sample_soft_constraint(rng, avoid_hard_ids=avoid)
        assert not any(soft.soft_conflicts_with_hard(drawn, h) for h in avoid)
        assert drawn["id"] not in ("soft:form_and_style:lowercase", "soft:fundamental_format:single_paragraph")


def test_sampling_respects_soft_constraints_to_avoid():
    rng = random.Random(9)
    lowercase = soft.TEMPLATE_BY_ID["soft:form_and_style:lowercase"].sample(rng)
    for _ in range(300):
        drawn = soft.sample_soft_constraint(rng, avoid_soft=[lowercase])
        assert drawn["category"] != "Form and style"
        assert "formal" not in soft.template_of(drawn).tags
    with pytest.raises(LookupError):
        soft.sample_soft_constraint(rng, "Form and style", avoid_soft=[lowercase])


# ---- contradiction tables

def test_declared_hard_ids_are_ifeval_ids():
    assert len(soft.HARD_IDS) == len(set(soft.HARD_IDS)) == 25
    for conflicts in soft.TAG_HARD_CONFLICTS.values():
        assert conflicts <= set(soft.HARD_IDS)


@pytest.mark.parametrize("soft_id, hard_id", [
    ("soft:form_and_style:lowercase", "change_case:english_capital"),
    ("soft:form_and_style:lowercase", "detectable_format:title"),
    ("soft:fundamental_format:single_paragraph", "length_constraints:number_paragraphs"),
    ("soft:fundamental_format:single_paragraph", "detectable_format:number_bullet_lists"),
    ("soft:fundamental_format:single_paragraph", "detectable_format:multiple_sections"),
    ("soft:audience_specific:language_learner", "language:response_language"),
    ("soft:audience_specific:language_learner", "change_case:english_lowercase"),
    ("soft:word_count:tweet_length", "length_constraints:number_words"),
    ("soft:specialized_format:ready_email", "detectable_content:number_placeholders"),
    ("soft:phonological:rhyming_close", "startend:end_checker"),
    ("soft:specialized_format:genre", "detectable_format:json_format"),
])
def test_declared_soft_hard_contradictions(soft_id, hard_id):
    rendered = soft.TEMPLATE_BY_ID[soft_id].sample(random.Random(0))
    assert soft.soft_conflicts_with_hard(rendered, hard_id)
    assert soft.soft_conflicts_with_hard(soft_id, hard_id)


def test_compatible_pairs_are_not_flagged():
    assert not soft.soft_conflicts_with_hard("soft:form_and_style:lowercase", "change_case:english_lowercase")
    assert not soft.soft_conflicts_with_hard("soft:fundamental_format:single_paragraph", "punctuation:no_comma")
    assert not soft.soft_conflicts_with_hard("soft:tone_and_emotion:tone_for_listener", "keywords:existence")
    assert not soft.soft_conflicts_with_hard("soft:tone_and_emotion:tone_for_listener", "not:a_real_check")
    assert soft.TEMPLATE_BY_ID["soft:tone_and_emotion:tone_for_listener"].hard_conflicts == frozenset()


def test_unknown_soft_id_is_a_key_error():
    with pytest.raises(KeyError, match="soft:nope:nothing"):
        soft.soft_conflicts_with_hard({"id": "soft:nope:nothing"}, "keywords:existence")


def test_soft_soft_conflicts():
    t = soft.TEMPLATE_BY_ID
    assert soft.soft_conflicts("soft:tone_and_emotion:humour", "soft:tone_and_emotion:leave_feeling")  # same category
    assert soft.soft_conflicts("soft:form_and_style:lowercase", "soft:contradictory:two_registers") is False
    assert soft.soft_conflicts("soft:audience_specific:explain_to", "soft:lexical_content:precise_terms")
    assert soft.soft_conflicts("soft:fundamental_format:single_paragraph", "soft:paragraph_count:one_idea_paragraphs")
    assert soft.soft_conflicts("soft:word_count:tweet_length", "soft:document_count:alternative_versions")
    assert soft.soft_conflicts("soft:syntactic:imperative", "soft:pragmatic:polite_advice")
    assert soft.soft_conflicts("soft:role_based:speak_as", "soft:authorial_style:in_the_manner_of")
    assert not soft.soft_conflicts("soft:tone_and_emotion:tone_for_listener", "soft:audience_specific:explain_to")
    # Symmetric over the whole library.
    rng = random.Random(1)
    ids = list(t)
    for _ in range(500):
        a, b = rng.sample(ids, 2)
        assert soft.soft_conflicts(a, b) == soft.soft_conflicts(b, a)
