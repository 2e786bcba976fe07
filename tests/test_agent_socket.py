"""The socket transport against a real qemu-ga, running on the host and listening on a unix socket.

`qemu-ga -m unix-listen` is the guest agent itself, only with a socket where a guest has its
channel: the same JSON, the same parser (its state survives a client that left mid-command, as in
a guest whose host side reconnected), the same `guest-sync-delimited`.  Its commands act on this
host, so the ones that change something are blocked (-b) and the tests run only harmless argv.
The domain is libvirt's test driver's `test` (running): GuestAgent asks it whether the guest lives.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from vbench.domxml import VBENCH_AGENT_NAME, AgentChannel
from vbench.errors import AgentTimeout, GuestError
from vbench.guest.agent import SENTINEL, GuestAgent, SocketTransport, open_agent
from vbench.samplers.guest import GuestSampler

libvirt: Any = pytest.importorskip("libvirt")

pytestmark = pytest.mark.libvirt_test

QEMU_GA = shutil.which("qemu-ga") or "/usr/sbin/qemu-ga"
# What a host-side qemu-ga must not do to this machine.
BLOCKED = (
    "guest-shutdown,guest-suspend-disk,guest-suspend-ram,guest-suspend-hybrid,guest-set-time,"
    "guest-fsfreeze-freeze,guest-fsfreeze-freeze-list,guest-fsfreeze-thaw,guest-fstrim,"
    "guest-set-vcpus,guest-set-memory-blocks,guest-set-user-password,guest-file-open,"
    "guest-file-write,guest-ssh-add-authorized-keys,guest-ssh-remove-authorized-keys"
)


@dataclass
class Qga:
    """A qemu-ga on the host: start, stop (SIGSTOP/SIGCONT), kill and start again."""

    dir: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def path(self) -> str:
        return str(self.dir / "qga.sock")

    def start(self) -> None:
        Path(self.path).unlink(missing_ok=True)
        log = (self.dir / "qga.log").open("ab")
        self.proc = subprocess.Popen(
            [
                QEMU_GA,
                "-m",
                "unix-listen",
                "-p",
                self.path,
                "-t",
                str(self.dir / "state"),
                "-f",
                str(self.dir / "qga.pid"),
                "-b",
                BLOCKED,
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
        )
        log.close()
        deadline = time.monotonic() + 10
        while not Path(self.path).exists():
            assert self.proc.poll() is None, (self.dir / "qga.log").read_text()
            assert time.monotonic() < deadline, "qemu-ga made no socket in 10 s"
            time.sleep(0.02)

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()  # SIGKILL ends a stopped process too (no SIGCONT: it would answer)
            self.proc.wait(10)
        self.proc = None


@pytest.fixture
def qga() -> Iterator[Qga]:
    if not os.access(QEMU_GA, os.X_OK):
        pytest.skip("qemu-ga not installed (Debian: apt-get install qemu-guest-agent)")
    # short: a unix socket's path has at most 107 bytes (pytest's tmp_path can be longer)
    d = Path(tempfile.mkdtemp(prefix="vbench-qga-"))
    (d / "state").mkdir()
    q = Qga(d)
    q.start()
    try:
        yield q
    finally:
        q.kill()
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def domain() -> Iterator[Any]:
    libvirt.registerErrorHandler(lambda _c, _e: None, None)
    conn = libvirt.open("test:///default")
    try:
        yield conn.lookupByName("test")  # the test driver's running domain
    finally:
        conn.close()


@pytest.fixture
def agent(qga: Qga, domain: Any) -> Iterator[GuestAgent]:
    channel = AgentChannel(name=VBENCH_AGENT_NAME, socket=qga.path)
    with open_agent(domain, channel) as a:
        yield a


# After a client leaves, qemu-ga -m unix-listen takes a moment to listen again (a connection in
# between is refused; a device model's socket, which the guest's channel is, always listens).
RELISTEN_S = 10.0


def _raw(path: str) -> socket.socket:
    deadline = time.monotonic() + RELISTEN_S
    while True:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(5)
        try:
            s.connect(path)
            return s
        except ConnectionRefusedError:
            s.close()
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def _first_command(agent: GuestAgent, execute: str) -> Any:
    """`execute` as the transport's first command, once qemu-ga listens again."""
    deadline = time.monotonic() + RELISTEN_S
    while True:
        try:
            return agent.command(execute)
        except GuestError as exc:
            if "cannot connect" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def _lines(s: socket.socket, n: int) -> list[bytes]:
    buf = b""
    while buf.count(b"\n") < n:
        chunk = s.recv(4096)
        assert chunk, "qemu-ga closed the connection"
        buf += chunk
    return buf.split(b"\n")[:n]


