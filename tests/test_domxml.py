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
    VBENCH_AGENT_NAME,
    AgentChannel,
    DomainSpec,
    HostdevSpec,
    build_domain_xml,
)
from vbench.inventory import Inventory, NetDevice, PciDevice
from vbench.modes import HostView, ModePlan, Skip, provider_for
from vbench.scenario import ModeSpec
from vbench.virt.driver import LIBXL, QEMU

DATA = Path(__file__).parent / "data"
GOLDEN_DIR = DATA / "domxml"
DOMAIN_RNG = Path("/usr/share/libvirt/schemas/domain.rng")
NODEDEV_RNG = Path("/usr/share/libvirt/schemas/nodedev.rng")
REGEN = os.environ.get("VBENCH_REGEN_GOLDEN") == "1"

# PCI addresses that exist as node devices in tests/data/testdriver.xml
PLAIN_NIC = "0000:02:00.0"
SRIOV_PF = "0000:81:00.0"
SRIOV_VF = "0000:81:10.0"
NVME_PF = "0000:83:00.0"
NVME_VF = "0000:83:00.1"


def _pci(addr: str, cls: str, group: int, **kw: object) -> PciDevice:
    vendor, device = ("8086", "1521") if cls == "020000" else ("1b36", "0010")
    return PciDevice(addr, vendor, device, cls, iommu_group=group, **kw)  # type: ignore[arg-type]


# The inventory of the test driver's node (tests/data/testdriver.xml), as vbench.host would see it.
NODE = Inventory(
    pci=(
        _pci(PLAIN_NIC, "020000", 12, driver="e1000e"),
        _pci(SRIOV_PF, "020000", 40, driver="igb", sriov_totalvfs=7, sriov_numvfs=2,
             vfs=(SRIOV_VF, "0000:81:10.1")),
        _pci(SRIOV_VF, "020000", 41, driver="igbvf", physfn=SRIOV_PF),
        _pci("0000:81:10.1", "020000", 42, driver="igbvf", physfn=SRIOV_PF),
        _pci(NVME_PF, "010802", 50, driver="nvme", sriov_totalvfs=2, sriov_numvfs=2,
             vfs=(NVME_VF, "0000:83:00.2")),
        _pci(NVME_VF, "010802", 51, driver="vfio-pci", physfn=NVME_PF),
        _pci("0000:83:00.2", "010802", 52, physfn=NVME_PF),
    ),
    net=(NetDevice("ens2", PLAIN_NIC, "52:54:00:12:34:56"),),
)  # fmt: skip
NODE_VIEW = HostView(inventory=NODE, hostdev_networks={"vbench-vf-pool": ("ens1f0",)})
XEN_VIEW = HostView(inventory=NODE, hypervisor="xen")  # the same node as a Xen dom0 sees it

# variant -> the scenario's mode entry
VARIANTS: dict[str, dict[str, object]] = {
    "fv-ide-e1000": {"id": "fv", "disk_bus": "ide", "nic_model": "e1000"},
    "fv-sata-rtl8139": {"id": "fv", "disk_bus": "sata", "nic_model": "rtl8139"},
    "pv-virtio": {"id": "pv"},
    "pv-scsi": {"id": "pv", "disk_bus": "scsi"},
    "vfio": {"id": "vfio", "pci": PLAIN_NIC},
    "vfio-viommu": {"id": "vfio", "match": {"vendor_device": "1b36:0010"}, "viommu": True},
    "sriov-interface": {"id": "sriov", "pf": SRIOV_PF, "mac": "52:54:00:aa:bb:01", "vlan": 42},
    "sriov-hostdev": {"id": "sriov", "pf": NVME_PF},
    "hostdev-network": {"id": "sriov", "network": "vbench-vf-pool", "mac": "52:54:00:aa:bb:02"},
    # the same providers on Xen (libvirt's libxl driver)
    "xen-hvm-ide": {"id": "fv", "disk_bus": "ide", "nic_model": "e1000"},
    "xen-pv-on-hvm": {"id": "pv"},
    "xen-pv": {"id": "pv", "xen": "pv"},
    "xen-pci-hvm": {"id": "sriov", "pf": NVME_PF},
    "xen-pci-pv": {"id": "vfio", "pci": PLAIN_NIC, "xen": "pv"},
    # QEMU with vbench's own agent channel (a name libvirt leaves alone), as the socket
    # transport's e2e test boots it (tests/test_agent_socket_e2e.py)
    "pv-virtio-agent-socket": {"id": "pv"},
}


