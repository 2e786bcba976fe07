"""Build libvirt domain XML for a benchmark guest.

Element order is fixed so that golden files stay stable.  One small function per element, in the
spirit of virt-manager's virtinst.  The domain is transient, boots a kernel + initramfs directly,
has at most one test disk and one NIC in the mode's models, the mode's PCI host devices, a
guest-agent channel (`AgentChannel`: with its port on the guest's kernel command line) and a
serial console written to a file.

Pure: no libvirt import, no I/O, no global state (no `ET.register_namespace`).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

METADATA_NS = "urn:x-vbench:run:1"
METADATA_PREFIX = "vbench"

DISK_BUSES = ("ide", "sata", "virtio", "scsi", "xen")
NIC_MODELS = ("e1000", "e1000e", "rtl8139", "virtio", "netfront")
DOMAIN_TYPES = ("qemu", "kvm", "xen")  # xen: libvirt's libxl driver
OS_TYPES = ("hvm", "xen")  # xen: a Xen PV guest

_TARGET_PREFIX = {"ide": "hd", "sata": "sd", "scsi": "sd", "virtio": "vd", "xen": "xvd"}
_PCI_ADDRESS = re.compile(r"^([0-9a-fA-F]{4}):([0-9a-fA-F]{2}):([0-1][0-9a-fA-F])\.([0-7])$")
_MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
_DOMAIN_NAME = re.compile(r"^[^/\x00-\x1f\x7f]{1,200}$")  # libvirt refuses '/' in a name
# A Linux interface name: at most 15 bytes (IFNAMSIZ - 1), no '/', ':' or white space.
_IFNAME = re.compile(r"^[A-Za-z0-9_.-]{1,15}$")
# A unicast MAC address (the least significant bit of the first octet clear).
_UNICAST_MAC = re.compile(r"^[0-9a-f][02468ace](:[0-9a-f]{2}){5}$")


def disk_target_dev(bus: str) -> str:
    """The libvirt target name of the first disk on a bus (hda, sda, vda)."""
    return _TARGET_PREFIX[bus] + "a"


def is_q35(machine: str) -> bool:
    """Whether a machine type is a q35 (PCIe, no IDE) machine: `q35`, `pc-q35-7.2`, ..."""
    return machine == "q35" or machine.startswith("pc-q35")


def _check_pci(address: str) -> None:
    if not _PCI_ADDRESS.match(address):
        raise ValueError(f"{address!r} is not a PCI address (want DDDD:BB:SS.F, e.g. 0000:81:00.0)")


def pci_parts(address: str) -> dict[str, str]:
    """libvirt's address attributes (domain, bus, slot, function) for DDDD:BB:SS.F, lower case."""
    m = _PCI_ADDRESS.match(address)
    if m is None:
        _check_pci(address)
    assert m is not None
    domain, bus, slot, function = (g.lower() for g in m.groups())
    return {
        "domain": f"0x{domain}",
        "bus": f"0x{bus}",
        "slot": f"0x{slot}",
        "function": f"0x{function}",
    }


@dataclass(frozen=True)
class HostdevSpec:
    """A PCI device handed to the guest (VFIO pass-through or an SR-IOV VF)."""

    pci_address: str  # DDDD:BB:SS.F on the host
    # where the guest sees it (DDDD:BB:SS.F): set, so that the guest side can find the device by
    # address; None lets libvirt choose
    guest_address: str | None = None

    def __post_init__(self) -> None:
        _check_pci(self.pci_address)
        if self.guest_address is not None:
            _check_pci(self.guest_address)

    def parts(self) -> tuple[str, str, str, str]:
        """(domain, bus, slot, function) as libvirt's hex attributes, lower case."""
        p = pci_parts(self.pci_address)
        return p["domain"], p["bus"], p["slot"], p["function"]

    @property
    def nodedev_name(self) -> str:
        """libvirt's node device name for this address, e.g. `pci_0000_81_10_0`."""
        return "pci_" + re.sub(r"[:.]", "_", self.pci_address.lower())


