"""Map a scenario's mode entry to the builder's device inputs (pure, plain values in and out).

Takes plain values rather than a `ModeSpec` so that `vbench.domxml` does not import
`vbench.scenario`.  The runner calls, for example::

    devs = mode_devices(m.id, m.disk_bus, m.nic_model, pci=vf_address or m.pci)
    DomainSpec(..., disk_path=disk if devs.disk_bus else None, disk_bus=devs.disk_bus,
               nic_model=devs.nic_model, machine=devs.machine, hostdevs=devs.hostdevs)
"""

from __future__ import annotations

from typing import NamedTuple

from vbench.domxml.builder import HostdevSpec
from vbench.model import ModeId

FV_DISK_BUSES = ("ide", "sata")
FV_NIC_MODELS = ("e1000", "e1000e", "rtl8139")
PV_DISK_BUSES = ("virtio", "scsi")
PV_NIC_MODELS = ("virtio",)

MACHINE_PC = "pc"  # i440fx: has IDE, so FV's default disk works
MACHINE_Q35 = "q35"  # PCIe root ports for pass-through devices


class ModeDevices(NamedTuple):
    """What a mode puts in the domain: the builder's disk_bus, nic_model, machine and hostdevs."""

    disk_bus: (
        str | None
    )  # None: no emulated test disk (the passed-through device is the I/O target)
    nic_model: str | None  # None: no emulated NIC
    machine: str
    hostdevs: tuple[HostdevSpec, ...]


def mode_devices(
    mode: str,
    disk_bus: str | None = None,
    nic_model: str | None = None,
    pci: str | None = None,
) -> ModeDevices:
    """The devices of one mode.

    `mode` is a mode id (fv, pv, vfio, sriov); `disk_bus` and `nic_model` are the scenario's
    choices or None for the mode's default; `pci` is the host device to pass through: the
    device itself for vfio, the chosen virtual function (not the PF) for sriov.
    Raises ValueError when the combination does not fit the mode.
    """
    try:
        mode_id = ModeId(mode)
    except ValueError:
        known = ", ".join(m.value for m in ModeId)
        raise ValueError(f"unknown mode {mode!r} (one of {known})") from None

    if mode_id in (ModeId.FV, ModeId.PV):
        if pci is not None:
            raise ValueError(f"{mode_id.value} passes no host device through; drop `pci`")
        buses: tuple[str, ...] = FV_DISK_BUSES if mode_id is ModeId.FV else PV_DISK_BUSES
        nics: tuple[str, ...] = FV_NIC_MODELS if mode_id is ModeId.FV else PV_NIC_MODELS
        bus = disk_bus or buses[0]
        nic = nic_model or nics[0]
        if bus not in buses:
            raise ValueError(f"{mode_id.value} takes disk bus {' or '.join(buses)}, not {bus!r}")
        if nic not in nics:
            raise ValueError(f"{mode_id.value} takes NIC model {' or '.join(nics)}, not {nic!r}")
        return ModeDevices(bus, nic, MACHINE_PC, ())

    # vfio / sriov: the guest does its I/O on the passed-through device.  An emulated disk or
    # NIC is added only when the scenario asks for one.
    if pci is None:
        what = "the host device" if mode_id is ModeId.VFIO else "the virtual function"
        raise ValueError(f"{mode_id.value} needs `pci`, the PCI address of {what}")
    if disk_bus == "ide":
        raise ValueError(f"{mode_id.value} uses the q35 machine, which has no IDE: use sata")
    if disk_bus is not None and disk_bus not in (*FV_DISK_BUSES, *PV_DISK_BUSES):
        raise ValueError(f"unknown disk bus {disk_bus!r}")
    if nic_model is not None and nic_model not in (*FV_NIC_MODELS, *PV_NIC_MODELS):
        raise ValueError(f"unknown NIC model {nic_model!r}")
    return ModeDevices(disk_bus, nic_model, MACHINE_Q35, (HostdevSpec(pci),))
