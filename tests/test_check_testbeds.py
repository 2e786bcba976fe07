"""`vbench check` end to end on the recorded testbeds (umockdev), as a subprocess.

Each run is `vbench check --testbed DIR --json -c test:///default`: the hidden --testbed re-executes
under `umockdev-run -d DIR/devices.umockdev` and reads DIR/proc, DIR/sys, DIR/dev.  libvirt's test
driver stands in for libvirtd (it reports no domain capabilities, so those checks WARN/SKIP).
"""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from support import ALL_TESTBEDS, bed

from vbench.checkdoc import load_check_document
from vbench.host.checks import check_cgroups, check_iommu_cmdline, check_vfio_modules, read_facts
from vbench.host.paths import HostPaths
from vbench.inventory import Inventory
from vbench.readiness import Status


def vbench(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from vbench.cli import main; main()", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@cache
def _check(name: str, modes: tuple[str, ...] = ()) -> tuple[int, str, str]:
    args = ["check", "--testbed", str(bed(name)), "--json", "-c", "test:///default"]
    for m in modes:
        args += ["--mode", m]
    p = vbench(*args)
    return p.returncode, p.stdout, p.stderr


def check_json(name: str, *modes: str) -> tuple[int, dict[str, Any]]:
    rc, out, err = _check(name, tuple(modes))
    assert rc in (0, 2), f"exit {rc}: {err}"
    assert "Traceback" not in err, err
    return rc, json.loads(out)


def verdict(doc: dict[str, Any], mode: str) -> dict[str, Any]:
    return next(v for v in doc["verdicts"] if v["mode"] == mode)


def check(doc: dict[str, Any], cid: str) -> dict[str, Any]:
    return next(c for c in doc["checks"] if c["id"] == cid)


@pytest.mark.parametrize("name", ALL_TESTBEDS)
def test_document_shape_on_every_testbed(name: str) -> None:
    rc, doc = check_json(name)
    assert doc["format_version"] == 2 and doc["kind"] == "vbench.check"
    typed = load_check_document(doc, name)  # what `vbench check --json` writes, the model reads
    assert typed.model_dump(mode="json") == doc
    assert doc["host"]["testbed"] == str(bed(name))
    assert doc["requested_modes"] == ["fv", "pv"]
    assert rc == doc["exit_code"] == (0 if doc["ready"] else 2)
    assert [v["mode"] for v in doc["verdicts"]] == ["fv", "pv", "vfio", "sriov"]
    for c in doc["checks"]:
        assert c["status"] in ("PASS", "WARN", "FAIL", "SKIP")
        assert c["observed"]
        if c["status"] in ("WARN", "FAIL"):
            assert c["remedy"], c["id"]
    ids = [c["id"] for c in doc["checks"]]
    assert len(ids) == len(set(ids))
    assert check(doc, "libvirt.reachable")["status"] == "PASS"  # the test driver
    assert doc["inventory"]["pci"], "the umockdev recording provides PCI devices"


def test_lab_vfio_and_sriov_ready_naming_vfs_and_the_vfio_bound_device() -> None:
    rc, doc = check_json("lab-iommu-sriov", "vfio", "sriov")
    assert rc == 0
    for cid in ("iommu.groups", "iommu.cmdline", "iommu.acpi", "vfio.modules", "vfio.dev"):
        assert check(doc, cid)["status"] == "PASS", check(doc, cid)
    assert check(doc, "iommu.intremap")["status"] == "PASS"  # VT-d ECAP.IR from the recording
    assert "intel_iommu=on" in check(doc, "iommu.cmdline")["observed"]

    vfio = verdict(doc, "vfio")
    assert vfio["ready"] and vfio["requested"]
    first = vfio["offered"][0]
    assert first["address"] == "0000:00:04.1" and first["driver"] == "vfio-pci"
    assert "0000:00:04.1" in vfio["summary"] and "vfio-pci" in vfio["summary"]
    offered = {o["address"] for o in vfio["offered"]}
    assert "0000:00:02.0" not in offered  # backs /
    assert "0000:00:05.0" not in offered  # default route
    excluded = {e["address"]: e["reason"] for e in vfio["excluded"]}
    assert "backs /" in excluded["0000:00:02.0"]
    assert "default route" in excluded["0000:00:05.0"]

    sriov = verdict(doc, "sriov")
    assert sriov["ready"]
    vfs = {o["address"]: o for o in sriov["offered"]}
    assert set(vfs) == {"0000:00:04.1", "0000:00:04.2"}
    assert {o["pf"] for o in vfs.values()} == {"0000:00:04.0"}
    assert vfs["0000:00:04.1"]["iommu_group"] == 7 and vfs["0000:00:04.2"]["iommu_group"] == 8
    assert "0000:00:04.1" in sriov["summary"] and "0000:00:04.2" in sriov["summary"]


def test_lab_default_modes_blocked_only_by_missing_tun() -> None:
    rc, doc = check_json("lab-iommu-sriov")
    assert rc == 2  # the lab's /dev snapshot has no net/tun
    assert verdict(doc, "fv")["blockers"] == ["net.tun"]


def test_nokvm_noiommu_not_ready_with_the_iommu_remedy() -> None:
    rc, doc = check_json("nokvm-noiommu", "vfio", "sriov")
    assert rc == 2
    for mode in ("vfio", "sriov"):
        v = verdict(doc, mode)
        assert not v["ready"]
        assert "iommu.groups" in v["blockers"] and "iommu.cmdline" in v["blockers"]
        text = " ".join(r["text"] for r in v["remedies"])
        assert "iommu=pt" in text and "kernel command line" in text
        assert "update-grub" in text and "grub2-mkconfig" in text  # no os-release: both hints
    assert check(doc, "iommu.acpi")["status"] == "WARN"
    assert check(doc, "cpu.hwvirt")["status"] == "FAIL"
    assert "kvm_pvm" in check(doc, "kvm.module")["observed"]
    assert verdict(doc, "vfio")["offered"] == []

    rc, doc = check_json("nokvm-noiommu")
    assert rc == 0  # FV and PV run under TCG here: KVM checks degrade, they do not block


def test_nic_sriov_vfs_free_although_the_pf_carries_the_default_route() -> None:
    rc, doc = check_json("nic-sriov", "sriov")
    assert rc == 0
    sriov = verdict(doc, "sriov")
    assert {o["address"] for o in sriov["offered"]} == {"0000:03:10.0", "0000:03:10.2"}
    excluded = {e["address"]: e["reason"] for e in verdict(doc, "vfio")["excluded"]}
    assert "default route" in excluded["0000:03:00.0"]


def test_gpu_and_its_audio_function_go_together() -> None:
    _rc, doc = check_json("gpu-audio-group", "vfio")
    by = {o["address"]: o for o in verdict(doc, "vfio")["offered"]}
    assert by["0000:0a:00.0"]["group_peers"] == ["0000:0a:00.1"]
    assert by["0000:0a:00.0"]["driver"] == "vfio-pci"
    assert "0000:01:00.0" not in by  # root NVMe


def test_no_acs_group_members_must_be_assigned_together() -> None:
    _rc, doc = check_json("no-acs-group", "vfio")
    by = {o["address"]: o for o in verdict(doc, "vfio")["offered"]}
    assert len(by["0000:04:00.0"]["group_peers"]) == 2
    assert "0000:03:00.0" not in by  # the PCIe-to-PCI bridge is not a candidate


def test_rootfs_group_is_never_offered() -> None:
    _rc, doc = check_json("rootfs-device", "vfio")
    v = verdict(doc, "vfio")
    offered = {o["address"] for o in v["offered"]}
    assert "0000:02:00.0" not in offered and "0000:03:00.0" not in offered
    excluded = {e["address"]: e["reason"] for e in v["excluded"]}
    assert "backs /" in excluded["0000:02:00.0"]
    assert "0000:03:00.0" in excluded


def test_table_and_junit_on_the_lab(tmp_path: Path) -> None:
    junit = tmp_path / "check.xml"
    p = vbench(
        "check",
        "--testbed",
        str(bed("lab-iommu-sriov")),
        "-c",
        "test:///default",
        "--mode",
        "vfio",
        "--junit",
        str(junit),
    )
    assert p.returncode == 0, p.stderr
    assert "Host checks" in p.stdout and "PCI devices" in p.stdout
    assert "0000:00:04.1" in p.stdout and "READY" in p.stdout
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite is not None
    _rc, doc = check_json("lab-iommu-sriov", "vfio")
    assert len(suite.findall("testcase")) == len(doc["checks"])


def test_errors_are_one_line_with_exit_1(tmp_path: Path) -> None:
    p = vbench("check", "--testbed", str(bed("lab-iommu-sriov")), "--mode", "gpu")
    assert p.returncode == 1
    assert p.stderr.strip().count("\n") == 0 and "unknown mode 'gpu'" in p.stderr
    p = vbench("check", "--testbed", str(tmp_path))
    assert p.returncode == 1 and "Traceback" not in p.stderr
    assert "is not a testbed" in " ".join(p.stderr.split())  # rich may wrap at 80 columns


# --- small host trees written by the test (real files; no umockdev needed) -----------------------


def host_tree(tmp_path: Path, files: dict[str, str]) -> HostPaths:
    for rel, text in files.items():
        p = tmp_path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return HostPaths.for_testbed(tmp_path)


def test_cgroup_v2_controllers(tmp_path: Path) -> None:
    paths = host_tree(
        tmp_path,
        {
            "proc/mounts": "cgroup2 /sys/fs/cgroup cgroup2 rw,nosuid 0 0\n",
            "sys/fs/cgroup/cgroup.controllers": "cpuset cpu io memory pids\n",
        },
    )
    found = {c.id: c for c in check_cgroups(read_facts(paths))}
    assert all(c.status is Status.PASS for c in found.values()), found
    assert "(io)" in found["cgroup.blkio"].observed and "(cpu)" in found["cgroup.cpuacct"].observed

    paths = host_tree(tmp_path, {"sys/fs/cgroup/cgroup.controllers": "cpu pids\n"})
    found = {c.id: c for c in check_cgroups(read_facts(paths))}
    assert found["cgroup.memory"].status is Status.WARN and found["cgroup.memory"].remedy


def test_iommu_command_line_against_sysfs(tmp_path: Path) -> None:
    debian = {"etc/os-release": "ID=debian\n", "sys/firmware/acpi/tables/DMAR": ""}
    paths = host_tree(tmp_path, {**debian, "proc/cmdline": "root=/dev/sda1 intel_iommu=off\n"})
    c = check_iommu_cmdline(read_facts(paths), Inventory())
    assert c.status is Status.FAIL and "intel_iommu=off disables" in c.observed
    assert c.remedy and "update-grub" in c.remedy and "YaST" not in c.remedy

    paths = host_tree(tmp_path, {"proc/cmdline": "root=/dev/sda1 intel_iommu=on\n"})
    c = check_iommu_cmdline(read_facts(paths), Inventory())
    assert c.status is Status.FAIL and "asked for an IOMMU but found none" in c.observed

    (tmp_path / "sys/kernel/iommu_groups/0").mkdir(parents=True)
    c = check_iommu_cmdline(read_facts(paths), Inventory())
    assert c.status is Status.PASS and "iommu=pt not set" in c.observed


def test_modules_from_proc_or_sys_and_loadable_from_modules_dep(tmp_path: Path) -> None:
    paths = host_tree(
        tmp_path,
        {
            "etc/os-release": 'ID="opensuse-tumbleweed"\nID_LIKE="opensuse suse"\n',
            "proc/sys/kernel/osrelease": "6.4.0-1-default\n",
            "proc/modules": "vfio 49152 0 - Live 0x0\n",
            "lib/modules/6.4.0-1-default/modules.dep": (
                "kernel/drivers/vfio/pci/vfio-pci.ko.zst: kernel/drivers/vfio/vfio.ko.zst\n"
                "kernel/drivers/vfio/vfio_iommu_type1.ko.zst:\n"
            ),
        },
    )
    c = check_vfio_modules(read_facts(paths))
    assert c.status is Status.WARN, c.observed
    assert "vfio loaded" in c.observed and "vfio_pci loadable" in c.observed
    assert c.remedy and "modules-load.d" in c.remedy and "YaST" in c.remedy
