"""The guest's own view: `guest-get-cpustats` and `guest-get-diskstats` through its agent.

qemu-ga >= 7.1 answers both from the guest's /proc/stat and /proc/diskstats (the microguest
carries the host's qemu-ga, 7.2 on Debian 12).  Values (source "guest"), all counters:
  cpu.busy, cpu.idle, cpu.user, cpu.system, cpu.iowait (ms, all vCPUs); cpu<N>.busy (ms)
  disk.<name>.{rd,wr}.{reqs,bytes,time}, .io_time (ms), .in_flight
qemu-ga converts jiffies to milliseconds.  busy = user + nice + system + irq + softirq + steal.
Memory-backed and loop devices (ram*, loop*, zram*) are left out.

Each tick is two agent round trips (through libvirt, which adds a guest-sync to each; the socket
transport syncs only after connecting or a timeout): measured here under TCG (libvirt),
10-25 ms wall, under 0.5 ms of this process's CPU, but ~4 ms of the guest's QEMU process (it
emulates the guest's qemu-ga), so a case asks it on every 5th tick (`samplers.sets.GUEST_EVERY`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from vbench.errors import GuestError
from vbench.guest.agent import GuestAgent
from vbench.samplers import Value

SOURCE = "guest"
SECTOR = 512
# A tick must not wait long for a busy guest: the next tick asks again.
REPLY_TIMEOUT_S = 2
_BUSY = ("user", "nice", "system", "irq", "softirq", "steal")
_SKIP_DISKS = ("ram", "loop", "zram")


def _num(d: Mapping[str, Any], key: str) -> int:
    value = d.get(key, 0)
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0


def parse_cpustats(reply: Any, source: str = SOURCE) -> list[Value]:
    """Values from a `guest-get-cpustats` reply (a list of per-CPU records)."""
    if not isinstance(reply, list):
        raise GuestError(f"guest-get-cpustats: expected a list, got {type(reply).__name__}")
    totals = dict.fromkeys(("busy", "idle", "user", "system", "iowait"), 0)
    out: list[Value] = []
    for rec in reply:
        if not isinstance(rec, dict) or rec.get("type") != "linux":
            continue
        busy = sum(_num(rec, k) for k in _BUSY)
        totals["busy"] += busy
        totals["idle"] += _num(rec, "idle") + _num(rec, "iowait")
        for k in ("user", "system", "iowait"):
            totals[k] += _num(rec, k)
        out.append(Value(source, f"cpu{_num(rec, 'cpu')}.busy", float(busy), "ms"))
    if out:
        out += [Value(source, f"cpu.{k}", float(v), "ms") for k, v in totals.items()]
    return out


def parse_diskstats(reply: Any, source: str = SOURCE) -> list[Value]:
    """Values from a `guest-get-diskstats` reply (fields are optional in qemu-ga's schema)."""
    if not isinstance(reply, list):
        raise GuestError(f"guest-get-diskstats: expected a list, got {type(reply).__name__}")
    out: list[Value] = []
    for rec in reply:
        if not isinstance(rec, dict):
            continue
        name = str(rec.get("name", ""))
        stats = rec.get("stats")
        if not name or name.startswith(_SKIP_DISKS) or not isinstance(stats, dict):
            continue
        p = f"disk.{name}."
        out += [
            Value(source, p + "rd.reqs", float(_num(stats, "read-ios")), "count"),
            Value(source, p + "rd.bytes", float(_num(stats, "read-sectors") * SECTOR), "B"),
            Value(source, p + "rd.time", float(_num(stats, "read-ticks")), "ms"),
            Value(source, p + "wr.reqs", float(_num(stats, "write-ios")), "count"),
            Value(source, p + "wr.bytes", float(_num(stats, "write-sectors") * SECTOR), "B"),
            Value(source, p + "wr.time", float(_num(stats, "write-ticks")), "ms"),
            Value(source, p + "in_flight", float(_num(stats, "ios-pgr")), "count"),
            Value(source, p + "io_time", float(_num(stats, "total-ticks")), "ms"),
        ]
    return out


class GuestSampler:
    """CPU and disk counters from inside one guest, through its agent."""

    name = "guest"

    def __init__(self, agent: GuestAgent, *, source: str = SOURCE, every: int = 1) -> None:
        self._agent = agent
        self._source = source
        self.every = every

    def sample(self) -> list[Value]:
        cpu = self._agent.command("guest-get-cpustats", timeout_s=REPLY_TIMEOUT_S)
        disk = self._agent.command("guest-get-diskstats", timeout_s=REPLY_TIMEOUT_S)
        return parse_cpustats(cpu, self._source) + parse_diskstats(disk, self._source)
