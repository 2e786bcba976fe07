"""What a PF needs before one of its VFs can be used.

PLACEHOLDER written by the modes branch against the interface agreed with the lab helper, whose
module replaces it (NVMe secondary controllers through nvme-cli, namespace attachment,
sriov_drivers_autoprobe, driver binding).  This one plans only the VF count.
"""

from __future__ import annotations

from pathlib import Path

from vbench.host.changes import HostChange
from vbench.host.paths import HostPaths


def _attr_path(pf: str, name: str, paths: HostPaths) -> Path:
    # a testbed's sys/ snapshot has no bus/pci (umockdev serves it at the real path)
    own = paths.sys(f"bus/pci/devices/{pf}/{name}")
    return own if own.exists() else Path("/sys/bus/pci/devices") / pf / name


def _read_int(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def plan_vf(pf: str, paths: HostPaths, want_vfs: int, *, vf_index: int = 0) -> list[HostChange]:
    """The changes that give `pf` at least `want_vfs` VFs ([] when it has them).

    `vf_index`: the VF to make usable (the lab helper's module sets up its NVMe secondary
    controller; this placeholder only counts VFs).
    """
    path = _attr_path(pf, "sriov_numvfs", paths)
    have = _read_int(path) or 0
    if have >= want_vfs:
        return []
    changes = []
    if have:  # the kernel changes a non-zero VF count only through 0
        changes.append(
            HostChange("sysfs_write", str(path), str(have), "0", f"{pf}: sriov_numvfs {have} -> 0")
        )
    before = "0" if have else str(have)
    changes.append(
        HostChange(
            "sysfs_write",
            str(path),
            before,
            str(want_vfs),
            f"{pf}: sriov_numvfs {before} -> {want_vfs}",
        )
    )
    return changes
