"""Soft constraints: the CFBench categories that need semantic judgement rather than a code check.

The paper had GPT-4o write soft constraints. Here they come from hand-written templates with parameter pools,
so synthesis runs offline and every constraint is traceable to a template id. This is a simplification: the
phrasing is less varied than a language model's, and a template cannot tailor itself to the seed task, so the
templates are written to make sense for any open-ended prompt.

Numerical categories (word, sentence, paragraph, document count) are phrased as approximate or relational
limits ("roughly the length of a tweet", "each paragraph shorter than the one before"); exact counts are the
hard IFEval checks' job.

Contradictions are declared through *tags*. A template carries tags such as ``lowercase`` or
``single_paragraph``; ``TAG_HARD_CONFLICTS`` maps each tag to the IFEval ids it can contradict, and
``TAG_CLASHES`` lists pairs of tags that cannot sensibly appear in the same instruction. A declared conflict
means "can contradict for some parameters of the hard check" (a tweet-length answer contradicts "at least 300
words" but not "fewer than 300"); the table errs towards avoiding a pairing rather than risking an
unsatisfiable instruction.
"""

from __future__ import annotations

import functools
import itertools
import random
import re
import string
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Iterable, Iterator, Mapping

from sif_lib.errors import InputError

GROUPS = ("content", "numerical", "stylistic", "format", "linguistic", "situation")

# The 25 hard checks of IFEval, which the contradiction table refers to.
HARD_IDS = (
    "keywords:existence", "keywords:frequency", "keywords:forbidden_words", "keywords:letter_frequency",
    "language:response_language",
    "length_constraints:number_sentences", "length_constraints:number_paragraphs",
    "length_constraints:number_words", "length_constraints:nth_paragraph_first_word",
    "detectable_content:number_placeholders", "detectable_content:postscript",
    "detectable_format:number_bullet_lists", "detectable_format:constrained_response",
    "detectable_format:number_highlighted_sections", "detectable_format:multiple_sections",
    "detectable_format:json_format", "detectable_format:title",
    "combination:two_responses", "combination:repeat_prompt",
    "startend:end_checker", "startend:quotation",
    "change_case:capital_word_frequency", "change_case:english_capital", "change_case:english_lowercase",
    "punctuation:no_comma",
)


@dataclass(frozen=True)
class SoftCategory:
    name: str
    group: str
    description: str

    @property
    def slug(self) -> str:
        return re.sub(r"[^a-z0-9]+", "_", self.name.lower()).strip("_")


# CFBench has ten primary categories; its last four (Example, Inverse, Contradictory, Rule) stand alone there.
# They are filed under "situation" here, as the method notes group them, so every category has one of six groups.
SOFT_CATEGORIES: tuple[SoftCategory, ...] = (
    SoftCategory("Lexical content", "content", "Which words, phrases and vocabulary the response draws on."),
    SoftCategory("Element", "content", "Specific components the response must contain, such as an example."),
    SoftCategory("Semantic", "content", "What the response means: its focus, balance, theme or underlying message."),
    SoftCategory("Word count", "numerical", "Approximate or relative length in words, judged rather than counted."),
    SoftCategory("Sentence count", "numerical", "How many sentences, and how long, relative to the rest of the text."),
    SoftCategory("Paragraph count", "numerical", "How the response divides into paragraphs and how those compare."),
    SoftCategory("Document count", "numerical", "How many separate pieces (versions, notes, letters) it holds."),
    SoftCategory("Tone and emotion", "stylistic", "The feeling the response conveys and leaves the reader with."),
    SoftCategory("Form and style", "stylistic", "The literary form or register the response is written in."),
    SoftCategory("Audience-specific", "stylistic", "Tailoring the response to a particular reader."),
    SoftCategory("Authorial style", "stylistic", "Writing in the recognisable manner of an author or kind of writer."),
    SoftCategory("Fundamental format", "format", "Basic layout: lists, tables, headings, paragraphs, plain text."),
    SoftCategory("Bespoke format", "format", "A custom layout the instruction defines itself."),
    SoftCategory("Specialized format", "format", "The conventions of a genre or professional document type."),
    SoftCategory("Pragmatic", "linguistic", "Implied meaning, politeness and what is left unsaid."),
    SoftCategory("Syntactic", "linguistic", "Sentence structure: voice, mood, clause length, parallelism."),
    SoftCategory("Morphological", "linguistic", "Word forms: tense, affixes, word families, coined words."),
    SoftCategory("Phonological", "linguistic", "How the text sounds: rhyme, alliteration, rhythm."),
    SoftCategory("Role-based", "situation", "Answering in character as a given person or role."),
    SoftCategory("Task-specific", "situation", "Shaping the answer for a particular practical use."),
    SoftCategory("Complex context", "situation", "A detailed situation the answer must take into account."),
    SoftCategory("Example", "situation", "Following a given example, or teaching through examples and analogies."),
    SoftCategory("Inverse", "situation", "What the response must not do or contain."),
    SoftCategory("Contradictory", "situation", "Two demands in tension that the response must balance."),
    SoftCategory("Rule", "situation", "A conditional or ordering rule the response must apply throughout."),
)
CATEGORY_BY_NAME: Mapping[str, SoftCategory] = MappingProxyType({c.name: c for c in SOFT_CATEGORIES})
GROUP_OF: Mapping[str, str] = MappingProxyType({c.name: c.group for c in SOFT_CATEGORIES})

_PARA_HARD = ("length_constraints:number_paragraphs", "length_constraints:nth_paragraph_first_word")
_CASE_HARD = ("change_case:english_capital", "change_case:english_lowercase", "change_case:capital_word_frequency")

