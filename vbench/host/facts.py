"""The host's identity, read once, in one place: name, kernel, CPU, memory, distribution.

`vbench check` (host/checks.py), the run manifest (runner) and the accelerator cache key
(virt/accel.py) all read these facts here.  Paths come from `HostPaths`, so a recorded testbed
stands in for the host: then the name is the testbed directory's and /etc is the testbed's.
A missing file is an unknown fact (empty or None), never an exception.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from vbench.host.paths import HostPaths


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def parse_os_release(text: str) -> dict[str, str]:
    """os-release(5) as a mapping: KEY=value lines, quotes removed, comments skipped."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        out[key.strip()] = value.strip().strip("\"'")
    return out


def parse_meminfo(text: str) -> dict[str, int]:
    """/proc/meminfo as {key: value} (kB for the sized ones, a count for HugePages_*)."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        fields = rest.split()
        if fields and fields[0].isdigit():
            out[key.strip()] = int(fields[0])
    return out


@dataclass(frozen=True)
class CpuInfo:
    vendor: str = ""
    model: str = ""
    flags: frozenset[str] = frozenset()
    processors: int = 0  # "processor" entries


def parse_cpuinfo(text: str) -> CpuInfo:
    """The first CPU's vendor, model and flags (x86 `flags`, Arm `Features`), and the CPU count."""
    flags: frozenset[str] | None = None
    vendor = model = ""
    processors = 0
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "processor":
            processors += 1
        elif key in ("flags", "Features", "features") and not flags:
            flags = frozenset(value.split())
        elif key == "vendor_id" and not vendor:
            vendor = value.strip()
        elif key == "model name" and not model:
            model = value.strip()
    return CpuInfo(vendor, model, flags or frozenset(), processors)


@dataclass(frozen=True)
class SystemFacts:
    live: bool  # the real host (not a testbed)
    root: Path  # "/" or the testbed directory (its etc/os-release)
    hostname: str
    kernel: str  # release, e.g. 6.1.0-57-amd64 ("" when a testbed did not record it)
    arch: str
    cpus: int | None
    cpu: CpuInfo
    meminfo_kib: Mapping[str, int] = field(default_factory=dict)
    os_release: Mapping[str, str] = field(default_factory=dict)

    @property
    def memory_mib(self) -> int | None:
        total = self.meminfo_kib.get("MemTotal")
        return total // 1024 if total is not None else None

    @property
    def os_name(self) -> str | None:
        return self.os_release.get("PRETTY_NAME") or None

    def manifest(self) -> dict[str, object]:
        """The `host` block of a run manifest (unknown facts left out)."""
        out: dict[str, object] = {
            "hostname": self.hostname,
            "kernel": self.kernel,
            "arch": self.arch,
            "cpus": self.cpus,
            "cpu_model": self.cpu.model or None,
            "memory_mib": self.memory_mib,
            "os": self.os_name,
        }
        return {k: v for k, v in out.items() if v is not None}


def read_system_facts(paths: HostPaths | None = None) -> SystemFacts:
    paths = paths or HostPaths()
    live = paths.proc_root == Path("/proc")
    root = Path("/") if live else paths.proc_root.parent
    cpu = parse_cpuinfo(_read(paths.proc("cpuinfo")))
    release = _read(paths.proc("sys/kernel/osrelease")).strip()
    osr = _read(root / "etc/os-release") or _read(root / "usr/lib/os-release")
    uname = os.uname()  # what platform and socket would ask, without importing them (check speed)
    if live:
        hostname, kernel = uname.nodename, release or uname.release
        arch, cpus = uname.machine, os.cpu_count()
    else:  # a testbed recorded on x86_64 (vendor_id is x86's field)
        hostname, kernel = root.name, release
        arch = "x86_64" if cpu.vendor else uname.machine
        cpus = cpu.processors or None
    return SystemFacts(
        live=live,
        root=root,
        hostname=hostname,
        kernel=kernel,
        arch=arch,
        cpus=cpus,
        cpu=cpu,
        meminfo_kib=parse_meminfo(_read(paths.proc("meminfo"))),
        os_release=parse_os_release(osr),
    )
