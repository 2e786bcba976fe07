"""Where host facts are read from.  Injectable so tests can point them at a recorded testbed.

Device trees (/sys/devices, /sys/bus, /sys/class) are read through pyudev, which umockdev fakes.
Everything else is read below these roots:
  proc_root  /proc  (cmdline, cpuinfo, modules, mounts, swaps, net/route, meminfo)
  sys_root   /sys   (module/, kernel/mm/hugepages/, firmware/acpi/tables/, fs/cgroup/,
                     kernel/iommu_groups/)
  dev_root   /dev   (kvm, vhost-net, net/tun, vfio/vfio)

A testbed directory (tests/data/testbeds/<name>/) holds `devices.umockdev` plus `proc/`, `sys/`
and `dev/` snapshots of these; `HostPaths.for_testbed()` points at them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class HostPaths:
    proc_root: Path = Path("/proc")
    sys_root: Path = Path("/sys")
    dev_root: Path = Path("/dev")

    @classmethod
    def for_testbed(cls, testbed: Path) -> HostPaths:
        return cls(proc_root=testbed / "proc", sys_root=testbed / "sys", dev_root=testbed / "dev")

    def proc(self, rel: str) -> Path:
        return self.proc_root / rel

    def sys(self, rel: str) -> Path:
        return self.sys_root / rel

    def dev(self, rel: str) -> Path:
        return self.dev_root / rel
