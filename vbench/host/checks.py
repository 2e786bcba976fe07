"""Host checks: read the host (procfs, sysfs, /dev, libvirt) and say what each mode needs.

Every check is a small function returning a `vbench.readiness.CheckResult`.  Nothing here writes:
no module loading, no sysfs writes.  A missing file is an observation, never an exception.

Paths come from `HostPaths`, so a recorded testbed (tests/data/testbeds/<name>/) can stand in for
the host.  Tools on $PATH and the microguest kernel are always those of the machine running vbench.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import libvirt
import pyudev

from vbench import __version__
from vbench.errors import LibvirtUnavailable
from vbench.guest.kernel import kernel_candidates
from vbench.host.facts import SystemFacts, read_system_facts
from vbench.host.inventory import collect_inventory
from vbench.host.nvme import NvmeQuery, nvme_for
from vbench.host.paths import HostPaths
from vbench.host.sriov_prep import NVME_CLASS_PREFIX, read_pf, vf_address
from vbench.host.udev import udev_context
from vbench.host.xen import xen_checks
from vbench.inventory import Inventory
from vbench.model import ModeId
from vbench.packages import MICROGUEST_MODULES
from vbench.readiness import (
    DEFAULT_REQUESTED,
    CheckReport,
    CheckResult,
    Status,
    install_remedy,
    kernel_cmdline_remedy,
    module_load_remedy,
)
from vbench.virt.connection import open_connection, resolve_uri

if TYPE_CHECKING:  # pydantic: loaded by check_document (the run), never by `vbench check`
    from vbench.checkdoc import CheckDocument

FV, PV, VFIO, SRIOV = ModeId.FV, ModeId.PV, ModeId.VFIO, ModeId.SRIOV
ALL = (FV, PV, VFIO, SRIOV)
PASSTHROUGH = (VFIO, SRIOV)
CGROUP_CONTROLLERS = ("memory", "cpu", "cpuacct", "cpuset", "devices", "blkio")
VFIO_MODULES = ("vfio", "vfio_pci", "vfio_iommu_type1")
KVM_VENDOR_MODULES = ("kvm_intel", "kvm_amd", "kvm_hv", "kvm_pvm")
WORKLOAD_TOOLS = ("fio", "stress-ng", "iperf3", "sockperf", "qemu-ga", "busybox")


# --------------------------------------------------------------------------------------------
# Readers (never raise for a missing file)


def read_text(path: Path) -> str | None:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return None


def read_first_line(path: Path) -> str | None:
    text = read_text(path)
    return text.strip().splitlines()[0].strip() if text and text.strip() else None


def _listdir(path: Path) -> list[str]:
    """Entries of a directory, without dot files (testbed snapshots carry `.keep` files)."""
    try:
        return sorted(n for n in os.listdir(path) if not n.startswith("."))
    except OSError:
        return []


def _norm(module: str) -> str:
    return module.replace("-", "_")


@dataclass(frozen=True)
class HostFacts:
    """Facts read once and shared by the checks (the host's identity: `vbench.host.facts`)."""

    paths: HostPaths
    system: SystemFacts
    cmdline: str
    modules_loaded: frozenset[str]  # normalized names
    modules_source: str  # where the loaded set came from
    modules_dir: Path  # lib/modules/<release>

    @property
    def live(self) -> bool:  # reading the real host (not a testbed)
        return self.system.live

    @property
    def root(self) -> Path:  # "/" or the testbed directory (for etc/os-release)
        return self.system.root

    @property
    def cpu_flags(self) -> frozenset[str]:
        return self.system.cpu.flags

    @property
    def cpu_vendor(self) -> str:
        return self.system.cpu.vendor

    @property
    def cpu_model(self) -> str:
        return self.system.cpu.model

    @property
    def arch(self) -> str:
        return self.system.arch

    @property
    def kernel_release(self) -> str:
        return self.system.kernel

    @property
    def os_release(self) -> Mapping[str, str]:
        return self.system.os_release

    @property
    def cmdline_args(self) -> dict[str, str]:
        args: dict[str, str] = {}
        for tok in self.cmdline.split():
            if tok == "--":
                break
            key, _, value = tok.partition("=")
            args[key] = value
        return args

    def module_loaded(self, name: str) -> bool:
        n = _norm(name)
        return n in self.modules_loaded or self.paths.sys(f"module/{n}").is_dir()

    def module_param(self, module: str, param: str) -> str | None:
        return read_first_line(self.paths.sys(f"module/{_norm(module)}/parameters/{param}"))

    def module_available(self, name: str) -> str | None:
        """'builtin', 'loadable' or None, from modules.builtin / modules.dep of the kernel."""
        n = _norm(name)
        for fname, kind in (("modules.builtin", "builtin"), ("modules.dep", "loadable")):
            text = read_text(self.modules_dir / fname) or ""
            for line in text.splitlines():
                path = line.split(":", 1)[0]
                base = _norm(path.rsplit("/", 1)[-1])
                for ext in (".ko", ".ko.xz", ".ko.zst", ".ko.gz"):
                    if base.endswith(ext.replace("-", "_")):
                        base = base[: -len(ext)]
                        break
                if base == n:
                    return kind
        return None


def read_facts(paths: HostPaths) -> HostFacts:
    system = read_system_facts(paths)
    cmdline = (read_text(paths.proc("cmdline")) or "").strip()
    modules_text = read_text(paths.proc("modules"))
    if modules_text is not None:
        loaded = frozenset(_norm(line.split()[0]) for line in modules_text.splitlines() if line)
        source = "/proc/modules"
    else:
        loaded = frozenset(_norm(n) for n in _listdir(paths.sys("module")))
        source = "/sys/module (no /proc/modules)"
    modules_root = Path("/lib/modules") if system.live else system.root / "lib/modules"
    return HostFacts(
        paths=paths,
        system=system,
        cmdline=cmdline,
        modules_loaded=loaded,
        modules_source=source,
        modules_dir=modules_root / system.kernel,
    )


# --------------------------------------------------------------------------------------------
# CPU and KVM


def _hw_virt(f: HostFacts) -> str | None:
    for flag in ("vmx", "svm"):
        if flag in f.cpu_flags:
            return flag
    return None


def check_hw_virt(f: HostFacts) -> CheckResult:
    flag = _hw_virt(f)
    title = "Hardware virtualization (vmx/svm)"
    if flag:
        name = "Intel VT-x" if flag == "vmx" else "AMD-V"
        return CheckResult("cpu.hwvirt", title, Status.PASS, f"CPU flag {flag} ({name})")
    hv = (
        " (running under a hypervisor that does not expose it)"
        if "hypervisor" in f.cpu_flags
        else ""
    )
    return CheckResult(
        "cpu.hwvirt",
        title,
        Status.FAIL,
        f"no vmx or svm in /proc/cpuinfo flags{hv}: only emulated CPUs (TCG), slow",
        remedy=(
            "Enable VT-x/AMD-V in the firmware setup; on a virtual host enable nested "
            "virtualization on the outer hypervisor. Until then guests run under TCG"
        ),
        degrades=ALL,
    )


def check_kvm_device(f: HostFacts) -> CheckResult:
    dev = f.paths.dev("kvm")
    if dev.exists():
        return CheckResult("kvm.device", "/dev/kvm exists", Status.PASS, f"{dev} present")
    return CheckResult(
        "kvm.device",
        "/dev/kvm exists",
        Status.FAIL,
        f"{dev} missing",
        remedy=(
            "Load the KVM module for the CPU (`modprobe kvm_intel` or `modprobe kvm_amd`) and "
            "enable virtualization in the firmware setup"
        ),
        degrades=ALL,
    )


def check_kvm_access(f: HostFacts) -> CheckResult:
    dev = f.paths.dev("kvm")
    title = "/dev/kvm is accessible (read/write)"
    if not dev.exists():
        return CheckResult("kvm.access", title, Status.SKIP, f"{dev} missing (see kvm.device)")
    if os.access(dev, os.R_OK | os.W_OK):
        return CheckResult("kvm.access", title, Status.PASS, f"{dev} readable and writable")
    return CheckResult(
        "kvm.access",
        title,
        Status.FAIL,
        f"{dev} not readable/writable by uid {os.getuid()}",
        remedy="Add the user to the `kvm` group (`usermod -aG kvm USER`) or run as root",
        degrades=ALL,
    )


def kvm_backend(f: HostFacts) -> str | None:
    for m in KVM_VENDOR_MODULES:
        if f.module_loaded(m):
            return m
    others = sorted(
        n for n in f.modules_loaded if n.startswith("kvm_") and n not in KVM_VENDOR_MODULES
    )
    return others[0] if others else None


def check_kvm_module(f: HostFacts) -> CheckResult:
    title = "KVM module backing /dev/kvm"
    backend = kvm_backend(f)
    src = f"(from {f.modules_source})"
    if backend in ("kvm_intel", "kvm_amd", "kvm_hv"):
        if backend == "kvm_hv" or _hw_virt(f):
            return CheckResult("kvm.module", title, Status.PASS, f"{backend} loaded {src}")
        return CheckResult(
            "kvm.module",
            title,
            Status.WARN,
            f"{backend} loaded but the CPU shows no vmx/svm {src}",
            remedy="Enable VT-x/AMD-V in the firmware setup; confirm with `vbench check --probe`",
            degrades=ALL,
        )
    if backend == "kvm_pvm":
        return CheckResult(
            "kvm.module",
            title,
            Status.WARN,
            f"kvm_pvm loaded {src}: PVM (page-table based virtualization) runs only "
            "PVM-enabled guest kernels; ordinary guests hang under KVM here",
            remedy=(
                "Use a host whose CPU exposes VT-x/AMD-V (kvm_intel/kvm_amd); until then vbench "
                "runs guests under TCG (`<domain type='qemu'>`). "
                "Confirm with `vbench check --probe`"
            ),
            degrades=ALL,
        )
    if backend:
        return CheckResult(
            "kvm.module",
            title,
            Status.WARN,
            f"{backend} loaded {src}: not a mainstream KVM backend",
            remedy="Confirm that guests boot under KVM with `vbench check --probe`",
            degrades=ALL,
        )
    if f.paths.dev("kvm").exists():
        return CheckResult(
            "kvm.module",
            title,
            Status.WARN,
            f"/dev/kvm exists but no kvm_intel/kvm_amd/kvm_* module is visible {src}",
            remedy="Confirm that guests boot under KVM with `vbench check --probe`",
            degrades=ALL,
        )
    return CheckResult(
        "kvm.module",
        title,
        Status.FAIL,
        f"no KVM module loaded {src}",
        remedy="`modprobe kvm_intel` (Intel) or `modprobe kvm_amd` (AMD)",
        degrades=ALL,
    )


def check_nested(f: HostFacts) -> CheckResult:
    title = "Nested virtualization"
    for m in ("kvm_intel", "kvm_amd"):
        value = f.module_param(m, "nested")
        if value is None:
            continue
        if value.upper() in ("Y", "1"):
            return CheckResult("kvm.nested", title, Status.PASS, f"{m}.nested={value}")
        return CheckResult(
            "kvm.nested",
            title,
            Status.WARN,
            f"{m}.nested={value}: guests cannot run KVM themselves",
            remedy=(
                f"`echo 'options {m} nested=1' > /etc/modprobe.d/kvm-nested.conf` and reload "
                f"{m} (or reboot). Only needed for nested guests"
            ),
        )
    backend = kvm_backend(f)
    if backend == "kvm_pvm":
        nested = f.cmdline_args.get("nested_pvm")
        return CheckResult(
            "kvm.nested",
            title,
            Status.SKIP,
            f"kvm_pvm backs /dev/kvm (nested_pvm={nested or 'unset'} on the command line); "
            "no kvm_intel/kvm_amd nested parameter",
        )
    return CheckResult(
        "kvm.nested", title, Status.SKIP, "no kvm_intel/kvm_amd loaded: nested does not apply"
    )


def run_accel_probe(conn: libvirt.virConnect) -> tuple[bool, str]:
    """The functional KVM probe of `vbench.virt.accel` (boots the microguest under KVM).

    Imported here, lazily: it builds the microguest and starts a guest, which only --probe asks for.
    Returns (KVM usable, the probe's reason).
    """
    from vbench.guest.microguest import build_microguest
    from vbench.model import Accelerator
    from vbench.virt.accel import choose_accelerator

    verdict = choose_accelerator(conn, build_microguest(), use_cache=False)
    return verdict.accelerator is Accelerator.KVM, verdict.reason


def check_kvm_probe(conn: libvirt.virConnect | None, probe: bool) -> CheckResult:
    title = "A guest really boots under KVM (functional probe)"
    if not probe:
        return CheckResult(
            "kvm.probe", title, Status.SKIP, "not run: pass --probe (boots a guest; takes seconds)"
        )
    if conn is None:
        return CheckResult(
            "kvm.probe", title, Status.SKIP, "libvirt unreachable (see libvirt.reachable)"
        )
    try:
        kvm_ok, reason = run_accel_probe(conn)
    except Exception as exc:  # the probe's own failure is an observation, not a crash
        return CheckResult(
            "kvm.probe",
            title,
            Status.FAIL,
            f"probe could not run: {exc}",
            remedy="Fix the cause above (microguest build, libvirt); guests fall back to TCG",
            degrades=ALL,
        )
    if kvm_ok:
        return CheckResult("kvm.probe", title, Status.PASS, f"KVM works: {reason}")
    return CheckResult(
        "kvm.probe",
        title,
        Status.WARN,
        f"guests use TCG: {reason}",
        remedy=(
            "Guests run under TCG (emulated CPU); figures compare modes relative to each other "
            "on this machine only. For KVM use a host whose CPU exposes VT-x/AMD-V"
        ),
        degrades=ALL,
    )


def check_secure_guest(f: HostFacts) -> CheckResult:
    title = "Secure guest support (AMD SEV, Intel TDX, IBM SE)"
    if "sev" in f.cpu_flags:
        param = f.module_param("kvm_amd", "sev")
        if param is None:
            obs, rem = (
                "AMD SEV CPU, but the kernel has no kvm_amd sev support",
                "Use a kernel with SEV",
            )
        elif param.upper() not in ("Y", "1"):
            obs, rem = "AMD SEV disabled in kvm_amd", "Add kvm_amd.sev=1 to the kernel command line"
        elif not f.paths.dev("sev").exists():
            obs, rem = "AMD SEV: /dev/sev missing", "Enable SEV in the firmware setup"
        else:
            return CheckResult("secure.guest", title, Status.PASS, "AMD SEV enabled (/dev/sev)")
        return CheckResult("secure.guest", title, Status.WARN, obs, remedy=rem)
    if (f.module_param("kvm_intel", "tdx") or "").upper() in ("Y", "1"):
        return CheckResult("secure.guest", title, Status.PASS, "Intel TDX enabled in kvm_intel")
    if f.cmdline_args.get("prot_virt") == "1":
        return CheckResult("secure.guest", title, Status.PASS, "IBM Secure Execution (prot_virt=1)")
    return CheckResult(
        "secure.guest",
        title,
        Status.WARN,
        "unknown: no AMD SEV, Intel TDX or IBM Secure Execution found",
        remedy=(
            "Only needed for confidential guests: use a CPU with SEV/TDX and enable it in firmware"
        ),
    )


# --------------------------------------------------------------------------------------------
# Devices in /dev and cgroups


def check_vhost_net(f: HostFacts) -> CheckResult:
    dev = f.paths.dev("vhost-net")
    title = "/dev/vhost-net exists"
    if dev.exists():
        return CheckResult("vhost.net", title, Status.PASS, f"{dev} present")
    return CheckResult(
        "vhost.net",
        title,
        Status.WARN,
        f"{dev} missing: virtio-net runs in QEMU user space (slower)",
        remedy=module_load_remedy(["vhost_net"], f.os_release),
        degrades=(PV,),
    )


def check_tun(f: HostFacts) -> CheckResult:
    dev = f.paths.dev("net/tun")
    title = "/dev/net/tun exists"
    if dev.exists():
        return CheckResult("net.tun", title, Status.PASS, f"{dev} present")
    return CheckResult(
        "net.tun",
        title,
        Status.FAIL,
        f"{dev} missing: guests get no tap networking",
        remedy=module_load_remedy(["tun"], f.os_release),
        gates=(FV, PV),
    )


def _host_to_paths(f: HostFacts, mount_point: str) -> Path:
    if mount_point.startswith("/sys/"):
        return f.paths.sys(mount_point[len("/sys/") :])
    if mount_point.startswith("/proc/"):
        return f.paths.proc(mount_point[len("/proc/") :])
    return f.root / mount_point.lstrip("/")


def cgroup_controllers(f: HostFacts) -> tuple[dict[str, str], str]:
    """Available controllers -> where seen ('v1 /sys/fs/cgroup/cpu', 'v2 ...'), and a summary."""
    mounts = read_text(f.paths.proc("mounts"))
    if mounts is None:
        return {}, "cannot read /proc/mounts"
    found: dict[str, str] = {}
    v2_mounts: list[str] = []
    for line in mounts.splitlines():
        parts = line.split()
        if len(parts) < 4:
            continue
        mnt, fstype, opts = parts[1], parts[2], parts[3].split(",")
        if fstype == "cgroup":
            for o in opts:
                if o in CGROUP_CONTROLLERS:
                    found.setdefault(o, f"v1 {mnt}")
        elif fstype == "cgroup2":
            v2_mounts.append(mnt)
    for mnt in v2_mounts:
        text = read_first_line(_host_to_paths(f, mnt) / "cgroup.controllers") or ""
        ctrls = set(text.split())
        mapping = {
            "memory": "memory",
            "cpu": "cpu",
            "cpuacct": "cpu",  # v2 accounts CPU in the cpu controller
            "cpuset": "cpuset",
            "blkio": "io",
        }
        for name, v2 in mapping.items():
            if v2 in ctrls:
                found.setdefault(name, f"v2 {mnt} ({v2})")
        if ctrls:
            found.setdefault("devices", f"v2 {mnt} (BPF device filter)")
    kinds = sorted({w.split()[0] for w in found.values()})
    return found, "cgroup " + ("+".join(kinds) if kinds else "none")


def check_cgroups(f: HostFacts) -> list[CheckResult]:
    found, summary = cgroup_controllers(f)
    out: list[CheckResult] = []
    for name in CGROUP_CONTROLLERS:
        title = f"cgroup '{name}' controller"
        where = found.get(name)
        if where:
            out.append(CheckResult(f"cgroup.{name}", title, Status.PASS, f"{where}"))
        else:
            out.append(
                CheckResult(
                    f"cgroup.{name}",
                    title,
                    Status.WARN,
                    f"'{name}' controller not mounted/enabled ({summary})",
                    remedy=(
                        f"Mount the '{name}' controller (cgroup v1) or enable it in "
                        "cgroup.subtree_control (v2); systemd hosts enable it by default"
                    ),
                    degrades=ALL,
                )
            )
    return out


# --------------------------------------------------------------------------------------------
# IOMMU


def iommu_vendor(f: HostFacts) -> str:
    tables = f.paths.sys("firmware/acpi/tables")
    if (tables / "DMAR").exists():
        return "intel"
    if (tables / "IVRS").exists():
        return "amd"
    if "Intel" in f.cpu_vendor or "vmx" in f.cpu_flags:
        return "intel"
    if "AMD" in f.cpu_vendor or "svm" in f.cpu_flags:
        return "amd"
    return "unknown"


def iommu_cmdline_args(f: HostFacts) -> str:
    return {
        "intel": "intel_iommu=on iommu=pt",
        "amd": "amd_iommu=on iommu=pt",
    }.get(iommu_vendor(f), "intel_iommu=on iommu=pt")


def iommu_groups(f: HostFacts, inventory: Inventory) -> tuple[int, str]:
    groups = _listdir(f.paths.sys("kernel/iommu_groups"))
    if groups:
        return len(groups), "/sys/kernel/iommu_groups"
    from_devices = {d.iommu_group for d in inventory.pci if d.iommu_group is not None}
    if from_devices:
        return len(from_devices), "the devices' iommu_group links"
    return 0, "/sys/kernel/iommu_groups"


def check_iommu_acpi(f: HostFacts) -> CheckResult:
    title = "ACPI DMAR/IVRS table (IOMMU in firmware)"
    tables = f.paths.sys("firmware/acpi/tables")
    for name, what in (("DMAR", "Intel VT-d"), ("IVRS", "AMD-Vi")):
        if (tables / name).exists():
            return CheckResult("iommu.acpi", title, Status.PASS, f"ACPI {name} table ({what})")
    return CheckResult(
        "iommu.acpi",
        title,
        Status.WARN,
        "no ACPI DMAR or IVRS table: the IOMMU is off in the firmware or absent",
        remedy=(
            "Enable VT-d (Intel) or AMD-Vi/IOMMU (AMD) in the firmware setup; in a QEMU lab add "
            "`-device intel-iommu,intremap=on` to a q35 machine"
        ),
        degrades=PASSTHROUGH,
    )


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:]


