"""`vbench fleet report`: fleet directories laid out as the Ansible playbooks leave them, holding
run directories written through the real RunDir writer (real fio outputs), their real reports and
real evidence bundles (`vbench bundle`), and check documents built by the real readiness rules.
The playbooks themselves run in tests/test_fleet_e2e.py."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from support import vbench_cli as _vbench
from test_compare import A_FILES, B_FILES, PARAMS, _fio, _text, _write_run
from test_report import _check_document

from vbench.bundle import write_bundle
from vbench.checkdoc import CheckDocument
from vbench.model import ModeId
from vbench.report import build_report
from vbench.report.fleet import FleetError, find_fleet_runs, load_fleet
from vbench.results import RunDir

ROOT = Path(__file__).parents[1]
CERTIFY = (
    '[[certify]]\nmode = "pv"\nmetric = "read.iops"\ncase = { rw = "randread", bs = "4k" }\n'
    'min = "1 IO/s"\n'
)
SCENARIO = 'format_version = 1\nname = "quick"\n'


def _bundle(
    work: Path,
    host: str,
    files: list[str],
    dest: Path,
    *,
    scenario: str = SCENARIO + CERTIFY,
    checks: CheckDocument | None = None,
) -> Path:
    """A host's run (fv and pv, three repetitions of real fio output) bundled to `dest`."""
    run_id = f"20250101T10000{len(host)}-{host}"
    cases = {(m, PARAMS): _fio(run_id, m, PARAMS, files) for m in ("fv", "pv")}
    run_path = _write_run(work / host, run_id, cases, host={"hostname": host})
    run = RunDir(run_path)
    manifest = run.read_manifest()
    manifest.scenario.text = scenario
    manifest.scenario.sha256 = hashlib.sha256(scenario.encode()).hexdigest()
    manifest.checks = checks or _check_document()
    run.write_manifest(manifest)
    build_report(run_path, pdf=False)
    dest.parent.mkdir(parents=True, exist_ok=True)
    return write_bundle(run_path, dest).path


def _status(run_dir: Path, playbook: str, hosts: dict[str, tuple[str, str]]) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    doc = {
        "format_version": 1,
        "kind": "vbench.fleet-status",
        "fleet_run_id": run_dir.name,
        "playbook": playbook,
        "hosts": {h: {"status": s, "reason": r} for h, (s, r) in hosts.items()},
    }
    (run_dir / "fleet-status.json").write_text(json.dumps(doc, indent=2) + "\n")


def _check(run_dir: Path, host: str, doc: CheckDocument) -> None:
    (run_dir / host).mkdir(parents=True, exist_ok=True)
    (run_dir / host / "check.json").write_text(doc.model_dump_json(indent=2) + "\n")


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """fleet/ with a check fleet run (a, b, c, d) and a later run fleet run: a and b ran the same
    scenario, c failed, d ran another scenario."""
    base = tmp_path_factory.mktemp("fleet")
    work, fleet = base / "runs", base / "fleet"
    check, run = fleet / "20250101-090000", fleet / "20250101-100000"
    _status(
        check,
        "check",
        {h: ("not ready for some modes", "") for h in "abcd"},
    )
    for h in "abcd":
        _check(check, h, _check_document())
    _bundle(work, "a", A_FILES, run / "a" / "bundle.tar.gz")
    _bundle(work, "b", B_FILES, run / "b" / "bundle.tar.gz")
    _bundle(work, "d", B_FILES, run / "d" / "bundle.tar.gz", scenario=SCENARIO + "# other\n")
    (run / "c").mkdir(parents=True)
    reason = "Run the scenario: vbench: error: bad.toml: modes[0].disk_bus: not 'ide'"
    (run / "c" / "FAILED").write_text(reason + "\n")
    _status(
        run,
        "run",
        {"a": ("ok", ""), "b": ("ok", ""), "c": ("failed", reason), "d": ("ok", "")},
    )
    os.utime(check / "fleet-status.json", (1.7e9, 1.7e9))  # the check came first
    return fleet


