"""`python -m queueworker.cli ...`: the `qw` command without its console script (local mode spawns it so)."""

from __future__ import annotations

import sys

from queueworker.cli import main

sys.exit(main())
