"""Index specs: the grammar (every legal form round-trips, every bad token is named), the legacy
mode names, sizes from the spec alone, and an index built from each spec measured against
exact float search."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from memsvc.store.index_spec import (
    ENCODINGS,
    MAX_OVERSAMPLE,
    MAX_SPEC_LENGTH,
    MODES,
    IndexSpec,
    IndexSpecError,
    is_index_spec,
    parse_index_spec,
)
from memsvc.store.vector_index import CubeIndex


def legal_specs() -> list[str]:
    """Every legal spec string: each encoding alone, each scan with each oversample."""
    scans = [e for e in ENCODINGS if e != "Flat"]
    over = range(2, MAX_OVERSAMPLE + 1)
    return [*ENCODINGS, *(f"{e},Rescore{n}" for e, n in itertools.product(scans, over))]


def test_parse_names_the_encoding_and_the_oversample() -> None:
    assert parse_index_spec("Flat") == IndexSpec("Flat", 1)
    assert parse_index_spec("SQ8") == IndexSpec("SQ8", 1)
    assert parse_index_spec("RBin,Rescore20") == IndexSpec("RBin", 20)
    spec = parse_index_spec("SQ8,Rescore10")
    assert (spec.encoding, spec.oversample, spec.two_stage, spec.mode) == ("SQ8", 10, True, "int8")
    assert not parse_index_spec("Flat").two_stage and parse_index_spec("Flat").mode == "exact"
    with pytest.raises(AttributeError):
        spec.oversample = 3  # type: ignore[misc]  # frozen: a spec is a value


def test_every_legal_form_round_trips_and_fits_the_column() -> None:
    forms = legal_specs()
    assert len(forms) == 3 + 2 * (MAX_OVERSAMPLE - 1)
    specs = set()
    for text in forms:
        spec = parse_index_spec(text)
        assert spec.describe() == str(spec) == text  # every legal string is canonical
        assert parse_index_spec(spec.describe()) == spec
        assert len(text) <= MAX_SPEC_LENGTH  # fits cubes.search_mode
        specs.add(spec)
    assert len(specs) == len(forms)  # no two strings name one spec


@pytest.mark.parametrize(
    ("text", "token"),
    [
        ("", ""),
        ("HNSW32", "HNSW32"),
        ("flat", "flat"),  # case-sensitive
        (" RBin", " RBin"),
        ("RBin, Rescore20", " Rescore20"),  # no spaces
        ("RBin,", ""),
        ("Rescore20", "Rescore20"),  # the encoding comes first
        ("Rescore20,RBin", "Rescore20"),
        ("RBin,SQ8", "SQ8"),  # one encoding
        ("Flat,Rescore20", "Rescore20"),  # Flat is exact
        ("RBin,Rescore1", "Rescore1"),  # 1 is the scan alone: written without the token
        ("RBin,Rescore1001", "Rescore1001"),
        ("RBin,Rescore020", "Rescore020"),  # no leading zero
        ("RBin,Rescore", "Rescore"),
        ("SQ8,Rescore5,Rescore6", "Rescore6"),  # one Rescore stage
        ("RBin,IDMap", "IDMap"),
        ("binary", "binary"),  # not a legacy name either
    ],
)
def test_bad_strings_name_the_bad_token(text: str, token: str) -> None:
    with pytest.raises(IndexSpecError) as err:
        parse_index_spec(text)
    assert err.value.token == token and err.value.text == text
    assert f"bad token {token!r}" in str(err.value)
    assert isinstance(err.value, ValueError)  # callers that catch ValueError still do
    assert not is_index_spec(text)


def test_a_spec_checks_itself_when_built_directly() -> None:
    for encoding, over in [("PQ8", 1), ("RBin", 0), ("SQ8", MAX_OVERSAMPLE + 1), ("Flat", 5)]:
        with pytest.raises(IndexSpecError):
            IndexSpec(encoding, over)
    assert not is_index_spec(None) and not is_index_spec(20)


def test_legacy_mode_names_map_onto_specs() -> None:
    assert MODES == ("exact", "int8", "binary+rescore")
    assert parse_index_spec("exact").describe() == "Flat"
    assert parse_index_spec("int8").describe() == "SQ8,Rescore20"  # the default oversample
    assert parse_index_spec("binary+rescore", oversample=5).describe() == "RBin,Rescore5"
    assert parse_index_spec("binary+rescore", oversample=1).describe() == "RBin"
    assert parse_index_spec("exact", oversample=7).describe() == "Flat"  # nothing to rescore
    # the oversample goes to legacy names only: a spec carries its own
    assert parse_index_spec("SQ8,Rescore3", oversample=50).oversample == 3
    for mode in MODES:
        assert parse_index_spec(mode).mode == mode and is_index_spec(mode)
    from memsvc.store.two_stage import MODES as still_here

    assert still_here == MODES


def test_bytes_per_vector_from_the_spec_alone() -> None:
    sizes = {t: parse_index_spec(t) for t in ("Flat", "SQ8", "SQ8,Rescore10", "RBin,Rescore20")}
    assert {t: s.bytes_per_vector(384) for t, s in sizes.items()} == {
        "Flat": 1536,
        "SQ8": 384 + 1536,  # codes beside the float vectors (scores stay exact)
        "SQ8,Rescore10": 384 + 1536,
        "RBin,Rescore20": 48 + 1536,  # the benchmark's 1584 bytes/vector
    }
    assert {t: s.scan_bytes(384) for t, s in sizes.items()} == {
        "Flat": 1536,
        "SQ8": 384,
        "SQ8,Rescore10": 384,
        "RBin,Rescore20": 48,
    }
    assert parse_index_spec("RBin").scan_bytes(70) == 9  # 70 bits round up to 9 bytes


# ---- an index built from each spec, against exact search ---------------------------------------


def minilm_like(n: int, dim: int, seed: int) -> np.ndarray:
    """Unit vectors with MiniLM's habits: a large shared direction and topical clusters."""
    rng = np.random.default_rng(seed)
    common = rng.standard_normal(dim)
    centres = rng.standard_normal((40, dim))
    x = 1.5 * common + centres[rng.integers(0, 40, n)] + 0.8 * rng.standard_normal((n, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    both = minilm_like(3040, 96, seed=21)
    return both[:3000], both[3000:]  # held-out queries from the same distribution


@pytest.mark.parametrize(
    ("text", "floor"),
    [
        ("Flat", 1.0),
        ("SQ8", 0.9),  # measured 0.97
        ("SQ8,Rescore10", 0.99),  # 1.0
        ("RBin", 0.25),  # 0.36: 96 sign bits alone pick the k poorly
        ("RBin,Rescore5", 0.85),  # 0.90
        ("RBin,Rescore20", 0.98),  # 1.0
    ],
)
def test_an_index_built_from_each_spec_searches_like_exact(
    text: str, floor: float, data: tuple[np.ndarray, np.ndarray]
) -> None:
    db, queries = data
    pks = np.arange(5000, 5000 + len(db))
    index = CubeIndex(db.shape[1], "m", spec=text)
    index.upsert(pks, db)
    assert index.spec.describe() == text and index.count == len(db)
    assert (index._table is not None) == parse_index_spec(text).two_stage
    k, found = 10, 0
    for q in queries:
        exact = np.sort(db @ q)[::-1]
        got, scores = index.search(q, k)
        assert len(got) == k and len(set(got.tolist())) == k
        assert np.allclose(scores, db[got - 5000] @ q, atol=1e-5)  # exact scores, any spec
        assert (np.diff(scores) <= 1e-6).all()
        found += int((scores >= exact[k - 1] - 1e-6).sum())  # tie-aware recall@10
    recall = found / (k * len(queries))
    assert recall >= floor, f"{text}: recall@10 {recall:.3f}"
    if text == "Flat":
        assert recall == 1.0
