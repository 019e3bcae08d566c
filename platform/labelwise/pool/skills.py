"""Built-in pool ``builtin:skills``: a seeded, generated pool with exact gold answers.

15 tasks of very unequal size (3000 prompts down to 2) and unequal difficulty for a small
model (copying a word is easy, multiplying 3-digit numbers is hard). Meant for tests and
controlled experiments: the same seed gives the same pool. ``skills_scale`` multiplies the
sizes of tasks with 5 or more prompts (never below 5); the tiny tasks stay tiny.
"""

from __future__ import annotations

import random
from typing import Callable, Iterator

from labelwise.pool.records import Raw

WORDS = """apple river stone cloud garden window planet silver candle forest bridge orange
pencil rocket violin winter summer market button castle dragon engine feather guitar hammer
island jacket kettle ladder magnet needle ocean pepper quartz rabbit saddle tiger umbrella
valley wagon yellow zebra anchor basket carpet desert eagle falcon glacier harbor insect jungle
lantern meadow napkin oyster parrot puzzle shadow tunnel velvet walnut blanket cactus dolphin
mirror pillow spider tomato turtle bottle helmet cherry copper lemon marble monkey nickel
pirate rubber salmon spoon thunder timber trumpet canyon circle coffee cotton diamond""".split()
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
CAPITALS = {
    "France": "Paris", "Japan": "Tokyo", "Italy": "Rome", "Spain": "Madrid", "Germany": "Berlin",
    "Egypt": "Cairo", "Canada": "Ottawa", "Kenya": "Nairobi", "Peru": "Lima", "Norway": "Oslo",
    "Greece": "Athens", "Poland": "Warsaw", "Chile": "Santiago", "Cuba": "Havana", "Ireland": "Dublin",
}
ANTONYMS = {
    "hot": "cold", "big": "small", "fast": "slow", "happy": "sad", "light": "dark", "up": "down",
    "early": "late", "full": "empty", "hard": "soft", "open": "closed", "rich": "poor", "old": "young",
    "strong": "weak", "wet": "dry", "high": "low", "loud": "quiet", "long": "short", "thick": "thin",
}
ONES = "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen seventeen eighteen nineteen".split()
TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()


def number_words(n: int) -> str:
    if n < 20:
        return ONES[n]
    tens, ones = divmod(n, 10)
    return TENS[tens] + ("" if ones == 0 else "-" + ONES[ones])


def _two_words(r: random.Random) -> str:
    return f"{r.choice(WORDS)} {r.choice(WORDS)}"


def _nums(r: random.Random, k: int, lo: int = 0, hi: int = 99) -> list[int]:
    return [r.randint(lo, hi) for _ in range(k)]


# task -> (size, generator(rng) -> (prompt, answer)); ordered from largest to smallest.
TASKS: dict[str, tuple[int, Callable[[random.Random], tuple[str, str]]]] = {}


def task(name: str, size: int):
    def register(fn):
        TASKS[name] = (size, fn)
        return fn

    return register


@task("uppercase", 3000)
def _uppercase(r):
    w = _two_words(r)
    return f"Write '{w}' in capital letters.", w.upper()


@task("add_two_digit", 1500)
def _add2(r):
    a, b = r.randint(10, 99), r.randint(10, 99)
    return f"What is {a} + {b}? Answer with the number only.", str(a + b)


@task("sort_numbers", 1000)
def _sort(r):
    xs = _nums(r, r.randint(3, 5))
    return f"Sort these numbers from smallest to largest: {', '.join(map(str, xs))}", ", ".join(map(str, sorted(xs)))


@task("multiply_three_digit", 800)
def _mul3(r):
    a, b = r.randint(100, 999), r.randint(100, 999)
    return f"What is {a} * {b}? Answer with the number only.", str(a * b)


@task("reverse_word", 400)
def _reverse(r):
    w = r.choice(WORDS) + r.choice(WORDS)
    return f"Spell '{w}' backwards.", w[::-1]


@task("count_letters", 200)
def _count(r):
    w = r.choice(WORDS) + r.choice(WORDS)
    return f"How many letters are in the word '{w}'? Answer with the number only.", str(len(w))


@task("parity", 100)
def _parity(r):
    n = r.randint(0, 999)
    return f"Is {n} even or odd? Answer with one word.", "even" if n % 2 == 0 else "odd"


@task("next_weekday", 60)
def _weekday(r):
    d, n = r.randrange(7), r.randint(1, 30)
    return f"What day of the week is {n} days after {DAYS[d]}? Answer with the day only.", DAYS[(d + n) % 7]


@task("number_to_words", 50)
def _words(r):
    n = r.randint(0, 99)
    return f"Write the number {n} in English words.", number_words(n)


@task("max_of_list", 25)
def _max(r):
    xs = _nums(r, 5)
    return f"What is the largest number in this list: {', '.join(map(str, xs))}? Answer with the number only.", str(max(xs))


@task("antonym", 12)
def _antonym(r):
    w = r.choice(sorted(ANTONYMS))
    return f"What is the opposite of '{w}'? Answer with one word.", ANTONYMS[w]


@task("last_letter", 6)
def _last(r):
    w = r.choice(WORDS)
    return f"What is the last letter of the word '{w}'?", w[-1]


@task("add_one_digit", 4)
def _add1(r):
    a, b = r.randint(0, 9), r.randint(0, 9)
    return f"What is {a} + {b}? Answer with the number only.", str(a + b)


@task("capital_city", 3)
def _capital(r):
    c = r.choice(sorted(CAPITALS))
    return f"What is the capital of {c}? Answer with the city only.", CAPITALS[c]


@task("copy_word", 2)
def _copy(r):
    w = r.choice(WORDS)
    return f"Repeat this word exactly: {w}", w


def task_size(base: int, scale: float) -> int:
    return base if base < 5 else max(5, round(base * scale))


def generate(seed: int = 0, scale: float = 1.0) -> Iterator[tuple[str, str, str]]:
    """(task, prompt, answer) with distinct prompts per task; same seed, same pool."""
    for name, (base, fn) in TASKS.items():
        r = random.Random(f"skills:{seed}:{name}")
        want, seen, tries = task_size(base, scale), set(), 0
        while len(seen) < want and tries < want * 50:
            tries += 1
            prompt, answer = fn(r)
            if prompt in seen:
                continue
            seen.add(prompt)
            yield name, prompt, answer


def records(seed: int = 0, scale: float = 1.0) -> tuple[Iterator[Raw], dict]:
    def gen():
        for i, (name, prompt, answer) in enumerate(generate(seed, scale)):
            yield Raw(prompt=prompt, response=answer, task=name, source="skills", where=f"skills:{name}#{i}")

    meta = {"builtin": "skills", "seed": seed, "scale": scale,
            "task_sizes": {n: task_size(b, scale) for n, (b, _) in TASKS.items()}}
    return gen(), meta
