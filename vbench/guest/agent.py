"""Running commands in a guest through the QEMU guest agent (qemu-ga), via libvirt.

Every command goes through `libvirt_qemu.qemuAgentCommand`; libvirt precedes each one with a
`guest-sync`, so replies are never confused across calls.  Commands are argv lists, never shell
strings: `guest-exec` with `capture-output`, then `guest-exec-status` polled until it exits.
qemu-ga keeps at most 16 MiB of each captured stream (GUEST_EXEC_MAX_OUTPUT) and returns it
base64-encoded; fio's JSON for one job is ~10-20 KB, far below that.
"""

from __future__ import annotations

import base64
import json
import shlex
import time
from dataclasses import dataclass
from typing import Any

import libvirt
import libvirt_qemu

from vbench.errors import AgentTimeout, GuestCommandFailed, GuestError

# Seconds libvirt waits for qemu-ga to answer one agent command (not the guest command itself).
_AGENT_REPLY_TIMEOUT_S = 10
_DISK_PREFIXES = ("vd", "sd", "hd", "nvme")
_READY_FILE = "/run/vbench-ready"  # written by the microguest's /init once drivers are probed


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


class GuestAgent:
    """The guest agent of one running libvirt domain."""

    def __init__(self, domain: libvirt.virDomain) -> None:
        self._domain = domain
        self.name: str = domain.name()

    @property
    def domain(self) -> libvirt.virDomain:
        """The libvirt domain this agent belongs to."""
        return self._domain

    # --- the wire -------------------------------------------------------------------------------

    def command(
        self, execute: str, arguments: dict[str, Any] | None = None, *, timeout_s: int = 0
    ) -> Any:
        """Send one agent command and return its `return` value."""
        payload: dict[str, Any] = {"execute": execute}
        if arguments is not None:
            payload["arguments"] = arguments
        wait = max(1, timeout_s or _AGENT_REPLY_TIMEOUT_S)
        try:
            reply = libvirt_qemu.qemuAgentCommand(self._domain, json.dumps(payload), wait, 0)
        except libvirt.libvirtError as exc:
            msg = (exc.get_error_message() or str(exc)).strip()
            code = exc.get_error_code()
            if code in (
                libvirt.VIR_ERR_AGENT_UNRESPONSIVE,
                getattr(libvirt, "VIR_ERR_AGENT_COMMAND_TIMEOUT", -1),
            ):
                raise AgentTimeout(
                    f"guest agent of {self.name} did not answer {execute}: {msg}"
                ) from None
            if code == libvirt.VIR_ERR_OPERATION_INVALID and not self._is_active():
                raise GuestError(
                    f"guest {self.name} is not running (while sending {execute})"
                ) from None
            raise GuestError(f"guest agent of {self.name}: {execute} failed: {msg}") from None
        if reply is None:
            raise GuestError(f"guest agent of {self.name} sent no reply to {execute}")
        try:
            decoded = json.loads(reply)
        except json.JSONDecodeError:
            raise GuestError(
                f"guest agent of {self.name} sent unreadable JSON for {execute}: {_tail(reply)}"
            ) from None
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
            # Not connected yet: libvirt answers at once, so poll briskly but not in a hot loop.
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
