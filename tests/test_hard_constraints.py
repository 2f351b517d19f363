"""The 25 hard-constraint verifiers: verdicts, argument handling, text tools, and speed on 1 MB inputs."""

from __future__ import annotations

import random
import re
import time

import pytest

from sif_lib.constraints import HARD_CONSTRAINTS, category_of, check_constraint, check_constraints, get_checker
from sif_lib.constraints import hard as H
from sif_lib.constraints import text as T

IFEVAL_IDS = {
    "keywords:existence", "keywords:frequency", "keywords:forbidden_words", "keywords:letter_frequency",
    "language:response_language", "length_constraints:number_sentences", "length_constraints:number_paragraphs",
    "length_constraints:number_words", "length_constraints:nth_paragraph_first_word",
    "detectable_content:number_placeholders", "detectable_content:postscript",
    "detectable_format:number_bullet_lists", "detectable_format:constrained_response",
    "detectable_format:number_highlighted_sections", "detectable_format:multiple_sections",
    "detectable_format:json_format", "detectable_format:title", "combination:two_responses",
    "combination:repeat_prompt", "startend:end_checker", "startend:quotation",
    "change_case:capital_word_frequency", "change_case:english_capital", "change_case:english_lowercase",
    "punctuation:no_comma",
}

# (id, kwargs, responses that pass, responses that fail).  Markdown and Unicode variants are mixed in.
CASES = [
    ("keywords:existence", {"keywords": ["river", "stone"]},
     ["The River runs past a stone.", "riverstone", "**River** and *stone*"],
     ["The river is wide.", "Ríver and stone"]),
    ("keywords:existence", {"keywords": ["café", "naïve"]},
     ["A naïve question in a CAFÉ."], ["A naive question in a cafe."]),
    ("keywords:frequency", {"keyword": "data", "frequency": 3, "relation": "at least"},
     ["Data, data and more DATA.", "database datum data data"], ["data data", "dat a"]),
    ("keywords:frequency", {"keyword": "data", "frequency": 2, "relation": "less than"},
     ["one data point", "no such word"], ["data and data"]),
    ("keywords:forbidden_words", {"forbidden_words": ["bad", "ugly"]},
     ["A badge of good taste.", "Nothing to see."], ["That is Bad.", "*ugly*", "so ugly!"]),
    ("keywords:letter_frequency", {"letter": "z", "let_frequency": 3, "let_relation": "at least"},
     ["Zizz", "ZZZ"], ["zz", "Zebra"]),
    ("keywords:letter_frequency", {"letter": "E", "let_frequency": 2, "let_relation": "less than"},
     ["cat e", "dog"], ["eE", "éeE"]),
    ("keywords:letter_frequency", {"letter": "#", "let_frequency": 2, "let_relation": "at least"},
     ["## Heading", "#a #b"], ["# Heading", "no hashes"]),
    ("language:response_language", {"language": "fr"},
     ["Bonjour, je suis très content de vous voir aujourd'hui.", "12345 !!!"],
     ["Hello, I am very happy to see you today.", "Hola, ¿cómo estás? Estoy muy bien, gracias."]),
    ("language:response_language", {"language": "ja"}, ["これは日本語の文章です。"], ["This is English text."]),
    ("language:response_language", {"language": "hi"}, ["यह हिंदी में लिखा गया एक वाक्य है।"], ["This is English."]),
    ("length_constraints:number_sentences", {"num_sentences": 3, "relation": "at least"},
     ["One. Two. Three.", "Is it? Yes! It is."],
     ["Dr. Smith went to Washington. He was tired.", "Only one sentence here"]),
    ("length_constraints:number_sentences", {"num_sentences": 2, "relation": "less than"},
     ["Only one sentence here, said Mr. Jones.", "日本語。中文。"], ["First. Second."]),
    ("length_constraints:number_paragraphs", {"num_paragraphs": 3},
     ["a\n***\nb\n***\nc", "***\na\n***\nb\n***\nc\n***", "a *** b *** c"],
     ["a\n***\n\n***\nc", "a *** b", "a\n\nb\n\nc"]),
    ("length_constraints:number_words", {"num_words": 5, "relation": "less than"},
     ["one two three four", "naïve café", "你好世界 ok"], ["it's a b c", "1 2 3 4 5 6"]),
    ("length_constraints:number_words", {"num_words": 3, "relation": "at least"},
     ["one, two & three", "snake_case counts-as two"], ["one two"]),
    ("length_constraints:nth_paragraph_first_word",
     {"num_paragraphs": 2, "nth_paragraph": 2, "first_word": "however"},
     ["Intro text.\n\n\"However, this.\"", "Intro.\n\nHOWEVER it works.\n\n", "Intro.\n\n'however' he said"],
     ["Intro.\n\nBut however.", "Intro.\n\nHowever.\n\nThird.", "Intro.\nHowever on one line."]),
    ("detectable_content:number_placeholders", {"num_placeholders": 2},
     ["Dear [name], at [address]", "[a][b]", "[] and [ ]"], ["[name only]", "[a\nb] [c", "no brackets"]),
    ("detectable_content:postscript", {"postscript_marker": "P.S."},
     ["Hi.\n\nP.S. see you", "p. s. lower case", "**P.S.** bold"], ["PS see you", "P.P.S later"]),
    ("detectable_content:postscript", {"postscript_marker": "P.P.S"},
     ["Hi.\nP.P.S more", "p. p. s"], ["P.S. only"]),
    ("detectable_format:number_bullet_lists", {"num_bullets": 2},
     ["* a\n* b", "- a\n- b", "Intro\n  * a\n  - b\nOutro", "* a\n\n\n* b"],
     ["* a\n* b\n* c", "**bold**\n* a", "1. a\n2. b", "*a* b"]),
    ("detectable_format:constrained_response", {},
     ["My answer is yes.", "Hmm. My answer is maybe. Because..."], ["my answer is yes.", "My answer is yes"]),
    ("detectable_format:number_highlighted_sections", {"num_highlights": 2},
     ["*one* and **two**", "*α* *β*", "**bold** and *it*"],
     ["*one* and ** **", "* not\nclosed* *x*", "plain", "**only bold**"]),
    ("detectable_format:multiple_sections", {"section_spliter": "Section", "num_sections": 2},
     ["Section 1\nfoo\nSection 2\nbar", "## Section 1\nx\n## Section 2\ny"],
     ["Section 1 only", "SECTION 1\nSECTION 2", "Section A\nSection B"]),
    ("detectable_format:json_format", {},
     ['{"a": 1}', '```json\n{"a": [1, 2]}\n```', "  [1, 2]  ", '```\n{"é": "ü"}\n```'],
     ["{'a': 1}", 'Here: {"a": 1}', '```json\n{"a": 1,}\n```']),
    ("detectable_format:title", {},
     ["<<My Title>>\nbody", "# <<Überschrift>>", "text <<<x>>> text"],
     ["<< >>", "<My Title>", "<<broken\ntitle>>", "<<>>"]),
    ("combination:two_responses", {},
     ["Answer one.\n******\nAnswer two.", "******\nA\n******\nB\n******"],
     ["Same.\n******\nSame.", "A\n******\n\n******\nB", "just one", "A\n******\nB\n******\nC"]),
    ("combination:repeat_prompt", {"prompt_to_repeat": "Write a poem about cats."},
     ["write a poem about cats. Here it is...", "  WRITE A POEM ABOUT CATS. Meow."],
     ["Sure! Write a poem about cats.", "Write a poem about dogs."]),
    ("startend:end_checker", {"end_phrase": "Any other questions?"},
     ["Blah.\nAny other questions?", "\"Text. any other questions?\"", "x any other questions?  \n"],
     ["Any other questions? Thanks.", "Any other question?"]),
    ("startend:quotation", {},
     ['"quoted"', '  "x y"  ', '"multi\nline"'], ["“curly”", '"', "no quotes", '"open only']),
    ("change_case:capital_word_frequency", {"capital_frequency": 3, "capital_relation": "at least"},
     ["NASA and the ESA and the USA.", "DON'T STOP", "ÉCOLE ÜBER ÀLA"],
     ["NASA's Nasa nasa", "I am", "no capitals"]),
    ("change_case:capital_word_frequency", {"capital_frequency": 2, "capital_relation": "less than"},
     ["Only ONE here", "nothing"], ["TWO CAPS", "I AM"]),
    ("change_case:english_capital", {},
     ["THIS IS AN ENGLISH SENTENCE WRITTEN IN CAPITALS.", "1234 OK!!"],
     ["THIS IS mostly CAPITALS", "C'EST UNE PHRASE EN FRANÇAIS ÉCRITE EN MAJUSCULES."]),
    ("change_case:english_lowercase", {},
     ["this is an english sentence in lowercase.", "* a bullet\n* another bullet in english"],
     ["This is capitalised.", "c'est une phrase en français écrite en minuscules."]),
    ("punctuation:no_comma", {},
     ["No commas here. Only periods.", "Chinese comma ， is fine"], ["a, b", "1,000"]),
]


