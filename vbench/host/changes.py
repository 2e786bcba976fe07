"""Host changes: explicit, recorded in the run directory before they are made, always restored.

The journal is the one record of what a run changes on the host: the modes' sysfs and nvme-cli
changes (`--prepare-host`) and the run's own network namespace and taps (vbench.host.netns).

A `HostChange` says what changes (kind, target), from what (before) to what (after), in a line a
user reads.  `ChangeJournal.apply` writes the change to `<run dir>/host-changes.json` (atomically,
fsynced) marked *planned*, makes it, then marks it *made*; `restore` undoes every change that was
planned or made, newest first, and reports what it could not undo instead of stopping.  A run
killed with SIGKILL leaves the journal behind: `vbench cleanup` loads it and restores.

While a journal has changes in force its process holds an flock on `host-changes.lock`, so
`vbench cleanup` never undoes the changes of a live run.

Kinds and their targets (the record alone must be enough to undo a change after a SIGKILL):
  sysfs_write            an attribute's path; before/after are its values.  sriov_numvfs goes
                         through 0 when it changes between two non-zero counts (the kernel's rule).
  driver_bind            a PCI device's sysfs directory (…/bus/pci/devices/<addr>); before/after
                         are a driver name or "none", with the driver_override the device had
                         ("vfio-pci (driver_override vfio-pci)").  Binding goes through
                         driver_override.
  nvme_virt_mgmt         "<ctrl dev> ctrl <id> VQ|VI" (flexible resources assigned to a secondary
                         controller; counts) or "<ctrl dev> ctrl <id> state" (offline/online).
  nvme_primary_flexible  "<ctrl dev> ctrl <id> reset <PF sysfs dir>": the primary controller's
                         flexible resources, "VQ <n> VI <n>"; takes effect after the PF reset that
                         is part of the change.
  nvme_attach_ns         "<ctrl dev> ns <nsid> ctrl <id>"; before/after are detached/attached.
  netns                  a run's network namespace `vbench-<run-id>`; before/after are
                         absent/present.  Undone = deleted, with whatever runs in it (peer
                         servers) and the taps moved into it.
  tap                    "<tap> netns <namespace>": a guest's tap, made in the root namespace
                         and moved into the run's namespace once its guest runs; before/after are
                         absent/present.  Undone = deleted, wherever it is.
  Neither is undone while the process that made the namespace still runs (its owner marker in
  /run/vbench/netns names a live pid other than the one undoing): a live run's network is never
  touched.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from vbench.errors import HostError, VbenchError
from vbench.host.nvme import (
    ACT_ASSIGN,
    ACT_OFFLINE,
    ACT_ONLINE,
    ACT_PRIMARY_FLEXIBLE,
    RESOURCE_TYPES,
    RT_VI,
    RT_VQ,
    NvmeCli,
)

JOURNAL = "host-changes.json"
LOCK = "host-changes.lock"
FORMAT = 1
NONE = "none"
ABSENT, PRESENT = "absent", "present"  # before/after of the network kinds

PLANNED, MADE, FAILED, RESTORED, RESTORE_FAILED = (
    "planned",  # recorded, maybe made (the process died or the change failed half-way)
    "made",
    "failed",  # making it raised: parts of it may be in force
    "restored",
    "restore-failed",
)
IN_FORCE = (PLANNED, MADE, FAILED, RESTORE_FAILED)  # not known to be undone


class JournalBusy(HostError):
    """The journal belongs to a vbench process that still runs: its changes are not leftovers."""


@dataclass(frozen=True)
class HostChange:
    kind: str  # "sysfs_write" | "driver_bind" | "nvme_virt_mgmt" | "nvme_primary_flexible" | …
    target: str  # what changes, e.g. "/sys/bus/pci/devices/0000:00:04.0/sriov_numvfs"
    before: str  # what it was
    after: str  # what it becomes
    describe: str  # one line a user reads

    def undo_describe(self) -> str:
        return f"undo: {self.describe}"


# --- making and undoing one change ------------------------------------------------------------

_SECONDARY = re.compile(r"^(?P<dev>\S+) ctrl (?P<ctrl>\d+) (?P<what>VQ|VI|state)$")
_PRIMARY = re.compile(r"^(?P<dev>\S+) ctrl (?P<ctrl>\d+) reset (?P<pf>\S+)$")
_ATTACH = re.compile(r"^(?P<dev>\S+) ns (?P<ns>\d+) ctrl (?P<ctrl>\d+)$")
_FLEX = re.compile(r"^VQ (?P<vq>\d+) VI (?P<vi>\d+)$")


def _read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError as exc:
        raise HostError(f"cannot read {path}: {exc.strerror or exc}") from None


def _write(path: Path, value: str) -> None:
    """One write(2) of `value`, as sysfs wants it; a refusal names the file and the reason."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_TRUNC)
    except OSError as exc:
        raise HostError(f"cannot open {path} for writing: {exc.strerror or exc}") from None
    try:
        os.write(fd, value.encode() + b"\n")
    except OSError as exc:
        raise HostError(f"writing {value!r} to {path} failed: {exc.strerror or exc}") from None
    finally:
        os.close(fd)


