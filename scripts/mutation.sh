#!/usr/bin/env bash
# Mutation testing of the parts that decide what happens to production, each against the
# tests that should notice (not in CI: it takes many minutes). Extra arguments go to every
# run, e.g. `scripts/mutation.sh --limit 30`. Results: mutation-*.json in the current folder.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
$PY scripts/mutation.py reconciler/core --tests tests/core tests/apply tests/e2e --json mutation-core.json "$@"
$PY scripts/mutation.py reconciler/apply --tests tests/apply tests/e2e --json mutation-apply.json "$@"
$PY scripts/mutation.py reconciler/crypto --tests tests/crypto tests/keys --json mutation-crypto.json "$@"
