#!/usr/bin/env bash
# The main job on the embedded default: install, then `gridshift up` — a local Ray cluster serving the
# default four-region fleet behind the gateway at http://127.0.0.1:8000, replaying the real EIA-930 trace
# of the California heat wave (5-8 September 2022). Ctrl-C stops it. Extra arguments go to `gridshift up`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
exec .venv/bin/gridshift up "$@"
