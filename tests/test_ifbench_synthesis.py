"""IFBench constraints as a source for synthesis (``synthesis.ifbench_ids``): drawn, verified, labelled and kept
apart from what they contradict like any hard constraint."""

from __future__ import annotations

import itertools
import random

import pytest

from sif_lib.config.params import params_from_dict
from sif_lib.constraints import (
    EXCLUDED_IFBENCH_IDS,
    HARD_CONSTRAINTS,
    IFBENCH_CONSTRAINTS,
    category_of,
    check_constraints,
    compatible,
    conflicts,
    get_checker,
    get_constraint_class,
    hard,
    usable_hard_ids,
    usable_ifbench_ids,
)
from sif_lib.constraints.conflicts import IFBENCH_ALONE, IFBENCH_SOFT_PROXIES, conflict_reason, conflicting_ids
from sif_lib.constraints.degenerate import degeneration
from sif_lib.constraints.ifbench import needed_resource
from sif_lib.constraints.soft import sample_soft_constraint, soft_conflicts_with_hard
from sif_lib.core.errors import InputError
from sif_lib.labels.pseudo_labels import build_pairs
from sif_lib.reward.composite import score_instruction
from sif_lib.synthesis import curriculum, params_checks
from sif_lib.synthesis import instructions as synth
from sif_lib.synthesis.seeds import load_seeds

# IFBench ids whose checks need nothing beyond NLTK's tokenizers, from five families.
IFBENCH_IDS = ["count:numbers", "format:sub-bullets", "sentence:keyword", "words:words_position", "ratio:stop_words"]
SIZES = {"n_instructions": 40, "n_heldout": 8, "hard_ratio": 0.6}


def _compose(**synthesis):
    params = params_from_dict({"synthesis": {**SIZES, **synthesis}})
    rows, _ = synth.compose_instructions(params, load_seeds())
    return rows


@pytest.fixture(scope="module")
def ifbench_only():
    return _compose(hard_ids=[], ifbench_ids=IFBENCH_IDS)


def _hard(rows):
    return [c for r in rows for c in r["constraints"] if c["kind"] == "hard"]


def test_the_id_namespaces_are_disjoint_and_both_resolve():
    assert not set(HARD_CONSTRAINTS) & set(IFBENCH_CONSTRAINTS)
    assert not {category_of(i) for i in HARD_CONSTRAINTS} & {category_of(i) for i in IFBENCH_CONSTRAINTS}
    for instruction_id, cls in itertools.chain(HARD_CONSTRAINTS.items(), IFBENCH_CONSTRAINTS.items()):
        assert get_constraint_class(instruction_id) is cls
    with pytest.raises(ValueError, match="'count:nope'"):
        get_constraint_class("count:nope")
    with pytest.raises(ValueError):  # the IFEval registry itself stays IFEval's
        hard.get_constraint_class("count:numbers")
    assert set(EXCLUDED_IFBENCH_IDS) <= set(IFBENCH_CONSTRAINTS)
    assert set(usable_ifbench_ids()) == set(IFBENCH_CONSTRAINTS) - set(EXCLUDED_IFBENCH_IDS)


def test_ifbench_only_synthesis_draws_exactly_those_ids(ifbench_only):
    hard_constraints = _hard(ifbench_only)
    assert {c["id"] for c in hard_constraints} == set(IFBENCH_IDS)
    for c in hard_constraints:
        assert c["category"] == category_of(c["id"])
        checker = get_checker(c["id"], c["kwargs"])  # the recorded arguments are accepted ...
        assert checker.get_instruction_args() == c["kwargs"]
        # ... and state what the sentence asks
        rebuilt = IFBENCH_CONSTRAINTS[c["id"]]().build_description(**c["kwargs"])
        assert synth.normalize_sentence(rebuilt) == c["description"]
    for r in ifbench_only:
        assert compatible(c["id"] for c in r["constraints"] if c["kind"] == "hard")
        for c in r["constraints"]:
            assert c["description"] in r["prompt"]


def test_ifeval_and_ifbench_ids_mix_without_conflicts():
    rows = _compose(hard_ids=["punctuation:no_comma", "detectable_format:json_format"],
                    ifbench_ids=["count:numbers", "format:title_case"])
    ids = {c["id"] for c in _hard(rows)}
    assert ids == {"punctuation:no_comma", "detectable_format:json_format", "count:numbers", "format:title_case"}
    for r in rows:
        hard_ids = [c["id"] for c in r["constraints"] if c["kind"] == "hard"]
        assert compatible(hard_ids)
        assert not ("detectable_format:json_format" in hard_ids and "count:numbers" in hard_ids)
        for a in r["constraints"]:
            for b in r["constraints"]:
                if a["kind"] == "soft" and b["kind"] == "hard":
                    assert not soft_conflicts_with_hard(a, b["id"])


