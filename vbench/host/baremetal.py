"""Run a workload on the host itself: the bare-metal baseline of a run.

fio reads and writes a raw file in the run's scratch directory with O_DIRECT, so the host page
cache does not flatter it -- the same file type and cache mode the guests' disks use.
"""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass

from vbench.errors import CommandFailed, HostError


@dataclass(frozen=True)
class HostResult:
    stdout: bytes
    stderr: bytes
    duration_s: float


def run_on_host(argv: list[str], *, timeout_s: float) -> HostResult:
    """Run `argv` (a list, never a shell string); a non-zero exit raises CommandFailed."""
    start = time.monotonic()
    try:
        proc = subprocess.run(argv, capture_output=True, timeout=timeout_s, check=False)
    except FileNotFoundError:
        raise HostError(
            f"{argv[0]} is not installed on this host (install the `fio` package)"
        ) from None
    except subprocess.TimeoutExpired:
        raise HostError(
            f"`{' '.join(argv)}` did not finish within {timeout_s:g} s on the host"
        ) from None
    if proc.returncode != 0:
        raise CommandFailed(argv, proc.returncode, proc.stderr.decode(errors="replace")[-2000:])
    return HostResult(proc.stdout, proc.stderr, time.monotonic() - start)
