"""The host-check document: one typed, versioned record from `vbench check` to the report.

    CheckDocument.build(report, strict, requested)   # vbench.host.checks.check_document
    doc.model_dump_json()                             # the run manifest (same text as
                                                      # `vbench check --json`: vbench.checkdata)
    load_check_document(data, source)                 # the one loader: upgrades v1, refuses others

Pure core (pydantic only).  What a document holds is `vbench.checkdata`'s (plain data, so that
`vbench check` never loads pydantic); this module types it and reads it back.  The verdicts are
stored, with structured remedies that name the checks they fix, so readers never recompute them
nor parse remedy text.  Format history:

  1  verdict remedies were strings "check.id, other.id: text"; host facts an open mapping.
  2  remedies are {checks: [...], text}; host facts are a closed record.  A v1 document is upgraded
     by recomputing its verdicts from its checks and inventory (what v1 stored was derived from
     them by the same rules).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, JsonValue, TypeAdapter, ValidationError

from vbench.checkdata import CHECK_FORMAT_VERSION as CHECK_FORMAT_VERSION
from vbench.checkdata import DOCUMENT_KIND as DOCUMENT_KIND
from vbench.checkdata import CheckOutcome
from vbench.errors import RecordError
from vbench.inventory import Inventory
from vbench.model import ModeId
from vbench.readiness import (
    DEFAULT_REQUESTED,
    CheckReport,
    CheckResult,
    ExcludedDevice,
    OfferedDevice,
    Remedy,
    Status,
)


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CheckHost(_Record):
    """What `vbench check` saw of the host it ran on (None: not known there).

    The same fields, in the same order, as `vbench.checkdata.HOST_DEFAULTS`.
    """

    hostname: str | None = None
    testbed: str | None = None  # the umockdev testbed read instead of the live host
    arch: str | None = None
    cpu_vendor: str | None = None
    cpu_model: str | None = None
    kernel_release: str | None = None
    cmdline: str | None = None
    os_release: dict[str, str] = {}
    kvm_backend: str | None = None
    libvirt_uri: str | None = None
    libvirt_driver: str | None = None
    libvirt_version: str | None = None
    hypervisor_version: str | None = None
    vbench_version: str | None = None
    checked_at: str | None = None
    probe: bool = False
    duration_s: float | None = None


class CheckRecord(_Record):
    """One check as stored; `result()` is the core's `CheckResult` (same fields)."""

    id: str
    title: str
    status: Status
    observed: str
    remedy: str | None = None
    gates: tuple[ModeId, ...] = ()
    degrades: tuple[ModeId, ...] = ()
    data: dict[str, JsonValue] = {}

    def result(self) -> CheckResult:
        return CheckResult(
            id=self.id,
            title=self.title,
            status=self.status,
            observed=self.observed,
            remedy=self.remedy,
            gates=self.gates,
            degrades=self.degrades,
            data=dict(self.data),
        )


class VerdictRecord(_Record):
    """Can the host do this mode; if not, which checks block it and the fix for each."""

    mode: ModeId
    title: str
    requested: bool
    ready: bool
    summary: str
    blockers: tuple[str, ...] = ()
    remedies: tuple[Remedy, ...] = ()
    warnings: tuple[str, ...] = ()
    offered: tuple[OfferedDevice, ...] = ()
    excluded: tuple[ExcludedDevice, ...] = ()


