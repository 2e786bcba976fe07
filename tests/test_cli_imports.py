"""`vbench check` must start fast (≤ 1 s, benchmarks/check_speed.py): loading the CLI must not load
the report stack, which alone takes ~0.6 s.  A structural guard; the timing is the benchmark's."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("pandas", "matplotlib", "weasyprint", "jinja2")


def test_loading_the_cli_does_not_load_the_report_stack() -> None:
    probe = f"import sys, vbench.cli; print(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.split() == [], f"imported at CLI load: {done.stdout.strip()}"
