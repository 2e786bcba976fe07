"""PV-on-HVM: paravirtual devices (virtio-blk or virtio-scsi disk, virtio-net NIC)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from vbench.model import ModeId
from vbench.modes.emulated import EmulatedProvider


class PvProvider(EmulatedProvider):
    mode = ModeId.PV
    disk_buses = ("virtio", "scsi")
    nic_models = ("virtio",)

    def check(self, key: str, value: Any, entry: Mapping[str, Any]) -> Any:
        if key == "disk_bus" and value not in self.disk_buses:
            raise ValueError(f"pv takes a paravirtual disk bus (virtio or scsi), not {value!r}")
        if key == "nic_model" and value not in self.nic_models:
            raise ValueError(f"pv takes the virtio NIC, not {value!r}")
        return value
