"""Transient benchmark guests: scratch files, start, destroy, and cleanup of leftovers.

Every guest is transient (`createXML`), named `vbench-<run-id>-...`, and carries a `<metadata>`
element in vbench's namespace naming its run.  Its disk image and console log live in a per-run
scratch directory that QEMU can reach (QEMU runs as an unprivileged user under qemu:///system and
cannot traverse /root), guarded by a lock file so `vbench cleanup` never touches a live run.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import libvirt

from vbench.domxml import METADATA_NS
from vbench.errors import GuestError, HostError

NAME_PREFIX = "vbench-"
LOCK = ".lock"
PREFILL_CHUNK = 1 << 20  # disk sizes are whole MiB (scenario.disk.size_mib)


def scratch_root() -> Path:
    """Where guests' disk images and console logs live while a run goes on."""
    env = os.environ.get("VBENCH_SCRATCH")
    if env:
        return Path(env)
    if os.geteuid() == 0:
        return Path("/var/lib/vbench/scratch")
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "vbench" / "scratch"


def _check_reachable(path: Path) -> None:
    """Every directory above `path` must be searchable by others, or QEMU cannot open the disk."""
    for p in path.parents:
        if p.stat().st_mode & 0o001 == 0:
            raise HostError(
                f"QEMU cannot reach the scratch directory {path}: {p} is not searchable by other "
                "users; set VBENCH_SCRATCH to a directory under /var/lib (or `chmod o+x` it)"
            )


