"""How long `vbench check` takes next to `virt-host-validate qemu` (the reference it must not lag).

    python benchmarks/check_speed.py [-n RUNS] [-c URI]

Times, RUNS runs each (default 20), without --probe, each command as a fresh process:
  * interpreter start:     `python -c pass` (the floor every Python command pays);
  * vbench check --json:   the JSON document (interpreter start, imports, checks);
  * vbench check:          the tables (the same, plus rich to draw them);
  * virt-host-validate qemu;
and, in this process, run_checks() + the JSON document (what `vbench run` pays per check).
The commands run in turn (A B C D A B C D ...), so a change in the machine's load touches them
alike.  For each: CPU (user + system seconds of the process and its children, from wait4) and wall
(monotonic clock around start to exit), min and median, in milliseconds, with the load average.
On a machine busier than it has cores the wall times include waiting for a CPU: read the CPU.

The commands run with bytecode caching on (in a temporary PYTHONPYCACHEPREFIX, after one warm-up
run), as an installed vbench does: with PYTHONDONTWRITEBYTECODE set, every start would compile
vbench from source (~100 ms) and measure the checkout, not the tool.

Goal (issue 7): both vbench commands' median wall time within 250 ms; exit 1 when one is over.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from vbench.checkdata import CheckOutcome
from vbench.host.checks import run_checks

GOAL_MS = 250.0
Run = Callable[[], tuple[float, float]]  # one run: (cpu ms, wall ms)


@dataclass
class Series:
    name: str
    run: Run
    goal: bool = False  # held to GOAL_MS
    cpu: list[float] = field(default_factory=list)
    wall: list[float] = field(default_factory=list)


def command(argv: list[str], env: dict[str, str] | None = None) -> Run:
    def run() -> tuple[float, float]:
        t0 = time.perf_counter()
        proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _pid, _status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = 0  # reaped by wait4: keep Popen from waiting again
        return (usage.ru_utime + usage.ru_stime) * 1000, wall * 1000

    run()  # warm-up: fills the bytecode cache, loads the files into the page cache
    return run


def in_process(uri: str | None) -> Run:
    def run() -> tuple[float, float]:
        r0 = resource.getrusage(resource.RUSAGE_SELF)
        t0 = time.perf_counter()
        CheckOutcome.of(run_checks(uri=uri)).json()
        wall = time.perf_counter() - t0
        r1 = resource.getrusage(resource.RUSAGE_SELF)
        cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
        return cpu * 1000, wall * 1000

    run()
    return run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--runs", type=int, default=20)
    parser.add_argument("-c", "--connect", default=None, help="libvirt URI for vbench")
    args = parser.parse_args(argv)

    vb = [sys.executable, "-c", "from vbench.cli import main; main()", "check"]
    if args.connect:
        vb += ["-c", args.connect]
    pycache = tempfile.mkdtemp(prefix="vbench-pycache-")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = pycache
    series = [
        Series("interpreter start (python -c pass)", command([sys.executable, "-c", "pass"])),
        Series("vbench check --json", command([*vb, "--json"], env), goal=True),
        Series("vbench check (tables)", command(vb, {**env, "COLUMNS": "120"}), goal=True),
    ]
    vhv = shutil.which("virt-host-validate")
    if vhv:
        series.append(Series("virt-host-validate qemu", command([vhv, "qemu"])))
    else:
        print("virt-host-validate not installed: not compared", file=sys.stderr)
    series.append(Series("in-process run_checks + JSON", in_process(args.connect)))

    load_before = os.getloadavg()
    for _ in range(args.runs):
        for s in series:
            cpu, wall = s.run()
            s.cpu.append(cpu)
            s.wall.append(wall)
    load_after = os.getloadavg()
    shutil.rmtree(pycache, ignore_errors=True)

    checks = len(run_checks(uri=args.connect).checks)
    cores = os.cpu_count() or 1
    print(
        f"{args.runs} runs each, in turn; vbench makes {checks} checks; {cores} cores; "
        f"load average {load_before[0]:.1f} before, {load_after[0]:.1f} after"
    )
    print(f"{'ms':38} {'cpu min':>8} {'cpu med':>8} {'wall min':>9} {'wall med':>9}")
    for s in series:
        print(
            f"{s.name:38} {min(s.cpu):8.1f} {statistics.median(s.cpu):8.1f} "
            f"{min(s.wall):9.1f} {statistics.median(s.wall):9.1f}"
        )
    ok = True
    for s in series:
        if s.goal:
            wall = statistics.median(s.wall)
            within = wall <= GOAL_MS
            ok = ok and within
            print(
                f"goal: {s.name} median wall {wall:.0f} ms, {'within' if within else 'OVER'} "
                f"{GOAL_MS:.0f} ms (median cpu {statistics.median(s.cpu):.0f} ms)"
            )
    if max(load_before[0], load_after[0]) >= cores:
        print(f"note: load >= {cores} cores: wall times include waiting for a CPU; read the CPU")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
