"""Samplers on recorded host files, on libvirt's test driver, and the sampling thread itself."""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import libvirt
import pytest
from support import needs_umockdev

from vbench.domxml import AgentChannel
from vbench.errors import VbenchError
from vbench.guest.agent import open_agent
from vbench.host.paths import HostPaths
from vbench.samplers import Reading, Sampling, Value
from vbench.samplers.guest import GuestSampler, parse_cpustats, parse_diskstats
from vbench.samplers.host import (
    NET_COUNTERS,
    BlockDevice,
    HostSampler,
    NamespaceNicSampler,
    find_block_device,
    parse_block_stat,
    parse_pressure,
    parse_proc_net_dev,
    parse_proc_stat,
)
from vbench.samplers.libvirt_stats import STATS_GROUPS, LibvirtSampler, parse_domain_stats
from vbench.samplers.sets import guest_samplers, host_samplers

DATA = Path(__file__).parent / "data"


def umockdev_argv_for(recording: Path) -> list[str]:
    umockdev = shutil.which("umockdev-run")
    assert umockdev is not None
    return [umockdev, "-d", str(recording), "--"]


HOST = DATA / "procfs" / "debian12-2cpu"


def by_metric(values: list[Value]) -> dict[str, Value]:
    return {v.metric: v for v in values}


# -- host ----------------------------------------------------------------------------------------


def test_proc_stat_busy_and_total_from_recorded_file() -> None:
    cpus = parse_proc_stat((HOST / "proc" / "stat").read_text())
    assert set(cpus) == {"cpu", "cpu0", "cpu1"}
    # cpu  39043 0 22690 51499 824 0 692 64 0 0 : idle + iowait = 52323, first 8 fields = 114812
    assert cpus["cpu"].total == 114812
    assert cpus["cpu"].busy == 114812 - 52323
    # The per-CPU lines add up to the total but for the kernel's rounding (62488 vs 62489 here).
    assert cpus["cpu0"].busy + cpus["cpu1"].busy == pytest.approx(cpus["cpu"].busy, abs=2)


def test_pressure_files_recorded_and_without_full_line() -> None:
    io = parse_pressure((HOST / "proc" / "pressure" / "io").read_text())
    assert io == {"some": (12.31, 9099333), "full": (4.78, 5703682)}
    # Kernels before 5.13 write no `full` line for cpu.
    old = parse_pressure("some avg10=1.50 avg60=0.20 avg300=0.05 total=4711\n")
    assert old == {"some": (1.5, 4711)}
    assert parse_pressure("some avg10=x total=1\n") == {}


def test_block_stat_fields() -> None:
    stat = parse_block_stat((HOST / "sys" / "block" / "vda" / "stat").read_text())
    # 254040 27329 5399006 42464 156117 70937 9774800 59492 0 22068 ...
    assert stat["rd.reqs"] == (254040, "count")
    assert stat["rd.bytes"] == (5399006 * 512, "B")
    assert stat["rd.time"] == (42464, "ms")
    assert stat["wr.reqs"] == (156117, "count")
    assert stat["wr.bytes"] == (9774800 * 512, "B")
    assert stat["in_flight"] == (0, "count")
    assert stat["io_time"] == (22068, "ms")
    with pytest.raises(ValueError, match="11 fields"):
        parse_block_stat("1 2 3")


