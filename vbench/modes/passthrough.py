"""What VFIO and SR-IOV share: PCI functions on q35 root ports, found by guest PCI address."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from vbench.domxml import HostdevNicSpec, HostdevSpec, NetworkNicSpec
from vbench.inventory import Inventory, PciDevice
from vbench.modes.base import (
    MACHINE_Q35,
    GuestTarget,
    HostView,
    ModeDevices,
    ModeProvider,
    Skip,
    check_pci,
    guest_pci_address,
)
from vbench.readiness import describe

if TYPE_CHECKING:
    from vbench.scenario import ModeSpec

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

    @staticmethod
    def xen_type(spec: ModeSpec, host: HostView) -> str | None:
        """None under QEMU/KVM; "hvm" or "pv" on Xen."""
        return (spec.xen or "hvm") if host.is_xen else None

    def guest_address(self, slot: int, spec: ModeSpec, host: HostView) -> str | None:
        return guest_pci_address(slot, self.xen_type(spec, host))

    def xen_refusal(self, spec: ModeSpec, label: str, host: HostView) -> Skip | None:
        if host.is_xen and spec.viommu:
            return Skip(self.mode, label, "Xen offers no emulated IOMMU to guests: drop viommu")
        return None

    def target_for(self, dev: PciDevice, guest_address: str | None, mac: str | None) -> GuestTarget:
        """The workload's target on one passed-through function."""
        if is_nvme(dev):
            return GuestTarget("nvme", guest_address or "*")
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
        spec: ModeSpec,
        host: HostView,
    ) -> ModeDevices:
        """q35, one PCIe root port per function (guest bus n), and the guest IOMMU if asked.

        On Xen: the xenfv (HVM) or xenpv machine, functions on bus 0 (HVM) or where pcifront
        puts them (PV).
        """
        viommu = spec.viommu
        specs = [
            HostdevSpec(d.address, self.guest_address(i + 1, spec, host))
            for i, d in enumerate(hostdevs)
        ]
        xen = self.xen_type(spec, host)
        if xen is not None:
            return ModeDevices(
                machine="xenpv" if xen == "pv" else "xenfv",
                os_type="xen" if xen == "pv" else "hvm",
                target=target,
                hostdevs=tuple(specs),
                passthrough_nics=tuple(n for _, n in nics),
                cmdline="console=hvc0" if xen == "pv" else "",
            )
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
