"""Math word problems of a known number of arithmetic steps, each with its worked solution.

The ten families of :mod:`sif_lib.synthesis.math_items` vary in difficulty by number range, and some of them
(fence-painting rates, remainders with two divisors) are out of reach of a small policy, which then gets no
reward signal from math at all. Here difficulty is the number of steps: a problem of level 1 takes one
operation, level 2 two, level 3 three or four. Each problem is built from its steps: the generator draws the
numbers, computes every intermediate result exactly, and writes the question and, alongside it, the worked
solution as one labelled line per step (``"hours driving: 54 / 18 = 3"``). The solution is computed, never
parsed from text, so it can serve as the think part of a cold-start SFT example.

The simplification: six everyday families (shopping, travel, sharing, recipes, savings, areas) of fixed
templates with whole numbers, every step a single ``+``, ``-``, ``*`` or exact ``/``. These are exact
arithmetic templates, not GSM8K: the wording never varies beyond names and objects, and nothing asks the
reader to decide which operation to use beyond what the template states.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from fractions import Fraction

from sif_lib.core.errors import InputError
from sif_lib.synthesis.math_items import dealt, draw_unseen, format_exact, make_prompt

SOURCE = "synthetic-stepped-math"
LEVELS = (1, 2, 3)
_REDRAWS = 100

_NAMES = ("Maya", "Omar", "Lena", "Ravi", "Sofia", "Tom", "Aisha", "Jonas", "Mei", "Carlos", "Nadia", "Ben", "Priya",
          "Lucas", "Hana", "Kofi")


class _Work:
    """The steps of one solution: each :meth:`op` computes one exact result and writes its labelled line."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.value: int = 0

    def op(self, label: str, a: int, sign: str, b: int) -> int:
        exact = {"+": Fraction(a + b), "-": Fraction(a - b), "*": Fraction(a * b),
                 "/": Fraction(a, b) if b else Fraction(-1)}[sign]
        if exact.denominator != 1 or exact < 0:
            raise ValueError(f"step {a} {sign} {b} is not a whole non-negative number")  # a template bug
        self.value = int(exact)
        self.lines.append(f"{label}: {a} {sign} {b} = {self.value}")
        return self.value


Family = Callable[[random.Random, int], "tuple[str, _Work]"]


def _shopping(rng: random.Random, steps: int) -> tuple[str, _Work]:
    name = rng.choice(_NAMES)
    first, second = rng.sample(("notebooks", "pens", "apples", "mugs", "candles", "stickers"), 2)
    big = steps >= 3
    q1, p1 = rng.randint(2, 9 if big else 6), rng.randint(2, 12 if big else 8)
    q2, p2 = rng.randint(2, 9 if big else 6), rng.randint(1, 12 if big else 8)
    w = _Work()
    if steps == 1:
        w.op(f"cost of the {first}", q1, "*", p1)
        return (f"{name} buys {q1} {first} at ${p1} each. How many dollars does {name} spend?"), w
    if steps == 2:
        cost = w.op(f"cost of the {first}", q1, "*", p1)
        note = next(n for n in (10, 20, 50, 100) if n > cost)
        w.op("change", note, "-", cost)
        return (f"{name} buys {q1} {first} at ${p1} each and pays with a ${note} note. How many dollars of "
                f"change does {name} get?"), w
    a = w.op(f"cost of the {first}", q1, "*", p1)
    b = w.op(f"cost of the {second}", q2, "*", p2)
    total = w.op("total cost", a, "+", b)
    text = f"{name} buys {q1} {first} at ${p1} each and {q2} {second} at ${p2} each."
    if steps == 3:
        return f"{text} How many dollars does {name} spend in total?", w
    note = next(n for n in (20, 50, 100, 200) if n > total)
    w.op("change", note, "-", total)
    return f"{text} {name} pays with a ${note} note. How many dollars of change does {name} get?", w


def _travel(rng: random.Random, steps: int) -> tuple[str, _Work]:
    name = rng.choice(_NAMES)
    v1 = rng.choice((4, 5, 6, 10, 12, 15, 20) if steps < 3 else (12, 15, 18, 20, 24, 30))
    t1 = rng.randint(2, 5)
    w = _Work()
    if steps == 1:
        if rng.random() < 0.5:
            w.op("distance", v1, "*", t1)
            return f"{name} cycles at {v1} km/h for {t1} hours. How many kilometres does {name} cycle?", w
        w.op("hours", v1 * t1, "/", v1)
        return f"A bus covers {v1 * t1} km at {v1} km/h. How many hours does the trip take?", w
    if steps == 2:
        rest = rng.randint(2, 9)
        ride = w.op("distance cycling", v1, "*", t1)
        w.op("whole route", ride, "+", rest)
        return (f"{name} cycles at {v1} km/h for {t1} hours and then walks the last {rest} km. How many "
                f"kilometres long is the whole route?"), w
    v2 = rng.choice([v for v in (40, 45, 50, 60, 80, 90) if v != v1])
    t2 = rng.randint(1, 4)
    h1 = w.op("hours cycling", v1 * t1, "/", v1)
    h2 = w.op("hours driving", v2 * t2, "/", v2)
    moving = w.op("hours moving", h1, "+", h2)
    text = f"{name} cycles {v1 * t1} km at {v1} km/h and then drives {v2 * t2} km at {v2} km/h."
    if steps == 3:
        return f"{text} How many hours does the whole journey take?", w
    stop = rng.randint(1, 3)
    w.op("whole journey", moving, "+", stop)
    return (f"{text} On the way {name} also stops for {stop} hour{'s' * (stop > 1)}. How many hours pass from "
            f"the start of the journey to its end?"), w