def test_host_sampler_on_recorded_tree(tmp_path: Path) -> None:
    tree = tmp_path / "host"
    shutil.copytree(HOST, tree)
    disk = BlockDevice("vda", tree / "sys" / "block" / "vda" / "stat")
    sampler = HostSampler(
        HostPaths(proc_root=tree / "proc", sys_root=tree / "sys"),
        disk=disk,
        net_ifaces=["lo", "vnet-absent"],
    )
    first = by_metric(sampler.sample())
    hz = os.sysconf("SC_CLK_TCK")
    assert first["cpu.total_s"] == Value("host", "cpu.total_s", 114812 / hz, "s")
    assert "cpu.busy" not in first  # a rate needs a previous tick
    assert first["pressure.cpu.some.avg10"].value == 31.35
    assert first["pressure.io.full.total"] == Value("host", "pressure.io.full.total", 5703682, "us")
    assert first["disk.vda.wr.reqs"].value == 156117
    lo_rx = int((HOST / "sys/class/net/lo/statistics/rx_bytes").read_text())
    assert first["net.lo.rx.bytes"] == Value("host", "net.lo.rx.bytes", lo_rx, "B")
    assert not any(m.startswith("net.vnet-absent.") for m in first)  # not created yet: no values

    shutil.copy(HOST / "later" / "proc" / "stat", tree / "proc" / "stat")
    second = by_metric(sampler.sample())
    # later: cpu  39231 0 22710 51501 824 ...: busy +208, total +210 jiffies
    assert second["cpu.busy"].value == pytest.approx(100.0 * 208 / 210)
    assert second["cpu0.busy"].value == pytest.approx(100.0 * 104 / 104)
    assert second["cpu1.busy"].value == pytest.approx(100.0 * 103 / 105)
    assert second["cpu.busy"].unit == "%"


def test_host_sampler_without_psi_or_proc(tmp_path: Path) -> None:
    assert HostSampler(HostPaths(proc_root=tmp_path, sys_root=tmp_path)).sample() == []


def test_block_device_behind_a_directory_on_this_host(tmp_path: Path) -> None:
    """pyudev from st_dev to the disk; its stat file is the live sysfs one."""
    found = find_block_device(Path("/var/lib"))
    if found is None:
        pytest.skip("n/a on this host: /var/lib is not on a block device (tmpfs/overlay/btrfs)")
    dev = os.stat("/var/lib").st_dev
    assert found.stat_path.is_file()
    assert len(found.stat_path.read_text().split()) >= 11
    # The disk is the device itself or the disk its partition belongs to.
    major_minor = f"{os.major(dev)}:{os.minor(dev)}"
    own = (found.stat_path.parent / "dev").read_text().strip()
    part = Path(f"/sys/dev/block/{major_minor}")
    assert own == major_minor or (part / "partition").is_file()
    assert not (found.stat_path.parent / "partition").exists()


def test_no_block_device_behind_an_anonymous_file_system() -> None:
    if os.major(os.stat("/proc").st_dev) != 0:  # pragma: no cover - procfs is always anonymous
        pytest.fail("procfs has a real device number?")
    assert find_block_device(Path("/proc")) is None


# -- libvirt -------------------------------------------------------------------------------------


def test_libvirt_stats_of_a_real_guest_recorded() -> None:
    stats = json.loads((DATA / "libvirt" / "domstats-tcg-virtio-usernet.json").read_text())
    values = by_metric(parse_domain_stats(stats))
    assert values["cpu.time"] == Value("libvirt", "cpu.time", 4026206000, "ns")
    assert values["vcpu.0.delay"] == Value("libvirt", "vcpu.0.delay", 1795862816, "ns")
    assert values["block.vda.rd.reqs"] == Value("libvirt", "block.vda.rd.reqs", 3, "count")
    assert values["block.vda.rd.bytes"] == Value("libvirt", "block.vda.rd.bytes", 12288, "B")
    assert values["block.vda.rd.times"].unit == "ns"
    assert values["balloon.rss"] == Value("libvirt", "balloon.rss", 317444, "KiB")
    # Neither capacities, paths, states of vCPUs, nor counts of devices.
    assert not [m for m in values if m.endswith(("capacity", "physical", ".state", ".count"))]
    assert not [m for m in values if m.startswith(("block.0.", "net.", "vm."))]


