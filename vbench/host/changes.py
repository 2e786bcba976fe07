"""Host changes, recorded in the run directory before they are made and undone in reverse.

PLACEHOLDER written by the modes branch against the interface agreed with the lab helper, who
writes the real module (nvme-cli steps, driver binding, `vbench cleanup` replay); this one knows
only sysfs attribute writes.  The interface: `HostChange`, `ChangeJournal(run_dir)`,
`.apply(change)`, `.restore()`.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from vbench.errors import HostError

JOURNAL = "host-changes.json"


@dataclass(frozen=True)
class HostChange:
    kind: str  # "sysfs_write": write `after` to the file `target`
    target: str
    before: str
    after: str
    describe: str  # one line


class ChangeJournal:
    """The run's host changes: each is written to `run_dir/host-changes.json` before it is made."""

    def __init__(self, run_dir: Path) -> None:
        self.path = run_dir / JOURNAL
        self._entries: list[dict[str, object]] = []

    def _save(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"changes": self._entries}, indent=2) + "\n")
        tmp.replace(self.path)

    def apply(self, change: HostChange) -> None:
        if change.kind != "sysfs_write":
            raise HostError(f"cannot make host change of kind {change.kind!r}: {change.describe}")
        entry: dict[str, object] = {**asdict(change), "state": "planned"}
        self._entries.append(entry)
        self._save()  # recorded before it is made
        try:
            Path(change.target).write_text(change.after)
        except OSError as exc:
            entry["state"] = "failed"
            self._save()
            raise HostError(f"{change.describe}: {exc.strerror or exc}") from None
        entry["state"] = "made"
        self._save()

    def restore(self) -> None:
        """Undo every applied change, newest first; idempotent."""
        for entry in reversed(self._entries):
            if entry["state"] not in ("made", "planned"):
                continue
            try:
                Path(str(entry["target"])).write_text(str(entry["before"]))
                entry["state"] = "restored"
            except OSError as exc:
                entry["state"] = f"restore failed: {exc.strerror or exc}"
            self._save()