def check_iommu_groups(f: HostFacts, inventory: Inventory) -> CheckResult:
    title = "IOMMU enabled by the kernel (groups exist)"
    n, where = iommu_groups(f, inventory)
    if n:
        return CheckResult(
            "iommu.groups", title, Status.PASS, f"{n} IOMMU groups ({where})", data={"groups": n}
        )
    return CheckResult(
        "iommu.groups",
        title,
        Status.FAIL,
        f"no IOMMU groups in {where}: the kernel has no IOMMU enabled",
        remedy=(
            "Enable VT-d (Intel) or AMD-Vi (AMD) in the firmware setup and turn the IOMMU on in "
            "the kernel: "
            + _lower_first(kernel_cmdline_remedy(iommu_cmdline_args(f), f.os_release))
        ),
        gates=PASSTHROUGH,
        data={"groups": 0},
    )


def check_iommu_cmdline(f: HostFacts, inventory: Inventory) -> CheckResult:
    title = "IOMMU on the kernel command line vs sysfs"
    args = f.cmdline_args
    relevant = {k: v for k, v in args.items() if k in ("intel_iommu", "amd_iommu", "iommu")}
    shown = " ".join(f"{k}={v}" if v else k for k, v in relevant.items()) or "no IOMMU options"
    n, _where = iommu_groups(f, inventory)
    sysfs = f"sysfs: {n} groups" if n else "sysfs: no groups"
    obs = f"command line: {shown}; {sysfs}"
    data = {"cmdline": relevant, "groups": n}
    off = [
        f"{k}={v}"
        for k, v in relevant.items()
        if v.split(",")[0] in ("off", "0") or (k == "intel_iommu" and "off" in v.split(","))
    ]
    want = iommu_cmdline_args(f)
    if off:
        return CheckResult(
            "iommu.cmdline",
            title,
            Status.FAIL,
            f"{obs}; {' '.join(off)} disables the IOMMU",
            remedy=f"Remove {' '.join(off)}; " + kernel_cmdline_remedy(want, f.os_release),
            gates=PASSTHROUGH,
            data=data,
        )
    if n:
        note = "" if "iommu" in relevant else " (iommu=pt not set: optional, faster host DMA)"
        return CheckResult("iommu.cmdline", title, Status.PASS, obs + note, data=data)
    asked = any(v.split(",")[0] in ("on", "1", "pt", "force") for v in relevant.values())
    if asked:
        return CheckResult(
            "iommu.cmdline",
            title,
            Status.FAIL,
            f"{obs}: the kernel was asked for an IOMMU but found none",
            remedy="Enable VT-d (Intel) or AMD-Vi (AMD) in the firmware setup and reboot",
            gates=PASSTHROUGH,
            data=data,
        )
    return CheckResult(
        "iommu.cmdline",
        title,
        Status.FAIL,
        obs,
        remedy=kernel_cmdline_remedy(want, f.os_release),
        gates=PASSTHROUGH,
        data=data,
    )


