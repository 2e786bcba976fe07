"""FV: fully emulated devices (IDE or SATA disk, e1000/e1000e/rtl8139 NIC) on the pc machine."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from vbench.domxml import disk_target_dev
from vbench.model import ModeId
from vbench.modes.base import TEST_DISK_SERIAL, GuestTarget, ModeDevices, ModePlan, Skip
from vbench.modes.emulated import EmulatedProvider

if TYPE_CHECKING:
    from vbench.scenario import ModeSpec


class FvProvider(EmulatedProvider):
    mode = ModeId.FV
    disk_buses = ("ide", "sata")
    nic_models = ("e1000", "e1000e", "rtl8139")
    # ide: the pc machine has it
    defaults: ClassVar[Mapping[str, Any]] = {"disk_bus": "ide", "nic_model": "e1000"}

    def check(self, key: str, value: Any, entry: Mapping[str, Any]) -> Any:
        if key == "disk_bus" and value not in self.disk_buses:
            raise ValueError(f"fv takes an emulated disk bus (ide or sata), not {value!r}")
        if key == "nic_model" and value not in self.nic_models:
            raise ValueError(f"fv takes an emulated NIC (e1000, e1000e, rtl8139), not {value!r}")
        return value

    def plan_xen(self, spec: ModeSpec, label: str) -> ModePlan | Skip:
        """Xen HVM with QEMU's emulated IDE disk and NIC."""
        if spec.disk_bus != "ide":
            return Skip(self.mode, label, "Xen HVM guests get an emulated IDE disk: use ide")
        devices = ModeDevices(
            machine="xenfv",
            target=GuestTarget("serial", TEST_DISK_SERIAL, disk_stats=disk_target_dev("ide")),
            disk_bus="ide",
            nic_model=spec.nic_model,
            # keep the emulated devices: by default the guest's PV drivers unplug them
            cmdline="xen_emul_unplug=never",
        )
        return ModePlan(self.mode, label, devices, resolved=("Xen HVM, emulated IDE disk",))
