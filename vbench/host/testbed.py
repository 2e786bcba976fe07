"""Run a command against a recorded testbed (tests/data/testbeds/<name>/) under umockdev.

umockdev-run preloads a library that makes /sys device trees (and libudev) show the recording
in `devices.umockdev`; it sets UMOCKDEV_DIR in the environment.  The testbed's `proc/`, `sys/` and
`dev/` snapshots are read through `HostPaths.for_testbed()` instead.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import NoReturn

from vbench.errors import HostError

DEVICES_FILE = "devices.umockdev"


def in_testbed() -> bool:
    """True when running under umockdev-run (or a umockdev Testbed), which sets UMOCKDEV_DIR."""
    return bool(os.environ.get("UMOCKDEV_DIR"))


def devices_file(testbed: Path) -> Path:
    """The recording of a testbed directory; raises HostError when it is not a testbed."""
    path = testbed / DEVICES_FILE
    if not path.is_file():
        raise HostError(f"{testbed} is not a testbed: {DEVICES_FILE} is missing")
    return path


def umockdev_argv(testbed: Path, argv: list[str]) -> list[str]:
    """The command line that runs `argv` under umockdev-run with the testbed's device recording."""
    exe = shutil.which("umockdev-run")
    if exe is None:
        raise HostError("umockdev-run is not installed (apt-get install umockdev)")
    return [exe, "-d", str(devices_file(testbed).resolve()), "--", *argv]


def reexec_under_umockdev(testbed: Path, argv: list[str]) -> NoReturn:
    """Replace this process with `argv` run under umockdev-run on the testbed's recording.

    `argv` is the full command to run, e.g. `[sys.executable, "-m", "vbench.host.inventory",
    "--testbed", str(testbed)]`; callers pass it only when `in_testbed()` is False, so the
    re-executed process (which has UMOCKDEV_DIR set) does not re-execute again.
    """
    full = umockdev_argv(testbed, argv)
    os.execv(full[0], full)