def _ecaps(f: HostFacts) -> list[str]:
    """VT-d extended capability registers: from the device tree (pyudev, faked by umockdev in a
    testbed), else from sysfs below the injectable root."""
    values: list[str] = []
    try:
        for dev in udev_context().list_devices(subsystem="iommu"):
            raw = dev.attributes.get("intel-iommu/ecap")
            if raw:
                values.append(bytes(raw).decode(errors="replace").strip())
    except (OSError, pyudev.DeviceNotFoundError):
        values = []
    if not values:
        for unit in _listdir(f.paths.sys("class/iommu")):
            ecap = read_first_line(f.paths.sys(f"class/iommu/{unit}/intel-iommu/ecap"))
            if ecap:
                values.append(ecap)
    return values


def _intremap_from_ecap(f: HostFacts) -> bool | None:
    found: bool | None = None
    for ecap in _ecaps(f):
        try:
            ir = bool(int(ecap, 16) & (1 << 3))  # VT-d ECAP.IR
        except ValueError:
            continue
        found = bool(found) or ir
    return found


def check_intremap(f: HostFacts, inventory: Inventory) -> CheckResult:
    title = "Interrupt remapping"
    n, _ = iommu_groups(f, inventory)
    if not n:
        return CheckResult("iommu.intremap", title, Status.SKIP, "no IOMMU (see iommu.groups)")
    args = f.cmdline_args
    if args.get("intremap") == "off" or "nointremap" in args:
        state: bool | None = False
        how = "disabled on the command line"
    else:
        interrupts = read_text(f.paths.proc("interrupts"))
        if interrupts is not None and "IR-" in interrupts:
            state, how = True, "IR- interrupt chips in /proc/interrupts"
        else:
            state = _intremap_from_ecap(f)
            how = "VT-d extended capabilities (ECAP.IR)"
            if state is None and interrupts is not None:
                state, how = False, "no IR- interrupt chips in /proc/interrupts"
    unsafe = f.module_param("vfio_iommu_type1", "allow_unsafe_interrupts")
    if state:
        return CheckResult("iommu.intremap", title, Status.PASS, f"enabled ({how})")
    obs = "unknown (no /proc/interrupts or IOMMU capabilities)" if state is None else f"off ({how})"
    if unsafe and unsafe.upper() in ("Y", "1"):
        obs += "; vfio_iommu_type1.allow_unsafe_interrupts=Y (assignment allowed, unsafe)"
    return CheckResult(
        "iommu.intremap",
        title,
        Status.WARN,
        obs,
        remedy=(
            "Enable interrupt remapping (x2APIC / IR in the firmware; QEMU lab: "
            "`-device intel-iommu,intremap=on`). vfio refuses devices without it unless "
            "vfio_iommu_type1.allow_unsafe_interrupts=1 (unsafe)"
        ),
        degrades=PASSTHROUGH,
    )


