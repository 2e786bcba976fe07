"""The guest's test NIC in the domain XML: an `ethernet` interface on a tap vbench made.

Validated against libvirt's RelaxNG schema (domain.rng) for every NIC model of fv and pv, and
started on libvirt's test driver.
"""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from vbench.domxml import DomainSpec, build_domain_xml
from vbench.host.netns import GuestLink

DOMAIN_RNG = Path("/usr/share/libvirt/schemas/domain.rng")
LINK = GuestLink.for_guest("20240101T000000Z-nic", 0)


def _base(nic_model: str | None = "e1000") -> DomainSpec:
    return DomainSpec(
        name="vbench-nic-test",
        run_id="20240101T000000Z-nic",
        case="r0-fv",
        domain_type="qemu",
        vcpus=1,
        memory_mib=512,
        kernel="/var/lib/vbench/guest/vmlinuz",
        initrd="/var/lib/vbench/guest/initrd.img",
        cmdline=f"console=ttyS0 panic=-1 {LINK.kernel_args}",
        console_log="/var/lib/vbench/scratch/x/console.log",
        nic_model=nic_model,
    )


def _spec(nic_model: str | None = "e1000", **changes: object) -> DomainSpec:
    fields: dict[str, object] = {"nic_tap": LINK.tap, "nic_mac": LINK.mac, **changes}
    return dataclasses.replace(_base(nic_model), **fields)  # type: ignore[arg-type]


def _xmllint(doc: Path) -> subprocess.CompletedProcess[str]:
    if shutil.which("xmllint") is None:
        pytest.skip("xmllint not installed (Debian: apt-get install libxml2-utils)")
    if not DOMAIN_RNG.exists():
        pytest.skip(f"{DOMAIN_RNG} absent (Debian: apt-get install libvirt-daemon)")
    return subprocess.run(
        ["xmllint", "--noout", "--relaxng", str(DOMAIN_RNG), str(doc)],
        capture_output=True,
        text=True,
        check=False,
    )


def test_tap_nic_element() -> None:
    root = ET.fromstring(build_domain_xml(_spec()))
    (iface,) = root.findall("devices/interface")
    assert iface.attrib == {"type": "ethernet"}
    assert [el.tag for el in iface] == ["mac", "target", "model"]
    assert iface.find("target").attrib == {"dev": LINK.tap, "managed": "no"}  # type: ignore[union-attr]
    assert iface.find("mac").attrib == {"address": LINK.mac}  # type: ignore[union-attr]
    assert iface.find("model").attrib == {"type": "e1000"}  # type: ignore[union-attr]
    assert LINK.kernel_args in (root.findtext("os/cmdline") or "")


def test_without_a_tap_the_nic_stays_user_mode() -> None:
    root = ET.fromstring(build_domain_xml(_base()))
    (iface,) = root.findall("devices/interface")
    assert iface.attrib == {"type": "user"}
    assert iface.find("target") is None


@pytest.mark.parametrize("nic", ["e1000", "e1000e", "rtl8139", "virtio"])
def test_tap_nic_is_valid_for_libvirts_schema(nic: str, tmp_path: Path) -> None:
    doc = tmp_path / "d.xml"
    doc.write_text(build_domain_xml(_spec(nic)))
    res = _xmllint(doc)
    assert res.returncode == 0, res.stderr


def test_schema_refuses_a_bad_tap_element(tmp_path: Path) -> None:
    """The schema check can fail on this element: managed takes yes|no only."""
    doc = tmp_path / "d.xml"
    doc.write_text(build_domain_xml(_spec()).replace('managed="no"', 'managed="maybe"'))
    assert _xmllint(doc).returncode != 0


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"nic_tap": "a-name-over-15-chars"}, "not an interface name"),
        ({"nic_tap": "a/b"}, "not an interface name"),
        ({"nic_tap": ""}, "not an interface name"),
        ({"nic_mac": "03:76:62:00:00:01"}, "unicast MAC"),  # multicast bit set
        ({"nic_mac": "02:76:62:00:00"}, "unicast MAC"),
        ({"nic_mac": "02:76:62:00:00:0A"}, "lower-case"),
    ],
)
def test_domain_spec_rejects_bad_nic_fields(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _spec(**changes)


def test_tap_without_a_nic_model_is_refused() -> None:
    with pytest.raises(ValueError, match="need a nic_model"):
        _spec(nic_model=None)


@pytest.mark.libvirt_test
def test_tap_nic_starts_on_libvirts_test_driver() -> None:
    libvirt = pytest.importorskip("libvirt")
    conn = libvirt.open("test:///default")
    try:
        dom = conn.createXML(build_domain_xml(_spec("virtio")), 0)
        try:
            live = ET.fromstring(dom.XMLDesc(0))
            target = live.find("devices/interface/target")
            assert target is not None and target.get("dev") == LINK.tap
            assert live.find("devices/interface/mac").get("address") == LINK.mac  # type: ignore[union-attr]
        finally:
            dom.destroy()
    finally:
        conn.close()