def test_libvirt_indexed_devices_named_and_kvm_counters_kept() -> None:
    stats = {
        "net.count": 1,
        "net.0.name": "vnet7",
        "net.0.rx.bytes": 1000,
        "net.0.tx.pkts": 3,
        "block.count": 2,
        "block.0.name": "sda",
        "block.1.name": "vdb",
        "block.1.wr.reqs": 5,
        "vcpu.0.exits": 1234,
        "vm.remote_tlb_flush": 9,
    }
    values = by_metric(parse_domain_stats(stats, "libvirt.g1"))
    assert values["net.vnet7.rx.bytes"] == Value("libvirt.g1", "net.vnet7.rx.bytes", 1000, "B")
    assert values["net.vnet7.tx.pkts"].unit == "count"
    assert values["block.vdb.wr.reqs"].value == 5
    assert values["vcpu.0.exits"].unit == "count"
    assert "vm.remote_tlb_flush" in values


@pytest.fixture
def testconn() -> libvirt.virConnect:
    conn = libvirt.open("test:///default")
    yield conn
    conn.close()


TEST_DOMAIN = (
    "<domain type='test'><name>{}</name><memory>1024</memory><os><type>hvm</type></os></domain>"
)


@pytest.mark.libvirt_test
def test_libvirt_sampler_on_the_test_driver(testconn: libvirt.virConnect) -> None:
    one = testconn.createXML(TEST_DOMAIN.format("sampler-a"), 0)
    two = testconn.createXML(TEST_DOMAIN.format("sampler-b"), 0)
    sampler = LibvirtSampler(testconn, {"libvirt.a": one, "libvirt.b": two})
    assert sampler.groups & libvirt.VIR_DOMAIN_STATS_VM
    values = sampler.sample()
    # No KVM counters came back (as under TCG): the VM group is not asked for again.
    assert sampler.groups == STATS_GROUPS & ~libvirt.VIR_DOMAIN_STATS_VM
    # The test driver has only the state group; without ENFORCE_STATS it answers with that.
    assert {(v.source, v.metric, v.value) for v in values} >= {
        ("libvirt.a", "state.state", libvirt.VIR_DOMAIN_RUNNING),
        ("libvirt.b", "state.state", libvirt.VIR_DOMAIN_RUNNING),
    }
    with pytest.raises(libvirt.libvirtError, match="not supported"):
        testconn.domainListGetStats(
            [one], STATS_GROUPS, libvirt.VIR_CONNECT_GET_ALL_DOMAINS_STATS_ENFORCE_STATS
        )
    two.suspend()
    paused = by_metric([v for v in sampler.sample() if v.source == "libvirt.b"])
    assert paused["state.state"].value == libvirt.VIR_DOMAIN_PAUSED
    two.destroy()
    with pytest.raises(VbenchError, match="no stats for guest sampler-b"):
        sampler.sample()
    one.destroy()


# -- guest ---------------------------------------------------------------------------------------


def test_guest_cpustats_recorded() -> None:
    reply = json.loads((DATA / "guest-agent" / "cpustats-1vcpu.json").read_text())
    values = by_metric(parse_cpustats(reply))
    # user 190 + system 3720 + softirq 30 (ms)
    assert values["cpu.busy"] == Value("guest", "cpu.busy", 3940, "ms")
    assert values["cpu0.busy"].value == 3940
    assert values["cpu.system"].value == 3720
    two = parse_cpustats([{**reply[0], "cpu": 1, "idle": 50, "iowait": 5}, reply[0]])
    assert by_metric(two)["cpu.busy"].value == 2 * 3940
    assert by_metric(two)["cpu.idle"].value == 55
    with pytest.raises(VbenchError, match="expected a list"):
        parse_cpustats({"error": "x"})


