"""Figures derived from one case's time series (pure reductions; see vbench.series).

The samplers read counters at the case's first tick (before the workload starts) and at its last
(after it ends), so a counter's last value minus its first covers the whole case: the **window**.
Every figure below is such a difference, over the window of the counters it uses.

| metric | unit | from |
|---|---|---|
| host.qemu_cpu_util | % | libvirt cpu.time / window (100 % = one host core) |
| host.qemu_cpu_per_io | us | libvirt cpu.time / libvirt block requests (rd + wr) |
| host.qemu_cpu_per_gb | s/GB | libvirt cpu.time / bytes moved (block rd + wr, interface rx + tx) |
| guest.disk_reqs | count | libvirt block requests (rd + wr) |
| guest.cpu_per_io | us | guest busy CPU time (guest-get-cpustats) / libvirt block requests |
| guest.cpu_busy | % | guest busy / (busy + idle), all vCPUs |
| host.exits_per_io | count | KVM exits (libvirt vcpu.<n>.exits, absent under TCG) / requests |
| host.cpu_busy | % | host /proc/stat busy / total jiffies, all CPUs |

The first four and host.cpu_busy keep the names and units of the before/after snapshots they
replace.  A figure whose counters are missing (a bare-metal case has no libvirt source; TCG has no
exit counters) is left out, never zero.

Cross-checks compare what the workload says it did with what libvirt counted in the same window;
a disagreement over `limit_pct` (5 %) flags the case.  Whatever a case runs to prepare its target
(fio's `fill`, `Workload.prepare`) runs before the window opens, so libvirt's counters over the
window and the workload's own count cover the same, measured, command:
  - block_requests: the workload's I/O count (fio's total_ios) vs libvirt's block rd + wr reqs.
    The guest's block layer may split a request before the device sees it (measured here: fio's
    1 MiB requests reach an emulated SATA disk as 8 of 128 KiB; virtio-blk passes them whole).
    When the bytes agree and libvirt saw more requests, the difference is explained by that
    split: the check says so and does not flag the case;
  - block_bytes: the workload's bytes (fio's io_bytes) vs libvirt's block rd + wr bytes;
  - net_bytes_tx / net_bytes_rx: the workload's payload bytes (iperf3's bytes) per direction vs
    libvirt's interface bytes in the same direction (the guest's view: tx = sent by the guest)
    less `header_bytes` per packet (Ethernet 14 + IPv4 20 + TCP 20 + timestamps 12 = 66 by
    default; one set per GSO frame too).  The receiver counts only what arrived before its clock
    stopped; what the sender had sent by then was still crossing the NIC (a slow TCG guest holds
    megabytes in its receive queue), so a NIC count above the received bytes but not above the
    sender's (`workload_net_sent`, within the limit) is explained, not flagged.
    A tap moved into the run's network namespace is no
    longer visible to libvirt (it reads its own /proc/net/dev): then the host's counters of the
    tap (source `host`, the tap's view: its rx is what the guest sent) stand in, swapped.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

DEFAULT_LIMIT_PCT = 5.0
TCP_IPV4_HEADER_BYTES = 66


@dataclass(frozen=True)
class Figure:
    metric: str
    value: float
    unit: str


@dataclass(frozen=True)
class CrossCheck:
    """A workload's own count against libvirt's over the same window."""

    name: str  # "block_requests" | "block_bytes" | "net_bytes_tx" | "net_bytes_rx"
    workload: float
    sampled: float
    limit_pct: float = DEFAULT_LIMIT_PCT
    explained_by: str | None = None  # why a disagreement is not a fault (then not flagged)

    @property
    def disagreement_pct(self) -> float:
        """|sampled - workload| as a percentage of the workload's own count."""
        if self.workload == 0:
            return 0.0 if self.sampled == 0 else float("inf")
        return 100.0 * abs(self.sampled - self.workload) / self.workload

    @property
    def flagged(self) -> bool:
        return self.disagreement_pct > self.limit_pct and self.explained_by is None


@dataclass(frozen=True)
class Derived:
    figures: list[Figure] = field(default_factory=list)
    checks: list[CrossCheck] = field(default_factory=list)

    @property
    def flags(self) -> list[str]:
        """Names of the cross-checks that disagree by more than their limit."""
        return [c.name for c in self.checks if c.flagged]

    def value(self, metric: str) -> float | None:
        return next((f.value for f in self.figures if f.metric == metric), None)


@dataclass(frozen=True)
class Delta:
    """A counter's change over its window."""

    value: float
    window_s: float


def delta(series: pd.DataFrame, source: str, metric: str) -> Delta | None:
    """Last minus first value of one counter, with the time between them; None if < 2 readings."""
    rows = series[(series["source"] == source) & (series["metric"] == metric)]
    if len(rows) < 2:
        return None
    rows = rows.sort_values("t_s", kind="stable")
    first, last = rows.iloc[0], rows.iloc[-1]
    return Delta(float(last["value"] - first["value"]), float(last["t_s"] - first["t_s"]))


def delta_sum(series: pd.DataFrame, source: str, pattern: str) -> float | None:
    """The sum of the deltas of every counter of `source` whose name fully matches `pattern`."""
    rx = re.compile(pattern)
    names = sorted({m for m in series.loc[series["source"] == source, "metric"] if rx.fullmatch(m)})
    deltas = [d.value for m in names if (d := delta(series, source, m)) is not None]
    return sum(deltas) if deltas else None