# --------------------------------------------------------------------------------------------
# VFIO


def _module_state(f: HostFacts, name: str) -> str:
    """'loaded', 'builtin', 'loadable', 'missing', or 'unknown' (a testbed without lib/modules)."""
    if f.module_loaded(name):
        return "loaded"
    avail = f.module_available(name)
    if avail == "builtin":
        return "builtin"
    if avail == "loadable":
        return "loadable"
    if not f.live and not f.modules_dir.is_dir():
        return "unknown"
    return "missing"


def check_vfio_modules(f: HostFacts) -> CheckResult:
    title = "vfio, vfio_pci, vfio_iommu_type1 loaded or loadable"
    states = {m: _module_state(f, m) for m in VFIO_MODULES}
    obs = ", ".join(f"{m} {s}" for m, s in states.items())
    missing = [m for m, s in states.items() if s == "missing"]
    loadable = [m for m, s in states.items() if s == "loadable"]
    if missing:
        have_dir = f.modules_dir.is_dir()
        why = "" if have_dir else f"; {f.modules_dir} does not exist (no modules for this kernel)"
        return CheckResult(
            "vfio.modules",
            title,
            Status.FAIL,
            obs + why,
            remedy=(
                f"Boot a kernel built with VFIO (CONFIG_VFIO_PCI) and install its modules: "
                f"{install_remedy(['kernel'], f.os_release)}; then "
                + _lower_first(module_load_remedy(list(VFIO_MODULES), f.os_release))
            ),
            gates=PASSTHROUGH,
            data={"modules": states},
        )
    unknown = [m for m, s in states.items() if s == "unknown"]
    if unknown:
        return CheckResult(
            "vfio.modules",
            title,
            Status.WARN,
            obs + f" (this testbed has no lib/modules/{f.kernel_release or '<release>'})",
            remedy=module_load_remedy(list(VFIO_MODULES), f.os_release),
            degrades=PASSTHROUGH,
            data={"modules": states},
        )
    if loadable:
        return CheckResult(
            "vfio.modules",
            title,
            Status.WARN,
            obs + " (libvirt loads vfio-pci on demand)",
            remedy=module_load_remedy(list(VFIO_MODULES), f.os_release),
            degrades=PASSTHROUGH,
            data={"modules": states},
        )
    return CheckResult("vfio.modules", title, Status.PASS, obs, data={"modules": states})