def test_without_ifbench_ids_nothing_changes():
    rows = _compose(hard_ids=["punctuation:no_comma", "keywords:existence"])
    assert {c["id"] for c in _hard(rows)} == {"punctuation:no_comma", "keywords:existence"}
    assert rows == _compose(hard_ids=["punctuation:no_comma", "keywords:existence"], ifbench_ids=[])


def _numbers(rows):
    return next(c for c in _hard(rows) if c["id"] == "count:numbers")


def test_the_reward_scores_a_met_ifbench_constraint_1_and_a_missed_one_0(ifbench_only):
    numbers = _numbers(ifbench_only)
    n = numbers["kwargs"]["N"]
    meets = "The plan has " + ", ".join(f"step {i}" for i in range(1, n + 1)) + " and nothing more."
    misses = meets + f" Step {n + 1} is extra."
    assert check_constraints(meets, [numbers], answer_mode="whole") == [True]
    assert score_instruction(meets, [numbers], [None]).reward == 1.0
    assert score_instruction(misses, [numbers], [None]).reward == 0.0

    bullets = {"id": "format:sub-bullets", "kind": "hard", "kwargs": {}}
    assert score_instruction("* fruit\n  - apples\n* bread\n  - rye", [bullets], [None]).reward == 1.0
    assert score_instruction("* fruit\n* bread\n  - rye", [bullets], [None]).reward == 0.0


def test_curriculum_and_pseudo_labels_treat_them_as_hard_constraints(ifbench_only):
    inst = next(r for r in ifbench_only if any(c["id"] == "count:numbers" for c in r["constraints"]))
    ladder = curriculum.decompose(inst)
    k = next(i for i, c in enumerate(inst["constraints"], start=1) if c["id"] == "count:numbers")
    assert ladder[k]["constraints"][-1]["id"] == "count:numbers"
    assert ladder[k]["constraints"][-1]["description"] in ladder[k]["prompt"]
    n = inst["constraints"][k - 1]["kwargs"]["N"]
    responses = {level: "words only here" for level in range(len(ladder))}
    responses[k] = " ".join(str(i) for i in range(1, n + 1))
    rollouts = [{"ladder": inst["id"], "level": level, "sample": 0, "response": text}
                for level, text in responses.items()]
    pairs, _ = build_pairs({inst["id"]: ladder}, rollouts, answer_mode="whole")
    rows = {p["label"]: p for p in pairs if p["level"] == k}
    assert rows[1]["kind"] == "hard" and rows[1]["verifier"] is True
    assert rows[0]["verifier"] is False


def _checked(synthesis: dict):
    """Params loaded and their constraint ids checked, as ``sif run`` and stage 01 do."""
    params = params_from_dict({"synthesis": synthesis})
    params_checks.check_constraint_ids(params, "<params>")
    return params


def test_unknown_excluded_and_ifeval_ids_are_config_errors():
    with pytest.raises(InputError, match=r"key 'synthesis.ifbench_ids': 'count:number' is not an IFBench "
                                         r"constraint id \(did you mean 'count:numbers'\?\)"):
        _checked({"ifbench_ids": ["count:number"]})
    with pytest.raises(InputError, match=r"key 'synthesis.ifbench_ids': 'punctuation:no_comma' is an IFEval id"):
        _checked({"ifbench_ids": ["punctuation:no_comma"]})
    with pytest.raises(InputError, match=r"key 'synthesis.ifbench_ids': 'custom:multiples' is never drawn"):
        _checked({"ifbench_ids": ["count:numbers", "custom:multiples"]})
    with pytest.raises(InputError, match="key 'synthesis.ifbench_ids' must be list"):
        params_from_dict({"synthesis": {"ifbench_ids": "count:numbers"}})
    assert params_from_dict({}).synthesis.ifbench_ids is None