def derive_case(
    series: pd.DataFrame,
    *,
    workload_ios: float | None = None,
    workload_bytes: float | None = None,
    workload_net_bytes: Mapping[str, float] | None = None,
    workload_net_sent: Mapping[str, float] | None = None,
    disk: str | None = None,
    iface: str | None = None,
    libvirt: str = "libvirt",
    guest: str = "guest",
    host: str = "host",
    header_bytes: int = TCP_IPV4_HEADER_BYTES,
    limit_pct: float = DEFAULT_LIMIT_PCT,
) -> Derived:
    """Figures and cross-checks of one case from its series (rows of one case_id).

    `disk` / `iface` name the guest's test disk and NIC as libvirt reports them (vda, vnet3);
    None sums all.  `workload_net_bytes`: payload bytes received per direction of the guest
    ("tx", "rx"); `workload_net_sent`: the bytes their sender sent.
    `libvirt`, `guest`, `host` are the source names of the guest's samplers.
    """
    figures: list[Figure] = []
    checks: list[CrossCheck] = []
    dev = re.escape(disk) if disk else r"[^.]+"
    nic = re.escape(iface) if iface else r"[^.]+"

    reqs = delta_sum(series, libvirt, rf"block\.{dev}\.(rd|wr)\.reqs")
    block_bytes = delta_sum(series, libvirt, rf"block\.{dev}\.(rd|wr)\.bytes")
    net_bytes = delta_sum(series, libvirt, rf"net\.{nic}\.(rx|tx)\.bytes")
    net_source, swap = libvirt, False
    if net_bytes is None and iface is not None:
        # the tap in the run's namespace: libvirt lost it, the host's side still counts it
        net_bytes = delta_sum(series, host, rf"net\.{nic}\.(rx|tx)\.bytes")
        net_source, swap = host, True
    cpu = delta(series, libvirt, "cpu.time")
    cpu_s = cpu.value / 1e9 if cpu is not None else None

    if cpu is not None and cpu_s is not None and cpu_s > 0:
        if cpu.window_s > 0:
            figures.append(Figure("host.qemu_cpu_util", 100.0 * cpu_s / cpu.window_s, "%"))
        if reqs:
            figures.append(Figure("host.qemu_cpu_per_io", 1e6 * cpu_s / reqs, "us"))
        moved = (block_bytes or 0.0) + (net_bytes or 0.0)
        if moved > 0:
            figures.append(Figure("host.qemu_cpu_per_gb", cpu_s / (moved / 1e9), "s/GB"))
    if reqs:
        figures.append(Figure("guest.disk_reqs", reqs, "count"))

    busy = delta(series, guest, "cpu.busy")
    idle = delta(series, guest, "cpu.idle")
    if busy is not None:
        if reqs:
            figures.append(Figure("guest.cpu_per_io", 1e3 * busy.value / reqs, "us"))
        if idle is not None and busy.value + idle.value > 0:
            share = 100.0 * busy.value / (busy.value + idle.value)
            figures.append(Figure("guest.cpu_busy", share, "%"))

    exits = delta_sum(series, libvirt, r"vcpu\.\d+\.exits")
    if exits is not None and reqs:
        figures.append(Figure("host.exits_per_io", exits / reqs, "count"))

    host_busy = delta(series, host, "cpu.busy_s")
    host_total = delta(series, host, "cpu.total_s")
    if host_busy is not None and host_total is not None and host_total.value > 0:
        figures.append(Figure("host.cpu_busy", 100.0 * host_busy.value / host_total.value, "%"))

    bytes_check: CrossCheck | None = None
    if workload_bytes is not None and block_bytes is not None:
        bytes_check = CrossCheck("block_bytes", float(workload_bytes), block_bytes, limit_pct)
    if workload_ios is not None and reqs is not None:
        why = None
        if bytes_check is not None and not bytes_check.flagged and reqs > workload_ios > 0:
            why = (
                f"the guest split requests ({reqs / workload_ios:.2f} device requests per I/O; "
                "bytes agree)"
            )
        checks.append(CrossCheck("block_requests", float(workload_ios), reqs, limit_pct, why))
    if bytes_check is not None:
        checks.append(bytes_check)
    for direction, moved in (workload_net_bytes or {}).items():
        seen = {"tx": "rx", "rx": "tx"}[direction] if swap else direction
        sent = delta_sum(series, net_source, rf"net\.{nic}\.{seen}\.bytes")
        pkts = delta_sum(series, net_source, rf"net\.{nic}\.{seen}\.pkts")
        if sent is not None:
            payload = sent - header_bytes * (pkts or 0.0)
            why = None
            wrote = (workload_net_sent or {}).get(direction)
            if wrote is not None and moved < payload <= wrote * (1 + limit_pct / 100):
                why = (
                    f"bytes in flight when the receiver's clock stopped: the sender sent "
                    f"{wrote:.6g}, the receiver counted {moved:.6g}, the NIC carried {payload:.6g}"
                )
            checks.append(
                CrossCheck(f"net_bytes_{direction}", float(moved), payload, limit_pct, why)
            )
    return Derived(figures, checks)