def test_fleet_report_shows_every_host(fleet: Path, tmp_path: Path) -> None:
    junit = tmp_path / "fleet.junit.xml"
    out = tmp_path / "report"
    proc = _vbench("fleet", "report", str(fleet), "-o", str(out), "--junit", str(junit), "--check")
    # c failed, d is not comparable
    assert proc.returncode == 2, proc.stderr
    assert "needing attention: c, d" in proc.stderr
    assert (out / "fleet-report.pdf").read_bytes().startswith(b"%PDF")
    html = (out / "fleet-report.html").read_text()
    text = re.sub(r" ([,.:;)\]])", r"\1", _text(html))  # tags left spaces before punctuation
    for host in "abcd":
        assert f">{host}<" in html
    # the failed host with its reason
    assert "1 host failed" in text
    assert "c: run: Run the scenario: vbench: error: bad.toml" in text
    # readiness matrix: hosts x modes from the check documents
    matrix = re.search(r'<table class="matrix">.*?</table>', html, re.S)
    assert matrix is not None
    rows = re.findall(r"<tr><th class=\"host\">(\w)</th>(.*?)</tr>", matrix.group(0), re.S)
    assert [h for h, _ in rows] == list("abcd")
    doc = _check_document()
    for _, cells in rows:
        shown = re.findall(r'<span class="badge \w*">([\w ]+)</span>', cells)
        assert shown == ["ready" if v.ready else "not ready" for v in doc.verdicts]
    # certification per host (the pv threshold of a/b's scenario; d's scenario has none)
    assert text.count("read.iops") >= 2
    assert re.search(r"a: pass .*b: pass", text)
    # a and b compared (b / a with its CI), d apart with the reason
    assert "Hosts a, b ran the same scenario; each is compared with a" in text
    # (the % of a, its significance mark, its CI: "97.6% n too small [96.6%, 102.5%]")
    assert re.search(r"\d+(\.\d+)?% (\*|n\.s\.|n too small) \[\d+(\.\d+)?%, \d", text)
    assert "Hosts not comparable" in text
    assert re.search(r"d ran scenario 'quick' \(sha256 \w{12}\), the compared hosts ran", text)
    # JUnit: one testsuite per host
    root = ET.parse(junit).getroot()
    suites = {s.get("hostname"): s for s in root.iter("testsuite")}
    assert sorted(suites) == list("abcd")
    c_run = [t for t in suites["c"].iter("testcase") if t.get("name", "").startswith("run")]
    assert len(c_run) == 1 and c_run[0].find("failure") is not None
    assert "disk_bus" in (c_run[0].find("failure").get("message") or "")  # type: ignore[union-attr]
    a_cases = {t.get("name"): t for t in suites["a"].iter("testcase")}
    for v in doc.verdicts:
        case = a_cases[f"ready: {v.mode.value}"]
        assert (case.find("failure") is None) == (v.ready or not v.requested)
    certify = [t for t in suites["a"].iter("testcase") if "certify" in (t.get("classname") or "")]
    assert len(certify) == 1 and certify[0].find("failure") is None
    assert int(suites["c"].get("failures") or 0) >= 1


def test_latest_fleet_run_wins_and_one_fleet_run_alone(fleet: Path, tmp_path: Path) -> None:
    copy = tmp_path / "fleet"
    shutil.copytree(fleet, copy)
    later = copy / "20250102-100000"
    _status(later, "run", {"a": ("failed", "Run the scenario: guest did not boot")})
    with load_fleet(copy) as f:
        hosts = {h.name: h for h in f.hosts}
        assert hosts["a"].failures == ["run: Run the scenario: guest did not boot"]
        assert hosts["b"].run is not None and hosts["b"].run.status == "ok"
        # a's run failed: b is alone with its scenario, d with another
        assert f.comparison is None and f.compared[:1] == ("b",)
    # one fleet run given: only its hosts; readiness from the checks each run recorded
    with load_fleet(fleet / "20250101-100000") as f:
        assert [h.name for h in f.hosts] == list("abcd")
        assert all(h.check is None for h in f.hosts)
        a = f.hosts[0]
        assert a.readiness is not None and a.readiness == _check_document()
        assert f.comparison is not None and f.compared == ("a", "b")


def test_a_bundle_that_does_not_verify_is_that_host_s_problem(fleet: Path, tmp_path: Path) -> None:
    copy = tmp_path / "fleet"
    shutil.copytree(fleet, copy)
    bundle = copy / "20250101-100000" / "b" / "bundle.tar.gz"
    data = bytearray(bundle.read_bytes())
    data[len(data) // 2] ^= 0xFF
    bundle.write_bytes(bytes(data))
    with load_fleet(copy) as f:
        b = next(h for h in f.hosts if h.name == "b")
        assert b.run is not None and b.run.run is None
        (line,) = b.failures
        assert line.startswith(f"run: {bundle}: ")
        assert f.comparison is None  # a is alone now
    proc = _vbench("fleet", "report", str(copy), "--no-pdf")
    assert proc.returncode == 0, proc.stderr  # without --check: the page is the result
    assert (copy / "fleet-report" / "fleet-report.html").is_file()
    assert not (copy / "fleet-report" / "fleet-report.pdf").exists()


def test_every_host_fine_is_exit_0(tmp_path: Path) -> None:
    ready = CheckDocument.build(_check_document().report(), requested=(ModeId.FV, ModeId.PV))
    assert ready.ready
    fleet = tmp_path / "fleet" / "x1"
    _status(fleet, "run", {"a": ("ok", ""), "b": ("ok", "")})
    for host in "ab":
        _bundle(tmp_path / "runs", host, A_FILES, fleet / host / "bundle.tar.gz", checks=ready)
    proc = _vbench("fleet", "report", str(fleet), "--no-pdf", "--check")
    assert proc.returncode == 0, proc.stderr
    assert "needing attention: none" in proc.stderr


def test_bad_input_is_one_line(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    damaged = tmp_path / "damaged" / "r1"
    _status(damaged, "run", {"a": ("ok", "")})
    (damaged / "fleet-status.json").write_text('{"fleet_run_id": "r1", "hosts": {}}')
    truncated = tmp_path / "truncated"
    truncated.mkdir()
    (truncated / "fleet-status.json").write_text('{"fleet_run_id": ')
    cases = [
        (tmp_path / "missing", "no such directory"),
        (empty, "no fleet-status.json in it or its subdirectories"),
        (tmp_path / "damaged", "fleet-status.json: playbook: Field required"),
        (truncated, "fleet-status.json:1: not valid JSON"),
    ]
    for path, message in cases:
        with pytest.raises(FleetError, match=re.escape(message)):
            find_fleet_runs(path)
    # through the command line (two of them: each run loads pandas and SciPy, ~5 s here)
    for path, message in cases[1::2]:
        proc = _vbench("fleet", "report", str(path), "--no-pdf")
        assert proc.returncode == 1, (path, proc.stderr)
        assert proc.stderr.count("\n") == 1 and message in proc.stderr, proc.stderr
        assert "Traceback" not in proc.stderr
