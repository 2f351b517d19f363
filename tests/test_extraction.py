"""Answer extraction for reasoning-model outputs."""

from __future__ import annotations

import pytest

from sif_lib.constraints import answer_text, extract_answer


def test_after_think_takes_the_text_after_the_last_closing_tag():
    out = "<think>\nplan: use </think> carefully\n</think>\n\nThe answer.\n"
    assert extract_answer(out) == "The answer."
    assert extract_answer(out, "after_think") == "The answer."
    assert extract_answer("<think>a</think>b</think> c ") == "c"


def test_after_think_without_a_tag_is_the_whole_text():
    assert extract_answer("Just an answer, no reasoning.\n") == "Just an answer, no reasoning.\n"
    assert extract_answer("") == ""


def test_unclosed_leading_think_block_is_stripped():
    assert extract_answer("<think>reasoning that never ends") == ""
    assert extract_answer("\n  <think>reasoning\nmore") == ""
    # a <think> that is not at the start is ordinary text
    assert extract_answer("Use the <think> tag.") == "Use the <think> tag."


def test_whole_mode_returns_everything():
    out = "<think>x</think>\n\nAnswer"
    assert extract_answer(out, "whole") == out


def test_require_think():
    assert extract_answer("<think>x</think>\nAnswer", "require_think") == "Answer"
    assert extract_answer("Answer without reasoning", "require_think") is None
    assert extract_answer("<think>unfinished", "require_think") is None
    assert extract_answer("<think>x</think>", "require_think") == ""


def test_none_and_bad_mode():
    assert extract_answer(None) is None
    assert extract_answer(None, "whole") is None
    assert answer_text(None) == ""
    assert answer_text("Answer", "require_think") == ""
    assert answer_text("<think>x</think> y") == "y"
    with pytest.raises(ValueError, match="answer mode"):
        extract_answer("x", "last_line")


def test_unicode_and_case_sensitive_tags():
    assert extract_answer("<think>思考</think>\n答え：はい") == "答え：はい"
    assert extract_answer("<THINK>x</THINK> y") == "<THINK>x</THINK> y"
