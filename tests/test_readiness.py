"""Pure tests of the readiness core: verdicts, device offering, strict mode, remedies."""

from __future__ import annotations

import pytest

from vbench.inventory import HostUse, Inventory, PciDevice
from vbench.model import ModeId
from vbench.readiness import (
    DEVICES_SRIOV,
    DEVICES_VFIO,
    CheckResult,
    ModeVerdict,
    Status,
    distro_family,
    exit_code,
    install_remedy,
    kernel_cmdline_remedy,
    mode_verdicts,
    module_load_remedy,
    parse_modes,
)

FV, PV, VFIO, SRIOV = ModeId.FV, ModeId.PV, ModeId.VFIO, ModeId.SRIOV
ALL = (FV, PV, VFIO, SRIOV)
PT = (VFIO, SRIOV)


def ok(cid: str, gates: tuple[ModeId, ...] = (), degrades: tuple[ModeId, ...] = ()) -> CheckResult:
    return CheckResult(cid, cid, Status.PASS, "fine", gates=gates, degrades=degrades)


def fail(
    cid: str, gates: tuple[ModeId, ...] = (), degrades: tuple[ModeId, ...] = ()
) -> CheckResult:
    return CheckResult(
        cid, cid, Status.FAIL, "broken", remedy=f"fix {cid}", gates=gates, degrades=degrades
    )


def warn(
    cid: str, gates: tuple[ModeId, ...] = (), degrades: tuple[ModeId, ...] = ()
) -> CheckResult:
    return CheckResult(
        cid, cid, Status.WARN, "meh", remedy=f"improve {cid}", gates=gates, degrades=degrades
    )


GOOD_CHECKS = [
    ok("libvirt.reachable", gates=ALL),
    ok("iommu.groups", gates=PT),
    ok("vfio.modules", gates=PT),
    ok("hostdev.vfio", gates=PT),
    warn("cpu.hwvirt", degrades=ALL),
]


def pci(address: str, group: int | None, **kw: object) -> PciDevice:
    base: dict[str, object] = {
        "address": address,
        "vendor_id": "1b36",
        "device_id": "0010",
        "class_code": "010802",
        "iommu_group": group,
    }
    base.update(kw)
    return PciDevice(**base)  # type: ignore[arg-type]


ROOT_DISK = pci("0000:00:02.0", 2, driver="virtio-pci", class_code="010000")
NIC = pci("0000:00:05.0", 5, driver="virtio-pci", class_code="020000")
PF = pci(
    "0000:00:04.0",
    4,
    driver="nvme",
    sriov_totalvfs=2,
    sriov_numvfs=2,
    vfs=("0000:00:04.1", "0000:00:04.2"),
)
VF0 = pci("0000:00:04.1", 7, driver="vfio-pci", physfn="0000:00:04.0")
VF1 = pci("0000:00:04.2", 8, driver=None, physfn="0000:00:04.0")
ROOT_USE = HostUse("0000:00:02.0", "backs / (vda)")
NET_USE = HostUse("0000:00:05.0", "carries the default route (eth0)")

LAB = Inventory(pci=(ROOT_DISK, PF, VF0, VF1, NIC), host_use=(ROOT_USE, NET_USE))


def verdict(verdicts: list[ModeVerdict], mode: ModeId) -> ModeVerdict:
    return next(v for v in verdicts if v.mode is mode)


def test_check_result_validates() -> None:
    with pytest.raises(ValueError, match="needs a remedy"):
        CheckResult("x.y", "t", Status.FAIL, "bad")
    with pytest.raises(ValueError, match="non-empty word"):
        CheckResult("x y", "t", Status.PASS, "ok")


