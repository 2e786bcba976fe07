"""Is this host a Xen dom0?  Then the KVM and VFIO checks do not apply: Xen runs the guests
(libvirt's libxl driver, `-c xen:///system`), owns the IOMMU and passes PCI devices through
with pciback, and dom0 has no /dev/kvm, no IOMMU groups and no use for vfio."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from vbench.host.paths import HostPaths
from vbench.readiness import CheckResult, Status

# checks about KVM, the kernel's IOMMU and VFIO: Xen's dom0 has none of them, by design
NOT_ON_XEN_DOM0 = (
    "cpu.hwvirt",  # dom0 is itself a guest: the CPU flags it sees are Xen's choice
    "kvm.device",
    "kvm.access",
    "kvm.module",
    "kvm.nested",
    "kvm.probe",
    "vhost.net",
    "iommu.acpi",
    "iommu.groups",
    "iommu.cmdline",
    "iommu.intremap",
    "vfio.modules",
    "vfio.dev",
    "hostdev.vfio",
)


def _read(paths: HostPaths, root: str, rel: str) -> str:
    base = paths.sys_root if root == "sys" else paths.proc_root
    try:
        return (base / rel).read_text().strip()
    except OSError:
        return ""


def xen_role(paths: HostPaths) -> str | None:
    """ "dom0", "domU" or None (not running on Xen)."""
    if _read(paths, "sys", "hypervisor/type") != "xen" and not (paths.proc_root / "xen").is_dir():
        return None
    caps = _read(paths, "proc", "xen/capabilities")
    return "dom0" if "control_d" in caps.split() else "domU"


def xen_checks(paths: HostPaths, checks: Sequence[CheckResult]) -> list[CheckResult]:
    """On a Xen dom0: the checks that do not apply become SKIP saying why, plus `host.xen`."""
    role = xen_role(paths)
    if role != "dom0":
        return list(checks)
    why = "does not apply on a Xen dom0 (Xen runs the guests and owns the IOMMU)"
    out = [
        replace(c, status=Status.SKIP, observed=f"{c.observed}; {why}", remedy=None)
        if c.id in NOT_ON_XEN_DOM0
        else c
        for c in checks
    ]
    skipped = [c.id for c in checks if c.id in NOT_ON_XEN_DOM0]
    out.append(
        CheckResult(
            "host.xen",
            "Xen dom0 (libvirt's libxl driver runs the guests)",
            Status.PASS,
            f"Xen dom0 (/proc/xen/capabilities: control_d): these checks do not apply: "
            f"{', '.join(skipped) or 'none'}; run guests with -c xen:///system",
        )
    )
    return out
