#!/usr/bin/env bash
# The main job on the embedded default: install, then replay the default fleet's routing over the
# California heat wave of 5-8 September 2022 on the real EIA-930 trace.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
gs=.venv/bin/gridshift
$gs regions --at 2022-09-07T01:00:00Z
echo
$gs route explain --origin us-west-1 --class tolerant --budget-ms 150 --at 2022-09-07T01:00:00Z
echo
$gs route replay --origin us-west-1 --class tolerant --budget-ms 150 --step-hours 3
