"""`vbench fleet report FLEET_DIR`: every host of a fleet in one page, from what the Ansible
playbooks (ansible/) fetched back:

    <fleet dir>/<fleet-run-id>/fleet-status.json     each host's status and why (summary.yml)
    <fleet dir>/<fleet-run-id>/<host>/check.json     `vbench check --json` (check.yml)
    <fleet dir>/<fleet-run-id>/<host>/bundle.tar.gz  the run's evidence bundle (run.yml)

FLEET_DIR is one fleet run or the directory holding all of them; with several, each host's latest
check and latest run count (fleet runs in the order their status files were written).  Each bundle
is verified and unpacked into a temporary directory, and its run read as `vbench report` reads it.

The page: the hosts and what failed on them, the readiness matrix (hosts x modes, from the check
documents), each host's certification verdict, and per workload the modes x hosts figures with
their CIs: the hosts' runs compared with the first host's by `vbench.report.compare`.  Only runs
of the same scenario (same sha256) are compared; the others are listed apart with the reason.
"""

from __future__ import annotations

import json
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from vbench import __version__
from vbench.bundle import extract_bundle
from vbench.certify import Status
from vbench.checkdoc import CheckDocument, load_check_document
from vbench.errors import VbenchError
from vbench.model import ModeId
from vbench.report.certification import Certification, certify_run
from vbench.report.compare import Comparison, build_context, compare_runs, run_of
from vbench.report.render import DASH, base_css, render_pdf, template
from vbench.results import Run, RunDir, atomic_write, utc_now

FLEET_STATUS: Final = "fleet-status.json"
CHECK_JSON: Final = "check.json"
BUNDLE: Final = "bundle.tar.gz"
FAILED: Final = "FAILED"
FLEET_HTML: Final = "fleet-report.html"
FLEET_PDF: Final = "fleet-report.pdf"
# `vbench fleet report --check`: 0 every host fine, 2 some host failed, is not ready or did not
# pass its thresholds, 1 the fleet directory could not be read (raised as FleetError).
EXIT_OK, EXIT_ATTENTION = 0, 2


class FleetError(VbenchError):
    """The fleet directory cannot be read (no fleet run in it, a damaged fleet-status.json)."""


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class HostStatus(_Record):
    status: str  # ok, cases failed, ready, not ready for some modes, failed, unreachable ...
    reason: str = ""


class FleetStatus(_Record):
    """fleet-status.json, written by ansible/playbooks/summary.yml at the end of a play."""

    format_version: Literal[1] = 1
    kind: Literal["vbench.fleet-status"] = "vbench.fleet-status"
    fleet_run_id: str
    playbook: Literal["check", "run"]
    hosts: dict[str, HostStatus]


def load_fleet_status(path: Path) -> FleetStatus:
    """The one loader of fleet-status.json; FleetError (one line) when it is damaged."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise FleetError(f"{path}: unreadable: {exc}") from None
    except json.JSONDecodeError as exc:
        raise FleetError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg})") from None
    try:
        return FleetStatus.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"]) or "(document)"
        raise FleetError(
            f"{path}: {loc}: {err['msg']}; the file is written by ansible/playbooks/summary.yml"
        ) from None


@dataclass(frozen=True)
class FleetRun:
    path: Path
    status: FleetStatus


@dataclass(frozen=True)
class HostCheck:
    fleet_run_id: str
    status: str
    reason: str
    document: CheckDocument | None
    problem: str = ""  # why there is no document


@dataclass(frozen=True, eq=False)
class HostRun:
    fleet_run_id: str
    status: str
    reason: str
    bundle: Path | None
    run: Run | None
    certification: Certification | None = None
    problem: str = ""  # why there is no run (or no certification)


@dataclass(frozen=True, eq=False)
class FleetHost:
    name: str
    check: HostCheck | None
    run: HostRun | None

    @property
    def readiness(self) -> CheckDocument | None:
        """The fleet check's document, else the one the run recorded in its manifest."""
        if self.check is not None and self.check.document is not None:
            return self.check.document
        if self.run is not None and self.run.run is not None:
            return self.run.run.manifest.checks
        return None

    @property
    def failures(self) -> list[str]:
        """Why this host needs attention, one line each (empty: nothing failed)."""
        out: list[str] = []
        for step, got in (("check", self.check), ("run", self.run)):
            if got is None:
                continue
            if got.status == "failed" or "unreachable" in got.status:
                out.append(f"{step}: {got.reason or got.status}")
            elif got.problem:
                out.append(f"{step}: {got.problem}")
        return out

    @property
    def attention(self) -> bool:
        doc = self.readiness
        cert = self.run.certification if self.run is not None else None
        return bool(
            self.failures
            or (doc is not None and not doc.ready)
            or (self.run is not None and self.run.status != "ok")
            or (cert is not None and cert.status is not Status.PASS)
        )