def _set_attr(path: Path, value: str) -> None:
    if path.name == "sriov_numvfs":
        current = _read(path)
        if current == value:
            return
        if current != "0" and value != "0":
            _write(path, "0")  # the kernel changes a non-zero VF count only through 0
    _write(path, value)


def _driver_of(dev_dir: Path) -> str:
    try:
        return os.path.basename(os.readlink(dev_dir / "driver"))
    except OSError:
        return NONE


_BINDING = re.compile(r"^(?P<driver>\S+)(?: \(driver_override (?P<override>\S+)\))?$")


def binding(driver: str | None, override: str | None) -> str:
    """A driver_bind value: the bound driver ("none") and a driver_override that was set."""
    text = driver or NONE
    return f"{text} (driver_override {override})" if override else text


def _set_binding(dev_dir: Path, value: str, *, making: bool) -> None:
    """Bring the PCI device at `dev_dir` to the binding `value` (see `binding`).

    Binding goes through driver_override, which makes exactly that driver take the device
    (vfio-pci has no ID table of its own).  Made, the override stays on the new driver while the
    change is in force; undone, the override the device had comes back.
    """
    m = _BINDING.match(value)
    if m is None:
        raise HostError(f"unreadable driver binding {value!r} in the journal")
    driver = m["driver"]
    override = driver if making and driver != NONE else (m["override"] or "")
    addr = dev_dir.name
    current = _driver_of(dev_dir)
    if current != driver:
        if current != NONE:
            _write(dev_dir / "driver" / "unbind", addr)
        if driver != NONE:
            _write(dev_dir / "driver_override", driver)
            _write(dev_dir.parent.parent / "drivers_probe", addr)  # …/bus/pci/drivers_probe
            now = _driver_of(dev_dir)
            if now != driver:
                raise HostError(f"{addr} is bound to {now}, not {driver}, after the probe (dmesg)")
    _write(dev_dir / "driver_override", override)


def _match(rx: re.Pattern[str], change: HostChange) -> re.Match[str]:
    m = rx.match(change.target)
    if m is None:
        raise HostError(f"unreadable {change.kind} target {change.target!r} in the journal")
    return m


def _flex(text: str) -> tuple[int, int]:
    m = _FLEX.match(text)
    if m is None:
        raise HostError(f"unreadable flexible-resource value {text!r} in the journal")
    return int(m["vq"]), int(m["vi"])


