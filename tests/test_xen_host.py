"""`vbench check` on a Xen dom0: the KVM and VFIO checks do not apply and say so."""

from __future__ import annotations

from pathlib import Path

from vbench.host.checks import LibvirtFacts, check_libvirt, read_facts
from vbench.host.paths import HostPaths
from vbench.host.xen import NOT_ON_XEN_DOM0, xen_checks, xen_role
from vbench.readiness import CheckResult, Status


def _host(tmp_path: Path, hypervisor: str | None, caps: str | None) -> HostPaths:
    paths = HostPaths(proc_root=tmp_path / "proc", sys_root=tmp_path / "sys")
    if hypervisor is not None:
        (paths.sys_root / "hypervisor").mkdir(parents=True)
        (paths.sys_root / "hypervisor" / "type").write_text(hypervisor + "\n")
    if caps is not None:
        (paths.proc_root / "xen").mkdir(parents=True)
        (paths.proc_root / "xen" / "capabilities").write_text(caps)
    return paths


CHECKS = [
    CheckResult("kvm.device", "/dev/kvm exists", Status.FAIL, "/dev/kvm missing", remedy="load"),
    CheckResult("iommu.groups", "groups", Status.FAIL, "no groups", remedy="enable"),
    CheckResult("libvirt.reachable", "libvirt", Status.PASS, "xen:///system (xen driver)"),
]


def test_dom0_skips_what_does_not_apply_and_says_so(tmp_path: Path) -> None:
    paths = _host(tmp_path, "xen", "control_d\n")
    assert xen_role(paths) == "dom0"
    out = {c.id: c for c in xen_checks(paths, CHECKS)}
    assert out["kvm.device"].status is Status.SKIP
    assert "does not apply on a Xen dom0" in out["kvm.device"].observed
    assert out["iommu.groups"].status is Status.SKIP
    assert out["libvirt.reachable"].status is Status.PASS  # it applies
    xen = out["host.xen"]
    assert xen.status is Status.PASS
    assert "kvm.device, iommu.groups" in xen.observed and "xen:///system" in xen.observed
    assert {"kvm.device", "vfio.modules", "hostdev.vfio"} <= set(NOT_ON_XEN_DOM0)


def test_domu_and_plain_hosts_keep_their_checks(tmp_path: Path) -> None:
    domu = _host(tmp_path / "a", "xen", "")
    assert xen_role(domu) == "domU"
    assert xen_checks(domu, CHECKS) == CHECKS
    plain = _host(tmp_path / "b", None, None)
    assert xen_role(plain) is None
    assert xen_checks(plain, CHECKS) == CHECKS


def test_qemu_version_does_not_apply_under_libxl() -> None:
    # libvirt's libxl driver names itself "Xen"; QEMU there is only the device model
    lv = LibvirtFacts(uri="xen:///system", driver="Xen", lib_version="9.0.0", hv_version="4.17.0")
    out = {c.id: c for c in check_libvirt(lv, read_facts(HostPaths()))}
    qemu = out["qemu.version"]
    assert qemu.status is Status.SKIP
    assert "does not apply on Xen 4.17.0" in qemu.observed and not qemu.remedy
