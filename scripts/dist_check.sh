#!/usr/bin/env bash
# `make dist-check`: what `pip install memsvc` gives a user. Builds the wheel, installs it with
# the lock (the base install: no extras) into a fresh venv outside the repository, and runs
# add + recall there, so a missing package file, dependency or stray top-level name shows.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
root=$(pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

had_build=$([ -d build ] && echo yes || true)
.venv/bin/python -m build --wheel --no-isolation --outdir "$work/dist" . >/dev/null
[ -n "$had_build" ] || rm -rf build  # setuptools' scratch folder, not ours to leave behind
wheel=$(ls "$work"/dist/memsvc-*.whl)
echo "built $(basename "$wheel")"
"$PYTHON" -m venv "$work/venv"
"$work/venv/bin/python" -m pip install --quiet --constraint "$root/requirements.lock" pip
"$work/venv/bin/python" -m pip install --quiet --constraint "$root/requirements.lock" "$wheel"
"$work/venv/bin/python" -m pip check

cd "$work"  # nothing of the repository on sys.path from here on
site=$("$work/venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
tops=$(cat "$site"/memsvc-*.dist-info/top_level.txt 2>/dev/null || \
  "$work/venv/bin/python" - "$site" <<'PY'
import pathlib, sys
rec = next(pathlib.Path(sys.argv[1]).glob("memsvc-*.dist-info")) / "RECORD"
print("\n".join(sorted({l.split("/")[0] for l in rec.read_text().splitlines() if "/" in l and not l.startswith("memsvc-")})))
PY
)
if [ "$tops" != "memsvc" ]; then echo "the wheel installs top-level names other than memsvc: $tops" >&2; exit 1; fi
echo "top-level packages installed: $tops"

MEMSVC_HOME="$work/data" "$work/venv/bin/python" - <<'PY'
import memsvc
from memsvc import Memory

assert memsvc.__file__.startswith(__import__("sys").prefix), memsvc.__file__
with Memory() as mem:
    mem.add("Alice moved to Berlin in May 2023.", user_id="alice")
    mem.add("Bob's favourite food is ramen.", user_id="alice")
    hits = mem.recall("Where does Alice live?", user_id="alice", k=1)
    assert hits and "Berlin" in hits[0].record.content, hits
    print(f"add + recall from the installed wheel: {hits[0].record.content!r} ({hits[0].score:.3f})")
PY
"$work/venv/bin/memsvc" --help >/dev/null
echo "dist-check passed"
