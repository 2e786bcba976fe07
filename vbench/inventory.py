"""The host's device inventory as pure data (filled by `vbench.host.inventory` from pyudev/sysfs).

Pure: no I/O here.  The readiness logic in the core reasons over these records.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class PciDevice:
    address: str  # DDDD:BB:SS.F
    vendor_id: str  # "8086"
    device_id: str  # "5845"
    class_code: str  # "010802"
    vendor_name: str | None = None
    device_name: str | None = None
    class_name: str | None = None
    driver: str | None = None  # bound driver, e.g. "nvme", "vfio-pci", None when unbound
    numa_node: int | None = None  # None when the kernel reports -1 / no NUMA
    iommu_group: int | None = None  # None when the IOMMU is off
    sriov_totalvfs: int | None = None  # set only on SR-IOV physical functions
    sriov_numvfs: int | None = None
    physfn: str | None = None  # set on a VF: the address of its PF
    vfs: tuple[str, ...] = ()  # set on a PF: the addresses of its VFs
    is_bridge: bool = False


@dataclass(frozen=True)
class BlockDevice:
    name: str  # "vda", "nvme0n1"
    pci_address: str | None  # the PCI device behind it, if any
    size_bytes: int | None = None
    partitions: tuple[str, ...] = ()


@dataclass(frozen=True)
class NetDevice:
    name: str  # "eth0"
    pci_address: str | None
    mac: str | None = None


@dataclass(frozen=True)
class HostUse:
    """Why the host itself needs a device (so it must never be passed through)."""

    pci_address: str
    reason: str  # e.g. "backs / (vda1)", "carries the default route (eth0)"


@dataclass(frozen=True)
class Inventory:
    pci: tuple[PciDevice, ...] = ()
    block: tuple[BlockDevice, ...] = ()
    net: tuple[NetDevice, ...] = ()
    host_use: tuple[HostUse, ...] = ()
    notes: tuple[str, ...] = field(default_factory=tuple)

    def by_address(self) -> dict[str, PciDevice]:
        return {d.address: d for d in self.pci}

    def group_members(self, group: int) -> list[PciDevice]:
        return [d for d in self.pci if d.iommu_group == group]

    def in_use_reasons(self, address: str) -> list[str]:
        return [u.reason for u in self.host_use if u.pci_address == address]
