"""Running commands in a guest through the QEMU guest agent (qemu-ga).

One code path for every use (ping, guest-exec, the ready file, the test disk, the guest sampler's
cpustats/diskstats): `GuestAgent`, which sends JSON commands through an `AgentTransport` that
carries one command and its reply.  Two transports, chosen by the domain's agent channel
(`open_agent`; which channel a libvirt driver gets: vbench.virt.driver):

- `LibvirtTransport`: libvirt's agent API (`libvirt_qemu.qemuAgentCommand`), which only the QEMU
  driver has; libvirt precedes each command with a `guest-sync`.
- `SocketTransport`: vbench speaks the agent protocol itself over the unix socket libvirt makes
  from `<channel type='unix'><source mode='bind' path=.../>` (libvirt's libxl driver has no agent
  API; a Xen channel is a PV console).  `guest-sync-delimited` after connecting and after any
  timeout, a fresh connection when the other end went away (a restarted device model).

Commands are argv lists, never shell strings: `guest-exec` with `capture-output`, then
`guest-exec-status` polled until it exits.  qemu-ga keeps at most 16 MiB of each captured stream
(GUEST_EXEC_MAX_OUTPUT) and returns it base64-encoded; fio's JSON for one job is ~10-20 KB.
"""

from __future__ import annotations

import base64
import itertools
import json
import math
import secrets
import shlex
import socket
import threading
import time
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Protocol

import libvirt
import libvirt_qemu

from vbench.domxml import AgentChannel
from vbench.errors import AgentTimeout, GuestCommandFailed, GuestError

# Seconds the transport waits for qemu-ga to answer one agent command (not the guest command).
_AGENT_REPLY_TIMEOUT_S = 10
_DISK_PREFIXES = ("vd", "sd", "hd", "nvme", "xvd")
_READY_FILE = "/run/vbench-ready"  # written by the microguest's /init once drivers are probed
# qemu-ga's flush byte: its JSON parser resets on it, and it precedes guest-sync-delimited's reply
SENTINEL = b"\xff"


@dataclass(frozen=True)
class ExecResult:
    exitcode: int
    stdout: bytes
    stderr: bytes
    duration_s: float


class GuestExecFailed(GuestCommandFailed):
    """A guest command exited non-zero; keeps the argv, exit code and full result."""

    def __init__(self, domain: str, argv: list[str], result: ExecResult) -> None:
        self.argv = argv
        self.exitcode = result.exitcode
        self.stderr = result.stderr
        self.result = result
        tail = result.stderr.decode(errors="replace").strip().splitlines()[-3:]
        detail = f": {' | '.join(tail)}" if tail else ""
        super().__init__(
            f"`{shlex.join(argv)}` in guest {domain} exited with {result.exitcode}{detail}"
        )