def is_xen(variant: str) -> bool:
    return variant.startswith("xen-")


def golden_plan(variant: str) -> ModePlan:
    spec = ModeSpec.model_validate(VARIANTS[variant], strict=False)
    plan = provider_for(spec.id).plan(spec, variant, XEN_VIEW if is_xen(variant) else NODE_VIEW)
    assert isinstance(plan, ModePlan), plan
    return plan


def golden_spec(variant: str) -> DomainSpec:
    """A fixed DomainSpec per variant, its devices from the mode's provider."""
    devs = golden_plan(variant).devices
    assert devs is not None
    cmdline = "console=ttyS0 panic=-1 quiet" + (f" {devs.cmdline}" if devs.cmdline else "")
    driver = LIBXL if is_xen(variant) else QEMU  # the per-driver choices, as the runner makes them
    console = Path(f"/var/lib/vbench/runs/golden/raw/r0-{variant}/console.log")
    agent = driver.agent_channel(console.with_name(f"r0-{variant}.agent"))
    if variant.endswith("-agent-socket"):
        agent = AgentChannel(name=VBENCH_AGENT_NAME, socket=str(console.with_name("agent.sock")))
    return DomainSpec(
        name=f"vbench-golden-{variant}",
        run_id="20240101T000000Z-golden",
        case=f"r0-{variant}",
        domain_type=driver.domain_type(None),
        vcpus=1,
        memory_mib=512,
        kernel="/var/lib/vbench/guest/vmlinuz",
        initrd="/var/lib/vbench/guest/initrd.img",
        cmdline=cmdline,
        console_log=str(console),
        disk_path="/var/lib/vbench/runs/golden/disk.raw" if devs.disk_bus else None,
        disk_bus=devs.disk_bus,
        nic_model=devs.nic_model,
        machine=devs.machine,
        hostdevs=devs.hostdevs,
        passthrough_nics=devs.passthrough_nics,
        pcie_root_ports=devs.pcie_root_ports,
        iommu=devs.iommu,
        os_type=devs.os_type,
        agent=agent,
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
    spec = golden_spec("fv-ide-e1000")
    doc = tmp_path / "d.xml"
    doc.write_text(build_domain_xml(_replace(spec, nic_model=nic)))
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
    assert len(devices) == 8
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
    spec = golden_spec("sriov-hostdev")
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
        ("vfio", ["controller", "hostdev", "serial", "console", "channel", "memballoon"]),
        (
            "sriov-hostdev",
            ["controller", "hostdev", "serial", "console", "channel", "memballoon"],
        ),
        (
            "sriov-interface",
            ["controller", "interface", "serial", "console", "channel", "memballoon"],
        ),
        (
            "vfio-viommu",
            ["controller", "hostdev", "serial", "console", "channel", "memballoon", "iommu"],
        ),
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
    root = ET.fromstring(build_domain_xml(golden_spec("sriov-hostdev")))
    assert root.find("os/type").get("machine") == "q35"  # type: ignore[union-attr]
    (hostdev,) = root.findall("devices/hostdev")
    assert hostdev.attrib == {"mode": "subsystem", "type": "pci", "managed": "yes"}
    assert hostdev.find("driver").attrib == {"name": "vfio"}  # type: ignore[union-attr]
    addr = hostdev.find("source/address")
    assert addr is not None
    assert addr.attrib == {"domain": "0x0000", "bus": "0x83", "slot": "0x00", "function": "0x1"}
    # the guest address is fixed: behind root port 1, so the guest finds it at 0000:01:00.0
    guest = hostdev.find("address")
    assert guest is not None
    assert guest.attrib == {
        "type": "pci", "domain": "0x0000", "bus": "0x01", "slot": "0x00", "function": "0x0"
    }  # fmt: skip
    (port,) = root.findall("devices/controller")
    assert port.attrib == {"type": "pci", "index": "1", "model": "pcie-root-port"}
    assert root.find("devices/disk") is None


def test_sriov_nic_vf_is_a_hostdev_interface_with_mac_and_vlan() -> None:
    root = ET.fromstring(build_domain_xml(golden_spec("sriov-interface")))
    (iface,) = root.findall("devices/interface")
    assert iface.attrib == {"type": "hostdev", "managed": "yes"}
    assert iface.find("mac").attrib == {"address": "52:54:00:aa:bb:01"}  # type: ignore[union-attr]
    assert iface.find("vlan/tag").attrib == {"id": "42"}  # type: ignore[union-attr]
    src = iface.find("source/address")
    assert src is not None
    assert src.attrib["bus"] == "0x81" and src.attrib["slot"] == "0x10"


def test_hostdev_network_nic_names_the_pool() -> None:
    root = ET.fromstring(build_domain_xml(golden_spec("hostdev-network")))
    (iface,) = root.findall("devices/interface")
    assert iface.attrib == {"type": "network"}
    assert iface.find("source").attrib == {"network": "vbench-vf-pool"}  # type: ignore[union-attr]


def test_viommu_adds_the_intel_iommu_and_the_split_irqchip() -> None:
    spec = golden_spec("vfio-viommu")
    root = ET.fromstring(build_domain_xml(spec))
    assert root.find("devices/iommu").attrib == {"model": "intel"}  # type: ignore[union-attr]
    assert root.find("features/ioapic").attrib == {"driver": "qemu"}  # type: ignore[union-attr]
    assert "intel_iommu=on" in spec.cmdline


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
        ({"domain_type": "lxc"}, "domain_type"),
        ({"os_type": "xen"}, "needs a xen domain"),
        ({"vcpus": 0}, "vcpus"),
        ({"memory_mib": 0}, "memory_mib"),
        ({"name": "a/b"}, "domain name"),
        ({"name": ""}, "domain name"),
        ({"name": "a\nb"}, "domain name"),
        ({"hostdevs": (HostdevSpec(SRIOV_VF), HostdevSpec(SRIOV_VF))}, "listed twice"),
        ({"iommu": True}, "need the q35 machine"),
    ],
)
def test_domain_spec_rejects(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _replace(golden_spec("fv-ide-e1000"), **changes)


# -- Xen ---------------------------------------------------------------------------------------


def test_xen_pv_guest_is_xenpv_with_blkfront_netfront_and_the_xen_console() -> None:
    root = ET.fromstring(build_domain_xml(golden_spec("xen-pv")))
    assert root.get("type") == "xen"
    os_type = root.find("os/type")
    assert os_type is not None
    assert (os_type.text, os_type.get("machine")) == ("xen", "xenpv")
    assert root.find("features/acpi") is None
    assert root.find("devices/disk/target").attrib == {"dev": "xvda", "bus": "xen"}  # type: ignore[union-attr]
    assert root.find("devices/interface/model").get("type") == "netfront"  # type: ignore[union-attr]
    assert root.find("devices/console/target").attrib == {"type": "xen", "port": "0"}  # type: ignore[union-attr]
    assert root.find("devices/channel/target").get("type") == "xen"  # type: ignore[union-attr]


def test_xen_pci_passthrough_uses_pciback_on_bus_0() -> None:
    root = ET.fromstring(build_domain_xml(golden_spec("xen-pci-hvm")))
    (hostdev,) = root.findall("devices/hostdev")
    assert hostdev.find("driver").attrib == {"name": "xen"}  # type: ignore[union-attr]
    assert hostdev.find("address").get("bus") == "0x00"  # type: ignore[union-attr]
    assert hostdev.find("address").get("slot") == "0x10"  # type: ignore[union-attr]
    assert root.find("devices/controller") is None  # no q35 root ports on Xen
    pv = ET.fromstring(build_domain_xml(golden_spec("xen-pci-pv")))
    assert pv.find("devices/hostdev/address") is None  # pcifront numbers the devices itself
    assert golden_plan("xen-pci-pv").devices.target.kind == "mac"  # type: ignore[union-attr]
    # an NVMe under pcifront: the guest's only NVMe controller is the target
    spec = ModeSpec.model_validate({"id": "sriov", "pf": NVME_PF, "xen": "pv"}, strict=False)
    plan = provider_for(spec.id).plan(spec, "x", XEN_VIEW)
    assert isinstance(plan, ModePlan) and plan.devices is not None
    assert (plan.devices.target.kind, plan.devices.target.key) == ("nvme", "*")


def test_xen_refuses_what_libxl_cannot_do() -> None:
    for entry, why in (
        ({"id": "pv", "disk_bus": "scsi"}, "no paravirtual SCSI"),
        ({"id": "fv", "disk_bus": "sata"}, "emulated IDE"),
        ({"id": "vfio", "pci": PLAIN_NIC, "viommu": True}, "no emulated IOMMU"),
    ):
        spec = ModeSpec.model_validate(entry, strict=False)
        skip = provider_for(spec.id).plan(spec, "x", XEN_VIEW)
        assert isinstance(skip, Skip) and why in skip.reason
