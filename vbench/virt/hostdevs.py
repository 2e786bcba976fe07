"""What libvirt says about host devices: which running domains hold which PCI functions, and
which networks are SR-IOV hostdev pools."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import libvirt


def _pci(addr: ET.Element) -> str | None:
    try:
        parts = [int(addr.get(k, ""), 16) for k in ("domain", "bus", "slot", "function")]
    except ValueError:
        return None
    return "{:04x}:{:02x}:{:02x}.{:x}".format(*parts)


def assigned_pci(conn: libvirt.virConnect) -> dict[str, str]:
    """PCI address -> name of the running domain that holds it (hostdev or hostdev interface)."""
    out: dict[str, str] = {}
    for dom in conn.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE):
        try:
            root = ET.fromstring(dom.XMLDesc(0))
        except (libvirt.libvirtError, ET.ParseError):
            continue
        sources = root.findall("devices/hostdev[@type='pci']/source/address")
        sources += root.findall("devices/interface[@type='hostdev']/source/address")
        # a NIC from a hostdev network: the live XML names the VF libvirt picked
        sources += root.findall("devices/interface[@type='network']/source/address")
        for addr in sources:
            pci = _pci(addr)
            if pci:
                out[pci] = dom.name()
    return out


def hostdev_networks(conn: libvirt.virConnect) -> dict[str, tuple[str, ...]]:
    """libvirt networks with <forward mode='hostdev'>: name -> their PF netdev names."""
    out: dict[str, tuple[str, ...]] = {}
    for net in conn.listAllNetworks(0):
        try:
            root = ET.fromstring(net.XMLDesc(0))
        except (libvirt.libvirtError, ET.ParseError):
            continue
        fwd = root.find("forward")
        if fwd is not None and fwd.get("mode") == "hostdev":
            pfs = tuple(p.get("dev", "") for p in fwd.findall("pf"))
            out[str(net.name())] = pfs
    return out
