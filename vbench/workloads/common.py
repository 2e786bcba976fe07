"""Metrics the runner measures around every case, whatever the workload: their catalogue.

(The figures are reductions of each case's time series, `vbench.derive`; this is what they mean.)
"""

from __future__ import annotations

from vbench.workloads.base import Metric

HOST_COST = "host cost"  # the report group of what a mode costs the host
HOST_CPU_BUSY = "host.cpu_busy"  # all the host's CPUs (also the density table's host CPU)
BOOT = "boot"  # the `workload` of the boot_to_agent samples
BOOT_TO_AGENT = "boot_to_agent"

BOOT_METRIC = Metric(
    BOOT_TO_AGENT,
    "s",
    False,
    "boot to guest agent",
    "",
    note="guest start to agent reply",
    overview=True,
)

COMMON_METRICS: tuple[Metric, ...] = (
    Metric(
        "host.qemu_cpu_per_io",
        "us",
        False,
        "QEMU CPU per request",
        HOST_COST,
        note="QEMU process CPU time per guest disk request",
        overview=True,
    ),
    Metric(
        "host.qemu_cpu_util",
        "%",
        False,
        "QEMU CPU",
        HOST_COST,
        note="QEMU process CPU time (vCPUs + device emulation) / wall time",
    ),
    Metric(
        "host.qemu_cpu_per_gb",
        "s/GB",
        False,
        "QEMU CPU per GB",
        HOST_COST,
        note="QEMU process CPU seconds per GB moved (disk and NIC)",
    ),
    Metric(
        "host.exits_per_io",
        "count",
        False,
        "KVM exits per request",
        HOST_COST,
        note="none under TCG",
    ),
    Metric(HOST_CPU_BUSY, "%", False, "host CPU busy", HOST_COST, note="all CPUs of the host"),
    Metric(
        "guest.cpu_per_io",
        "us",
        False,
        "guest CPU per request",
        HOST_COST,
        note="the guest's own busy CPU time per disk request (guest agent)",
    ),
    Metric(
        "guest.cpu_busy",
        "%",
        None,
        "guest CPU busy",
        HOST_COST,
        note="all vCPUs, as the guest counts it",
    ),
    Metric(
        "guest.disk_reqs",
        "count",
        None,
        "guest disk requests",
        HOST_COST,
        note="completed in the case",
    ),
    BOOT_METRIC,
)

DENSITY_GROUP = "density"  # the report group of the density trials' figures
AGGREGATE_PREFIX = "agg."  # agg.read.iops: the sum over the guests of a density trial
FAIRNESS_PREFIX = "fair."  # fair.read.iops: Jain's fairness index over those guests
JAIN_UNIT = "Jain"


def density_metrics(metrics: tuple[Metric, ...]) -> tuple[Metric, ...]:
    """The catalogue of the density figures: for every key throughput figure of a workload (in
    the overview, higher is better: IOPS, bandwidth, bogo-ops/s, Mbit/s), its sum over the guests
    that ran the case together and their fairness.  Latencies are not summed."""
    out: list[Metric] = []
    for m in metrics:
        if not (m.overview and m.higher_is_better):
            continue
        out.append(
            Metric(
                f"{AGGREGATE_PREFIX}{m.name}",
                m.unit,
                True,
                f"{DENSITY_GROUP} aggregate {m.label}",
                DENSITY_GROUP,
                note="sum over the guests running at once",
                overview=True,
            )
        )
        out.append(
            Metric(
                f"{FAIRNESS_PREFIX}{m.name}",
                JAIN_UNIT,
                True,
                f"{DENSITY_GROUP} fairness of {m.label}",
                DENSITY_GROUP,
                note="Jain's index over the guests: 1 = equal shares, 1/N = one guest got all",
            )
        )
    return tuple(out)


# Notes shown under a group's heading in the report.
GROUP_NOTES: dict[str, str] = {
    HOST_COST: "what the mode costs the host; lower is better",
    DENSITY_GROUP: "N guests of the mode running the case at once (the case's `density`)",
}