@dataclass(frozen=True, eq=False)
class Fleet:
    path: Path
    fleet_runs: tuple[FleetRun, ...]
    hosts: tuple[FleetHost, ...]
    comparison: Comparison | None  # None: fewer than two comparable runs
    compared: tuple[str, ...]  # hosts in the comparison, the reference first
    not_comparable: tuple[tuple[str, str], ...]  # (host, why)

    @property
    def attention(self) -> list[str]:
        """Hosts that failed, are not ready, missed a threshold or could not be compared."""
        apart = {host for host, _ in self.not_comparable}
        return [h.name for h in self.hosts if h.attention or h.name in apart]

    @property
    def exit_code(self) -> int:
        return EXIT_ATTENTION if self.attention else EXIT_OK


def find_fleet_runs(path: Path) -> list[FleetRun]:
    """The fleet runs at `path` (one fleet run, or a directory of them), oldest first."""
    if (path / FLEET_STATUS).is_file():
        found = [path / FLEET_STATUS]
    elif path.is_dir():
        found = sorted(path.glob(f"*/{FLEET_STATUS}"))
    else:
        raise FleetError(f"{path}: no such directory; pass fleet/ or fleet/<fleet-run-id>/")
    if not found:
        raise FleetError(
            f"{path}: no {FLEET_STATUS} in it or its subdirectories; pass the fleet directory "
            "the playbooks wrote (fleet/ or fleet/<fleet-run-id>/)"
        )
    runs = [FleetRun(p.parent, load_fleet_status(p)) for p in found]
    runs.sort(key=lambda r: ((r.path / FLEET_STATUS).stat().st_mtime, r.path.name))
    return runs


def _host_check(run: FleetRun, host: str, status: HostStatus) -> HostCheck:
    path = run.path / host / CHECK_JSON
    document, problem = None, ""
    if path.is_file():
        try:
            document = load_check_document(json.loads(path.read_text(encoding="utf-8")), str(path))
        except (OSError, ValueError, VbenchError) as exc:  # JSONDecodeError is a ValueError
            problem = f"{path}: unreadable check document: {exc}"
    elif status.status != "failed" and "unreachable" not in status.status:
        problem = f"{path} is missing"
    return HostCheck(run.status.fleet_run_id, status.status, status.reason, document, problem)


def _host_run(run: FleetRun, host: str, status: HostStatus, scratch: Path) -> HostRun:
    bundle = run.path / host / BUNDLE
    reason = status.reason
    if not reason and (run.path / host / FAILED).is_file():
        reason = (run.path / host / FAILED).read_text(encoding="utf-8", errors="replace").strip()

    def result(**kw: Any) -> HostRun:
        return HostRun(run.status.fleet_run_id, status.status, reason, **kw)

    if not bundle.is_file():
        return result(
            bundle=None,
            run=None,
            problem="" if status.status == "failed" else f"{bundle} is missing",
        )
    try:
        run_path = extract_bundle(bundle, scratch / run.status.fleet_run_id / host)
        loaded = RunDir.open(run_path).load()
    except VbenchError as exc:
        return result(bundle=bundle, run=None, problem=f"{bundle}: {exc}")
    try:
        cert = certify_run(loaded.manifest, loaded.samples)
    except VbenchError as exc:
        return result(bundle=bundle, run=loaded, problem=f"certification: {exc}")
    return result(bundle=bundle, run=loaded, certification=cert)


