#!/usr/bin/env python3
"""How fast does the microguest become usable?

Two measurements, each repeated N times (one guest at a time):

* libvirt: `createXML` of the vbench domain (vbench.domxml) -> first answer of the guest agent;
* plain QEMU: `qemu-system-x86_64 -accel tcg` booting the same kernel + initramfs -> its first
  userspace console line ("vbench: init started"), and the line /init prints once every driver
  is probed ("vbench: microguest ready").

The accelerator is TCG here (KVM guests hang on these machines); the figures are TCG figures.

    python benchmarks/boot_to_agent.py -n 5 --disk virtio --nic none --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import selectors
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from vbench.domxml import build_domain_xml
from vbench.guest.agent import open_agent
from vbench.guest.microguest import Microguest, build_microguest
from vbench.virt.connection import open_connection

FIRST_LINE = b"vbench: init started"
READY_LINE = b"vbench: microguest ready"


def libvirt_boot(
    guest: Microguest, cmdline: str, disk_bus: str | None, nic: str | None, uri: str | None
) -> float:
    """Seconds from createXML to the first guest-ping answer."""
    conn = open_connection(uri)
    workdir = Path(tempfile.mkdtemp(prefix="vbench-bench-", dir="/var/tmp"))
    workdir.chmod(0o755)
    spec = guest.domain_spec(
        f"vbench-dev-guest-bench-{os.getpid()}",
        workdir,
        run_id="bench",
        case="boot",
        disk_bus=disk_bus,
        nic_model=nic,
        cmdline=cmdline,
    )
    try:
        start = time.monotonic()
        dom = conn.createXML(build_domain_xml(spec), 0)
        try:
            with open_agent(dom, spec.agent) as agent:
                agent.wait_ready(60)
            return time.monotonic() - start
        finally:
            dom.destroy()
    finally:
        conn.close()
        for f in workdir.iterdir():
            f.unlink()
        workdir.rmdir()


def plain_qemu_boot(guest: Microguest, cmdline: str) -> tuple[float, float]:
    """Seconds from exec of QEMU to the first userspace line and to the ready line."""
    argv = [
        "qemu-system-x86_64",
        "-accel",
        "tcg",
        "-m",
        "512",
        "-smp",
        "1",
        "-nodefaults",
        "-no-user-config",
        "-display",
        "none",
        "-serial",
        "stdio",
        "-no-reboot",
        "-kernel",
        str(guest.kernel),
        "-initrd",
        str(guest.initrd),
        "-append",
        cmdline,
    ]
    start = time.monotonic()
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE)
    assert proc.stdout is not None
    first = ready = float("nan")
    buf = b""
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    try:
        while time.monotonic() - start < 60:
            if not sel.select(timeout=1):
                continue
            chunk = os.read(proc.stdout.fileno(), 65536)
            if not chunk:
                break
            buf += chunk
            now = time.monotonic() - start
            if first != first and FIRST_LINE in buf:  # NaN check: not seen yet
                first = now
            if READY_LINE in buf:
                ready = now
                break
    finally:
        proc.kill()
        proc.wait()
    return first, ready


def summary(values: list[float]) -> dict[str, float]:
    ok = [v for v in values if v == v]
    if not ok:
        return {"median": float("nan"), "min": float("nan"), "max": float("nan")}
    return {"median": statistics.median(ok), "min": min(ok), "max": max(ok)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-n", "--repetitions", type=int, default=3)
    ap.add_argument("--disk", choices=["virtio", "ide", "sata", "scsi", "none"], default="virtio")
    ap.add_argument("--nic", choices=["none", "virtio"], default="none")
    ap.add_argument("--uri", default=None, help="libvirt URI (default qemu:///system)")
    ap.add_argument("--cmdline", default=None, help="replace the microguest's kernel cmdline")
    ap.add_argument("--cmdline-extra", default="", help="append to the kernel cmdline")
    ap.add_argument("--skip-plain", action="store_true", help="only measure through libvirt")
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = ap.parse_args()

    t0 = time.monotonic()
    guest = build_microguest()
    build_s = time.monotonic() - t0
    cmdline = (args.cmdline or guest.cmdline) + (
        " " + args.cmdline_extra if args.cmdline_extra else ""
    )
    disk = None if args.disk == "none" else args.disk
    nic = None if args.nic == "none" else args.nic

    agent_s: list[float] = []
    first_s: list[float] = []
    ready_s: list[float] = []
    for rep in range(args.repetitions):
        agent_s.append(libvirt_boot(guest, cmdline, disk, nic, args.uri))
        if not args.skip_plain:
            first, ready = plain_qemu_boot(guest, cmdline)
            first_s.append(first)
            ready_s.append(ready)
        print(f"rep {rep}: agent {agent_s[-1]:.2f} s", file=sys.stderr)

    rows = {
        "libvirt start -> agent answers": summary(agent_s),
    }
    if first_s:
        rows["plain QEMU -> first userspace line"] = summary(first_s)
        rows["plain QEMU -> drivers probed (ready)"] = summary(ready_s)

    kvm = Path("/dev/kvm").exists()
    print(f"accelerator: TCG (domain type 'qemu'); /dev/kvm {'present' if kvm else 'absent'},")
    print("  not used: KVM guests hang on these machines. These are TCG numbers.")
    print(f"microguest: initrd {guest.size_bytes / 2**20:.1f} MiB, kernel {guest.kernel_release}")
    print(f"  (build/cache lookup {build_s:.2f} s), disk={args.disk}, nic={args.nic}")
    print(f"cmdline: {cmdline}")
    print(f"{'measurement':40} {'median':>8} {'min':>8} {'max':>8}   (s, n={args.repetitions})")
    for label, s in rows.items():
        print(f"{label:40} {s['median']:8.2f} {s['min']:8.2f} {s['max']:8.2f}")

    if args.json:
        out: dict[str, Any] = {
            "accelerator": "tcg",
            "host": platform.node(),
            "cpus": os.cpu_count(),
            "repetitions": args.repetitions,
            "disk": args.disk,
            "nic": args.nic,
            "cmdline": cmdline,
            "initrd_bytes": guest.size_bytes,
            "kernel_release": guest.kernel_release,
            "digest": guest.digest,
            "raw": {"agent_s": agent_s, "first_line_s": first_s, "ready_s": ready_s},
            "summary": rows,
        }
        args.json.write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
