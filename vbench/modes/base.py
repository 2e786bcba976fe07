"""The mode provider contract: everything vbench knows about one I/O mode, in one class.

The model is virt-manager's `virtinst/devices/hostdev.py` (one class per device kind, filled
from the node device with `set_from_nodedev`): here one provider per mode, filled from the
scenario entry and the host inventory.  A provider owns

  * the rules and defaults of its scenario entry (`check_field`, called by `ModeSpec`'s
    validators so errors keep their key path, e.g. `modes[2].pci: ...`);
  * `plan()`: which host devices it takes (resolved through the inventory), the safety checks,
    the host changes it needs, and the devices it puts in the domain (`ModeDevices`);
  * `io_target()`: how the workload finds its disk inside the guest (by serial, or by the guest
    PCI address of the assigned function; never a guessed /dev/vdb);
  * `prepare()`: a context manager that makes the plan's host changes through the run's change
    journal (recorded before made) and restores them on every way out.

Pure core: the guest and the host are reached through the small protocols below, which the
runner fills with the guest agent, the libvirt connection and `vbench.host.changes`.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from vbench.domxml import HostdevNicSpec, HostdevSpec, NetworkNicSpec
from vbench.errors import GuestError, VbenchError
from vbench.inventory import Inventory
from vbench.model import ModeId

if TYPE_CHECKING:  # scenario.py imports this module for its validators
    from vbench.scenario import ModeSpec

PCI_ADDRESS = re.compile(r"^[0-9a-fA-F]{4}:[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7]$")
MAC_ADDRESS = re.compile(r"^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$")
TEST_DISK_SERIAL = "vbench-test"  # the emulated test disk's <serial>
_READY_FILE = "/run/vbench-ready"  # written by the microguest's /init once drivers are probed
MACHINE_PC = "pc"  # i440fx: has IDE, so FV's default disk works
MACHINE_Q35 = "q35"  # PCIe root ports for pass-through devices

# Defaults of the mode keys in ModeSpec: a key "does not apply" only when set to something else.
KEY_DEFAULTS: dict[str, Any] = {
    "disk_bus": None,
    "nic_model": None,
    "match": None,
    "pci": None,
    "network": None,
    "pf": None,
    "vfs": None,
    "mac": None,
    "vlan": None,
    "viommu": False,
    "allow": [],
    "xen": None,
}


class DeviceRefused(VbenchError):
    """A scenario names a host device that must not be given to a guest (exit 1, nothing done)."""


def check_pci(value: str) -> str:
    if not PCI_ADDRESS.match(value):
        raise ValueError(f"{value!r} is not a PCI address (want DDDD:BB:SS.F, e.g. 0000:81:00.0)")
    return value.lower()


def default_mac(label: str) -> str:
    """A stable, locally administered MAC per mode label (QEMU's 52:54:00 prefix)."""
    h = hashlib.sha256(label.encode()).digest()
    return "52:54:00:" + ":".join(f"{b:02x}" for b in h[:3])


def guest_pci_address(slot: int, xen: str | None = None) -> str | None:
    """Where the guest sees pass-through device number `slot` (1-based).

    QEMU/KVM (q35): behind PCIe root port `slot`, bus `slot`.  Xen HVM: slot 0x10+ of bus 0
    (no PCIe root ports there).  Xen PV: pcifront numbers the devices itself (None).
    """
    if xen is None:
        return f"0000:{slot:02x}:00.0"
    if xen == "hvm":
        return f"0000:00:{0x0F + slot:02x}.0"
    return None


# -- what a provider puts in the domain and how the guest finds its target --------------------


@dataclass(frozen=True)
class GuestTarget:
    """How the workload finds its I/O target in the guest.

    kind: "serial" (a disk whose serial is `key`), "block" (the disk the hypervisor names `key`,
    e.g. Xen's xvda, whose name comes from its virtual device number), "nvme" (the NVMe
    namespace of the PCI function at guest address `key`; "*": the guest's only NVMe
    controller, for Xen PV where pcifront numbers the devices), "mac" (the NIC whose MAC is
    `key`), "none" (`key` says why there is no target).
    """

    kind: str
    key: str
    disk_stats: str | None = None  # libvirt disk target for blockStats (emulated disks)


@dataclass(frozen=True)
class ModeDevices:
    """The devices one mode puts in the domain (the DomainSpec fields a provider owns)."""

    machine: str
    target: GuestTarget
    disk_bus: str | None = None  # an emulated test disk on this bus
    nic_model: str | None = None  # an emulated NIC
    hostdevs: tuple[HostdevSpec, ...] = ()
    passthrough_nics: tuple[HostdevNicSpec | NetworkNicSpec, ...] = ()
    pcie_root_ports: int = 0
    iommu: bool = False
    cmdline: str = ""  # extra guest kernel arguments (e.g. intel_iommu=on)
    os_type: str = "hvm"  # "xen": a Xen PV guest


@dataclass(frozen=True)
class IoTarget:
    path: str  # what the workload opens in the guest, e.g. /dev/vda, /dev/nvme0n1, eth0
    how: str  # how it was found, for the log
    disk_stats: str | None = None


# -- the host, as planning sees it ------------------------------------------------------------


class Change(Protocol):
    """A host change (vbench.host.changes.HostChange): its one-line description is enough here."""

    @property
    def describe(self) -> str: ...


class Journal(Protocol):
    """The run's change journal (vbench.host.changes.ChangeJournal)."""

    def apply(self, change: Any) -> None: ...  # Any: the journal's own HostChange type
    def restore(self) -> Sequence[str]: ...  # one line per change it could not undo


@dataclass(frozen=True)
class HostView:
    """What planning sees of the host; filled by the runner (inventory, libvirt, host checks)."""

    inventory: Inventory
    # host checks that keep a mode from working at all (IOMMU off, vfio missing): id -> text
    blockers: Mapping[ModeId, tuple[str, ...]] = field(default_factory=dict)
    # PCI address -> the running libvirt domain that holds it
    assigned: Mapping[str, str] = field(default_factory=dict)
    # libvirt networks with <forward mode='hostdev'>: name -> PF netdev names
    hostdev_networks: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    # the changes that make VF number `index` of `pf` usable with `want` VFs enabled
    # (vbench.host.sriov_prep.plan_vf: pf, want, index -> changes; raises VbenchError when it
    # cannot be done)
    plan_vf: Callable[[str, int, int], Sequence[Change]] = lambda pf, want, index: ()
    prepare: bool = False  # `--prepare-host` / [host] prepare = true
    hypervisor: str = "kvm"  # "kvm" (QEMU/KVM or TCG) or "xen" (libvirt's libxl driver)

    @property
    def is_xen(self) -> bool:
        return self.hypervisor == "xen"


@dataclass(frozen=True)
class ModePlan:
    """A mode entry the run can provision: its devices and the host changes it needs first."""

    mode: ModeId
    label: str
    devices: ModeDevices | None  # None only while `replan`: known after the host changes
    changes: tuple[Change, ...] = ()
    resolved: tuple[str, ...] = ()  # one line per chosen host device, for the log and manifest
    # the host devices are chosen again after prepare(): the changes create or recreate VFs
    # (`devices` is then what the host offers before them, or None when it offers nothing yet)
    replan: bool = False


@dataclass(frozen=True)
class Skip:
    """A mode entry this host cannot run now, and why (in the manifest and the report)."""

    mode: ModeId
    label: str
    reason: str
    changes: tuple[Change, ...] = ()  # the host changes it would need (`--prepare-host`)


# -- the guest, as io_target sees it ----------------------------------------------------------


class ExecOutput(Protocol):
    @property
    def exitcode(self) -> int: ...
    @property
    def stdout(self) -> bytes: ...


class GuestShell(Protocol):
    """Runs argv in the guest (vbench.guest.agent.GuestAgent)."""

    @property
    def name(self) -> str: ...
    def exec(self, argv: list[str], *, timeout_s: float, check: bool = True) -> ExecOutput: ...


# One guest command lists every block device with what identifies it: its sysfs path (holds the
# PCI address of its controller) and the serials the kernel exposes (virtio-blk: serial; NVMe:
# device/serial; SCSI and libata disks: the VPD page 0x80, 4 header bytes then the serial).
_BLOCK_SCRIPT = r"""
for d in /sys/block/*; do
  [ -e "$d" ] || continue
  n=${d##*/}
  echo "dev $n $(readlink -f "$d")"
  [ -r "$d/serial" ] && echo "serial $n $(cat "$d/serial")"
  [ -r "$d/device/vpd_pg80" ] && echo "serial $n $(tail -c +5 "$d/device/vpd_pg80" | tr -d '\000')"
  [ -r "$d/device/wwid" ] && echo "wwid $n $(cat "$d/device/wwid")"
done
[ -e /run/vbench-ready ] && echo ready
exit 0
"""

_NVME_SCRIPT = r"""
for c in /sys/bus/pci/devices/{addr}/nvme/nvme*; do
  [ -d "$c" ] || continue
  echo "ctrl ${{c##*/}}"
  for ns in $c/nvme*n*; do [ -e "$ns" ] && echo "ns ${{ns##*/}}"; done
done
[ -e /run/vbench-ready ] && echo ready
exit 0
"""

_MAC_SCRIPT = r"""
for n in /sys/class/net/*; do echo "nic ${n##*/} $(cat $n/address)"; done
[ -e /run/vbench-ready ] && echo ready
exit 0
"""


_BLOCK_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:!-]*$")


