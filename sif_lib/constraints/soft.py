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
unsatisfiable instruction. An IFBench id has no tags of its own: it shares the declared conflicts of the IFEval ids
that :data:`~sif_lib.constraints.conflicts.IFBENCH_SOFT_PROXIES` names for it.

The library itself (categories, templates with their parameter pools, tag tables) is data, in
``sif_lib/data/soft_constraints.yaml``; this module is the logic that samples and checks it.
"""

from __future__ import annotations

import functools
import itertools
import random
import re
import string
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from importlib import resources
from types import MappingProxyType

import yaml

from sif_lib.constraints.conflicts import IFBENCH_SOFT_PROXIES

GROUPS = ("content", "numerical", "stylistic", "format", "linguistic", "situation")
LIBRARY_FILE = "soft_constraints.yaml"

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


def _load_library() -> dict:
    """The library's data, ``sif_lib/data/soft_constraints.yaml`` (package data)."""
    text = resources.files("sif_lib.data").joinpath(LIBRARY_FILE).read_text(encoding="utf-8")
    return yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


_LIBRARY = _load_library()

# CFBench has ten primary categories; its last four (Example, Inverse, Contradictory, Rule) stand alone there.
# They are filed under "situation" here, as the method notes group them, so every category has one of six groups.
SOFT_CATEGORIES: tuple[SoftCategory, ...] = tuple(SoftCategory(c["name"], c["group"], c["description"])
                                                  for c in _LIBRARY["categories"])
CATEGORY_BY_NAME: Mapping[str, SoftCategory] = MappingProxyType({c.name: c for c in SOFT_CATEGORIES})
GROUP_OF: Mapping[str, str] = MappingProxyType({c.name: c.group for c in SOFT_CATEGORIES})

# tag -> IFEval ids that a template with this tag can contradict.
TAG_HARD_CONFLICTS: Mapping[str, frozenset[str]] = MappingProxyType(
    {tag: frozenset(ids) for tag, ids in _LIBRARY["tag_hard_conflicts"].items()})
# Tags that carry no hard conflict of their own but matter for soft-soft clashes.
_SOFT_ONLY_TAGS = frozenset(_LIBRARY["soft_only_tags"])
KNOWN_TAGS = frozenset(TAG_HARD_CONFLICTS) | _SOFT_ONLY_TAGS
# Pairs of tags that should not meet in one instruction; a tag paired with itself means "only one of these".
TAG_CLASHES: frozenset[frozenset[str]] = frozenset(frozenset(pair) for pair in _LIBRARY["tag_clashes"])


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


TEMPLATES: tuple[SoftTemplate, ...] = tuple(
    SoftTemplate(row["category"], row["id"], row["text"],
                 MappingProxyType({k: tuple(v) for k, v in (row.get("params") or {}).items()}),
                 frozenset(row.get("tags") or ()))
    for row in _LIBRARY["templates"])
TEMPLATE_BY_ID: Mapping[str, SoftTemplate] = MappingProxyType({t.id: t for t in TEMPLATES})
_BY_CATEGORY: Mapping[str, tuple[SoftTemplate, ...]] = MappingProxyType(
    {c.name: tuple(t for t in TEMPLATES if t.category == c.name) for c in SOFT_CATEGORIES})


def _templates_in(category: str) -> tuple[SoftTemplate, ...]:
    return _BY_CATEGORY.get(category, ())


def resolve_category(category: str) -> str:
    """Accept a category by name or slug, case-insensitively; return its canonical name. An unknown one is a
    ``ValueError`` naming the choices (a wrong argument: synthesis passes names from :data:`SOFT_CATEGORIES`, and
    no params field or command names a category)."""
    wanted = category.strip().lower()
    for c in SOFT_CATEGORIES:
        if wanted in (c.name.lower(), c.slug):
            return c.name
    raise ValueError(f"unknown soft-constraint category {category!r}; "
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

    An IFBench id conflicts where one of its proxies in :data:`~sif_lib.constraints.conflicts.IFBENCH_SOFT_PROXIES`
    does; other ids outside IFEval's 25 have no declared conflicts and so return False.
    """
    declared = template_of(soft).hard_conflicts
    return hard_id in declared or any(proxy in declared for proxy in IFBENCH_SOFT_PROXIES.get(hard_id, ()))


def _with_proxies(hard_ids: Iterable[str]) -> frozenset[str]:
    out: set[str] = set()
    for hard_id in hard_ids:
        out.add(hard_id)
        out.update(IFBENCH_SOFT_PROXIES.get(hard_id, ()))
    return frozenset(out)


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
    conflict with any of ``avoid_hard_ids`` (an IFBench id through its proxies), or clash with a constraint in
    ``avoid_soft``, are never drawn.
    Raises ``ValueError`` for an unknown category and ``LookupError`` when nothing eligible remains.
    """
    avoid_hard = _with_proxies(avoid_hard_ids)
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
