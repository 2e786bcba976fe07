"""VFIO: host PCI devices passed through (`<hostdev mode='subsystem' type='pci' managed='yes'>`).

The scenario names the devices by address (`pci`, one or a list: every endpoint of an IOMMU
group goes together) or by a match (`match = { vendor_device | netdev | blockdev }`, resolved
through the inventory; the first safe device wins).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from vbench.inventory import Inventory, PciDevice
from vbench.model import ModeId
from vbench.modes.base import DeviceRefused, HostView, ModePlan, Skip, check_pci
from vbench.modes.passthrough import PassthroughProvider, device_line, host_mac
from vbench.readiness import assignment_refusals, is_bridge_like

if TYPE_CHECKING:
    from vbench.scenario import DeviceMatch, ModeSpec


def matching_devices(inventory: Inventory, match: DeviceMatch) -> tuple[str, list[PciDevice]]:
    """(what was asked, the PCI devices that fit) for a scenario's `match`."""
    by_addr = inventory.by_address()
    if match.vendor_device is not None:
        vendor, device = match.vendor_device.lower().split(":")
        found = [
            d
            for d in inventory.pci
            # a VF is the sriov mode's: vfio by match takes whole devices
            if d.vendor_id == vendor and d.device_id == device and not d.physfn
        ]
        return f"PCI id {match.vendor_device}", found
    if match.netdev is not None:
        addrs = [n.pci_address for n in inventory.net if n.name == match.netdev and n.pci_address]
        return f"host NIC {match.netdev}", [by_addr[a] for a in addrs if a in by_addr]
    assert match.blockdev is not None  # DeviceMatch holds exactly one key
    name = match.blockdev.removeprefix("/dev/")
    addrs = [b.pci_address for b in inventory.block if b.name == name and b.pci_address]
    return f"host block device {name}", [by_addr[a] for a in addrs if a in by_addr]


class VfioProvider(PassthroughProvider):
    mode = ModeId.VFIO
    keys = frozenset({"match", "pci", "viommu", "allow", "xen"})
    not_applicable = " (the guest does its I/O on the assigned device; vfio takes pci or match)"

    def check(self, key: str, value: Any, entry: Mapping[str, Any]) -> Any:
        if key == "pci":
            if value is None:
                if entry.get("match") is None:
                    raise ValueError(
                        "vfio needs `pci`, the address of the host device to pass through "
                        "(or `match`)"
                    )
                return None
            if entry.get("match") is not None:
                raise ValueError("give `pci` or `match`, not both")
            addrs = [value] if isinstance(value, str) else list(value)
            if not addrs:
                raise ValueError("`pci` lists no device")
            out = [check_pci(a) for a in addrs]
            if len(set(out)) != len(out):
                raise ValueError(f"`pci` lists a device twice: {out}")
            return out
        return super().check(key, value, entry)

    def plan(self, spec: ModeSpec, label: str, host: HostView) -> ModePlan | Skip:
        skip = self.host_blocked(label, host) or self.xen_refusal(spec, label, host)
        if skip is not None:
            return skip
        inv = host.inventory
        by_addr = inv.by_address()
        if spec.match is not None:
            what, candidates = matching_devices(inv, spec.match)
            if not candidates:
                return Skip(self.mode, label, f"no PCI device of this host is the {what}")
            reasons: list[str] = []
            chosen: PciDevice | None = None
            for dev in candidates:
                why = self._unusable(dev, inv, host, spec.allow)
                if why:
                    reasons.append(why)
                else:
                    chosen = dev
                    break
            if chosen is None:
                return Skip(self.mode, label, f"no {what} can be assigned: " + "; ".join(reasons))
            devices = [chosen]
        else:
            addrs = list(spec.pci or [])
            missing = [a for a in addrs if a not in by_addr]
            if missing:
                return Skip(self.mode, label, f"{', '.join(missing)}: no such PCI device here")
            devices = [by_addr[a] for a in addrs]
            for dev in devices:
                if is_bridge_like(dev):
                    raise DeviceRefused(
                        f"mode {label}: {dev.address} is a PCI bridge, not a device"
                    )
            refusals = assignment_refusals(inv, addrs, spec.allow)
            if refusals:
                more = f" (and {len(refusals) - 1} more)" if len(refusals) > 1 else ""
                raise DeviceRefused(
                    f"mode {label}: refusing to pass through {refusals[0]}{more}; list the "
                    "device in the mode's `allow` to pass it anyway (the only override)"
                )
            for dev in devices:
                why = self._unusable(dev, inv, host, spec.allow, together=addrs)
                if why:
                    return Skip(self.mode, label, why)
        first = devices[0]
        gaddr = self.guest_address(1, spec, host)
        target = self.target_for(first, gaddr, host_mac(inv, first.address))
        return ModePlan(
            self.mode,
            label,
            self.devices(devices, [], target, spec, host),
            resolved=tuple(
                device_line(d, self.guest_address(i + 1, spec, host)) for i, d in enumerate(devices)
            ),
        )

    def _unusable(
        self,
        dev: PciDevice,
        inv: Inventory,
        host: HostView,
        allow: list[str],
        together: list[str] | None = None,
    ) -> str | None:
        """Why `dev` cannot be assigned now (with the devices `together`), or None."""
        if dev.address in host.assigned:
            return f"{dev.address} is held by the running domain {host.assigned[dev.address]}"
        if dev.iommu_group is None and not host.is_xen:  # Xen's IOMMU is the hypervisor's
            return f"{dev.address} has no IOMMU group (IOMMU off)"
        refusals = assignment_refusals(inv, together or [dev.address], allow)
        return refusals[0] if refusals else None