# tag -> IFEval ids that a template with this tag can contradict.
TAG_HARD_CONFLICTS: Mapping[str, frozenset[str]] = MappingProxyType({k: frozenset(v) for k, v in {
    # All-lowercase text cannot satisfy capitalised words or a title in the usual capitalised form.
    "lowercase": ("change_case:english_capital", "change_case:capital_word_frequency", "detectable_format:title"),
    "single_paragraph": _PARA_HARD + ("detectable_format:number_bullet_lists", "detectable_format:multiple_sections",
                                      "detectable_format:json_format", "combination:two_responses"),
    # Another language defeats the language detector's target, the English case checks and English keywords.
    "non_english": ("language:response_language", "keywords:existence", "keywords:frequency") + _CASE_HARD,
    "english_only": ("language:response_language",),
    "very_short": _PARA_HARD + ("length_constraints:number_words", "length_constraints:number_sentences",
                                "detectable_format:multiple_sections", "detectable_format:number_bullet_lists",
                                "combination:two_responses", "combination:repeat_prompt"),
    "concise": ("length_constraints:number_words", "length_constraints:number_sentences"),
    "long_form": ("length_constraints:number_words", "length_constraints:number_sentences"),
    "multi_paragraph": ("length_constraints:number_paragraphs", "detectable_format:json_format"),
    "multi_document": ("combination:two_responses", "length_constraints:number_paragraphs",
                       "detectable_format:json_format"),
    "single_document": ("combination:two_responses",),
    "markup": ("detectable_format:json_format",),
    "whole_form": ("detectable_format:json_format", "combination:repeat_prompt", "startend:quotation"),
    "verse": ("length_constraints:number_words", "length_constraints:number_sentences",
              "detectable_format:number_bullet_lists", "detectable_format:multiple_sections"),
    "plain_text": ("detectable_format:number_bullet_lists", "detectable_format:number_highlighted_sections"),
    "fixed_opening": ("combination:repeat_prompt", "startend:quotation", "length_constraints:nth_paragraph_first_word"),
    "fixed_ending": ("startend:end_checker", "detectable_content:postscript", "startend:quotation"),
    "no_placeholders": ("detectable_content:number_placeholders",),
}.items()})

# Tags that carry no hard conflict of their own but matter for soft-soft clashes.
_SOFT_ONLY_TAGS = frozenset({"formal", "casual", "humorous", "solemn", "simple_language", "technical", "has_example",
                             "no_examples", "imperative", "indirect", "asks_questions", "no_questions", "persona"})
KNOWN_TAGS = frozenset(TAG_HARD_CONFLICTS) | _SOFT_ONLY_TAGS

# Pairs of tags that should not meet in one instruction; a tag paired with itself means "only one of these".
TAG_CLASHES: frozenset[frozenset[str]] = frozenset(frozenset(p) for p in (
    ("formal", "casual"), ("formal", "lowercase"), ("humorous", "solemn"),
    ("very_short", "long_form"), ("very_short", "multi_document"), ("very_short", "multi_paragraph"),
    ("very_short", "markup"), ("concise", "long_form"),
    ("single_paragraph", "markup"), ("single_paragraph", "multi_paragraph"), ("single_paragraph", "multi_document"),
    ("plain_text", "markup"), ("simple_language", "technical"), ("non_english", "english_only"),
    ("has_example", "no_examples"), ("imperative", "indirect"), ("asks_questions", "no_questions"),
    ("single_document", "multi_document"), ("whole_form", "multi_document"),
    ("fixed_opening", "fixed_opening"), ("fixed_ending", "fixed_ending"), ("whole_form", "whole_form"),
    ("persona", "persona"),
))


@dataclass(frozen=True)
class SoftTemplate:
    """One phrasing with ``{placeholders}``; every combination of its parameter pools is a rendering."""

    category: str
    template_id: str
    text: str
    params: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    tags: frozenset[str] = frozenset()

    @property
    def id(self) -> str:
        return f"soft:{CATEGORY_BY_NAME[self.category].slug}:{self.template_id}"

    @functools.cached_property
    def hard_conflicts(self) -> frozenset[str]:
        return frozenset().union(*(TAG_HARD_CONFLICTS.get(t, frozenset()) for t in self.tags))

    def render(self, kwargs: Mapping[str, str]) -> dict:
        return {"id": self.id, "kind": "soft", "category": self.category,
                "description": self.text.format_map(kwargs), "kwargs": dict(kwargs)}

    def renderings(self) -> Iterator[dict]:
        names = sorted(self.params)
        for values in itertools.product(*(self.params[n] for n in names)):
            yield self.render(dict(zip(names, values)))

    def sample(self, rng: random.Random) -> dict:
        # Sorted names make the draw order, and so the result, independent of dict construction order.
        return self.render({n: rng.choice(self.params[n]) for n in sorted(self.params)})


def _t(category: str, template_id: str, text: str, tags: Iterable[str] = (), **params: Iterable[str]) -> SoftTemplate:
    return SoftTemplate(category, template_id, text, MappingProxyType({k: tuple(v) for k, v in params.items()}),
                        frozenset(tags))


