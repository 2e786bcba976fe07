"""What the network workloads (iperf3, sockperf) share: the peer they talk to, and how they label.

Until the workload contract (`vbench/workloads/base.py`) is on main, `Needs`, `Metric`, `Target`
and `Spec` here are stand-ins with the contract's exact fields and defaults (as on the
`workloads` branch), and `SampleLabels` is re-exported from where main keeps it, so that `Iperf3`
and `Sockperf` drop into the contract: on merge, import these five from `vbench.workloads.base`
instead, subclass `Workload`, and register `IPERF3`/`SOCKPERF` and their specs.

Pure: no subprocess, no sockets.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict

from vbench.model import Sample
from vbench.workloads.base import SampleLabels

__all__ = [
    "Metric",
    "Needs",
    "SampleLabels",
    "Spec",
    "Target",
    "bind_address",
    "peer_address",
    "samples",
]

# Test traffic goes only to addresses vbench created: the link-local /30s of the run's network
# namespace (vbench.host.netns), or loopback (a peer on the same side).
_ALLOWED_PEERS = (ipaddress.ip_network("169.254.0.0/16"), ipaddress.ip_network("127.0.0.0/8"))


class Needs(StrEnum):
    """Stand-in for vbench.workloads.base.Needs."""

    NOTHING = "nothing"
    DISK = "disk"
    NETWORK = "network"


@dataclass(frozen=True)
class Metric:
    """Stand-in for vbench.workloads.base.Metric: one entry of a workload's metric catalogue."""

    name: str
    unit: str
    higher_is_better: bool | None
    label: str  # starts with the group when the group names it ("round trip p99")
    group: str
    note: str = ""
    overview: bool = False  # in the report's key-results table
    chart: bool = False  # a panel in the workload's chart

    @property
    def short_label(self) -> str:
        return self.label.removeprefix(f"{self.group} ") if self.group else self.label


@dataclass(frozen=True)
class Target:
    """Stand-in for vbench.workloads.base.Target: where a case runs and what it talks to."""

    where: Literal["guest", "host"]
    disk: str | None = None
    peer_address: str | None = None
    vcpus: int = 1


class Spec(BaseModel):
    """Stand-in for vbench.workloads.base.Spec: strict (TOML has real types), no unknown keys."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


def peer_address(target: Target, tool: str) -> str:
    """The target's peer as an address literal; ValueError unless link-local or loopback IPv4."""
    if target.peer_address is None:
        raise ValueError(f"{tool} needs a peer address (the host end of the guest's test link)")
    try:
        addr = ipaddress.IPv4Address(target.peer_address)
    except ValueError:
        raise ValueError(f"{tool} peer {target.peer_address!r} is not an IPv4 address") from None
    if not any(addr in net for net in _ALLOWED_PEERS):
        raise ValueError(
            f"{tool} peer {addr} is outside 169.254.0.0/16 and 127.0.0.0/8: vbench sends test "
            "traffic only into the network namespace it created"
        )
    return str(addr)


def bind_address(bind: str | None, tool: str) -> str:
    """A server's bind address: the host end of a guest's link, or every address of the
    namespace (0.0.0.0: the namespace holds only the run's own links)."""
    if bind is None:
        return "0.0.0.0"
    return peer_address(Target("host", peer_address=bind), tool)


def samples(
    values: dict[str, float], catalogue: tuple[Metric, ...], labels: SampleLabels
) -> list[Sample]:
    """Tidy samples of `values`, in the catalogue's order, units from the catalogue."""
    units = {m.name: m.unit for m in catalogue}
    unknown = sorted(set(values) - set(units))
    if unknown:
        raise ValueError(f"metrics {unknown} are not in the catalogue")
    return [
        Sample(
            run_id=labels.run_id,
            case_id=labels.case_id,
            mode=labels.mode,
            workload=labels.workload,
            parameters=labels.parameters,
            repetition=labels.repetition,
            metric=m.name,
            value=values[m.name],
            unit=m.unit,
            timestamp=labels.timestamp,
        )
        for m in catalogue
        if m.name in values
    ]
