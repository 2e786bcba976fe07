"""The run's own network: a network namespace, a tap per guest, and the peer servers inside it.

A guest's test NIC is a tap device that vbench creates (down, no address) just before the guest
starts; QEMU opens it (libvirt's `<interface type='ethernet'>` with `managed='no'`), and once the
guest runs vbench moves it into the namespace `vbench-<run-id>`, where it gets its link-local
address and the peer servers (iperf3, sockperf) run.  A tap opened by QEMU keeps working after the
move.  Nothing is added to the host's own networks: no bridge, no route, no address in the root
namespace, and the only traffic is between a guest and its namespace.

Addresses are link-local (169.254.0.0/16, RFC 3927), one /30 per guest: `.1` the host end (in the
namespace), `.2` the guest end (set by the microguest's /init from `vbench.ip=` on the kernel
command line, on the NIC whose MAC is `vbench.mac=`).  The first and last /24 are left out, as
RFC 3927 reserves them.

The namespace and the taps are host changes in the run's journal (vbench.host.changes, kinds
`netns` and `tap`): recorded before they are made, and the journal makes and undoes them through
`set_journalled`.  Everything is removed on every way out (`RunNetwork` is a context manager;
SIGTERM arrives as KeyboardInterrupt, like Ctrl-C).  What a `kill -9` leaves, `vbench cleanup`
undoes from the journal; for runs whose journal it does not see, `find_leftovers` finds namespaces
named `vbench-<run-id>` and taps named `vbt<hash><n>` whose run does not hold its lock.

Every command goes through `_run` (argv lists, never a shell); servers through `ServerProcess`.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import json
import os
import re
import shutil
import signal
import tempfile
import time
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from vbench import command
from vbench.errors import CommandFailed, HostError
from vbench.host.changes import ABSENT, PRESENT, ChangeJournal, HostChange

NETNS_PREFIX = "vbench-"
TAP_PREFIX = "vbt"
# ifalias of every tap vbench makes: says which run it belongs to (survives the move).
TAP_ALIAS_PREFIX = "vbench-run:"
LINK_PREFIXLEN = 30
# <namespace>.pid: the process that owns a run's namespace.  `vbench cleanup` skips a namespace
# whose owner lives, even when that run's scratch lock is out of its sight (another VBENCH_SCRATCH).
OWNER_DIR = Path("/run/vbench/netns")
# 169.254.1.0 - 169.254.254.255: the link-local range without RFC 3927's reserved first and last /24
_FIRST = int(ipaddress.IPv4Address("169.254.1.0"))
_LAST = int(ipaddress.IPv4Address("169.254.254.255"))
MAX_GUESTS = (_LAST - _FIRST + 1) // 4
# Locally administered unicast OUI-like prefix: 02 (local) 76:62 ("vb")
_MAC_PREFIX = "02:76:62"
_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,150}$")
_TAP_NAME = re.compile(rf"^{TAP_PREFIX}([0-9a-f]{{8}})(\d{{1,4}})$")
_COMMAND_TIMEOUT_S = 30.0
_SERVER_STOP_S = 5.0


# --- pure parts ---------------------------------------------------------------------------------


def namespace_name(run_id: str) -> str:
    """The network namespace of a run: `vbench-<run-id>`."""
    if not _RUN_ID.match(run_id):
        raise ValueError(f"{run_id!r} is not a run id (letters, digits, '.', '_', '-')")
    return NETNS_PREFIX + run_id


def run_hash(run_id: str) -> str:
    """8 hex digits naming a run in its taps (interface names are at most 15 characters)."""
    return hashlib.sha256(run_id.encode()).hexdigest()[:8]


def tap_name(run_id: str, index: int) -> str:
    """The tap of guest `index` in run `run_id`, e.g. `vbt1a2b3c4d0` (<= 15 characters)."""
    if not 0 <= index < min(MAX_GUESTS, 10_000):
        raise ValueError(f"guest index {index} out of range")
    return f"{TAP_PREFIX}{run_hash(run_id)}{index}"


def guest_mac(run_id: str, index: int) -> str:
    """A locally administered unicast MAC for guest `index`'s test NIC."""
    if not 0 <= index < MAX_GUESTS:
        raise ValueError(f"guest index {index} out of range")
    h = run_hash(run_id)
    return f"{_MAC_PREFIX}:{h[:2]}:{index >> 8:02x}:{index & 0xFF:02x}"


