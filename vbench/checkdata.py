"""One `vbench check` as plain data: the content of the check document, without pydantic.

    outcome = CheckOutcome.of(report, strict, requested)   # verdicts, ready, exit code
    outcome.data()    # the document as JSON data: what `vbench check --json` prints
    outcome.json()    # ... as text, byte for byte `CheckDocument.model_dump_json(indent=2)`

What a check document holds is defined here only: `vbench.checkdoc.CheckDocument.build` validates
`data()` into the typed record (its schema, and the loader of stored documents).  `vbench check`
prints and draws from this module so that it never imports pydantic, which alone costs more than
half of the command's start (issue 7, benchmarks/check_speed.py).  tests/test_checkdata.py holds
the JSON text equal to pydantic's on every testbed.

Pure core: no I/O.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any, Final

from vbench.model import ModeId
from vbench.readiness import (
    DEFAULT_REQUESTED,
    CheckReport,
    ModeVerdict,
    Status,
    all_ready,
    exit_code,
    mode_verdicts,
)

CHECK_FORMAT_VERSION: Final = 2
DOCUMENT_KIND: Final = "vbench.check"

# The document's host record, in order, with the value of a fact the report does not carry
# (`vbench.checkdoc.CheckHost` declares the same fields; a test holds them equal).
HOST_DEFAULTS: Final[Mapping[str, Any]] = {
    "hostname": None,
    "testbed": None,
    "arch": None,
    "cpu_vendor": None,
    "cpu_model": None,
    "kernel_release": None,
    "cmdline": None,
    "os_release": {},
    "kvm_backend": None,
    "libvirt_uri": None,
    "libvirt_driver": None,
    "libvirt_version": None,
    "hypervisor_version": None,
    "vbench_version": None,
    "checked_at": None,
    "probe": False,
    "duration_s": None,
}


def plain(value: Any) -> Any:
    """JSON data of a core value: dataclasses as objects in field order, enums as their values,
    tuples as lists (what pydantic makes of the same fields)."""
    if isinstance(value, Enum):
        return value.value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, Mapping):
        return {plain(k): plain(v) for k, v in value.items()}
    return value


@dataclass(frozen=True)
class CheckOutcome:
    """A check report and what the readiness rules conclude from it, for the requested modes."""

    report: CheckReport
    strict: bool
    requested: tuple[ModeId, ...]
    verdicts: tuple[ModeVerdict, ...]

    @classmethod
    def of(
        cls,
        report: CheckReport,
        strict: bool = False,
        requested: Iterable[ModeId] = DEFAULT_REQUESTED,
    ) -> CheckOutcome:
        verdicts = mode_verdicts(report.checks, report.inventory, strict, report.os_release)
        return cls(report, strict, tuple(requested), tuple(verdicts))

    @property
    def ready(self) -> bool:
        """Every requested mode is ready."""
        return all_ready(self.verdicts, self.requested)

    @property
    def exit_code(self) -> int:
        """Of `vbench check`: 0 ready, 2 a requested mode not ready, 1 not assessable."""
        return exit_code(self.verdicts, self.requested, self.report.checks)

    def data(self) -> dict[str, Any]:
        """The check document (format 2) as JSON data, keys in the document's order."""
        checks = self.report.checks
        host = {**HOST_DEFAULTS, **self.report.host}
        return {
            "format_version": CHECK_FORMAT_VERSION,
            "kind": DOCUMENT_KIND,
            "host": plain(host),
            "strict": self.strict,
            "requested_modes": plain(self.requested),
            "ready": self.ready,
            "exit_code": self.exit_code,
            "counts": {s.value: sum(1 for c in checks if c.status is s) for s in Status},
            "checks": plain(checks),
            "inventory": plain(self.report.inventory),
            "verdicts": [
                {
                    "mode": v.mode.value,
                    "title": v.title,
                    "requested": v.mode in self.requested,
                    **{k: val for k, val in plain(v).items() if k != "mode"},
                }
                for v in self.verdicts
            ],
        }

    def json(self) -> str:
        """`data()` as the text `vbench check --json` prints (without the final newline)."""
        return json.dumps(self.data(), indent=2, ensure_ascii=False)