def _case_id(case):
    return case[0]


def test_registry_has_exactly_the_ifeval_ids():
    assert set(HARD_CONSTRAINTS) == IFEVAL_IDS
    for instruction_id, cls in HARD_CONSTRAINTS.items():
        assert cls.instruction_id == instruction_id
        assert cls().id == instruction_id


def test_every_id_has_cases():
    assert {case[0] for case in CASES} == IFEVAL_IDS


def test_category_of():
    assert category_of("keywords:existence") == "keywords"
    assert category_of("detectable_format:json_format") == "detectable_format"
    assert {category_of(i) for i in IFEVAL_IDS} == {
        "keywords", "language", "length_constraints", "detectable_content", "detectable_format", "combination",
        "startend", "change_case", "punctuation"}


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_positive_and_negative(case):
    instruction_id, kwargs, positives, negatives = case
    checker = get_checker(instruction_id, kwargs)
    for response in positives:
        assert checker.check_following(response) is True, (instruction_id, response)
        assert check_constraint(response, instruction_id, kwargs) is True
    for response in negatives:
        assert checker.check_following(response) is False, (instruction_id, response)
        assert check_constraint(response, instruction_id, kwargs) is False


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_empty_and_blank_text_fail(case):
    instruction_id, kwargs, _, _ = case
    checker = get_checker(instruction_id, kwargs)
    for text in ("", "   \n\t"):
        assert isinstance(checker.check_following(text), bool)
        assert check_constraint(text, instruction_id, kwargs) is False
    assert check_constraint(None, instruction_id, kwargs) is False


