"""Plan the host changes that make a virtual function of an SR-IOV PF usable for pass-through.

Reads only: the PF's sysfs attributes (through pyudev, so a umockdev testbed stands in for the
host) and, for NVMe PFs, nvme-cli's Identify answers (`NvmeQuery`).  The plan is a list of
`HostChange`s, in the order they must be made; `ChangeJournal` makes and undoes them.

The NVMe part follows QEMU's docs/system/devices/nvme.rst and the NVMe spec's virtualization
management, which real SR-IOV NVMe drives share: a VF's secondary controller starts offline and
without resources.  It needs flexible queue (VQ, at least 2: admin + one I/O queue) and interrupt
(VI, at least 1) resources, then to be set online, and a namespace attached to it.  When too few
flexible resources are free, the primary controller releases its own (which takes a PF reset).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import pyudev

from vbench.errors import HostError
from vbench.host.changes import NONE, HostChange, binding
from vbench.host.nvme import NvmeQuery, SecondaryController, nvme_for
from vbench.host.paths import HostPaths
from vbench.host.testbed import in_testbed, reexec_under_umockdev
from vbench.host.udev import udev_context

NVME_CLASS_PREFIX = "0108"
MIN_VQ, MIN_VI = 2, 1  # an admin queue pair + one I/O queue pair; one interrupt vector
_WHAT = {"VQ": "queue (VQ)", "VI": "interrupt (VI)"}


@dataclass(frozen=True)
class PfState:
    address: str
    dev_dir: Path  # /sys/bus/pci/devices/<address>
    total_vfs: int
    num_vfs: int
    autoprobe: str
    offset: int
    stride: int
    nvme_ctrl: str | None  # "nvme0" when the PF is an NVMe controller bound to the nvme driver
    vfs: tuple[str, ...]  # addresses of the enabled VFs, by index


def _attr(dev: pyudev.Device, name: str) -> str | None:
    try:
        raw = dev.attributes.get(name)
    except (OSError, UnicodeDecodeError):
        return None
    if raw is None:
        return None
    return (raw.decode() if isinstance(raw, bytes) else str(raw)).strip()


def _int_attr(dev: pyudev.Device, name: str, pf: str) -> int:
    value = _attr(dev, name)
    try:
        return int(value or "", 0)
    except ValueError:
        raise HostError(f"{pf}: cannot read {name} ({value!r})") from None


def _link(dir_: str, name: str) -> str | None:
    try:
        return os.path.basename(os.readlink(os.path.join(dir_, name)))
    except OSError:
        return None


def read_pf(pf: str, context: pyudev.Context | None = None) -> PfState:
    ctx = context or udev_context()
    try:
        dev = pyudev.Devices.from_name(ctx, "pci", pf)
    except pyudev.DeviceNotFoundError:
        raise HostError(f"no PCI device {pf} on this host (see `vbench check`)") from None
    if _attr(dev, "sriov_totalvfs") is None:
        raise HostError(f"{pf} is not an SR-IOV physical function (it has no sriov_totalvfs)")
    sys_path = str(dev.sys_path)
    num = _int_attr(dev, "sriov_numvfs", pf)
    cls = (_attr(dev, "class") or "").lower().removeprefix("0x").rjust(6, "0")
    ctrl = None
    if cls.startswith(NVME_CLASS_PREFIX):
        try:
            names = sorted(os.listdir(os.path.join(sys_path, "nvme")))
        except OSError:
            names = []
        if not names:
            raise HostError(
                f"{pf} is an NVMe PF without its nvme driver: its secondary controllers can be "
                f"set up only through it (echo {pf} > /sys/bus/pci/drivers/nvme/bind)"
            )
        ctrl = names[0]
    vfs = tuple(v for v in (_link(sys_path, f"virtfn{i}") for i in range(num)) if v)
    return PfState(
        address=pf,
        dev_dir=Path(ctx.sys_path) / "bus" / "pci" / "devices" / pf,
        total_vfs=_int_attr(dev, "sriov_totalvfs", pf),
        num_vfs=num,
        autoprobe=_attr(dev, "sriov_drivers_autoprobe") or "1",
        offset=_int_attr(dev, "sriov_offset", pf),
        stride=_int_attr(dev, "sriov_stride", pf),
        nvme_ctrl=ctrl,
        vfs=vfs,
    )


def vf_address(state: PfState, index: int) -> str:
    """The address VF `index` has (or will have): the PF's routing ID + offset + index * stride."""
    if index < len(state.vfs):
        return state.vfs[index]
    domain, bus, slotfn = state.address.split(":")
    slot, fn = slotfn.split(".")
    rid = (int(bus, 16) << 8 | int(slot, 16) << 3 | int(fn, 16)) + state.offset
    rid += index * state.stride
    return f"{domain}:{rid >> 8:02x}:{(rid >> 3) & 0x1F:02x}.{rid & 7}"


