#!/usr/bin/env bash
# Installs Ironspire with everything its tests need into .venv, then runs the whole suite:
# lint (ruff), strict type check (mypy --strict), and pytest — including the integration tests
# against a real llama.cpp server and the real Claude Code CLI, both on this machine only.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
# llama-cpp-python compiles from source the first time (minutes); pip's cache keeps the wheel.
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[dev,llamacpp]'
echo "== ruff"
.venv/bin/ruff check src tests bench
echo "== mypy --strict"
.venv/bin/mypy
echo "== pytest"
.venv/bin/pytest -q -p no:cacheprovider "$@"