def _set(change: HostChange, value: str, nvme: NvmeCli) -> None:
    """Bring `change.target` to `value` (the change's `after` to make it, `before` to undo it)."""
    kind = change.kind
    if kind == "sysfs_write":
        _set_attr(Path(change.target), value)
    elif kind == "driver_bind":
        _set_binding(Path(change.target), value, making=value == change.after)
    elif kind == "nvme_virt_mgmt":
        m = _match(_SECONDARY, change)
        dev, ctrl = Path(m["dev"]), int(m["ctrl"])
        if m["what"] == "state":
            act = ACT_ONLINE if value == "online" else ACT_OFFLINE
            nvme.virt_mgmt(dev, ctrl, RT_VQ, act, 0)
        else:
            nvme.virt_mgmt(dev, ctrl, RESOURCE_TYPES[m["what"]], ACT_ASSIGN, int(value))
    elif kind == "nvme_primary_flexible":
        m = _match(_PRIMARY, change)
        dev, ctrl = Path(m["dev"]), int(m["ctrl"])
        vq, vi = _flex(value)
        nvme.virt_mgmt(dev, ctrl, RT_VI, ACT_PRIMARY_FLEXIBLE, vi)
        nvme.virt_mgmt(dev, ctrl, RT_VQ, ACT_PRIMARY_FLEXIBLE, vq)
        _write(Path(m["pf"]) / "reset", "1")  # the primary's new allocation takes effect
    elif kind in ("netns", "tap"):
        # the network's own module makes and deletes them (imported here: it imports this one)
        from vbench.host import netns

        netns.set_journalled(kind, change.target, present=value == PRESENT)
    elif kind == "nvme_attach_ns":
        m = _match(_ATTACH, change)
        dev, ns, ctrl = Path(m["dev"]), int(m["ns"]), int(m["ctrl"])
        if value == "attached":
            nvme.attach_ns(dev, ns, ctrl)
        else:
            nvme.detach_ns(dev, ns, ctrl)
    else:
        raise HostError(f"unknown host change kind {kind!r} in the journal")


