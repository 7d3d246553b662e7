#!/usr/bin/env bash
# Install everything (into .venv) and run the checks and the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e '.[dev]'
export PATH="$PWD/.venv/bin:$PATH"

ruff check .
ruff format --check .
lint-imports
mypy
# four processes on two cores: most of the suite waits (real processes, servers, lock
# timeouts), so the cores stay busy; worksteal keeps the long tests from ending on one worker
pytest -q -n 4 --dist worksteal "$@"
