"""The reasoning share of the RL mix: math word problems with exact, checkable answers.

The paper mixes DeepScaleR math problems and SciKnowEval multiple-choice questions into the RL set so that the
policy keeps its reasoning ability; their reward is 1 for a correct final answer and 0 otherwise. Offline,
the workbench generates its own word problems from ten families with exact answers computed alongside the
text. They are far easier than DeepScaleR, which suits the small default policy; users with the real data can
load GSM8K- or DeepScaleR-style JSONL instead. Science multiple choice is not generated.

Answers are checked by :mod:`sif_lib.constraints.math_answer`.
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Callable, Iterable, Iterator
from fractions import Fraction
from pathlib import Path

from sif_lib.core.errors import InputError
from sif_lib.core.io import iter_numbered_jsonl

SOURCE = "synthetic-math"
PROMPT_SUFFIX = "Work through the problem step by step, then give only the final answer inside \\boxed{}."

_NAMES = ("Maya", "Omar", "Lena", "Ravi", "Sofia", "Tom", "Aisha", "Jonas", "Mei", "Carlos", "Nadia", "Ben", "Priya",
          "Lucas", "Hana", "Kofi")
_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def make_prompt(question: str) -> str:
    return f"{question.strip()}\n\n{PROMPT_SUFFIX}"


def format_exact(value: Fraction | int) -> str:
    """Integers as integers; fractions whose decimal form terminates within 3 places as decimals; else ``a/b``."""
    value = Fraction(value)
    if value.denominator == 1:
        return str(value.numerator)
    scaled = value * 1000
    if scaled.denominator == 1:
        text = f"{value.numerator / value.denominator:.3f}".rstrip("0").rstrip(".")
        if Fraction(text) == value:
            return text
    return f"{value.numerator}/{value.denominator}"


def _money(value: Fraction) -> str:
    return f"{float(value):.2f}"


# ---------------------------------------------------------------------------------------------------------------
# Problem families. Each takes (rng, difficulty 1-3) and returns (question, exact answer). Difficulty widens the
# number ranges and, for some families, adds a step.

def _units(rng: random.Random, d: int) -> tuple[str, Fraction | str]:
    name = rng.choice(_NAMES)
    variant = rng.randrange(3)
    if variant == 0:
        per_loaf = rng.randrange(200, (500, 700, 900)[d - 1] + 1, 50 if d < 3 else 25)
        loaves = rng.randint(2, (5, 8, 12)[d - 1])
        bag_kg = math.ceil(per_loaf * loaves / 1000) + rng.randint(0, 2)
        if bag_kg * 1000 == per_loaf * loaves:
            bag_kg += 1
        q = (f"{name} uses {per_loaf} grams of flour for each loaf of bread. {name} bakes {loaves} loaves from a "
             f"{bag_kg}-kilogram bag of flour. How many grams of flour are left in the bag?")
        return q, Fraction(bag_kg * 1000 - per_loaf * loaves)
    if variant == 1:
        films = rng.randint(2, (3, 4, 6)[d - 1])
        hours, minutes = rng.randint(1, 2), rng.randrange(5, 60, 5)
        gap = rng.randrange(10, 35, 5)
        q = (f"A film festival shows {films} films back to back. Each film lasts {hours} hour{'s' * (hours > 1)} and "
             f"{minutes} minutes, and there is a {gap}-minute break between consecutive films. How many minutes pass "
             f"from the start of the first film to the end of the last one?")
        return q, Fraction(films * (60 * hours + minutes) + (films - 1) * gap)
    laps = rng.randint(2, (5, 10, 16)[d - 1])
    track = rng.choice((200, 250, 400, 500))
    days = rng.randint(3, (5, 7, 14)[d - 1])
    q = (f"{name} runs {laps} laps of a {track}-metre track every day for "
         f"{days} days. How many kilometres does {name} run in total?")
    return q, Fraction(laps * track * days, 1000)


def _percentages(rng: random.Random, d: int) -> tuple[str, Fraction | str]:
    variant = rng.randrange(3)
    if variant == 0:
        price = rng.randrange(20, (120, 300, 600)[d - 1] + 1, 20)
        discount = rng.choice((10, 20, 25, 50) if d == 1 else (10, 15, 20, 25, 30, 40))
        tax = rng.choice((5, 8, 10, 20))
        q = (f"A jacket costs ${price}. It is discounted by {discount}%, and then a {tax}% sales tax is added to "
             f"the discounted price. What is the final price in dollars?")
        return q, Fraction(price) * (100 - discount) / 100 * (100 + tax) / 100
    if variant == 1:
        while True:
            students = rng.randrange(20, (60, 200, 400)[d - 1] + 1, 20)
            walk = rng.choice((10, 20, 25, 30, 40, 50))
            bus = rng.choice((25, 50, 75) if d == 1 else (20, 25, 40, 60, 75))
            rest = Fraction(students * (100 - walk), 100)
            riders = rest * bus / 100
            if rest.denominator == 1 and riders.denominator == 1:
                break
        q = (f"In a school year of {students} students, {walk}% walk to school. Of the students who do not walk, "
             f"{bus}% take the bus. How many students take the bus?")
        return q, riders
    while True:
        population = rng.randrange(1000, (5000, 20000, 80000)[d - 1] + 1, 200)
        up, down = rng.choice((10, 20, 25, 50)), rng.choice((10, 20, 25, 50))
        result = Fraction(population) * (100 + up) / 100 * (100 - down) / 100
        if result.denominator == 1:
            break
    q = (f"A town has {population} residents. Its population grows by {up}% in one year and then falls by "
         f"{down}% the following year. How many residents does it have after the two years?")
    return q, result


def _rates(rng: random.Random, d: int) -> tuple[str, Fraction | str]:
    a, b = rng.sample(_NAMES, 2)
    variant = rng.randrange(3)
    if variant == 0:
        ta, tb = rng.sample(range(2, (7, 11, 16)[d - 1]), 2)
        q = (f"{a} can paint a fence alone in {ta} hours, and {b} can paint the same fence alone in {tb} hours. "
             f"Working together at these rates, how many hours will it take them to paint the fence?")
        return q, Fraction(ta * tb, ta + tb)
    if variant == 1:
        fill = rng.randint(3, (8, 15, 30)[d - 1])
        drain = fill + rng.randint(1, (6, 12, 20)[d - 1])
        q = (f"A tap fills an empty tank in {fill} minutes, and an open drain empties a full tank in {drain} minutes. "
             "If the tap and the drain are both open, how many minutes does it take to fill the empty tank?")
        return q, Fraction(fill * drain, drain - fill)
    v1, v2 = rng.sample((10, 12, 15, 18, 20, 24, 30), 2)
    d1, d2 = v1 * rng.randint(1, 3), v2 * rng.randint(1, 3)
    if d < 3:
        q = (f"{a} cycles {d1} km at {v1} km/h and then {d2} km at {v2} km/h. "
             "How many hours does the whole ride take?")
        return q, Fraction(d1, v1) + Fraction(d2, v2)
    q = (f"{a} cycles {d1} km at {v1} km/h and then {d2} km at {v2} km/h. "
         f"What is {a}'s average speed for the whole ride, in km/h?")
    return q, Fraction(d1 + d2) / (Fraction(d1, v1) + Fraction(d2, v2))


def _ratios(rng: random.Random, d: int) -> tuple[str, Fraction | str]:
    variant = rng.randrange(3)
    if variant == 0:
        red, blue = sorted(rng.sample(range(1, (6, 10, 15)[d - 1]), 2), reverse=True)
        k = rng.randint(2, (6, 12, 25)[d - 1])
        q = (f"A jar holds red and blue marbles in the ratio {red}:{blue}. There are {k * (red + blue)} marbles in "
             f"total. How many more red marbles than blue marbles are there?")
        return q, Fraction(k * (red - blue))
    if variant == 1:
        servings = rng.choice((2, 4, 6, 8))
        cups = rng.randint(1, (3, 5, 8)[d - 1])
        wanted = rng.choice([n for n in range(2, 21) if n != servings])
        q = (f"A recipe that serves {servings} people uses {cups} cup{'s' * (cups > 1)} of rice. How many cups of "
             f"rice are needed to serve {wanted} people?")
        return q, Fraction(cups * wanted, servings)
    x, y, z = rng.sample(_NAMES, 3)
    parts = [rng.randint(1, (4, 6, 9)[d - 1]) for _ in range(3)]
    k = rng.choice((5, 10, 20, 25, 50) if d > 1 else (2, 5, 10))
    total = k * sum(parts)
    q = (f"{x}, {y} and {z} share ${total} in the ratio "
         f"{parts[0]}:{parts[1]}:{parts[2]}. How many dollars does {z} receive?")
    return q, Fraction(k * parts[2])


def _algebra(rng: random.Random, d: int) -> tuple[str, Fraction | str]:
    variant = rng.randrange(3)
    if variant == 0:
        name = rng.choice(_NAMES)
        x = rng.randint(2, (12, 30, 80)[d - 1])
        a, b = rng.randint(2, (5, 9, 12)[d - 1]), rng.randint(1, (20, 50, 100)[d - 1])
        if d < 3:
            q = (f"{name} thinks of a number, multiplies it by {a} and then adds {b}. The result is {a * x + b}. "
                 f"What number did {name} think of?")
        else:
            m = rng.randint(2, 5)
            q = (f"{name} thinks of a number, multiplies it by {a}, adds {b}, and then multiplies the total by {m}. "
                 f"The result is {m * (a * x + b)}. What number did {name} think of?")
        return q, Fraction(x)
    if variant == 1:
        adult, child = rng.choice(((12, 7), (10, 4), (15, 8), (9, 5), (20, 11), (14, 6)))
        adults = rng.randint(5, (20, 60, 150)[d - 1])
        children = rng.randint(5, (20, 60, 150)[d - 1])
        q = (f"A museum sells adult tickets for ${adult} and child tickets for ${child}. "
             f"One day it sells {adults + children} tickets and takes "
             f"${adult * adults + child * children}. How many adult tickets did it sell?")
        return q, Fraction(adults)
    k = rng.randint(3, (4, 6, 9)[d - 1])
    start = rng.randint(1, (30, 100, 500)[d - 1])
    total = k * start + k * (k - 1) // 2
    q = f"The sum of {k} consecutive whole numbers is {total}. What is the largest of these numbers?"
    return q, Fraction(start + k - 1)


def _counting(rng: random.Random, d: int) -> tuple[str, Fraction | str]:
    variant = rng.randrange(4 if d > 1 else 3)
    if variant == 0:
        shirts, trousers, hats = (rng.randint(2, (5, 8, 12)[d - 1]) for _ in range(3))
        name = rng.choice(_NAMES)
        q = (f"{name} has {shirts} shirts, {trousers} pairs of trousers and {hats} hats. An outfit is one shirt, "
             f"one pair of trousers and one hat. How many different outfits can {name} make?")
        return q, Fraction(shirts * trousers * hats)
    if variant == 1:
        people = rng.randint(4, (10, 25, 60)[d - 1])
        q = (f"At a meeting of {people} people, everyone shakes hands exactly once with everyone else. How many "
             f"handshakes take place?")
        return q, Fraction(math.comb(people, 2))
    if variant == 2:
        runners = rng.randint(4, (8, 12, 20)[d - 1])
        q = (f"{runners} runners take part in a race with no ties. In how many different ways can the gold, silver "
             f"and bronze medals be awarded?")
        return q, Fraction(math.perm(runners, 3))
    members = rng.randint(6, (10, 12, 16)[d - 1])
    size = rng.randint(2, 4)
    q = (f"A club with {members} members needs to choose a committee of {size} people, where the order of choosing "
         f"does not matter. How many different committees are possible?")
    return q, Fraction(math.comb(members, size))


def _remainders(rng: random.Random, d: int) -> tuple[str, Fraction | str]:
    variant = rng.randrange(3)
    if variant == 0:
        carton = rng.choice((6, 10, 12, 15, 18, 24))
        eggs = rng.randint(carton + 1, (100, 500, 2000)[d - 1])
        if eggs % carton == 0:
            eggs += rng.randint(1, carton - 1)
        q = (f"A farm collects {eggs} eggs and packs them into cartons of {carton}. After filling as many full "
             f"cartons as possible, how many eggs are left over?")
        return q, Fraction(eggs % carton)
    if variant == 1:
        today = rng.randrange(7)
        ahead = rng.randint(8, (30, 100, 1000)[d - 1])
        q = f"Today is {_DAYS[today]}. What day of the week will it be {ahead} days from today?"
        return q, _DAYS[(today + ahead) % 7]
    a, b = rng.sample((3, 4, 5, 6, 7, 8, 9), 2)
    r = rng.randint(1, min(a, b) - 1)
    floor = rng.randint(10, (50, 200, 1000)[d - 1])
    n = floor + 1
    while n % a != r or n % b != r:
        n += 1
    q = (f"What is the smallest whole number greater than {floor} that leaves a remainder of {r} when divided by "
         f"{a} and also leaves a remainder of {r} when divided by {b}?")
    return q, Fraction(n)


def _money_change(rng: random.Random, d: int) -> tuple[str, Fraction | str]:
    name = rng.choice(_NAMES)
    if rng.random() < 0.5:
        step = (Fraction(1, 2), Fraction(1, 4), Fraction(1, 20))[d - 1]
        p1 = step * rng.randint(int(1 / step), int(6 / step))
        p2 = step * rng.randint(int(Fraction(1, 2) / step), int(3 / step))
        q1, q2 = rng.randint(2, (4, 6, 9)[d - 1]), rng.randint(2, (5, 8, 12)[d - 1])
        cost = q1 * p1 + q2 * p2
        note = next(n for n in (10, 20, 50, 100, 200) if n > cost)
        q = (f"{name} buys {q1} notebooks at ${_money(p1)} each and {q2} pens at ${_money(p2)} each, and pays with "
             f"a ${note} note. How much change, in dollars, does {name} get?")
        return q, note - cost
    weekly = rng.choice((5, 8, 10, 12, 15, 20, 25))
    saved = rng.randrange(0, (40, 100, 200)[d - 1] + 1, 5)
    price = saved + weekly * rng.randint(3, (10, 20, 40)[d - 1]) - rng.randint(0, weekly - 1)
    q = (f"{name} wants to buy a bicycle that costs ${price}. {name} already has ${saved} and saves ${weekly} "
         f"every week. How many weeks will it take until {name} has enough money?")
    return q, Fraction(math.ceil(Fraction(price - saved, weekly)))


def _ages(rng: random.Random, d: int) -> tuple[str, Fraction | str]:
    variant = rng.randrange(3)
    if variant == 0:
        parent, child = rng.sample(_NAMES, 2)
        child_age = rng.randint(2, (12, 20, 30)[d - 1])
        years = rng.randint(1, (10, 20, 30)[d - 1])
        gap = child_age + years  # parent + years = 2 * (child + years)
        q = (f"{parent} is {gap} years older than {parent}'s child, {child}. In {years} years, {parent} will be "
             f"exactly twice as old as {child}. How old is {child} now?")
        return q, Fraction(child_age)
    if variant == 1:
        x, y = rng.sample(_NAMES, 2)
        younger = rng.randint(3, (15, 40, 70)[d - 1])
        diff = rng.randint(1, (10, 20, 30)[d - 1])
        years = rng.randint(1, (10, 15, 25)[d - 1])
        total = 2 * younger + diff + 2 * years
        q = (f"{x} is {diff} years older than {y}. In {years} years, the "
             f"sum of their ages will be {total}. How old is {y} now?")
        return q, Fraction(younger)
    youngest = rng.randint(1, (10, 20, 40)[d - 1])
    gap_mid, gap_old = rng.randint(1, 6), rng.randint(1, 6)
    total = 3 * youngest + 2 * gap_mid + gap_old
    q = (f"The ages of three siblings add up to {total}. The eldest is {gap_old} years older than the middle "
         f"sibling, who is {gap_mid} years older than the youngest. How old is the eldest sibling?")
    return q, Fraction(youngest + gap_mid + gap_old)


def _geometry(rng: random.Random, d: int) -> tuple[str, Fraction | str]:
    variant = rng.randrange(4 if d > 1 else 3)
    if variant == 0:
        length, width = rng.randint(4, (12, 25, 60)[d - 1]), rng.randint(3, (10, 20, 40)[d - 1])
        path = rng.randint(1, (2, 3, 5)[d - 1])
        q = (f"A rectangular garden measures {length} m by {width} m. A path {path} m wide runs all the way around "
             f"the outside of the garden. What is the area of the path in square metres?")
        return q, Fraction((length + 2 * path) * (width + 2 * path) - length * width)
    if variant == 1:
        side = rng.randint(3, (15, 40, 120)[d - 1])
        q = f"A square field has a perimeter of {4 * side} metres. What is its area in square metres?"
        return q, Fraction(side * side)
    if variant == 2:
        length, width = sorted((rng.randint(2, (10, 20, 40)[d - 1]), rng.randint(2, (8, 15, 30)[d - 1])), reverse=True)
        q = (f"A rectangular rug has an area of {length * width} square metres and a length of {length} metres. "
             f"What is its perimeter in metres?")
        return q, Fraction(2 * (length + width))
    big_l, big_w = rng.randint(6, 20), rng.randint(6, 16)
    cut_l, cut_w = rng.randint(2, big_l - 2), rng.randint(2, big_w - 2)
    q = (f"An L-shaped room is made by removing a {cut_l} m by {cut_w} m rectangle "
         f"from one corner of a {big_l} m by {big_w} m rectangle. The floor is covered "
         "with tiles that each cover 1 square metre. How many tiles are needed?")
    return q, Fraction(big_l * big_w - cut_l * cut_w)


FAMILIES: dict[str, Callable[[random.Random, int], tuple[str, Fraction | str]]] = {
    "units": _units,
    "percentages": _percentages,
    "rates": _rates,
    "ratios": _ratios,
    "algebra": _algebra,
    "counting": _counting,
    "remainders": _remainders,
    "money": _money_change,
    "ages": _ages,
    "geometry": _geometry,
}


def dealt(names: list[str], rng: random.Random) -> Iterator[str]:
    """Family names in a shuffled round robin: every family once, in a fresh order, before any repeats."""
    while True:
        order = names[:]
        rng.shuffle(order)
        while order:
            yield order.pop()


def draw_unseen(draw: Callable[[], tuple], seen: set[str], tries: int) -> tuple:
    """``draw()`` (a ``(question, ...)`` tuple) until its question is not in ``seen``, at most ``tries`` times (the
    last draw is kept then); the question is added to ``seen``."""
    for _ in range(tries):
        found = draw()
        if found[0] not in seen:
            break
    seen.add(found[0])
    return found


def generate_math_items(n: int, seed: int, difficulty: int | None = 2,
                        families: Iterable[str] | None = None) -> list[dict]:
    """``n`` word problems, identical for the same arguments.

    ``difficulty`` is 1 (small numbers), 2 or 3 (larger numbers, some extra steps); ``None`` draws it per item.
    Families are drawn in a shuffled round-robin so every family is represented. Questions are not repeated
    within one call; a repeat is accepted only after 50 failed redraws, i.e. when ``n`` nears the number of
    distinct questions a family can produce at that difficulty.
    """
    if not isinstance(n, int) or n < 0:
        raise InputError(f"n must be a non-negative integer, got {n!r}")
    if difficulty not in (None, 1, 2, 3):
        raise InputError(f"difficulty must be 1, 2, 3 or None, got {difficulty!r}")
    names = list(FAMILIES) if families is None else list(families)
    unknown = [f for f in names if f not in FAMILIES]
    if unknown or not names:
        problem = f"unknown math families {unknown}" if unknown else "no math families given"
        raise InputError(f"{problem}; choose from: {', '.join(FAMILIES)}")

    rng = random.Random(seed)
    items: list[dict] = []
    seen: set[str] = set()
    families = dealt(names, rng)
    for index in range(n):
        family = next(families)
        level = difficulty if difficulty is not None else rng.randint(1, 3)
        question, answer = draw_unseen(lambda family=family, level=level: FAMILIES[family](rng, level), seen, 50)
        items.append({
            "id": f"{SOURCE}-{seed}-{index:05d}",
            "question": question,
            "answer": answer if isinstance(answer, str) else format_exact(answer),
            "prompt": make_prompt(question),
            "source": SOURCE,
            "kind": "reasoning",
            "family": family,
            "difficulty": level,
        })
    return items


# ---------------------------------------------------------------------------------------------------------------
# Loading external math sets.

_QUESTION_FIELDS = ("question", "problem")


def load_math_jsonl(path: str | Path, question_field: str | None = None,
                    answer_field: str | None = None) -> list[dict]:
    """Load GSM8K-style (``question`` + ``answer`` ending in ``#### 42``) or DeepScaleR-style (``problem`` +
    ``answer``) JSONL, detected per row. A row with bad JSON or a missing/empty field raises ``InputError``
    naming the file and line; blank lines are ignored.
    """
    path = Path(path).expanduser()
    items: list[dict] = []
    for lineno, row in iter_numbered_jsonl(path):
        where = f"{path.name}:{lineno}"
        q_key = question_field or next((k for k in _QUESTION_FIELDS if k in row), None)
        if q_key is None or q_key not in row:
            wanted = repr(question_field) if question_field else " or ".join(map(repr, _QUESTION_FIELDS))
            raise InputError(f"{where}: missing field {wanted}")
        a_key = answer_field or "answer"
        if a_key not in row:
            raise InputError(f"{where}: missing field {a_key!r}")
        question, raw_answer = row[q_key], row[a_key]
        if not isinstance(question, str) or not question.strip():
            raise InputError(f"{where}: field {q_key!r} must be a non-empty string")
        if isinstance(raw_answer, bool) or not isinstance(raw_answer, (str, int, float)):
            raise InputError(f"{where}: field {a_key!r} must be a string or a number")
        answer = _final_answer(str(raw_answer))
        if not answer:
            raise InputError(f"{where}: field {a_key!r} has no final answer")

        items.append({
            "id": str(row.get("id") or f"{path.stem}-{lineno}"),
            "question": question.strip(),
            "answer": answer,
            "prompt": make_prompt(question),
            "source": path.stem,
            "kind": "reasoning",
        })
    if not items:
        raise InputError(f"{path.name}: no items")
    return items


def _final_answer(raw: str) -> str:
    # GSM8K keeps its worked solution in the answer field; the final answer follows the last "####".
    if "####" in raw:
        raw = raw.rsplit("####", 1)[1]
        raw = re.sub(r"(?<=\d),(?=\d{3}\b)", "", raw)
    return raw.strip()
