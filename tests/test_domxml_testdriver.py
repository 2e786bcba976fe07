"""Each golden domain XML, created and destroyed on libvirt's test driver.

The node is tests/data/testdriver.xml (a plain PCI NIC, an SR-IOV NIC PF and an SR-IOV NVMe PF
with two VFs each, and a hostdev network pool); every test
opens its own connection, so each starts from that file's state.

What the test driver checks is libvirt's XML parser and post-parse defaults.  It does *not* touch
host devices: a hostdev source is not looked up among the node devices, two domains may hold the
same VF, and detaching a node device is unsupported.  The last class of tests pins that down, so
that a libvirt upgrade which changes it is noticed.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from vbench.domxml import METADATA_NS, HostdevSpec

libvirt: Any = pytest.importorskip("libvirt")

pytestmark = pytest.mark.libvirt_test

DATA = Path(__file__).parent / "data"
NODE_XML = DATA / "testdriver.xml"
URI = f"test://{NODE_XML.resolve()}"
GOLDEN = sorted((DATA / "domxml").glob("*.xml"))
HOSTDEV_GOLDEN = [p for p in GOLDEN if "<hostdev" in p.read_text()]
IFACE_GOLDEN = [p for p in GOLDEN if '<interface type="hostdev"' in p.read_text()]

PF = "pci_0000_81_00_0"
VFS = ("pci_0000_81_10_0", "pci_0000_81_10_1")
PLAIN_NIC = "pci_0000_02_00_0"
NVME_PF = "pci_0000_83_00_0"
NVME_VFS = ("pci_0000_83_00_1", "pci_0000_83_00_2")


def _quiet(_ctx: object, _err: object) -> None:
    """libvirt-python prints every error to stderr by default; the tests assert on them instead."""


@pytest.fixture
def conn() -> Iterator[Any]:
    libvirt.registerErrorHandler(_quiet, None)
    c = libvirt.open(URI)
    assert c.listAllDomains() == []  # a fresh node per connection
    try:
        yield c
    finally:
        c.close()


def _metadata_of(dom: Any, flags: int = 0) -> ET.Element:
    text = dom.metadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, METADATA_NS, flags)
    return ET.fromstring(text)


def _expected_run(golden: Path) -> dict[str, str]:
    run = ET.parse(golden).getroot().find(f"metadata/{{{METADATA_NS}}}run")
    assert run is not None
    return dict(run.attrib)


def _hostdev_addresses(xml: str) -> list[dict[str, str]]:
    root = ET.fromstring(xml)
    found = root.findall("devices/hostdev/source/address")
    found += root.findall("devices/interface[@type='hostdev']/source/address")
    return [{k: v for k, v in a.attrib.items() if k != "type"} for a in found]


def _assert_nothing_left(conn: Any, name: str) -> None:
    assert conn.listAllDomains() == []
    with pytest.raises(libvirt.libvirtError) as exc:
        conn.lookupByName(name)
    assert exc.value.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN


def test_there_is_a_golden_file_per_mode_variant() -> None:
    assert {p.stem for p in GOLDEN} == {
        "fv-ide-e1000",
        "fv-sata-rtl8139",
        "pv-virtio",
        "pv-scsi",
        "vfio",
        "vfio-viommu",
        "sriov-hostdev",
        "sriov-interface",
        "hostdev-network",
        "xen-hvm-ide",
        "xen-pv-on-hvm",
        "xen-pv",
        "xen-pci-hvm",
        "xen-pci-pv",
        "pv-virtio-agent-socket",
    }


@pytest.mark.parametrize("golden", GOLDEN, ids=lambda p: p.stem)
def test_transient_domain_starts_and_goes(conn: Any, golden: Path) -> None:
    xml = golden.read_text()
    dom = conn.createXML(xml, 0)
    name = dom.name()
    assert dom.isActive() == 1
    assert dom.isPersistent() == 0
    assert dom.state()[0] == libvirt.VIR_DOMAIN_RUNNING

    run = _metadata_of(dom)
    assert run.tag == "run"  # libvirt hands the element back without its namespace prefix
    assert run.attrib == _expected_run(golden)

    # the live XML keeps the namespaced element and the hostdevs as written
    live = dom.XMLDesc(0)
    live_run = ET.fromstring(live).find(f"metadata/{{{METADATA_NS}}}run")
    assert live_run is not None
    assert live_run.attrib == _expected_run(golden)
    assert f'<vbench:run xmlns:vbench="{METADATA_NS}"' in live  # declared on the element itself
    assert _hostdev_addresses(live) == _hostdev_addresses(xml)

    dom.destroy()
    _assert_nothing_left(conn, name)


@pytest.mark.parametrize("golden", GOLDEN, ids=lambda p: p.stem)
def test_defined_domain_starts_and_goes(conn: Any, golden: Path) -> None:
    dom = conn.defineXML(golden.read_text())
    name = dom.name()
    assert dom.isPersistent() == 1
    assert dom.isActive() == 0
    assert _metadata_of(dom, libvirt.VIR_DOMAIN_AFFECT_CONFIG).attrib == _expected_run(golden)

    dom.create()
    assert dom.isActive() == 1
    assert _metadata_of(dom, libvirt.VIR_DOMAIN_AFFECT_LIVE).attrib == _expected_run(golden)

    # define -> dumpxml -> define again is stable (libvirt's own round trip)
    inactive = dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
    dom.destroy()
    assert dom.isActive() == 0
    again = conn.defineXML(inactive)
    assert again.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE) == inactive

    again.undefine()
    _assert_nothing_left(conn, name)


def test_metadata_absent_in_another_namespace(conn: Any) -> None:
    dom = conn.createXML((DATA / "domxml" / "pv-virtio.xml").read_text(), 0)
    with pytest.raises(libvirt.libvirtError) as exc:
        dom.metadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, "urn:x-other:1")
    assert exc.value.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN_METADATA
    dom.destroy()


# -- host devices: what the node offers -------------------------------------------------------


@pytest.mark.parametrize("golden", HOSTDEV_GOLDEN + IFACE_GOLDEN, ids=lambda p: p.stem)
def test_hostdev_of_golden_file_is_a_node_device(conn: Any, golden: Path) -> None:
    (addr,) = _hostdev_addresses(golden.read_text())
    pci = "{}:{}:{}.{}".format(*(addr[k][2:] for k in ("domain", "bus", "slot", "function")))
    dev = conn.nodeDeviceLookupByName(HostdevSpec(pci).nodedev_name)
    cap = ET.fromstring(dev.XMLDesc()).find("capability[@type='pci']")
    assert cap is not None
    got = [int(cap.findtext(k) or "-1") for k in ("domain", "bus", "slot", "function")]
    assert got == [int(addr[k], 16) for k in ("domain", "bus", "slot", "function")]


def test_sriov_golden_file_names_a_vf_of_the_pf(conn: Any) -> None:
    (addr,) = _hostdev_addresses((DATA / "domxml" / "sriov-interface.xml").read_text())
    vf = ET.fromstring(conn.nodeDeviceLookupByName(VFS[0]).XMLDesc())
    assert vf.findtext("parent") == PF
    pf_addr = vf.find("capability/capability[@type='phys_function']/address")
    assert pf_addr is not None
    assert pf_addr.attrib == {"domain": "0x0000", "bus": "0x81", "slot": "0x00", "function": "0x0"}

    pf = ET.fromstring(conn.nodeDeviceLookupByName(PF).XMLDesc())
    vfs = pf.find("capability/capability[@type='virt_functions']")
    assert vfs is not None
    assert vfs.get("maxCount") == "7"
    listed = [dict(a.attrib) for a in vfs.findall("address")]
    assert addr in listed
    assert len(listed) == 2


def test_node_lists_the_pci_devices(conn: Any) -> None:
    flags = libvirt.VIR_CONNECT_LIST_NODE_DEVICES_CAP_PCI_DEV
    names = sorted(d.name() for d in conn.listAllDevices(flags))
    assert names == sorted([PLAIN_NIC, PF, *VFS, NVME_PF, *NVME_VFS])
    plain = ET.fromstring(conn.nodeDeviceLookupByName(PLAIN_NIC).XMLDesc())
    assert plain.find("capability/capability") is None  # neither PF nor VF


# -- host devices: what the test driver does not check ----------------------------------------


def _with_hostdev(golden: str, pci: str) -> str:
    domain, bus, slot_fn = pci.split(":")
    slot, fn = slot_fn.split(".")
    text = (DATA / "domxml" / golden).read_text()
    root = ET.fromstring(text)
    (addr,) = root.findall("devices/hostdev/source/address")
    old = " ".join(f'{k}="{v}"' for k, v in addr.attrib.items())
    new = f'domain="0x{domain}" bus="0x{bus}" slot="0x{slot}" function="0x{fn}"'
    assert old in text
    return text.replace(old, new)


def test_driver_does_not_look_up_hostdev_sources(conn: Any) -> None:
    """A hostdev for a PCI address absent from the node still starts: no nodedev check."""
    xml = _with_hostdev("vfio.xml", "0000:99:00.0")
    with pytest.raises(libvirt.libvirtError):
        conn.nodeDeviceLookupByName("pci_0000_99_00_0")
    dom = conn.createXML(xml, 0)
    assert dom.isActive() == 1
    dom.destroy()


def test_driver_lets_two_domains_hold_the_same_vf(conn: Any) -> None:
    """Real QEMU refuses a VF that another guest holds; the test driver does not track it."""
    text = (DATA / "domxml" / "sriov-hostdev.xml").read_text()
    first = conn.createXML(text, 0)
    second = conn.createXML(text.replace("golden-sriov-hostdev<", "golden-sriov-hostdev-2<"), 0)
    assert first.isActive() == second.isActive() == 1
    first.destroy()
    second.destroy()
    assert conn.listAllDomains() == []


def test_driver_cannot_detach_node_devices(conn: Any) -> None:
    """managed='yes' means detach/reattach on a real host; the test driver does not support it."""
    vf = conn.nodeDeviceLookupByName(VFS[0])
    with pytest.raises(libvirt.libvirtError) as exc:
        vf.detachFlags(None, 0)
    assert exc.value.get_error_code() == libvirt.VIR_ERR_NO_SUPPORT