def _check_nic(mac: str, vlan: int | None, guest_address: str | None) -> None:
    """What every NIC handed to a guest must satisfy: a MAC, a VLAN tag in range, a PCI slot."""
    if guest_address is not None:
        _check_pci(guest_address)
    if not _MAC.match(mac):
        raise ValueError(f"{mac!r} is not a MAC address (want xx:xx:xx:xx:xx:xx)")
    if vlan is not None and not 1 <= vlan <= 4094:
        raise ValueError(f"VLAN tag {vlan} is out of range 1-4094")


@dataclass(frozen=True)
class HostdevNicSpec:
    """An SR-IOV NIC VF as `<interface type='hostdev' managed='yes'>`: libvirt sets its MAC/VLAN."""

    pci_address: str
    mac: str
    vlan: int | None = None
    guest_address: str | None = None

    def __post_init__(self) -> None:
        _check_pci(self.pci_address)
        _check_nic(self.mac, self.vlan, self.guest_address)


@dataclass(frozen=True)
class NetworkNicSpec:
    """A NIC from a libvirt network, e.g. a hostdev pool (`<forward mode='hostdev'>`) of VFs."""

    network: str
    mac: str
    vlan: int | None = None
    guest_address: str | None = None

    def __post_init__(self) -> None:
        if not self.network or "/" in self.network:
            raise ValueError(f"{self.network!r} is not a libvirt network name")
        _check_nic(self.mac, self.vlan, self.guest_address)


# The name libvirt's QEMU driver connects to itself (its agent API); vbench's own channel under
# QEMU takes another one, which libvirt leaves alone.
QEMU_AGENT_NAME = "org.qemu.guest_agent.0"
VBENCH_AGENT_NAME = "org.vbench.agent.0"
CHANNEL_TARGETS = ("virtio", "xen")
# A unix socket's path: sun_path is 108 bytes with its NUL
_SOCKET_PATH_MAX = 107