def _tail(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else "..." + text[-limit:]


class AgentTransport(Protocol):
    """Carries one agent command (JSON text) to qemu-ga and returns its reply (JSON text).

    Raises AgentTimeout when no reply came within `timeout_s`, GuestError for anything else
    (no channel, connection lost); the message says what, GuestAgent adds which guest and command.
    """

    def call(self, request: str, timeout_s: float) -> str: ...

    def close(self) -> None: ...


class LibvirtTransport:
    """libvirt's agent API: the QEMU driver connects to the channel `org.qemu.guest_agent.0`."""

    def __init__(self, domain: libvirt.virDomain) -> None:
        self._domain = domain

    def call(self, request: str, timeout_s: float) -> str:
        try:
            reply = libvirt_qemu.qemuAgentCommand(
                self._domain, request, max(1, math.ceil(timeout_s)), 0
            )
        except libvirt.libvirtError as exc:
            msg = (exc.get_error_message() or str(exc)).strip()
            if exc.get_error_code() in (
                libvirt.VIR_ERR_AGENT_UNRESPONSIVE,
                getattr(libvirt, "VIR_ERR_AGENT_COMMAND_TIMEOUT", -1),
            ):
                raise AgentTimeout(msg) from None
            raise GuestError(msg) from None
        if reply is None:
            raise GuestError("no reply")
        return str(reply)

    def close(self) -> None:
        pass  # libvirt owns the channel


class _Lost(Exception):
    """The socket's other end went away (or never was there)."""


class SocketTransport:
    """The agent protocol spoken by vbench itself over a unix socket to the guest's channel.

    qemu-ga answers each command with one line of JSON, in order.  Replies are matched to
    commands by keeping the stream in step: `guest-sync-delimited` (preceded by a 0xFF byte that
    resets qemu-ga's parser; its reply is preceded by 0xFF too) is sent on every new connection and
    after any timeout, and everything up to the reply carrying its id is dropped, so a late reply
    to a timed-out command is never taken for the next one's.  One command at a time (a lock): the
    guest sampler's thread and the case's commands share the connection.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._sock: socket.socket | None = None
        self._buf = bytearray()
        self._synced = False
        self._lock = threading.Lock()
        self._ids = itertools.count(1 + secrets.randbelow(1 << 30))

    def call(self, request: str, timeout_s: float) -> str:
        deadline = time.monotonic() + timeout_s
        payload = request.encode() + b"\n"
        with self._lock:
            for attempt in (1, 2):
                sent = False
                try:
                    sock = self._connected(deadline)
                    if not self._synced:
                        self._sync(sock, deadline)
                    self._send(sock, payload)
                    sent = True
                    return self._line(sock, deadline).decode(errors="replace")
                except _Lost as exc:
                    self._drop()
                    # Before the command went out a new connection is safe (a restarted device
                    # model, e.g. after a guest reboot); after it, the command may have run.
                    if sent or attempt == 2:
                        raise GuestError(f"agent socket {self.path}: {exc}") from None
                except AgentTimeout:
                    self._synced = False  # its reply may still come: sync before the next one
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def close(self) -> None:
        with self._lock:
            self._drop()

    # -- the wire ---------------------------------------------------------------------------
    def _connected(self, deadline: float) -> socket.socket:
        if self._sock is not None:
            return self._sock
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(max(0.001, deadline - time.monotonic()))
            sock.connect(self.path)
        except TimeoutError:
            sock.close()
            raise AgentTimeout(f"no connection to {self.path} in time") from None
        except OSError as exc:
            sock.close()
            raise _Lost(f"cannot connect: {exc.strerror or exc}") from None
        self._sock = sock
        self._buf.clear()
        self._synced = False
        return sock

    def _drop(self) -> None:
        if self._sock is not None:
            self._sock.close()
        self._sock = None
        self._buf.clear()
        self._synced = False

    def _send(self, sock: socket.socket, data: bytes) -> None:
        try:
            sock.settimeout(5.0)  # a unix socket takes a command at once unless the peer is gone
            sock.sendall(data)
        except TimeoutError:
            raise _Lost("the other end takes no data") from None
        except OSError as exc:
            raise _Lost(exc.strerror or str(exc)) from None

    def _line(self, sock: socket.socket, deadline: float) -> bytes:
        """The next non-empty line from the agent (without its newline)."""
        scanned = 0
        while True:
            end = self._buf.find(b"\n", scanned)
            if end >= 0:
                line = bytes(self._buf[:end])
                del self._buf[: end + 1]
                scanned = 0
                if line.strip():
                    return line
                continue
            scanned = len(self._buf)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AgentTimeout("no reply in time")
            try:
                sock.settimeout(remaining)
                chunk = sock.recv(1 << 16)
            except TimeoutError:
                raise AgentTimeout("no reply in time") from None
            except OSError as exc:
                raise _Lost(f"connection lost ({exc.strerror or exc})") from None
            if not chunk:
                raise _Lost("connection lost (closed by the other end)")
            self._buf += chunk

    def _sync(self, sock: socket.socket, deadline: float) -> None:
        sync_id = next(self._ids)
        request = {"execute": "guest-sync-delimited", "arguments": {"id": sync_id}}
        self._send(sock, SENTINEL + json.dumps(request).encode() + b"\n")
        while True:
            line = self._line(sock, deadline)
            at = line.rfind(SENTINEL)
            if at < 0:
                continue  # stale: a reply to a command before the sync
            try:
                reply = json.loads(line[at + 1 :])
            except ValueError:
                continue
            if isinstance(reply, dict) and reply.get("return") == sync_id:
                self._synced = True
                return


def open_agent(domain: libvirt.virDomain, channel: AgentChannel) -> GuestAgent:
    """The guest agent of a running domain, over the transport its agent channel asks for."""
    if channel.socket is None:
        return GuestAgent(domain, LibvirtTransport(domain))
    return GuestAgent(domain, SocketTransport(channel.socket))


class GuestAgent:
    """The guest agent of one running libvirt domain, over one transport.  Close it (or use it
    as a context manager) when done: a socket transport holds a connection."""

    def __init__(self, domain: libvirt.virDomain, transport: AgentTransport) -> None:
        self._domain = domain
        self._transport = transport
        self.name: str = domain.name()

    @property
    def domain(self) -> libvirt.virDomain:
        """The libvirt domain this agent belongs to."""
        return self._domain

    def close(self) -> None:
        self._transport.close()

    def __enter__(self) -> GuestAgent:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # --- one command ----------------------------------------------------------------------------

    def command(
        self, execute: str, arguments: dict[str, Any] | None = None, *, timeout_s: float = 0
    ) -> Any:
        """Send one agent command and return its `return` value."""
        payload: dict[str, Any] = {"execute": execute}
        if arguments is not None:
            payload["arguments"] = arguments
        wait = max(1.0, timeout_s or _AGENT_REPLY_TIMEOUT_S)
        try:
            reply = self._transport.call(json.dumps(payload), wait)
        except AgentTimeout as exc:
            raise AgentTimeout(
                f"guest agent of {self.name} did not answer {execute}: {exc}"
            ) from None
        except GuestError as exc:
            if not self._is_active():
                raise GuestError(
                    f"guest {self.name} is not running (while sending {execute})"
                ) from None
            raise GuestError(f"guest agent of {self.name}: {execute} failed: {exc}") from None
        try:
            decoded = json.loads(reply)
        except json.JSONDecodeError:
            raise GuestError(
                f"guest agent of {self.name} sent unreadable JSON for {execute}: {_tail(reply)}"
            ) from None
        if not isinstance(decoded, dict):
            raise GuestError(
                f"guest agent of {self.name} sent no JSON object for {execute}: {_tail(reply)}"
            )
        if "error" in decoded:
            desc = decoded["error"].get("desc", decoded["error"])
            raise GuestError(f"guest agent of {self.name}: {execute} failed: {desc}")
        return decoded.get("return")

    def _is_active(self) -> bool:
        try:
            return bool(self._domain.isActive())
        except libvirt.libvirtError:
            return False

    # --- the API --------------------------------------------------------------------------------

    def wait_ready(self, timeout_s: float) -> float:
        """Ping the agent until it answers; returns the seconds waited."""
        start = time.monotonic()
        deadline = start + timeout_s
        last = "no answer yet"
        while True:
            remaining = deadline - time.monotonic()
            try:
                self.command("guest-ping", timeout_s=max(1, min(2, int(remaining))))
                return time.monotonic() - start
            except GuestError as exc:
                last = str(exc)
                # A domain that died (panic=-1 + on_reboot=destroy) will never answer.
                if not self._is_active():
                    raise GuestError(
                        f"guest {self.name} stopped before its agent answered"
                    ) from None
            if time.monotonic() >= deadline:
                raise AgentTimeout(
                    f"guest agent of {self.name} did not answer within {timeout_s:.0f} s ({last})"
                )
            # Not connected yet (libvirt, or a socket not yet listening, answers at once): poll
            # briskly but not in a hot loop.
            time.sleep(0.05)

    def wait_init(self, timeout_s: float) -> None:
        """Wait until the microguest's /init has probed its drivers and set up its test NIC."""
        deadline = time.monotonic() + timeout_s
        while self.exec(["test", "-e", _READY_FILE], timeout_s=10, check=False).exitcode:
            if time.monotonic() >= deadline:
                raise GuestError(f"guest {self.name} did not finish its /init in {timeout_s:g} s")
            time.sleep(0.2)

    def exec(
        self,
        argv: list[str],
        *,
        timeout_s: float,
        check: bool = True,
        stdin: bytes | None = None,
    ) -> ExecResult:
        """Run `argv` in the guest and wait for it (at most `timeout_s`, then it is killed)."""
        if not argv:
            raise ValueError("exec needs a non-empty argv")
        args: dict[str, Any] = {"path": argv[0], "arg": argv[1:], "capture-output": True}
        if stdin is not None:
            args["input-data"] = base64.b64encode(stdin).decode("ascii")
        start = time.monotonic()
        try:
            pid = int(self.command("guest-exec", args)["pid"])
        except GuestError as exc:
            if isinstance(exc, AgentTimeout) or "Failed to execute" not in str(exc):
                raise
            # qemu-ga could not start it (no such program): report it like a shell would.
            result = ExecResult(127, b"", str(exc).encode(), time.monotonic() - start)
            if check:
                raise GuestExecFailed(self.name, argv, result) from None
            return result

        deadline = start + timeout_s
        interval = 0.02
        while True:
            status = self.command("guest-exec-status", {"pid": pid})
            if status.get("exited"):
                break
            if time.monotonic() >= deadline:
                self._kill(pid)
                raise AgentTimeout(
                    f"`{shlex.join(argv)}` in guest {self.name} did not finish within "
                    f"{timeout_s:g} s (killed)"
                )
            time.sleep(interval)
            interval = min(interval * 1.5, 0.25)
        duration = time.monotonic() - start

        if status.get("out-truncated") or status.get("err-truncated"):
            raise GuestError(
                f"`{shlex.join(argv)}` in guest {self.name}: output over qemu-ga's 16 MiB "
                "capture limit was truncated"
            )
        if "exitcode" in status:
            code = int(status["exitcode"])
        else:  # killed by a signal: report it the way a shell does
            code = 128 + int(status.get("signal", 0))
        result = ExecResult(
            exitcode=code,
            stdout=base64.b64decode(status.get("out-data", "")),
            stderr=base64.b64decode(status.get("err-data", "")),
            duration_s=duration,
        )
        if check and code != 0:
            raise GuestExecFailed(self.name, argv, result)
        return result

    def _kill(self, pid: int) -> None:
        """Best effort: SIGKILL a guest process that ran over its time, and reap its status."""
        try:
            self.exec(["kill", "-9", str(pid)], timeout_s=5, check=False)
            self.command("guest-exec-status", {"pid": pid})
        except GuestError:
            pass

    def test_disk(self, timeout_s: float = 30.0) -> str:
        """The /dev path of the guest's single test disk (vda, sda, hda or nvme0n1)."""
        deadline = time.monotonic() + timeout_s
        while True:
            # /init writes the ready file after probing every disk and NIC driver.
            ready = self.exec(["test", "-e", _READY_FILE], timeout_s=10, check=False)
            names = self.exec(["ls", "/sys/block"], timeout_s=10).stdout.decode().split()
            disks = sorted(n for n in names if n.startswith(_DISK_PREFIXES))
            if len(disks) == 1 and ready.exitcode == 0:
                return f"/dev/{disks[0]}"
            if ready.exitcode == 0 and not disks:
                raise GuestError(f"guest {self.name} has no disk (/sys/block: {' '.join(names)})")
            if len(disks) > 1:
                raise GuestError(
                    f"guest {self.name} has several disks ({', '.join(disks)}); "
                    "expected only the test disk"
                )
            if time.monotonic() >= deadline:
                raise GuestError(
                    f"guest {self.name} shows no test disk after {timeout_s:g} s "
                    f"(/sys/block: {' '.join(names) or 'empty'})"
                )
            time.sleep(0.2)