class RunScratch:
    """The scratch directory of one run, locked while the run lives."""

    def __init__(self, run_id: str, root: Path | None = None) -> None:
        self.path = (root or scratch_root()) / run_id
        self._lock_fd: int | None = None

    def __enter__(self) -> RunScratch:
        created = [p for p in (self.path, *self.path.parents) if not p.exists()]
        try:
            self.path.mkdir(parents=True, exist_ok=False)
            # QEMU runs as an unprivileged user: it must traverse to the files libvirt labels for it
            for p in created:
                p.chmod(p.stat().st_mode | 0o005)
            if os.geteuid() == 0:  # qemu:///system: QEMU runs as another user
                try:
                    _check_reachable(self.path)
                except HostError:
                    shutil.rmtree(self.path, ignore_errors=True)
                    raise
            self._lock_fd = os.open(self.path / LOCK, os.O_CREAT | os.O_RDWR, 0o600)
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            raise HostError(
                f"cannot create the scratch directory {self.path}: {exc.strerror}"
            ) from None
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def make_disk(self, name: str, size_mib: int) -> Path:
        """A raw disk image whose every block holds written, incompressible data.

        Written, not fallocated: for allocated-but-unwritten extents a file system returns zeros
        without touching the device, so reads would measure nothing (a fallocated file gave the
        bare-metal baseline 430k random 4k reads/s at 0.7 us p99), and first writes would pay the
        extent conversion.  Dropped from the page cache afterwards so no one starts warm.
        """
        path = self.path / name
        chunk = os.urandom(PREFILL_CHUNK)
        try:
            f = path.open("xb")
        except OSError as exc:
            raise HostError(f"cannot create the disk image {path}: {exc.strerror}") from None
        try:
            with f:
                for _ in range((size_mib << 20) // PREFILL_CHUNK):
                    f.write(chunk)
                f.flush()
                os.fsync(f.fileno())
                os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
        except OSError as exc:
            path.unlink(missing_ok=True)
            raise HostError(
                f"cannot write a {size_mib} MiB disk image in {self.path}: {exc.strerror}; "
                "free some space or set VBENCH_SCRATCH to a larger file system"
            ) from None
        return path

    def file(self, name: str) -> Path:
        """An empty file QEMU can write (e.g. the console log)."""
        path = self.path / name
        path.touch(mode=0o644)
        return path


def _libvirt_message(exc: libvirt.libvirtError) -> str:
    return (exc.get_error_message() or str(exc)).strip()


def start_guest(conn: libvirt.virConnect, xml: str) -> libvirt.virDomain:
    """Start a transient domain; a libvirt refusal becomes a one-line GuestError."""
    try:
        dom = conn.createXML(xml, 0)
    except libvirt.libvirtError as exc:
        raise GuestError(f"libvirt refused to start the guest: {_libvirt_message(exc)}") from None
    if dom is None:  # pragma: no cover - old bindings
        raise GuestError("libvirt refused to start the guest")
    return dom


def destroy_guest(dom: libvirt.virDomain) -> None:
    """Destroy a guest; already gone is fine."""
    try:
        dom.destroy()
    except libvirt.libvirtError as exc:
        if exc.get_error_code() not in (
            libvirt.VIR_ERR_NO_DOMAIN,
            libvirt.VIR_ERR_OPERATION_INVALID,
        ):
            raise
    with contextlib.suppress(libvirt.libvirtError):
        if dom.isPersistent():
            dom.undefine()


@contextlib.contextmanager
def running_guest(conn: libvirt.virConnect, xml: str) -> Iterator[libvirt.virDomain]:
    """A started guest that is destroyed on every way out (return, exception, Ctrl-C)."""
    try:
        dom = start_guest(conn, xml)
    except GuestError:
        raise  # libvirt refused: nothing of ours runs (the name may belong to another guest)
    except BaseException:
        # Ctrl-C/SIGTERM while libvirt was inside createXML: the guest may run although its
        # handle never reached us, so find it by its name.
        _destroy_by_name(conn, xml)
        raise
    try:
        yield dom
    finally:
        destroy_guest(dom)


def _destroy_by_name(conn: libvirt.virConnect, xml: str) -> None:
    name = ET.fromstring(xml).findtext("name")
    if not name:
        return
    with contextlib.suppress(libvirt.libvirtError):
        destroy_guest(conn.lookupByName(name))


@dataclass(frozen=True)
class Leftover:
    name: str
    run_id: str
    owner_pid: int | None = None

    def owner_alive(self) -> bool:
        """True when the vbench process that started this guest still runs."""
        if self.owner_pid is None:
            return False
        try:
            cmdline = Path(f"/proc/{self.owner_pid}/cmdline").read_bytes()
        except OSError:
            return False
        return b"vbench" in cmdline


def vbench_metadata(dom: libvirt.virDomain) -> Leftover | None:
    """The domain's vbench metadata, or None when it has none (then it is not ours)."""
    try:
        text = dom.metadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, METADATA_NS, 0)
        el = ET.fromstring(text)
    except (libvirt.libvirtError, ET.ParseError):
        return None
    run_id = el.get("id")
    if not run_id:
        return None
    pid = el.get("pid")
    return Leftover(dom.name(), run_id, int(pid) if pid and pid.isdigit() else None)


def find_leftovers(conn: libvirt.virConnect) -> list[tuple[libvirt.virDomain, Leftover]]:
    """vbench guests: the name prefix AND our metadata element (never anything else)."""
    found = []
    for dom in conn.listAllDomains(0):
        name = dom.name()
        if not name.startswith(NAME_PREFIX):
            continue
        info = vbench_metadata(dom)
        if info is None:
            continue
        found.append((dom, info))
    return found


def _lock_held(run_dir: Path) -> bool:
    """True when a live run holds this scratch directory's lock."""
    lock = run_dir / LOCK
    try:
        fd = os.open(lock, os.O_RDWR)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


def live_run_ids(root: Path | None = None) -> set[str]:
    base = root or scratch_root()
    if not base.is_dir():
        return set()
    return {d.name for d in base.iterdir() if d.is_dir() and _lock_held(d)}


def stale_scratch_dirs(root: Path | None = None) -> list[Path]:
    """Scratch directories whose run no longer holds its lock (the run died)."""
    base = root or scratch_root()
    if not base.is_dir():
        return []
    return [d for d in sorted(base.iterdir()) if d.is_dir() and not _lock_held(d)]
