"""Build libvirt domain XML for a benchmark guest.

Element order is fixed so that golden files stay stable.  One small function per element, in the
spirit of virt-manager's virtinst.  The domain is transient, boots a kernel + initramfs directly,
has exactly one test disk and one NIC in the mode's models, a guest-agent channel and a serial
console written to a file.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

METADATA_NS = "urn:x-vbench:run:1"

_TARGET_PREFIX = {"ide": "hd", "sata": "sd", "scsi": "sd", "virtio": "vd"}


def disk_target_dev(bus: str) -> str:
    """The libvirt target name of the first disk on a bus (hda, sda, vda)."""
    return _TARGET_PREFIX[bus] + "a"


@dataclass(frozen=True)
class HostdevSpec:
    """A PCI device handed to the guest (VFIO pass-through or an SR-IOV VF)."""

    pci_address: str  # DDDD:BB:SS.F

    def parts(self) -> tuple[str, str, str, str]:
        domain, bus, slot_fn = self.pci_address.split(":")
        slot, function = slot_fn.split(".")
        return f"0x{domain}", f"0x{bus}", f"0x{slot}", f"0x{function}"


@dataclass(frozen=True)
class DomainSpec:
    name: str
    run_id: str
    case: str  # which trial this guest serves, e.g. "r0-pv"
    domain_type: str  # "qemu" (TCG) or "kvm"
    vcpus: int
    memory_mib: int
    kernel: str
    initrd: str
    cmdline: str
    console_log: str
    disk_path: str | None = None
    disk_bus: str = "virtio"  # ide | sata | virtio | scsi
    nic_model: str | None = "virtio"  # e1000 | e1000e | rtl8139 | virtio | None (no NIC)
    machine: str = "pc"
    hostdevs: tuple[HostdevSpec, ...] = field(default_factory=tuple)
    emulator: str | None = None

    def __post_init__(self) -> None:
        if self.domain_type not in ("qemu", "kvm"):
            raise ValueError(f"domain_type must be 'qemu' or 'kvm', not {self.domain_type!r}")
        if self.disk_bus not in _TARGET_PREFIX:
            raise ValueError(f"unknown disk bus {self.disk_bus!r}")
        if self.disk_bus == "ide" and "q35" in self.machine:
            raise ValueError("the q35 machine has no IDE controller: use sata, or machine 'pc'")


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    el = ET.SubElement(parent, tag, attrs)
    if text is not None:
        el.text = text
    return el


def _metadata(root: ET.Element, spec: DomainSpec) -> None:
    meta = _sub(root, "metadata")
    ET.register_namespace("vbench", METADATA_NS)
    ET.SubElement(meta, f"{{{METADATA_NS}}}run", {"id": spec.run_id, "case": spec.case})


def _os(root: ET.Element, spec: DomainSpec) -> None:
    os_el = _sub(root, "os")
    _sub(os_el, "type", "hvm", arch="x86_64", machine=spec.machine)
    _sub(os_el, "kernel", spec.kernel)
    _sub(os_el, "initrd", spec.initrd)
    _sub(os_el, "cmdline", spec.cmdline)


def _disk(devices: ET.Element, spec: DomainSpec) -> None:
    if spec.disk_path is None:
        return
    disk = _sub(devices, "disk", type="file", device="disk")
    # cache='none' (O_DIRECT on the host) so the host page cache does not flatter any mode
    _sub(disk, "driver", name="qemu", type="raw", cache="none", io="native")
    _sub(disk, "source", file=spec.disk_path)
    _sub(disk, "target", dev=disk_target_dev(spec.disk_bus), bus=spec.disk_bus)
    _sub(disk, "serial", "vbench-test")
    if spec.disk_bus == "scsi":
        _sub(devices, "controller", type="scsi", index="0", model="virtio-scsi")


def _nic(devices: ET.Element, spec: DomainSpec) -> None:
    if spec.nic_model is None:
        return
    iface = _sub(devices, "interface", type="user")
    _sub(iface, "model", type=spec.nic_model)


def _hostdevs(devices: ET.Element, spec: DomainSpec) -> None:
    for hd in spec.hostdevs:
        el = _sub(devices, "hostdev", mode="subsystem", type="pci", managed="yes")
        _sub(el, "driver", name="vfio")
        source = _sub(el, "source")
        domain, bus, slot, function = hd.parts()
        _sub(source, "address", domain=domain, bus=bus, slot=slot, function=function)


def _console(devices: ET.Element, spec: DomainSpec) -> None:
    serial = _sub(devices, "serial", type="file")
    _sub(serial, "source", path=spec.console_log, append="off")
    _sub(serial, "target", port="0")
    console = _sub(devices, "console", type="file")
    _sub(console, "source", path=spec.console_log, append="off")
    _sub(console, "target", type="serial", port="0")


def _agent_channel(devices: ET.Element) -> None:
    channel = _sub(devices, "channel", type="unix")
    _sub(channel, "target", type="virtio", name="org.qemu.guest_agent.0")


def build_domain_xml(spec: DomainSpec) -> str:
    """The domain XML for `spec`, indented, in a deterministic element order."""
    root = ET.Element("domain", type=spec.domain_type)
    _sub(root, "name", spec.name)
    _metadata(root, spec)
    _sub(root, "memory", str(spec.memory_mib), unit="MiB")
    _sub(root, "vcpu", str(spec.vcpus))
    _os(root, spec)
    features = _sub(root, "features")
    _sub(features, "acpi")
    _sub(root, "on_poweroff", "destroy")
    _sub(root, "on_reboot", "destroy")
    _sub(root, "on_crash", "destroy")
    devices = _sub(root, "devices")
    if spec.emulator:
        _sub(devices, "emulator", spec.emulator)
    _disk(devices, spec)
    _nic(devices, spec)
    _hostdevs(devices, spec)
    _console(devices, spec)
    _agent_channel(devices)
    _sub(devices, "memballoon", model="none")
    ET.indent(root, space="  ")
    return ET.tostring(root, encoding="unicode") + "\n"
