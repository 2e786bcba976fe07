#!/usr/bin/env python3
"""Where a run's time went: workload commands vs everything else, from its manifest.

The runner records each case's `workload_s` (the workload's command alone) and the run's
`timing` (wall time from the run directory's creation to its end, workload time, and the overhead
ratio = time not in workloads / wall time).  This prints that breakdown, with the guests' boot
times (boot to agent), the rest (domain start and teardown, disk fill, peer servers, samplers,
writing results) and the load average the run saw at its end, for one or more run directories:

    python benchmarks/run_overhead.py reports/<run-id> [...]
    python benchmarks/run_overhead.py --run scenarios/quick.toml   # run it, then break it down
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from vbench.results import RunDir


def breakdown(run_path: Path) -> str:
    manifest = RunDir.open(run_path).read_manifest()
    timing = manifest.timing
    if timing is None:
        return f"{run_path}: no timing in the manifest (a run of an older vbench)"
    boots = [t.boot_to_agent_s for t in manifest.trials if t.boot_to_agent_s is not None]
    per_kind: dict[str, float] = {}
    for case in manifest.cases:
        per_kind[case.workload] = per_kind.get(case.workload, 0.0) + (case.workload_s or 0.0)
    rest = timing.wall_s - timing.workload_s - sum(boots)
    accel = manifest.accelerator.name if manifest.accelerator else "?"
    lines = [
        f"{manifest.run_id} ({manifest.status}, {len(manifest.cases)} cases, "
        f"{len(manifest.trials)} trials, accelerator {accel})",
        f"  wall time            {timing.wall_s:8.1f} s",
        f"  in workloads         {timing.workload_s:8.1f} s  "
        + ", ".join(f"{k} {v:.1f} s" for k, v in per_kind.items()),
        f"  boot to agent        {sum(boots):8.1f} s  ({len(boots)} guests)",
        f"  everything else      {rest:8.1f} s  (domain start/teardown, disk fill, servers, "
        "samplers, results)",
        f"  overhead ratio       {100 * timing.overhead_ratio:8.1f} %  (time not in workloads)",
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="*", type=Path, help="run directories")
    parser.add_argument("--run", type=Path, help="run this scenario first (vbench run --no-report)")
    parser.add_argument("-o", "--output", type=Path, default=Path("reports"))
    args = parser.parse_args()
    runs = list(args.runs)
    if args.run is not None:
        before = set(args.output.glob("*")) if args.output.is_dir() else set()
        started = time.monotonic()
        proc = subprocess.run(
            [sys.executable, "-m", "vbench", "run", str(args.run), "-o", str(args.output)],
            check=False,
        )
        print(
            f"vbench run (with its report): {time.monotonic() - started:.1f} s wall, "
            f"exit {proc.returncode}, load average {os.getloadavg()}"
        )
        runs += sorted(set(args.output.glob("*")) - before)
    for run in runs:
        print(breakdown(run))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