TEMPLATES: tuple[SoftTemplate, ...] = (
    # ---- Lexical content
    _t("Lexical content", "sensory_words", "Use vivid words that appeal to the sense of {sense}.",
       sense=("sight", "sound", "smell", "taste", "touch")),
    _t("Lexical content", "weave_phrase",
       'Work the expression "{phrase}" into the response where it fits the meaning naturally.', ("english_only",),
       phrase=("small steps", "common ground", "in the long run", "second nature", "a fresh start",
               "behind the scenes")),
    _t("Lexical content", "plain_words", "Prefer short, everyday words over {fancy}.", ("simple_language",),
       fancy=("formal or academic vocabulary", "technical terms", "fashionable buzzwords", "long, abstract nouns")),
    _t("Lexical content", "field_vocabulary", "Draw your metaphors and word choices from the world of {field}.",
       field=("sailing", "gardening", "cooking", "music", "sport", "astronomy", "carpentry", "architecture",
              "the weather")),
    _t("Lexical content", "precise_terms",
       "Use the precise terms {expert} would use, and use each one correctly.", ("technical",),
       expert=("a practising engineer", "a professional chef", "a field biologist", "a financial analyst",
               "an academic historian", "an experienced nurse")),

    # ---- Element
    _t("Element", "concrete_example", "Include one concrete example from {source}.", ("has_example",),
       source=("everyday life", "the workplace", "a school setting", "life in a small town", "the natural world",
               "history", "sport", "the kitchen")),
    _t("Element", "anecdote", "Include a brief anecdote about {who} that illustrates the main point.", ("has_example",),
       who=("a curious child", "a retired teacher", "a first-time traveller", "a busy shop owner", "two old friends")),
    _t("Element", "closing_element", "End with {kind}.", ("fixed_ending",),
       kind=("a single practical takeaway the reader can act on today", "a short, encouraging thought",
             "a clear recommendation", "a look at what the reader could explore next")),
    _t("Element", "supporting_fact", "Mention at least one {item} that supports the main point.",
       item=("historical fact", "widely known figure or statistic", "scientific finding", "real place",
             "well-established rule of thumb")),
    _t("Element", "misconception", "Briefly address a common {what} and explain why it falls short.",
       what=("objection", "misconception", "shortcut", "myth")),

    # ---- Semantic
    _t("Semantic", "focus_aspect", "Focus mainly on the {aspect} side of the topic rather than covering everything.",
       aspect=("practical", "emotional", "historical", "financial", "social", "environmental", "ethical", "personal",
               "scientific")),
    _t("Semantic", "main_point_first", "State the main point {where}, then support it.", ("fixed_opening",),
       where=("in the very first sentence", "within the first two sentences",
              "right at the start, before any background")),
    _t("Semantic", "balanced_view", "Present both the {pair}, giving each roughly equal weight.",
       pair=("benefits and the drawbacks", "risks and the rewards", "short-term and the long-term effects",
             "arguments for and the arguments against", "obvious and the less obvious consequences")),
    _t("Semantic", "underlying_message",
       "Let the response carry an underlying message of {message} without stating it outright.",
       message=("hope", "resilience", "curiosity", "gratitude", "community", "humility")),
    _t("Semantic", "theme_thread", "Tie every part of the response back to the theme of {theme}.",
       theme=("change", "balance", "trust", "simplicity", "patience", "connection")),

    # ---- Word count
    _t("Word count", "tweet_length", "Keep it brief, roughly the length of {unit}.", ("very_short",),
       unit=("a tweet", "a text message", "a postcard", "a sticky note", "a short voicemail")),
    _t("Word count", "quick_read", "Make it short enough to read in about {time}.", ("very_short",),
       time=("thirty seconds", "one minute", "the time it takes to boil a kettle")),
    _t("Word count", "long_read", "Be generous with detail; {phrase}.", ("long_form",),
       phrase=("a thorough answer of several hundred words is welcome", "depth matters more than brevity here",
               "take the space needed to cover it properly")),
    _t("Word count", "word_budget", "Spend noticeably more words on {pair}.",
       pair=("the practical steps than on the background", "the solution than on the problem",
             "the examples than on the general principles", "the future than on the past")),
    _t("Word count", "equal_parts", "Keep {parts} roughly equal in length.",
       parts=("the introduction and the conclusion", "each of the main points", "the description of each option")),
    _t("Word count", "short_conclusion", "Make the conclusion {rel} the introduction.",
       rel=("no longer than", "about half as long as", "noticeably shorter than")),

    # ---- Sentence count
    _t("Sentence count", "sentences_per_paragraph", "Keep each paragraph to {amount} sentences.",
       amount=("just a handful of", "two or three short", "no more than a few")),
    _t("Sentence count", "short_opening_sentence", "Make the opening sentence noticeably shorter than {rest}.",
       rest=("the sentences that follow", "any other sentence in the response")),
    _t("Sentence count", "one_sentence_close", "Finish with a single sentence that {does}.", ("fixed_ending",),
       does=("sums up the whole answer", "captures the key idea in plain words", "a child could repeat back")),
    _t("Sentence count", "fewer_sentences", "Use fewer sentences than usual, {how}.", ("concise",),
       how=("making each one carry a full idea", "cutting anything that merely repeats",
            "so that nothing feels padded")),
    _t("Sentence count", "growing_sentences",
       "Let the sentences grow gradually longer as the response builds towards {climax}.",
       climax=("its main point", "its conclusion", "a final image")),
    _t("Sentence count", "one_sentence_each",
       "Give each {unit} a single sentence of its own, without running them together.",
       unit=("step", "idea", "tip", "reason")),

    # ---- Paragraph count
    _t("Paragraph count", "shrinking_paragraphs",
       "Each paragraph should be noticeably {rel} than the one before.", ("multi_paragraph",),
       rel=("shorter", "longer")),
    _t("Paragraph count", "one_idea_paragraphs",
       "Organise the response into {few} short paragraphs, each built around a single idea.", ("multi_paragraph",),
       few=("a few", "three or four", "a small number of")),
    _t("Paragraph count", "hook_paragraph",
       "Make the first paragraph {hook} that draws the reader in.", ("fixed_opening", "multi_paragraph"),
       hook=("a one-line hook", "a single striking question", "a brief scene-setting image")),
    _t("Paragraph count", "closing_paragraph",
       "Close with a {length} paragraph that {does}.", ("fixed_ending", "multi_paragraph"),
       length=("short", "one- or two-sentence"),
       does=("looks ahead", "returns to the opening idea", "thanks the reader")),
    _t("Paragraph count", "paragraph_per_unit",
       "Give each {unit} its own paragraph, and keep those paragraphs similar in length.", ("multi_paragraph",),
       unit=("option", "step", "season", "perspective", "main reason")),
    _t("Paragraph count", "short_frame",
       "Use a short opening paragraph, {body}, and a short closing paragraph.", ("multi_paragraph",),
       body=("a longer middle section", "one or two fuller paragraphs in the middle")),

    # ---- Document count
    _t("Document count", "alternative_versions",
       "Provide {n} alternative versions, each with a clearly different {axis}.", ("multi_document",),
       n=("two", "three"),
       axis=("tone", "angle", "intended reader")),
    _t("Document count", "paired_pieces", "Write it as {pair}.", ("multi_document",),
       pair=("two short notes, one to a friend and one to a colleague",
             "a pair of letters, one from each side of the question",
             "two separate messages, one sent before the event and one after")),
    _t("Document count", "series",
       "Split the content into a short series of {n} {piece}, each of which could be read on its own.",
       ("multi_document",),
       n=("two", "three", "four"),
       piece=("posts", "cards", "notes")),
    _t("Document count", "draft_and_revision",
       "Give a rough first draft followed by a {revision} version of it.", ("multi_document",),
       revision=("polished", "shorter", "friendlier", "more formal")),
    _t("Document count", "single_piece",
       "Keep everything in one self-contained piece that {could}.", ("single_document",),
       could=("could be printed on a single page", "could be sent as one message", "needs no follow-up")),

    # ---- Tone and emotion
    _t("Tone and emotion", "tone_for_listener", "Use a {tone} tone suitable for {listener}.",
       tone=("warm, reassuring", "calm, steady", "upbeat, encouraging", "gentle, patient"),
       listener=("a nervous first-time patient", "someone who has just had a setback", "a worried parent",
                 "a beginner who feels out of their depth", "a tired student the night before an exam")),
    _t("Tone and emotion", "leave_feeling", "Leave the reader feeling {feeling} by the end.",
       feeling=("hopeful", "curious to learn more", "calm", "motivated to act", "quietly amused", "reassured",
                "confident", "ready to begin")),
    _t("Tone and emotion", "humour", "Add {kind} humour without making light of the subject.", ("humorous",),
       kind=("a light touch of", "gentle, self-deprecating", "dry, understated", "playful")),
    _t("Tone and emotion", "solemn",
       "Keep the tone {tone} throughout, with no jokes or exclamation-filled enthusiasm.", ("solemn",),
       tone=("serious and respectful", "quiet and reflective", "sober and measured")),
    _t("Tone and emotion", "shared_enthusiasm",
       "Convey genuine {emotion} about the topic, as if sharing it with a close friend.",
       emotion=("excitement", "wonder", "fascination", "affection")),
    _t("Tone and emotion", "empathic_opening",
       "Begin by acknowledging how {state} the reader might feel before offering anything else.", ("fixed_opening",),
       state=("overwhelmed", "frustrated", "uncertain", "anxious")),

    # ---- Form and style
    _t("Form and style", "literary_form", "Write it in the form of {form}.", ("whole_form",),
       form=("a diary entry", "a newspaper opinion column", "a short fable with a moral", "a radio announcement",
             "a letter to a friend", "a museum placard", "a travel postcard", "a story told around a campfire")),
    _t("Form and style", "formal_register", "Use a {register} register throughout.", ("formal",),
       register=("formal, professional", "academic", "polished, diplomatic")),
    _t("Form and style", "casual_register", "Use a {register} register throughout.", ("casual",),
       register=("relaxed, conversational", "plain-spoken, neighbourly", "chatty, informal")),
    _t("Form and style", "second_person", 'Address the reader directly as "you" throughout, {manner}.',
       manner=("as if coaching them one-on-one", "as if talking across a kitchen table", "as a friendly guide would")),
    _t("Form and style", "lowercase", "Write everything in lowercase, like {like}.", ("casual", "lowercase"),
       like=("a casual text message", "a quick note scribbled to a friend", "a relaxed chat message")),
    _t("Form and style", "story_frame",
       "Present the information as a short story with {protagonist} at its centre.", ("whole_form",),
       protagonist=("a curious child", "an elderly neighbour", "a first-day apprentice", "a talking cat",
                    "a time traveller")),

    # ---- Audience-specific
    _t("Audience-specific", "explain_to", "Explain it as you would to {audience}.", ("simple_language",),
       audience=("a ten-year-old", "a curious grandparent", "a teenager who thinks the topic is boring",
                 "a complete beginner", "someone hearing about it for the first time")),
    _t("Audience-specific", "expert_readers",
       "Pitch it at {experts}, skipping the basics they already know.", ("technical",),
       experts=("experienced professionals in the field", "graduate students", "hobbyists who have done this for years",
                "specialists who want the finer details")),
    _t("Audience-specific", "second_language_readers",
       "Write for readers whose first language is not English: {how}.", ("simple_language",),
       how=("use clear, literal wording and avoid idioms", "keep sentences straightforward and avoid slang",
            "avoid cultural references that need local knowledge")),
    _t("Audience-specific", "skimming_reader",
       "Tailor it to {reader} who will only skim it, so the most useful part must stand out.", ("concise",),
       reader=("a busy parent", "a busy executive", "a commuter reading on a phone", "a nurse on a short break")),
    _t("Audience-specific", "specific_group", "Make it relevant to {group}, with details that fit their situation.",
       group=("retirees", "university students", "new parents", "small-business owners", "people living in rural areas",
              "people who work night shifts", "volunteers at a local charity", "teachers")),
    _t("Audience-specific", "sceptical_reader",
       "Address a reader who is {stance} about the topic, and win them over respectfully.",
       stance=("sceptical", "indifferent", "doubtful", "wary")),
    _t("Audience-specific", "language_learner",
       "Respond in simple {language} that an intermediate learner of the language could follow.",
       ("non_english", "simple_language"),
       language=("French", "Spanish", "German", "Italian", "Portuguese")),

    # ---- Authorial style
    _t("Authorial style", "in_the_manner_of", "Write in the manner of {author}.", ("persona",),
       author=("Ernest Hemingway, with short, plain declarative sentences",
               "Jane Austen, with gentle irony and social observation", "a classic fairy-tale storyteller",
               "a Victorian naturalist writing field notes", "a hard-boiled detective narrator",
               "a nature documentary narrator", "a sports commentator calling a close match")),
    _t("Authorial style", "minimalist", "Write in a spare, minimalist style, with {rule}.",
       rule=("no adjectives unless they earn their place", "no ornament and no filler", "every word doing work")),
    _t("Authorial style", "lyrical", "Write in a lyrical, {quality} style that lingers on images.",
       quality=("poetic", "dreamy", "reflective")),
    _t("Authorial style", "kind_of_writer", "Write in the style of {writer}.",
       writer=("a newspaper reporter, putting the most important facts first",
               "a science journalist, turning findings into a clear story",
               "a travel writer, full of place and atmosphere", "a columnist with a strong personal point of view")),
    _t("Authorial style", "distinct_voice", "Give the writing a {flavour} authorial voice with a distinct personality.",
       flavour=("wry", "whimsical", "earnest", "brisk", "contemplative")),

    # ---- Fundamental format
    _t("Fundamental format", "list", "Present the key points as a {kind}.", ("markup",),
       kind=("bulleted list", "short bulleted list with one line per point",
             "numbered list of steps in the order they should be done",
             "nested bulleted list with sub-points under each main point")),
    _t("Fundamental format", "single_paragraph",
       "Answer in a single flowing paragraph {manner}.", ("single_paragraph",),
       manner=("with no lists or headings", "that reads like a spoken explanation", "of continuous prose")),
    _t("Fundamental format", "table", "Summarise the comparison in a simple table with {layout}.", ("markup",),
       layout=("one row per option", "a column for pros and a column for cons", "a row for each step and its purpose")),
    _t("Fundamental format", "headings", "Organise the answer under short headings, {detail}.", ("markup",),
       detail=("one for each main idea", "each followed by a brief paragraph",
               "in the order a reader would need them")),
    _t("Fundamental format", "bold_key", "Put the single most important {thing} in bold.", ("markup",),
       thing=("sentence", "term", "warning", "number", "step")),
    _t("Fundamental format", "plain_text", "Use plain text only, with no markdown such as {symbols}.", ("plain_text",),
       symbols=("asterisks or pound signs", "bullets, bold text or headings")),

    # ---- Bespoke format
    _t("Bespoke format", "point_pattern", 'Format each point as "{pattern}".', ("markup",),
       pattern=("Tip: ... | Why it helps: ...", "Step — what to do — what to watch for", "Myth: ... / Reality: ...",
                "Do: ... / Instead of: ...")),
    _t("Bespoke format", "qa", "Structure it as a short Q&A, with each question {style}.", ("markup", "whole_form"),
       style=("in bold followed by a plain-text answer", "phrased the way a beginner would ask it",
              "followed by a one-sentence answer and then a fuller one")),
    _t("Bespoke format", "dialogue", "Present it as a dialogue between {pair}.", ("whole_form",),
       pair=("a curious student and a patient teacher", "two old friends catching up",
             "a customer and a shop assistant", "a sceptic and an enthusiast", "a grandparent and a grandchild")),
    _t("Bespoke format", "point_marker", "Start each main point with {marker}.", ("markup",),
       marker=("a one-word label followed by a colon", "a keyword in square brackets", "an arrow (->)",
               "a short title in italics")),
    _t("Bespoke format", "summary_line", "Finish with a {line} that sums up the answer.", ("fixed_ending",),
       line=('"Bottom line:" sentence', 'one-line "In short:" summary', '"Key takeaway" line set apart from the rest',
             '"If you remember one thing:" line')),

    # ---- Specialized format
    _t("Specialized format", "genre",
       "Format it as {genre}, following the usual conventions of that genre.", ("markup", "whole_form"),
       genre=("a recipe card with ingredients and method", "a press release", "an office memo",
              "the minutes of a short meeting", "a frequently-asked-questions page", "a lesson plan",
              "a product specification sheet", "a screenplay scene", "a one-page newsletter",
              "a formal business letter")),
    _t("Specialized format", "ready_email",
       "Write it as an email to {recipient} that is ready to send, with a subject line and no blanks left to fill in.",
       ("no_placeholders", "whole_form"),
       recipient=("a colleague", "a customer", "a neighbour", "a teacher")),
    _t("Specialized format", "poem", "Write it as {poem}.", ("english_only", "verse", "whole_form"),
       poem=("a sequence of haiku", "a limerick", "a short rhyming ballad", "a sonnet")),
    _t("Specialized format", "printable_list",
       "Format it as a {doc} someone could print and tick off.", ("markup", "whole_form"),
       doc=("checklist", "packing list", "shopping list", "to-do list grouped by day")),

    # ---- Pragmatic
    _t("Pragmatic", "implied_point",
       "Let the reader infer the {point} from the details rather than stating it bluntly.", ("indirect",),
       point=("main recommendation", "main lesson", "writer's opinion")),
    _t("Pragmatic", "polite_advice", "Phrase any advice as {form} rather than as commands.", ("indirect",),
       form=("gentle suggestions", "questions the reader might consider", "options to choose from")),
    _t("Pragmatic", "subtext", "Write so that {subtext} comes through between the lines.",
       subtext=("the writer's affection for the subject", "a quiet sense of urgency",
                "respect for the reader's own judgement", "a hint of nostalgia", "gentle encouragement")),
    _t("Pragmatic", "shared_context", "Assume the reader {context}, and let that shape what you leave unsaid.",
       context=("already knows the basics", "has heard all the usual advice before", "is reading this in a hurry",
                "is slightly embarrassed to be asking", "is an expert in a neighbouring field")),
    _t("Pragmatic", "diplomatic", "Be diplomatic: point out any {problem} without blaming anyone.",
       problem=("common mistakes", "weak spots", "bad habits", "risks")),

    # ---- Syntactic
    _t("Syntactic", "simple_sentences", "Use mostly short, simple sentences with {detail}.",
       detail=("one idea each", "few subordinate clauses", "the subject and verb close together")),
    _t("Syntactic", "active_voice", "Prefer the active voice {detail}.",
       detail=("throughout", "and make clear who does what", "even when describing processes")),
    _t("Syntactic", "rhetorical_questions", "Use {questions} to engage the reader.", ("asks_questions",),
       questions=("at least one rhetorical question", "a couple of rhetorical questions",
                  "a rhetorical question at each turning point")),
    _t("Syntactic", "parallel_structure", "Use parallel grammatical structure when listing {what}.",
       what=("the main points", "the steps", "the benefits", "the options")),
    _t("Syntactic", "imperative", "Phrase the instructions in the imperative mood, {detail}.", ("imperative",),
       detail=("starting each one with a verb", "as direct as a recipe", "without hedging words such as 'maybe'")),
    _t("Syntactic", "open_with_question",
       "Open the response with a question {kind}.", ("asks_questions", "fixed_opening"),
       kind=("that the rest of it answers", "the reader has probably asked themselves",
             "that challenges a common assumption")),

    # ---- Morphological
    _t("Morphological", "single_tense", "Write in the {tense} tense throughout.",
       tense=("present", "past", "future")),
    _t("Morphological", "native_words",
       "Prefer short native English words over longer ones built from {parts}.", ("english_only",),
       parts=("suffixes such as -tion, -ment and -ity", "Latin and Greek roots", "stacked prefixes and suffixes")),
    _t("Morphological", "coined_word", "Coin one playful {kind} word that fits the topic, and explain what it means.",
       kind=("compound", "blended", "made-up", "portmanteau")),
    _t("Morphological", "no_ly_adverbs", "Avoid adverbs ending in -ly; {alternative}.", ("english_only",),
       alternative=("let strong verbs carry the meaning", "use precise verbs instead",
                    "rewrite any sentence that seems to need one")),
    _t("Morphological", "word_family",
       'Use several forms of the word "{root}", for example as a noun, a verb and an adjective.', ("english_only",),
       root=("care", "change", "grow", "build", "trust", "light", "hope", "measure")),

    # ---- Phonological
    _t("Phonological", "alliteration", "Include alliteration in {where}.", ("english_only",),
       where=("the opening line", "the final sentence", "each heading", "the title")),
    _t("Phonological", "rhyming_close", "End with a {rhyme}.", ("english_only", "fixed_ending"),
       rhyme=("rhyming couplet", "short rhyming line", "pair of lines that rhyme")),
    _t("Phonological", "rhythm", "Give the writing a {quality} that works well when read aloud.",
       quality=("steady rhythm", "musical, flowing rhythm", "brisk, drum-like beat")),
    _t("Phonological", "onomatopoeia", "Use onomatopoeia at least {times} to bring {what} to life.",
       times=("once", "twice"),
       what=("a sound in the scene", "an action")),
    _t("Phonological", "euphony", "Choose words that sound {sound}.",
       sound=("soft and smooth, avoiding harsh clusters of consonants",
              "crisp and punchy, avoiding long mumbling words", "gentle and soothing, avoiding abrupt sounds")),
    _t("Phonological", "easy_aloud", "Avoid tongue-twisters: the text should be easy to read aloud {setting}.",
       setting=("to a room of people", "on a radio broadcast", "by a young reader", "with one breath per sentence")),

    # ---- Role-based
    _t("Role-based", "speak_as", "Write as {role} would speak.", ("persona",),
       role=("a seasoned ship captain", "a kindly village librarian", "an enthusiastic tour guide",
             "a wise old gardener", "a no-nonsense sports coach", "a museum curator giving a private tour",
             "a retired astronaut", "a lighthouse keeper", "a cheerful village baker")),
    _t("Role-based", "experienced_professional",
       "Answer as {expert} with many years of experience, drawing on that perspective.", ("persona",),
       expert=("a primary-school teacher", "a structural engineer", "a professional chef", "a park ranger",
               "a family doctor", "a small-business owner")),
    _t("Role-based", "in_character", "Respond in character as {figure}, keeping their voice and outlook.", ("persona",),
       figure=("a medieval town crier", "a Victorian inventor", "an ancient Roman merchant",
               "an 18th-century explorer writing home")),
    _t("Role-based", "relationship_role", "Take the role of {advisor}.", ("persona",),
       advisor=("a trusted mentor who wants the reader to succeed", "a friendly rival who teases but helps",
                "a patient coach who believes in small wins")),

    # ---- Task-specific
    _t("Task-specific", "act_on_it", "Frame the answer so the reader can act on it {when}.",
       when=("today", "within the next hour", "this weekend", "before the end of the week")),
    _t("Task-specific", "focus_on", "Focus on {focus}.",
       focus=("practical steps rather than theory", "what to do rather than why it works",
              "common mistakes rather than ideal cases")),
    _t("Task-specific", "comparison", "Structure it as a comparison between {pair}.",
       pair=("two realistic options the reader might choose between",
             "the beginner's approach and the expert's approach", "the cheap way and the convenient way",
             "doing it alone and doing it with others")),
    _t("Task-specific", "decision_help", "Help the reader decide by giving {criteria}.",
       criteria=("clear criteria for choosing", "the questions they should ask themselves", "a simple rule of thumb")),
    _t("Task-specific", "troubleshooting",
       "Anticipate {which} problems the reader is likely to run into, and say how to handle each.",
       which=("the two or three", "the most common", "a few unexpected")),
    _t("Task-specific", "intended_use", "Make it suitable to be {use}.",
       use=("read aloud at a community meeting", "pinned on a noticeboard", "shared in a group chat",
            "handed out as a one-page leaflet", "read out on a local radio show", "included in a staff newsletter")),

    # ---- Complex context
    _t("Complex context", "two_constraints", "Assume the reader {a} and {b}, and make every suggestion fit both.",
       a=("lives in a small apartment", "has no car", "works irregular shifts", "has a tight budget"),
       b=("has very little free time", "is caring for a young child", "lives far from the nearest town",
          "is new to the country")),
    _t("Complex context", "scenario", "Set the answer in this situation: {scenario}.",
       scenario=("a power cut has lasted two days", "a family is moving house next week",
                 "a small team has just lost its most experienced member",
                 "a school trip has been cancelled by heavy snow",
                 "a village is hosting visitors for its first festival",
                 "a friend has asked for help the night before a deadline",
                 "a neighbour has just moved in from abroad")),
    _t("Complex context", "household_tension",
       "Consider a household where {tension}, and find an approach that respects both sides.",
       tension=("one partner wants to save money but the other wants convenience",
                "the parents want quiet evenings but the teenagers want to have friends over",
                "one roommate wants a tidy home but the other has little time to clean")),
    _t("Complex context", "already_tried",
       "Assume the reader has already tried {attempt} without success, and build on that.",
       attempt=("the most obvious solution", "following online tutorials", "asking friends for help",
                "a strict all-or-nothing plan")),
    _t("Complex context", "changing_conditions", "Explain how the answer should change {when}.",
       when=("from summer to winter", "as the reader gains experience", "if the budget is cut in half",
             "when children are involved")),

    # ---- Example
    _t("Example", "follow_format", 'Follow the format of this example point: "{example}"',
       example=("Start small — one change this week beats ten next month.",
                "Why it matters: people remember stories better than lists.",
                "Q: Where do I begin? A: With the step that costs the least.",
                "Mistake: doing everything at once. Better: one thing, done well.")),
    _t("Example", "match_tone", 'Match the tone of this sample sentence: "{example}"',
       example=("Honestly, it's easier than it looks, and you've got this.",
                "The evidence suggests that a measured approach works best.",
                "Picture a quiet morning, coffee in hand, and the whole day ahead.",
                "Right, let's get stuck in: no fuss, no jargon, just what works.")),
    _t("Example", "worked_example",
       "Include a worked example that walks through {what} step by step.", ("has_example",),
       what=("a typical case", "a realistic scenario", "a before-and-after comparison", "a small, everyday case")),
    _t("Example", "analogy", "Explain the key idea through an extended analogy to {thing}.", ("has_example",),
       thing=("cooking a meal", "tending a garden", "planning a road trip", "building with blocks",
              "training for a race", "running a small shop")),
    _t("Example", "contrast_examples", "Show one example of {wrong} next to one that gets it right.", ("has_example",),
       wrong=("a common mistake", "a poor approach", "a well-meant but misguided attempt")),

    # ---- Inverse
    _t("Inverse", "no_jargon", "Avoid technical jargon; {fallback}.", ("simple_language",),
       fallback=("if a specialist term is unavoidable, explain it in plain words",
                 "say things the way you would to a neighbour", "spell out any acronym you cannot avoid")),
    _t("Inverse", "no_stock_language", "Avoid {thing}.",
       thing=("clichés and stock phrases", "exaggerated claims", "buzzwords",
              "filler phrases such as 'in today's world'")),
    _t("Inverse", "dont_mention", "Do not mention {topic}.",
       topic=("money or prices", "any brand names", "specific dates", "famous people", "statistics or percentages")),
    _t("Inverse", "no_recommendation", "Do not give a direct recommendation; {instead}.",
       instead=("lay out the trade-offs and let the reader decide", "describe the options neutrally",
                "explain what each choice depends on")),
    _t("Inverse", "no_illustrations", "Do not use {device}.", ("no_examples",),
       device=("examples or anecdotes", "metaphors or analogies", "hypothetical scenarios")),
    _t("Inverse", "no_talking_down", "Avoid {thing}.",
       thing=("lecturing or moralising, and trust the reader's judgement",
              "talking down to the reader, and treat them as capable",
              "negative phrasing such as 'don't' and 'never', and frame everything positively")),
    _t("Inverse", "no_questions", "Do not ask the reader any questions{detail}.", ("no_questions",),
       detail=("", ", not even rhetorical ones", "; make statements instead")),

    # ---- Contradictory
    _t("Contradictory", "short_but_complete", "Be {pair}.",
       pair=("concise yet complete, leaving out nothing essential", "thorough yet quick to read",
             "detailed yet easy to skim")),
    _t("Contradictory", "two_registers", "Sound {pair}.",
       pair=("formal yet friendly", "authoritative yet humble", "confident yet open to other views", "serious yet warm",
             "expert yet approachable", "calm yet clear about what is urgent")),
    _t("Contradictory", "light_but_respectful", "Make it {pair}.",
       pair=("funny while still treating the topic with respect", "playful without losing any accuracy",
             "light-hearted while taking the reader's worries seriously")),
    _t("Contradictory", "simple_but_precise", "Keep it {pair}.",
       pair=("simple enough for a beginner but precise enough for an expert",
             "short enough to remember but complete enough to rely on",
             "general enough for anyone but specific enough to act on",
             "brief but vivid enough to stick in the memory")),
    _t("Contradictory", "persuasive_but_fair", "Make the case {pair}.",
       pair=("persuasively without overstating anything", "strongly while still presenting the other side fairly",
             "with passion but without exaggeration")),
    _t("Contradictory", "honest_but_hopeful", "Let the response {pair}.",
       pair=("acknowledge what is difficult while ending on a hopeful note",
             "admit the limits of the advice while still giving clear guidance",
             "respect tradition while making the case for change")),

    # ---- Rule
    _t("Rule", "introduce_rule", "Whenever you introduce {rule}.",
       rule=("a specialist term, define it in plain words in the same sentence",
             "a new idea, connect it to something mentioned earlier", "a number, say what it means for the reader")),
    _t("Rule", "if_then", "If you mention {rule}.",
       rule=("a cost, also mention a way to reduce it", "a risk, also say how to lower it",
             "a tool or product, also suggest a free alternative", "a rule of thumb, also say when it does not apply")),
    _t("Rule", "ordering", "Order the points {order}.",
       order=("from easiest to hardest", "from most to least important", "from cheapest to most expensive",
              "in the order they happen in time", "from most familiar to least familiar")),
    _t("Rule", "consistency", "{rule}",
       rule=("Once you pick a unit of measurement, stick with it for the rest of the response.",
             "Once you name the key idea, keep using that name instead of switching to synonyms.",
             "Once you choose whether to address the reader as 'you' or 'we', keep that choice throughout.")),
    _t("Rule", "follow_up_rule", "Every {point} must be followed by {support}.",
       point=("claim", "tip", "step"),
       support=("a one-sentence reason", "a short example", "a practical caution")),
)

