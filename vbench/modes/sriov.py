"""SR-IOV: a free virtual function of the scenario's physical function, or a libvirt hostdev pool.

NIC VFs become `<interface type='hostdev' managed='yes'>` (libvirt sets the MAC and VLAN on the
VF through the PF); storage VFs (NVMe) a `<hostdev>`.  With `network`, the guest gets
`<interface type='network'>` from a libvirt network with `<forward mode='hostdev'>` and libvirt
picks the VF from its pool.  A VF is free when no running domain holds it, the host does not use
it and it is alone in its IOMMU group.  VFs that need a host change first (too few VFs, an NVMe
secondary controller without resources) are made usable by `prepare()` only when the run may
change the host; otherwise the mode is skipped with the exact changes it would make.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from vbench.domxml import HostdevNicSpec, NetworkNicSpec
from vbench.errors import VbenchError
from vbench.model import ModeId
from vbench.modes.base import (
    MAC_ADDRESS,
    DeviceRefused,
    GuestTarget,
    HostView,
    ModePlan,
    Skip,
    check_pci,
    default_mac,
)
from vbench.modes.passthrough import PassthroughProvider, device_line, is_nic
from vbench.readiness import vf_candidates

if TYPE_CHECKING:
    from vbench.scenario import ModeSpec

PREPARE_HINT = "run with --prepare-host or set [host] prepare = true to let vbench make them"


class SriovProvider(PassthroughProvider):
    mode = ModeId.SRIOV
    keys = frozenset({"network", "pf", "vfs", "mac", "vlan", "viommu", "allow", "xen"})
    not_applicable = " (sriov takes `pf` or `network`)"

    def check(self, key: str, value: Any, entry: Mapping[str, Any]) -> Any:
        if key == "pf":
            if value is None:
                if entry.get("network") is None:
                    raise ValueError(
                        "sriov needs `pf`, the address of the SR-IOV physical function "
                        "(or `network`, a libvirt network with <forward mode='hostdev'>)"
                    )
                return None
            if entry.get("network") is not None:
                raise ValueError("give `pf` or `network`, not both: the network names its PFs")
            return check_pci(value)
        if key == "mac":
            if not MAC_ADDRESS.match(value):
                raise ValueError(f"{value!r} is not a MAC address (want xx:xx:xx:xx:xx:xx)")
            if int(value[:2], 16) & 1:
                raise ValueError(f"{value!r} is a multicast address; a NIC needs a unicast MAC")
            return value.lower()
        return super().check(key, value, entry)

    def plan(self, spec: ModeSpec, label: str, host: HostView) -> ModePlan | Skip:
        skip = self.host_blocked(label, host) or self.xen_refusal(spec, label, host)
        if skip is not None:
            return skip
        mac = spec.mac or default_mac(label)
        if spec.network is not None:
            pfs = host.hostdev_networks.get(spec.network)
            if pfs is None:
                return Skip(
                    self.mode,
                    label,
                    f"libvirt has no network {spec.network!r} with <forward mode='hostdev'> "
                    "(define one: <network><forward mode='hostdev' managed='yes'><pf dev='…'/>"
                    "</forward></network>)",
                )
            gaddr = self.guest_address(1, spec, host)
            nic = NetworkNicSpec(spec.network, mac, spec.vlan, gaddr)
            return ModePlan(
                self.mode,
                label,
                self.devices([], [(None, nic)], GuestTarget("mac", mac), spec, host),
                resolved=(f"a VF from libvirt network {spec.network} (PFs {', '.join(pfs)})",),
            )

        inv = host.inventory
        pf = inv.by_address().get(spec.pf or "")
        if pf is None:
            return Skip(self.mode, label, f"{spec.pf}: no such PCI device here")
        if not pf.sriov_totalvfs:
            return Skip(self.mode, label, f"{pf.address} is not an SR-IOV physical function")
        free, taken = vf_candidates(inv, pf, host.assigned, spec.allow, need_group=not host.is_xen)
        have = pf.sriov_numvfs or 0
        # the VF to use: the first free one, else the next one the PF can enable
        index = pf.vfs.index(free[0].address) if free and free[0].address in pf.vfs else have
        want = max(spec.vfs or 0, have if free else have + 1, index + 1)
        if want > pf.sriov_totalvfs:
            why = "; ".join(f"{t.address}: {t.reason}" for t in taken) or "none enabled"
            return Skip(
                self.mode,
                label,
                f"no free VF on {pf.address} and it has at most {pf.sriov_totalvfs} ({why})",
            )
        try:
            changes = tuple(host.plan_vf(pf.address, want, index))
        except VbenchError as exc:  # the PF cannot give a usable VF (says why in one line)
            return Skip(self.mode, label, str(exc))
        if changes and not host.prepare:
            return Skip(
                self.mode,
                label,
                f"{pf.address} needs host changes for a usable VF: "
                + "; ".join(c.describe for c in changes)
                + f" ({PREPARE_HINT})",
                changes,
            )
        if not free:
            # the VF appears only after prepare(): the runner plans this entry again then
            return ModePlan(self.mode, label, None, changes, replan=True)
        vf = free[0]
        gaddr = self.guest_address(1, spec, host)
        if is_nic(vf):
            vf_nic = HostdevNicSpec(vf.address, mac, spec.vlan, gaddr)
            devices = self.devices([], [(vf, vf_nic)], GuestTarget("mac", mac), spec, host)
        else:
            if spec.mac is not None or spec.vlan is not None:
                raise DeviceRefused(
                    f"mode {label}: `mac` and `vlan` apply to NIC VFs; {vf.address} is not a NIC"
                )
            target = self.target_for(vf, gaddr, None)
            devices = self.devices([vf], [], target, spec, host)
        return ModePlan(
            self.mode,
            label,
            devices,
            changes,
            resolved=(f"VF {device_line(vf, gaddr)} of PF {pf.address}",),
            # a changed VF count recreates the VFs: choose again once the changes are made
            replan=bool(changes),
        )