def test_an_id_whose_resource_is_missing_is_refused_in_one_line(monkeypatch):
    assert needed_resource("words:start_verb") == "tagger"
    why = "words:start_verb needs NLTK's English part-of-speech tagger, which is not on NLTK's data path"
    monkeypatch.setattr(params_checks, "missing_resources",
                        lambda ids: {i: why for i in ids if i == "words:start_verb"})
    with pytest.raises(InputError) as err:
        _checked({"ifbench_ids": ["count:numbers", "words:start_verb"]})
    message = str(err.value)
    assert "\n" not in message
    assert "key 'synthesis.ifbench_ids'" in message and "words:start_verb" in message and "tagger" in message
    assert _checked({"ifbench_ids": ["count:numbers"]}).synthesis.ifbench_ids == ["count:numbers"]


def test_empty_hard_ids_need_ifbench_ids_when_hard_ratio_is_positive():
    with pytest.raises(InputError, match="'synthesis.hard_ids' is empty"):
        params_from_dict({"synthesis": {"hard_ids": [], "ifbench_ids": []}})
    params = params_from_dict({"synthesis": {"hard_ids": [], "ifbench_ids": ["count:numbers"]}})
    assert synth.hard_pool(params.synthesis) == ["count:numbers"]
    assert synth.hard_pool(params_from_dict({}).synthesis) == usable_hard_ids()


ALL_IDS = sorted(HARD_CONSTRAINTS) + sorted(IFBENCH_CONSTRAINTS)


def test_ifbench_conflicts_are_symmetric_with_a_reason():
    for a, b in itertools.product(ALL_IDS, repeat=2):
        assert conflicts(a, b) == conflicts(b, a), (a, b)
        assert (conflict_reason(a, b) is not None) == conflicts(a, b), (a, b)
    for a in IFBENCH_CONSTRAINTS:
        assert conflicting_ids(a) == {b for b in ALL_IDS if conflicts(a, b)}


def test_ifbench_conflict_rules():
    assert conflicts("count:numbers", "count:numbers")
    assert conflicts("count:numbers", "count:pronouns")  # one family
    assert not conflicts("count:numbers", "format:sub-bullets")
    assert not conflicts("count:numbers", "punctuation:no_comma")
    for alone in IFBENCH_ALONE:
        assert conflicts(alone, "punctuation:no_comma") and conflicts(alone, "count:numbers")
    for ifeval in ("detectable_format:json_format", "combination:two_responses", "language:response_language"):
        assert all(conflicts(ifeval, b) for b in IFBENCH_CONSTRAINTS)
    assert conflicts("change_case:english_lowercase", "format:title_case")
    assert conflicts("length_constraints:number_words", "count:word_count_range")
    assert conflicts("punctuation:no_comma", "count:punctuation")


def test_every_usable_ifbench_id_outside_the_alone_set_leaves_room_for_more():
    pool = usable_hard_ids() + usable_ifbench_ids()
    for instruction_id in usable_ifbench_ids():
        others = [i for i in pool if not conflicts(instruction_id, i)]
        assert bool(others) == (instruction_id not in IFBENCH_ALONE), instruction_id


def test_soft_constraints_avoid_what_an_ifbench_ids_proxies_avoid():
    assert set(IFBENCH_SOFT_PROXIES) == set(IFBENCH_CONSTRAINTS)
    assert soft_conflicts_with_hard("soft:fundamental_format:single_paragraph", "words:paragraph_last_first")
    assert not soft_conflicts_with_hard("soft:tone_and_emotion:tone_for_listener", "count:numbers")
    rng = random.Random(3)
    for _ in range(200):
        drawn = sample_soft_constraint(rng, avoid_hard_ids=["count:word_count_range"])
        assert not soft_conflicts_with_hard(drawn, "count:word_count_range")
        assert not soft_conflicts_with_hard(drawn, "length_constraints:number_words")


def test_degenerate_detection_knows_ifbench_keywords():
    keywords = {"id": "count:keywords_multiple", "kind": "hard",
                "kwargs": {"keyword1": "river", "keyword2": "stone", "keyword3": "cloud", "keyword4": "field",
                           "keyword5": "light"}}
    stuffed = "A walk by the water. " + "river " * 12 + "and home again before dark."
    assert "stuffed" not in degeneration(stuffed, []).reasons
    assert "stuffed" in degeneration(stuffed, [keywords]).reasons
    asked = ("The light fell on the light grass and the light water; light, light, light and light again, "
             "said the river to the stone and the stone, near a cloud, a cloud, a cloud, over the field, the field, "
             "the field, the field and the field, where we stayed for the whole long summer evening together.")
    assert "stuffed" not in degeneration(asked, [keywords]).reasons
    position = {"id": "sentence:keyword", "kind": "hard", "kwargs": {"word": "river", "N": 2}}
    assert "stuffed" in degeneration(stuffed, [position]).reasons