TEMPLATE_BY_ID: Mapping[str, SoftTemplate] = MappingProxyType({t.id: t for t in TEMPLATES})
_BY_CATEGORY: Mapping[str, tuple[SoftTemplate, ...]] = MappingProxyType(
    {c.name: tuple(t for t in TEMPLATES if t.category == c.name) for c in SOFT_CATEGORIES})


def _templates_in(category: str) -> tuple[SoftTemplate, ...]:
    return _BY_CATEGORY.get(category, ())


def resolve_category(category: str) -> str:
    """Accept a category by name or slug, case-insensitively; return its canonical name."""
    wanted = category.strip().lower()
    for c in SOFT_CATEGORIES:
        if wanted in (c.name.lower(), c.slug):
            return c.name
    raise InputError(f"unknown soft-constraint category {category!r}; "
                     f"choose from: {', '.join(c.name for c in SOFT_CATEGORIES)}")


def template_of(soft: Mapping | str) -> SoftTemplate:
    """The template behind a rendered constraint (or its id)."""
    soft_id = soft if isinstance(soft, str) else soft.get("id", "")
    try:
        return TEMPLATE_BY_ID[soft_id]
    except KeyError:
        raise KeyError(f"unknown soft constraint id {soft_id!r}") from None


def soft_conflicts_with_hard(soft: Mapping | str, hard_id: str) -> bool:
    """True when the soft constraint's template declares it can contradict the hard check ``hard_id``.

    Hard ids outside IFEval's 25 have no declared conflicts and so return False.
    """
    return hard_id in template_of(soft).hard_conflicts


