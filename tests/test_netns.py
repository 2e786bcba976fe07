"""The run's network (vbench/host/netns.py): names and addresses, then the real thing.

The second half creates real network namespaces, taps and servers (root and iproute2 needed; no
guest): everything is named after a per-test run id and checked gone afterwards.  The namespace
and the taps are host changes in a real journal (vbench.host.changes) in the test's directory.
Traffic only flows inside the namespaces the tests create.
"""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import qemu_reachable_dir

from vbench.errors import HostError
from vbench.host import netns
from vbench.host.changes import JOURNAL, ChangeJournal, JournalBusy, leftover_journals
from vbench.host.netns import (
    LINK_PREFIXLEN,
    MAX_GUESTS,
    GuestLink,
    RunNetwork,
    find_leftovers,
    guest_mac,
    link_addresses,
    list_namespaces,
    namespace_name,
    parse_proc_net,
    remove_leftover,
    tap_name,
)
from vbench.virt.guests import RunScratch, live_run_ids

LINK_LOCAL = ipaddress.IPv4Network("169.254.0.0/16")

# -- pure: names and addresses ------------------------------------------------------------------


def test_first_guest_gets_the_first_usable_pair() -> None:
    host, guest = link_addresses(0)
    assert (str(host), str(guest)) == ("169.254.1.1", "169.254.1.2")
    assert str(link_addresses(1)[0]) == "169.254.1.5"


@pytest.mark.parametrize("index", [0, 1, 63, 64, 1000, MAX_GUESTS - 1])
def test_each_pair_is_one_link_local_slash30_outside_the_reserved_24s(index: int) -> None:
    host, guest = link_addresses(index)
    net = ipaddress.IPv4Network(f"{host}/{LINK_PREFIXLEN}", strict=False)
    assert guest in net and host in net
    assert host not in (net.network_address, net.broadcast_address)
    assert guest not in (net.network_address, net.broadcast_address)
    assert net.subnet_of(LINK_LOCAL)
    # RFC 3927 reserves 169.254.0.0/24 and 169.254.255.0/24
    assert net.network_address.packed[2] not in (0, 255)


def test_pairs_never_overlap() -> None:
    nets = {
        ipaddress.IPv4Network(f"{link_addresses(i)[0]}/{LINK_PREFIXLEN}", strict=False)
        for i in range(MAX_GUESTS)
    }
    assert len(nets) == MAX_GUESTS


@pytest.mark.parametrize("index", [-1, MAX_GUESTS])
def test_out_of_range_guest_index(index: int) -> None:
    with pytest.raises(ValueError, match="out of range"):
        link_addresses(index)


def test_tap_names_fit_ifnamsiz_and_differ_per_run_and_guest() -> None:
    run = "quick-20261201-103800-ab12"
    names = {tap_name(run, i) for i in range(100)} | {tap_name(run + "x", 0)}
    assert len(names) == 101
    assert all(len(n) <= 15 and n.startswith("vbt") for n in names)
    assert len(tap_name(run, 9999)) == 15


def test_mac_is_locally_administered_unicast_and_per_guest() -> None:
    macs = {guest_mac("r", i) for i in range(300)}
    assert len(macs) == 300
    for mac in macs:
        first = int(mac.split(":")[0], 16)
        assert first & 0b10 and not first & 0b1


def test_kernel_args_are_what_init_reads() -> None:
    link = GuestLink.for_guest("r1", 2)
    assert link.kernel_args == f"vbench.ip=169.254.1.10/30 vbench.mac={link.mac}"


@pytest.mark.parametrize("run_id", ["", "a/b", "../x", "a b", "-x"])
def test_bad_run_id_is_refused(run_id: str) -> None:
    with pytest.raises(ValueError, match="is not a run id"):
        namespace_name(run_id)


def test_parse_proc_net_tcp_and_tcp6() -> None:
    # Lines as the kernel writes them (captured from /proc/<iperf3 -s pid>/net/tcp and tcp6).
    tcp = (
        "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  "
        "timeout inode\n"
        "   0: 0101FEA9:1451 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        "
        "0 123456 1 0000000000000000 100 0 0 10 0\n"
    )
    tcp6 = (
        "  sl  local_address                         remote_address                        st "
        "tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
        "   0: 00000000000000000000000000000000:1452 00000000000000000000000000000000:0000 0A "
        "00000000:00000000 00:00000000 00000000     0        0 654321 1 0000000000000000 100 0 0 "
        "10 0\n"
    )
    assert parse_proc_net(tcp) == [("123456", ipaddress.IPv4Address("169.254.1.1"), 5201, "0A")]
    assert parse_proc_net(tcp6) == [("654321", ipaddress.IPv6Address("::"), 5202, "0A")]