@dataclass(frozen=True)
class GuestBlock:
    name: str
    sysfs: str
    serials: tuple[str, ...] = ()


def parse_block_listing(text: str) -> tuple[list[GuestBlock], bool]:
    """The output of the block listing script: the disks and whether the guest is ready."""
    paths: dict[str, str] = {}
    serials: dict[str, list[str]] = {}
    ready = False
    for line in text.splitlines():
        parts = line.split(" ", 2)
        if parts[0] == "ready":
            ready = True
        elif len(parts) == 3 and not _BLOCK_NAME.match(parts[1]):
            continue  # a glob that matched nothing while the drivers were still probing
        elif parts[0] == "dev" and len(parts) == 3:
            paths[parts[1]] = parts[2].strip()
        elif parts[0] in ("serial", "wwid") and len(parts) == 3:
            serials.setdefault(parts[1], []).append(parts[2].strip())
    blocks = [GuestBlock(n, p, tuple(serials.get(n, ()))) for n, p in sorted(paths.items())]
    return blocks, ready


def nvme_block_name(entry: str) -> str | None:
    """The block device of a namespace entry under an NVMe controller.

    `nvme0n1` is it; `nvme0c1n1` is a multipath path node without a /dev entry, whose disk is
    the subsystem's head `nvme0n1`.
    """
    m = re.fullmatch(r"nvme(\d+)(?:c\d+)?n(\d+)", entry)
    return f"nvme{m.group(1)}n{m.group(2)}" if m else None