def _clash(a: SoftTemplate, b: SoftTemplate) -> bool:
    if a.category == b.category:
        return True
    return any(frozenset((x, y)) in TAG_CLASHES for x in a.tags for y in b.tags)


def soft_conflicts(a: Mapping | str, b: Mapping | str) -> bool:
    """True when two soft constraints should not share an instruction: same category, or clashing tags."""
    return _clash(template_of(a), template_of(b))


def _eligible(template: SoftTemplate, avoid_hard: frozenset[str], avoid_soft: tuple[SoftTemplate, ...]) -> bool:
    if avoid_hard and template.hard_conflicts & avoid_hard:
        return False
    return not any(_clash(template, other) for other in avoid_soft)


def sample_soft_constraint(rng: random.Random, category: str | None = None, avoid_hard_ids: Iterable[str] = (),
                           *, avoid_soft: Iterable[Mapping | str] = ()) -> dict:
    """Draw one rendered soft constraint.

    With no category, a category is drawn uniformly among those that still have an eligible template, so
    categories are balanced rather than weighted by how many templates each has. Templates that declare a
    conflict with any of ``avoid_hard_ids``, or clash with a constraint in ``avoid_soft``, are never drawn.
    Raises ``InputError`` for an unknown category and ``LookupError`` when nothing eligible remains.
    """
    avoid_hard = frozenset(avoid_hard_ids)
    avoid = tuple(template_of(s) for s in avoid_soft)
    names = [resolve_category(category)] if category is not None else [c.name for c in SOFT_CATEGORIES]
    pools = {name: [t for t in _templates_in(name) if _eligible(t, avoid_hard, avoid)] for name in names}
    open_names = [name for name in names if pools[name]]
    if not open_names:
        where = f"category {names[0]!r}" if category is not None else "any category"
        raise LookupError(f"no soft constraint in {where} is compatible with the constraints to avoid")
    chosen = rng.choice(open_names)
    return rng.choice(pools[chosen]).sample(rng)


