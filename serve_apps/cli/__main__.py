"""`python -m serve_apps.cli ...`: the same `gridshift` command, run as a module."""

from __future__ import annotations

import sys

from serve_apps.cli import main

sys.exit(main())