def check_vfio_dev(f: HostFacts) -> CheckResult:
    title = "/dev/vfio/vfio exists"
    dev = f.paths.dev("vfio/vfio")
    if dev.exists():
        groups = [g for g in _listdir(f.paths.dev("vfio")) if g != "vfio"]
        extra = f"; vfio groups in use: {', '.join(groups)}" if groups else ""
        return CheckResult("vfio.dev", title, Status.PASS, f"{dev} present{extra}")
    state = _module_state(f, "vfio")
    if state in ("loadable", "unknown"):
        return CheckResult(
            "vfio.dev",
            title,
            Status.WARN,
            f"{dev} missing: appears once the vfio module is loaded",
            remedy=module_load_remedy(list(VFIO_MODULES), f.os_release),
            degrades=PASSTHROUGH,
        )
    return CheckResult(
        "vfio.dev",
        title,
        Status.FAIL,
        f"{dev} missing (vfio {state})",
        remedy=module_load_remedy(list(VFIO_MODULES), f.os_release)
        + "; needs a kernel with CONFIG_VFIO",
        gates=PASSTHROUGH,
    )


# --------------------------------------------------------------------------------------------
# Memory: hugepages and NUMA


def _meminfo_kib(f: HostFacts, key: str) -> int | None:
    return f.system.meminfo_kib.get(key)


def _int(path: Path) -> int | None:
    v = read_first_line(path)
    try:
        return int(v) if v is not None else None
    except ValueError:
        return None


def check_hugepages(f: HostFacts) -> CheckResult:
    title = "Hugepages per size and NUMA node"
    base = f.paths.sys("kernel/mm/hugepages")
    sizes = [s for s in _listdir(base) if s.startswith("hugepages-")]
    if not sizes:
        return CheckResult(
            "memory.hugepages",
            title,
            Status.WARN,
            "no /sys/kernel/mm/hugepages (kernel without hugetlbfs)",
            remedy="Use a kernel with CONFIG_HUGETLBFS to back guest memory with hugepages",
        )
    data: dict[str, Any] = {}
    parts: list[str] = []
    nodes = [n for n in _listdir(f.paths.sys("devices/system/node")) if re.fullmatch(r"node\d+", n)]
    for s in sizes:
        size = s.removeprefix("hugepages-")
        total = _int(base / s / "nr_hugepages") or 0
        free = _int(base / s / "free_hugepages") or 0
        per_node = {
            n: _int(f.paths.sys(f"devices/system/node/{n}/hugepages/{s}/nr_hugepages")) or 0
            for n in nodes
        }
        data[size] = {"total": total, "free": free, "per_node": per_node}
        node_txt = " ".join(f"{n}={c}" for n, c in per_node.items() if c)
        parts.append(f"{size}: {total} (free {free}{'; ' + node_txt if node_txt else ''})")
    obs = "; ".join(parts)
    if any(d["total"] for d in data.values()):
        return CheckResult("memory.hugepages", title, Status.PASS, obs, data=data)
    return CheckResult(
        "memory.hugepages",
        title,
        Status.WARN,
        obs + ": none reserved, guests use 4 KiB pages",
        remedy=(
            "Reserve hugepages for guests: `sysctl vm.nr_hugepages=N` (persist in "
            "/etc/sysctl.d/hugepages.conf) or `hugepagesz=1G hugepages=N` on the kernel command "
            "line; per node via /sys/devices/system/node/nodeX/hugepages/"
        ),
        data=data,
    )


def check_numa(f: HostFacts, inventory: Inventory) -> CheckResult:
    title = "NUMA topology"
    nodes = [n for n in _listdir(f.paths.sys("devices/system/node")) if re.fullmatch(r"node\d+", n)]
    data: dict[str, Any] = {}
    parts: list[str] = []
    for n in nodes:
        cpus = read_first_line(f.paths.sys(f"devices/system/node/{n}/cpulist")) or ""
        mem_kib = None
        for line in (read_text(f.paths.sys(f"devices/system/node/{n}/meminfo")) or "").splitlines():
            if "MemTotal:" in line:
                try:
                    mem_kib = int(line.split("MemTotal:")[1].split()[0])
                except (IndexError, ValueError):
                    mem_kib = None
        num = int(n[4:])
        devs = [d.address for d in inventory.pci if d.numa_node == num]
        data[n] = {"cpus": cpus, "mem_kib": mem_kib, "pci": devs}
        mem = f", {mem_kib // 1024} MiB" if mem_kib else ""
        parts.append(f"{n}: cpus {cpus or '?'}{mem}{f', {len(devs)} PCI devices' if devs else ''}")
    if not nodes:
        total = _meminfo_kib(f, "MemTotal")
        mem = f", {total // 1024} MiB" if total else ""
        return CheckResult(
            "memory.numa", title, Status.PASS, f"no NUMA information: one node{mem}", data=data
        )
    label = "1 node" if len(nodes) == 1 else f"{len(nodes)} nodes"
    return CheckResult(
        "memory.numa", title, Status.PASS, f"{label}: " + "; ".join(parts), data=data
    )