def link_addresses(index: int) -> tuple[ipaddress.IPv4Address, ipaddress.IPv4Address]:
    """(host end, guest end) of guest `index`'s /30: 169.254.1.1 and .2 for the first guest."""
    if not 0 <= index < MAX_GUESTS:
        raise ValueError(f"guest index {index} out of range (at most {MAX_GUESTS} guests)")
    base = _FIRST + 4 * index
    return ipaddress.IPv4Address(base + 1), ipaddress.IPv4Address(base + 2)


@dataclass(frozen=True)
class GuestLink:
    """One guest's test link: the host's tap and both ends' addresses."""

    run_id: str
    index: int
    tap: str
    mac: str
    host_address: ipaddress.IPv4Address  # in the run's namespace: where the servers listen
    guest_address: ipaddress.IPv4Address

    @classmethod
    def for_guest(cls, run_id: str, index: int) -> GuestLink:
        host, guest = link_addresses(index)
        return cls(run_id, index, tap_name(run_id, index), guest_mac(run_id, index), host, guest)

    @property
    def kernel_args(self) -> str:
        """What the microguest's /init reads from its kernel command line to set up the NIC."""
        return f"vbench.ip={self.guest_address}/{LINK_PREFIXLEN} vbench.mac={self.mac}"


# --- commands -----------------------------------------------------------------------------------


def _ip() -> str:
    found = shutil.which("ip") or next(
        (p for p in ("/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip") if os.access(p, os.X_OK)), None
    )
    if found is None:
        raise HostError(
            "`ip` (iproute2) is not installed: `apt-get install iproute2` / `zypper install "
            "iproute2`"
        )
    return found


@dataclass(frozen=True)
class _Result:
    returncode: int
    stdout: str
    stderr: str


def _run(argv: list[str], *, check: bool = True) -> _Result:
    """Run one host command through the project's command runner, output as text."""
    result = command.run(argv, timeout_s=_COMMAND_TIMEOUT_S, check=check)
    return _Result(result.exitcode, result.out, result.err)


def _ip_json(*args: str) -> list[dict[str, Any]]:
    proc = _run([_ip(), "-j", *args])
    text = proc.stdout.strip()
    if not text:
        return []
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        raise HostError(f"`ip -j {' '.join(args)}` printed no JSON: {text[:200]}") from None
    return [d for d in data if isinstance(d, dict)] if isinstance(data, list) else []


def list_namespaces() -> list[str]:
    return [str(d["name"]) for d in _ip_json("netns", "list") if "name" in d]


def _links(namespace: str | None = None) -> list[dict[str, Any]]:
    args = ("-n", namespace, "-d", "link", "show") if namespace else ("-d", "link", "show")
    return _ip_json(*args)


def _namespace_pids(namespace: str) -> list[int]:
    proc = _run([_ip(), "netns", "pids", namespace], check=False)
    return [int(p) for p in proc.stdout.split() if p.isdigit()]