def test_parse_proc_net_of_this_process_agrees_with_a_socket_it_opened() -> None:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        assert ("tcp", ipaddress.IPv4Address("127.0.0.1"), port) in netns.bound_sockets(os.getpid())


# -- real namespaces, taps and servers ----------------------------------------------------------

needs_root = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("ip") is None,
    reason="network namespaces need root and iproute2 (run the suite as root)",
)


def _run_id() -> str:
    return f"t-{uuid.uuid4().hex[:10]}"


def _taps_of(run_id: str) -> list[str]:
    prefix = "vbt" + netns.run_hash(run_id)
    out = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
    names = [line.split(":")[1].strip().split("@")[0] for line in out.splitlines()]
    return [n for n in names if n.startswith(prefix)]


def _gone(run_id: str, pids: list[int] = []) -> None:  # noqa: B006 - read only
    assert namespace_name(run_id) not in list_namespaces()
    assert _taps_of(run_id) == []
    for pid in pids:
        assert not Path(f"/proc/{pid}").exists() or netns._zombie(pid), f"pid {pid} still runs"


@pytest.fixture
def run_id() -> Iterator[str]:
    rid = _run_id()
    yield rid
    # Never leave anything behind, even when the test failed half-way.
    for left in find_leftovers(set()):
        if left.run_id == rid:
            remove_leftover(left)


@pytest.fixture
def journal(tmp_path: Path) -> ChangeJournal:
    return ChangeJournal(tmp_path / "run")


def _states(journal: ChangeJournal) -> list[tuple[str, str, str]]:
    """(kind, target, state) of every entry of the journal as it is on disk."""
    doc = json.loads(journal.path.read_text())
    return [(e["kind"], e["target"], e["state"]) for e in doc["changes"]]


@needs_root
def test_network_lifecycle_leaves_nothing(run_id: str, journal: ChangeJournal) -> None:
    with RunNetwork(run_id, journal) as net:
        link = net.add_guest(0)
        assert _taps_of(run_id) == [link.tap]
        # the tap waits in the root namespace, down and without an address, for QEMU
        show = subprocess.run(["ip", "-j", "addr", "show", "dev", link.tap], capture_output=True)
        assert b'"addr_info":[]' in show.stdout
        net.attach(link)
        inside = subprocess.run(
            ["ip", "-n", net.namespace, "-o", "addr", "show", "dev", link.tap],
            capture_output=True,
            text=True,
        ).stdout
        assert f"{link.host_address}/30" in inside
        server = net.start_server(["iperf3", "-s", "-B", str(link.host_address), "-p", "5201"])
        assert ("tcp", link.host_address, 5201) in server.wait_bound(1)
        pids = [server.pid]
        # a second guest (density): its own /30 on its own tap, routed beside the first
        second = net.add_guest(1)
        net.attach(second)
        routes = subprocess.run(
            ["ip", "-n", net.namespace, "-o", "route", "show"], capture_output=True, text=True
        ).stdout
        for lk in (link, second):
            subnet = ipaddress.IPv4Network(f"{lk.host_address}/{LINK_PREFIXLEN}", strict=False)
            assert f"{subnet} dev {lk.tap} " in routes, routes
    _gone(run_id, pids)


