"""Host readiness as pure data: check records and per-mode verdicts.

Pure core: no I/O.  `vbench.host.checks` reads the host and builds `CheckResult`s; this module
decides what they mean for each mode.  The versioned document (`vbench check --json`, the run
manifest) and its JUnit XML are `vbench.checkdoc`.

Gating rules (what makes a mode "not ready"):
  * a check lists the modes it *gates* and the modes it *degrades*;
  * FAIL on a check that gates a mode blocks that mode;
  * under ``strict``, any WARN or FAIL on a check that gates or degrades a mode blocks it;
  * SKIP never blocks by itself: a check is skipped only when a prerequisite already failed
    (and blocks), when the fact does not apply to this host, or when it was not asked for (--probe).
  * VFIO additionally needs an assignable device, SR-IOV a free VF (pseudo-checks ``devices.vfio``
    and ``devices.sriov`` in the blockers).

A device in use by the host (it, or anything in its IOMMU group, backs a mounted filesystem or
swap or carries the default route) is never offered for pass-through.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from vbench.inventory import Inventory, PciDevice
from vbench.model import ModeId
from vbench.packages import install_command

ALL_MODES: tuple[ModeId, ...] = (ModeId.FV, ModeId.PV, ModeId.VFIO, ModeId.SRIOV)
DEFAULT_REQUESTED: tuple[ModeId, ...] = (ModeId.FV, ModeId.PV)
DEVICES_VFIO = "devices.vfio"
DEVICES_SRIOV = "devices.sriov"


class Status(StrEnum):
    PASS = "PASS"
    WARN = "WARN"
    FAIL = "FAIL"
    SKIP = "SKIP"


@dataclass(frozen=True)
class CheckResult:
    """One observation about the host: what was checked, what was seen, and how to fix it."""

    id: str  # "iommu.groups"
    title: str  # "IOMMU enabled by the kernel (groups exist)"
    status: Status
    observed: str  # what was seen, in one line
    remedy: str | None = None  # required unless PASS/SKIP
    gates: tuple[ModeId, ...] = ()  # a FAIL blocks these modes
    degrades: tuple[ModeId, ...] = ()  # a WARN/FAIL blocks these only under --strict
    data: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        if not self.id or " " in self.id:
            raise ValueError(f"check id {self.id!r} must be a non-empty word")
        if not isinstance(self.status, Status):
            raise ValueError(f"check {self.id}: status {self.status!r} is not a Status")
        if self.status in (Status.FAIL, Status.WARN) and not self.remedy:
            raise ValueError(f"check {self.id}: a {self.status} needs a remedy")

    def blocks(self, mode: ModeId, strict: bool) -> bool:
        if self.status is Status.FAIL and mode in self.gates:
            return True
        return (
            strict
            and self.status in (Status.FAIL, Status.WARN)
            and (mode in self.gates or mode in self.degrades)
        )

    def concerns(self, mode: ModeId) -> bool:
        return mode in self.gates or mode in self.degrades


@dataclass(frozen=True)
class OfferedDevice:
    """A device a guest of this mode can be given."""

    address: str
    description: str
    iommu_group: int | None
    driver: str | None
    role: str  # "device" (VFIO) or "vf" (SR-IOV)
    pf: str | None = None
    group_peers: tuple[str, ...] = ()  # endpoints of the same group that must go along
    note: str = ""


@dataclass(frozen=True)
class ExcludedDevice:
    address: str
    reason: str


@dataclass(frozen=True)
class Remedy:
    """One fix, naming every check (or devices.vfio / devices.sriov) it resolves."""

    checks: tuple[str, ...]
    text: str

    def __str__(self) -> str:
        return f"{', '.join(self.checks)}: {self.text}"


@dataclass(frozen=True)
class ModeVerdict:
    mode: ModeId
    ready: bool
    summary: str
    blockers: tuple[str, ...] = ()  # check ids (or devices.vfio / devices.sriov)
    remedies: tuple[Remedy, ...] = ()
    warnings: tuple[str, ...] = ()  # check ids that concern the mode, are not PASS, don't block
    offered: tuple[OfferedDevice, ...] = ()
    excluded: tuple[ExcludedDevice, ...] = ()

    @property
    def title(self) -> str:
        return self.mode.display_name


@dataclass(frozen=True)
class CheckReport:
    """Everything one `vbench check` saw: host facts, checks and the device inventory."""

    host: Mapping[str, Any]
    checks: tuple[CheckResult, ...]
    inventory: Inventory

    def check(self, check_id: str) -> CheckResult | None:
        return next((c for c in self.checks if c.id == check_id), None)

    @property
    def os_release(self) -> Mapping[str, str]:
        value = self.host.get("os_release") or {}
        return {str(k): str(v) for k, v in dict(value).items()}


# --------------------------------------------------------------------------------------------
# Distribution-specific remedies


def distro_family(os_release: Mapping[str, str]) -> str:
    """'suse', 'debian', 'redhat' or 'unknown' from an os-release mapping (ID and ID_LIKE)."""
    ids = " ".join([os_release.get("ID", ""), os_release.get("ID_LIKE", "")]).lower().split()
    if any(i in ("suse", "opensuse", "sles", "sled") or i.startswith("opensuse") for i in ids):
        return "suse"
    if any(i in ("debian", "ubuntu") for i in ids):
        return "debian"
    if any(i in ("rhel", "fedora", "centos", "rocky", "almalinux") for i in ids):
        return "redhat"
    return "unknown"


def kernel_cmdline_remedy(args: str, os_release: Mapping[str, str]) -> str:
    """How to add `args` to the kernel command line on this distribution, then reboot."""
    fam = distro_family(os_release)
    grub = f'add "{args}" to GRUB_CMDLINE_LINUX_DEFAULT in /etc/default/grub'
    if fam == "suse":
        return (
            f"Add `{args}` to the kernel command line: YaST > System > Boot Loader > Kernel "
            f"Parameters, or {grub} and run `grub2-mkconfig -o /boot/grub2/grub.cfg`; then reboot"
        )
    if fam == "debian":
        return f"Add `{args}` to the kernel command line: {grub}, run `update-grub`, then reboot"
    if fam == "redhat":
        return (
            f"Add `{args}` to the kernel command line: "
            f"`grubby --update-kernel=ALL --args='{args}'`, then reboot"
        )
    return (
        f"Add `{args}` to the kernel command line ({grub} and regenerate the boot loader "
        "configuration: `update-grub` on Debian/Ubuntu, `grub2-mkconfig -o /boot/grub2/grub.cfg` "
        "on openSUSE/SLES), then reboot"
    )


def module_load_remedy(modules: Sequence[str], os_release: Mapping[str, str]) -> str:
    """Load kernel modules now and at every boot (modules-load.d)."""
    names = " ".join(modules)
    lines = "\\n".join(modules)
    first = modules[0] if modules else "modules"
    text = (
        f"Load now: `modprobe -a {names}`; at every boot: "
        f"`printf '{lines}\\n' > /etc/modules-load.d/{first}.conf`"
    )
    fam = distro_family(os_release)
    if fam == "debian":
        text += " (or list them in /etc/modules)"
    elif fam == "suse":
        text += " (or YaST > System > Kernel Settings)"
    return text


def install_remedy(tools: Iterable[str], os_release: Mapping[str, str]) -> str:
    """The package manager command that installs these tools on this distribution."""
    return install_command(tools, distro_family(os_release))


# --------------------------------------------------------------------------------------------
# Devices


def is_bridge_like(dev: PciDevice) -> bool:
    """Bridges (class 06xx) stay with the host; vfio tolerates them in a group."""
    return dev.is_bridge or dev.class_code.startswith("06")


def describe(dev: PciDevice) -> str:
    name = dev.device_name or dev.class_name or f"[{dev.vendor_id}:{dev.device_id}]"
    vendor = f"{dev.vendor_name} " if dev.vendor_name else ""
    return f"{vendor}{name}".strip()


def host_use_reasons(inventory: Inventory, dev: PciDevice) -> list[str]:
    """Why the host needs this device: its own uses, else the IOMMU group peers the host uses.

    (The inventory collector already records group propagation; a hand-built inventory may not.)
    """
    own = list(dict.fromkeys(inventory.in_use_reasons(dev.address)))
    if own or dev.iommu_group is None:
        return own
    out: list[str] = []
    for peer in inventory.group_members(dev.iommu_group):
        reasons = inventory.in_use_reasons(peer.address)
        if peer.address != dev.address and reasons:
            out.append(f"in IOMMU group {dev.iommu_group} with {peer.address}, which {reasons[0]}")
    return out


def _group_peers(inventory: Inventory, dev: PciDevice) -> tuple[str, ...]:
    if dev.iommu_group is None:
        return ()
    return tuple(
        p.address
        for p in inventory.group_members(dev.iommu_group)
        if p.address != dev.address and not is_bridge_like(p)
    )


def _driver_note(dev: PciDevice) -> str:
    if dev.driver == "vfio-pci":
        return "bound to vfio-pci (ready now)"
    if dev.driver:
        return f"bound to {dev.driver}; libvirt (managed='yes') rebinds it to vfio-pci"
    return "no driver bound; libvirt binds it to vfio-pci"


def assignable_devices(
    inventory: Inventory,
) -> tuple[list[OfferedDevice], list[ExcludedDevice]]:
    """Endpoints that VFIO can take (own group, or whole group free of host use)."""
    offered: list[OfferedDevice] = []
    excluded: list[ExcludedDevice] = []
    for dev in inventory.pci:
        if is_bridge_like(dev):
            continue
        exclusion = _exclusion(inventory, dev)
        if exclusion:
            excluded.append(exclusion)
            continue
        peers = _group_peers(inventory, dev)
        note = _driver_note(dev)
        if peers:
            note += f"; shares IOMMU group {dev.iommu_group}: assign it together with " + ", ".join(
                peers
            )
        offered.append(
            OfferedDevice(
                address=dev.address,
                description=describe(dev),
                iommu_group=dev.iommu_group,
                driver=dev.driver,
                role="vf" if dev.physfn else "device",
                pf=dev.physfn,
                group_peers=peers,
                note=note,
            )
        )
    # vfio-bound devices first: they are usable without touching the host
    offered.sort(key=lambda o: (o.driver != "vfio-pci", o.address))
    return offered, excluded


def _exclusion(inventory: Inventory, dev: PciDevice) -> ExcludedDevice | None:
    """Why a device cannot be offered for assignment at all (host use, no IOMMU group)."""
    reasons = host_use_reasons(inventory, dev)
    if reasons:
        return ExcludedDevice(dev.address, "in use by the host: " + "; ".join(reasons))
    if dev.iommu_group is None:
        return ExcludedDevice(dev.address, "no IOMMU group (IOMMU off)")
    return None


def _vfs_of(inventory: Inventory, pf: PciDevice) -> list[PciDevice]:
    by_addr = inventory.by_address()
    vfs = [by_addr[a] for a in pf.vfs if a in by_addr]
    vfs += [d for d in inventory.pci if d.physfn == pf.address and d.address not in pf.vfs]
    return vfs


def sriov_devices(
    inventory: Inventory,
) -> tuple[list[OfferedDevice], list[ExcludedDevice], list[PciDevice]]:
    """Free VFs, excluded VFs with why, and PFs that could enable (more) VFs."""
    offered: list[OfferedDevice] = []
    excluded: list[ExcludedDevice] = []
    enableable: list[PciDevice] = []
    for pf in inventory.pci:
        if not pf.sriov_totalvfs:
            continue
        vfs = _vfs_of(inventory, pf)
        if not vfs and not pf.sriov_numvfs:
            enableable.append(pf)
        for vf in vfs:
            exclusion = _exclusion(inventory, vf)
            if exclusion:
                excluded.append(exclusion)
                continue
            peers = _group_peers(inventory, vf)
            note = f"VF of {pf.address}; " + _driver_note(vf)
            if peers:
                note += f"; shares IOMMU group {vf.iommu_group} with " + ", ".join(peers)
            offered.append(
                OfferedDevice(
                    address=vf.address,
                    description=describe(vf),
                    iommu_group=vf.iommu_group,
                    driver=vf.driver,
                    role="vf",
                    pf=pf.address,
                    group_peers=peers,
                    note=note,
                )
            )
    offered.sort(key=lambda o: (o.driver != "vfio-pci", o.address))
    return offered, excluded, enableable


def assignment_refusals(
    inventory: Inventory, addresses: Sequence[str], allow: Collection[str] = ()
) -> list[str]:
    """Why these devices must not be given to a guest together ([] when they may).

    This scenario's devices, not "any device": a device the host uses (mounted filesystem, swap,
    LVM/MD/dm member, default route), or one in an IOMMU group with such a device, is refused;
    so is a device whose group holds other endpoints the scenario does not also list.  `allow`
    (the scenario's allow-list) is the only override.
    """
    by_addr = inventory.by_address()
    listed = {a.lower() for a in addresses}
    allowed = {a.lower() for a in allow}
    out: list[str] = []
    for addr in addresses:
        dev = by_addr.get(addr)
        if dev is None or addr in allowed:
            continue
        for reason in host_use_reasons(inventory, dev):
            out.append(f"{addr}: used by the host ({reason})")
        unlisted = [p for p in _group_peers(inventory, dev) if p not in listed | allowed]
        if unlisted:
            out.append(
                f"{addr}: shares IOMMU group {dev.iommu_group} with {', '.join(unlisted)}, which "
                "the scenario does not assign with it"
            )
    return list(dict.fromkeys(out))


def vf_candidates(
    inventory: Inventory,
    pf: PciDevice,
    assigned: Mapping[str, str],
    allow: Collection[str] = (),
    need_group: bool = True,
) -> tuple[list[PciDevice], list[ExcludedDevice]]:
    """The free VFs of `pf` (vfio-pci bound first) and the others with why they are not free.

    Free: not held by a running libvirt domain (`assigned`: address -> domain), not used by the
    host, and alone in its IOMMU group (or its group mates are in `allow`).
    """
    free: list[PciDevice] = []
    taken: list[ExcludedDevice] = []
    for vf in _vfs_of(inventory, pf):
        if vf.address in assigned:
            taken.append(ExcludedDevice(vf.address, f"held by domain {assigned[vf.address]}"))
        elif vf.iommu_group is None and need_group:  # not on Xen: the IOMMU is Xen's
            taken.append(ExcludedDevice(vf.address, "no IOMMU group (IOMMU off)"))
        elif refusals := assignment_refusals(inventory, [vf.address], allow):
            taken.append(ExcludedDevice(vf.address, "; ".join(refusals)))
        else:
            free.append(vf)
    free.sort(key=lambda d: (d.driver != "vfio-pci", d.address))
    return free, taken


def host_blockers(
    checks: Sequence[CheckResult], strict: bool = False
) -> dict[ModeId, tuple[str, ...]]:
    """Per mode, the failed host checks that keep it from working ("id (observed)" lines).

    Leaves out the "is any device assignable" pseudo-checks: a scenario's own device is judged
    by `assignment_refusals` / `vf_candidates` instead.
    """
    out: dict[ModeId, tuple[str, ...]] = {}
    for mode in ALL_MODES:
        lines = [f"{c.id} ({c.observed})" for c in checks if c.blocks(mode, strict)]
        if lines:
            out[mode] = tuple(lines)
    return out


# --------------------------------------------------------------------------------------------
# Verdicts


def _names(items: Sequence[OfferedDevice], limit: int = 4) -> str:
    shown = [
        f"{o.address} (group {o.iommu_group}{', vfio-pci' if o.driver == 'vfio-pci' else ''})"
        for o in items[:limit]
    ]
    more = f" and {len(items) - limit} more" if len(items) > limit else ""
    return ", ".join(shown) + more


def mode_verdicts(
    checks: Sequence[CheckResult],
    inventory: Inventory,
    strict: bool = False,
    os_release: Mapping[str, str] | None = None,
) -> list[ModeVerdict]:
    """A verdict for each of the four modes, naming blocking checks and their fixes.

    Distribution-specific text is already in the checks' remedies (`os_release` is accepted so
    callers need not care, and for future device hints).
    """
    verdicts: list[ModeVerdict] = []
    for mode in ALL_MODES:
        blockers: list[str] = []
        by_text: dict[str, list[str]] = {}  # one line per distinct fix, naming every check it fixes
        warnings: list[str] = []
        for c in checks:
            if c.blocks(mode, strict):
                blockers.append(c.id)
                if c.remedy:
                    by_text.setdefault(c.remedy, []).append(c.id)
            elif c.concerns(mode) and c.status in (Status.WARN, Status.FAIL):
                warnings.append(c.id)
        remedies = [Remedy(tuple(ids), text) for text, ids in by_text.items()]
        offered: list[OfferedDevice] = []
        excluded: list[ExcludedDevice] = []
        extra = ""
        if mode is ModeId.VFIO:
            offered, excluded = assignable_devices(inventory)
            if not offered:
                blockers.append(DEVICES_VFIO)
                why = (
                    "no PCI endpoint has an IOMMU group"
                    if all(d.iommu_group is None for d in inventory.pci)
                    else "every endpoint is used by the host or shares an IOMMU group with one"
                )
                remedies.append(
                    Remedy(
                        (DEVICES_VFIO,),
                        f"no device can be assigned ({why}); add a device for the "
                        "guest in a slot with its own IOMMU group (ACS), away from the host's "
                        "root disk and default-route NIC",
                    )
                )
            else:
                extra = "assignable: " + _names(offered)
        elif mode is ModeId.SRIOV:
            offered, excluded, enableable = sriov_devices(inventory)
            if not offered:
                blockers.append(DEVICES_SRIOV)
                if enableable:
                    pf = enableable[0]
                    n = pf.sriov_totalvfs or 1
                    remedies.append(
                        Remedy(
                            (DEVICES_SRIOV,),
                            f"enable VFs on {pf.address} (up to {n}): "
                            f"`echo {n} > /sys/bus/pci/devices/{pf.address}/sriov_numvfs`; "
                            f'at every boot with a udev rule ACTION=="add", SUBSYSTEM=="pci", '
                            f'KERNEL=="{pf.address}", ATTR{{sriov_numvfs}}="{n}"',
                        )
                    )
                elif any(d.sriov_totalvfs for d in inventory.pci):
                    remedies.append(
                        Remedy(
                            (DEVICES_SRIOV,),
                            "every VF is used by the host or lacks an IOMMU group of its own; "
                            "see the excluded devices",
                        )
                    )
                else:
                    remedies.append(
                        Remedy(
                            (DEVICES_SRIOV,),
                            "no SR-IOV capable device (PF) found: add an SR-IOV NIC or NVMe "
                            "controller and enable SR-IOV in the firmware setup",
                        )
                    )
            else:
                extra = "free VFs: " + _names(offered)
        ready = not blockers
        if ready:
            summary = "ready" + (f"; {extra}" if extra else "")
            if warnings:
                summary += f" (warnings: {', '.join(warnings)})"
        else:
            summary = "not ready: blocked by " + ", ".join(blockers)
        verdicts.append(
            ModeVerdict(
                mode=mode,
                ready=ready,
                summary=summary,
                blockers=tuple(blockers),
                remedies=tuple(dict.fromkeys(remedies)),
                warnings=tuple(warnings),
                offered=tuple(offered),
                excluded=tuple(excluded),
            )
        )
    return verdicts


def parse_modes(values: Iterable[str]) -> tuple[ModeId, ...]:
    """Mode ids from the command line ('fv', 'pv', 'vfio', 'sriov'); ValueError on others."""
    out: list[ModeId] = []
    for v in values:
        try:
            out.append(ModeId(v.strip().lower()))
        except ValueError:
            valid = ", ".join(m.value for m in ALL_MODES)
            raise ValueError(f"unknown mode {v!r}; choose from {valid}") from None
    return tuple(dict.fromkeys(out))


def all_ready(verdicts: Sequence[ModeVerdict], requested: Iterable[ModeId]) -> bool:
    wanted = set(requested)
    return all(v.ready for v in verdicts if v.mode in wanted)


# Checks whose FAIL means the host could not be assessed (an error, exit 1), not "not ready" (2):
# with libvirtd unreachable, vbench cannot tell what this host's libvirt and QEMU could do.
ASSESSMENT_CHECKS = ("libvirt.reachable",)


def assessment_failures(checks: Sequence[CheckResult]) -> list[CheckResult]:
    """The failed checks that keep vbench from assessing the host at all."""
    return [c for c in checks if c.id in ASSESSMENT_CHECKS and c.status is Status.FAIL]


def exit_code(
    verdicts: Sequence[ModeVerdict],
    requested: Iterable[ModeId],
    checks: Sequence[CheckResult] = (),
) -> int:
    """0 when every requested mode is ready, 2 when one is not, 1 when the host could not be
    assessed (see assessment_failures)."""
    if assessment_failures(checks):
        return 1
    return 0 if all_ready(verdicts, requested) else 2