def _sysfs(state: PfState, attr: str, before: str, after: str, what: str) -> HostChange:
    return HostChange(
        kind="sysfs_write",
        target=str(state.dev_dir / attr),
        before=before,
        after=after,
        describe=f"set {what} of {state.address} from {before} to {after}",
    )


def _nvme_changes(
    state: PfState, index: int, dev: Path, nvme: NvmeQuery
) -> tuple[list[HostChange], bool]:
    """(changes for the VF's secondary controller and namespace, whether the primary releases)."""
    vf = vf_address(state, index)
    secondaries = nvme.secondary_controllers(dev)
    sec: SecondaryController | None = next(
        (s for s in secondaries if s.vf_number == index + 1), None
    )
    if sec is None:
        raise HostError(f"{dev} reports no secondary controller for VF {index} ({vf})")
    caps = nvme.primary_caps(dev)
    changes: list[HostChange] = []
    release = False
    if not (sec.online and sec.vq >= MIN_VQ and sec.vi >= MIN_VI):
        free_vq, free_vi = caps.vq_free + sec.vq, caps.vi_free + sec.vi
        if (free_vq < MIN_VQ or free_vi < MIN_VI) and (caps.vq_primary or caps.vi_primary):
            release = True  # the primary gives its flexible resources back
            free_vq += caps.vq_primary
            free_vi += caps.vi_primary
            changes.append(
                HostChange(
                    kind="nvme_primary_flexible",
                    target=f"{dev} ctrl {caps.cntlid} reset {state.dev_dir}",
                    before=f"VQ {caps.vq_primary} VI {caps.vi_primary}",
                    after="VQ 0 VI 0",
                    describe=(
                        f"release the flexible resources of {dev.name}'s primary controller "
                        f"{caps.cntlid} (VQ {caps.vq_primary}, VI {caps.vi_primary}) and reset "
                        f"{state.address}"
                    ),
                )
            )
        if free_vq < MIN_VQ or free_vi < MIN_VI:
            raise HostError(
                f"{dev}: only {free_vq} flexible queue and {free_vi} interrupt resources are free "
                f"for VF {index} ({vf}), it needs {MIN_VQ} and {MIN_VI}: other secondary "
                f"controllers hold them (nvme list-secondary {dev})"
            )
        want = {
            "VI": min(caps.vi_max_per_vf or free_vi, free_vi),
            "VQ": min(caps.vq_max_per_vf or free_vq, free_vq),
        }
        have = {"VI": sec.vi, "VQ": sec.vq}
        if sec.online:  # resources change only while the controller is offline
            changes.append(_state_change(dev, sec, vf, "online", "offline"))
        for rt in ("VI", "VQ"):
            if want[rt] != have[rt]:
                changes.append(
                    HostChange(
                        kind="nvme_virt_mgmt",
                        target=f"{dev} ctrl {sec.cntlid} {rt}",
                        before=str(have[rt]),
                        after=str(want[rt]),
                        describe=(
                            f"give {dev.name}'s secondary controller {sec.cntlid} (VF {vf}) "
                            f"{want[rt]} flexible {_WHAT[rt]} resource(s) (had {have[rt]})"
                        ),
                    )
                )
        changes.append(_state_change(dev, sec, vf, "offline", "online"))
    # a namespace for the VF: one attached to it already, or the first attached to no controller
    attached = {ns: nvme.attached_controllers(dev, ns) for ns in nvme.namespaces(dev)}
    if not any(sec.cntlid in ctrls for ctrls in attached.values()):
        free = [ns for ns, ctrls in attached.items() if not ctrls]
        if not free:
            raise HostError(
                f"{dev} has no namespace attached to no controller, to give VF {vf}: create one "
                f"(nvme create-ns) or detach one (nvme detach-ns) first"
            )
        changes.append(
            HostChange(
                kind="nvme_attach_ns",
                target=f"{dev} ns {free[0]} ctrl {sec.cntlid}",
                before="detached",
                after="attached",
                describe=f"attach namespace {free[0]} of {dev.name} to secondary controller "
                f"{sec.cntlid} (VF {vf})",
            )
        )
    return changes, release


def _state_change(
    dev: Path, sec: SecondaryController, vf: str, before: str, after: str
) -> HostChange:
    return HostChange(
        kind="nvme_virt_mgmt",
        target=f"{dev} ctrl {sec.cntlid} state",
        before=before,
        after=after,
        describe=f"set {dev.name}'s secondary controller {sec.cntlid} (VF {vf}) {after}",
    )


