"""The host's side of a case: CPU per core, pressure stall information, a disk and a NIC.

Read every tick (source "host"):
  /proc/stat                   cpu.busy_s, cpu.total_s (counters, seconds, all CPUs);
                               cpu.busy and cpu<N>.busy (%, since the previous tick)
  /proc/pressure/{cpu,io,memory}  pressure.<res>.<some|full>.avg10 (%) and .total (us, counter)
  <disk>/stat (sysfs)          disk.<name>.{rd,wr}.{reqs,bytes,time}, .io_time, .in_flight
  /sys/class/net/<if>/statistics  net.<if>.{rx,tx}.{bytes,pkts,drop}

The disk is the one behind a directory (the run's scratch directory, where the guests' disk
images live), found with pyudev from the file system's device number and walked from a partition
to its whole disk.  /proc and /sys/class/net are read below `HostPaths`, so tests point them at
files recorded from a real host (tests/data/procfs/).  A file that is absent (a kernel without
PSI, a tap not created yet) gives no values, not an error.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from vbench.host.paths import HostPaths
from vbench.samplers import Value

SOURCE = "host"
SECTOR = 512  # /sys/block/*/stat counts 512-byte sectors whatever the device's block size
PRESSURE_RESOURCES = ("cpu", "io", "memory")
NET_COUNTERS = (
    ("rx_bytes", "rx.bytes", "B"),
    ("tx_bytes", "tx.bytes", "B"),
    ("rx_packets", "rx.pkts", "count"),
    ("tx_packets", "tx.pkts", "count"),
    ("rx_dropped", "rx.drop", "count"),
    ("tx_dropped", "tx.drop", "count"),
)


# -- /proc/stat ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CpuTimes:
    busy: int  # jiffies (USER_HZ) not idle and not iowait
    total: int


def parse_proc_stat(text: str) -> dict[str, CpuTimes]:
    """The `cpu` (all CPUs) and `cpuN` lines of /proc/stat as busy/total jiffies.

    guest and guest_nice are already inside user and nice, so only the first 8 fields count.
    """
    out: dict[str, CpuTimes] = {}
    for line in text.splitlines():
        if not line.startswith("cpu"):
            continue
        fields = line.split()
        try:
            values = [int(v) for v in fields[1:9]]
        except ValueError:
            continue
        if len(values) < 4:
            continue
        idle = values[3] + (values[4] if len(values) > 4 else 0)
        total = sum(values)
        out[fields[0]] = CpuTimes(busy=total - idle, total=total)
    return out


# -- /proc/pressure ----------------------------------------------------------------------------


def parse_pressure(text: str) -> dict[str, tuple[float, int]]:
    """`some`/`full` -> (avg10 in %, total stall in us) from a /proc/pressure/* file."""
    out: dict[str, tuple[float, int]] = {}
    for line in text.splitlines():
        kind, _, rest = line.partition(" ")
        fields = dict(f.split("=", 1) for f in rest.split() if "=" in f)
        try:
            out[kind] = (float(fields["avg10"]), int(fields["total"]))
        except (KeyError, ValueError):
            continue
    return out


# -- block devices -----------------------------------------------------------------------------


@dataclass(frozen=True)
class BlockDevice:
    """A whole disk and its sysfs `stat` file."""

    name: str  # "vda", "nvme0n1", "dm-0"
    stat_path: Path


def parse_block_stat(text: str) -> dict[str, tuple[float, str]]:
    """The fields of a sysfs block `stat` file (Documentation/block/stat.rst) we keep."""
    f = [int(v) for v in text.split()]
    if len(f) < 11:
        raise ValueError(f"a block stat line has at least 11 fields, this one {len(f)}")
    return {
        "rd.reqs": (f[0], "count"),
        "rd.bytes": (f[2] * SECTOR, "B"),
        "rd.time": (f[3], "ms"),
        "wr.reqs": (f[4], "count"),
        "wr.bytes": (f[6] * SECTOR, "B"),
        "wr.time": (f[7], "ms"),
        "in_flight": (f[8], "count"),
        "io_time": (f[9], "ms"),
    }


def find_block_device(path: Path) -> BlockDevice | None:
    """The whole disk holding `path`'s file system, or None when it is not on a block device.

    tmpfs, overlay and btrfs subvolumes have anonymous device numbers (major 0): no disk is
    behind them that the kernel counts for this file system.
    """
    devnum = os.stat(path).st_dev
    if os.major(devnum) == 0:
        return None
    return block_device_from_devnum(devnum)


def block_device_from_devnum(devnum: int) -> BlockDevice | None:
    """The whole disk of a block device number, through pyudev; a partition is walked up to its
    disk.  A device-mapper device (LUKS, LVM) is a disk in its own right: its counters are the
    file system's I/O, its slaves' include everything else on them.
    """
    import pyudev  # imported here: the rest of the host sampler needs no udev

    from vbench.host.udev import udev_context

    context = udev_context()
    try:
        device = pyudev.Devices.from_device_number(context, "block", devnum)
    except pyudev.DeviceNotFoundError:
        # No /sys/dev/block link (umockdev's testbeds have none): look the number up instead.
        found = [d for d in context.list_devices(subsystem="block") if d.device_number == devnum]
        if not found:
            return None
        device = found[0]
    if device.device_type == "partition":
        parent = device.find_parent("block", "disk")
        if parent is None:
            return None
        device = parent
    return BlockDevice(name=device.sys_name, stat_path=Path(device.sys_path) / "stat")


# -- the sampler -------------------------------------------------------------------------------


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="ascii", errors="replace")
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        return None


class HostSampler:
    """Host-wide CPU and pressure, one disk, and NICs by name (see the module's docstring)."""

    name = "host"

    def __init__(
        self,
        paths: HostPaths = HostPaths(),  # noqa: B008 (frozen dataclass: a safe default)
        *,
        disk: BlockDevice | None = None,
        net_ifaces: Sequence[str] = (),
        every: int = 1,
    ) -> None:
        self._paths = paths
        self._disk = disk
        self._ifaces = tuple(net_ifaces)
        self.every = every
        self._hz = os.sysconf("SC_CLK_TCK")
        self._prev: dict[str, CpuTimes] = {}

    def sample(self) -> list[Value]:
        out: list[Value] = []
        out += self._cpu()
        out += self._pressure()
        if self._disk is not None:
            text = _read(self._disk.stat_path)
            if text is not None:
                prefix = f"disk.{self._disk.name}."
                out += [
                    Value(SOURCE, prefix + k, float(v), unit)
                    for k, (v, unit) in parse_block_stat(text).items()
                ]
        for iface in self._ifaces:
            out += self._net(iface)
        return out

    def _cpu(self) -> list[Value]:
        text = _read(self._paths.proc("stat"))
        if text is None:
            return []
        now = parse_proc_stat(text)
        out: list[Value] = []
        if "cpu" in now:
            out += [
                Value(SOURCE, "cpu.busy_s", now["cpu"].busy / self._hz, "s"),
                Value(SOURCE, "cpu.total_s", now["cpu"].total / self._hz, "s"),
            ]
        for cpu, times in now.items():
            prev = self._prev.get(cpu)
            if prev is None or times.total <= prev.total:
                continue
            busy = 100.0 * (times.busy - prev.busy) / (times.total - prev.total)
            out.append(Value(SOURCE, f"{cpu}.busy", busy, "%"))
        self._prev = now
        return out

    def _pressure(self) -> list[Value]:
        out: list[Value] = []
        for res in PRESSURE_RESOURCES:
            text = _read(self._paths.proc(f"pressure/{res}"))
            if text is None:
                continue
            for kind, (avg10, total) in parse_pressure(text).items():
                out += [
                    Value(SOURCE, f"pressure.{res}.{kind}.avg10", avg10, "%"),
                    Value(SOURCE, f"pressure.{res}.{kind}.total", float(total), "us"),
                ]
        return out

    def _net(self, iface: str) -> list[Value]:
        base = self._paths.sys(f"class/net/{iface}/statistics")
        out: list[Value] = []
        for filename, metric, unit in NET_COUNTERS:
            text = _read(base / filename)
            if text is None or not text.strip().isdigit():
                continue
            out.append(Value(SOURCE, f"net.{iface}.{metric}", float(text), unit))
        return out


# -- a NIC inside another network namespace --------------------------------------------------


def parse_proc_net_dev(text: str) -> dict[str, dict[str, int]]:
    """/proc/<pid>/net/dev as {iface: {rx_bytes, rx_packets, rx_dropped, tx_bytes, ...}}."""
    out: dict[str, dict[str, int]] = {}
    for line in text.splitlines()[2:]:
        name, sep, rest = line.partition(":")
        fields = rest.split()
        if not sep or len(fields) < 16 or not all(f.isdigit() for f in fields[:16]):
            continue
        v = [int(f) for f in fields[:16]]
        out[name.strip()] = {
            "rx_bytes": v[0],
            "rx_packets": v[1],
            "rx_dropped": v[3],
            "tx_bytes": v[8],
            "tx_packets": v[9],
            "tx_dropped": v[11],
        }
    return out


class NamespaceNicSampler:
    """NICs of another network namespace (the run's), seen through a process living in it.

    Once a guest's tap is moved into the run's namespace, neither /sys/class/net nor libvirt (it
    reads its own /proc/net/dev) sees it any more; `/proc/<pid>/net/dev` of a process inside the
    namespace (the case's peer server) does.  Values as HostSampler's NICs: `net.<if>.rx.bytes`
    etc., in the host's view of the tap (its rx is what the guest sent).
    """

    name = "netns"

    def __init__(
        self,
        pid: int,
        net_ifaces: Sequence[str],
        paths: HostPaths = HostPaths(),  # noqa: B008 (frozen dataclass: a safe default)
        *,
        every: int = 1,
    ) -> None:
        self._path = paths.proc(f"{pid}/net/dev")
        self._ifaces = tuple(net_ifaces)
        self.every = every

    def sample(self) -> list[Value]:
        text = _read(self._path)
        if text is None:
            return []
        stats = parse_proc_net_dev(text)
        out: list[Value] = []
        for iface in self._ifaces:
            counters = stats.get(iface)
            if counters is None:
                continue
            out += [
                Value(SOURCE, f"net.{iface}.{metric}", float(counters[key]), unit)
                for key, metric, unit in NET_COUNTERS
            ]
        return out
