"""`udev_context()`: libudev by its soname (no `ldconfig -p`), the same devices as pyudev finds."""

from __future__ import annotations

import ctypes.util
from pathlib import Path

import pyudev
import pyudev._ctypeslib.utils as loader

from vbench.host.udev import LIBUDEV_SONAME, udev_context


def test_same_devices_as_pyudev_s_own_search_and_the_search_restored() -> None:
    ours = udev_context()
    assert ours._libudev._name == LIBUDEV_SONAME  # loaded by soname: find_library never ran
    assert loader.find_library is ctypes.util.find_library
    theirs = pyudev.Context()
    for subsystem in ("pci", "block", "net"):
        names = sorted(d.sys_name for d in ours.list_devices(subsystem=subsystem))
        assert names == sorted(d.sys_name for d in theirs.list_devices(subsystem=subsystem))


def test_every_context_comes_from_udev_context() -> None:
    root = Path(__file__).parent.parent / "vbench"
    direct = [
        str(p.relative_to(root))
        for p in root.rglob("*.py")
        if "pyudev.Context()" in p.read_text() and p.name != "udev.py"
    ]
    assert direct == [], f"pyudev.Context() outside vbench/host/udev.py: {direct}"