def _kill_all(pids: Collection[int], grace_s: float = _SERVER_STOP_S) -> None:
    """SIGTERM, then SIGKILL after `grace_s` whatever still runs."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        alive = []
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
                alive.append(pid)
        deadline = time.monotonic() + grace_s
        while alive and time.monotonic() < deadline:
            alive = [p for p in alive if Path(f"/proc/{p}").exists() and not _zombie(p)]
            time.sleep(0.05)
        if not alive:
            return
        pids = alive


def _zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rpartition(")")[2].split()[:1] == ["Z"]


# --- listening sockets of a process (readiness of a server) -------------------------------------


def _socket_inodes(pid: int) -> set[str]:
    inodes = set()
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return set()
    for fd in fds:
        with contextlib.suppress(OSError):
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    return inodes


IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def _proc_net_address(hex_text: str) -> IPAddress:
    # The kernel prints the address as 32-bit words in host order (little-endian on x86).
    raw = b"".join(bytes.fromhex(hex_text[i : i + 8])[::-1] for i in range(0, len(hex_text), 8))
    return ipaddress.IPv4Address(raw) if len(raw) == 4 else ipaddress.IPv6Address(raw)


def parse_proc_net(text: str) -> list[tuple[str, IPAddress, int, str]]:
    """Rows of /proc/<pid>/net/{tcp,udp,tcp6,udp6} as (inode, local address, port, state)."""
    rows = []
    for line in text.splitlines()[1:]:
        parts = line.split()
        if len(parts) < 10 or ":" not in parts[1]:
            continue
        addr_hex, port_hex = parts[1].split(":")
        rows.append((parts[9], _proc_net_address(addr_hex), int(port_hex, 16), parts[3]))
    return rows


_TCP_LISTEN = "0A"


def bound_sockets(pid: int) -> list[tuple[str, IPAddress, int]]:
    """(proto, address, port) of the sockets `pid` listens on (TCP) or is bound to (UDP)."""
    mine = _socket_inodes(pid)
    found: list[tuple[str, IPAddress, int]] = []
    for proto in ("tcp", "udp", "tcp6", "udp6"):
        try:
            text = Path(f"/proc/{pid}/net/{proto}").read_text()
        except OSError:
            continue
        for inode, addr, port, state in parse_proc_net(text):
            if inode not in mine or port == 0:
                continue
            if proto.startswith("tcp") and state != _TCP_LISTEN:
                continue
            found.append((proto, addr, port))
    return found


# --- servers ------------------------------------------------------------------------------------


class ServerProcess:
    """A peer server running inside the run's namespace (`ip netns exec` execs it: same pid)."""

    def __init__(self, namespace: str, argv: list[str], log: Path | None = None) -> None:
        self.argv = argv
        self.namespace = namespace
        self.log_path = log
        # Output to a file, not a pipe: iperf3 -s prints every test, and a full pipe would
        # block it.  Closed in stop().
        out: IO[bytes] = log.open("w+b") if log is not None else tempfile.TemporaryFile()  # noqa: SIM115
        self._out = out
        try:
            # its own session: the terminal's Ctrl-C reaches vbench, which stops it in order
            self._proc = command.spawn([_ip(), "netns", "exec", namespace, *argv], output=out)
        except BaseException:
            out.close()
            raise

    @property
    def pid(self) -> int:
        return self._proc.pid

    def running(self) -> bool:
        return self._proc.running()

    def output_tail(self, limit: int = 400) -> str:
        with contextlib.suppress(OSError, ValueError):
            self._out.flush()
            self._out.seek(0)
            text = self._out.read().decode(errors="replace")
            return " ".join(text.split())[-limit:]
        return ""

    def wait_bound(self, timeout_s: float) -> list[tuple[str, IPAddress, int]]:
        """Wait until the server listens (TCP) or is bound (UDP); HostError if it exits first."""
        deadline = time.monotonic() + timeout_s
        while True:
            if not self.running():
                raise HostError(
                    f"peer server `{' '.join(self.argv)}` in {self.namespace} exited with "
                    f"{self._proc.exitcode}: {self.output_tail() or 'no output'}"
                )
            found = bound_sockets(self.pid)
            if found:
                return found
            if time.monotonic() >= deadline:
                raise HostError(
                    f"peer server `{' '.join(self.argv)}` in {self.namespace} opened no socket "
                    f"within {timeout_s:g} s: {self.output_tail() or 'no output'}"
                )
            time.sleep(0.05)

    def stop(self) -> None:
        """SIGTERM, SIGKILL after a grace period; reaped either way."""
        try:
            self._proc.stop(_SERVER_STOP_S)
        finally:
            self._out.close()


# --- the run's network --------------------------------------------------------------------------


def namespace_change(namespace: str) -> HostChange:
    """The journal entry of a run's namespace (vbench.host.changes, kind `netns`)."""
    return HostChange("netns", namespace, ABSENT, PRESENT, f"create network namespace {namespace}")


def tap_change(link: GuestLink, namespace: str) -> HostChange:
    """The journal entry of a guest's tap (kind `tap`): made in the root namespace, moved into
    the run's namespace once the guest runs; deleting it is its undoing, wherever it is."""
    return HostChange(
        "tap",
        f"{link.tap} netns {namespace}",
        ABSENT,
        PRESENT,
        f"create tap {link.tap} (guest {link.index}), moved into {namespace} as "
        f"{link.host_address}/{LINK_PREFIXLEN} once its guest runs",
    )


