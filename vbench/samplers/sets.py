"""The samplers a case runs with: one place that assembles them, for a guest or the host itself."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import libvirt

from vbench.guest.agent import GuestAgent
from vbench.host.paths import HostPaths
from vbench.samplers import Sampler
from vbench.samplers.guest import GuestSampler
from vbench.samplers.host import HostSampler, find_block_device
from vbench.samplers.libvirt_stats import LibvirtSampler


def host_samplers(
    scratch: Path,
    *,
    net_ifaces: Sequence[str] = (),
    paths: HostPaths = HostPaths(),  # noqa: B008 (frozen dataclass: a safe default)
) -> list[Sampler]:
    """A bare-metal case: the host's CPU, pressure, the disk behind `scratch`, and NICs."""
    return [HostSampler(paths, disk=find_block_device(scratch), net_ifaces=net_ifaces)]


def guest_samplers(
    conn: libvirt.virConnect,
    agent: GuestAgent,
    scratch: Path,
    *,
    net_ifaces: Sequence[str] = (),
    guest_every: int = 1,
    paths: HostPaths = HostPaths(),  # noqa: B008
) -> list[Sampler]:
    """A case in a guest: libvirt's stats of its QEMU, the host's side, and the guest's own."""
    return [
        LibvirtSampler.for_domain(conn, agent.domain),
        *host_samplers(scratch, net_ifaces=net_ifaces, paths=paths),
        GuestSampler(agent, every=guest_every),
    ]
