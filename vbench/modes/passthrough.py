"""What VFIO and SR-IOV share: PCI functions on q35 root ports, found by guest PCI address."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from vbench.domxml import HostdevNicSpec, HostdevSpec, NetworkNicSpec
from vbench.inventory import Inventory, PciDevice
from vbench.modes.base import (
    MACHINE_Q35,
    GuestTarget,
    ModeDevices,
    ModeProvider,
    check_pci,
    guest_pci_address,
)
from vbench.readiness import describe

NVME_CLASS = "010802"


def is_nvme(dev: PciDevice) -> bool:
    return dev.class_code == NVME_CLASS


def is_nic(dev: PciDevice) -> bool:
    return dev.class_code.startswith("02")


def device_line(dev: PciDevice, guest_address: str | None = None) -> str:
    """One line naming a chosen host device, for the log and the manifest."""
    group = "-" if dev.iommu_group is None else str(dev.iommu_group)
    where = f" -> guest {guest_address}" if guest_address else ""
    return (
        f"{dev.address} {describe(dev)} (IOMMU group {group}, driver {dev.driver or 'none'}){where}"
    )


def host_mac(inventory: Inventory, address: str) -> str | None:
    return next((n.mac for n in inventory.net if n.pci_address == address and n.mac), None)


class PassthroughProvider(ModeProvider):
    """Hands host PCI functions to the guest; `viommu` adds an emulated IOMMU in the guest."""

    def check(self, key: str, value: Any, entry: Mapping[str, Any]) -> Any:
        if key == "allow":
            return [check_pci(v) for v in value]
        return value

    def target_for(self, dev: PciDevice, guest_address: str, mac: str | None) -> GuestTarget:
        """The workload's target on one passed-through function."""
        if is_nvme(dev):
            return GuestTarget("nvme", guest_address)
        if is_nic(dev) and mac:
            return GuestTarget("mac", mac)
        return GuestTarget(
            "none", f"{dev.address} ({describe(dev)}) is neither an NVMe controller nor a NIC"
        )

    def devices(
        self,
        hostdevs: list[PciDevice],
        nics: list[tuple[PciDevice | None, HostdevNicSpec | NetworkNicSpec]],
        target: GuestTarget,
        viommu: bool,
    ) -> ModeDevices:
        """q35, one PCIe root port per function (guest bus n), and the guest IOMMU if asked."""
        specs = [HostdevSpec(d.address, guest_pci_address(i + 1)) for i, d in enumerate(hostdevs)]
        return ModeDevices(
            machine=MACHINE_Q35,
            target=target,
            hostdevs=tuple(specs),
            passthrough_nics=tuple(n for _, n in nics),
            pcie_root_ports=len(specs) + len(nics),
            iommu=viommu,
            # the guest kernel uses the emulated IOMMU only when told to
            cmdline="intel_iommu=on" if viommu else "",
        )
