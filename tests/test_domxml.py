"""Domain XML builder: golden files per mode, libvirt's RelaxNG schema, and the builder's rules.

Regenerate the golden files after an intended change with

    VBENCH_REGEN_GOLDEN=1 pytest tests/test_domxml.py

and review the diff (as virt-manager's tests/utils.py does).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from vbench.domxml import (
    METADATA_NS,
    DomainSpec,
    HostdevSpec,
    ModeDevices,
    build_domain_xml,
    mode_devices,
)

DATA = Path(__file__).parent / "data"
GOLDEN_DIR = DATA / "domxml"
DOMAIN_RNG = Path("/usr/share/libvirt/schemas/domain.rng")
NODEDEV_RNG = Path("/usr/share/libvirt/schemas/nodedev.rng")
REGEN = os.environ.get("VBENCH_REGEN_GOLDEN") == "1"

# PCI addresses that exist as node devices in tests/data/testdriver.xml
PLAIN_NIC = "0000:02:00.0"
SRIOV_VF = "0000:81:10.0"

# variant -> mode_devices(...) arguments: (mode, disk_bus, nic_model, pci)
VARIANTS: dict[str, tuple[str, str | None, str | None, str | None]] = {
    "fv-ide-e1000": ("fv", "ide", "e1000", None),
    "fv-sata-rtl8139": ("fv", "sata", "rtl8139", None),
    "pv-virtio": ("pv", None, None, None),
    "pv-scsi": ("pv", "scsi", None, None),
    "vfio": ("vfio", None, None, PLAIN_NIC),
    "sriov": ("sriov", None, None, SRIOV_VF),
}


def golden_spec(variant: str) -> DomainSpec:
    """A fixed DomainSpec per variant: the input of one golden file."""
    mode, disk_bus, nic_model, pci = VARIANTS[variant]
    devs = mode_devices(mode, disk_bus, nic_model, pci)
    return DomainSpec(
        name=f"vbench-golden-{variant}",
        run_id="20240101T000000Z-golden",
        case=f"r0-{variant}",
        domain_type="qemu",
        vcpus=1,
        memory_mib=512,
        kernel="/var/lib/vbench/guest/vmlinuz",
        initrd="/var/lib/vbench/guest/initrd.img",
        cmdline="console=ttyS0 panic=-1 quiet",
        console_log=f"/var/lib/vbench/runs/golden/raw/r0-{variant}/console.log",
        disk_path="/var/lib/vbench/runs/golden/disk.raw" if devs.disk_bus else None,
        disk_bus=devs.disk_bus,
        nic_model=devs.nic_model,
        machine=devs.machine,
        hostdevs=devs.hostdevs,
    )


def assert_matches_golden(actual: str, path: Path, regen: bool = False) -> None:
    """Compare with a golden file; with `regen`, (re)write it first."""
    if regen:
        path.write_text(actual, encoding="utf-8")
    if not path.exists():
        raise AssertionError(f"{path} is missing: run with VBENCH_REGEN_GOLDEN=1 to create it")
    expected = path.read_text(encoding="utf-8")
    assert actual == expected, f"{path.name} differs from the builder's output"


def xmllint_relaxng(schema: Path, doc: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["xmllint", "--noout", "--relaxng", str(schema), str(doc)],
        capture_output=True,
        text=True,
        check=False,
    )


def _need_xmllint(schema: Path) -> None:
    if shutil.which("xmllint") is None:
        pytest.skip("xmllint not installed (Debian: apt-get install libxml2-utils)")
    if not schema.exists():
        pytest.skip(f"{schema} absent (Debian: apt-get install libvirt-daemon)")


# -- golden files -----------------------------------------------------------------------------


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_builder_matches_golden_file(variant: str) -> None:
    assert_matches_golden(
        build_domain_xml(golden_spec(variant)), GOLDEN_DIR / f"{variant}.xml", regen=REGEN
    )


def test_golden_dir_holds_exactly_the_variants() -> None:
    assert sorted(p.stem for p in GOLDEN_DIR.glob("*.xml")) == sorted(VARIANTS)


def test_a_mutated_golden_file_fails_the_comparison(tmp_path: Path) -> None:
    golden = GOLDEN_DIR / "pv-virtio.xml"
    mutated = tmp_path / golden.name
    mutated.write_text(golden.read_text().replace("virtio", "e1000", 1))
    with pytest.raises(AssertionError, match="differs"):
        assert_matches_golden(build_domain_xml(golden_spec("pv-virtio")), mutated)


def test_a_missing_golden_file_says_how_to_create_it(tmp_path: Path) -> None:
    with pytest.raises(AssertionError, match="VBENCH_REGEN_GOLDEN=1"):
        assert_matches_golden("<domain/>\n", tmp_path / "absent.xml")


# -- libvirt's RelaxNG schema -----------------------------------------------------------------


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_golden_file_is_valid_for_libvirts_schema(variant: str) -> None:
    _need_xmllint(DOMAIN_RNG)
    res = xmllint_relaxng(DOMAIN_RNG, GOLDEN_DIR / f"{variant}.xml")
    assert res.returncode == 0, res.stderr


@pytest.mark.parametrize("nic", ["e1000", "e1000e", "rtl8139"])
def test_every_fv_nic_model_is_valid_for_libvirts_schema(nic: str, tmp_path: Path) -> None:
    _need_xmllint(DOMAIN_RNG)
    devs = mode_devices("fv", "ide", nic)
    spec = golden_spec("fv-ide-e1000")
    doc = tmp_path / "d.xml"
    doc.write_text(build_domain_xml(_replace(spec, nic_model=devs.nic_model)))
    res = xmllint_relaxng(DOMAIN_RNG, doc)
    assert res.returncode == 0, res.stderr


def test_schema_check_rejects_an_invalid_document(tmp_path: Path) -> None:
    """The schema test can fail: a hostdev whose source lacks an address is refused."""
    _need_xmllint(DOMAIN_RNG)
    text = (GOLDEN_DIR / "vfio.xml").read_text()
    bad = tmp_path / "bad.xml"
    bad.write_text(text.replace('type="pci" managed="yes"', 'type="pcie" managed="yes"'))
    res = xmllint_relaxng(DOMAIN_RNG, bad)
    assert res.returncode != 0
    assert "fails to validate" in res.stderr


def test_testdriver_node_devices_are_valid_for_libvirts_schema(tmp_path: Path) -> None:
    _need_xmllint(NODEDEV_RNG)
    node = ET.parse(DATA / "testdriver.xml").getroot()
    devices = node.findall("device")
    assert len(devices) == 5
    for dev in devices:
        doc = tmp_path / f"{dev.findtext('name')}.xml"
        doc.write_text(ET.tostring(dev, encoding="unicode"))
        res = xmllint_relaxng(NODEDEV_RNG, doc)
        assert res.returncode == 0, res.stderr


# -- the builder's output ---------------------------------------------------------------------


def _replace(spec: DomainSpec, **changes: object) -> DomainSpec:
    from dataclasses import replace

    return replace(spec, **changes)  # type: ignore[arg-type]


def _devices(xml: str) -> list[str]:
    devices = ET.fromstring(xml).find("devices")
    assert devices is not None
    return [el.tag for el in devices]


def test_output_is_deterministic() -> None:
    spec = golden_spec("sriov")
    assert build_domain_xml(spec) == build_domain_xml(spec)


def test_metadata_fragment_declares_its_own_namespace() -> None:
    xml = build_domain_xml(golden_spec("pv-virtio"))
    root = ET.fromstring(xml)
    assert xml.startswith('<domain type="qemu">')  # nothing hoisted onto the root
    run = root.find(f"metadata/{{{METADATA_NS}}}run")
    assert run is not None
    assert run.attrib == {"id": "20240101T000000Z-golden", "case": "r0-pv-virtio"}
    assert f'<vbench:run xmlns:vbench="{METADATA_NS}"' in xml


def test_building_registers_no_global_namespace() -> None:
    before = dict(ET._namespace_map)  # type: ignore[attr-defined]
    build_domain_xml(golden_spec("fv-ide-e1000"))
    assert dict(ET._namespace_map) == before  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("variant", "tags"),
    [
        ("fv-ide-e1000", ["disk", "interface", "serial", "console", "channel", "memballoon"]),
        (
            "pv-scsi",
            ["disk", "controller", "interface", "serial", "console", "channel", "memballoon"],
        ),
        ("vfio", ["hostdev", "serial", "console", "channel", "memballoon"]),
        ("sriov", ["hostdev", "serial", "console", "channel", "memballoon"]),
    ],
)
def test_device_order(variant: str, tags: list[str]) -> None:
    assert _devices(build_domain_xml(golden_spec(variant))) == tags


def test_scsi_disk_comes_with_a_virtio_scsi_controller() -> None:
    root = ET.fromstring(build_domain_xml(golden_spec("pv-scsi")))
    ctrl = root.find("devices/controller")
    assert ctrl is not None
    assert ctrl.attrib == {"type": "scsi", "index": "0", "model": "virtio-scsi"}
    target = root.find("devices/disk/target")
    assert target is not None
    assert target.attrib == {"dev": "sda", "bus": "scsi"}


@pytest.mark.parametrize(
    ("variant", "dev", "bus", "machine"),
    [
        ("fv-ide-e1000", "hda", "ide", "pc"),
        ("fv-sata-rtl8139", "sda", "sata", "pc"),
        ("pv-virtio", "vda", "virtio", "pc"),
    ],
)
def test_disk_target_and_machine(variant: str, dev: str, bus: str, machine: str) -> None:
    root = ET.fromstring(build_domain_xml(golden_spec(variant)))
    target = root.find("devices/disk/target")
    assert target is not None
    assert target.attrib == {"dev": dev, "bus": bus}
    os_type = root.find("os/type")
    assert os_type is not None
    assert os_type.get("machine") == machine


def test_hostdev_element() -> None:
    root = ET.fromstring(build_domain_xml(golden_spec("sriov")))
    assert root.find("os/type").get("machine") == "q35"  # type: ignore[union-attr]
    (hostdev,) = root.findall("devices/hostdev")
    assert hostdev.attrib == {"mode": "subsystem", "type": "pci", "managed": "yes"}
    assert hostdev.find("driver").attrib == {"name": "vfio"}  # type: ignore[union-attr]
    addr = hostdev.find("source/address")
    assert addr is not None
    assert addr.attrib == {"domain": "0x0000", "bus": "0x81", "slot": "0x10", "function": "0x0"}
    assert root.find("devices/disk") is None


def test_text_is_escaped() -> None:
    spec = _replace(golden_spec("pv-virtio"), cmdline="a=1 & b=<2>")
    root = ET.fromstring(build_domain_xml(spec))
    assert root.findtext("os/cmdline") == "a=1 & b=<2>"


def test_hostdev_address_parts_and_nodedev_name() -> None:
    hd = HostdevSpec("0000:AF:1F.7")
    assert hd.parts() == ("0x0000", "0xaf", "0x1f", "0x7")
    assert hd.nodedev_name == "pci_0000_af_1f_7"


@pytest.mark.parametrize("addr", ["0000:81:00", "81:00.0", "0000:81:20.0", "0000:81:00.8", ""])
def test_hostdev_rejects_a_bad_address(addr: str) -> None:
    with pytest.raises(ValueError, match="is not a PCI address"):
        HostdevSpec(addr)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"machine": "q35", "disk_bus": "ide"}, "no IDE controller"),
        ({"machine": "pc-q35-7.2", "disk_bus": "ide"}, "no IDE controller"),
        ({"disk_bus": "floppy"}, "unknown disk bus"),
        ({"disk_bus": None}, "needs a disk_bus"),
        ({"nic_model": "ne2k_pci"}, "unknown NIC model"),
        ({"domain_type": "xen"}, "domain_type"),
        ({"vcpus": 0}, "vcpus"),
        ({"memory_mib": 0}, "memory_mib"),
        ({"name": "a/b"}, "domain name"),
        ({"name": ""}, "domain name"),
        ({"name": "a\nb"}, "domain name"),
        ({"hostdevs": (HostdevSpec(SRIOV_VF), HostdevSpec(SRIOV_VF))}, "listed twice"),
    ],
)
def test_domain_spec_rejects(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _replace(golden_spec("fv-ide-e1000"), **changes)


# -- mode_devices -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("fv",), ModeDevices("ide", "e1000", "pc", ())),
        (("fv", "sata", "e1000e"), ModeDevices("sata", "e1000e", "pc", ())),
        (("pv",), ModeDevices("virtio", "virtio", "pc", ())),
        (("pv", "scsi", "virtio"), ModeDevices("scsi", "virtio", "pc", ())),
        (
            ("vfio", None, None, PLAIN_NIC),
            ModeDevices(None, None, "q35", (HostdevSpec(PLAIN_NIC),)),
        ),
        (
            ("sriov", "sata", "virtio", SRIOV_VF),
            ModeDevices("sata", "virtio", "q35", (HostdevSpec(SRIOV_VF),)),
        ),
    ],
)
def test_mode_devices(args: tuple[str, ...], expected: ModeDevices) -> None:
    assert mode_devices(*args) == expected


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("hvm",), "unknown mode 'hvm'"),
        (("fv", "virtio"), "fv takes disk bus ide or sata, not 'virtio'"),
        (("fv", None, "virtio"), "fv takes NIC model"),
        (("pv", "ide"), "pv takes disk bus virtio or scsi, not 'ide'"),
        (("pv", None, "e1000"), "pv takes NIC model virtio, not 'e1000'"),
        (("pv", None, None, PLAIN_NIC), "drop `pci`"),
        (("vfio",), "vfio needs `pci`"),
        (("sriov",), "sriov needs `pci`, the PCI address of the virtual function"),
        (("vfio", "ide", None, PLAIN_NIC), "no IDE"),
        (("vfio", None, None, "0000:02:00"), "is not a PCI address"),
    ],
)
def test_mode_devices_rejects(args: tuple[str | None, ...], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        mode_devices(*args)  # type: ignore[arg-type]