def test_check_constraints_extracts_the_answer():
    constraints = [{"id": "punctuation:no_comma", "kwargs": {}, "kind": "hard", "description": "no commas"},
                   {"id": "length_constraints:number_words", "kwargs": {"num_words": 3, "relation": "less than"}}]
    output = "<think>Well, let me think, at length.</think>\n\nTwo words"
    assert check_constraints(output, constraints) == [True, True]
    assert check_constraints(output, constraints, answer_mode="whole") == [False, False]
    assert check_constraints("Two words", constraints, answer_mode="require_think") == [False, False]
    assert check_constraints("<think>unfinished, reasoning", constraints) == [False, False]
    assert check_constraints("", constraints) == [False, False]
    assert check_constraints("ok", []) == []


def test_unknown_id_and_bad_arguments_raise():
    with pytest.raises(ValueError, match="no_such:thing"):
        check_constraints("text", [{"id": "no_such:thing", "kwargs": {}}])
    with pytest.raises(ValueError, match="no_such:thing"):
        check_constraint("text", "no_such:thing", {})
    with pytest.raises(ValueError, match="no_such:thing"):
        check_constraints("", [{"id": "no_such:thing"}])  # validated even when the answer is empty
    with pytest.raises(ValueError, match="relation"):
        check_constraint("x", "length_constraints:number_words", {"num_words": 3, "relation": "at most"})
    with pytest.raises(ValueError, match="unexpected"):
        check_constraint("x", "punctuation:no_comma", {"num_words": 3})
    with pytest.raises(ValueError, match="negative"):
        check_constraint("x", "length_constraints:number_words", {"num_words": -1, "relation": "at least"})
    with pytest.raises(ValueError, match="nth_paragraph"):
        check_constraint("x", "length_constraints:nth_paragraph_first_word",
                         {"num_paragraphs": 2, "nth_paragraph": 3, "first_word": "a"})
    with pytest.raises(ValueError, match="prompt_to_repeat"):
        check_constraint("x", "combination:repeat_prompt", {})
    with pytest.raises(ValueError, match="single character"):
        check_constraint("x", "keywords:letter_frequency",
                         {"letter": "ab", "let_frequency": 1, "let_relation": "at least"})
    with pytest.raises(ValueError, match="'id'"):
        check_constraints("x", [{"kwargs": {}}])