@dataclass(frozen=True)
class AgentChannel:
    """Where the guest's qemu-ga listens and who on the host talks to it.

    `socket` None: libvirt's QEMU driver owns the channel (virtio `org.qemu.guest_agent.0`) and
    vbench goes through libvirt's agent API.  Otherwise libvirt makes a unix socket at `socket`
    (`<source mode='bind'>`) and vbench speaks the agent protocol over it itself: the only way
    on libvirt's libxl driver, which has no agent API (target `xen`: a Xen PV console channel).
    """

    target: str = "virtio"  # virtio (virtio-serial port) | xen (a Xen PV console channel)
    name: str = QEMU_AGENT_NAME
    socket: str | None = None

    def __post_init__(self) -> None:
        if self.target not in CHANNEL_TARGETS:
            raise ValueError(f"agent channel target must be virtio or xen, not {self.target!r}")
        if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", self.name):
            raise ValueError(f"{self.name!r} is not a channel name (e.g. {VBENCH_AGENT_NAME})")
        if self.socket is None and (self.target, self.name) != ("virtio", QEMU_AGENT_NAME):
            raise ValueError(
                f"only libvirt's own agent channel ({QEMU_AGENT_NAME}) goes without a socket"
            )
        if self.socket is not None:
            if not self.socket.startswith("/") or len(self.socket.encode()) > _SOCKET_PATH_MAX:
                raise ValueError(
                    f"the agent socket {self.socket!r} must be an absolute path of at most "
                    f"{_SOCKET_PATH_MAX} bytes (a unix socket's limit)"
                )
            if (self.target, self.name) == ("virtio", QEMU_AGENT_NAME):
                raise ValueError(
                    f"libvirt's QEMU driver connects to {QEMU_AGENT_NAME} itself: a channel "
                    f"vbench talks to over its socket needs another name (e.g. {VBENCH_AGENT_NAME})"
                )

    @property
    def guest_port(self) -> str:
        """The guest's device for the channel.  A Xen channel is PV console N, /dev/hvcN (see
        xen-pv-channel(7)); console 0 is the guest's own, so vbench's one channel is hvc1."""
        if self.target == "xen":
            return "/dev/hvc1"
        return f"/dev/virtio-ports/{self.name}"

    @property
    def kernel_arg(self) -> str:
        """What tells the microguest's /init where its qemu-ga listens ('' for the default)."""
        if self.socket is None:
            return ""  # libvirt's channel: /init's default port
        return f"vbench.agent={self.guest_port}"


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
    disk_path: str | None = None  # None: no emulated test disk (VFIO/SR-IOV: the hostdev is it)
    disk_bus: str | None = "virtio"  # ide | sata | virtio | scsi; None only without a disk
    nic_model: str | None = "virtio"  # e1000 | e1000e | rtl8139 | virtio | None (no NIC)
    # The host tap the NIC uses (created by vbench, moved into the run's network namespace once
    # the guest runs); None: a user-mode (SLIRP) NIC that nothing measures.
    nic_tap: str | None = None
    nic_mac: str | None = None  # lower-case unicast MAC; the guest finds its test NIC by it
    machine: str = "pc"
    hostdevs: tuple[HostdevSpec, ...] = field(default_factory=tuple)
    emulator: str | None = None
    owner_pid: int | None = None
    # pass-through NICs: SR-IOV VFs as interfaces, or NICs from a libvirt hostdev network
    passthrough_nics: tuple[HostdevNicSpec | NetworkNicSpec, ...] = ()
    pcie_root_ports: int = 0  # q35: explicit root ports (index 1..n) for the devices above
    iommu: bool = False  # an emulated Intel IOMMU in the guest (q35 only)
    os_type: str = "hvm"  # "xen": a Xen PV guest (machine xenpv)
    agent: AgentChannel = AgentChannel()  # per libvirt driver: vbench.virt.driver

    @property
    def is_xen(self) -> bool:
        return self.domain_type == "xen"

    def __post_init__(self) -> None:
        if not _DOMAIN_NAME.match(self.name):
            raise ValueError(f"{self.name!r} is not a usable domain name (no '/', 1-200 chars)")
        if self.domain_type not in DOMAIN_TYPES:
            raise ValueError(
                f"domain_type must be one of {', '.join(DOMAIN_TYPES)}, not {self.domain_type!r}"
            )
        if self.os_type not in OS_TYPES or (self.os_type == "xen" and not self.is_xen):
            raise ValueError(f"os_type {self.os_type!r} needs a xen domain (hvm, or xen for PV)")
        if (self.agent.target == "xen") != self.is_xen:
            raise ValueError("a Xen guest's agent channel is a xen one (and only a Xen guest's)")
        if self.is_xen and (self.iommu or self.pcie_root_ports):
            raise ValueError("a Xen guest has no q35 root ports or emulated IOMMU")
        if self.vcpus < 1:
            raise ValueError(f"vcpus must be >= 1, not {self.vcpus}")
        if self.memory_mib < 1:
            raise ValueError(f"memory_mib must be >= 1, not {self.memory_mib}")
        if self.disk_bus is not None and self.disk_bus not in DISK_BUSES:
            raise ValueError(f"unknown disk bus {self.disk_bus!r} (one of {', '.join(DISK_BUSES)})")
        if self.disk_path is not None and self.disk_bus is None:
            raise ValueError("a disk_path needs a disk_bus")
        if self.nic_model is not None and self.nic_model not in NIC_MODELS:
            raise ValueError(
                f"unknown NIC model {self.nic_model!r} (one of {', '.join(NIC_MODELS)})"
            )
        if self.nic_tap is not None and not _IFNAME.match(self.nic_tap):
            raise ValueError(
                f"{self.nic_tap!r} is not an interface name (1-15 of A-Z a-z 0-9 _ . -)"
            )
        if self.nic_mac is not None and not _UNICAST_MAC.match(self.nic_mac):
            raise ValueError(
                f"{self.nic_mac!r} is not a lower-case unicast MAC address (e.g. 02:76:62:00:00:01)"
            )
        if self.nic_model is None and (self.nic_tap is not None or self.nic_mac is not None):
            raise ValueError("nic_tap and nic_mac need a nic_model")
        if self.disk_path is not None and self.disk_bus == "ide" and is_q35(self.machine):
            raise ValueError("the q35 machine has no IDE controller: use sata, or machine 'pc'")
        addresses = [hd.pci_address.lower() for hd in self.hostdevs]
        addresses += [
            n.pci_address.lower() for n in self.passthrough_nics if isinstance(n, HostdevNicSpec)
        ]
        if len(set(addresses)) != len(addresses):
            raise ValueError(f"a host device is listed twice: {addresses}")
        if (self.iommu or self.pcie_root_ports) and not is_q35(self.machine):
            raise ValueError("PCIe root ports and a guest IOMMU need the q35 machine")


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    el = ET.SubElement(parent, tag, attrs)
    if text is not None:
        el.text = text
    return el


