"""The layer contract and the one-namespace rule, checked over the real source.

Imports point down only: api and evals (the faces) -> core (memsvc's own modules) ->
retrieval -> store -> kernels, and kernels import nothing of ours. Every import counts,
including those inside functions: a lazy upward import is still an upward dependency.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "memsvc"

# Higher imports lower, never the other way. Faces of one rank do not import each other.
# memsvc.tracing (the do-nothing-while-off span facade) sits below them all: every layer
# traces through it, and it imports nothing of ours.
RANK = {"api": 4, "evals": 4, "core": 3, "retrieval": 2, "store": 1, "kernels": 0, "tracing": -1}
# evals use the public SDK like any user; a benchmark may time a lower layer's primitive
# (retrieval recipes, kernels) but never reaches into the store or the HTTP app.
FORBIDDEN = {("evals", "store"), ("evals", "api"), ("api", "evals")}


def layer_of(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "memsvc":
        return None
    if len(parts) > 1 and parts[1] in RANK and parts[1] != "core":
        return parts[1]
    return "core"


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path, name: str | None = None) -> list[tuple[int, str]]:
    """(line, absolute module) for every import in the file, relative ones resolved."""
    name = name or module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            # `from memsvc import store` imports the subpackage, not a name of the core
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                found.append((node.lineno, sub if layer_of(sub) != layer_of(target) else target))
    return found


def upward_imports(files: list[Path], names: list[str] | None = None) -> list[str]:
    bad = []
    for i, path in enumerate(files):
        name = names[i] if names else module_name(path)
        src = layer_of(name)
        for line, target in imports_of(path, name):
            dst = layer_of(target)
            if src is None or dst is None or src == dst:
                continue
            if (
                RANK[dst] > RANK[src]
                or (src, dst) in FORBIDDEN
                or (RANK[dst] == RANK[src] and src != dst)
            ):
                bad.append(f"{name}:{line}: {src} imports {dst} ({target})")
    return bad


def source_files() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def test_imports_point_down_the_layers() -> None:
    assert upward_imports(source_files()) == []


# Only the store speaks SQL: no module above it imports SQLAlchemy or an ORM row.
STORE_ONLY = ("sqlalchemy", "alembic", "memsvc.store.orm", "memsvc.store.repos")


def store_internals_outside(files: list[Path], names: list[str] | None = None) -> list[str]:
    bad = []
    for i, path in enumerate(files):
        name = names[i] if names else module_name(path)
        if layer_of(name) == "store":
            continue
        for line, target in imports_of(path, name):
            if any(target == m or target.startswith(m + ".") for m in STORE_ONLY):
                bad.append(f"{name}:{line}: imports {target}")
    return bad


def test_only_the_store_speaks_sql() -> None:
    """SQL, sessions and ORM rows stay in memsvc.store; the core and retrieval get `Tx`
    repositories and frozen snapshots (memsvc/store/tx.py, data.py)."""
    assert store_internals_outside(source_files()) == []


def test_the_sql_check_catches_a_session_in_the_core(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text(
        "from sqlalchemy.orm import Session\nfrom memsvc.store.orm import RecordRow\n"
        "from memsvc.store.data import RecordData\n"
    )
    assert store_internals_outside([probe], ["memsvc.retrieval.probe"]) == [
        "memsvc.retrieval.probe:1: imports sqlalchemy.orm",
        "memsvc.retrieval.probe:2: imports memsvc.store.orm",
    ]
    assert store_internals_outside([probe], ["memsvc.store.probe"]) == []


def test_retrieval_imports_no_core_module() -> None:
    bad = [
        f"{module_name(p)}:{line}: {t}"
        for p in source_files()
        if layer_of(module_name(p)) == "retrieval"
        for line, t in imports_of(p)
        if layer_of(t) == "core"
    ]
    assert bad == []


def test_the_contract_catches_an_upward_import(tmp_path: Path) -> None:
    """The checker itself: a store module importing the core, even lazily, is reported."""
    probe = tmp_path / "probe.py"
    probe.write_text("def f():\n    from memsvc.memory import Memory\n    from ..api import app\n")
    bad = upward_imports([probe], ["memsvc.store.probe"])
    assert bad == [
        "memsvc.store.probe:2: store imports core (memsvc.memory)",
        "memsvc.store.probe:3: store imports api (memsvc.api)",
    ]
    ok = tmp_path / "ok.py"
    ok.write_text("from memsvc.kernels import cpu\nfrom . import orm\n")
    assert upward_imports([ok], ["memsvc.store.ok"]) == []


def test_core_cli_does_not_import_the_faces_but_gets_their_commands() -> None:
    from memsvc.cli import app

    names = {c.name or c.callback.__name__ for c in app.registered_commands}
    groups = {g.name for g in app.registered_groups}
    assert {"serve", "mcp", "add", "recall"} <= names
    assert "eval" in groups
    cli_files = sorted((PACKAGE / "cli").glob("*.py"))
    assert all(layer_of(t) != "api" for f in cli_files for _, t in imports_of(f))


def test_only_memsvc_is_a_top_level_package() -> None:
    tops = sorted(
        p.name
        for p in ROOT.iterdir()
        if p.is_dir() and (p / "__init__.py").exists() and p.name not in {"tests"}
    )
    assert tops == ["memsvc"]


@pytest.mark.parametrize("name", ["kernels", "api", "store", "retrieval", "evals"])
def test_generic_names_do_not_resolve_to_our_code(name: str) -> None:
    """From the repository root (where a stray top-level folder would shadow a PyPI package,
    as ours once shadowed Hugging Face's `kernels` and broke transformers), a generic name is
    somebody else's package or nothing, never ours."""
    code = (
        "import importlib.util, sys; "
        f"s = importlib.util.find_spec({name!r}); "
        "print(s.origin if s and s.origin else (list(s.submodule_search_locations) if s else ''))"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    where = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    ).stdout.strip()
    assert str(ROOT) not in where.replace(str(ROOT / ".venv"), ""), where


def test_transformers_loads_the_bundled_embedder_in_this_process() -> None:
    """What broke every test on 2026-12-04: transformers' model loading imports Hugging Face's
    `kernels`; here it must import, and the bundled MiniLM must load and embed."""
    import transformers.modeling_utils  # noqa: F401
    from sentence_transformers import SentenceTransformer

    from memsvc.embedder import bundled_model_path

    model = SentenceTransformer(str(bundled_model_path()), device="cpu")
    vec = model.encode(["Alice moved to Berlin."], normalize_embeddings=True)
    assert vec.shape == (1, 384)
    assert abs(float((vec**2).sum()) - 1.0) < 1e-4