def plan_vf(
    pf: str,
    paths: HostPaths,
    want_vfs: int,
    *,
    vf_index: int = 0,
    bind: str | None = None,
    nvme: NvmeQuery | None = None,
    context: pyudev.Context | None = None,
) -> list[HostChange]:
    """The changes, in order, that make VF `vf_index` of `pf` usable for pass-through.

    At least `want_vfs` VFs are enabled (sriov_numvfs), with driver autoprobing off so that the
    host's drivers do not take them; an NVMe PF's secondary controller for the VF gets resources,
    goes online and gets a free namespace.  `bind` names a driver for the VF ("vfio-pci" for
    QEMU without libvirt, "nvme" to use it on the host); libvirt's managed hostdevs bind it
    themselves, so by default the driver is left alone.  NVMe state comes from `nvme` (default:
    nvme-cli, or a testbed's recorded answers).  Reads only; an empty plan means the VF is ready.
    Raises HostError (one line) when it cannot be made ready.
    """
    state = read_pf(pf, context)
    if not 1 <= want_vfs <= state.total_vfs:
        raise HostError(f"{pf} has {state.total_vfs} VFs at most; {want_vfs} were asked for")
    if not 0 <= vf_index < want_vfs:
        raise HostError(f"VF index {vf_index} of {pf} is outside the {want_vfs} VFs asked for")
    changes: list[HostChange] = []
    if state.autoprobe != "0":
        attr = "sriov_drivers_autoprobe"
        changes.append(_sysfs(state, attr, state.autoprobe, "0", attr))
    numvfs = state.num_vfs
    nvme_changes: list[HostChange] = []
    if state.nvme_ctrl is not None:
        dev = paths.dev(state.nvme_ctrl)
        nvme_changes, release = _nvme_changes(state, vf_index, dev, nvme or nvme_for(paths))
        if release:
            # the PF reset that makes the release count must not meet enabled VFs
            if numvfs:
                changes.append(_sysfs(state, "sriov_numvfs", str(numvfs), "0", "sriov_numvfs"))
                numvfs = 0
            changes.append(nvme_changes.pop(0))
    if numvfs < want_vfs:
        changes.append(_sysfs(state, "sriov_numvfs", str(numvfs), str(want_vfs), "sriov_numvfs"))
    changes.extend(nvme_changes)
    if bind is not None:
        vf = vf_address(state, vf_index)
        vf_dir = state.dev_dir.parent / vf
        current, override = None, None
        if vf in state.vfs:
            current = _link(str(vf_dir), "driver")
            try:
                text = (vf_dir / "driver_override").read_text().strip()
            except OSError:
                text = ""
            override = None if text in ("", "(null)") else text
        if (current or NONE) != bind:
            changes.append(
                HostChange(
                    kind="driver_bind",
                    target=str(vf_dir),
                    before=binding(current, override),
                    after=bind,
                    describe=f"bind VF {vf} of {pf} to {bind} (was {current or 'unbound'})",
                )
            )
    return changes


def main(argv: list[str] | None = None) -> int:
    """Print the plan for a VF as JSON (reads only); with --testbed, on a recorded lab host."""
    parser = argparse.ArgumentParser(
        prog="python -m vbench.host.sriov_prep",
        description="Print the host changes that would make a VF of PF usable (changes nothing).",
    )
    parser.add_argument("pf", help="the PF's PCI address, e.g. 0000:00:04.0")
    parser.add_argument("--want", type=int, default=1, help="VFs to enable (default 1)")
    parser.add_argument("--vf", type=int, default=0, help="index of the VF to prepare")
    parser.add_argument("--bind", help="driver to bind the VF to (default: leave it)")
    parser.add_argument(
        "--testbed",
        type=Path,
        help="a recorded testbed (devices.umockdev, nvme/ recordings); re-executes under "
        "umockdev-run unless already inside one",
    )
    args = parser.parse_args(argv)
    paths = HostPaths()
    try:
        if args.testbed is not None:
            testbed: Path = args.testbed.resolve()
            if not in_testbed():
                reexec_under_umockdev(testbed, [sys.executable, "-m", __spec__.name, *sys.argv[1:]])
            paths = HostPaths.for_testbed(testbed)
        plan = plan_vf(args.pf, paths, args.want, vf_index=args.vf, bind=args.bind)
    except HostError as e:  # this debugging entry point is its own little surface
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    print(json.dumps([dataclasses.asdict(c) for c in plan], indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
