"""Mode providers: one module per I/O mode (fv, pv, vfio, sriov).  Adding a mode is adding one.

`provider_for(mode)` is the only lookup; see `vbench.modes.base` for the contract.
"""

from vbench.model import ModeId
from vbench.modes.base import (
    DeviceRefused,
    GuestShell,
    GuestTarget,
    HostView,
    IoTarget,
    ModeDevices,
    ModePlan,
    ModeProvider,
    Skip,
)
from vbench.modes.fv import FvProvider
from vbench.modes.pv import PvProvider
from vbench.modes.sriov import SriovProvider
from vbench.modes.vfio import VfioProvider

PROVIDERS: dict[ModeId, ModeProvider] = {
    p.mode: p for p in (FvProvider(), PvProvider(), VfioProvider(), SriovProvider())
}


def provider_for(mode: ModeId) -> ModeProvider:
    return PROVIDERS[mode]


__all__ = [
    "PROVIDERS",
    "DeviceRefused",
    "GuestShell",
    "GuestTarget",
    "HostView",
    "IoTarget",
    "ModeDevices",
    "ModePlan",
    "ModeProvider",
    "Skip",
    "provider_for",
]