# --------------------------------------------------------------------------------------------
# libvirt and QEMU


@dataclass(frozen=True)
class DomainCaps:
    emulator: str | None = None
    domain_type: str | None = None
    machine: str | None = None
    arch: str | None = None
    firmware: tuple[str, ...] = ()
    loaders: tuple[str, ...] = ()
    disk_buses: tuple[str, ...] = ()
    disk_models: tuple[str, ...] = ()
    nic_models: tuple[str, ...] = ()  # only if libvirt reports them
    hostdev_supported: bool = False
    hostdev_subsys: tuple[str, ...] = ()
    pci_backends: tuple[str, ...] = ()


def _enum(node: ET.Element | None, name: str) -> tuple[str, ...]:
    if node is None:
        return ()
    el = node.find(f"enum[@name='{name}']")
    return tuple(v.text or "" for v in el.findall("value")) if el is not None else ()


def parse_domain_capabilities(xml: str) -> DomainCaps:
    """The parts of libvirt's <domainCapabilities> that decide what each mode can use."""
    root = ET.fromstring(xml)
    os_el = root.find("os")
    loader = os_el.find("loader") if os_el is not None else None
    devices = root.find("devices")
    disk = devices.find("disk") if devices is not None else None
    iface = devices.find("interface") if devices is not None else None
    hostdev = devices.find("hostdev") if devices is not None else None
    return DomainCaps(
        emulator=root.findtext("path"),
        domain_type=root.findtext("domain"),
        machine=root.findtext("machine"),
        arch=root.findtext("arch"),
        firmware=_enum(os_el, "firmware"),
        loaders=tuple(v.text or "" for v in loader.findall("value")) if loader is not None else (),
        disk_buses=_enum(disk, "bus"),
        disk_models=_enum(disk, "model"),
        nic_models=_enum(iface, "model"),
        hostdev_supported=hostdev is not None and hostdev.get("supported") == "yes",
        hostdev_subsys=_enum(hostdev, "subsysType"),
        pci_backends=_enum(hostdev, "pciBackend"),
    )


def machine_types(caps_xml: str, arch: str) -> tuple[str, ...]:
    root = ET.fromstring(caps_xml)
    out: list[str] = []
    for guest in root.findall("guest"):
        a = guest.find("arch")
        if a is None or a.get("name") != arch:
            continue
        for m in a.findall("machine"):
            for name in (m.text, m.get("canonical")):
                if name and name not in out:
                    out.append(name)
    return tuple(out)


def _version(n: int) -> str:
    return f"{n // 1_000_000}.{n // 1000 % 1000}.{n % 1000}"


@dataclass
class LibvirtFacts:
    uri: str
    conn: libvirt.virConnect | None = None
    error: str | None = None
    driver: str | None = None
    lib_version: str | None = None
    hv_version: str | None = None
    hv_error: str | None = None
    domcaps: DomainCaps | None = None
    domcaps_error: str | None = None
    machines: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)


def _lv_msg(exc: libvirt.libvirtError) -> str:
    return str(exc.get_error_message() or exc).strip()


def read_libvirt(uri: str | None, arch: str) -> LibvirtFacts:
    target = resolve_uri(uri)
    facts = LibvirtFacts(uri=target)
    try:
        conn = open_connection(target)
    except LibvirtUnavailable as exc:
        facts.error = str(exc)
        return facts
    facts.conn = conn
    try:
        facts.driver = conn.getType()
        facts.lib_version = _version(conn.getLibVersion())
    except libvirt.libvirtError as exc:
        facts.error = f"connected to {target} but it does not answer: {_lv_msg(exc)}"
        return facts
    try:
        facts.hv_version = _version(conn.getVersion())
    except libvirt.libvirtError as exc:
        facts.hv_error = _lv_msg(exc)
    try:
        facts.domcaps = parse_domain_capabilities(
            conn.getDomainCapabilities(None, arch or None, None, None, 0)
        )
    except libvirt.libvirtError as exc:
        facts.domcaps_error = _lv_msg(exc)
    except ET.ParseError as exc:
        facts.domcaps_error = f"unparsable domain capabilities: {exc}"
    try:
        facts.machines = machine_types(conn.getCapabilities(), arch)
    except (libvirt.libvirtError, ET.ParseError):
        facts.machines = ()
    return facts


def _skip(
    check_id: str, title: str, why: str = "libvirt unreachable (see libvirt.reachable)"
) -> CheckResult:
    return CheckResult(check_id, title, Status.SKIP, why)


