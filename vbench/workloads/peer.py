"""What the network workloads (iperf3, sockperf) share: the peer they talk to, and how they label.

Pure: no subprocess, no sockets.
"""

from __future__ import annotations

import ipaddress

from vbench.model import Sample
from vbench.workloads.base import Metric, SampleLabels, Target

__all__ = ["bind_address", "peer_address", "samples"]

# Test traffic goes only to addresses vbench created: the link-local /30s of the run's network
# namespace (vbench.host.netns), or loopback (a peer on the same side).
_ALLOWED_PEERS = (ipaddress.ip_network("169.254.0.0/16"), ipaddress.ip_network("127.0.0.0/8"))


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