def test_ping_exec_and_cpustats_over_the_socket(agent: GuestAgent) -> None:
    agent.wait_ready(10)
    assert agent.command("guest-ping") == {}
    hello = agent.exec(["echo", "hello"], timeout_s=10)
    assert (hello.exitcode, hello.stdout) == (0, b"hello\n")
    assert agent.exec(["sh", "-c", "echo oops >&2; exit 3"], timeout_s=10, check=False).stderr == (
        b"oops\n"
    )
    assert agent.exec(["cat"], timeout_s=10, stdin=b"a\x00b").stdout == b"a\x00b"
    assert agent.exec(["/no/such/program"], timeout_s=10, check=False).exitcode == 127
    values = {v.metric: v.value for v in GuestSampler(agent).sample()}
    assert values["cpu.busy"] > 0 and values["cpu.idle"] > 0  # the host's /proc/stat
    assert any(m.startswith("disk.") for m in values)


def test_a_stale_half_command_in_qemu_gas_parser_is_flushed(qga: Qga, agent: GuestAgent) -> None:
    # qemu-ga's parser outlives a client: a half-sent command garbles the next client's first one
    with _raw(qga.path) as s:
        s.sendall(b'{"execute": "guest-ping", "argu')
    with _raw(qga.path) as s:
        s.sendall(b'{"execute": "guest-ping"}\n')
        first = json.loads(_lines(s, 1)[0])
    assert "error" in first  # without the 0xFF flush the ping is lost in the stale text
    with _raw(qga.path) as s:
        s.sendall(b'{"execute": "guest-ping", "argu')
    # the transport's sync starts with 0xFF: the parser is reset and the ping answered
    assert _first_command(agent, "guest-ping") == {}
    assert "host-name" in agent.command("guest-get-host-name")


def test_sync_reply_is_found_behind_the_sentinel(qga: Qga) -> None:
    """What the transport relies on, straight from qemu-ga: 0xFF, then the reply with our id."""
    with _raw(qga.path) as s:
        s.sendall(SENTINEL + b'{"execute": "guest-sync-delimited", "arguments": {"id": 4242}}\n')
        buf = b""
        while not any(SENTINEL in line for line in buf.split(b"\n")[:-1]):
            chunk = s.recv(4096)  # qemu-ga may first complain about the 0xFF itself
            assert chunk, "qemu-ga closed the connection"
            buf += chunk
    tail = next(line for line in buf.split(b"\n") if SENTINEL in line)
    assert json.loads(tail[tail.rindex(SENTINEL) + 1 :]) == {"return": 4242}


def test_a_timeout_then_the_late_reply_is_not_taken_for_the_next(
    qga: Qga, agent: GuestAgent
) -> None:
    agent.wait_ready(10)
    qga.signal(signal.SIGSTOP)  # a guest that stops answering for a while
    try:
        started = time.monotonic()
        with pytest.raises(AgentTimeout, match="did not answer guest-info"):
            agent.command("guest-info", timeout_s=1)
        assert time.monotonic() - started < 3
    finally:
        qga.signal(signal.SIGCONT)
    # guest-info's reply comes now; the next command must get its own
    reply = agent.command("guest-get-host-name")
    assert set(reply) == {"host-name"}, reply
    assert agent.command("guest-ping") == {}


def test_a_restarted_agent_is_reconnected(qga: Qga, agent: GuestAgent) -> None:
    agent.wait_ready(10)
    qga.kill()  # the guest rebooted: its device model (and socket) are new
    qga.start()
    assert agent.command("guest-ping") == {}  # no error: the old connection was never used
    assert agent.exec(["true"], timeout_s=10).exitcode == 0


def test_an_agent_that_dies_mid_command_is_an_error_not_a_hang(qga: Qga, agent: GuestAgent) -> None:
    agent.wait_ready(10)
    qga.signal(signal.SIGSTOP)
    errors: list[BaseException] = []

    def call() -> None:
        try:
            agent.command("guest-info", timeout_s=30)
        except GuestError as exc:
            errors.append(exc)

    t = threading.Thread(target=call)
    started = time.monotonic()
    t.start()
    time.sleep(0.3)
    qga.kill()
    t.join(10)
    assert not t.is_alive()
    assert time.monotonic() - started < 10
    assert len(errors) == 1 and not isinstance(errors[0], AgentTimeout)
    assert "connection lost" in str(errors[0])  # it may have run: not sent again
    qga.start()
    assert agent.command("guest-ping") == {}


def test_threads_sharing_one_connection_get_their_own_replies(agent: GuestAgent) -> None:
    agent.wait_ready(10)
    wrong: list[object] = []

    def loop(command: str, want: set[str]) -> None:
        for _ in range(15):
            reply = agent.command(command)
            if set(reply) != want:
                wrong.append(reply)

    threads = [
        threading.Thread(target=loop, args=("guest-get-host-name", {"host-name"})),
        threading.Thread(target=loop, args=("guest-get-timezone", {"offset", "zone"})),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert wrong == []


def test_no_socket_is_one_line_naming_it(domain: Any, tmp_path: Path) -> None:
    with (
        GuestAgent(domain, SocketTransport(str(tmp_path / "absent.sock"))) as agent,
        pytest.raises(GuestError, match=r"absent\.sock: cannot connect") as exc,
    ):
        agent.command("guest-ping")
    assert "\n" not in str(exc.value)
