"""Mode providers: planning (device resolution, safety, host changes), guest target parsing, and
`vbench run --dry-run` on the lab testbed (umockdev) and on this host."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from support import bed
from support import vbench_cli as _vbench

from vbench.errors import ScenarioError
from vbench.host.changes import HostChange
from vbench.inventory import HostUse, Inventory, PciDevice
from vbench.model import ModeId
from vbench.modes import DeviceRefused, HostView, ModePlan, Skip, provider_for
from vbench.modes.base import nvme_block_name, parse_block_listing
from vbench.scenario import ModeSpec, parse_scenario

ROOT = Path(__file__).parent.parent
DOMAIN_RNG = Path("/usr/share/libvirt/schemas/domain.rng")

PF = "0000:04:00.0"
VF1, VF2 = "0000:04:00.1", "0000:04:00.2"
DISK = "0000:02:00.0"  # backs /
NVME = "0000:05:00.0"
PEER = "0000:05:00.1"  # an endpoint in NVME's IOMMU group


def _dev(addr: str, group: int, **kw: object) -> PciDevice:
    return PciDevice(addr, "1b36", "0010", "010802", iommu_group=group, **kw)  # type: ignore[arg-type]


INV = Inventory(
    pci=(
        _dev(DISK, 2, driver="virtio-pci"),
        _dev(PF, 4, driver="nvme", sriov_totalvfs=4, sriov_numvfs=2, vfs=(VF1, VF2)),
        _dev(VF1, 7, driver="vfio-pci", physfn=PF),
        _dev(VF2, 8, physfn=PF),
        _dev(NVME, 9, driver="nvme"),
        PciDevice(PEER, "8086", "1234", "0c0330", iommu_group=9, driver="xhci_hcd"),
    ),
    host_use=(HostUse(DISK, "backs / (vda1)"),),
)


def _plan(entry: dict[str, object], view: HostView) -> ModePlan | Skip:
    spec = ModeSpec.model_validate(entry, strict=False)
    return provider_for(spec.id).plan(spec, str(entry["id"]), view)


def test_free_vf_is_chosen_not_one_a_running_domain_holds() -> None:
    plan = _plan({"id": "sriov", "pf": PF}, HostView(inventory=INV))
    assert isinstance(plan, ModePlan) and plan.devices is not None
    assert [h.pci_address for h in plan.devices.hostdevs] == [VF1]  # vfio-pci bound first
    held = HostView(inventory=INV, assigned={VF1: "other-guest"})
    plan = _plan({"id": "sriov", "pf": PF}, held)
    assert isinstance(plan, ModePlan) and plan.devices is not None
    assert [h.pci_address for h in plan.devices.hostdevs] == [VF2]
    assert plan.devices.target.kind == "nvme"
    assert plan.devices.target.key == plan.devices.hostdevs[0].guest_address == "0000:01:00.0"


def test_device_the_host_uses_is_refused_and_the_refusal_names_the_override() -> None:
    with pytest.raises(DeviceRefused) as exc:
        _plan({"id": "vfio", "pci": DISK}, HostView(inventory=INV))
    msg = str(exc.value)
    assert "\n" not in msg
    assert f"{DISK}: used by the host (backs / (vda1))" in msg
    assert "`allow`" in msg and "only override" in msg


def test_allow_list_is_the_override() -> None:
    plan = _plan({"id": "vfio", "pci": DISK, "allow": [DISK]}, HostView(inventory=INV))
    assert isinstance(plan, ModePlan) and plan.devices is not None
    assert [h.pci_address for h in plan.devices.hostdevs] == [DISK]


def test_shared_group_is_refused_unless_every_endpoint_is_listed() -> None:
    with pytest.raises(DeviceRefused, match=f"shares IOMMU group 9 with {PEER}"):
        _plan({"id": "vfio", "pci": NVME}, HostView(inventory=INV))
    plan = _plan({"id": "vfio", "pci": [NVME, PEER]}, HostView(inventory=INV))
    assert isinstance(plan, ModePlan) and plan.devices is not None
    assert [h.guest_address for h in plan.devices.hostdevs] == ["0000:01:00.0", "0000:02:00.0"]
    assert plan.devices.pcie_root_ports == 2


def test_device_sharing_a_group_with_a_host_device_is_refused() -> None:
    inv = Inventory(
        pci=(_dev(DISK, 2), _dev(NVME, 2)),
        host_use=(HostUse(DISK, "backs / (vda1)"),),
    )
    with pytest.raises(DeviceRefused, match=f"{NVME}: used by the host .*{DISK}"):
        _plan({"id": "vfio", "pci": NVME}, HostView(inventory=inv))


def test_match_skips_unsafe_devices_and_says_why_when_none_is_left() -> None:
    plan = _plan({"id": "vfio", "match": {"vendor_device": "1b36:0010"}}, HostView(inventory=INV))
    assert isinstance(plan, ModePlan) and plan.devices is not None
    assert [h.pci_address for h in plan.devices.hostdevs] == [PF]  # DISK is the host's; VFs not
    inv = Inventory(pci=(_dev(DISK, 2),), host_use=(HostUse(DISK, "backs /"),))
    skip = _plan({"id": "vfio", "match": {"vendor_device": "1b36:0010"}}, HostView(inventory=inv))
    assert isinstance(skip, Skip)
    assert "used by the host" in skip.reason


def _plan_vf(pf: str, want: int, index: int) -> list[HostChange]:
    # the lab helper's vbench.host.sriov_prep.plan_vf reads the PF; here a fixed answer
    return [HostChange("sysfs_write", f"/sys/bus/pci/devices/{pf}/sriov_numvfs", "0", str(want),
                       f"{pf}: sriov_numvfs 0 -> {want}")]  # fmt: skip


def test_too_few_vfs_skips_with_the_change_it_would_make() -> None:
    inv = Inventory(pci=(_dev(PF, 4, driver="nvme", sriov_totalvfs=4, sriov_numvfs=0),))
    skip = _plan({"id": "sriov", "pf": PF}, HostView(inventory=inv, plan_vf=_plan_vf))
    assert isinstance(skip, Skip)
    assert f"{PF}: sriov_numvfs 0 -> 1" in skip.reason
    assert "--prepare-host" in skip.reason
    assert [c.describe for c in skip.changes] == [f"{PF}: sriov_numvfs 0 -> 1"]
    plan = _plan({"id": "sriov", "pf": PF}, HostView(inventory=inv, plan_vf=_plan_vf, prepare=True))
    assert isinstance(plan, ModePlan)
    assert plan.replan and plan.devices is None and len(plan.changes) == 1


def test_host_blockers_skip_passthrough_but_not_emulated_modes() -> None:
    from vbench.model import ModeId

    view = HostView(inventory=INV, blockers={ModeId.VFIO: ("iommu.groups (no groups)",)})
    skip = _plan({"id": "vfio", "pci": NVME}, view)
    assert isinstance(skip, Skip) and "iommu.groups" in skip.reason
    assert isinstance(_plan({"id": "pv"}, view), ModePlan)


def test_nic_vf_gets_mac_and_vlan() -> None:
    nic_pf, nic_vf = "0000:81:00.0", "0000:81:10.0"
    inv = Inventory(
        pci=(
            PciDevice(nic_pf, "8086", "1521", "020000", iommu_group=40, sriov_totalvfs=7,
                      sriov_numvfs=1, vfs=(nic_vf,)),
            PciDevice(nic_vf, "8086", "1520", "020000", iommu_group=41, physfn=nic_pf),
        )
    )  # fmt: skip
    plan = _plan({"id": "sriov", "pf": nic_pf, "vlan": 7}, HostView(inventory=inv))
    assert isinstance(plan, ModePlan) and plan.devices is not None
    (nic,) = plan.devices.passthrough_nics
    assert nic.vlan == 7 and nic.mac.startswith("52:54:00:")
    assert plan.devices.target.kind == "mac" and plan.devices.target.key == nic.mac


@pytest.mark.parametrize(
    ("mode", "message"),
    [
        ('id = "vfio"\npci = "0000:02:00.0"\nmatch = { netdev = "eth1" }', "modes[0].pci: give"),
        ('id = "vfio"\nmatch = { }', "modes[0].match: give exactly one of vendor_device"),
        ('id = "sriov"\npf = "0000:81:00.0"\nmac = "01:00:5e:00:00:01"', "multicast"),
        ('id = "sriov"\nnetwork = "pool"\npf = "0000:81:00.0"', "modes[0].pf: give `pf` or"),
        ('id = "pv"\nviommu = true', "modes[0].viommu: `viommu` does not apply to mode pv"),
        ('id = "vfio"\npci = "0000:02:00.0"\nallow = ["x"]', "modes[0].allow: 'x' is not a PCI"),
    ],
)
def test_mode_entry_errors_name_the_key(mode: str, message: str) -> None:
    text = f'format_version = 1\nname = "x"\n[[modes]]\n{mode}\n[[workloads]]\nkind = "fio"\n'
    with pytest.raises(ScenarioError) as exc:
        parse_scenario(text, "x.toml")
    assert "\n" not in str(exc.value)
    assert message in str(exc.value), str(exc.value)


def test_guest_block_listing_and_nvme_names() -> None:
    out = (
        "dev vda /sys/devices/pci0000:00/0000:00:03.0/virtio1/block/vda\n"
        "serial vda vbench-test\n"
        "dev sda /sys/devices/pci0000:00/0000:00:1f.2/ata1/host0/target0:0:0/0:0:0:0/block/sda\n"
        "serial sda vbench-test\n"
        "serial * vbench-test\n"  # an unmatched glob, a race with the driver probe: ignored
        "ready\n"
    )
    blocks, ready = parse_block_listing(out)
    assert ready
    assert [(b.name, b.serials) for b in blocks] == [
        ("sda", ("vbench-test",)), ("vda", ("vbench-test",))
    ]  # fmt: skip
    assert nvme_block_name("nvme0n1") == "nvme0n1"
    assert nvme_block_name("nvme0c1n1") == "nvme0n1"  # a multipath path: its disk is the head
    assert nvme_block_name("ng0n1") is None


def test_dry_run_on_the_lab_testbed_writes_valid_xml_for_all_four_modes(tmp_path: Path) -> None:
    lab = bed("lab-iommu-sriov")
    # --prepare-host: the VF may need host changes (its NVMe secondary controller); a dry run
    # lists them and still makes none
    proc = _vbench(
        "run", str(ROOT / "scenarios" / "io-modes.toml"), "--dry-run", "--prepare-host",
        "--testbed", str(lab), "-o", str(tmp_path), "-c", "test:///default",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    (out,) = tmp_path.iterdir()
    doc = json.loads((out / "dry-run.json").read_text())
    assert [(m["mode"], m["status"]) for m in doc["modes"]] == [
        ("fv", "planned"), ("pv", "planned"), ("vfio", "planned"), ("sriov", "planned")
    ]  # fmt: skip
    # the free VF: 04.1 (bound to vfio-pci); vfio takes the VF the scenario names
    assert "VF 0000:00:04.1" in doc["modes"][3]["devices"][0]
    assert doc["modes"][2]["devices"][0].startswith("0000:00:04.2")
    for mode in ("fv", "pv", "vfio", "sriov"):
        xml = out / "raw" / f"r0-{mode}" / "domain.xml"
        res = subprocess.run(
            ["xmllint", "--noout", "--relaxng", str(DOMAIN_RNG), str(xml)],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert res.returncode == 0, res.stderr
    assert 'bus="0x00" slot="0x04" function="0x1"' in (out / "raw/r0-sriov/domain.xml").read_text()


def test_dry_run_here_explains_the_skips_and_require_all_modes_makes_them_errors(
    tmp_path: Path,
) -> None:
    scenario = ROOT / "scenarios" / "io-modes.toml"
    proc = _vbench("run", str(scenario), "--dry-run", "-o", str(tmp_path / "a"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    (out,) = (tmp_path / "a").iterdir()
    modes = {m["mode"]: m for m in json.loads((out / "dry-run.json").read_text())["modes"]}
    assert modes["fv"]["status"] == modes["pv"]["status"] == "planned"
    if modes["vfio"]["status"] == "planned":
        pytest.skip("n/a on this host: it can do vfio")
    assert modes["vfio"]["reason"] and modes["sriov"]["reason"]
    proc = _vbench(
        "run", str(scenario), "--dry-run", "--require-all-modes", "-o", str(tmp_path / "b")
    )
    assert proc.returncode == 1
    err = proc.stderr.strip().splitlines()[-1]
    assert "--require-all-modes: mode vfio would be skipped" in err
    assert not (tmp_path / "b").exists()


# -- planning on the umockdev testbeds (the real inventory collector) -------------------------


def _dry_run_on(
    testbed: str, mode: str, tmp_path: Path, *flags: str
) -> tuple[int, str, dict[str, object]]:
    scenario = tmp_path / "s.toml"
    scenario.write_text(
        f'format_version = 1\nname = "t"\n[[modes]]\n{mode}\n[[workloads]]\nkind = "fio"\n'
        "[run]\nrepetitions = 1\n"
    )
    out = tmp_path / "out"
    proc = _vbench(
        "run", str(scenario), "--dry-run", "--testbed", str(bed(testbed)), "-o", str(out),
        "-c", "test:///default", *flags,
    )  # fmt: skip
    if proc.returncode != 0:
        return proc.returncode, proc.stderr.strip().splitlines()[-1], {}
    (run,) = out.iterdir()
    (entry,) = json.loads((run / "dry-run.json").read_text())["modes"]
    xml = run / "raw" / "r0-vfio" / "domain.xml"
    xml = xml if xml.exists() else run / "raw" / "r0-sriov" / "domain.xml"
    entry["xml"] = xml.read_text() if xml.exists() else ""
    return 0, "", entry


@pytest.mark.parametrize(
    ("testbed", "mode", "error"),
    [
        # the NVMe that backs / (LUKS on nvme0n1p2), /boot/efi and swap
        ("rootfs-device", 'id = "vfio"\npci = "0000:02:00.0"', "0000:02:00.0: used by the host"),
        # a USB controller in the root NVMe's IOMMU group
        ("rootfs-device", 'id = "vfio"\npci = "0000:03:00.0"', "shares IOMMU group 14 with 0000"),
        # the GPU without its HDMI audio function (same group)
        (
            "gpu-audio-group",
            'id = "vfio"\npci = "0000:0a:00.0"',
            "0000:0a:00.0: shares IOMMU group 16 with 0000:0a:00.1",
        ),
    ],
)
def test_testbed_refusals_are_one_line_before_anything_starts(
    testbed: str, mode: str, error: str, tmp_path: Path
) -> None:
    rc, err, _ = _dry_run_on(testbed, mode, tmp_path)
    assert rc == 1
    assert error in err and "`allow`" in err, err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "mode",
    [
        'id = "vfio"\npci = ["0000:0a:00.0", "0000:0a:00.1"]',  # the whole group
        'id = "vfio"\npci = "0000:0a:00.0"\nallow = ["0000:0a:00.1"]',  # the allow-list
    ],
)
def test_testbed_whole_group_or_allow_list_is_planned(mode: str, tmp_path: Path) -> None:
    rc, err, entry = _dry_run_on("gpu-audio-group", mode, tmp_path)
    assert rc == 0, err
    assert entry["status"] == "planned"
    assert 'bus="0x0a" slot="0x00" function="0x0"' in str(entry["xml"])


def test_testbed_sriov_nic_gets_a_free_vf_as_a_hostdev_interface(tmp_path: Path) -> None:
    mode = 'id = "sriov"\npf = "0000:03:00.0"'
    rc, err, entry = _dry_run_on("nic-sriov", mode, tmp_path, "--prepare-host")
    assert rc == 0, err
    # VF 03:10.2 is bound to vfio-pci: chosen before 03:10.0 (ixgbevf)
    assert "VF 0000:03:10.2" in str(entry["devices"])
    assert '<interface type="hostdev" managed="yes">' in str(entry["xml"])
    assert 'slot="0x10" function="0x2"' in str(entry["xml"])


def test_testbed_too_few_vfs_is_skipped_with_the_change(tmp_path: Path) -> None:
    mode = 'id = "sriov"\npf = "0000:03:00.0"\nvfs = 4'
    rc, err, entry = _dry_run_on("nic-sriov", mode, tmp_path)
    assert rc == 0, err
    assert entry["status"] == "skipped"
    changes = [str(c) for c in entry["host_changes"]]  # type: ignore[attr-defined]
    assert any("sriov_numvfs" in c and "4" in c for c in changes), changes
    assert "--prepare-host" in str(entry["reason"])


def test_testbed_without_iommu_skips_with_the_check_that_blocks(tmp_path: Path) -> None:
    rc, err, entry = _dry_run_on("nokvm-noiommu", 'id = "vfio"\npci = "0000:00:02.0"', tmp_path)
    assert rc == 0, err
    assert entry["status"] == "skipped"
    assert "the host is not ready: iommu." in str(entry["reason"])


def test_testbed_prepare_host_plans_the_change_and_leaves_the_vf_for_after(
    tmp_path: Path,
) -> None:
    scenario = tmp_path / "s.toml"
    scenario.write_text(
        'format_version = 1\nname = "t"\n[[modes]]\nid = "sriov"\npf = "0000:03:00.0"\nvfs = 4\n'
        '[[workloads]]\nkind = "fio"\n[run]\nrepetitions = 1\n[host]\nprepare = true\n'
    )
    out = tmp_path / "out"
    proc = _vbench(
        "run", str(scenario), "--dry-run", "--testbed", str(bed("nic-sriov")), "-o", str(out),
        "-c", "test:///default",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    (run,) = out.iterdir()
    (entry,) = json.loads((run / "dry-run.json").read_text())["modes"]
    assert entry["status"] == "planned" and "again after the host changes" in entry["note"]
    changes = (run / "raw" / "r0-sriov" / "host-changes.txt").read_text().splitlines()
    assert any("sriov_numvfs" in c and "4" in c for c in changes), changes
    # the domain as the host offers it now (VF 03:10.2); the run chooses again after the changes
    assert 'slot="0x10" function="0x2"' in (run / "raw" / "r0-sriov" / "domain.xml").read_text()


def test_prepare_records_each_change_before_making_it_and_restores_on_error(
    tmp_path: Path,
) -> None:
    from vbench.host.changes import JOURNAL, ChangeJournal

    # a file standing in for sriov_numvfs: the journal's real write/restore path
    attr = tmp_path / "sriov_numvfs"
    attr.write_text("0")
    change = HostChange("sysfs_write", str(attr), "0", "2", f"{PF}: sriov_numvfs 0 -> 2")
    plan = ModePlan(
        ModeId.SRIOV, "sriov", None, (change,), replan=True
    )  # the devices come after the change
    journal = ChangeJournal(tmp_path)
    with (
        pytest.raises(RuntimeError),
        provider_for(ModeId.SRIOV).prepare(plan, journal),
    ):
        assert attr.read_text().strip() == "2"
        (entry,) = json.loads((tmp_path / JOURNAL).read_text())["changes"]
        assert (entry["before"], entry["after"], entry["state"]) == ("0", "2", "made")
        raise RuntimeError("the run failed")
    assert attr.read_text().strip() == "0"
    (entry,) = json.loads((tmp_path / JOURNAL).read_text())["changes"]
    assert entry["state"] == "restored"


def test_the_chosen_vf_is_the_one_the_host_changes_prepare() -> None:
    asked: list[tuple[str, int, int]] = []

    def plan_vf(pf: str, want: int, index: int) -> list[HostChange]:
        asked.append((pf, want, index))  # what vbench.host.sriov_prep.plan_vf is asked for
        return []

    view = HostView(inventory=INV, assigned={VF1: "other-guest"}, plan_vf=plan_vf)
    plan = _plan({"id": "sriov", "pf": PF}, view)
    assert isinstance(plan, ModePlan) and plan.devices is not None
    assert [h.pci_address for h in plan.devices.hostdevs] == [VF2]
    assert asked == [(PF, 2, 1)]  # VF2 is virtfn1: two VFs enabled, the second one prepared
