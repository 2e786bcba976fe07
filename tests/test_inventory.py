"""The host inventory against recorded and hand-made umockdev testbeds, and the /proc parsers."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from functools import cache
from typing import Any

import pytest
from support import ALL_TESTBEDS, TESTBEDS, needs_umockdev

from vbench.host import procfs
from vbench.host.testbed import in_testbed, umockdev_argv


@cache
def inventory(name: str) -> dict[str, Any]:
    """Run `python -m vbench.host.inventory --testbed` under umockdev-run and parse its JSON."""
    testbed = TESTBEDS / name
    argv = [
        "umockdev-run",
        "-d",
        str(testbed / "devices.umockdev"),
        "--",
        sys.executable,
        "-m",
        "vbench.host.inventory",
        "--testbed",
        str(testbed),
    ]
    env = {k: v for k, v in os.environ.items() if k != "UMOCKDEV_DIR"}
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, env=env, check=False)
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def pci(inv: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {d["address"]: d for d in inv["pci"]}


def uses(inv: dict[str, Any], address: str) -> list[str]:
    return [u["reason"] for u in inv["host_use"] if u["pci_address"] == address]


def group(inv: dict[str, Any], number: int) -> set[str]:
    return {d["address"] for d in inv["pci"] if d["iommu_group"] == number}


# --- testbeds ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ALL_TESTBEDS)
def test_testbed_is_complete(name: str) -> None:
    testbed = TESTBEDS / name
    for rel in ("devices.umockdev", "README.md", "proc/mounts", "proc/swaps", "proc/net/route"):
        assert (testbed / rel).is_file(), f"{name}: {rel} missing"
    assert (testbed / "sys").is_dir() and (testbed / "dev").is_dir()
    assert (testbed / "devices.umockdev").stat().st_size < 2_000_000


@needs_umockdev
@pytest.mark.parametrize("name", ALL_TESTBEDS)
def test_every_testbed_loads(name: str) -> None:
    inv = inventory(name)
    assert inv["pci"], f"{name}: no PCI devices"
    for d in inv["pci"]:
        assert len(d["vendor_id"]) == 4 and len(d["device_id"]) == 4 and len(d["class_code"]) == 6
    assert inv["host_use"], f"{name}: nothing in host use"


@needs_umockdev
def test_lab_nvme_sriov_pf_and_vfs() -> None:
    inv = inventory("lab-iommu-sriov")
    devs = pci(inv)
    pfs = [d for d in inv["pci"] if d["sriov_totalvfs"] is not None]
    assert len(pfs) == 1
    pf = pfs[0]
    assert pf["class_code"] == "010802" and pf["driver"] == "nvme"
    assert pf["sriov_totalvfs"] == 2 and pf["sriov_numvfs"] == 2
    assert len(pf["vfs"]) == 2
    vfs = [devs[a] for a in pf["vfs"]]
    assert all(vf["physfn"] == pf["address"] for vf in vfs)
    assert sorted(str(vf["driver"]) for vf in vfs) == ["None", "vfio-pci"]
    # every VF alone in its own IOMMU group, apart from the PF's
    vf_groups = [vf["iommu_group"] for vf in vfs]
    assert None not in vf_groups and len(set(vf_groups)) == 2
    assert pf["iommu_group"] not in vf_groups
    for g in vf_groups:
        assert len(group(inv, g)) == 1
    assert pf["vendor_name"] == "Red Hat, Inc."  # hwdb names were recorded (udevd in the lab)


@needs_umockdev
def test_lab_host_use_root_disk_and_default_route() -> None:
    inv = inventory("lab-iommu-sriov")
    vda = next(b for b in inv["block"] if b["name"] == "vda")
    assert vda["pci_address"] is not None
    assert "backs / (vda)" in uses(inv, vda["pci_address"])
    eth0 = next(n for n in inv["net"] if n["name"] == "eth0")
    assert "carries the default route (eth0)" in uses(inv, eth0["pci_address"])
    # the NVMe PF and its VFs are free for passthrough
    for d in inv["pci"]:
        if d["class_code"] == "010802":
            assert uses(inv, d["address"]) == []


@needs_umockdev
def test_nokvm_noiommu_host() -> None:
    inv = inventory("nokvm-noiommu")
    assert all(d["iommu_group"] is None for d in inv["pci"])
    assert any("IOMMU is off or absent" in n for n in inv["notes"])
    root = next(b for b in inv["block"] if b["name"] == "vda")
    assert any(r.startswith("backs / ") for r in uses(inv, root["pci_address"]))


@needs_umockdev
def test_nic_sriov_vfs_and_pf_default_route() -> None:
    inv = inventory("nic-sriov")
    devs = pci(inv)
    pf = devs["0000:03:00.0"]
    assert pf["sriov_totalvfs"] == 4 and pf["sriov_numvfs"] == 2
    assert pf["vfs"] == ["0000:03:10.0", "0000:03:10.2"]
    assert pf["numa_node"] == 0
    assert devs["0000:03:10.0"]["physfn"] == pf["address"]
    assert devs["0000:03:10.2"]["driver"] == "vfio-pci"
    assert group(inv, devs["0000:03:10.0"]["iommu_group"]) == {"0000:03:10.0"}
    assert group(inv, devs["0000:03:10.2"]["iommu_group"]) == {"0000:03:10.2"}
    assert uses(inv, pf["address"]) == ["carries the default route (enp3s0f0)"]
    assert uses(inv, "0000:03:10.0") == [] and uses(inv, "0000:03:10.2") == []
    assert {n["name"]: n["pci_address"] for n in inv["net"]}["enp3s16"] == "0000:03:10.0"


@needs_umockdev
def test_gpu_and_hdmi_audio_share_a_group() -> None:
    inv = inventory("gpu-audio-group")
    devs = pci(inv)
    gpu, audio = devs["0000:0a:00.0"], devs["0000:0a:00.1"]
    assert gpu["class_code"].startswith("03") and audio["class_code"].startswith("0403")
    assert gpu["iommu_group"] == audio["iommu_group"] == 16
    assert group(inv, 16) == {"0000:0a:00.0", "0000:0a:00.1"}
    assert gpu["driver"] == "vfio-pci" and audio["driver"] == "snd_hda_intel"
    assert gpu["vendor_name"] == "NVIDIA Corporation"


@needs_umockdev
def test_no_acs_three_devices_in_one_group() -> None:
    inv = inventory("no-acs-group")
    members = group(inv, 8)
    endpoints = {a for a in members if not pci(inv)[a]["is_bridge"]}
    assert endpoints == {"0000:04:00.0", "0000:04:01.0", "0000:04:02.0"}
    assert pci(inv)["0000:03:00.0"]["is_bridge"]  # PCIe-to-PCI bridge, class 0x060401
    assert "backs /var/lib/my vms (sda1)" in uses(inv, "0000:00:1f.2")


@needs_umockdev
def test_rootfs_nvme_and_its_group_mate_in_host_use() -> None:
    inv = inventory("rootfs-device")
    nvme = uses(inv, "0000:02:00.0")
    assert "backs / (dm-0 on nvme0n1p2)" in nvme
    assert "backs /boot/efi (nvme0n1p1)" in nvme
    assert "backs swap (nvme0n1p3)" in nvme
    mate = uses(inv, "0000:03:00.0")
    assert len(mate) == 1
    assert mate[0].startswith("shares IOMMU group 14 with 0000:02:00.0 which backs / ")
    assert uses(inv, "0000:00:02.0") == []  # the iGPU in its own group is free
    dm = next(b for b in inv["block"] if b["name"] == "dm-0")
    assert dm["pci_address"] == "0000:02:00.0"
    nvme0n1 = next(b for b in inv["block"] if b["name"] == "nvme0n1")
    assert nvme0n1["partitions"] == ["nvme0n1p1", "nvme0n1p2", "nvme0n1p3"]


@needs_umockdev
def test_testbed_option_reexecs_under_umockdev() -> None:
    """`python -m vbench.host.inventory --testbed DIR` alone re-execs itself under umockdev-run."""
    env = {k: v for k, v in os.environ.items() if k != "UMOCKDEV_DIR"}
    done = subprocess.run(
        [sys.executable, "-m", "vbench.host.inventory", "--testbed", str(TESTBEDS / "nic-sriov")],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["pci"][0]["address"].startswith("0000:")


def test_umockdev_argv_and_in_testbed(monkeypatch: pytest.MonkeyPatch) -> None:
    if shutil.which("umockdev-run") is not None:
        argv = umockdev_argv(TESTBEDS / "nic-sriov", ["true"])
        assert argv[1:3] == ["-d", str((TESTBEDS / "nic-sriov" / "devices.umockdev").resolve())]
        assert argv[3:] == ["--", "true"]
    monkeypatch.delenv("UMOCKDEV_DIR", raising=False)
    assert not in_testbed()
    monkeypatch.setenv("UMOCKDEV_DIR", "/tmp/umockdev.x")
    assert in_testbed()


# --- /proc parsers -------------------------------------------------------------------------------


def test_parse_mounts_unescapes_spaces() -> None:
    text = (
        "/dev/sda1 / ext4 rw,relatime 0 0\n"
        "/dev/sdb1 /mnt/my\\040disk ext4 rw 0 0\n"
        "tmpfs /run tmpfs rw,nosuid 0 0\n"
        "garbage\n"
    )
    mounts = procfs.parse_mounts(text)
    assert [m.target for m in mounts] == ["/", "/mnt/my disk", "/run"]
    assert mounts[1].source == "/dev/sdb1" and mounts[1].fstype == "ext4"
    assert mounts[0].options == ("rw", "relatime")


def test_parse_swaps_skips_header() -> None:
    text = (
        "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n"
        "/dev/nvme0n1p2                          partition\t8388604\t\t0\t\t-2\n"
        "/swap\\040file                          file\t\t1048572\t\t0\t\t-3\n"
    )
    swaps = procfs.parse_swaps(text)
    assert swaps == [
        procfs.Swap("/dev/nvme0n1p2", "partition", 8388604),
        procfs.Swap("/swap file", "file", 1048572),
    ]
    assert procfs.parse_swaps("Filename\tType\tSize\tUsed\tPriority\n") == []


def test_parse_route_hex_and_default() -> None:
    text = (
        "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"
        "eth0\t00000000\t010200C0\t0003\t0\t0\t100\t00000000\t0\t0\t0\n"
        "eth0\t000200C0\t00000000\t0001\t0\t0\t100\t00FFFFFF\t0\t0\t0\n"
        "wg0\t00000000\t00000000\t0000\t0\t0\t0\t00000000\t0\t0\t0\n"
    )
    routes = procfs.parse_route(text)
    assert routes[0].gateway == "192.0.2.1" and routes[0].is_default
    assert routes[1].destination == "192.0.2.0" and routes[1].mask == "255.255.255.0"
    assert not routes[1].is_default
    assert procfs.default_route_ifaces(routes) == ["eth0"]  # wg0's route is not up
    assert procfs.hex_to_ipv4("0100A8C0") == "192.168.0.1"