def _compare(hosts: list[FleetHost]) -> tuple[Comparison | None, list[str], list[tuple[str, str]]]:
    """Compare the runs of the scenario most hosts ran (ties: the first host's); the hosts that
    ran another scenario are set apart with the reason."""
    loaded: list[tuple[str, Path, Run]] = []  # (host, bundle, run)
    for h in hosts:
        hr = h.run
        if hr is not None and hr.run is not None and hr.bundle is not None:
            loaded.append((h.name, hr.bundle, hr.run))
    groups: dict[str, list[tuple[str, Path, Run]]] = {}
    for item in loaded:
        groups.setdefault(item[2].manifest.scenario.sha256, []).append(item)
    if not groups:
        return None, [], []
    sha = max(groups, key=lambda s: len(groups[s]))  # max keeps the first of equals
    chosen = groups[sha]
    ref = chosen[0][2].manifest.scenario
    apart = [
        (
            host,
            f"ran scenario {run.manifest.scenario.name!r} (sha256 "
            f"{run.manifest.scenario.sha256[:12]}), the compared hosts ran {ref.name!r} (sha256 "
            f"{sha[:12]}): different scenarios are not compared",
        )
        for host, _, run in loaded
        if run.manifest.scenario.sha256 != sha
    ]
    names = [host for host, _, _ in chosen]
    if len(chosen) < 2:
        return None, names, apart
    runs = [run_of(host, bundle, r.manifest, r.samples) for host, bundle, r in chosen]
    return compare_runs(runs), names, apart


@contextmanager
def load_fleet(path: Path) -> Iterator[Fleet]:
    """Read the fleet at `path`; the unpacked bundles live as long as the context."""
    fleet_runs = find_fleet_runs(path)
    with tempfile.TemporaryDirectory(prefix="vbench-fleet-") as tmp:
        checks: dict[str, HostCheck] = {}
        runs: dict[str, tuple[FleetRun, HostStatus]] = {}
        names: list[str] = []
        for fr in fleet_runs:  # oldest first: a later fleet run replaces a host's entry
            for host, status in fr.status.hosts.items():
                names += [host] if host not in names else []
                if fr.status.playbook == "check":
                    checks[host] = _host_check(fr, host, status)
                else:
                    runs[host] = (fr, status)
        hosts = []
        for name in sorted(names):
            run = None
            if name in runs:
                fr, status = runs[name]
                run = _host_run(fr, name, status, Path(tmp))
            hosts.append(FleetHost(name, checks.get(name), run))
        comparison, compared, apart = _compare(hosts)
        yield Fleet(
            path=path,
            fleet_runs=tuple(fleet_runs),
            hosts=tuple(hosts),
            comparison=comparison,
            compared=tuple(compared),
            not_comparable=tuple(apart),
        )


# -- the page ------------------------------------------------------------------------------------


def _status_class(status: str) -> str:
    s = status.lower()
    if s in ("ok", "ready", "pass"):
        return "ok"
    if s in ("failed", "fail", "error") or "unreachable" in s:
        return "bad"
    return "warn"


def _readiness(hosts: tuple[FleetHost, ...]) -> dict[str, Any]:
    """Hosts x modes: ready, not ready (with the blockers' summary), not requested, unknown."""
    docs = {h.name: h.readiness for h in hosts}
    seen = {v.mode for d in docs.values() if d is not None for v in d.verdicts}
    modes = [m for m in ModeId if m in seen]
    titles: dict[ModeId, str] = {}
    for d in docs.values():
        for v in d.verdicts if d is not None else ():
            titles.setdefault(v.mode, v.title)
    rows = []
    for h in hosts:
        doc = docs[h.name]
        cells = []
        for m in modes:
            got = doc.verdict(m) if doc is not None else None
            if got is None:
                cells.append({"text": DASH, "cls": "", "detail": ""})
            else:
                text = "ready" if got.ready else "not ready"
                cls = "ok" if got.ready else ("bad" if got.requested else "warn")
                cells.append({"text": text, "cls": cls, "detail": got.summary})
        source = DASH
        if h.check is not None and h.check.document is not None:
            source = f"check {h.check.fleet_run_id}"
        elif doc is not None and h.run is not None:
            source = f"run {h.run.fleet_run_id} (the run's own check)"
        note = h.check.problem if h.check is not None and doc is None else ""
        rows.append({"host": h.name, "cells": cells, "source": source, "note": note})
    return {"modes": [{"id": m.value, "title": titles[m]} for m in modes], "rows": rows}