def _sharing(rng: random.Random, steps: int) -> tuple[str, _Work]:
    name = rng.choice(_NAMES)
    thing = rng.choice(("pencils", "stickers", "marbles", "cards", "sweets"))
    kids = rng.randint(2, 6 if steps < 3 else 9)
    each = rng.randint(2, 8 if steps < 3 else 12)
    shared = kids * each
    w = _Work()
    if steps == 1:
        w.op(f"{thing} per child", shared, "/", kids)
        return (f"{name} shares {shared} {thing} equally among {kids} "
                f"children. How many {thing} does each child get?"), w
    if steps == 2:
        box = rng.choice([d for d in range(2, 13) if shared % d == 0 and d < shared])
        total = w.op(f"{thing} in all", shared // box, "*", box)
        w.op(f"{thing} per child", total, "/", kids)
        return (f"{name} has {shared // box} boxes of {box} {thing} and shares all of them equally among {kids} "
                f"children. How many {thing} does each child get?"), w
    box = rng.randint(4, min(12, shared))
    if steps == 3:
        boxes = shared // box + 1
        keep = boxes * box - shared
        have = w.op(f"{thing} in the boxes", boxes, "*", box)
        more = ","
    else:
        boxes = max(1, shared // box - rng.randint(0, 1))
        keep = rng.randint(1, 6)
        extra = shared + keep - boxes * box
        have = w.op(f"{thing} in the boxes", boxes, "*", box)
        have = w.op(f"{thing} after buying more", have, "+", extra)
        more = f", buys {extra} more,"
    rest = w.op(f"{thing} to share", have, "-", keep)
    w.op(f"{thing} per child", rest, "/", kids)
    return (f"{name} has {boxes} boxes of {box} {thing}{more} keeps {keep} and shares the rest equally among "
            f"{kids} children. How many {thing} does each child get?"), w


def _recipes(rng: random.Random, steps: int) -> tuple[str, _Work]:
    dish = rng.choice(("cookies", "muffins", "pancakes", "scones"))
    per = rng.choice((6, 8, 10, 12))
    batches = rng.randint(2, 4 if steps < 3 else 6)
    flour = rng.randrange(50, 301 if steps < 3 else 401, 25)
    sugar = rng.randrange(20, 151, 10)
    w = _Work()
    if steps == 1:
        w.op("flour", flour, "*", batches)
        return (f"One batch of {dish} needs {flour} grams of flour. How "
                f"many grams of flour do {batches} batches need?"), w
    k = w.op("batches", per * batches, "/", per)
    need = w.op("flour", k, "*", flour)
    text = f"A recipe for {per} {dish} uses {flour} grams of flour"
    if steps == 2:
        return f"{text}. How many grams of flour are needed for {per * batches} {dish}?", w
    if steps == 3:
        bag = (need // 1000 + 1 + rng.randint(0, 1)) * 1000
        w.op("flour left", bag, "-", need)
        return (f"{text}. A baker makes {per * batches} {dish} from a {bag // 1000}-kilogram bag of flour "
                f"({bag} grams). How many grams of flour are left in the bag?"), w
    sweet = w.op("sugar", k, "*", sugar)
    w.op("flour and sugar", need, "+", sweet)
    return (f"{text} and {sugar} grams of sugar. How many grams of flour and sugar together are needed for "
            f"{per * batches} {dish}?"), w


def _savings(rng: random.Random, steps: int) -> tuple[str, _Work]:
    a, b = rng.sample(_NAMES, 2)
    weekly = rng.choice((2, 3, 4, 5, 6, 8, 10) if steps < 3 else (5, 6, 8, 10, 12, 15, 20))
    weeks = rng.randint(3, 8 if steps < 3 else 12)
    start = rng.randrange(5, 51, 5)
    w = _Work()
    saved = w.op(f"{a} saved" if steps == 4 else "saved", weekly, "*", weeks)
    if steps == 1:
        return f"{a} saves ${weekly} every week for {weeks} weeks. How many dollars does {a} save?", w
    text = f"{a} already has ${start} and saves ${weekly} every week for {weeks} weeks."
    if steps == 2:
        w.op("money now", saved, "+", start)
        return f"{text} How many dollars does {a} have then?", w
    if steps == 3:
        have = w.op("money now", saved, "+", start)
        spend = rng.randint(1, have - 1)
        w.op("money left", have, "-", spend)
        return f"{text} Then {a} spends ${spend} on a game. How many dollars does {a} have left?", w
    other = rng.choice([x for x in (2, 3, 4, 5, 6, 8, 10) if x != weekly])
    theirs = w.op(f"{b} saved", other, "*", weeks)
    both = w.op("together", saved, "+", theirs)
    gift = rng.randint(1, both - 1)
    w.op("money left", both, "-", gift)
    return (f"{a} saves ${weekly} every week and {b} saves ${other} every week, both for {weeks} weeks. "
            f"Together they buy a gift that costs ${gift}. How many dollars do they have left?"), w


BAGS = (2, 3, 4, 5, 6)


def _areas(rng: random.Random, steps: int) -> tuple[str, _Work]:
    place = rng.choice(("garden", "room", "yard", "classroom floor"))
    length, width = sorted((rng.randint(3, 12 if steps < 3 else 20), rng.randint(2, 10 if steps < 3 else 15)),
                           reverse=True)
    w = _Work()
    if steps == 1:
        w.op("area", length, "*", width)
        return f"A rectangular {place} is {length} m long and {width} m wide. What is its area in square metres?", w
    if steps == 2:
        cover = rng.choice([c for c in (2, 3, 4, 5, 6, 8) if (length * width) % c == 0] or [1])
        if cover == 1:
            length += length % 2
            cover = 2
        area = w.op("area", length, "*", width)
        w.op("boxes of tiles", area, "/", cover)
        return (f"A rectangular {place} is {length} m long and {width} m wide. One box of tiles covers {cover} "
                f"square metres. How many boxes are needed to cover it exactly?"), w
    width = max(width, 3)
    if steps == 3:
        cut_l, cut_w = rng.randint(1, length - 1), rng.randint(1, width - 1)
    else:
        # A shed whose leftover area some bag size divides (one of l*w - 1, l*w - 2 is even, so there is one).
        fits = [(cl, cw) for cl in range(1, length) for cw in range(1, width)
                if any((length * width - cl * cw) % c == 0 for c in BAGS)]
        cut_l, cut_w = rng.choice(fits)
        cover = rng.choice([c for c in BAGS if (length * width - cut_l * cut_w) % c == 0])
    whole = w.op("whole area", length, "*", width)
    shed = w.op("area of the shed", cut_l, "*", cut_w)
    free = w.op("area left", whole, "-", shed)
    text = (f"A rectangular {place} is {length} m long and {width} m "
            f"wide. A shed of {cut_l} m by {cut_w} m stands on it.")
    if steps == 3:
        return f"{text} How many square metres are not covered by the shed?", w
    w.op("bags of seed", free, "/", cover)
    return (f"{text} The rest is sown with grass seed, and one bag of seed "
            f"covers {cover} square metres. How many bags are needed?"), w


FAMILIES: dict[str, Family] = {
    "shopping": _shopping,
    "travel": _travel,
    "sharing": _sharing,
    "recipes": _recipes,
    "savings": _savings,
    "areas": _areas,
}


def generate_stepped_items(n: int, seed: int | str, steps: int) -> list[dict]:
    """``n`` word problems of ``steps`` arithmetic steps (1, 2, or 3 meaning three or four), identical for the
    same arguments. Families are dealt in a shuffled round robin. A question is not repeated within a call
    unless 100 redraws in a row gave questions seen before."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise InputError(f"n must be a non-negative integer, got {n!r}")
    if isinstance(steps, bool) or steps not in LEVELS:
        raise InputError(f"steps must be 1, 2 or 3 (3: three or four steps), got {steps!r}")
    rng = random.Random(f"{seed}:stepped-math:{steps}")
    items: list[dict] = []
    seen: set[str] = set()
    families = dealt(list(FAMILIES), rng)
    for index in range(n):
        family = next(families)
        question, work = draw_unseen(
            lambda family=family: FAMILIES[family](rng, steps if steps < 3 else rng.choice((3, 4))), seen, _REDRAWS)
        items.append({
            "id": f"{SOURCE}-{seed}-{index:05d}",
            "question": question,
            "answer": format_exact(work.value),
            "prompt": make_prompt(question),
            "source": SOURCE,
            "kind": "reasoning",
            "family": family,
            "difficulty": steps,
            "steps": len(work.lines),
            "solution": list(work.lines),
        })
    return items


def worked_solution(item: dict) -> str:
    """The think text of an item: its solution steps one per line, then ``So the answer is <answer>.``"""
    lines = [str(line) for line in item.get("solution") or ()]
    return "\n".join(lines + [f"So the answer is {item['answer']}."])
