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

# The guest's agent is asked every 5th tick (and at the first and last).  Measured here under TCG
# (benchmarks/sampler_overhead.py, 45 s windows, an idle microguest): at 1 Hz the guest sampler
# added ~0.44 % of a core to the guest's QEMU process, ~0.07 % to the sampler thread and ~0.4 % to
# the guest's own vCPU, which took all samplers together to ~1.15 % of a core (thread + QEMU);
# every 5th tick brings that to ~0.6 %.
GUEST_EVERY = 5


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
    guest_every: int = GUEST_EVERY,
    paths: HostPaths = HostPaths(),  # noqa: B008
) -> list[Sampler]:
    """A case in a guest: libvirt's stats of its QEMU, the host's side, and the guest's own."""
    return [
        LibvirtSampler.for_domain(conn, agent.domain),
        *host_samplers(scratch, net_ifaces=net_ifaces, paths=paths),
        GuestSampler(agent, every=guest_every),
    ]