def _host_rows(hosts: tuple[FleetHost, ...]) -> list[dict[str, Any]]:
    rows = []
    for h in hosts:
        r = h.run.run if h.run is not None else None
        cert = h.run.certification if h.run is not None else None
        doc = h.readiness
        check = h.check.status if h.check is not None else DASH
        rows.append(
            {
                "host": h.name,
                "check": check,
                "check_cls": _status_class(check) if h.check is not None else "",
                "ready": (
                    DASH
                    if doc is None
                    else ("every requested mode" if doc.ready else "not every requested mode")
                ),
                "run": h.run.status if h.run is not None else DASH,
                "run_cls": _status_class(h.run.status) if h.run is not None else "",
                "run_id": r.manifest.run_id if r is not None else DASH,
                "scenario": (
                    f"{r.manifest.scenario.name} ({r.manifest.scenario.sha256[:12]})"
                    if r is not None
                    else DASH
                ),
                "accel": (
                    r.manifest.accelerator.name.upper()
                    if r is not None and r.manifest.accelerator
                    else DASH
                ),
                "verdict": cert.status.value if cert is not None else DASH,
                "verdict_cls": _status_class(cert.status.value) if cert is not None else "",
                "failures": h.failures,
            }
        )
    return rows


def build_fleet_context(fleet: Fleet, generated_at: str) -> dict[str, Any]:
    name = fleet.path.resolve().name
    ids = [fr.status.fleet_run_id for fr in fleet.fleet_runs]
    context: dict[str, Any] = {}
    if fleet.comparison is not None:
        context.update(build_context(fleet.comparison, generated_at))
    context.update(
        {
            "title": "fleet" if name == "fleet" else f"fleet {name}",
            "css": base_css(f"fleet {name}"),
            "fleet_runs": [
                {"id": fr.status.fleet_run_id, "playbook": fr.status.playbook, "path": str(fr.path)}
                for fr in fleet.fleet_runs
            ],
            "fleet_ids": ids,
            "hosts": _host_rows(fleet.hosts),
            "failed": [(h.name, f) for h in fleet.hosts for f in h.failures],
            "readiness": _readiness(fleet.hosts),
            "certifications": [
                {
                    "host": h.name,
                    "status": h.run.certification.status.value,
                    "cls": _status_class(h.run.certification.status.value),
                    "verdicts": [
                        {
                            "name": v.name,
                            "threshold": v.threshold,
                            "status": v.status.value,
                            "cls": _status_class(v.status.value),
                            "observed": v.observed,
                            "detail": v.detail,
                        }
                        for v in h.run.certification.verdicts
                    ],
                }
                for h in fleet.hosts
                if h.run is not None and h.run.certification is not None
            ],
            "has_comparison": fleet.comparison is not None,
            "compared": list(fleet.compared),
            "not_comparable": list(fleet.not_comparable),
            "vbench_version": __version__,
            "generated_at": generated_at,
        }
    )
    return context