def _metadata(root: ET.Element, spec: DomainSpec) -> None:
    # ElementTree hoists every namespace declaration to the document root.  Write the prefixed
    # name and its declaration literally instead, so the <vbench:run> fragment is self-contained:
    # the same shape libvirt itself writes for virDomainSetMetadata, and it survives being cut
    # out of the document.  (libvirt's parser accepts both; a round trip is tested.)
    meta = _sub(root, "metadata")
    attrs = {f"xmlns:{METADATA_PREFIX}": METADATA_NS, "id": spec.run_id, "case": spec.case}
    if spec.owner_pid is not None:
        # the process that runs this guest: `vbench cleanup` never touches a live run's guests
        attrs["pid"] = str(spec.owner_pid)
    ET.SubElement(meta, f"{METADATA_PREFIX}:run", attrs)


def _os(root: ET.Element, spec: DomainSpec) -> None:
    os_el = _sub(root, "os")
    _sub(os_el, "type", spec.os_type, arch="x86_64", machine=spec.machine)
    _sub(os_el, "kernel", spec.kernel)
    _sub(os_el, "initrd", spec.initrd)
    # the agent's port goes with the channel: the two must agree
    _sub(os_el, "cmdline", " ".join(p for p in (spec.cmdline, spec.agent.kernel_arg) if p))


def _disk(devices: ET.Element, spec: DomainSpec) -> None:
    if spec.disk_path is None or spec.disk_bus is None:
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
    # libxl has no user-mode networking: a Xen guest's NIC is always a tap (vif) device
    user = spec.nic_tap is None and not spec.is_xen
    iface = _sub(devices, "interface", type="user" if user else "ethernet")
    if spec.nic_mac is not None:
        _sub(iface, "mac", address=spec.nic_mac)
    if spec.nic_tap is not None:
        # managed='no': libvirt opens the tap vbench made and neither creates, configures nor
        # deletes it, so vbench can move it into the run's namespace and remove it itself.
        _sub(iface, "target", dev=spec.nic_tap, managed="no")
    _sub(iface, "model", type=spec.nic_model)


def _guest_address(parent: ET.Element, address: str | None) -> None:
    if address is not None:
        _sub(parent, "address", type="pci", **pci_parts(address))


def _root_ports(devices: ET.Element, spec: DomainSpec) -> None:
    for index in range(1, spec.pcie_root_ports + 1):
        _sub(devices, "controller", type="pci", index=str(index), model="pcie-root-port")


def _hostdevs(devices: ET.Element, spec: DomainSpec) -> None:
    for hd in spec.hostdevs:
        el = _sub(devices, "hostdev", mode="subsystem", type="pci", managed="yes")
        _sub(el, "driver", name=_backend(spec))
        source = _sub(el, "source")
        domain, bus, slot, function = hd.parts()
        _sub(source, "address", domain=domain, bus=bus, slot=slot, function=function)
        _guest_address(el, hd.guest_address)