@dataclass
class RunNetwork:
    """The network namespace of one run, its guests' taps and its peer servers.

    Use as a context manager around the run (inside the run's scratch lock, which tells
    `vbench cleanup` the run is alive)::

        with RunNetwork(run_id, journal) as net, net.guest(0) as link:
            ... DomainSpec(nic_tap=link.tap, nic_mac=link.mac, cmdline=... + link.kernel_args)
            with running_guest(conn, xml):
                net.attach(link)                      # once QEMU has opened the tap
                with net.server(["iperf3", "-s", "-B", str(link.host_address)]):
                    ...                               # the guest talks to link.host_address

    The namespace and each tap are host changes of the run's `ChangeJournal`: recorded before
    they are made (the journal makes them), undone (deleted) through it, replayed by
    `vbench cleanup` after a SIGKILL.  The peer servers are processes inside the namespace, not
    host changes: deleting the namespace ends them.
    """

    run_id: str
    journal: ChangeJournal
    namespace: str = field(init=False)
    _links: dict[str, GuestLink] = field(default_factory=dict, init=False)
    _servers: list[ServerProcess] = field(default_factory=list, init=False)
    _created: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        self.namespace = namespace_name(self.run_id)

    def __enter__(self) -> RunNetwork:
        self.create()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def create(self) -> None:
        _ip()
        if os.geteuid() != 0:
            raise HostError("the run's network namespace needs root (run vbench as root)")
        if self.namespace in list_namespaces():
            raise HostError(
                f"network namespace {self.namespace} already exists: another run with this id, "
                "or a leftover (`vbench cleanup` removes leftovers)"
            )
        # From here the namespace is ours: close() undoes whatever of it was made, even when a
        # Ctrl-C lands inside the making.
        self._created = True
        try:
            self.journal.apply(namespace_change(self.namespace))
        except BaseException:
            self.close()
            raise

    # --- guests' taps ---

    def add_guest(self, index: int) -> GuestLink:
        """Create guest `index`'s tap in the root namespace (down, no address) for QEMU to open."""
        if not self._created:
            raise RuntimeError("RunNetwork.add_guest before create()")
        link = GuestLink.for_guest(self.run_id, index)
        if link.tap in self._links:
            raise ValueError(f"guest {index} already has a tap ({link.tap})")
        if _link_exists(link.tap):  # not ours to record: undoing it would delete it
            raise HostError(
                f"cannot create the tap {link.tap}: it exists already (a leftover: "
                "`vbench cleanup` removes leftovers)"
            )
        # Registered first: a Ctrl-C landing inside the making still has close() undo it.
        self._links[link.tap] = link
        try:
            self.journal.apply(tap_change(link, self.namespace))
        except HostError:
            self.remove_guest(link)
            raise
        return link

    def attach(self, link: GuestLink) -> None:
        """Move the tap (already opened by the running guest) into the namespace and address it."""
        ip = _ip()
        _run([ip, "link", "set", "dev", link.tap, "netns", self.namespace])
        ns = [ip, "-n", self.namespace]
        _run([*ns, "addr", "add", f"{link.host_address}/{LINK_PREFIXLEN}", "dev", link.tap])
        _run([*ns, "link", "set", "dev", link.tap, "up"])

    def remove_guest(self, link: GuestLink) -> None:
        """Delete the tap, wherever it is (root namespace or ours); already gone is fine."""
        try:
            self.journal.undo(tap_change(link, self.namespace))
        finally:
            self._links.pop(link.tap, None)

    @contextlib.contextmanager
    def guest(self, index: int) -> Iterator[GuestLink]:
        """`add_guest` whose tap is deleted on every way out."""
        link = self.add_guest(index)
        try:
            yield link
        finally:
            self.remove_guest(link)

    def exec_argv(self, argv: list[str]) -> list[str]:
        """`argv` to run inside the namespace (a client on the host side: the bare-metal case)."""
        return [_ip(), "netns", "exec", self.namespace, *argv]

    # --- servers ---

    def start_server(
        self, argv: list[str], *, log: Path | None = None, ready_timeout_s: float = 15.0
    ) -> ServerProcess:
        """Start a peer server in the namespace; returns once it listens (or is bound)."""
        if not self._created:
            raise RuntimeError("RunNetwork.start_server before create()")
        server = ServerProcess(self.namespace, argv, log)
        self._servers.append(server)
        try:
            server.wait_bound(ready_timeout_s)
        except BaseException:
            self.stop_server(server)
            raise
        return server

    def stop_server(self, server: ServerProcess) -> None:
        try:
            server.stop()
        finally:
            with contextlib.suppress(ValueError):
                self._servers.remove(server)

    @contextlib.contextmanager
    def server(self, argv: list[str], *, log: Path | None = None) -> Iterator[ServerProcess]:
        """`start_server` stopped on every way out."""
        server = self.start_server(argv, log=log)
        try:
            yield server
        finally:
            self.stop_server(server)

    # --- teardown ---

    def close(self) -> None:
        """Stop servers, delete taps and the namespace (through the journal).

        Every step runs even when one fails or a second Ctrl-C/SIGTERM lands in the middle (the
        namespace must go whatever happened); the first error is raised at the end.  What could
        not be undone stays in force in the journal, for `vbench cleanup`.
        """
        if not self._created:
            return
        errors: list[BaseException] = []
        for server in list(self._servers):
            try:
                self.stop_server(server)
            except BaseException as exc:
                errors.append(exc)
        for link in list(self._links.values()):
            try:
                self.remove_guest(link)
            except BaseException as exc:
                errors.append(exc)
        try:
            self.journal.undo(namespace_change(self.namespace))
            self._created = False
        except BaseException as exc:
            errors.append(exc)
        if errors:
            raise errors[0]


