"""Choose the accelerator by a functional probe, never by the mere presence of /dev/kvm.

On some hosts /dev/kvm exists but guests hang under it (e.g. a kvm_pvm-backed /dev/kvm on a CPU
without vmx/svm).  So: start the microguest under KVM and wait, for a bounded time, for its guest
agent.  It answers -> KVM; otherwise TCG, with the reason.  The verdict is cached per host, kernel,
CPU flags and QEMU/libvirt version, so the seconds are paid once.  On libvirt's libxl driver there
is nothing to probe: Xen runs the guests (accelerator "xen", vbench.virt.driver).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import libvirt

from vbench.domxml import DomainSpec, build_domain_xml
from vbench.errors import GuestError
from vbench.guest.agent import open_agent
from vbench.guest.microguest import Microguest, default_cache_root
from vbench.host.facts import read_system_facts
from vbench.host.paths import HostPaths
from vbench.model import Accelerator
from vbench.virt.driver import QEMU, driver_of
from vbench.virt.guests import RunScratch, running_guest

PROBE_TIMEOUT_S = 20.0
KVM_MODULES = ("kvm_intel", "kvm_amd", "kvm_pvm", "kvm_hv", "kvm_arm")


@dataclass(frozen=True)
class AccelVerdict:
    accelerator: Accelerator
    reason: str
    probed: bool = False
    cached: bool = False
    detail: str = ""

    def as_dict(self) -> dict[str, str | bool]:
        d = asdict(self)
        d["accelerator"] = self.accelerator.value
        return d


def kvm_backing_modules(sys_root: Path = Path("/sys")) -> list[str]:
    return [m for m in KVM_MODULES if (sys_root / "module" / m).is_dir()]


def cpu_virt_flags(proc_root: Path = Path("/proc")) -> list[str]:
    return sorted(read_system_facts(HostPaths(proc_root=proc_root)).cpu.flags & {"vmx", "svm"})


def _host_key(conn: libvirt.virConnect) -> str:
    host = read_system_facts()
    parts = [
        host.hostname,
        host.kernel,
        ",".join(sorted(host.cpu.flags & {"vmx", "svm"})),
        ",".join(kvm_backing_modules()),
        str(conn.getVersion()),
        str(conn.getLibVersion()),
        conn.getURI(),
    ]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def _kvm_context() -> str:
    mods = kvm_backing_modules()
    flags = cpu_virt_flags()
    backing = f"/dev/kvm is backed by {', '.join(mods)}" if mods else "/dev/kvm's module is unknown"
    cpu = f"the CPU shows {', '.join(flags)}" if flags else "the CPU shows no vmx/svm"
    return f"{backing}; {cpu}"


def _probe(conn: libvirt.virConnect, guest: Microguest, timeout_s: float) -> AccelVerdict:
    run_id = f"accel-probe-{os.getpid()}"
    with RunScratch(run_id) as scratch:
        spec = DomainSpec(
            name=f"vbench-{run_id}",
            run_id=run_id,
            case="accel-probe",
            domain_type=QEMU.domain_type(Accelerator.KVM),
            vcpus=1,
            memory_mib=256,
            kernel=str(guest.kernel),
            initrd=str(guest.initrd),
            cmdline=guest.cmdline,
            console_log=str(scratch.file("console.log")),
            disk_path=None,
            nic_model=None,
            owner_pid=os.getpid(),
            agent=QEMU.agent_channel(scratch.path / "probe.agent"),
        )
        try:
            with (
                running_guest(conn, build_domain_xml(spec)) as dom,
                open_agent(dom, spec.agent) as agent,
            ):
                waited = agent.wait_ready(timeout_s)
        except GuestError as exc:
            return AccelVerdict(
                Accelerator.TCG,
                f"a probe guest under KVM did not reach its agent within {timeout_s:g} s "
                f"({_kvm_context()}): using TCG",
                probed=True,
                detail=str(exc),
            )
        return AccelVerdict(
            Accelerator.KVM,
            f"a probe guest reached its agent under KVM in {waited:.1f} s",
            probed=True,
        )


def choose_accelerator(
    conn: libvirt.virConnect,
    guest: Microguest,
    *,
    timeout_s: float = PROBE_TIMEOUT_S,
    cache_dir: Path | None = None,
    use_cache: bool = True,
) -> AccelVerdict:
    """KVM when a guest really boots under it here, else TCG; always with the reason.  On
    libvirt's libxl driver: Xen, without a probe."""
    fixed = driver_of(conn).accelerator
    if fixed is not None:
        return AccelVerdict(
            fixed, f"libvirt's {driver_of(conn).name} driver: Xen runs the guests (no KVM probe)"
        )
    forced = os.environ.get("VBENCH_ACCEL", "").lower()
    if forced in ("tcg", "kvm"):
        return AccelVerdict(Accelerator(forced), f"forced by VBENCH_ACCEL={forced}")
    if not os.path.exists("/dev/kvm"):
        return AccelVerdict(Accelerator.TCG, "no /dev/kvm on this host: using TCG")
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return AccelVerdict(Accelerator.TCG, "/dev/kvm is not readable and writable: using TCG")
    try:
        conn.getDomainCapabilities(None, "x86_64", None, "kvm", 0)
    except libvirt.libvirtError as exc:
        msg = (exc.get_error_message() or str(exc)).strip()
        return AccelVerdict(Accelerator.TCG, f"libvirt offers no KVM domains ({msg}): using TCG")

    cache = (cache_dir or default_cache_root()) / f"accel-{_host_key(conn)}.json"
    if use_cache and cache.is_file():
        try:
            data = json.loads(cache.read_text())
            return AccelVerdict(
                Accelerator(data["accelerator"]), data["reason"], probed=True, cached=True
            )
        except (OSError, ValueError, KeyError):
            pass
    verdict = _probe(conn, guest, timeout_s)
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_text(json.dumps(verdict.as_dict()))
    except OSError:
        pass  # a cache we cannot write only costs the probe next time
    return verdict
