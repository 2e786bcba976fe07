"""Collect the host's device inventory (PCI, block, net) and what the host itself uses.

Adapter: device trees are read through pyudev (which umockdev fakes in tests), the device's own
sysfs links (`iommu_group`, `virtfn*`, `physfn`, `driver`) with os.readlink, and /proc files
below an injectable `HostPaths` root.  Read only: nothing is written, no module is loaded.

    python -m vbench.host.inventory [--testbed DIR]

prints the inventory as JSON; with --testbed it re-executes itself under umockdev-run when needed.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import sys
from collections.abc import Iterable
from pathlib import Path

import pyudev

from vbench.errors import HostError
from vbench.host import procfs
from vbench.host.paths import HostPaths
from vbench.host.testbed import in_testbed, reexec_under_umockdev
from vbench.host.udev import udev_context
from vbench.inventory import BlockDevice, HostUse, Inventory, NetDevice, PciDevice

BRIDGE_CLASS_PREFIX = "0604"
_MAX_DEPTH = 8  # for stacked block devices (dm on md on partitions …) and loop backing files


# --- small sysfs readers (paths come from pyudev, so umockdev redirects them) ---------------------


def _read_attr(device: pyudev.Device, name: str) -> str | None:
    try:
        raw = device.attributes.get(name)
    except (OSError, UnicodeDecodeError):
        return None
    if raw is None:
        return None
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    return text.strip()


def _int_attr(device: pyudev.Device, name: str) -> int | None:
    value = _read_attr(device, name)
    if value is None:
        return None
    try:
        return int(value, 0)
    except ValueError:
        return None


def _link_name(sys_path: str, name: str) -> str | None:
    """Basename of the symlink `sys_path/name`, or None when there is no such link."""
    try:
        return os.path.basename(os.readlink(os.path.join(sys_path, name)))
    except OSError:
        return None


def _listdir(path: str) -> list[str]:
    try:
        return sorted(os.listdir(path))
    except OSError:
        return []


def _hex_id(value: str | None) -> str:
    if value is None:
        return ""
    return value.lower().removeprefix("0x")


def _prop(device: pyudev.Device, key: str) -> str | None:
    value = device.properties.get(key)
    return str(value) if value else None


def _pci_address_of(device: pyudev.Device) -> str | None:
    """The PCI device at or above `device` (walks parents to the first pci ancestor)."""
    node: pyudev.Device | None = device
    while node is not None:
        if node.subsystem == "pci":
            return str(node.sys_name)
        node = node.parent
    return None


# --- PCI ------------------------------------------------------------------------------------------


def _virtfn_index(name: str) -> int:
    m = re.fullmatch(r"virtfn(\d+)", name)
    return int(m.group(1)) if m else -1


def pci_device_from_udev(device: pyudev.Device) -> PciDevice:
    sys_path = str(device.sys_path)
    numa = _int_attr(device, "numa_node")
    group = _link_name(sys_path, "iommu_group")
    vf_links = sorted((n for n in _listdir(sys_path) if _virtfn_index(n) >= 0), key=_virtfn_index)
    vfs = tuple(v for v in (_link_name(sys_path, n) for n in vf_links) if v)
    class_code = _hex_id(_read_attr(device, "class")).rjust(6, "0")
    driver = _link_name(sys_path, "driver") or (str(device.driver) if device.driver else None)
    return PciDevice(
        address=str(device.sys_name),
        vendor_id=_hex_id(_read_attr(device, "vendor")),
        device_id=_hex_id(_read_attr(device, "device")),
        class_code=class_code,
        vendor_name=_prop(device, "ID_VENDOR_FROM_DATABASE"),
        device_name=_prop(device, "ID_MODEL_FROM_DATABASE"),
        class_name=_prop(device, "ID_PCI_CLASS_FROM_DATABASE"),
        driver=driver,
        numa_node=None if numa is None or numa < 0 else numa,
        iommu_group=int(group) if group and group.isdigit() else None,
        sriov_totalvfs=_int_attr(device, "sriov_totalvfs"),
        sriov_numvfs=_int_attr(device, "sriov_numvfs"),
        physfn=_link_name(sys_path, "physfn"),
        vfs=vfs,
        is_bridge=class_code.startswith(BRIDGE_CLASS_PREFIX),
    )


# --- block and net --------------------------------------------------------------------------------


class _BlockIndex:
    """Block devices by kernel name, with lookups from /dev paths and through stacking."""

    def __init__(self, context: pyudev.Context) -> None:
        self.by_name: dict[str, pyudev.Device] = {}
        self.by_node: dict[str, str] = {}
        for dev in context.list_devices(subsystem="block"):
            name = str(dev.sys_name)
            self.by_name[name] = dev
            node = _prop(dev, "DEVNAME")
            if node:
                self.by_node[node if node.startswith("/") else f"/dev/{node}"] = name
            for link in (_prop(dev, "DEVLINKS") or "").split():
                self.by_node[link] = name

    def name_for_source(self, source: str) -> str | None:
        """The kernel name of the block device a /dev path (or /dev/mapper, by-uuid link) names."""
        if source in self.by_node:
            return self.by_node[source]
        base = os.path.basename(source)
        if base in self.by_name:
            return base
        if source.startswith("/dev/mapper/"):
            for name, dev in self.by_name.items():
                if _prop(dev, "DM_NAME") == base or _read_attr(dev, "dm/name") == base:
                    return name
        return None

    def slaves(self, name: str) -> list[str]:
        dev = self.by_name.get(name)
        if dev is None:
            return []
        return [s for s in _listdir(os.path.join(str(dev.sys_path), "slaves")) if s]

    def pci_backing(self, name: str, depth: int = 0) -> list[tuple[str, str]]:
        """(PCI address, leaf block name) pairs behind block device `name`, via dm/md slaves."""
        dev = self.by_name.get(name)
        if dev is None or depth > _MAX_DEPTH:
            return []
        slaves = self.slaves(name)
        if slaves:
            out: list[tuple[str, str]] = []
            for s in slaves:
                out.extend(self.pci_backing(s, depth + 1))
            return out
        addr = _pci_address_of(dev)
        return [(addr, name)] if addr else []


def _block_devices(index: _BlockIndex) -> list[BlockDevice]:
    disks = [d for d in index.by_name.values() if d.device_type == "disk"]
    parts: dict[str, list[str]] = {}
    for d in index.by_name.values():
        if d.device_type == "partition" and d.parent is not None:
            parts.setdefault(str(d.parent.sys_name), []).append(str(d.sys_name))
    out = []
    for d in disks:
        name = str(d.sys_name)
        sectors = _int_attr(d, "size")
        behind = {addr for addr, _ in index.pci_backing(name)}
        out.append(
            BlockDevice(
                name=name,
                # a stacked device (dm, md) names its PCI device when all its slaves share one
                pci_address=_pci_address_of(d) or (behind.pop() if len(behind) == 1 else None),
                size_bytes=sectors * 512 if sectors is not None else None,
                partitions=tuple(sorted(parts.get(name, []))),
            )
        )
    return sorted(out, key=lambda b: b.name)


def _net_devices(context: pyudev.Context) -> dict[str, pyudev.Device]:
    return {str(d.sys_name): d for d in context.list_devices(subsystem="net")}


def _net_lower(dev: pyudev.Device) -> list[str]:
    """Interfaces under a bridge, bond, VLAN or macvlan (brif/ and lower_* entries)."""
    sys_path = str(dev.sys_path)
    lower = [n.removeprefix("lower_") for n in _listdir(sys_path) if n.startswith("lower_")]
    lower += _listdir(os.path.join(sys_path, "brif"))
    return sorted(set(lower))


def _net_pci_backing(
    nets: dict[str, pyudev.Device], name: str, depth: int = 0
) -> list[tuple[str, str]]:
    dev = nets.get(name)
    if dev is None or depth > _MAX_DEPTH:
        return []
    addr = _pci_address_of(dev)
    if addr:
        return [(addr, name)]
    out: list[tuple[str, str]] = []
    for lower in _net_lower(dev):
        out.extend(_net_pci_backing(nets, lower, depth + 1))
    return out


# --- host use -------------------------------------------------------------------------------------


def _mount_for_path(mounts: list[procfs.Mount], path: str) -> procfs.Mount | None:
    """The mount whose target is the longest prefix of `path` (the last one mounted wins)."""
    best: procfs.Mount | None = None
    for m in mounts:
        target = m.target.rstrip("/") or "/"
        if (path == target or path.startswith(target + "/") or target == "/") and (
            best is None or len(target) >= len(best.target.rstrip("/") or "/")
        ):
            best = m
    return best


def _via(leaf: str, name: str) -> str:
    return leaf if leaf == name else f"{name} on {leaf}"


class _HostUseFinder:
    def __init__(self, index: _BlockIndex, mounts: list[procfs.Mount]) -> None:
        self.index = index
        self.mounts = mounts
        self.notes: list[str] = []

    def block_source(self, source: str, depth: int = 0) -> list[tuple[str, str]]:
        """(PCI address, "what" text) for a /dev source; loop devices follow their backing file."""
        name = self.index.name_for_source(source)
        if name is None:
            self.notes.append(f"cannot tell which block device {source} is")
            return []
        dev = self.index.by_name[name]
        backing = _read_attr(dev, "loop/backing_file")
        if backing and depth < _MAX_DEPTH:
            m = _mount_for_path(self.mounts, backing)
            if m is None or not m.source.startswith("/dev/"):
                return []
            return [
                (a, f"{name} via {backing} on {w}")
                for a, w in self.block_source(m.source, depth + 1)
            ]
        return [(addr, _via(leaf, name)) for addr, leaf in self.index.pci_backing(name)]


def find_host_use(
    pci: list[PciDevice],
    index: _BlockIndex,
    nets: dict[str, pyudev.Device],
    paths: HostPaths,
) -> tuple[list[HostUse], list[str]]:
    mounts = procfs.read_mounts(paths)
    finder = _HostUseFinder(index, mounts)
    direct: list[HostUse] = []

    for m in mounts:
        if not m.source.startswith("/dev/"):
            continue
        for addr, what in finder.block_source(m.source):
            direct.append(HostUse(addr, f"backs {m.target} ({what})"))

    for s in procfs.read_swaps(paths):
        if s.kind == "file" or not s.filename.startswith("/dev/"):
            holder = _mount_for_path(mounts, s.filename)
            if holder is None or not holder.source.startswith("/dev/"):
                continue
            for addr, what in finder.block_source(holder.source):
                direct.append(HostUse(addr, f"backs swap ({s.filename} on {what})"))
        else:
            for addr, what in finder.block_source(s.filename):
                direct.append(HostUse(addr, f"backs swap ({what})"))

    for iface in procfs.default_route_ifaces(procfs.read_routes(paths)):
        backing = _net_pci_backing(nets, iface)
        if not backing and iface in nets:
            finder.notes.append(f"default route on {iface}, which has no PCI device behind it")
        for addr, leaf in backing:
            direct.append(HostUse(addr, f"carries the default route ({_via(leaf, iface)})"))

    direct = _unique(direct)
    groups: dict[int, list[str]] = {}
    for d in pci:
        if d.iommu_group is not None:
            groups.setdefault(d.iommu_group, []).append(d.address)
    by_addr = {d.address: d for d in pci}
    # one reason per (group mate, used device), naming everything the used device does for the host
    why: dict[str, list[str]] = {}
    for use in direct:
        why.setdefault(use.pci_address, []).append(use.reason)
    shared: list[HostUse] = []
    for addr, reasons in why.items():
        dev = by_addr.get(addr)
        if dev is None or dev.iommu_group is None:
            continue
        for mate in groups[dev.iommu_group]:
            if mate != addr:
                text = ", ".join(reasons)
                shared.append(
                    HostUse(mate, f"shares IOMMU group {dev.iommu_group} with {addr} which {text}")
                )
    return _unique(direct + shared), finder.notes


def _unique(uses: Iterable[HostUse]) -> list[HostUse]:
    seen: dict[tuple[str, str], HostUse] = {}
    for u in uses:
        seen.setdefault((u.pci_address, u.reason), u)
    return list(seen.values())


# --- entry points ---------------------------------------------------------------------------------


def collect_inventory(
    paths: HostPaths = HostPaths(),  # noqa: B008 (frozen dataclass: a safe default)
    context: pyudev.Context | None = None,
) -> Inventory:
    """Read the host's PCI, block and network devices and what the host itself uses."""
    ctx = context if context is not None else udev_context()
    pci = sorted(
        (pci_device_from_udev(d) for d in ctx.list_devices(subsystem="pci")),
        key=lambda d: d.address,
    )
    index = _BlockIndex(ctx)
    nets = _net_devices(ctx)
    net = sorted(
        (
            NetDevice(name=name, pci_address=_pci_address_of(d), mac=_read_attr(d, "address"))
            for name, d in nets.items()
        ),
        key=lambda n: n.name,
    )
    host_use, notes = find_host_use(pci, index, nets, paths)
    if pci and all(d.iommu_group is None for d in pci):
        notes.append("no PCI device is in an IOMMU group: the IOMMU is off or absent")
    return Inventory(
        pci=tuple(pci),
        block=tuple(_block_devices(index)),
        net=tuple(net),
        host_use=tuple(host_use),
        notes=tuple(dict.fromkeys(notes)),
    )


def inventory_json(inventory: Inventory) -> str:
    return json.dumps(dataclasses.asdict(inventory), indent=2)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m vbench.host.inventory", description="Print the device inventory as JSON."
    )
    parser.add_argument(
        "--testbed",
        type=Path,
        help="a recorded testbed directory (devices.umockdev + proc/ sys/ dev/); "
        "re-executes under umockdev-run unless already inside one",
    )
    args = parser.parse_args(argv)
    paths = HostPaths()
    if args.testbed is not None:
        testbed: Path = args.testbed.resolve()
        if not in_testbed():
            try:
                reexec_under_umockdev(
                    testbed,
                    [sys.executable, "-m", "vbench.host.inventory", "--testbed", str(testbed)],
                )
            except HostError as e:  # this debugging entry point is its own little surface
                print(f"error: {e}", file=sys.stderr)
                return e.exit_code
        paths = HostPaths.for_testbed(testbed)
    print(inventory_json(collect_inventory(paths)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
