"""The guests' QEMU processes as libvirt sees them: `virConnect.domainListGetStats` per tick.

One call for all the run's guests, asking only for the groups a derived figure needs:
  state      state, state.reason: a guest paused by an I/O error (disk full) shows here
  cpu-total  cpu.time, cpu.user, cpu.system (ns): the whole QEMU process, vCPUs *and* device
             emulation / virtio back-ends, i.e. what the I/O mode costs the host
  vcpu       vcpu.<n>.time, .wait, .delay (ns); KVM's per-vCPU counters (exits, ...) when present
  block      block.<dev>.{rd,wr,fl}.{reqs,bytes,times}: the requests QEMU served
  interface  net.<dev>.{rx,tx}.{bytes,pkts,errs,drop}: host side of the guest's NIC
  balloon    balloon.current, .rss, ... (KiB)
  vm         KVM's VM-wide counters (libvirt >= 7.10 via QEMU's query-stats).  Under TCG there
             are none: after a tick without them the sampler stops asking.  A user-mode NIC has
             no host device, so no interface counters: absent groups are simply left out.

libvirt numbers block and net entries (block.0.name = vda); the series names them by device
(block.vda.rd.reqs) so a figure does not depend on the order.  The stats are asked without
ENFORCE_STATS, so a driver that lacks a group (the test driver lacks all but state) answers
with what it has instead of failing.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import libvirt

from vbench.errors import VbenchError
from vbench.samplers import Value

SOURCE = "libvirt"

_VM_GROUP: int = getattr(libvirt, "VIR_DOMAIN_STATS_VM", 0)  # libvirt >= 7.10
STATS_GROUPS: int = (
    libvirt.VIR_DOMAIN_STATS_STATE
    | libvirt.VIR_DOMAIN_STATS_CPU_TOTAL
    | libvirt.VIR_DOMAIN_STATS_VCPU
    | libvirt.VIR_DOMAIN_STATS_BLOCK
    | libvirt.VIR_DOMAIN_STATS_INTERFACE
    | libvirt.VIR_DOMAIN_STATS_BALLOON
    | _VM_GROUP
)
_INDEXED = re.compile(r"^(block|net)\.(\d+)\.(.+)$")
_VCPU = re.compile(r"^vcpu\.\d+\.(.+)$")
# Counters a figure or a reader needs; the rest (paths, capacities, states) stays out.
_BLOCK_KEYS = {f"{d}.{k}" for d in ("rd", "wr") for k in ("reqs", "bytes", "times")} | {
    "fl.reqs",
    "fl.times",
}
_NET_KEYS = {f"{d}.{k}" for d in ("rx", "tx") for k in ("bytes", "pkts", "errs", "drop")}
_UNITS = {
    "bytes": "B",
    "reqs": "count",
    "pkts": "count",
    "errs": "count",
    "drop": "count",
    "times": "ns",
}


def _unit(key: str) -> str:
    """The unit of one libvirt stats key (domain stats are documented in virsh(1) domstats)."""
    if key.startswith("state"):
        return "enum"  # virDomainState / its reason, as numbers
    if key.startswith("cpu.") or re.match(r"^vcpu\.\d+\.(time|wait|delay)$", key):
        return "ns"
    if key.startswith("balloon."):
        return "count" if key.endswith(("_fault", "swap_in", "swap_out")) else "KiB"
    return _UNITS.get(key.rsplit(".", 1)[-1], "count")


def parse_domain_stats(stats: Mapping[str, Any], source: str = SOURCE) -> list[Value]:
    """Values from one domain's `domainListGetStats` record (keys as libvirt gives them)."""
    names = {
        (m.group(1), m.group(2)): str(stats[key])
        for key in stats
        if (m := re.match(r"^(block|net)\.(\d+)\.name$", key))
    }
    out: list[Value] = []
    for key, value in stats.items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        metric: str | None = None
        if m := _INDEXED.match(key):
            group, index, rest = m.groups()
            dev = names.get((group, index))
            wanted = _BLOCK_KEYS if group == "block" else _NET_KEYS
            if dev is not None and rest in wanted:
                metric = f"{group}.{dev}.{rest}"
        elif key in ("state.state", "state.reason", "cpu.time", "cpu.user", "cpu.system"):
            metric = key
        elif m := _VCPU.match(key):
            if m.group(1) != "state":  # time, wait, delay; KVM's counters (exits, ...) too
                metric = key
        elif key.startswith(("balloon.", "vm.")) and key != "balloon.last-update":
            metric = key
        if metric is not None:
            out.append(Value(source, metric, float(value), _unit(metric)))
    return out


class LibvirtSampler:
    """`domainListGetStats` for some guests; each guest's values under its own source name."""

    name = "libvirt"

    def __init__(
        self,
        conn: libvirt.virConnect,
        domains: Mapping[str, libvirt.virDomain],
        *,
        every: int = 1,
    ) -> None:
        """`domains`: source name -> domain, e.g. {"libvirt": dom} for a case's one guest."""
        self._conn = conn
        self._domains = dict(domains)
        self._by_uuid = {dom.UUIDString(): source for source, dom in self._domains.items()}
        self._names = {source: dom.name() for source, dom in self._domains.items()}
        self._groups: int = STATS_GROUPS
        self.every = every

    @property
    def groups(self) -> int:
        """The VIR_DOMAIN_STATS_* groups asked for at the next tick."""
        return self._groups

    @classmethod
    def for_domain(
        cls, conn: libvirt.virConnect, dom: libvirt.virDomain, *, every: int = 1
    ) -> LibvirtSampler:
        return cls(conn, {SOURCE: dom}, every=every)

    def sample(self) -> list[Value]:
        try:
            records = self._conn.domainListGetStats(list(self._domains.values()), self._groups)
        except libvirt.libvirtError as exc:
            msg = (exc.get_error_message() or str(exc)).strip()
            raise VbenchError(f"libvirt domain stats: {msg}") from None
        out: list[Value] = []
        missing = dict(self._by_uuid)
        for dom, stats in records:
            source = missing.pop(dom.UUIDString(), None)
            if source is not None:
                out += parse_domain_stats(stats, source)
        if self._groups & _VM_GROUP and not any(v.metric.startswith("vm.") for v in out):
            # No KVM counters (TCG): stop asking.  QEMU answers query-stats with nothing, at
            # ~0.8 ms of its CPU per call measured here.
            self._groups &= ~_VM_GROUP
        if missing:
            # libvirt skips a domain that is gone instead of failing the call.
            names = ", ".join(self._names[s] for s in missing.values())
            raise VbenchError(f"libvirt has no stats for guest {names} (no longer running?)")
        return out