def _poll(
    agent: GuestShell,
    script: str,
    timeout_s: float,
    find: Callable[[str, bool], str | None],
    what: str,
) -> str:
    """Run `script` until `find(output, ready)` names the target; GuestError when it never does."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = agent.exec(["sh", "-c", script], timeout_s=20, check=False)
        out = result.stdout.decode(errors="replace")
        ready = any(line == "ready" for line in out.splitlines())
        found = find(out, ready)
        if found is not None:
            return found
        if time.monotonic() >= deadline:
            listing = " ".join(line.split(" ", 2)[1] for line in out.splitlines() if " " in line)
            raise GuestError(
                f"guest {agent.name} shows no {what} after {timeout_s:g} s "
                f"(it has: {listing or 'nothing'})"
            )
        time.sleep(0.2)


def find_io_target(agent: GuestShell, target: GuestTarget, timeout_s: float = 30.0) -> IoTarget:
    """Find `target` in the running guest (polls while its drivers are still probing)."""
    if target.kind == "serial":

        def by_serial(out: str, ready: bool) -> str | None:
            blocks, _ = parse_block_listing(out)
            hits = [b for b in blocks if target.key in b.serials]
            if len(hits) > 1:
                names = ", ".join(b.name for b in hits)
                raise GuestError(
                    f"guest {agent.name}: several disks carry serial {target.key}: {names}"
                )
            return f"/dev/{hits[0].name}" if hits else None

        path = _poll(agent, _BLOCK_SCRIPT, timeout_s, by_serial, f"disk with serial {target.key}")
        return IoTarget(path, f"the disk with serial {target.key}", target.disk_stats)
    if target.kind == "block":

        def by_name(out: str, ready: bool) -> str | None:
            blocks, _ = parse_block_listing(out)
            return f"/dev/{target.key}" if any(b.name == target.key for b in blocks) else None

        what = f"disk {target.key}"
        path = _poll(agent, _BLOCK_SCRIPT, timeout_s, by_name, what)
        return IoTarget(path, f"the disk the hypervisor names {target.key}", target.disk_stats)
    if target.kind == "nvme":
        if target.key != "*" and not PCI_ADDRESS.match(target.key):
            raise GuestError(f"{target.key!r} is not a guest PCI address")

        def by_address(out: str, ready: bool) -> str | None:
            controllers = [line for line in out.splitlines() if line.startswith("ctrl ")]
            if target.key == "*" and len(controllers) > 1:
                raise GuestError(f"guest {agent.name} has several NVMe controllers: expected one")
            names = sorted(
                {
                    n
                    for line in out.splitlines()
                    if line.startswith("ns ") and (n := nvme_block_name(line[3:].strip()))
                }
            )
            return f"/dev/{names[0]}" if names else None

        script = _NVME_SCRIPT.format(addr=target.key)
        what = (
            "NVMe namespace of its only NVMe controller"
            if target.key == "*"
            else f"NVMe namespace at guest PCI address {target.key}"
        )
        return IoTarget(_poll(agent, script, timeout_s, by_address, what), what)
    if target.kind == "mac":
        mac = target.key.lower()

        def by_mac(out: str, ready: bool) -> str | None:
            for line in out.splitlines():
                parts = line.split()
                if len(parts) == 3 and parts[0] == "nic" and parts[2].lower() == mac:
                    return parts[1]
            return None

        what = f"NIC with MAC {mac}"
        return IoTarget(_poll(agent, _MAC_SCRIPT, timeout_s, by_mac, what), what)
    raise GuestError(f"guest {agent.name} has no I/O target for the workload: {target.key}")


# -- the provider ------------------------------------------------------------------------------


class ModeProvider:
    """One I/O mode.  Subclasses set the class attributes and override `check` and `plan`."""

    mode: ClassVar[ModeId]
    keys: ClassVar[frozenset[str]] = frozenset()  # mode keys of a scenario entry that apply
    defaults: ClassVar[Mapping[str, Any]] = {}  # key -> value when the scenario leaves it out
    not_applicable: ClassVar[str] = ""  # why other keys do not apply, appended to the error

    # -- the scenario entry ----------------------------------------------------------------
    def check_field(self, key: str, value: Any, entry: Mapping[str, Any]) -> Any:
        """Validate (and default) one key of a mode entry; ValueError names what to fix.

        `entry` holds the keys validated before this one (ModeSpec's field order).
        """
        if key not in self.keys:
            if value is None or value == KEY_DEFAULTS.get(key):
                return value
            if key in ("pci", "pf") and isinstance(value, str):
                check_pci(value)  # a malformed address is named as such first
            raise ValueError(
                f"`{key}` does not apply to mode {self.mode.value}{self.not_applicable}"
            )
        if value is None and key in self.defaults:
            return self.defaults[key]
        return self.check(key, value, entry)

    def check(self, key: str, value: Any, entry: Mapping[str, Any]) -> Any:
        return value

    # -- planning ----------------------------------------------------------------------------
    def plan(self, spec: ModeSpec, label: str, host: HostView) -> ModePlan | Skip:
        raise NotImplementedError

    def host_blocked(self, label: str, host: HostView) -> Skip | None:
        """A Skip when host checks (not the device) keep this mode from working at all."""
        blockers = host.blockers.get(self.mode, ())
        if not blockers:
            return None
        why = "; ".join(blockers)
        return Skip(
            self.mode, label, f"the host is not ready: {why} (`vbench check` says how to fix)"
        )

    # -- the guest ---------------------------------------------------------------------------
    def io_target(self, agent: GuestShell, plan: ModePlan, timeout_s: float = 30.0) -> IoTarget:
        if plan.devices is None:
            raise GuestError(f"mode {plan.label} has no devices (it was not planned again)")
        return find_io_target(agent, plan.devices.target, timeout_s)

    # -- host changes --------------------------------------------------------------------------
    @contextlib.contextmanager
    def prepare(
        self, plan: ModePlan, journal: Journal, warn: Callable[[str], None] = print
    ) -> Iterator[None]:
        """Make the plan's host changes (each recorded before it is made); undo them on exit.

        What could not be undone is told through `warn` (and stays in the journal for
        `vbench cleanup`), never swallowed.
        """
        try:
            for change in plan.changes:
                journal.apply(change)
            yield
        finally:
            if plan.changes:
                for problem in journal.restore():
                    warn(f"host change not undone: {problem} (`vbench cleanup` retries it)")
