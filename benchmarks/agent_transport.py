#!/usr/bin/env python3
"""What does each guest-agent transport cost per command?

One microguest per transport (one at a time, TCG here): libvirt's agent API on libvirt's own
channel, and vbench's socket transport on its own virtio channel (`org.vbench.agent.0`, what a
Xen guest gets as a PV console channel).  After the agent answers, N rounds of: guest-ping,
guest-get-cpustats + guest-get-diskstats (one guest-sampler tick) and a guest-exec of `true`
(guest-exec + guest-exec-status polls).  Prints the median and p90 wall time of each.

    python benchmarks/agent_transport.py -n 30 --json out.json
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
from collections.abc import Callable
from pathlib import Path

from vbench.domxml import VBENCH_AGENT_NAME, AgentChannel, build_domain_xml
from vbench.guest.agent import GuestAgent, open_agent
from vbench.guest.microguest import build_microguest
from vbench.virt.connection import open_connection
from vbench.virt.guests import running_guest


def _timed(n: int, call: Callable[[], object]) -> dict[str, float]:
    times = []
    for _ in range(n):
        t = time.perf_counter()
        call()
        times.append(1000 * (time.perf_counter() - t))
    times.sort()
    return {"median_ms": statistics.median(times), "p90_ms": times[int(0.9 * (n - 1))]}


def measure(transport: str, n: int, uri: str | None) -> dict[str, object]:
    guest = build_microguest()
    conn = open_connection(uri)
    workdir = Path(tempfile.mkdtemp(prefix="vbench-bench-", dir="/var/tmp"))
    workdir.chmod(0o755)
    channel = AgentChannel()
    if transport == "socket":
        channel = AgentChannel(name=VBENCH_AGENT_NAME, socket=str(workdir / "agent.sock"))
    spec = guest.domain_spec(
        f"vbench-dev-guest-bench-agent-{transport}-{os.getpid()}",
        workdir,
        run_id="bench",
        case="agent",
        disk_bus=None,
        agent=channel,
    )
    try:
        with running_guest(conn, build_domain_xml(spec)) as dom, open_agent(dom, channel) as a:
            booted = a.wait_ready(180)
            a.wait_init(60)

            def tick(agent: GuestAgent = a) -> None:
                agent.command("guest-get-cpustats")
                agent.command("guest-get-diskstats")

            return {
                "transport": transport,
                "boot_to_agent_s": round(booted, 2),
                "ping": _timed(n, lambda: a.command("guest-ping")),
                "sampler_tick": _timed(n, tick),
                "exec_true": _timed(n, lambda: a.exec(["true"], timeout_s=30)),
            }
    finally:
        conn.close()
        shutil.rmtree(workdir, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=30, help="rounds per command (default 30)")
    parser.add_argument("--uri", default=None, help="libvirt URI (default qemu:///system)")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()
    results = [measure(t, args.n, args.uri) for t in ("libvirt", "socket")]
    for r in results:
        print(json.dumps(r))
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
