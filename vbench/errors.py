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
    """A host command exited non-zero; carries argv, exit code and the tail of its output."""

    def __init__(self, argv: list[str], returncode: int, output_tail: str) -> None:
        self.argv = argv
        self.returncode = returncode
        self.output_tail = output_tail
        tail = output_tail.strip().splitlines()[-1:] if output_tail.strip() else []
        detail = f": {tail[0]}" if tail else ""
        super().__init__(f"`{' '.join(argv)}` exited with {returncode}{detail}")


class RunDirError(VbenchError):
    """A run directory is missing, unreadable, or of an unknown format version."""


class RecordError(VbenchError):
    """A stored record (check document, manifest, samples) is damaged or of an unknown version."""


class WorkloadOutputError(VbenchError):
    """A workload tool's output is empty, not the expected format, or reports a failed job."""