class _Suite:
    """One host's JUnit testsuite, counting what it adds."""

    def __init__(self, parent: ET.Element, host: str) -> None:
        self.host = host
        self.el = ET.SubElement(parent, "testsuite", name=f"vbench.fleet.{host}", hostname=host)
        self.counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}

    def case(
        self, group: str, name: str, outcome: str = "", message: str = "", body: str = ""
    ) -> None:
        el = ET.SubElement(self.el, "testcase", classname=f"vbench.fleet.{self.host}.{group}")
        el.set("name", name)
        self.counts["tests"] += 1
        if outcome in ("failure", "error"):
            self.counts[f"{outcome}s"] += 1
            ET.SubElement(el, outcome, message=message).text = body or message
        elif outcome == "skipped":
            self.counts["skipped"] += 1
            ET.SubElement(el, "skipped", message=message)
        elif body:
            ET.SubElement(el, "system-out").text = body

    def close(self) -> None:
        for key, value in self.counts.items():
            self.el.set(key, str(value))


def junit_xml(fleet: Fleet) -> str:
    """JUnit XML, one testsuite per host: the playbooks' steps (failure when the host failed),
    readiness per mode (failure when a requested mode is not ready, skipped when not requested)
    and each certification threshold (fail and inconclusive as failures, error as error)."""
    suites = ET.Element("testsuites", name="vbench fleet")
    for h in fleet.hosts:
        suite = _Suite(suites, h.name)
        for step, got in (("check", h.check), ("run", h.run)):
            if got is None:
                continue
            name = f"{step} ({got.fleet_run_id})"
            if got.status == "failed" or "unreachable" in got.status:
                suite.case("playbook", name, "failure", got.reason or got.status)
            elif got.problem:
                suite.case("playbook", name, "error", got.problem)
            else:
                suite.case("playbook", name, body=got.status)
        apart = dict(fleet.not_comparable)
        if h.name in apart:
            suite.case("compare", "comparable with the fleet", "failure", apart[h.name])
        doc = h.readiness
        for v in doc.verdicts if doc is not None else ():
            name = f"ready: {v.mode.value}"
            if v.ready:
                suite.case("readiness", name, body=v.summary)
            elif v.requested:
                fixes = "\n".join(r.text for r in v.remedies)
                suite.case("readiness", name, "failure", v.summary, fixes)
            else:
                suite.case("readiness", name, "skipped", f"not requested: {v.summary}")
        cert = h.run.certification if h.run is not None else None
        for ver in cert.verdicts if cert is not None else ():
            body = f"{ver.observed}; threshold {ver.threshold}"
            body += f"\n{ver.detail}" if ver.detail else ""
            if ver.status is Status.PASS:
                suite.case("certify", ver.name, body=f"PASS: {body}")
            else:
                outcome = "error" if ver.status is Status.ERROR else "failure"
                suite.case("certify", ver.name, outcome, ver.detail or ver.observed, body)
        suite.close()
    ET.indent(suites)
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"
    )


@dataclass(frozen=True)
class FleetFiles:
    html: Path
    pdf: Path | None
    exit_code: int
    hosts: int
    failed: list[str] = field(default_factory=list)  # hosts needing attention
    junit: Path | None = None


def default_output(path: Path) -> Path:
    return path / "fleet-report"


def build_fleet_report(
    path: Path, output: Path, *, pdf: bool = True, junit: Path | None = None
) -> FleetFiles:
    """Read the fleet at `path`, write fleet-report.html (and .pdf) into `output`, and the JUnit
    XML to `junit` when given.  FleetError when the fleet directory cannot be read or the output
    cannot be written; problems of single hosts are shown in the page, not raised."""
    with load_fleet(path) as fleet:
        html = template("fleet.html.j2").render(**build_fleet_context(fleet, utc_now()))
        html_path = output / FLEET_HTML
        pdf_path = output / FLEET_PDF if pdf else None
        try:
            atomic_write(html_path, html)
            if pdf_path is not None:
                atomic_write(pdf_path, render_pdf(html))
            if junit is not None:
                atomic_write(junit, junit_xml(fleet))
        except OSError as exc:
            raise FleetError(
                f"{exc.filename or output}: cannot write the fleet report there ({exc.strerror});"
                " pass another -o/--junit"
            ) from None
        return FleetFiles(
            html=html_path,
            pdf=pdf_path,
            exit_code=fleet.exit_code,
            hosts=len(fleet.hosts),
            failed=fleet.attention,
            junit=junit,
        )
