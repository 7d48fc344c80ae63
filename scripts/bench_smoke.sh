#!/usr/bin/env bash
# Every benchmark at its --smoke size, one after another (each starts what it needs and stops it), so a benchmark
# that no longer runs, or whose output lost its shape, fails CI instead of rotting. A runnable benchmark is a module
# of benchmarks/ with a __main__ block; tests/unit/test_benchmarks.py checks each one has --smoke.
set -euo pipefail
cd "$(dirname "$0")/.."
failed=()
for path in $(grep -l '^if __name__ == "__main__":' benchmarks/*.py | sort); do
  module="benchmarks.$(basename "$path" .py)"
  started=$(date +%s)
  log="$(mktemp)"
  if timeout 900 .venv/bin/python -m "$module" --smoke >"$log" 2>&1; then
    echo "bench-smoke: $module ok ($(( $(date +%s) - started )) s)"
  else
    echo "bench-smoke: $module FAILED ($(( $(date +%s) - started )) s); its last output:" >&2
    tail -40 "$log" >&2
    failed+=("$module")
  fi
  rm -f "$log"
done
if (( ${#failed[@]} )); then
  echo "bench-smoke: failed: ${failed[*]}" >&2
  exit 1
fi