def all_renderings() -> list[dict]:
    """Every distinct rendering (by description), in library order."""
    seen: set[str] = set()
    out: list[dict] = []
    for template in TEMPLATES:
        for rendered in template.renderings():
            if rendered["description"] not in seen:
                seen.add(rendered["description"])
                out.append(rendered)
    return out


def category_counts() -> dict[str, int]:
    """Number of distinct renderings per category, in taxonomy order."""
    counts = {c.name: 0 for c in SOFT_CATEGORIES}
    for rendered in all_renderings():
        counts[rendered["category"]] += 1
    return counts


def template_counts() -> dict[str, int]:
    """Number of templates per category, in taxonomy order."""
    return {c.name: len(_templates_in(c.name)) for c in SOFT_CATEGORIES}


def library_problems() -> list[str]:
    """Consistency checks on the template library; an empty list means it is sound."""
    problems: list[str] = []
    ids = [t.id for t in TEMPLATES]
    problems += [f"duplicate template id {i}" for i in sorted({i for i in ids if ids.count(i) > 1})]
    for t in TEMPLATES:
        if t.category not in CATEGORY_BY_NAME:
            problems.append(f"{t.template_id}: unknown category {t.category!r}")
            continue
        fields = {name for _, name, _, _ in string.Formatter().parse(t.text) if name}
        if fields != set(t.params):
            problems.append(f"{t.id}: placeholders {sorted(fields)} do not match parameters {sorted(t.params)}")
        problems += [f"{t.id}: empty pool for {name!r}" for name, pool in t.params.items() if not pool]
        problems += [f"{t.id}: unknown tag {tag!r}" for tag in sorted(t.tags - KNOWN_TAGS)]
        problems += [f"{t.id}: unknown hard id {h!r}" for h in sorted(t.hard_conflicts - set(HARD_IDS))]
    for category in SOFT_CATEGORIES:
        if len(_templates_in(category.name)) < 3:
            problems.append(f"{category.name}: fewer than 3 templates")
    return problems