# --- the journal ------------------------------------------------------------------------------


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class ChangeJournal:
    """The host changes of one run, on disk before each is made, undone by `restore`."""

    def __init__(self, run_dir: Path, nvme: NvmeCli | None = None) -> None:
        self.run_dir = run_dir
        self.path = run_dir / JOURNAL
        self.nvme = nvme or NvmeCli()
        self._entries: list[dict[str, str]] = []
        self._lock_fd: int | None = None
        if self.path.exists():
            self._entries = self._read()
            if self.pending():
                raise HostError(
                    f"{self.path} holds host changes that were never restored: "
                    f"run `vbench cleanup -o {run_dir.parent}` first"
                )

    # reading
    def _read(self) -> list[dict[str, str]]:
        try:
            doc: Any = json.loads(self.path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise HostError(f"cannot read the host-change journal {self.path}: {exc}") from None
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise HostError(f"{self.path} is not a vbench host-change journal of format {FORMAT}")
        entries = doc.get("changes")
        if not isinstance(entries, list):
            raise HostError(f"{self.path} has no list of changes")
        return [{k: str(v) for k, v in e.items()} for e in entries]

    @property
    def changes(self) -> list[tuple[HostChange, str]]:
        """Every recorded change with its state, oldest first."""
        return [(_change(e), e["state"]) for e in self._entries]

    def pending(self) -> list[HostChange]:
        """The changes that may still be in force (planned, made, failed half-way, not undone)."""
        return [_change(e) for e in self._entries if e["state"] in IN_FORCE]

    # writing
    def _save(self) -> None:
        doc = {"format": FORMAT, "pid": os.getpid(), "changes": self._entries}
        data = json.dumps(doc, indent=2).encode() + b"\n"
        self.run_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{JOURNAL}.", dir=self.run_dir)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        _fsync_dir(self.run_dir)  # the rename itself must survive a crash

    def _lock(self) -> None:
        if self._lock_fd is not None:
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.run_dir / LOCK, os.O_CREAT | os.O_RDWR, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise JournalBusy(
                f"the host changes in {self.run_dir} belong to a vbench process that still runs"
            ) from None
        self._lock_fd = fd

    def _unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def apply(self, change: HostChange) -> None:
        """Record `change`, make it, mark it made.  A failure is recorded, then raised."""
        self._lock()
        entry = {**asdict(change), "state": PLANNED}
        self._entries.append(entry)
        self._save()
        try:
            _set(change, change.after, self.nvme)
        except BaseException as exc:
            entry["state"] = FAILED
            entry["error"] = str(exc)
            self._save()
            if isinstance(exc, VbenchError):
                raise HostError(f"{change.describe}: {exc}") from None
            if isinstance(exc, Exception):
                raise HostError(f"{change.describe}: {type(exc).__name__}: {exc}") from None
            raise  # Ctrl-C/SIGTERM: the entry says the change may be half made
        entry["state"] = MADE
        self._save()

    def _undo(self, entry: dict[str, str]) -> str | None:
        """Undo one entry's change and save its new state; the problem line if it failed."""
        change = _change(entry)
        was = entry["state"]
        try:
            _set(change, change.before, self.nvme)
        except Exception as exc:
            entry["state"] = RESTORE_FAILED
            entry["error"] = str(exc)
            maybe = "" if was in (MADE, RESTORE_FAILED) else " (it may not have been made)"
            problem: str | None = f"could not undo '{change.describe}'{maybe}: {exc}"
        else:
            entry["state"] = RESTORED
            problem = None
        with contextlib.suppress(OSError):
            self._save()
        return problem

    def undo(self, change: HostChange) -> None:
        """Undo one change now, before the rest (a guest's tap when its trial ends).

        HostError when it cannot be undone: it stays in force, for `restore` and `vbench cleanup`.
        A change not in force (never recorded, or undone already) is left as it is.
        """
        entry = next(
            (e for e in reversed(self._entries) if e["state"] in IN_FORCE and _change(e) == change),
            None,
        )
        if entry is None:
            return
        problem = self._undo(entry)
        if not self.pending():
            self._unlock()
        if problem is not None:
            raise HostError(problem)

    def restore(self) -> list[str]:
        """Undo every change still in force, newest first.  Returns one line per problem."""
        problems: list[str] = []
        for entry in reversed(self._entries):
            if entry["state"] not in IN_FORCE:
                continue
            # one failed undo must not keep the others from running
            if (problem := self._undo(entry)) is not None:
                problems.append(problem)
        if not self.pending():
            self._unlock()
        return problems

    @classmethod
    def load(cls, run_dir: Path, nvme: NvmeCli | None = None) -> ChangeJournal:
        """The journal a run left behind (for `vbench cleanup`); refuses one a live run holds."""
        journal = cls.__new__(cls)
        journal.run_dir = run_dir
        journal.path = run_dir / JOURNAL
        journal.nvme = nvme or NvmeCli()
        journal._lock_fd = None
        if not journal.path.exists():
            raise HostError(f"{run_dir} has no host-change journal ({JOURNAL})")
        journal._entries = journal._read()
        if journal.pending():
            journal._lock()
            journal._entries = journal._read()  # re-read under the lock
        return journal


def _change(entry: dict[str, str]) -> HostChange:
    try:
        return HostChange(
            kind=entry["kind"],
            target=entry["target"],
            before=entry["before"],
            after=entry["after"],
            describe=entry["describe"],
        )
    except KeyError as exc:
        raise HostError(f"a host-change journal entry lacks {exc}") from None


def find_journals(output: Path) -> list[Path]:
    """Run directories under `output` that hold a host-change journal."""
    if not output.is_dir():
        return []
    return sorted(d for d in output.iterdir() if (d / JOURNAL).is_file())


def leftover_journals(output: Path) -> tuple[list[ChangeJournal], list[str]]:
    """Journals under `output` with changes in force whose run is gone (for `vbench cleanup`).

    Returns them (each holding its lock) and one line per journal that could not be read.
    """
    found: list[ChangeJournal] = []
    problems: list[str] = []
    for run_dir in find_journals(output):
        try:
            journal = ChangeJournal.load(run_dir)
        except JournalBusy:
            continue  # a live run restores its own changes
        except HostError as exc:
            problems.append(str(exc))
            continue
        if journal.pending():
            found.append(journal)
    return found, problems
