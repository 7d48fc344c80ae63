#!/usr/bin/env bash
# Install, then lint, type-check and run the tests. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
status=0
args=("$@")
# The whole suite also lists its slowest tests, so the CI log says where its time goes.
if [[ $# == 0 ]]; then
  args=(--durations=25)
fi
.venv/bin/python -m pytest "${args[@]}" || status=$?
# pytest exits 5 when it collected no tests: say so rather than pass silently or fail the run.
if [[ $status == 5 ]]; then
  echo "test: pytest collected no tests" >&2
  status=0
fi
# The whole suite (no pytest arguments, as CI runs it) also runs every benchmark at its smoke size.
if [[ $# == 0 ]]; then
  bash scripts/bench_smoke.sh || status=1
fi
exit $status
