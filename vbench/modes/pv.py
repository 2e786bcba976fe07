"""PV-on-HVM: paravirtual devices (virtio-blk or virtio-scsi disk, virtio-net NIC)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from vbench.model import ModeId
from vbench.modes.base import GuestTarget, ModeDevices, ModePlan, Skip
from vbench.modes.emulated import EmulatedProvider

if TYPE_CHECKING:
    from vbench.scenario import ModeSpec


class PvProvider(EmulatedProvider):
    mode = ModeId.PV
    keys = frozenset({"disk_bus", "nic_model", "xen"})
    disk_buses = ("virtio", "scsi")
    nic_models = ("virtio",)
    defaults: ClassVar[Mapping[str, Any]] = {"disk_bus": "virtio", "nic_model": "virtio"}

    def check(self, key: str, value: Any, entry: Mapping[str, Any]) -> Any:
        if key == "disk_bus" and value not in self.disk_buses:
            raise ValueError(f"pv takes a paravirtual disk bus (virtio or scsi), not {value!r}")
        if key == "nic_model" and value not in self.nic_models:
            raise ValueError(f"pv takes the virtio NIC, not {value!r}")
        return value

    def plan_xen(self, spec: ModeSpec, label: str) -> ModePlan | Skip:
        """Xen's paravirtual devices (blkfront disk xvda, netfront NIC), PV-on-HVM or PV."""
        if spec.disk_bus == "scsi":
            return Skip(
                self.mode, label, "libvirt's libxl driver has no paravirtual SCSI: use virtio"
            )
        pv = spec.xen == "pv"
        devices = ModeDevices(
            machine="xenpv" if pv else "xenfv",
            os_type="xen" if pv else "hvm",
            # blkfront names the disk after its virtual device number: xvda is xvda
            target=GuestTarget("block", "xvda", disk_stats="xvda"),
            disk_bus="xen",
            nic_model="netfront",
            cmdline="console=hvc0" if pv else "",  # a PV guest's console is Xen's
        )
        what = "Xen PV" if pv else "Xen PV-on-HVM"
        return ModePlan(self.mode, label, devices, resolved=(f"{what}: blkfront xvda, netfront",))
