"""What a case cost the host: CPU time of the guest's QEMU process and host-wide CPU use.

Sampled before and after each workload case:
  - libvirt domain stats (`virDomain.getCPUStats(True)`): cpu_time of the whole QEMU process,
    i.e. the vCPUs *and* the device emulation / virtio back-ends: the cost of the I/O mode;
  - the guest's own block counters (`virDomain.blockStats`): requests QEMU served;
  - /proc/stat (behind an injectable root): host-wide busy share while the case ran.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from pathlib import Path

import libvirt


@dataclass(frozen=True)
class CostSnapshot:
    wall_s: float
    qemu_cpu_ns: int
    rd_reqs: int
    wr_reqs: int
    host_busy_jiffies: int
    host_total_jiffies: int


def read_proc_stat(proc_root: Path = Path("/proc")) -> tuple[int, int]:
    """(busy, total) jiffies summed over all CPUs; (0, 0) when /proc/stat is unreadable."""
    try:
        first = (proc_root / "stat").read_text().splitlines()[0].split()
    except (OSError, IndexError):
        return 0, 0
    if first[0] != "cpu":
        return 0, 0
    values = [int(v) for v in first[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    total = sum(values[:8])  # guest time is already counted in user/nice
    return total - idle, total


def snapshot(
    dom: libvirt.virDomain, disk_target: str | None, proc_root: Path = Path("/proc")
) -> CostSnapshot:
    try:
        cpu = int(dom.getCPUStats(True)[0].get("cpu_time", 0))
    except (libvirt.libvirtError, IndexError):
        cpu = 0
    rd = wr = 0
    if disk_target:
        with contextlib.suppress(libvirt.libvirtError):
            rd, _rd_bytes, wr, _wr_bytes, _errs = dom.blockStats(disk_target)
    busy, total = read_proc_stat(proc_root)
    return CostSnapshot(time.monotonic(), cpu, rd, wr, busy, total)


def host_snapshot(proc_root: Path = Path("/proc")) -> CostSnapshot:
    """Host-wide CPU only: for work that runs on the host itself (the bare-metal baseline)."""
    busy, total = read_proc_stat(proc_root)
    return CostSnapshot(time.monotonic(), 0, 0, 0, busy, total)


def cost_metrics(before: CostSnapshot, after: CostSnapshot) -> list[tuple[str, float, str]]:
    """(metric, value, unit) for what happened between two snapshots."""
    wall = after.wall_s - before.wall_s
    out: list[tuple[str, float, str]] = []
    if wall <= 0:
        return out
    cpu_s = (after.qemu_cpu_ns - before.qemu_cpu_ns) / 1e9
    reqs = (after.rd_reqs - before.rd_reqs) + (after.wr_reqs - before.wr_reqs)
    if cpu_s > 0:
        out.append(("host.qemu_cpu_util", 100.0 * cpu_s / wall, "%"))
        if reqs > 0:
            out.append(("host.qemu_cpu_per_io", 1e6 * cpu_s / reqs, "us"))
    if reqs > 0:
        out.append(("guest.disk_reqs", float(reqs), "count"))
    total = after.host_total_jiffies - before.host_total_jiffies
    if total > 0:
        busy = after.host_busy_jiffies - before.host_busy_jiffies
        out.append(("host.cpu_busy", 100.0 * busy / total, "%"))
    return out
