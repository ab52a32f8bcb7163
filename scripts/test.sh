#!/usr/bin/env bash
# Installs Ironspire with everything its tests need into .venv, then runs the whole suite:
# lint (ruff), strict type check (mypy --strict), and pytest — including the integration tests
# against a real llama.cpp server and the real Claude Code CLI, both on this machine only.
# The tests read recorded provider traffic from ../shared/realdata (beside this checkout).
#
#   bash scripts/test.sh            the full suite: what CI runs
#   bash scripts/test.sh --fast     a contributor's loop: no llama.cpp build, no browser, and
#                                   the tests that need the real local model or Chromium are
#                                   deselected
# The full suite drives Debian's Chromium (chromium + chromium-driver, installed here with apt-get
# when missing: CI runs as root on a fresh machine) against a real `ironspire serve`.
# Any other arguments go to pytest (e.g. `bash scripts/test.sh --fast tests/protocols -x`).
set -euo pipefail
cd "$(dirname "$0")/.."
# The store's tests also run against a real PostgreSQL (a private server per test session, see
# tests/support/postgres.py): Debian's package, installed once when missing; a no-op afterwards.
if ! compgen -G "/usr/lib/postgresql/*/bin/pg_ctl" >/dev/null && ! command -v pg_ctl >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "== installing PostgreSQL (apt-get)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql >/dev/null
  else
    echo "PostgreSQL is needed by the tests: run \`sudo apt-get install postgresql\` (or your system's package)." >&2
    exit 1
  fi
fi
PYTHON=${PYTHON:-python3}
FAST=0
ARGS=()
for arg in "$@"; do
  if [ "$arg" = "--fast" ]; then FAST=1; else ARGS+=("$arg"); fi
done
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
if [ "$FAST" = 1 ]; then
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
  MARKERS=(-m "not llamacpp and not browser")
else
  if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then
    echo "== installing chromium and chromium-driver (apt-get)"
    SUDO=""
    if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null
  fi
  # llama-cpp-python compiles from source the first time (minutes); pip's cache keeps the wheel.
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[dev,llamacpp]'
  MARKERS=()
fi
echo "== ruff"
.venv/bin/ruff check src tests bench
echo "== mypy --strict"
.venv/bin/mypy
echo "== import-linter (layering, DESIGN.md)"
.venv/bin/lint-imports
echo "== pytest"
.venv/bin/pytest -q -p no:cacheprovider "${MARKERS[@]}" "${ARGS[@]}"
