"""The one way vbench runs a program on the host (modelled on nox's `nox/command.py`).

`run()` takes an argv list (never a shell string) and a time limit, captures both output streams
as bytes and returns a `CommandResult`.  Every failure is a `CommandFailed` with a one-line
message: a non-zero exit (with `check=True`), a time limit passed (`CommandTimedOut`: the process
is killed) or a program that is not there (`CommandNotFound`, naming the package to install).
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from vbench.errors import CommandFailed, CommandNotFound, CommandTimedOut
from vbench.packages import install_advice

TAIL_BYTES = 4000  # of stderr (or stdout, when stderr is empty) kept in a CommandFailed

__all__ = [
    "Background",
    "CommandFailed",
    "CommandNotFound",
    "CommandResult",
    "CommandTimedOut",
    "run",
    "spawn",
]


@dataclass(frozen=True)
class CommandResult:
    argv: tuple[str, ...]
    exitcode: int
    stdout: bytes
    stderr: bytes
    duration_s: float

    @property
    def out(self) -> str:
        """stdout as text (undecodable bytes replaced)."""
        return self.stdout.decode(errors="replace")

    @property
    def err(self) -> str:
        return self.stderr.decode(errors="replace")


def _tail(stdout: bytes | None, stderr: bytes | None) -> str:
    data = stderr or stdout or b""
    return data[-TAIL_BYTES:].decode(errors="replace")


def run(
    argv: list[str],
    *,
    timeout_s: float,
    check: bool = True,
    env: Mapping[str, str] | None = None,
    cwd: Path | str | None = None,
    input: bytes | None = None,
    need: str | None = None,
) -> CommandResult:
    """Run `argv`, wait at most `timeout_s`, return what it printed.

    `check`: a non-zero exit raises CommandFailed (else the caller reads `exitcode`).
    `need`: the row of `vbench.packages` that supplies the program when its name is not the key
    (e.g. "gcc" for `cc`); a missing program's error names that row's packages.
    """
    if not argv:
        raise ValueError("run() needs a program to run")
    start = time.monotonic()
    try:
        proc = subprocess.run(
            argv,
            capture_output=True,
            timeout=timeout_s,
            check=False,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            input=input,
            stdin=subprocess.DEVNULL if input is None else None,
        )
    except (FileNotFoundError, PermissionError, NotADirectoryError):
        name = need or os.path.basename(argv[0])
        raise CommandNotFound(
            argv, install_advice(name) or "is it installed, executable and on $PATH?"
        ) from None
    except subprocess.TimeoutExpired as exc:
        raise CommandTimedOut(argv, timeout_s, _tail(exc.stdout, exc.stderr)) from None
    result = CommandResult(
        tuple(argv), proc.returncode, proc.stdout, proc.stderr, time.monotonic() - start
    )
    if check and proc.returncode != 0:
        raise CommandFailed(argv, proc.returncode, _tail(proc.stdout, proc.stderr))
    return result


class Background:
    """A long-running program started by `spawn()` (a peer server): poll it, stop it, reap it."""

    def __init__(self, argv: list[str], proc: subprocess.Popen[bytes]) -> None:
        self.argv = tuple(argv)
        self._proc = proc

    @property
    def pid(self) -> int:
        return self._proc.pid

    @property
    def exitcode(self) -> int | None:
        """None while it runs."""
        return self._proc.poll()

    def running(self) -> bool:
        return self._proc.poll() is None

    def stop(self, grace_s: float) -> None:
        """SIGTERM, SIGKILL after `grace_s`; reaped either way."""
        if self._proc.poll() is not None:
            return
        self._proc.terminate()
        try:
            self._proc.wait(grace_s)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait(grace_s)


def spawn(argv: list[str], *, output: IO[bytes], new_session: bool = True) -> Background:
    """Start `argv` in the background, stdin closed, stdout and stderr into the file `output`.

    A file, not a pipe: a chatty server would block on a full pipe nobody reads.  `new_session`:
    the terminal's Ctrl-C reaches vbench only, which stops its children in order.
    """
    try:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=new_session,
        )
    except (FileNotFoundError, PermissionError, NotADirectoryError):
        name = os.path.basename(argv[0])
        raise CommandNotFound(
            argv, install_advice(name) or "is it installed, executable and on $PATH?"
        ) from None
    return Background(argv, proc)
