"""The curriculum explorer: builds, switches instructions and levels, and checks hard constraints live."""

from __future__ import annotations

import ipywidgets as w
import pytest

from sif_lib.synthesis import curriculum
from sif_lib.widgets.explorer import CurriculumExplorer

INSTRUCTION = {
    "id": "inst-00001", "seed_id": "s1", "domain": "writing", "seed": "Write a note about rivers.",
    "constraints": [
        {"id": "punctuation:no_comma", "kind": "hard", "category": "punctuation",
         "description": "Do not use any commas anywhere in your response.", "kwargs": {}},
        {"id": "soft:tone_and_emotion:x", "kind": "soft", "category": "Tone and emotion",
         "description": "Sound hopeful.", "kwargs": {}},
        {"id": "keywords:existence", "kind": "hard", "category": "keywords",
         "description": "Include the keywords 'delta', 'river' in your response.",
         "kwargs": {"keywords": ["delta", "river"]}},
        {"id": "startend:end_checker", "kind": "hard", "category": "startend",
         "description": "Finish your response with this exact phrase: Any "
                        "other questions? No other words should follow it.",
         "kwargs": {"end_phrase": "Any other questions?"}},
    ],
    "n_constraints": 4, "prompt": "", "split": "train",
}
OTHER = {**INSTRUCTION, "id": "inst-00002", "constraints": INSTRUCTION["constraints"][1:2], "n_constraints": 1}


@pytest.fixture()
def explorer():
    rows = curriculum.build_curriculum([INSTRUCTION, OTHER])
    return CurriculumExplorer(rows)


def test_builds_an_ipywidgets_tree(explorer):
    assert isinstance(explorer.widget, w.VBox)
    kinds = {type(child) for child in explorer.widget.children}
    assert {w.Dropdown, w.Textarea, w.HTML, w.ToggleButtons} <= kinds
    assert explorer.instruction_ids == ["inst-00001", "inst-00002"]
    explorer.select("inst-00001")
    assert [label for label, _ in explorer.level.options] == ["L0", "L1", "L2", "L3", "L4"]
    ladder = explorer.ladder.value
    assert ladder.count("HARD") == 3 and ladder.count("SOFT") == 1 and "Tone and emotion" in ladder


def test_verdicts_follow_the_response(explorer):
    explorer.select("inst-00001")
    explorer.set_response("The river meets the delta at dawn. Any other questions?")
    assert explorer.verdicts() == {0: True, 1: None, 2: True, 3: True}
    assert "✓" in explorer.verdict_view.value and "needs the reward model" in explorer.verdict_view.value

    explorer.set_response("The river, wide and slow, meets the sea. Bye.")
    assert explorer.verdicts() == {0: False, 1: None, 2: False, 3: False}
    assert "✗" in explorer.verdict_view.value and "0/3 hard" in explorer.verdict_view.value


def test_levels_limit_the_constraints_checked(explorer):
    explorer.select("inst-00001-L1")
    explorer.set_response("No commas here at all")
    assert explorer.verdicts() == {0: True}
    explorer.level.value = 3  # the toggle, as a user would click it
    assert explorer.verdicts() == {0: True, 1: None, 2: False}
    explorer.select("inst-00001-L0")
    assert explorer.verdicts() == {}


def test_switching_instruction_resets_to_its_top_level(explorer):
    explorer.select("inst-00001-L2")
    explorer.select("inst-00002")
    assert explorer.instruction.value == "inst-00002"
    assert explorer.verdicts() == {0: None}
    with pytest.raises(KeyError):
        explorer.select("inst-09999")
    with pytest.raises(KeyError):
        explorer.select("inst-00002-L5")


def test_accepts_instructions_and_cuts_the_answer_after_think():
    explorer = CurriculumExplorer([INSTRUCTION], answer_mode="after_think")
    explorer.set_response("<think>a, b, c</think>The river and the delta. Any other questions?")
    assert explorer.verdicts() == {0: True, 1: None, 2: True, 3: True}
    whole = CurriculumExplorer([INSTRUCTION], answer_mode="whole")
    whole.set_response("<think>a, b, c</think>The river and the delta. Any other questions?")
    assert whole.verdicts()[0] is False
    strict = CurriculumExplorer([INSTRUCTION], answer_mode="require_think")
    strict.set_response("The river and the delta. Any other questions?")
    assert strict.verdicts() == {0: False, 1: None, 2: False, 3: False}
