#!/usr/bin/env python3
"""What do the samplers cost?  Two measurements (issue 7, "Overhead"):

1. **CPU**: every sampler (libvirt domain stats of a running microguest, host /proc + disk + NIC,
   the guest's agent) at 1 Hz for `--seconds`; then libvirt alone, the guest alone, and all with
   the guest sampler at a lower rate (`--guest-every`).  The cost in this process is the sampler
   thread's CPU time (`time.thread_time`), per sampler and in all; the goal is <= 1 % of one host
   core.  Work the samplers cause elsewhere is shown beside it, against a window without
   sampling (noisy on a shared machine): libvirtd's CPU time, the CPU time of the idle guest's
   QEMU process (QMP queries and the agent's answers: inside a case's host.qemu_cpu_* figures)
   and the guest's busy time (its own cpustats).
2. **fio**: the same fio job on a file on the host (randread 4k, O_DIRECT, libaio) `--pairs`
   times with the samplers on and off, the order alternating per pair (on-off, off-on, ...) so
   drift cancels.  The samplers' effect is within run-to-run noise when the 95 % confidence
   interval of the paired IOPS difference contains 0 (paired t, SciPy).

The guest runs under TCG here (KVM guests hang on these machines).

    python benchmarks/sampler_overhead.py --seconds 30 --pairs 6 --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from scipy import stats as st

from vbench.command import run
from vbench.domxml import build_domain_xml
from vbench.guest.agent import GuestAgent, open_agent
from vbench.guest.microguest import build_microguest
from vbench.samplers import Sampler, Sampling, Value
from vbench.samplers.guest import GuestSampler
from vbench.samplers.libvirt_stats import LibvirtSampler
from vbench.samplers.sets import guest_samplers
from vbench.series import SERIES, SeriesWriter
from vbench.virt.connection import open_connection


class Timed:
    """A sampler wrapped to add up the CPU time its own reads take (in the sampler thread)."""

    def __init__(self, inner: Sampler) -> None:
        self.inner = inner
        self.name = inner.name
        self.every = inner.every
        self.cpu_s = 0.0
        self.wall_s = 0.0
        self.calls = 0

    def sample(self) -> list[Value]:
        c, w = time.thread_time(), time.monotonic()
        try:
            return self.inner.sample()
        finally:
            self.cpu_s += time.thread_time() - c
            self.wall_s += time.monotonic() - w
            self.calls += 1


def libvirtd_cpu_s() -> float:
    """User + system CPU seconds of libvirtd so far (0 when it cannot be found)."""
    try:
        pid = Path("/run/libvirtd.pid").read_text().strip()
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def qemu_cpu_s(dom: Any) -> float:
    """CPU seconds of the guest's whole QEMU process so far (libvirt's cpu_time)."""
    return float(dom.getCPUStats(True)[0]["cpu_time"]) / 1e9


def guest_busy_ms(agent: GuestAgent) -> float:
    reply = agent.command("guest-get-cpustats")
    keys = ("user", "nice", "system", "irq", "softirq", "steal")
    return float(sum(rec.get(k, 0) for rec in reply for k in keys))


def fio_iops(path: Path, runtime_s: int) -> float:
    argv = [
        "fio",
        "--name=overhead",
        f"--filename={path}",
        "--rw=randread",
        "--bs=4k",
        "--iodepth=16",
        "--ioengine=libaio",
        "--direct=1",
        "--time_based",
        f"--runtime={runtime_s}",
        "--output-format=json",
    ]
    out = run(argv, timeout_s=runtime_s + 60).stdout
    return float(json.loads(out)["jobs"][0]["read"]["iops"])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=30.0, help="sampling window of part 1")
    ap.add_argument("--pairs", type=int, default=6, help="fio runs with samplers on and off")
    ap.add_argument("--fio-runtime", type=int, default=5, help="seconds per fio run")
    ap.add_argument("--interval", type=float, default=1.0, help="sampling interval (s)")
    ap.add_argument("--guest-every", type=int, default=5, help="guest sampler's lower rate")
    ap.add_argument("-c", "--connect", default=None, help="libvirt URI")
    ap.add_argument("--json", type=Path, default=None, help="write the figures here too")
    args = ap.parse_args()

    guest = build_microguest()
    conn = open_connection(args.connect)
    workdir = Path(tempfile.mkdtemp(prefix="vbench-bench-samplers-", dir="/var/tmp"))
    workdir.chmod(0o755)
    result: dict[str, Any] = {"interval_s": args.interval}
    dom = None
    try:
        spec = guest.domain_spec(
            f"vbench-dev-bench-samplers-{os.getpid()}", workdir, run_id="bench", case="samplers"
        )
        dom = conn.createXML(build_domain_xml(spec), 0)
        agent = open_agent(dom, spec.agent)
        agent.wait_ready(60)
        agent.test_disk()  # the guest has finished probing: its idle CPU is steady from here

        def samplers(which: str = "all", guest_every: int = 1) -> list[Timed]:
            made: list[Sampler]
            if which == "all":  # what a guest case runs with
                made = guest_samplers(
                    conn, agent, workdir, net_ifaces=["lo"], guest_every=guest_every
                )
            elif which == "libvirt":
                made = [LibvirtSampler.for_domain(conn, dom)]
            else:
                made = [GuestSampler(agent, every=guest_every)]
            return [Timed(m) for m in made]

        def window(timed: list[Timed] | None) -> dict[str, Any]:
            """CPU of this thread, libvirtd, the guest's QEMU and the guest over one window."""
            lv0, g0, q0 = libvirtd_cpu_s(), guest_busy_ms(agent), qemu_cpu_s(dom)
            t0 = time.monotonic()
            out: dict[str, Any] = {}
            if timed is None:
                time.sleep(args.seconds)
            else:
                with SeriesWriter(workdir / SERIES, "bench") as writer:
                    sampling = Sampling(timed, writer.sink("cpu"), interval_s=args.interval)
                    with sampling:
                        time.sleep(args.seconds)
                report = sampling.report
                out |= {
                    "ticks": report.ticks,
                    "readings": report.readings,
                    "errors": report.errors,
                    "thread_pct_of_core": round(100 * report.cpu_share, 3),
                    "per_sampler": {
                        t.name: {
                            "calls": t.calls,
                            "cpu_ms_per_call": round(1e3 * t.cpu_s / max(1, t.calls), 3),
                            "wall_ms_per_call": round(1e3 * t.wall_s / max(1, t.calls), 2),
                        }
                        for t in timed
                    },
                }
            wall = time.monotonic() - t0
            out |= {
                "window_s": round(wall, 2),
                "libvirtd_pct_of_core": round(100 * (libvirtd_cpu_s() - lv0) / wall, 3),
                "guest_qemu_pct_of_core": round(100 * (qemu_cpu_s(dom) - q0) / wall, 3),
                "guest_busy_pct": round(100 * (guest_busy_ms(agent) - g0) / 1e3 / wall, 3),
            }
            print(json.dumps(out), flush=True)
            return out

        # -- 1. CPU ---------------------------------------------------------------------------
        cpu = {
            "idle": window(None),
            "all": window(samplers()),
            "libvirt_alone": window(samplers("libvirt")),
            "guest_alone": window(samplers("guest")),
            f"all_guest_every_{args.guest_every}": window(samplers(guest_every=args.guest_every)),
        }
        result["cpu"] = cpu

        # -- 2. fio with samplers on and off -------------------------------------------------
        if shutil.which("fio") is None:
            print("fio is not installed: part 2 skipped", file=sys.stderr)
            return 1
        target = workdir / "fio.raw"
        chunk = os.urandom(1 << 20)
        with target.open("wb") as fh:
            for _ in range(256):
                fh.write(chunk)
            fh.flush()
            os.fsync(fh.fileno())
        on: list[float] = []
        off: list[float] = []
        for i in range(args.pairs):
            for sampled in (True, False) if i % 2 == 0 else (False, True):
                if sampled:
                    with (
                        SeriesWriter(workdir / SERIES, "bench") as writer,
                        Sampling(samplers(), writer.sink(f"fio{i}"), interval_s=args.interval),
                    ):
                        on.append(fio_iops(target, args.fio_runtime))
                else:
                    off.append(fio_iops(target, args.fio_runtime))
                arm = "on " if sampled else "off"
                print(f"pair {i}: {arm} {(on if sampled else off)[-1]:.0f} IOPS", flush=True)
        diffs = [a - b for a, b in zip(on, off, strict=True)]
        mean_d = statistics.mean(diffs)
        half = (
            st.t.ppf(0.975, len(diffs) - 1) * statistics.stdev(diffs) / len(diffs) ** 0.5
            if len(diffs) > 1
            else float("inf")
        )
        fio = {
            "runs_per_arm": args.pairs,
            "iops_on": [round(x) for x in on],
            "iops_off": [round(x) for x in off],
            "median_on": round(statistics.median(on)),
            "median_off": round(statistics.median(off)),
            "cv_off_pct": round(100 * statistics.stdev(off) / statistics.mean(off), 2)
            if len(off) > 1
            else None,
            "mean_paired_diff": round(mean_d, 1),
            "mean_paired_diff_pct": round(100 * mean_d / statistics.mean(off), 2),
            "ci95_paired_diff": [round(mean_d - half, 1), round(mean_d + half, 1)],
            "within_noise": bool(mean_d - half <= 0 <= mean_d + half),
        }
        result["fio"] = fio
        print(json.dumps({"fio": fio}, indent=2))
    finally:
        if dom is not None:
            dom.destroy()
        conn.close()
        shutil.rmtree(workdir, ignore_errors=True)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