@needs_root
def test_every_host_change_is_in_the_journal_before_it_is_made(run_id: str, tmp_path: Path) -> None:
    ns = namespace_name(run_id)
    seen: list[tuple[list[tuple[str, str, str]], bool, bool]] = []

    class Watched(ChangeJournal):
        """The real journal; what exists on the host each time it is written."""

        def _save(self) -> None:
            super()._save()
            seen.append((_states(self), ns in list_namespaces(), bool(_taps_of(run_id))))

    journal = Watched(tmp_path / "run")
    with RunNetwork(run_id, journal) as net, net.guest(0) as link:
        net.attach(link)
        with net.server(["iperf3", "-s", "-B", str(link.host_address)]):
            pass
    tap = f"{link.tap} netns {ns}"
    # each change planned (nothing made yet), made, then undone newest first
    assert [(states[-1][0], states[-1][2]) for states, _, _ in seen[:4]] == [
        ("netns", "planned"),
        ("netns", "made"),
        ("tap", "planned"),
        ("tap", "made"),
    ]
    assert seen[0][1:] == (False, False)  # recorded before the namespace existed
    assert seen[2][1:] == (True, False)  # ... and the tap
    assert [s for s, _, _ in seen[4:]] == [
        [("netns", ns, "made"), ("tap", tap, "restored")],
        [("netns", ns, "restored"), ("tap", tap, "restored")],
    ]
    assert journal.pending() == []
    assert "server" not in journal.path.read_text()  # processes in the namespace: not changes
    _gone(run_id)


@needs_root
def test_an_exception_inside_leaves_nothing(run_id: str, journal: ChangeJournal) -> None:
    pids: list[int] = []
    with pytest.raises(RuntimeError, match="boom"), RunNetwork(run_id, journal) as net:
        link = net.add_guest(0)
        net.attach(link)
        net.add_guest(1)  # a second tap never moved: still in the root namespace
        pids.append(net.start_server(["sockperf", "server", "-i", str(link.host_address)]).pid)
        raise RuntimeError("boom")
    _gone(run_id, pids)
    assert journal.pending() == []


@needs_root
def test_ctrl_c_inside_leaves_nothing(run_id: str, journal: ChangeJournal) -> None:
    pids: list[int] = []
    with (
        pytest.raises(KeyboardInterrupt),
        RunNetwork(run_id, journal) as net,
        net.guest(0) as link,
    ):
        net.attach(link)
        with net.server(["iperf3", "-s", "-B", str(link.host_address)]) as srv:
            pids.append(srv.pid)
            raise KeyboardInterrupt
    _gone(run_id, pids)


@needs_root
def test_a_server_that_cannot_bind_is_one_line_and_leaves_nothing(
    run_id: str, journal: ChangeJournal
) -> None:
    with RunNetwork(run_id, journal) as net:
        # 169.254.1.1 is not in the namespace until a tap is attached: bind fails
        with pytest.raises(HostError, match=r"peer server .* exited"):
            net.start_server(["iperf3", "-s", "-B", "169.254.1.1"])
        assert net._servers == []
    _gone(run_id)


@needs_root
def test_an_existing_namespace_is_refused(run_id: str, tmp_path: Path) -> None:
    other = ChangeJournal(tmp_path / "other")
    with (
        RunNetwork(run_id, ChangeJournal(tmp_path / "run")),
        pytest.raises(HostError, match="already exists"),
    ):
        RunNetwork(run_id, other).create()
    assert not other.path.exists()  # refused before anything was recorded (not its to undo)
    _gone(run_id)


@needs_root
def test_an_existing_tap_is_refused_and_left_alone(run_id: str, journal: ChangeJournal) -> None:
    name = tap_name(run_id, 0)
    subprocess.run(["ip", "tuntap", "add", name, "mode", "tap"], check=True)
    try:
        with RunNetwork(run_id, journal) as net, pytest.raises(HostError, match="exists already"):
            net.add_guest(0)
        assert _taps_of(run_id) == [name]  # not recorded, so not undone
        assert [k for k, _, _ in _states(journal)] == ["netns"]
    finally:
        subprocess.run(["ip", "link", "del", name], check=True)


@needs_root
def test_guest_context_deletes_its_tap_but_keeps_the_namespace(
    run_id: str, journal: ChangeJournal
) -> None:
    with RunNetwork(run_id, journal) as net:
        with net.guest(0) as link:
            net.attach(link)
        assert _taps_of(run_id) == []
        assert net.namespace in list_namespaces()
        with net.guest(0) as again:  # the next trial reuses the index
            assert again.tap == link.tap
    _gone(run_id)