# --- making and deleting them (the journal's kinds `netns` and `tap`) ---------------------------

_TAP_TARGET = re.compile(rf"^(?P<tap>\S+) netns (?P<ns>{NETNS_PREFIX}\S+)$")


def set_journalled(kind: str, target: str, *, present: bool) -> None:
    """Make (`present`) or delete a journal entry's namespace or tap (vbench.host.changes).

    Only names vbench gives are touched (`vbench-<run-id>`, `vbt<hash of that run><n>`), and
    nothing of a namespace whose owner is another live process.
    """
    if kind == "netns":
        namespace, tap = target, None
    elif kind == "tap":
        m = _TAP_TARGET.match(target)
        if m is None:
            raise HostError(f"unreadable tap target {target!r} in the journal")
        namespace, tap = m["ns"], m["tap"]
    else:
        raise ValueError(f"{kind!r} is not a network change")
    run_id = namespace.removeprefix(NETNS_PREFIX)
    if not namespace.startswith(NETNS_PREFIX) or not _RUN_ID.match(run_id):
        raise HostError(f"{namespace!r} in the journal is not a vbench network namespace")
    owner = _live_owner(namespace)
    if owner is not None and owner != os.getpid():
        raise HostError(
            f"{namespace} belongs to a vbench process that still runs (pid {owner}): left alone"
        )
    if tap is None:
        if present:
            _make_namespace(namespace)
        else:
            remove_namespace(namespace)
        return
    m = _TAP_NAME.match(tap)
    if m is None or m.group(1) != run_hash(run_id):
        raise HostError(f"{tap!r} in the journal is not a tap of run {run_id}")
    if present:
        _make_tap(tap, run_id)
    else:
        _delete_tap(tap, namespace)


def _make_namespace(namespace: str) -> None:
    ip = _ip()
    _write_owner(namespace)
    _run([ip, "netns", "add", namespace])
    _run([ip, "-n", namespace, "link", "set", "lo", "up"])


def _make_tap(tap: str, run_id: str) -> None:
    ip = _ip()
    try:
        _run([ip, "tuntap", "add", "dev", tap, "mode", "tap"])
    except CommandFailed as exc:
        raise HostError(f"cannot create the tap {tap}: {exc.output_tail.strip()}") from None
    # says which run it belongs to (survives the move): `vbench cleanup` matches it
    _run([ip, "link", "set", "dev", tap, "alias", TAP_ALIAS_PREFIX + run_id])


def _delete_tap(tap: str, namespace: str) -> None:
    """Delete the tap in the namespace or the root namespace; gone already is fine."""
    ip = _ip()
    for where in ([ip, "-n", namespace], [ip]):
        if _run([*where, "link", "del", "dev", tap], check=False).returncode == 0:
            return


def _link_exists(name: str) -> bool:
    return _run([_ip(), "link", "show", "dev", name], check=False).returncode == 0


