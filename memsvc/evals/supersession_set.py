"""A constructed set for the supersession heuristic: pairs (older statement, newer statement)
that are updates of one fact, and near-pairs that are not.

Updates change the value of one subject's attribute (where someone lives, works, what they
do, whom they date, what they drive, a favourite, a pet's name, their age, a phone number),
phrased in several ways, some the grammar does not cover ("Home is Lisbon now") so that
recall is not 1 by construction. Non-updates are the near misses a heuristic trips on: the
same value restated, another person's fact, a different attribute in similar words, plans,
questions, negations and trips. Deterministic (seeded).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

__all__ = ["Pair", "build_pairs"]


@dataclass(frozen=True)
class Pair:
    older: str
    newer: str
    update: bool
    family: str  # what kind of case it is, for the per-family breakdown


CITIES = ["Paris", "Berlin", "Lisbon", "Oslo", "Madrid", "Vienna", "Prague", "Dublin", "Rome"]
COMPANIES = ["Acme Corp", "Globex", "Initech", "Umbrella", "Hooli", "Stark Industries", "Wayne"]
JOBS = ["nurse", "teacher", "carpenter", "pilot", "chef", "lawyer", "architect", "dentist"]
PEOPLE = ["Sam", "Alex", "Jordan", "Riley", "Morgan", "Casey", "Taylor", "Jamie"]
CARS = ["Toyota Corolla", "Honda Civic", "Tesla Model 3", "Ford Focus", "Volvo XC60"]
COLORS = ["blue", "green", "red", "purple", "yellow", "orange"]
FOODS = ["sushi", "pizza", "ramen", "tacos", "curry", "pho"]
PETS = ["Rex", "Bella", "Max", "Luna", "Charlie", "Milo"]
NAMES = ["Alice", "Bruno", "Chen", "Dana", "Elif", "Farah", "Goran", "Hana"]

# (older template, newer template); {a} old value, {b} new value, {n} a third person's name
_UPDATES: dict[str, tuple[list[str], list[str], list[str]]] = {
    "residence": (
        CITIES,
        ["I live in {a}.", "I've been living in {a} for a few years.", "{n} lives in {a}."],
        [
            "I moved to {b} last month.",
            "We just relocated to {b}!",
            "{n} moved to {b}.",
            "Finally settled in {b} after the move.",
            "Home is {b} now, the boxes are unpacked.",
        ],
    ),
    "employer": (
        COMPANIES,
        ["I work at {a}.", "{n} works for {a}.", "I'm working at {a} these days."],
        [
            "I joined {b} this week.",
            "Started a new job at {b} today.",
            "I work for {b} now.",
            "{n} works at {b} now.",
            "Signed the offer, my new employer is {b}.",
        ],
    ),
    "job": (
        JOBS,
        ["I work as a {a}.", "{n} works as a {a}."],
        ["I became a {b} last year.", "I work as a {b} now.", "Retrained and now I'm a {b}."],
    ),
    "partner": (
        PEOPLE,
        ["I'm dating {a}.", "I've been seeing {a} for a while."],
        ["I'm married to {b} now!", "I'm dating {b} these days.", "{b} and I are a couple now."],
    ),
    "car": (
        CARS,
        ["I drive a {a}.", "{n} drives a {a}."],
        ["I drive a {b} since the old one broke.", "Bought a {b}, sold the old car."],
    ),
    "favorite color": (
        COLORS,
        ["My favorite color is {a}.", "{n}'s favorite color is {a}."],
        ["My favourite colour is now {b}.", "My favorite color is {b} these days."],
    ),
    "favorite food": (
        FOODS,
        ["My favorite food is {a}."],
        ["My favorite food is {b} now.", "These days I'd pick {b} over anything."],
    ),
    "pet": (
        PETS,
        ["My dog's name is {a}."],
        ["My dog's name is {b}, we renamed him.", "We call the dog {b} now."],
    ),
    "age": (
        ["31", "32", "40", "41", "27", "28"],
        ["I'm {a}.", "I am {a} years old."],
        ["I turned {b} yesterday.", "I'm {b} now."],
    ),
    "phone": (
        ["555-0101", "555-0199", "555-0142", "555-0177"],
        ["My phone number is {a}."],
        ["My new phone number is {b}.", "My phone number is {b} from today."],
    ),
}

_NON_UPDATES: dict[str, list[tuple[str, str]]] = {
    "restated": [
        ("I live in {a}.", "Still loving life here in {a}."),
        ("I live in {a}.", "I've lived in {a} for ten years now."),
        ("I live in {a}.", "I live in {a}, near the old town."),
        ("I work at {c}.", "I work at {c} on the payments team."),
        ("My favorite color is {col}.", "My favorite color is still {col}."),
        ("I drive a {car}.", "I drive a {car}, it never breaks."),
    ],
    "other person": [
        ("I live in {a}.", "My sister lives in {b}."),
        ("I live in {a}.", "{n} lives in {b}."),
        ("I work at {c}.", "{n} works at {d}."),
        ("{n} lives in {a}.", "{m} lives in {b}."),
        ("My favorite color is {col}.", "{n}'s favorite color is {col2}."),
    ],
    "other attribute": [
        ("I live in {a}.", "I work in {b}."),
        ("I work at {c}.", "I shop at {d} every week."),
        ("My favorite color is {col}.", "My favorite food is {food}."),
        ("I live in {a}.", "My favorite city is {b}."),
        ("I work as a {job}.", "My brother is a {job2}."),
    ],
    "plan or question": [
        ("I live in {a}.", "I might move to {b} next year."),
        ("I live in {a}.", "I'm thinking about moving to {b}."),
        ("I live in {a}.", "Should I move to {b}?"),
        ("I work at {c}.", "I hope to work at {d} someday."),
        ("I live in {a}.", "If I moved to {b}, would you visit?"),
    ],
    "negation": [
        ("I live in {a}.", "I never lived in {b}."),
        ("I work at {c}.", "I don't work at {d}."),
    ],
    "trip": [
        ("I live in {a}.", "I flew to {b} for a conference."),
        ("I live in {a}.", "I visited {b} last week."),
        ("I live in {a}.", "We spent the weekend in {b}."),
    ],
}


def build_pairs(seed: int = 7) -> list[Pair]:
    """At least 100 update pairs and 100 non-update near-pairs."""
    rng = random.Random(seed)
    out: list[Pair] = []
    while sum(p.update for p in out) < 120:
        for attr, (values, olds, news) in _UPDATES.items():
            a, b = rng.sample(values, 2)
            n = rng.choice(NAMES)
            old = rng.choice(olds)
            same_subject = [t for t in news if ("{n}" in t) == ("{n}" in old)]
            if not same_subject:  # a named old statement needs a named new one: use "I"
                old = rng.choice([t for t in olds if "{n}" not in t])
                same_subject = [t for t in news if "{n}" not in t]
            new = rng.choice(same_subject)
            out.append(Pair(old.format(a=a, n=n), new.format(b=b, n=n), True, attr))
    while sum(not p.update for p in out) < 120:
        for family, templates in _NON_UPDATES.items():
            old, new = rng.choice(templates)
            a, b = rng.sample(CITIES, 2)
            c, d = rng.sample(COMPANIES, 2)
            n, m = rng.sample(NAMES, 2)
            col, col2 = rng.sample(COLORS, 2)
            job, job2 = rng.sample(JOBS, 2)
            fill = {
                "a": a,
                "b": b,
                "c": c,
                "d": d,
                "n": n,
                "m": m,
                "col": col,
                "col2": col2,
                "car": rng.choice(CARS),
                "food": rng.choice(FOODS),
                "job": job,
                "job2": job2,
            }
            out.append(Pair(old.format(**fill), new.format(**fill), False, family))
    return out
