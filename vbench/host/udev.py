"""The one way vbench opens libudev: `udev_context()`, a `pyudev.Context` found without a search.

pyudev finds libudev with `ctypes.util.find_library("udev")`, which runs `ldconfig -p` in a
subprocess: 10-30 ms of wall time, a tenth of `vbench check` (benchmarks/check_speed.py).  Its
answer is the soname libudev.so.1 on every systemd and eudev distribution since 2012, so that is
loaded first; umockdev's preload library intercepts it the same way.  When that fails (a libudev
elsewhere), pyudev searches as usual.
"""

from __future__ import annotations

import threading

import pyudev
import pyudev._ctypeslib.utils as _loader

LIBUDEV_SONAME = "libudev.so.1"
_lock = threading.Lock()  # the loader's global is swapped for the length of one Context()


def _soname(name: str) -> str | None:
    return LIBUDEV_SONAME if name == "udev" else None


def udev_context() -> pyudev.Context:
    with _lock:
        search = _loader.find_library
        _loader.find_library = _soname
        try:
            return pyudev.Context()
        except (ImportError, OSError):
            pass  # no libudev.so.1 here: search below
        finally:
            _loader.find_library = search
    return pyudev.Context()
