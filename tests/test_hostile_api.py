"""Hostile callers at the HTTP edge (issue 22): input that used to cost quadratic time or
answer 500, figures that spanned tenants on open routes, and a no-auth server that any web
page could write to. Real `memsvc serve` processes over real HTTP, one per kind per module;
in-process apps only where a test must count calls or fake the peer address.
"""

from __future__ import annotations

import base64
import json
import os
import random
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from memsvc.retrieval.entities import _CAP_RUN, _COMMON, _ORG_SUFFIX, extract_entities, normalize
from tests.conftest import Served, run_cli, serving


@pytest.fixture(scope="module")
def op_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """API keys on."""
    home = tmp_path_factory.mktemp("hostile-op")
    env = {
        **os.environ,
        "MEMSVC_HOME": str(home),
        "MEMSVC_MAINTAIN_SECONDS": "0",
    }
    keys = {
        t: json.loads(run_cli("keys", "create", "--tenant", t, "--json", env=env))["key"]
        for t in ("acme", "globex")
    }
    with serving(env) as url:
        yield Served(url=url, home=home, env=env, keys=keys)


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# ---- 7: entity extraction in linear time ------------------------------------------------------


def _reference_entities(text: str) -> list[tuple[str, str, str]]:
    """The extractor as it was before it was made linear (it searched `text[:start]` for
    every name): the oracle for "same results on ordinary text"."""
    sent_start = re.compile(r"(?:^|[.!?:;\"“(\[]\s*|\n\s*)$")
    place_before = re.compile(r"\b(?:in|at|to|from|near|visit(?:ed|ing)?|around)\s+$", re.I)
    out: dict[str, tuple[str, str, str]] = {}
    for m in _CAP_RUN.finditer(text):
        raw = re.sub(r"['\u2019]s$", "", m.group(0)).rstrip(",-&'\u2019")
        words = raw.split()
        while words and words[0].lower().strip("'\u2019") in _COMMON:
            words = words[1:]
        if not words:
            continue
        raw = " ".join(words)
        norm = normalize(raw)
        if len(norm) < 2 or norm in _COMMON or norm in out:
            continue
        before = text[: m.start()]
        at_start = bool(sent_start.search(before))
        if at_start and len(words) == 1 and norm in _COMMON:
            continue
        if _ORG_SUFFIX.search(raw):
            kind = "org"
        elif place_before.search(before):
            kind = "place"
        else:
            kind = "name"
        out[norm] = (raw, norm, kind)
    return list(out.values())


def _ordinary_texts() -> list[str]:
    """Every turn of the LongMemEval fixture, hand-made edge cases and seeded word soup."""
    fixture = Path(__file__).parent / "fixtures" / "longmemeval_fixture.json"
    texts = [
        turn["content"]
        for q in json.loads(fixture.read_text())
        for session in q["haystack_sessions"]
        for turn in session
    ]
    texts += [
        "Thanks Caroline! We visited Rome with Jon and met people from Stanford University.",
        "  In Paris we met Anna.\n\tAt Oslo, Bob's Cafe Inc. opened near  Bergen",
        "VISITING Lima, then around\n\n  Cusco; from  \t Quito (Ecuador) to \u2019Bogota\u2019",
        "Bank of the Andes Group. University of Oslo. de la Cruz met The Beatles in Liverpool",
        "xin Tokyo, Kin Kyoto, visitedOsaka, at: Nara, to-Kobe, 'Sapporo' at\u00a0Sendai",
        "Hey Mom, Wow. Monday in March? I'm at Google Corp. and at Acme Co. Ltd",
    ]
    names = "Anna Bob Oslo Paris Rome Jon Stanford University Inc Corp Club The Thanks Wow Hey"
    small = "in at to from near visited visiting around of de the and met with a is"
    marks = ". , ! ? ; : \" ( [ \n \t - & ' \u2019s \u201c"
    vocab = [*names.split(), *small.split(), *marks.split(" "), "  ", "\n  "]
    rng = random.Random(22)
    texts += [" ".join(rng.choices(vocab, k=rng.randint(1, 40))) for _ in range(3000)]
    texts += ["".join(rng.choices(vocab, k=rng.randint(1, 40))) for _ in range(1000)]
    return texts