def check_libvirt(lv: LibvirtFacts, f: HostFacts) -> list[CheckResult]:
    out: list[CheckResult] = []
    t_reach = "libvirt reachable"
    t_ver = "libvirt version"
    t_qemu = "QEMU version"
    t_caps = "Domain capabilities (machine types, firmware, buses, hostdev)"
    t_fv = "Emulated disk/NIC models for FV (IDE/SATA, e1000)"
    t_pv = "Paravirtual disk/NIC models for PV-on-HVM (virtio)"
    t_hostdev = "libvirt can assign PCI devices with VFIO (hostdev)"
    if lv.error or not lv.driver:
        daemon = (
            "`systemctl enable --now libvirtd` (or `virtlogd -d && libvirtd -d` without systemd)"
        )
        remedy = f"Start libvirtd: {daemon}; install it with " + install_remedy(
            ["libvirtd"], f.os_release
        )
        out.append(
            CheckResult(
                "libvirt.reachable",
                t_reach,
                Status.FAIL,
                lv.error or f"cannot connect to {lv.uri}",
                remedy=remedy,
                gates=ALL,
            )
        )
        for cid, title in (
            ("libvirt.version", t_ver),
            ("qemu.version", t_qemu),
            ("libvirt.domcaps", t_caps),
            ("models.fv", t_fv),
            ("models.pv", t_pv),
            ("hostdev.vfio", t_hostdev),
        ):
            out.append(_skip(cid, title))
        return out
    out.append(
        CheckResult("libvirt.reachable", t_reach, Status.PASS, f"{lv.uri} ({lv.driver} driver)")
    )
    out.append(
        CheckResult(
            "libvirt.version",
            t_ver,
            Status.PASS,
            f"libvirt {lv.lib_version}",
            data={"version": lv.lib_version},
        )
    )
    if lv.driver == "QEMU" and lv.hv_version:
        out.append(
            CheckResult(
                "qemu.version",
                t_qemu,
                Status.PASS,
                f"QEMU {lv.hv_version}",
                data={"version": lv.hv_version},
            )
        )
    elif lv.driver == "QEMU":
        out.append(
            CheckResult(
                "qemu.version",
                t_qemu,
                Status.FAIL,
                f"libvirt cannot run QEMU: {lv.hv_error}",
                remedy=install_remedy(["qemu-system-x86_64"], f.os_release),
                gates=ALL,
            )
        )
    elif lv.driver == "Xen":  # libxl: Xen is the hypervisor, QEMU only its device model
        out.append(
            _skip(
                "qemu.version",
                t_qemu,
                f"does not apply on Xen {lv.hv_version or ''} ({lv.uri}): "
                "libxl runs QEMU as the device model only",
            )
        )
    else:
        out.append(
            CheckResult(
                "qemu.version",
                t_qemu,
                Status.WARN,
                f"{lv.uri} uses the {lv.driver} driver, not QEMU "
                f"(hypervisor version {lv.hv_version or 'unknown'})",
                remedy="Connect to qemu:///system (`-c qemu:///system`) to check real guests",
                degrades=ALL,
            )
        )
    caps = lv.domcaps
    if caps is None:
        out.append(
            CheckResult(
                "libvirt.domcaps",
                t_caps,
                Status.WARN,
                f"the {lv.driver} driver reports no domain capabilities: {lv.domcaps_error}",
                remedy="Connect to qemu:///system to read QEMU's domain capabilities",
                degrades=ALL,
            )
        )
        why = "no domain capabilities (see libvirt.domcaps)"
        out += [_skip("models.fv", t_fv, why), _skip("models.pv", t_pv, why)]
        out.append(_skip("hostdev.vfio", t_hostdev, why))
        return out
    machines = lv.machines
    key_machines = [m for m in machines if m in ("q35", "pc", "virt")]
    obs = (
        f"{caps.emulator} domain={caps.domain_type} machines: "
        f"{', '.join(key_machines) or caps.machine or '?'} ({len(machines)} types); "
        f"firmware: {', '.join(('bios', *caps.firmware)) if caps.firmware else 'bios'}; "
        f"disk buses: {', '.join(caps.disk_buses) or 'none'}; "
        f"hostdev: {', '.join(caps.hostdev_subsys) or 'none'} "
        f"(pci backends: {', '.join(caps.pci_backends) or 'none'})"
    )
    data = {
        "emulator": caps.emulator,
        "domain_type": caps.domain_type,
        "default_machine": caps.machine,
        "machines": list(machines),
        "firmware": list(caps.firmware),
        "loaders": list(caps.loaders),
        "disk_buses": list(caps.disk_buses),
        "disk_models": list(caps.disk_models),
        "nic_models": list(caps.nic_models),
        "hostdev_subsys": list(caps.hostdev_subsys),
        "pci_backends": list(caps.pci_backends),
    }
    out.append(CheckResult("libvirt.domcaps", t_caps, Status.PASS, obs, data=data))
    nic_note = (
        f"NIC models: {', '.join(caps.nic_models)}"
        if caps.nic_models
        else "NIC models not listed by libvirt (every QEMU x86 build has e1000 and virtio-net)"
    )
    fv_buses = [b for b in caps.disk_buses if b in ("ide", "sata")]
    fv_nic_ok = not caps.nic_models or any(
        m in caps.nic_models for m in ("e1000", "e1000e", "rtl8139")
    )
    if fv_buses and fv_nic_ok:
        out.append(
            CheckResult(
                "models.fv", t_fv, Status.PASS, f"disk buses {', '.join(fv_buses)}; {nic_note}"
            )
        )
    else:
        out.append(
            CheckResult(
                "models.fv",
                t_fv,
                Status.FAIL,
                f"disk buses {', '.join(caps.disk_buses) or 'none'}; {nic_note}",
                remedy="Install a full QEMU system emulator: "
                + install_remedy(["qemu-system-x86_64"], f.os_release),
                gates=(FV,),
            )
        )
    pv_nic_ok = not caps.nic_models or "virtio" in caps.nic_models
    if "virtio" in caps.disk_buses and pv_nic_ok:
        out.append(CheckResult("models.pv", t_pv, Status.PASS, f"disk bus virtio; {nic_note}"))
    else:
        out.append(
            CheckResult(
                "models.pv",
                t_pv,
                Status.FAIL,
                f"disk buses {', '.join(caps.disk_buses) or 'none'}; {nic_note}",
                remedy="Install a QEMU with virtio: "
                + install_remedy(["qemu-system-x86_64"], f.os_release),
                gates=(PV,),
            )
        )
    if caps.hostdev_supported and "pci" in caps.hostdev_subsys and "vfio" in caps.pci_backends:
        out.append(
            CheckResult(
                "hostdev.vfio",
                t_hostdev,
                Status.PASS,
                f"hostdev subsystem types {', '.join(caps.hostdev_subsys)}; PCI backend vfio",
            )
        )
    else:
        out.append(
            CheckResult(
                "hostdev.vfio",
                t_hostdev,
                Status.FAIL,
                f"hostdev supported={'yes' if caps.hostdev_supported else 'no'}, subsystem types "
                f"{', '.join(caps.hostdev_subsys) or 'none'}, PCI backends "
                f"{', '.join(caps.pci_backends) or 'none'}: libvirt sees no usable VFIO",
                remedy="Enable the IOMMU and load vfio (see iommu.groups, vfio.modules), then "
                "restart libvirtd so it re-reads QEMU's capabilities",
                gates=PASSTHROUGH,
            )
        )
    return out


# --------------------------------------------------------------------------------------------
# Tools and the microguest kernel (always of the machine running vbench)


def _which(tool: str) -> str | None:
    found = shutil.which(tool)
    if found:
        return found
    for d in ("/usr/sbin", "/sbin", "/usr/bin", "/bin"):  # qemu-ga lives in sbin
        p = Path(d) / tool
        if p.is_file() and os.access(p, os.X_OK):
            return str(p)
    return None


def check_tools(f: HostFacts) -> CheckResult:
    title = "Workload tools (fio, stress-ng, iperf3, qemu-ga, busybox)"
    found = {t: _which(t) for t in WORKLOAD_TOOLS}
    missing = [t for t, p in found.items() if p is None]
    data = {"tools": found}
    if not missing:
        return CheckResult("tools.workloads", title, Status.PASS, "all found", data=data)
    return CheckResult(
        "tools.workloads",
        title,
        Status.WARN,
        f"missing: {', '.join(missing)}",
        remedy=install_remedy(missing, f.os_release),
        degrades=ALL,
        data=data,
    )