_KILLED_RUN = """
import sys, time
from pathlib import Path
from vbench.host.changes import ChangeJournal
from vbench.host.netns import RunNetwork
net = RunNetwork(sys.argv[1], ChangeJournal(Path(sys.argv[2]))); net.create()
a = net.add_guest(0); net.attach(a)
net.add_guest(1)
net.start_server(["iperf3", "-s", "-B", str(a.host_address)])
net.start_server(["sockperf", "server", "-i", str(a.host_address)])
print("up", flush=True)
time.sleep(600)
"""


def _start_and_kill_a_run(run_id: str, run_dir: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}
    proc = subprocess.Popen(
        [sys.executable, "-c", _KILLED_RUN, run_id, str(run_dir)], stdout=subprocess.PIPE, env=env
    )
    assert proc.stdout is not None
    assert proc.stdout.readline() == b"up\n"
    proc.send_signal(signal.SIGKILL)
    proc.wait()


_INTERRUPTED_RUN = """
import signal, sys, time
from pathlib import Path
from vbench.host.changes import ChangeJournal
from vbench.host.netns import RunNetwork

def term(*_):  # as the runner does: SIGTERM is handled like Ctrl-C
    raise KeyboardInterrupt

signal.signal(signal.SIGTERM, term)
try:
    with RunNetwork(sys.argv[1], ChangeJournal(Path(sys.argv[2]))) as net:
        a = net.add_guest(0); net.attach(a)
        net.add_guest(1)
        net.start_server(["iperf3", "-s", "-B", str(a.host_address)])
        net.start_server(["sockperf", "server", "-i", str(a.host_address)])
        print("up", flush=True)
        time.sleep(600)
except KeyboardInterrupt:
    sys.exit(130)
"""