def test_unbuilt_checker_refuses_to_check():
    with pytest.raises(RuntimeError):
        H.NoComma().check_following("x")


def test_none_arguments_are_drawn_and_unknown_nulls_ignored():
    # Some IFEval copies spell unused arguments as null: they mean "not given".
    assert check_constraint("a b", "punctuation:no_comma", {"num_words": None})
    first = get_checker("length_constraints:number_words", {"num_words": None, "relation": "at least"})
    again = get_checker("length_constraints:number_words", {"num_words": None, "relation": "at least"})
    assert first.get_instruction_args() == again.get_instruction_args()
    assert 100 <= first.get_instruction_args()["num_words"] <= 500


def test_letter_frequency_non_letter_is_deterministic():
    kwargs = {"letter": "!", "let_frequency": 3, "let_relation": "less than"}
    texts = ["Wow!! Great!", "Wow! Great! Yes! No!", "none"]
    verdicts = [[check_constraint(t, "keywords:letter_frequency", kwargs) for t in texts] for _ in range(5)]
    assert verdicts == [[False, False, True]] * 5
    fresh = H.LetterFrequency(seed=123)
    fresh.build_description(**kwargs)
    assert fresh.get_instruction_args()["letter"] == "!"


def _sample_texts():
    return ["", "Hello, World.", "* a\n* b", "SECTION 1\nx\nSECTION 2\ny", "<<T>> [a] [b] *h* *i*",
            "Zebras zig. Zag!\n\nSecond paragraph here.", '{"k": [1, 2]}', "ALL CAPS TEXT HERE",
            "lower text only", "P.S. bye", "A\n******\nB", "a\n***\nb", "My answer is no."]


@pytest.mark.parametrize("instruction_id", sorted(IFEVAL_IDS))
def test_build_description_is_seedable_and_args_round_trip(instruction_id):
    cls = HARD_CONSTRAINTS[instruction_id]
    given = {"prompt_to_repeat": "Tell me a story."} if instruction_id == "combination:repeat_prompt" else {}
    a, b = cls(seed=7), cls(seed=7)
    desc_a = a.build_description(**given)
    desc_b = b.build_description(**given)
    assert desc_a == b.description == desc_b and isinstance(desc_a, str) and desc_a.strip()
    args = a.get_instruction_args()
    assert args == b.get_instruction_args()
    assert set(args) == set(a.get_instruction_args_keys())
    via_rng = cls(rng=random.Random(7))
    via_rng.build_description(**given)
    assert via_rng.get_instruction_args() == args

    fresh = cls(seed=999)
    assert fresh.build_description(**args) == desc_a
    assert fresh.get_instruction_args() == args
    for text in _sample_texts():
        assert fresh.check_following(text) == a.check_following(text), text


def test_random_arguments_vary_with_the_seed():
    for instruction_id in ("length_constraints:number_words", "keywords:existence", "language:response_language",
                           "keywords:letter_frequency", "change_case:capital_word_frequency"):
        cls = HARD_CONSTRAINTS[instruction_id]
        seen = set()
        for seed in range(8):
            inst = cls(seed=seed)
            inst.build_description()
            seen.add(repr(inst.get_instruction_args()))
        assert len(seen) > 1, instruction_id


def test_rng_and_seed_are_exclusive():
    with pytest.raises(ValueError):
        H.NoComma(rng=random.Random(0), seed=1)
    with pytest.raises(ValueError):
        H.NoComma("punctuation:other")


# ---------------------------------------------------------------------------------------------------------------
# Text tools