class CheckDocument(_Record):
    """Everything one `vbench check` concluded: host facts, checks, inventory, verdicts."""

    format_version: Literal[2] = CHECK_FORMAT_VERSION
    kind: Literal["vbench.check"] = DOCUMENT_KIND
    host: CheckHost
    strict: bool
    requested_modes: tuple[ModeId, ...]
    ready: bool  # every requested mode is ready
    exit_code: int  # of `vbench check`: 0 ready, 2 a requested mode not ready, 1 not assessable
    counts: dict[Status, int]
    checks: tuple[CheckRecord, ...]
    inventory: Inventory
    verdicts: tuple[VerdictRecord, ...]

    @classmethod
    def build(
        cls,
        report: CheckReport,
        strict: bool = False,
        requested: Iterable[ModeId] = DEFAULT_REQUESTED,
    ) -> CheckDocument:
        """The document of a report: `vbench.checkdata` says what it holds, this types it."""
        return cls.model_validate(CheckOutcome.of(report, strict, requested).data())

    def report(self) -> CheckReport:
        """The core's view (for the readiness rules)."""
        return CheckReport(
            host=self.host.model_dump(),
            checks=tuple(c.result() for c in self.checks),
            inventory=self.inventory,
        )

    def verdict(self, mode: ModeId) -> VerdictRecord | None:
        return next((v for v in self.verdicts if v.mode is mode), None)

    def junit_xml(self) -> str:
        """JUnit XML with one testcase per check.

        FAIL -> <failure>; WARN -> <failure type="warning"> under strict, else <system-out>;
        SKIP -> <skipped>; the per-mode verdicts are testsuite properties.
        """
        strict = self.strict
        failures = sum(
            1
            for c in self.checks
            if c.status is Status.FAIL or (strict and c.status is Status.WARN)
        )
        suites = ET.Element("testsuites", name="vbench check")
        suite = ET.SubElement(
            suites,
            "testsuite",
            name="vbench.check",
            tests=str(len(self.checks)),
            failures=str(failures),
            errors="0",
            skipped=str(self.counts.get(Status.SKIP, 0)),
        )
        if self.host.hostname:
            suite.set("hostname", self.host.hostname)
        props = ET.SubElement(suite, "properties")
        ET.SubElement(props, "property", name="format_version", value=str(self.format_version))
        ET.SubElement(props, "property", name="strict", value=str(strict).lower())
        ET.SubElement(
            props,
            "property",
            name="requested_modes",
            value=",".join(m.value for m in self.requested_modes),
        )
        for v in self.verdicts:
            ET.SubElement(
                props, "property", name=f"mode.{v.mode.value}.ready", value=str(v.ready).lower()
            )
            ET.SubElement(props, "property", name=f"mode.{v.mode.value}.summary", value=v.summary)
        for c in self.checks:
            group = c.id.split(".", 1)[0]
            case = ET.SubElement(
                suite, "testcase", classname=f"vbench.check.{group}", name=f"{c.id}: {c.title}"
            )
            body = c.observed + (f"\nremedy: {c.remedy}" if c.remedy else "")
            if c.status is Status.FAIL:
                el = ET.SubElement(case, "failure", message=c.observed, type="fail")
                el.text = body
            elif c.status is Status.WARN and strict:
                el = ET.SubElement(case, "failure", message=c.observed, type="warning")
                el.text = body
            elif c.status is Status.SKIP:
                ET.SubElement(case, "skipped", message=c.observed)
            else:
                out = ET.SubElement(case, "system-out")
                out.text = f"{c.status.value}: {body}"
        ET.indent(suites)
        return (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            + ET.tostring(suites, encoding="unicode")
            + "\n"
        )


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err["loc"]) or "(document)"
    return f"{loc}: {err['msg']}"


def _upgrade_v1(data: Mapping[str, Any]) -> CheckDocument:
    """v1 -> v2: keep host, checks, inventory and options; recompute the verdicts."""
    checks = tuple(CheckRecord.model_validate(c).result() for c in data.get("checks") or ())
    inv = TypeAdapter(Inventory).validate_python(data.get("inventory") or {})
    report = CheckReport(host=dict(data.get("host") or {}), checks=checks, inventory=inv)
    requested = tuple(ModeId(m) for m in data.get("requested_modes") or DEFAULT_REQUESTED)
    return CheckDocument.build(report, bool(data.get("strict")), requested)


def load_check_document(data: object, source: str) -> CheckDocument:
    """The one loader of a check document (parsed JSON): v2 as is, v1 upgraded, else RecordError.

    `source` names where it came from in the error, e.g. `reports/x/manifest.json: checks`.
    """
    if isinstance(data, CheckDocument):
        return data
    if not isinstance(data, Mapping):
        raise RecordError(f"{source}: not a vbench check document (a JSON object)")
    version = data.get("format_version")
    try:
        if version == CHECK_FORMAT_VERSION:
            return CheckDocument.model_validate(data)
        if version == 1:
            return _upgrade_v1(data)
    except ValidationError as exc:
        raise RecordError(f"{source}: {_first_error(exc)}") from None
    except (ValueError, TypeError) as exc:
        raise RecordError(f"{source}: cannot upgrade format_version 1: {exc}") from None
    raise RecordError(
        f"{source}: check document format_version {version!r} is not one this vbench reads "
        f"(1 or {CHECK_FORMAT_VERSION}); re-run `vbench check --json` with this version"
    )