def test_guest_diskstats_recorded() -> None:
    reply = json.loads((DATA / "guest-agent" / "diskstats-virtio.json").read_text())
    extra = [
        {"name": "ram0", "stats": {"read-ios": 1}},
        {"name": "loop0", "stats": {"read-ios": 1}},
        {"name": "vdb", "stats": {"write-ios": 7}},  # qemu-ga leaves out fields it lacks
    ]
    values = by_metric(parse_diskstats(reply + extra))
    assert values["disk.vda.rd.reqs"] == Value("guest", "disk.vda.rd.reqs", 3, "count")
    assert values["disk.vda.rd.bytes"] == Value("guest", "disk.vda.rd.bytes", 24 * 512, "B")
    assert values["disk.vdb.wr.reqs"].value == 7
    assert values["disk.vdb.rd.reqs"].value == 0
    assert not [m for m in values if m.startswith(("disk.ram", "disk.loop"))]


@pytest.mark.libvirt_test
def test_guest_sampler_fails_one_tick_on_a_driver_without_agent(
    testconn: libvirt.virConnect,
) -> None:
    sampler = GuestSampler(open_agent(testconn.lookupByName("test"), AgentChannel()))
    with pytest.raises(VbenchError, match="guest-get-cpustats"):
        sampler.sample()


# -- the sampling thread -------------------------------------------------------------------------


@pytest.mark.libvirt_test
def test_sampling_thread_ticks_first_and_last_and_survives_a_failing_sampler(
    testconn: libvirt.virConnect,
) -> None:
    batches: list[list[Reading]] = []
    threads: set[str] = set()

    def sink(batch: list[Reading]) -> None:
        threads.add(threading.current_thread().name)
        batches.append(batch)

    host = HostSampler()
    failing = GuestSampler(open_agent(testconn.lookupByName("test"), AgentChannel()))
    sampling = Sampling([host, failing], sink, interval_s=0.1)
    sampling.start()
    assert len(batches) == 1  # the baseline is read before start() returns
    assert batches[0][0].t_s < 0.1
    time.sleep(0.55)
    report = sampling.stop()
    assert threads == {"vbench-sampler"}
    # Ticks at 0, 0.1 ... 0.5 and the last; a loaded host skips some, never adds any.
    assert 3 <= report.ticks <= 8
    assert report.ticks == len(batches)
    assert report.readings == sum(len(b) for b in batches)
    assert "guest-get-cpustats" in report.errors["guest"]
    # Ticks keep to the 100 ms schedule on the monotonic clock (none early), the last by stop().
    starts = [b[0].t_s for b in batches]
    assert starts == sorted(starts)
    assert all(b - a > 0.07 for a, b in itertools.pairwise(starts[:-1]))
    assert 0.55 <= report.wall_s < 2.5
    assert 0 < report.thread_cpu_s < report.wall_s


def test_sampler_every_nth_tick_but_first_and_last() -> None:
    class Counting:
        name = "counting"
        every = 3

        def __init__(self) -> None:
            self.calls = 0

        def sample(self) -> list[Value]:
            self.calls += 1
            return [Value("test", "calls", self.calls, "count")]

    counting = Counting()  # a stand-in for a slow sampler: only its call pattern matters here
    seen: list[float] = []
    with Sampling([counting], lambda b: seen.extend(r.t_s for r in b), interval_s=0.05) as s:
        time.sleep(0.5)
    # ~11 ticks: reads at 0, 3, 6, 9 and the last; fewer ticks if the host is loaded.
    assert 2 <= counting.calls <= 6
    assert counting.calls < s.report.ticks
    assert seen[0] < 0.05 and len(seen) == counting.calls


def test_sink_failure_is_reported_not_raised() -> None:
    def sink(batch: list[Reading]) -> None:
        raise OSError(28, "No space left on device")

    with Sampling([HostSampler()], sink, interval_s=0.05) as s:
        time.sleep(0.06)
    assert "No space left" in s.report.errors["sink"]
    assert s.report.readings == 0


def test_interval_must_be_positive() -> None:
    with pytest.raises(ValueError, match="> 0"):
        Sampling([], lambda b: None, interval_s=0)