def test_vfio_ready_only_with_iommu_vfio_and_an_assignable_device() -> None:
    v = verdict(mode_verdicts(GOOD_CHECKS, LAB), VFIO)
    assert v.ready, v.summary
    offered = [o.address for o in v.offered]
    assert offered[0] == "0000:00:04.1"  # the vfio-bound VF first
    assert "vfio-pci" in v.offered[0].note
    assert "0000:00:04.1" in v.summary

    no_iommu = [
        fail("iommu.groups", gates=PT) if c.id == "iommu.groups" else c for c in GOOD_CHECKS
    ]
    v = verdict(mode_verdicts(no_iommu, LAB), VFIO)
    assert not v.ready
    assert "iommu.groups" in v.blockers
    assert any(r.text == "fix iommu.groups" and "iommu.groups" in r.checks for r in v.remedies)

    no_vfio = [fail("vfio.modules", gates=PT) if c.id == "vfio.modules" else c for c in GOOD_CHECKS]
    assert not verdict(mode_verdicts(no_vfio, LAB), VFIO).ready

    only_host_devices = Inventory(pci=(ROOT_DISK, NIC), host_use=(ROOT_USE, NET_USE))
    v = verdict(mode_verdicts(GOOD_CHECKS, only_host_devices), VFIO)
    assert not v.ready
    assert v.blockers == (DEVICES_VFIO,)


def test_device_in_host_use_is_never_offered() -> None:
    for mode in (VFIO, SRIOV):
        v = verdict(mode_verdicts(GOOD_CHECKS, LAB), mode)
        offered = {o.address for o in v.offered}
        assert "0000:00:02.0" not in offered
        assert "0000:00:05.0" not in offered
    v = verdict(mode_verdicts(GOOD_CHECKS, LAB), VFIO)
    excluded = {e.address: e.reason for e in v.excluded}
    assert "backs / (vda)" in excluded["0000:00:02.0"]
    assert "default route" in excluded["0000:00:05.0"]


def test_group_with_a_host_used_member_is_not_assignable() -> None:
    # no ACS: the root disk's controller and a spare NVMe share IOMMU group 1
    disk = pci("0000:01:00.0", 1, driver="ahci", class_code="010601")
    spare = pci("0000:01:00.1", 1, driver="nvme")
    bridge = pci("0000:00:01.0", 1, driver="pcieport", class_code="060400", is_bridge=True)
    inv = Inventory(pci=(bridge, disk, spare), host_use=(HostUse(disk.address, "backs / (sda1)"),))
    v = verdict(mode_verdicts(GOOD_CHECKS, inv), VFIO)
    assert not v.ready
    excluded = {e.address: e.reason for e in v.excluded}
    assert "in IOMMU group 1 with 0000:01:00.0" in excluded["0000:01:00.1"]
    assert "0000:00:01.0" not in excluded  # bridges are not candidates at all


def test_whole_group_assignable_names_its_peers() -> None:
    gpu = pci("0000:02:00.0", 9, driver="nouveau", class_code="030000")
    audio = pci("0000:02:00.1", 9, driver="snd_hda_intel", class_code="040300")
    v = verdict(mode_verdicts(GOOD_CHECKS, Inventory(pci=(gpu, audio))), VFIO)
    assert v.ready
    by = {o.address: o for o in v.offered}
    assert by["0000:02:00.0"].group_peers == ("0000:02:00.1",)
    assert "together with 0000:02:00.1" in by["0000:02:00.0"].note


def test_sriov_free_vfs_and_enableable_pfs() -> None:
    v = verdict(mode_verdicts(GOOD_CHECKS, LAB), SRIOV)
    assert v.ready
    assert [o.address for o in v.offered] == ["0000:00:04.1", "0000:00:04.2"]
    assert all(o.pf == "0000:00:04.0" and o.role == "vf" for o in v.offered)
    assert {o.iommu_group for o in v.offered} == {7, 8}

    pf_off = pci("0000:03:00.0", 3, driver="ixgbe", sriov_totalvfs=4, sriov_numvfs=0)
    v = verdict(mode_verdicts(GOOD_CHECKS, Inventory(pci=(pf_off,))), SRIOV)
    assert not v.ready
    assert v.blockers == (DEVICES_SRIOV,)
    assert v.remedies[0].checks == (DEVICES_SRIOV,)
    assert "echo 4 > /sys/bus/pci/devices/0000:03:00.0/sriov_numvfs" in v.remedies[0].text

    v = verdict(mode_verdicts(GOOD_CHECKS, Inventory(pci=(ROOT_DISK,))), SRIOV)
    assert not v.ready and "no SR-IOV capable device" in v.remedies[0].text


