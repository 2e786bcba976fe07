"""FV: fully emulated devices (IDE or SATA disk, e1000/e1000e/rtl8139 NIC) on the pc machine."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from vbench.model import ModeId
from vbench.modes.emulated import EmulatedProvider


class FvProvider(EmulatedProvider):
    mode = ModeId.FV
    disk_buses = ("ide", "sata")
    nic_models = ("e1000", "e1000e", "rtl8139")

    def check(self, key: str, value: Any, entry: Mapping[str, Any]) -> Any:
        if key == "disk_bus" and value not in self.disk_buses:
            raise ValueError(f"fv takes an emulated disk bus (ide or sata), not {value!r}")
        if key == "nic_model" and value not in self.nic_models:
            raise ValueError(f"fv takes an emulated NIC (e1000, e1000e, rtl8139), not {value!r}")
        return value
