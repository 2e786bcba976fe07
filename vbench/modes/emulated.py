"""What FV and PV-on-HVM share: an emulated test disk and NIC, found in the guest by serial."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from vbench.domxml import disk_target_dev
from vbench.modes.base import (
    MACHINE_PC,
    TEST_DISK_SERIAL,
    GuestTarget,
    HostView,
    ModeDevices,
    ModePlan,
    ModeProvider,
    Skip,
)

if TYPE_CHECKING:
    from vbench.scenario import ModeSpec


class EmulatedProvider(ModeProvider):
    keys = frozenset({"disk_bus", "nic_model"})
    disk_buses: ClassVar[tuple[str, ...]]
    nic_models: ClassVar[tuple[str, ...]]
    not_applicable = " (it passes no host device through)"

    def plan(self, spec: ModeSpec, label: str, host: HostView) -> ModePlan | Skip:
        # host check failures only warn here (the runner says so): an emulated device needs
        # nothing of the host that a failed check could take away, and TCG still runs it
        if host.is_xen:
            return self.plan_xen(spec, label)
        bus = spec.disk_bus or self.disk_buses[0]
        devices = ModeDevices(
            machine=MACHINE_PC,
            target=GuestTarget("serial", TEST_DISK_SERIAL, disk_stats=disk_target_dev(bus)),
            disk_bus=bus,
            nic_model=spec.nic_model or self.nic_models[0],
        )
        return ModePlan(self.mode, label, devices)

    def plan_xen(self, spec: ModeSpec, label: str) -> ModePlan | Skip:
        """The same mode on Xen (libvirt's libxl driver)."""
        raise NotImplementedError