def _backend(spec: DomainSpec) -> str:
    """The PCI pass-through backend: VFIO under QEMU/KVM, Xen's pciback under libxl."""
    return "xen" if spec.is_xen else "vfio"


def _vlan(parent: ET.Element, tag: int | None) -> None:
    if tag is not None:
        _sub(_sub(parent, "vlan"), "tag", id=str(tag))


def _passthrough_nics(devices: ET.Element, spec: DomainSpec) -> None:
    for nic in spec.passthrough_nics:
        if isinstance(nic, HostdevNicSpec):
            el = _sub(devices, "interface", type="hostdev", managed="yes")
            _sub(el, "mac", address=nic.mac)
            _sub(el, "driver", name=_backend(spec))
            source = _sub(el, "source")
            _sub(source, "address", type="pci", **pci_parts(nic.pci_address))
        else:
            el = _sub(devices, "interface", type="network")
            _sub(el, "mac", address=nic.mac)
            _sub(el, "source", network=nic.network)
        _vlan(el, nic.vlan)
        _guest_address(el, nic.guest_address)


def _iommu(devices: ET.Element, spec: DomainSpec) -> None:
    if spec.iommu:
        # caching_mode: VFIO devices behind an emulated IOMMU need it; intremap needs the
        # split irqchip (<ioapic driver='qemu'/> in <features>)
        el = _sub(devices, "iommu", model="intel")
        _sub(el, "driver", intremap="on", caching_mode="on")


def _console(devices: ET.Element, spec: DomainSpec) -> None:
    if spec.os_type == "xen":
        # a PV guest's console is Xen's own (hvc0); libxl offers it only as a pty
        console = _sub(devices, "console", type="pty")
        _sub(console, "target", type="xen", port="0")
        return
    serial = _sub(devices, "serial", type="file")
    _sub(serial, "source", path=spec.console_log, append="off")
    _sub(serial, "target", port="0")
    console = _sub(devices, "console", type="file")
    _sub(console, "source", path=spec.console_log, append="off")
    _sub(console, "target", type="serial", port="0")


def _agent_channel(devices: ET.Element, spec: DomainSpec) -> None:
    agent = spec.agent
    channel = _sub(devices, "channel", type="unix")
    if agent.socket is not None:
        # libvirt (QEMU driver) or libxl's device model listens there; vbench connects
        _sub(channel, "source", mode="bind", path=agent.socket)
    _sub(channel, "target", type=agent.target, name=agent.name)


def build_domain_xml(spec: DomainSpec) -> str:
    """The domain XML for `spec`, indented, in a deterministic element order."""
    root = ET.Element("domain", type=spec.domain_type)
    _sub(root, "name", spec.name)
    _metadata(root, spec)
    _sub(root, "memory", str(spec.memory_mib), unit="MiB")
    _sub(root, "vcpu", str(spec.vcpus))
    _os(root, spec)
    features = _sub(root, "features")
    if spec.os_type == "hvm":
        _sub(features, "acpi")
    if spec.is_xen and spec.os_type == "hvm":
        _sub(features, "apic")
        _sub(features, "pae")
    if spec.iommu:
        _sub(features, "ioapic", driver="qemu")
    _sub(root, "on_poweroff", "destroy")
    _sub(root, "on_reboot", "destroy")
    _sub(root, "on_crash", "destroy")
    devices = _sub(root, "devices")
    if spec.emulator:
        _sub(devices, "emulator", spec.emulator)
    _disk(devices, spec)
    _nic(devices, spec)
    _root_ports(devices, spec)
    _hostdevs(devices, spec)
    _passthrough_nics(devices, spec)
    _console(devices, spec)
    _agent_channel(devices, spec)
    _sub(devices, "memballoon", model="xen" if spec.is_xen else "none")
    _iommu(devices, spec)
    ET.indent(root, space="  ")
    return ET.tostring(root, encoding="unicode") + "\n"