def test_sentence_splitting_matches_nltk_punkt_and_loads_no_pickle(monkeypatch):
    import pickle

    from nltk.tokenize.punkt import PunktSentenceTokenizer

    def refuse(*args, **kwargs):
        raise AssertionError("a pickle or an NLTK data file was loaded")

    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    import nltk.data

    monkeypatch.setattr(nltk.data, "load", refuse)
    monkeypatch.setattr(nltk.data, "find", refuse)
    fresh = T._make_tokenizer()
    plain = PunktSentenceTokenizer(T._punkt_parameters())
    rng = random.Random(2)
    words = ("the a dog Dr. Mr. U.S. e.g. J. Smith 5. 1990. No. St. etc. Inc. vs. p.m. Jan. He She It But "
             "However ok A. The end. Yes! no? why?! ... \"Hi.\" (see above.) [1]. 3.14 'quote.' “smart.” "
             "— : ; , and. IBM. NASA.").split()
    for _ in range(600):
        text = rng.choice([" ", "\n", "  "]).join(rng.choice(words) for _ in range(rng.randint(1, 30)))
        assert fresh.tokenize(text) == plain.tokenize(text), text
        assert T.split_sentences(text) == plain.tokenize(text), text
    assert T.split_sentences("Dr. Smith went to Washington. He was tired.") == [
        "Dr. Smith went to Washington.", "He was tired."]
    assert T.count_sentences("") == 0


def test_scoring_imports_only_nltk_tokenizers_and_leaves_nltk_importable():
    """In a fresh process the tokenizers load without the rest of NLTK (nor scikit-learn, scipy, pandas), split
    as NLTK does, and a later ``import nltk`` still gets the whole package."""
    import subprocess
    import sys

    code = """if True:
        import sys
        from sif_lib.constraints import text
        from sif_lib.evaluation.ifeval_scoring import score_response
        text_ = "Dr. Smith went to Washington. He was tired. I DON'T know, OK?"
        light = (text.split_sentences(text_), text.word_tokenize(text_), text.count_capital_words(text_),
                 score_response(text_, ["length_constraints:number_sentences"],
                                [{"relation": "less than", "num_sentences": 4}]))
        heavy = sorted(m for m in ("nltk", "sklearn", "scipy", "pandas") if m in sys.modules)
        assert not heavy, heavy
        import nltk
        from nltk.tokenize.punkt import PunktSentenceTokenizer
        assert callable(nltk.word_tokenize) and "sklearn" in sys.modules
        full = PunktSentenceTokenizer(text._punkt_parameters()).tokenize(text_)
        tokens = [t for s in full for t in nltk.NLTKWordTokenizer().tokenize(s)]
        assert light[0] == full and light[1] == tokens and light[2] == sum(t.isupper() for t in tokens) == 4
        assert light[3] == ([True], [True]), light
    """
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_capital_word_count_matches_nltk_word_tokenize():
    from nltk.tokenize import NLTKWordTokenizer

    tb = NLTKWordTokenizer()
    pieces = ["NASA", "U.S.", "I", "I'm", "CAN'T", "don't", "DON'T", "Cannot", "CANNOT", "GONNA", "WANNA", "'TIS",
              "A.", "Dr.", "e.g.", "OK", "(USA)", "[NOTE]", '"HELLO"', "'QUOTE'", "“SMART”", "«FR»", "NASA's",
              "JOHN'S", "X-RAY", "WORD—WORD", "A–B", "...", "Hello.", "WORLD!", "WHY?", "A,B", "A:B", "1,000",
              "$5", "#TAG", "@USER", "*BOLD*", "`CODE`", "STOP.\"", "END.)", "P.S.", "ÉCOLE", "İSTANBUL", "ǅ", "Ⓐ",
              "ß", "a", "the", "dog.", "\n", "'s", "'LL", "N'T", "'", '"', "(", ")", ".", ",", "The", "C."]
    rng = random.Random(1)
    for _ in range(1500):
        text = "".join(rng.choice(pieces) + rng.choice([" ", " ", "\n", "", "  "]) for _ in range(rng.randint(1, 20)))
        expected = sum(1 for s in T.split_sentences(text) for tok in tb.tokenize(s) if tok.isupper())
        assert T.count_capital_words(text) == expected, text
    assert T.word_tokenize("I DON'T know. OK?") == ["I", "DO", "N'T", "know", ".", "OK", "?"]


def test_word_count():
    assert T.count_words("") == 0
    assert T.count_words("Hello, world! It's 2024.") == 5
    assert T.count_words("naïve café 你好") == 3


def test_language_detection_is_stable():
    text = "ok sure"  # short texts are where unseeded langdetect flips
    first = T.detect_language(text)
    T.clear_caches()
    assert all(T.detect_language(text) == first for _ in range(5))
    assert T.detect_language("") is None


