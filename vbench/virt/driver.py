"""What differs between libvirt's drivers vbench runs guests on, decided in this one place.

QEMU driver (`qemu:///system`): domain type kvm or qemu (TCG) by the functional KVM probe
(vbench.virt.accel); the guest agent through libvirt's agent API on libvirt's own channel.
libxl driver (`xen:///system`): domain type xen, accelerator "xen" (Xen runs the guests, no KVM
probe); libxl has no agent API, so the agent channel is a Xen PV console channel on a unix socket
that libxl's device model listens on and vbench speaks the agent protocol over
(vbench.guest.agent.SocketTransport).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

import libvirt

from vbench.domxml import QEMU_AGENT_NAME, VBENCH_AGENT_NAME, AgentChannel
from vbench.errors import HostError
from vbench.model import Accelerator

# The longest path a unix socket can have (sun_path holds 108 bytes with the NUL).
_SOCKET_PATH_MAX = 107


@dataclass(frozen=True)
class Driver:
    """One libvirt driver's choices: domain type, accelerator, agent channel and transport."""

    name: Literal["qemu", "libxl"]

    @property
    def is_xen(self) -> bool:
        return self.name == "libxl"

    @property
    def hypervisor(self) -> str:
        """The mode providers' word for it (vbench.modes.HostView.hypervisor)."""
        return "xen" if self.is_xen else "kvm"

    @property
    def accelerator(self) -> Accelerator | None:
        """The accelerator the driver fixes by itself; None: the KVM probe decides (QEMU)."""
        return Accelerator.XEN if self.is_xen else None

    def domain_type(self, accel: Accelerator | None) -> str:
        """libvirt's `<domain type>`: xen on libxl; kvm or qemu by the accelerator (a dry run
        without one: qemu)."""
        if self.is_xen:
            return "xen"
        return accel.libvirt_domain_type if accel is not None else "qemu"

    def agent_channel(self, socket: Path) -> AgentChannel:
        """The guest agent's channel: libvirt's own under QEMU; under libxl a Xen channel on
        the unix socket `socket` (which vbench connects to: vbench.guest.agent.open_agent).

        VBENCH_AGENT=socket gives a QEMU guest vbench's own channel on `socket` too (a virtio
        port libvirt leaves alone): the socket transport exercised where no Xen host is.
        """
        own = os.environ.get("VBENCH_AGENT", "").lower() == "socket"
        if not self.is_xen and not own:
            return AgentChannel()
        path = str(socket)
        if len(path.encode()) > _SOCKET_PATH_MAX:
            raise HostError(
                f"the guest agent's socket path {path} is longer than a unix socket allows "
                f"({_SOCKET_PATH_MAX} bytes): set VBENCH_SCRATCH to a shorter directory"
            )
        if self.is_xen:
            return AgentChannel(target="xen", name=QEMU_AGENT_NAME, socket=path)
        return AgentChannel(target="virtio", name=VBENCH_AGENT_NAME, socket=path)


QEMU = Driver("qemu")
LIBXL = Driver("libxl")


def driver_of(conn: libvirt.virConnect) -> Driver:
    """The driver behind an open connection (libxl says "Xen"; QEMU and the test driver: qemu)."""
    return LIBXL if str(conn.getType()).lower() == "xen" else QEMU


def driver_for_uri(uri: str) -> Driver:
    """The driver a URI names, without connecting: `xen://...` (or `xen+ssh://`) is libxl."""
    scheme = urlsplit(uri).scheme.split("+", 1)[0].lower()
    return LIBXL if scheme in ("xen", "libxl") else QEMU