def test_entities_same_as_before_on_ordinary_text() -> None:
    for text in _ordinary_texts():
        got = [(e.name, e.normalized, e.type) for e in extract_entities(text)]
        assert got == _reference_entities(text), text


def _distinct_names(nbytes: int, seed: int = 7) -> str:
    rng = random.Random(seed)
    out, size = [], 0
    while size < nbytes:
        w = rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ") + "".join(
            rng.choices("abcdefghijklmnopqrstuvwxyz", k=6)
        )
        out.append(w)
        size += len(w) + 2
    return ", ".join(out)[:nbytes]


def _best_seconds(fn: Callable[[], object], runs: int = 3) -> float:
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def test_entity_extraction_time_grows_linearly_with_text() -> None:
    """4x the distinct capitalised names may cost at most 6x the time (quadratic: ~16x; 32 KiB
    took 3.3 s here before, 15 ms after)."""
    small, large = _distinct_names(16 * 1024), _distinct_names(64 * 1024)
    assert len(extract_entities(large)) > 7000
    t_small = _best_seconds(lambda: extract_entities(small))
    t_large = _best_seconds(lambda: extract_entities(large))
    assert t_large <= 6 * t_small + 0.005, (t_small, t_large)


# ---- 12: bad recipes and cursors answer 422 naming the field ----------------------------------

BAD_RECIPES: list[Any] = [
    "dense=1.2.3",
    "dense=.",
    "dense=1|n" + "9" * 5000,
    "dense=1|rrf" + "9" * 5000,
    "dense=1|k" + "9" * 5000,
    "dense=" + "9" * 5000,
    {"candidates": 50.5},
    {"k": 2.5},
    {"rrf_k": True},
    {"preset": []},
    {"name": ["x"]},
    {"channels": {"x" * 50_000: 1}},
    {"channels": {"dense": "y" * 50_000}},
]


@pytest.mark.parametrize("recipe", BAD_RECIPES, ids=lambda r: repr(r)[:30])
def test_bad_recipe_is_422_naming_recipe(op_server: Served, recipe: Any) -> None:
    r = httpx.post(
        f"{op_server.url}/v1/memories/search",
        json={"query": "anything", "user_id": "rx", "recipe": recipe},
        headers=_bearer(op_server.keys["acme"]),
        timeout=30,
    )
    assert r.status_code == 422, r.text
    assert r.json()["error"]["details"]["field"] == "recipe"
    assert len(r.content) < 1000  # the bad value is quoted short, not echoed whole


def _cursor(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


BAD_CURSORS = [
    _cursor(b'{"after": 1e30}'),
    _cursor(b'{"after": 1000000000000000000000000000000}'),
    _cursor(b'{"after": 9223372036854775808}'),
    _cursor(b'{"after": true}'),
    _cursor(b'{"after": -1}'),
    _cursor(b'{"after": 1' + b"0" * 5000 + b"}"),
    _cursor(b"[" * 2000 + b"]" * 2000),
    "not base64 at all %%%",
]


def test_bad_cursor_is_422_naming_cursor(op_server: Served) -> None:
    h = _bearer(op_server.keys["acme"])
    with httpx.Client(base_url=op_server.url, headers=h, timeout=30) as http:
        assert http.post("/v1/memories", json={"text": "one", "user_id": "cx"}).status_code == 201
        assert http.post("/v1/memories", json={"text": "two", "user_id": "cx"}).status_code == 201
        page = http.get("/v1/memories", params={"user_id": "cx", "limit": 1}).json()
        nxt = http.get("/v1/memories", params={"user_id": "cx", "cursor": page["next_cursor"]})
        assert nxt.status_code == 200 and len(nxt.json()["items"]) == 1  # a real one still works
        for cursor in BAD_CURSORS:
            for path in ("/v1/memories", "/v1/cubes/user:cx/graph"):
                r = http.get(path, params={"user_id": "cx", "cursor": cursor})
                assert r.status_code == 422, (path, cursor[:40], r.text)
                assert r.json()["error"]["details"]["field"] == "cursor"
