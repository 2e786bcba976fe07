"""The errors a user can cause or fix.  `cli.py` catches `VbenchError` once and prints one line."""

from __future__ import annotations


class VbenchError(Exception):
    """An error whose message fits one terminal line: what went wrong and how to fix it."""

    exit_code = 1


class ScenarioError(VbenchError):
    """The scenario file is unreadable or invalid.  The message names the file and the key path."""


class LibvirtUnavailable(VbenchError):
    """libvirtd cannot be reached at the requested URI."""


class GuestError(VbenchError):
    """A guest failed to boot, its agent stayed silent, or a command inside it failed."""


class AgentTimeout(GuestError):
    """The guest agent did not answer within its time limit."""


class GuestCommandFailed(GuestError):
    """A command in the guest exited non-zero (the message has exit code and stderr tail)."""


class HostError(VbenchError):
    """The host lacks something a step needs (a tool, a kernel, a device)."""


class CommandFailed(VbenchError):
    """A command (host tool, workload on the host) failed: `vbench.command.run` raises it.

    Carries argv, the exit code (None when it never ran or was killed) and the tail of its
    output; the message is one line: "`fio ...` exited with 1: <last stderr lines>".
    """

    def __init__(
        self, argv: list[str], exitcode: int | None, output_tail: str, message: str | None = None
    ) -> None:
        self.argv = list(argv)
        self.exitcode = exitcode
        self.output_tail = output_tail
        if message is None:
            detail = last_lines(output_tail)
            message = f"`{shell_words(argv)}` exited with {exitcode}" + (
                f": {detail}" if detail else ""
            )
        super().__init__(message)


class CommandTimedOut(CommandFailed):
    """A command ran past its time limit and was killed."""

    def __init__(self, argv: list[str], timeout_s: float, output_tail: str) -> None:
        self.timeout_s = timeout_s
        detail = last_lines(output_tail)
        super().__init__(
            argv,
            None,
            output_tail,
            f"`{shell_words(argv)}` did not finish within {timeout_s:g} s and was killed"
            + (f": {detail}" if detail else ""),
        )


class CommandNotFound(CommandFailed):
    """The program is not installed (or not executable); the message names what to install."""

    def __init__(self, argv: list[str], hint: str) -> None:
        super().__init__(argv, None, "", f"`{argv[0]}` not found: {hint}")


def shell_words(argv: list[str], limit: int = 120) -> str:
    """argv as one short line for a message (long command lines are cut, marked with ...)."""
    text = " ".join(argv)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def last_lines(text: str, n: int = 3, limit: int = 300) -> str:
    """The last `n` non-empty lines of `text`, joined into one line of at most `limit` chars."""
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()][-n:]
    joined = " | ".join(lines)
    return joined if len(joined) <= limit else "..." + joined[-(limit - 3) :]


class RunDirError(VbenchError):
    """A run directory is missing, unreadable, or of an unknown format version."""


class RecordError(VbenchError):
    """A stored record (check document, manifest, samples) is damaged or of an unknown version."""


class WorkloadOutputError(VbenchError):
    """A workload tool's output is empty, not the expected format, or reports a failed job."""
