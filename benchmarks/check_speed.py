"""How long `vbench check` takes next to `virt-host-validate qemu` (the reference it must not lag).

    python benchmarks/check_speed.py [-n RUNS] [-c URI]

Times, N runs each, without --probe:
  * interpreter start:  `python -c pass` (the floor every command pays);
  * vbench in-process:  run_checks() + the JSON document (what `vbench run` pays);
  * vbench command:     `vbench check --json` as a fresh process (interpreter start and imports);
  * virt-host-validate qemu as a fresh process.
The commands run with bytecode caching on (in a temporary PYTHONPYCACHEPREFIX, after one warm-up
run), as an installed vbench does: with PYTHONDONTWRITEBYTECODE set, every start would compile
vbench from source (~100 ms) and measure the checkout, not the tool.
Prints min / median / max in milliseconds.  The target (issue 7): the command's median within
250 ms; exit 1 when it is over.  On a busy machine compare whole processes pairwise instead, e.g.
`farm-bench -n 20 --vs 'virt-host-validate qemu' -- vbench check --json`.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable

from vbench.checkdoc import CheckDocument
from vbench.host.checks import run_checks

TARGET_MS = 250


def timed(fn: Callable[[], object], runs: int) -> list[float]:
    out: list[float] = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1000)
    return out


def command(argv: list[str], env: dict[str, str] | None = None) -> Callable[[], object]:
    def run() -> object:
        return subprocess.run(argv, capture_output=True, check=False, env=env)

    run()  # warm-up: fills the bytecode cache, loads the files into the page cache
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
    pycache = tempfile.mkdtemp(prefix="vbench-pycache-")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = pycache
    rows: list[tuple[str, list[float]]] = [
        (
            "interpreter start (python -c pass)",
            timed(command([sys.executable, "-c", "pass"]), args.runs),
        ),
        ("vbench in-process (run_checks + JSON)", timed(in_process, args.runs)),
        ("vbench check --json (command)", timed(command(vb_cmd, env), args.runs)),
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
    shutil.rmtree(pycache, ignore_errors=True)
    median = statistics.median(rows[2][1])
    ok = median <= TARGET_MS
    print(f"vbench command median: {median:.0f} ms ({'within' if ok else 'OVER'} {TARGET_MS} ms)")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