# ---------------------------------------------------------------------------------------------------------------
# Linear scans agree with the reference regexes


def test_linear_scans_match_the_reference_regexes():
    rng = random.Random(3)
    alphabet = ["[", "]", "\n", "a", " ", "*", "-", "<", ">", "<<", ">>", "\t", "**", "\r", "\u2028"]
    title = get_checker("detectable_format:title", {})
    for _ in range(4000):
        s = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 25)))
        assert H._count_placeholders(s) == len(re.findall(r"\[.*?\]", s)), s
        bullets = (len(re.findall(r"^\s*\*[^\*].*$", s, flags=re.MULTILINE))
                   + len(re.findall(r"^\s*-.*$", s, flags=re.MULTILINE)))
        assert H._count_bullets(s) == bullets, s
        expected = any(t.lstrip("<").rstrip(">").strip() for t in re.findall(r"<<[^\n]+>>", s))
        assert title.check_following(s) == expected, s


# ---------------------------------------------------------------------------------------------------------------
# 1 MB inputs


def _megabyte_of_prose(seed: int = 0) -> str:
    rng = random.Random(seed)
    words = ("the quick brown fox jumps over lazy dog river stone market policy future travel data science model "
             "answer people world system water history energy family music garden window simple strategy").split()
    names = ["Alice", "Bob", "NASA", "Dr. Smith", "Paris", "U.S.", "OpenAI", "IBM", "Mr. Lee"]
    parts: list[str] = []
    size = 0
    while size < 1 << 20:
        n = rng.randint(6, 24)
        sentence = " ".join(rng.choice(names) if rng.random() < 0.08 else rng.choice(words) for _ in range(n))
        sentence = sentence[0].upper() + sentence[1:] + rng.choice([".", ".", ".", "?", "!", ", and more."])
        if rng.random() < 0.05:
            sentence = rng.choice(["* ", "- ", "## Section 2\n", "*highlight* ", "[name] ", "<<Title>> "]) + sentence
        if rng.random() < 0.1:
            sentence += rng.choice(["\n\n", "\n***\n", "\n"])
        parts.append(sentence)
        size += len(sentence) + 1
    return " ".join(parts)[: 1 << 20]


@pytest.fixture(scope="module")
def megabyte() -> str:
    text = _megabyte_of_prose()
    assert len(text) == 1 << 20
    # Load the sentence and language models first: a one-off cost, not part of scoring.
    T.count_sentences("Warm up. Now.")
    T.detect_language("warm up the language profiles")
    return text


@pytest.mark.parametrize("case", [c for i, c in enumerate(CASES) if c[0] not in {x[0] for x in CASES[:i]}],
                         ids=_case_id)
def test_one_megabyte_scores_in_under_a_second(case, megabyte):
    instruction_id, kwargs, _, _ = case
    checker = get_checker(instruction_id, kwargs)
    T.clear_caches()
    start = time.perf_counter()
    verdict = checker.check_following(megabyte)
    elapsed = time.perf_counter() - start
    assert isinstance(verdict, bool)
    assert elapsed < 1.0, f"{instruction_id}: {elapsed:.2f} s on 1 MB"


@pytest.mark.parametrize("pattern", ["[", "\n", "<<", "*", " \n", "* ", "-\n"])
def test_degenerate_megabyte_inputs_stay_linear(pattern):
    text = pattern * ((1 << 20) // len(pattern))
    for instruction_id, kwargs in [("detectable_content:number_placeholders", {"num_placeholders": 1}),
                                   ("detectable_format:number_bullet_lists", {"num_bullets": 1}),
                                   ("detectable_format:title", {}),
                                   ("detectable_content:postscript", {"postscript_marker": "P.S."}),
                                   ("detectable_format:number_highlighted_sections", {"num_highlights": 1}),
                                   ("detectable_format:json_format", {}),
                                   ("change_case:capital_word_frequency",
                                    {"capital_frequency": 1, "capital_relation": "at least"})]:
        checker = get_checker(instruction_id, kwargs)
        start = time.perf_counter()
        checker.check_following(text)
        elapsed = time.perf_counter() - start
        assert elapsed < 1.0, f"{instruction_id} on {pattern!r} * N: {elapsed:.2f} s"