def remove_namespace(namespace: str) -> None:
    """Kill what runs in it (a namespace lives as long as a process in it), then delete it.

    Deleting a namespace also deletes the taps inside it.
    """
    if not namespace.startswith(NETNS_PREFIX):
        raise ValueError(f"{namespace!r} is not a vbench namespace")
    _kill_all(_namespace_pids(namespace))
    proc = _run([_ip(), "netns", "del", namespace], check=False)
    if proc.returncode != 0 and namespace in list_namespaces():
        raise CommandFailed(["ip", "netns", "del", namespace], proc.returncode, proc.stderr)
    (OWNER_DIR / f"{namespace}.pid").unlink(missing_ok=True)


def _write_owner(namespace: str) -> None:
    OWNER_DIR.mkdir(parents=True, exist_ok=True)
    (OWNER_DIR / f"{namespace}.pid").write_text(f"{os.getpid()}\n")


def _live_owner(namespace: str) -> int | None:
    """The pid of the process that made `namespace` if it still runs (this one included)."""
    try:
        pid = int((OWNER_DIR / f"{namespace}.pid").read_text().strip())
    except (OSError, ValueError):
        return None
    if pid == os.getpid():
        return pid
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return pid
    return pid


def owner_alive(namespace: str) -> bool:
    """Whether the process that made `namespace` still runs (its marker names a live pid)."""
    return _live_owner(namespace) is not None


# --- leftovers of killed runs -------------------------------------------------------------------


@dataclass(frozen=True)
class NetLeftover:
    kind: str  # "namespace" | "tap"
    name: str
    run_id: str | None  # None: a tap killed before it got its alias (matched by its name)

    def describe(self) -> str:
        run = f"run {self.run_id}" if self.run_id else "an unknown run"
        return f"{self.kind} {self.name} ({run})"


def _is_our_tap(link: dict[str, Any]) -> bool:
    info = link.get("linkinfo") or {}
    kind = (info.get("info_data") or {}).get("type")
    return (
        _TAP_NAME.match(str(link.get("ifname", ""))) is not None
        and info.get("info_kind") == "tun"
        and kind == "tap"
    )


def _tap_run(link: dict[str, Any]) -> str | None:
    alias = str(link.get("ifalias") or "")
    return alias.removeprefix(TAP_ALIAS_PREFIX) if alias.startswith(TAP_ALIAS_PREFIX) else None


def find_leftovers(live_run_ids: Collection[str]) -> list[NetLeftover]:
    """Namespaces and root-namespace taps of runs that are not alive; never anything else.

    A namespace counts only when it is named `vbench-<run-id>` and holds nothing but loopback and
    vbench taps; a tap only when it is a tap named `vbt<hash><n>` whose alias names a run (or,
    without an alias, whose hash is no live run's).  `live_run_ids` comes from the run locks
    (`vbench.virt.guests.live_run_ids`).
    """
    live = set(live_run_ids)
    live_hashes = {run_hash(r) for r in live}
    found: list[NetLeftover] = []
    for ns in list_namespaces():
        run_id = ns.removeprefix(NETNS_PREFIX)
        if not ns.startswith(NETNS_PREFIX) or not _RUN_ID.match(run_id) or run_id in live:
            continue
        if owner_alive(ns):
            continue  # a live run whose lock is in another scratch root
        try:
            links = _links(ns)
        except CommandFailed:
            continue  # cannot look inside (not root): cannot tell it is ours, so never touch it
        if all(lk.get("ifname") == "lo" or _is_our_tap(lk) for lk in links):
            found.append(NetLeftover("namespace", ns, run_id))
    for lk in _links():
        if not _is_our_tap(lk):
            continue
        owner = _tap_run(lk)
        m = _TAP_NAME.match(str(lk["ifname"]))
        assert m is not None  # _is_our_tap
        if m.group(1) in live_hashes if owner is None else owner in live:
            continue
        if owner is not None and owner_alive(NETNS_PREFIX + owner):
            continue
        found.append(NetLeftover("tap", str(lk["ifname"]), owner))
    return found


def remove_leftover(leftover: NetLeftover) -> None:
    if leftover.kind == "namespace":
        remove_namespace(leftover.name)
    elif leftover.kind == "tap":
        _run([_ip(), "link", "del", "dev", leftover.name])
    else:
        raise ValueError(f"unknown leftover kind {leftover.kind!r}")
