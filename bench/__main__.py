"""``python -m bench``: run every scenario, print the table, write ``bench/results.json``."""

from __future__ import annotations

from bench.harness import main

raise SystemExit(main())