@needs_root
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_and_ctrl_c_leave_nothing(run_id: str, sig: signal.Signals, tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}
    proc = subprocess.Popen(
        [sys.executable, "-c", _INTERRUPTED_RUN, run_id, str(tmp_path / "run")],
        stdout=subprocess.PIPE,
        env=env,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline() == b"up\n"
    servers = netns._namespace_pids(namespace_name(run_id))
    assert len(servers) == 2
    proc.send_signal(sig)
    assert proc.wait(30) == 130
    _gone(run_id, servers)
    assert ChangeJournal.load(tmp_path / "run").pending() == []


@needs_root
def test_cleanup_removes_what_a_killed_run_left(run_id: str, tmp_path: Path) -> None:
    """By name, as for a run whose journal `vbench cleanup` does not see (another --output)."""
    _start_and_kill_a_run(run_id, tmp_path / "run")
    ns = namespace_name(run_id)
    server_pids = netns._namespace_pids(ns)
    assert len(server_pids) == 2  # the servers outlive their run
    assert len(_taps_of(run_id)) == 1  # tap 1 in the root namespace; tap 0 inside ns

    mine = [lo for lo in find_leftovers(set()) if lo.run_id == run_id]
    assert sorted((lo.kind, lo.name) for lo in mine) == [
        ("namespace", ns),
        ("tap", tap_name(run_id, 1)),
    ]
    for left in mine:
        remove_leftover(left)
    time.sleep(0.1)
    _gone(run_id, server_pids)


@needs_root
def test_a_killed_runs_journal_undoes_its_network(run_id: str, tmp_path: Path) -> None:
    """What `vbench cleanup` replays: the journal the killed run left, newest first."""
    _start_and_kill_a_run(run_id, tmp_path / "run")
    ns = namespace_name(run_id)
    server_pids = netns._namespace_pids(ns)
    assert len(server_pids) == 2
    journals, problems = leftover_journals(tmp_path)
    assert problems == []
    [journal] = journals
    assert [(c.kind, c.target) for c in journal.pending()] == [
        ("netns", ns),
        ("tap", f"{tap_name(run_id, 0)} netns {ns}"),
        ("tap", f"{tap_name(run_id, 1)} netns {ns}"),
    ]
    assert journal.restore() == []
    time.sleep(0.1)
    _gone(run_id, server_pids)
    assert {state for _, _, state in _states(journal)} == {"restored"}


_LIVE_RUN = _KILLED_RUN.replace("time.sleep(600)", "sys.stdin.read()")


@needs_root
def test_a_live_runs_network_is_never_undone_from_a_journal(run_id: str, tmp_path: Path) -> None:
    """Even from a journal whose lock is out of sight (a copy): the namespace's owner lives."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}
    proc = subprocess.Popen(
        [sys.executable, "-c", _LIVE_RUN, run_id, str(tmp_path / "run")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=env,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == b"up\n"
        with pytest.raises(JournalBusy):  # the run holds its journal's lock
            ChangeJournal.load(tmp_path / "run")
        (tmp_path / "copy").mkdir()
        shutil.copy(tmp_path / "run" / JOURNAL, tmp_path / "copy" / JOURNAL)
        problems = ChangeJournal.load(tmp_path / "copy").restore()
        assert len(problems) == 3
        assert all(f"still runs (pid {proc.pid})" in p for p in problems), problems
        assert namespace_name(run_id) in list_namespaces()
        assert len(_taps_of(run_id)) == 1  # tap 1, still in the root namespace
    finally:
        proc.kill()
        proc.wait()
    assert ChangeJournal.load(tmp_path / "run").restore() == []
    _gone(run_id)


@needs_root
def test_cleanup_never_touches_a_live_run(run_id: str, journal: ChangeJournal) -> None:
    with (
        qemu_reachable_dir("vbench-netns-") as root,
        RunScratch(run_id, root=root),
        RunNetwork(run_id, journal) as net,
    ):
        net.add_guest(0)
        live = live_run_ids(root)
        assert run_id in live
        assert [lo for lo in find_leftovers(live) if lo.run_id == run_id] == []
        # a cleanup that cannot see the lock (another VBENCH_SCRATCH) still spares it: its owner
        # process lives (seen: a test's cleanup took a concurrent run's namespace between trials)
        assert [lo for lo in find_leftovers(set()) if lo.run_id == run_id] == []
    _gone(run_id)


@needs_root
def test_cleanup_spares_a_vbench_named_namespace_holding_foreign_devices(run_id: str) -> None:
    ns = namespace_name(run_id)
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        subprocess.run(["ip", "-n", ns, "tuntap", "add", "foreign0", "mode", "tap"], check=True)
        assert ns not in [lo.name for lo in find_leftovers(set())]
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=True)


@needs_root
def test_cleanup_spares_a_foreign_tap_named_like_ours(run_id: str) -> None:
    # a tun (layer 3, not a tap) with a tap-like name is not ours
    name = tap_name(run_id, 7)
    subprocess.run(["ip", "tuntap", "add", name, "mode", "tun"], check=True)
    try:
        assert name not in [lo.name for lo in find_leftovers(set())]
    finally:
        subprocess.run(["ip", "link", "del", name], check=True)


@needs_root
def test_vbench_cleanup_lists_a_killed_runs_network_but_not_a_live_ones(
    run_id: str, tmp_path: Path
) -> None:
    """The real CLI, with --dry-run: a real cleanup here could take other people's leftovers."""
    live_id = _run_id()
    _start_and_kill_a_run(run_id, tmp_path / "killed")
    with (
        qemu_reachable_dir("vbench-netns-") as root,
        RunScratch(live_id, root=root),
        RunNetwork(live_id, ChangeJournal(tmp_path / "live")) as live_net,
    ):
        live_net.add_guest(0)
        env = {
            **os.environ,
            "PYTHONPATH": str(Path(__file__).parents[1]),
            "VBENCH_SCRATCH": str(root),
        }
        proc = subprocess.run(
            [sys.executable, "-m", "vbench", "cleanup", "--dry-run"],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )
        assert proc.returncode == 0, proc.stderr
        said = " ".join(proc.stdout.split() + proc.stderr.split())
        assert f"would remove namespace {namespace_name(run_id)} (run {run_id})" in said
        assert f"would remove tap {tap_name(run_id, 1)} (run {run_id})" in said
        assert live_id not in said
        assert live_net.namespace in list_namespaces()  # a dry run removes nothing
    assert namespace_name(run_id) in list_namespaces()  # the fixture removes it


@needs_root
def test_a_servers_log_is_kept_and_its_tail_explains_a_failure(
    run_id: str, tmp_path: Path, journal: ChangeJournal
) -> None:
    log = tmp_path / "server.log"
    with RunNetwork(run_id, journal) as net, pytest.raises(HostError) as err:
        net.start_server(["iperf3", "-s", "-B", "169.254.1.1"], log=log)
    assert "Cannot assign requested address" in log.read_text()
    assert "Cannot assign requested address" in str(err.value)
