"""The conflict table between hard constraints."""

from __future__ import annotations

import itertools
import random

import pytest

from sif_lib.constraints import HARD_CONSTRAINTS, compatible, conflicts
from sif_lib.constraints.conflicts import CONFLICTS, conflict_reason, conflicting_ids

IDS = sorted(HARD_CONSTRAINTS)


def test_table_names_only_known_ids_and_real_pairs():
    for pair in CONFLICTS:
        assert len(pair) == 2
        assert pair <= set(HARD_CONSTRAINTS), pair


def test_conflicts_is_symmetric_with_a_reason():
    for a, b in itertools.product(IDS, repeat=2):
        assert conflicts(a, b) == conflicts(b, a)
        assert (conflict_reason(a, b) is not None) == conflicts(a, b)


@pytest.mark.parametrize("instruction_id", IDS)
def test_same_id_twice_conflicts(instruction_id):
    assert conflicts(instruction_id, instruction_id)
    assert not compatible([instruction_id, instruction_id])
    assert compatible([instruction_id])
    assert instruction_id in conflicting_ids(instruction_id)


@pytest.mark.parametrize("a,b", [
    ("change_case:english_lowercase", "change_case:english_capital"),
    ("change_case:english_lowercase", "change_case:capital_word_frequency"),
    ("change_case:english_capital", "change_case:capital_word_frequency"),
    ("combination:two_responses", "combination:repeat_prompt"),
    ("combination:two_responses", "detectable_format:json_format"),
    ("combination:two_responses", "detectable_format:constrained_response"),
    ("combination:repeat_prompt", "detectable_format:json_format"),
    ("combination:repeat_prompt", "detectable_format:constrained_response"),
    ("detectable_format:json_format", "detectable_format:constrained_response"),
    ("punctuation:no_comma", "detectable_format:json_format"),
    ("startend:quotation", "detectable_format:json_format"),
    ("detectable_format:title", "detectable_format:json_format"),
    ("language:response_language", "change_case:english_capital"),
    ("length_constraints:number_paragraphs", "length_constraints:nth_paragraph_first_word"),
])
def test_known_conflicts(a, b):
    assert conflicts(a, b)
    assert not compatible([a, "keywords:existence", b])
    assert b in conflicting_ids(a)


@pytest.mark.parametrize("ids", [
    # combinations IFEval itself uses
    ["punctuation:no_comma", "detectable_format:number_highlighted_sections", "length_constraints:number_words"],
    ["combination:repeat_prompt", "punctuation:no_comma"],
    ["combination:two_responses", "language:response_language"],
    ["change_case:english_capital", "detectable_content:postscript"],
    ["startend:quotation", "startend:end_checker"],
    ["detectable_format:json_format", "keywords:forbidden_words"],
    [],
])
def test_compatible_combinations(ids):
    assert compatible(ids)
    assert compatible(iter(ids))


def test_the_verifiers_agree_with_the_table_on_an_impossible_pair():
    from sif_lib.constraints import check_constraints

    pair = [{"id": "change_case:english_lowercase", "kwargs": {}},
            {"id": "detectable_format:multiple_sections", "kwargs": {"section_spliter": "Section", "num_sections": 1}}]
    assert conflicts(pair[0]["id"], pair[1]["id"])
    for text in ["section 1\nhello there my friend", "Section 1\nhello there my friend"]:
        assert not all(check_constraints(text, pair, answer_mode="whole"))


def test_every_id_leaves_room_for_five_constraints():
    """Synthesis draws up to five constraints; every id must fit into such a set."""
    rng = random.Random(0)
    for instruction_id in IDS:
        others = [i for i in IDS if not conflicts(instruction_id, i)]
        assert len(others) >= 8, instruction_id
        for _ in range(20):
            chosen = [instruction_id]
            for candidate in rng.sample(others, len(others)):
                if compatible(chosen + [candidate]):
                    chosen.append(candidate)
                if len(chosen) == 5:
                    break
            assert len(chosen) == 5 and compatible(chosen)