def test_vf_of_a_host_used_pf_is_free_when_in_its_own_group() -> None:
    pf = pci("0000:03:00.0", 31, driver="ixgbe", sriov_totalvfs=4, sriov_numvfs=1)
    pf = PciDevice(**{**pf.__dict__, "vfs": ("0000:03:10.0",)})
    vf = pci("0000:03:10.0", 60, driver="ixgbevf", physfn=pf.address)
    inv = Inventory(pci=(pf, vf), host_use=(HostUse(pf.address, "carries the default route"),))
    v = verdict(mode_verdicts(GOOD_CHECKS, inv), SRIOV)
    assert v.ready and [o.address for o in v.offered] == ["0000:03:10.0"]


def test_strict_makes_warnings_block() -> None:
    relaxed = mode_verdicts(GOOD_CHECKS, LAB, strict=False)
    assert all(v.ready for v in relaxed)
    assert "cpu.hwvirt" in verdict(relaxed, FV).warnings
    strict = mode_verdicts(GOOD_CHECKS, LAB, strict=True)
    assert not any(v.ready for v in strict)
    assert "cpu.hwvirt" in verdict(strict, FV).blockers
    # a WARN on a check that concerns no mode never blocks, even under strict
    extra = [*GOOD_CHECKS[:-1], warn("memory.hugepages")]
    assert all(v.ready for v in mode_verdicts(extra, LAB, strict=True))


def test_skip_never_blocks_and_degrading_fail_only_under_strict() -> None:
    checks = [*GOOD_CHECKS[:-1], CheckResult("kvm.probe", "p", Status.SKIP, "not run")]
    assert all(v.ready for v in mode_verdicts(checks, LAB, strict=True))
    checks = [*GOOD_CHECKS[:-1], fail("cpu.hwvirt", degrades=ALL)]
    assert verdict(mode_verdicts(checks, LAB), FV).ready
    assert not verdict(mode_verdicts(checks, LAB, strict=True), FV).ready


def test_exit_code_considers_requested_modes_only() -> None:
    checks = [*GOOD_CHECKS, fail("iommu.cmdline", gates=PT)]
    verdicts = mode_verdicts(checks, LAB)
    assert exit_code(verdicts, (FV, PV)) == 0
    assert exit_code(verdicts, (FV, VFIO)) == 2


def test_exit_code_is_an_error_when_libvirtd_cannot_be_reached() -> None:
    checks = [fail("libvirt.reachable", gates=ALL), *GOOD_CHECKS[1:]]
    verdicts = mode_verdicts(checks, LAB)
    assert exit_code(verdicts, (FV, PV)) == 2  # without the checks: only "not ready"
    assert exit_code(verdicts, (FV, PV), checks) == 1
    assert exit_code(mode_verdicts(GOOD_CHECKS, LAB), (FV, PV), GOOD_CHECKS) == 0


def test_parse_modes() -> None:
    assert parse_modes(["vfio", "SRIOV", "vfio"]) == (VFIO, SRIOV)
    with pytest.raises(ValueError, match="unknown mode 'gpu'"):
        parse_modes(["gpu"])


def test_distro_specific_remedies() -> None:
    suse = {"ID": "sles", "ID_LIKE": "suse"}
    leap = {"ID": "opensuse-leap", "ID_LIKE": "suse opensuse"}
    ubuntu = {"ID": "ubuntu", "ID_LIKE": "debian"}
    assert distro_family(suse) == distro_family(leap) == "suse"
    assert distro_family(ubuntu) == distro_family({"ID": "debian"}) == "debian"
    assert distro_family({}) == "unknown"
    s = kernel_cmdline_remedy("intel_iommu=on iommu=pt", suse)
    assert "YaST" in s and "grub2-mkconfig" in s and "intel_iommu=on iommu=pt" in s
    d = kernel_cmdline_remedy("amd_iommu=on iommu=pt", ubuntu)
    assert "update-grub" in d and "YaST" not in d
    generic = kernel_cmdline_remedy("intel_iommu=on", {})
    assert "update-grub" in generic and "grub2-mkconfig" in generic
    m = module_load_remedy(["vfio", "vfio_pci"], ubuntu)
    assert "modprobe -a vfio vfio_pci" in m and "/etc/modules-load.d/vfio.conf" in m
    assert install_remedy(["qemu-ga"], ubuntu) == "`apt-get install qemu-guest-agent`"
    assert install_remedy(["fio"], leap) == "`zypper install fio`"
