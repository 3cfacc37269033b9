"""A cube's vector index named by one short spec string, parsed here and nowhere else.

Like FAISS's `index_factory`, the string is read left to right as comma-separated tokens, each
matched by one small pattern:

    spec     := encoding [ "," rescore ]
    encoding := "Flat"              exact float32 inner products (a FAISS flat index)
              | "SQ8"               int8 codes (per-dimension scales), scanned by dot product
              | "RBin"              centred, randomly rotated sign bits, scanned by Hamming
    rescore  := "Rescore" N         N = 2..1000, no leading zero: the scan keeps N x k
                                    candidates, float32 rescoring ranks them

`Flat` takes no rescore stage (it is exact already). Without one a scan keeps exactly k rows;
the scores a search returns are exact inner products either way (every two-stage table keeps
the float32 vectors), so `Rescore N` only widens the candidate set. Tokens are case-sensitive
and take no spaces. Every legal string is its own canonical form: `describe()` gives it back
unchanged, and the longest one (`RBin,Rescore1000`) fits the 16 characters of
`cubes.search_mode`, where a cube's spec is stored (a longer grammar needs a migration).

Examples: `Flat`, `SQ8`, `SQ8,Rescore10`, `RBin,Rescore20` (the service default).

The legacy mode names are accepted wherever a spec is (`MODES`): `exact` is `Flat`, `int8` is
`SQ8,Rescore<oversample>`, `binary+rescore` is `RBin,Rescore<oversample>`, the oversample being
the service's (`MEMSVC_SEARCH_OVERSAMPLE`); a cube stored with a legacy name follows that
setting, a cube stored with a spec keeps its own.

Build time vs query time: the spec holds what the index is built from (the encoding, which
fixes the codes kept beside the vectors) and the one pipeline setting the store applies on
every search, the oversample. Query-time knobs stay out: k, a search's `candidates` override,
the `allowed` filter (filtered searches are exact in every spec), FAISS search threads, and
where the scan runs (MEMSVC_KERNEL_BACKEND, the device-memory budget). The encoder's seed and
its refit policy are fixed by the code table, not named.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = [
    "DEFAULT_OVERSAMPLE",
    "ENCODINGS",
    "MAX_OVERSAMPLE",
    "MAX_SPEC_LENGTH",
    "MODES",
    "IndexSpec",
    "IndexSpecError",
    "is_index_spec",
    "legacy_spec",
    "parse_index_spec",
]

ENCODINGS = ("Flat", "SQ8", "RBin")
MODES = ("exact", "int8", "binary+rescore")  # the legacy names, one per encoding
_MODE_OF = dict(zip(ENCODINGS, MODES, strict=True))
_ENCODING_OF = dict(zip(MODES, ENCODINGS, strict=True))
DEFAULT_OVERSAMPLE = 20
MAX_OVERSAMPLE = 1000
MAX_SPEC_LENGTH = 16  # cubes.search_mode is a String(16)

_ENCODING = re.compile(r"Flat|SQ8|RBin")
_RESCORE = re.compile(r"Rescore([1-9][0-9]*)")


class IndexSpecError(ValueError):
    """An index spec (or legacy mode name) that does not parse; `token` is the bad token."""

    def __init__(self, text: str, token: str, why: str) -> None:
        self.text = text
        self.token = token
        super().__init__(
            f"unknown search mode or index spec {text!r}: bad token {token!r}: {why} "
            f"(a mode: {', '.join(MODES)}; or a spec such as Flat, SQ8,Rescore10, RBin,Rescore20)"
        )


@dataclass(frozen=True)
class IndexSpec:
    """One cube's vector index: an encoding and the oversample of its scan (1: no rescore
    stage). Build one with `parse_index_spec`; `describe()` gives the canonical string."""

    encoding: str = "Flat"
    oversample: int = 1

    def __post_init__(self) -> None:
        if self.encoding not in ENCODINGS:
            raise IndexSpecError(self.encoding, self.encoding, "not an encoding")
        if not 1 <= self.oversample <= MAX_OVERSAMPLE:
            raise IndexSpecError(
                str(self.oversample), str(self.oversample), f"oversample is 1..{MAX_OVERSAMPLE}"
            )
        if self.encoding == "Flat" and self.oversample != 1:
            raise IndexSpecError(
                f"Flat,Rescore{self.oversample}", f"Rescore{self.oversample}", "Flat is exact"
            )

    @property
    def two_stage(self) -> bool:
        """A code scan then rescoring (a code table), not a flat index."""
        return self.encoding != "Flat"

    @property
    def mode(self) -> str:
        """The legacy mode name of this encoding (exact, int8, binary+rescore)."""
        return _MODE_OF[self.encoding]

    def describe(self) -> str:
        """The canonical spec string: `parse_index_spec(spec.describe()) == spec`."""
        return (
            self.encoding if self.oversample == 1 else f"{self.encoding},Rescore{self.oversample}"
        )

    def __str__(self) -> str:
        return self.describe()

    def scan_bytes(self, dim: int) -> int:
        """Bytes a scan reads per vector: float32, int8 or packed sign-bit codes."""
        if self.encoding == "Flat":
            return 4 * dim
        return dim if self.encoding == "SQ8" else (dim + 7) // 8

    def bytes_per_vector(self, dim: int) -> int:
        """Bytes the index holds per vector, ids aside: the float32 vector, plus the scan's
        codes for a two-stage spec (which keeps the vectors for exact scores)."""
        return 4 * dim + (self.scan_bytes(dim) if self.two_stage else 0)


def legacy_spec(mode: str, oversample: int = DEFAULT_OVERSAMPLE) -> IndexSpec:
    """The spec a legacy mode name stands for, at the given (service) oversample."""
    encoding = _ENCODING_OF[mode]
    return IndexSpec(encoding, 1 if encoding == "Flat" else max(1, oversample))


def parse_index_spec(text: str, *, oversample: int = DEFAULT_OVERSAMPLE) -> IndexSpec:
    """The spec a string names: a spec (grammar in the module docstring) or a legacy mode name
    (which takes `oversample`). Raises `IndexSpecError` naming the first bad token."""
    if not isinstance(text, str):
        raise IndexSpecError(repr(text), repr(text), "a spec is a string")
    if text in _ENCODING_OF:
        return legacy_spec(text, oversample)
    tokens = text.split(",")
    first = tokens[0]
    if not _ENCODING.fullmatch(first):
        why = "a spec starts with an encoding (Flat, SQ8, RBin)"
        if not first:
            why = "empty token: " + why
        elif not _RESCORE.fullmatch(first):
            why = "not a token: " + why
        raise IndexSpecError(text, first, why)
    over = 1
    for token in tokens[1:]:
        m = _RESCORE.fullmatch(token)
        if _ENCODING.fullmatch(token):
            raise IndexSpecError(text, token, f"one encoding per spec ({first} already)")
        if m is None:
            raise IndexSpecError(text, token, "not a token: after the encoding comes Rescore<N>")
        if over != 1:
            raise IndexSpecError(text, token, "one Rescore stage per spec")
        if first == "Flat":
            raise IndexSpecError(text, token, "Flat is exact: nothing to rescore")
        over = int(m.group(1))
        if not 2 <= over <= MAX_OVERSAMPLE:
            raise IndexSpecError(
                text, token, f"oversample is 2..{MAX_OVERSAMPLE} (none: the scan's k alone)"
            )
    return IndexSpec(first, over)


def is_index_spec(text: object) -> bool:
    """Whether `text` parses as a spec or a legacy mode name."""
    if not isinstance(text, str):
        return False
    try:
        parse_index_spec(text)
    except IndexSpecError:
        return False
    return True
