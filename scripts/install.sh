#!/usr/bin/env bash
# Installs gridshift and its dev tools into ./.venv from nothing; a no-op when pyproject.toml is unchanged.
set -euo pipefail
cd "$(dirname "$0")/.."

python_bin="${PYTHON:-}"
if [[ -z "$python_bin" ]]; then
  for candidate in python3.11 python3; do
    if command -v "$candidate" >/dev/null && "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
      python_bin="$candidate"; break
    fi
  done
fi
[[ -n "$python_bin" ]] || { echo "install: Python 3.11 is required (set PYTHON=...)" >&2; exit 1; }

[[ -x .venv/bin/python ]] || "$python_bin" -m venv .venv

# The console's browser tests drive Debian's Chromium through Playwright (never a downloaded browser): install it
# when it is missing and apt-get can, quietly; without it those tests skip and say why.
if [[ ! -x /usr/bin/chromium ]] && command -v apt-get >/dev/null; then
  echo "install: installing Debian's chromium for the console's browser tests" >&2
  apt_log="$(mktemp)"
  if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } >"$apt_log" 2>&1; then
    tail -n 20 "$apt_log" >&2
    # Not fatal: everything else installs and runs; the browser tests skip and say why.
    echo "install: apt-get install chromium failed (run as root, or install it yourself); browser tests will skip" >&2
  fi
  rm -f "$apt_log"
fi
stamp=.venv/.gridshift-install-stamp
want="$(cat pyproject.toml constraints.txt | sha256sum | cut -d' ' -f1)"
if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
  exit 0
fi
echo "install: installing gridshift into .venv (first run takes a few minutes)" >&2
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
pip_install() {
  # Keep the log quiet on success; on failure show it without the local index's location noise.
  if ! .venv/bin/python -m pip install --quiet --disable-pip-version-check "$@" >"$log" 2>&1; then
    grep -v "^WARNING: Location" "$log" >&2
    echo "install: pip install $* failed" >&2
    exit 1
  fi
}
pip_install --upgrade pip
# torch first, pinned by constraints.txt: anything that depends on torch then finds it satisfied instead of pulling
# CUDA builds. Then gridshift with the model stack, the load-test tools and the dev tools.
pip_install -c constraints.txt torch
pip_install -c constraints.txt -e ".[model,loadtest,dev]"
echo "$want" > "$stamp"
