"""`vbench report` (to be written)."""

from __future__ import annotations

from vbench.cli import app  # noqa: F401
