"""How long `vbench check` takes next to `virt-host-validate qemu` (the reference it must not lag).

    python benchmarks/check_speed.py [-n RUNS] [-c URI]

Times, N runs each, without --probe:
  * vbench in-process:  run_checks() + the JSON document (what `vbench run` pays);
  * vbench command:     `vbench check --json` as a fresh process (interpreter start and imports);
  * virt-host-validate qemu as a fresh process.
Prints min / median / max in milliseconds.  The target: the vbench command within 1 s.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

from vbench.checkdoc import CheckDocument
from vbench.host.checks import run_checks


def timed(fn: Callable[[], object], runs: int) -> list[float]:
    out: list[float] = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1000)
    return out


def command(argv: list[str]) -> Callable[[], object]:
    def run() -> object:
        return subprocess.run(argv, capture_output=True, check=False)

    return run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--runs", type=int, default=10)
    parser.add_argument("-c", "--connect", default=None, help="libvirt URI for vbench")
    args = parser.parse_args(argv)

    def in_process() -> object:
        return CheckDocument.build(run_checks(uri=args.connect)).model_dump_json()

    vb_cmd = [sys.executable, "-c", "from vbench.cli import main; main()", "check", "--json"]
    if args.connect:
        vb_cmd += ["-c", args.connect]
    rows: list[tuple[str, list[float]]] = [
        ("vbench in-process (run_checks + JSON)", timed(in_process, args.runs)),
        ("vbench check --json (command)", timed(command(vb_cmd), args.runs)),
    ]
    vhv = shutil.which("virt-host-validate")
    if vhv:
        rows.append(("virt-host-validate qemu (command)", timed(command([vhv, "qemu"]), args.runs)))
    else:
        print("virt-host-validate not installed: not compared", file=sys.stderr)
    checks = len(run_checks(uri=args.connect).checks)
    print(f"{args.runs} runs each; vbench makes {checks} checks")
    print(f"{'what':42} {'min ms':>8} {'median':>8} {'max ms':>8}")
    for name, ms in rows:
        print(f"{name:42} {min(ms):8.1f} {statistics.median(ms):8.1f} {max(ms):8.1f}")
    worst = max(rows[1][1])
    print(f"vbench command worst run: {worst:.0f} ms ({'within' if worst <= 1000 else 'OVER'} 1 s)")
    return 0 if worst <= 1000 else 1


if __name__ == "__main__":
    raise SystemExit(main())
