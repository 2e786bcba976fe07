"""Run a workload on the host itself: the bare-metal baseline of a run.

fio reads and writes a raw file in the run's scratch directory with O_DIRECT, so the host page
cache does not flatter it -- the same file type and cache mode the guests' disks use.
"""

from __future__ import annotations

from vbench.command import CommandResult, run


def run_on_host(argv: list[str], *, timeout_s: float) -> CommandResult:
    """Run `argv` (a list, never a shell string); any failure raises CommandFailed."""
    return run(argv, timeout_s=timeout_s)
