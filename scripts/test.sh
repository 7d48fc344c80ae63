#!/usr/bin/env bash
# Install, then lint, type-check and run the tests. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
status=0
run_pytest() {
  local code=0
  .venv/bin/python -m pytest "$@" || code=$?
  # pytest exits 5 when it collected no tests: say so rather than pass silently or fail the run.
  if [[ $code == 5 ]]; then
    echo "test: pytest collected no tests ($*)" >&2
    code=0
  fi
  if [[ $code != 0 ]]; then
    status=$code
  fi
}
if [[ $# == 0 ]]; then
  # The whole suite: the Ray-free unit tests on every core (each worker its own process), then the integration
  # tests one at a time, as they share one Ray cluster and the host's cores. Both list their slowest tests, so the
  # CI log says where its time goes.
  run_pytest -n auto --durations=10 tests/unit
  run_pytest --durations=25 tests/integration
else
  run_pytest "$@"
fi
# The whole suite (no pytest arguments, as CI runs it) also runs every benchmark at its smoke size.
if [[ $# == 0 ]]; then
  bash scripts/bench_smoke.sh || status=1
fi
exit $status
