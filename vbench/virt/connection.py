"""Opening a libvirt connection, with errors a user can act on."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager, suppress

import libvirt

from vbench.errors import LibvirtUnavailable

DEFAULT_URI = "qemu:///system"


def resolve_uri(uri: str | None) -> str:
    """The URI to use, in virsh's order: -c/--connect, then LIBVIRT_DEFAULT_URI, then qemu:///system."""
    return uri or os.environ.get("LIBVIRT_DEFAULT_URI") or DEFAULT_URI


# libvirt calls its error handler from inside the failing API call. A Python function there runs
# bytecode, so a pending Ctrl-C or SIGTERM is raised inside the callback and the binding reports
# "SystemError: ... returned a result with an exception set" instead of KeyboardInterrupt.
# `slice` is a C callable that accepts (ctx, err) and never raises: it runs no bytecode, and the
# signal surfaces at the next Python line as a plain KeyboardInterrupt.
_IGNORE_LIBVIRT_ERROR = slice


def _silence_libvirt_stderr() -> None:
    # libvirt prints every error to stderr by default; we report errors ourselves, once.
    libvirt.registerErrorHandler(_IGNORE_LIBVIRT_ERROR, None)


def open_connection(uri: str | None = None) -> libvirt.virConnect:
    """Open a read-write connection or raise LibvirtUnavailable saying how to fix it."""
    _silence_libvirt_stderr()
    target = resolve_uri(uri)
    try:
        conn = libvirt.open(target)
    except libvirt.libvirtError as exc:
        msg = (exc.get_error_message() or str(exc)).strip()
        hint = (
            "start it with `systemctl start libvirtd` "
            "(without systemd: `virtlogd -d && libvirtd -d`)"
        )
        if target.startswith("test://"):
            hint = "check the test driver file path"
        elif "no connection driver available" in msg:
            # this libvirt lacks the URI's driver (xen:// needs the libxl one, on a Xen dom0)
            hint = (
                "this libvirt has no driver for it (Xen: run on a dom0 with libvirt's libxl "
                "driver, Debian: `apt-get install libvirt-daemon-driver-xen`)"
                if target.startswith("xen")
                else "this libvirt has no driver for it: install the hypervisor's libvirt driver"
            )
        raise LibvirtUnavailable(f"cannot connect to libvirt at {target}: {msg}; {hint}") from None
    if conn is None:  # pragma: no cover - old bindings returned None instead of raising
        raise LibvirtUnavailable(f"cannot connect to libvirt at {target}")
    return conn


@contextmanager
def connection(uri: str | None = None) -> Iterator[libvirt.virConnect]:
    conn = open_connection(uri)
    try:
        yield conn
    finally:
        with suppress(libvirt.libvirtError):
            conn.close()