UDEV_PROBE = """
import json, os, sys
from pathlib import Path
from vbench.host.paths import HostPaths
from vbench.samplers.host import HostSampler, block_device_from_devnum
part = block_device_from_devnum(os.makedev(259, 2))
disk = block_device_from_devnum(os.makedev(259, 0))
none = block_device_from_devnum(os.makedev(8, 99))
values = HostSampler(HostPaths(proc_root=Path(sys.argv[1])), disk=part).sample()
print(json.dumps({
    "part": part and part.name, "disk": disk and disk.name, "none": none,
    "values": {v.metric: v.value for v in values},
}))
"""


@needs_umockdev
def test_partition_walked_to_its_disk_under_umockdev(tmp_path: Path) -> None:
    argv = umockdev_argv_for(DATA / "umockdev" / "nvme-partition.umockdev")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}
    proc = subprocess.run(
        [*argv, sys.executable, "-c", UDEV_PROBE, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["part"] == "nvme0n1"  # the partition's I/O is counted on its disk
    assert out["disk"] == "nvme0n1"
    assert out["none"] is None
    assert out["values"]["disk.nvme0n1.rd.reqs"] == 254040
    assert out["values"]["disk.nvme0n1.wr.bytes"] == 9774800 * 512


@pytest.mark.libvirt_test
def test_the_sets_a_case_runs_with(testconn: libvirt.virConnect, tmp_path: Path) -> None:
    agent = open_agent(testconn.lookupByName("test"), AgentChannel())
    assert [s.name for s in guest_samplers(testconn, agent, tmp_path)] == [
        "libvirt",
        "host",
        "guest",
    ]
    assert [s.name for s in host_samplers(tmp_path, net_ifaces=["lo"])] == ["host"]
    values = host_samplers(tmp_path, net_ifaces=["lo"])[0].sample()
    assert {"cpu.busy_s", "net.lo.rx.bytes"} <= {v.metric for v in values}


# -- NICs inside another network namespace ----------------------------------------------------

NET_DEV = """Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:    1000      10    0    0    0     0          0         0     1000      10    0    0    0     0       0          0
vbt1a2b3c4d0: 5206188   3620    0    7    0     0          0         0 12010742    8001    0    2    0     0       0          0
"""  # noqa: E501 (a recorded /proc/<pid>/net/dev, as the kernel prints it)


def test_proc_net_dev_parsed_by_column() -> None:
    stats = parse_proc_net_dev(NET_DEV)
    assert set(stats) == {"lo", "vbt1a2b3c4d0"}
    assert stats["vbt1a2b3c4d0"] == {
        "rx_bytes": 5206188,
        "rx_packets": 3620,
        "rx_dropped": 7,
        "tx_bytes": 12010742,
        "tx_packets": 8001,
        "tx_dropped": 2,
    }


def test_namespace_nic_sampler_reads_a_process_view_and_counts_loopback_traffic() -> None:
    """Through /proc/<pid>/net/dev of a process (here this one, in the root namespace): loopback
    counters grow by at least what was sent to 127.0.0.1."""
    import socket

    sampler = NamespaceNicSampler(os.getpid(), ["lo", "no-such-nic"])
    before = {v.metric: v.value for v in sampler.sample()}
    assert {m for m in before} == {f"net.lo.{m}" for _, m, _ in NET_COUNTERS}
    with (
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rx,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx,
    ):
        rx.bind(("127.0.0.1", 0))
        for _ in range(10):
            tx.sendto(b"x" * 1000, rx.getsockname())
    after = {v.metric: v.value for v in sampler.sample()}
    assert after["net.lo.tx.bytes"] - before["net.lo.tx.bytes"] >= 10_000
    assert after["net.lo.rx.pkts"] - before["net.lo.rx.pkts"] >= 10
    assert NamespaceNicSampler(2**22 + 7, ["lo"]).sample() == []  # no such process: no values