def check_guest_kernel(f: HostFacts) -> CheckResult:
    """The kernel the microguest builder would take, chosen by the builder's own rule."""
    title = "A kernel with modules for the microguest"
    candidates = kernel_candidates()
    for kernel, problem in candidates:
        if problem is None:
            release = kernel.name.removeprefix("vmlinuz-")
            return CheckResult(
                "guest.kernel",
                title,
                Status.PASS,
                f"{kernel} with the microguest's {len(MICROGUEST_MODULES)} modules",
                data={
                    "kernel": str(kernel),
                    "modules": str(Path("/lib/modules") / release),
                    "needed": list(MICROGUEST_MODULES),
                },
            )
    tried = [f"{k.name.removeprefix('vmlinuz-')}: {p}" for k, p in candidates]
    obs = "; ".join(tried) if tried else "no /boot/vmlinuz-*"
    return CheckResult(
        "guest.kernel",
        title,
        Status.WARN,
        obs,
        remedy="Install a distribution kernel for the microguest: "
        + install_remedy(["kernel"], f.os_release),
        degrades=ALL,
    )


# --------------------------------------------------------------------------------------------
# Inventory


def collect_inventory_checked(paths: HostPaths) -> tuple[Inventory, CheckResult]:
    title = "Device inventory (PCI, IOMMU groups, SR-IOV, host use)"
    try:
        inv = collect_inventory(paths)
    except Exception as exc:  # an unreadable device tree is an observation
        return Inventory(notes=(f"inventory failed: {exc}",)), CheckResult(
            "inventory",
            title,
            Status.FAIL,
            f"cannot read the device tree: {exc}",
            remedy="Check that /sys is mounted and udev is running",
            gates=PASSTHROUGH,
        )
    used = {u.pci_address for u in inv.host_use}
    pfs = [d for d in inv.pci if d.sriov_totalvfs]
    vfs = [d for d in inv.pci if d.physfn]
    obs = (
        f"{len(inv.pci)} PCI devices, {len(pfs)} SR-IOV PFs, {len(vfs)} VFs, "
        f"{len(used)} in use by the host"
    )
    return inv, CheckResult("inventory", title, Status.PASS, obs)


def check_nvme_secondaries(
    f: HostFacts, inventory: Inventory, nvme: NvmeQuery | None = None
) -> CheckResult:
    """Each VF's secondary controller of every SR-IOV NVMe PF (nvme list-secondary: a read).

    On a testbed, nvme-cli's answers come from its recording (`<testbed>/nvme/<ctrl>/`).
    """
    title = "NVMe SR-IOV secondary controllers (one per VF)"
    pfs = [
        d for d in inventory.pci if d.sriov_totalvfs and d.class_code.startswith(NVME_CLASS_PREFIX)
    ]
    if not pfs:
        return CheckResult("sriov.nvme", title, Status.SKIP, "no SR-IOV NVMe PF on this host")
    query = nvme or nvme_for(f.paths)
    lines: list[str] = []
    data: dict[str, Any] = {}
    unreadable: list[str] = []
    for pf in pfs:
        try:
            state = read_pf(pf.address)
            if state.nvme_ctrl is None:
                continue
            dev = f.paths.dev(state.nvme_ctrl)
            secondaries = query.secondary_controllers(dev)
        except Exception as exc:  # an unreadable controller is an observation
            unreadable.append(f"{pf.address}: {exc}")
            continue
        vfs, parts = [], []
        for s in secondaries:
            vf = vf_address(state, s.vf_number - 1)
            vfs.append({"vf": vf, **{k: getattr(s, k) for k in ("cntlid", "online", "vq", "vi")}})
            parts.append(f"VF {vf} {s.describe()}")
        data[pf.address] = {"controller": state.nvme_ctrl, "secondaries": vfs}
        lines.append(f"PF {pf.address} ({state.nvme_ctrl}): {'; '.join(parts) or 'none'}")
    if unreadable:
        return CheckResult(
            "sriov.nvme",
            title,
            Status.WARN,
            "cannot read secondary controllers of " + "; ".join(unreadable),
            remedy="Install nvme-cli and run vbench check as root (nvme list-secondary)",
            degrades=(SRIOV,),
            data=data,
        )
    obs = " | ".join(lines) + " (vbench run --prepare-host sets an offline VF up)"
    return CheckResult("sriov.nvme", title, Status.PASS, obs, data=data)


# --------------------------------------------------------------------------------------------
# Putting it together


def run_checks(
    paths: HostPaths | None = None,
    uri: str | None = None,
    probe: bool = False,
    hostname: str | None = None,
) -> CheckReport:
    """Read everything and return the report.  Only reads; never raises for a missing fact."""
    started = time.monotonic()
    paths = paths or HostPaths()
    f = read_facts(paths)
    inventory, inv_check = collect_inventory_checked(paths)
    lv = read_libvirt(uri, f.arch)
    try:
        checks: list[CheckResult] = [
            check_hw_virt(f),
            check_kvm_device(f),
            check_kvm_access(f),
            check_kvm_module(f),
            check_nested(f),
            check_kvm_probe(lv.conn, probe),
            check_vhost_net(f),
            check_tun(f),
            *check_cgroups(f),
            check_iommu_acpi(f),
            check_iommu_groups(f, inventory),
            check_iommu_cmdline(f, inventory),
            check_intremap(f, inventory),
            check_vfio_modules(f),
            check_vfio_dev(f),
            check_secure_guest(f),
            check_hugepages(f),
            check_numa(f, inventory),
            *check_libvirt(lv, f),
            check_tools(f),
            check_guest_kernel(f),
            inv_check,
            check_nvme_secondaries(f, inventory),
        ]
    finally:
        if lv.conn is not None:
            with contextlib.suppress(libvirt.libvirtError):
                lv.conn.close()
    host: dict[str, Any] = {
        "hostname": hostname or f.system.hostname,
        "testbed": None if f.live else str(f.root),
        "arch": f.arch,
        "cpu_vendor": f.cpu_vendor,
        "cpu_model": f.cpu_model,
        "kernel_release": f.kernel_release,
        "cmdline": f.cmdline,
        "os_release": dict(f.os_release),
        "kvm_backend": kvm_backend(f),
        "libvirt_uri": lv.uri,
        "libvirt_driver": lv.driver,
        "libvirt_version": lv.lib_version,
        "hypervisor_version": lv.hv_version,
        "vbench_version": __version__,
        "checked_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "probe": probe,
    }
    host["duration_s"] = round(time.monotonic() - started, 3)
    # on a Xen dom0 the KVM and VFIO checks do not apply (host.xen says so)
    return CheckReport(host=host, checks=tuple(xen_checks(f.paths, checks)), inventory=inventory)


def check_document(
    uri: str | None = None,
    requested: Iterable[ModeId] = DEFAULT_REQUESTED,
    strict: bool = False,
    paths: HostPaths | None = None,
) -> CheckDocument:
    """The `vbench check --json` document (no probe), for `vbench run` to store in its manifest.

    Its `verdicts` say which modes the host could not do, and why.
    """
    from vbench.checkdoc import CheckDocument

    return CheckDocument.build(run_checks(paths, uri, probe=False), strict, tuple(requested))
