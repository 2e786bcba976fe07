"""End to end on a real run (real libvirtd, QEMU guests under TCG here, real fio): its records,
its certification, its evidence bundle, and every kind of damage to its run directory.

One run serves every test of this module (module-scoped), to keep the guest boots few.
"""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import tarfile
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import e2e_env, guests_named, vbench_run
from support import vbench_cli as _vbench
from test_run_e2e import tiny

from vbench.results import RunDir

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).parents[1]
CERTIFY = """
[[certify]]
mode = "pv"
metric = "read.clat_p99"
case = { rw = "randread" }
max = "10 s"
[[certify]]
mode = "pv"
ready = true
"""


@pytest.fixture(scope="module")
def real_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    tmp = tmp_path_factory.mktemp("records-e2e")
    scenario = tmp / "tiny.toml"
    text = tiny(f"records-{uuid.uuid4().hex[:6]}", reps=2) + CERTIFY
    scenario.write_text(text)
    _, run = vbench_run(scenario, tmp / "reports", e2e_env(tmp), report=True)
    # (other runs of the `tiny` scenario may be going on at the same time: look for ours only)
    assert not guests_named(f"vbench-{run.name}-")
    yield run


def _copy(run: Path, tmp_path: Path) -> Path:
    target = tmp_path / run.name
    shutil.copytree(run, target)
    return target


def test_the_run_records_are_typed_and_complete(real_run: Path) -> None:
    data = json.loads((real_run / "manifest.json").read_text())
    assert data["format_version"] == 3 and data["checks"]["format_version"] == 2
    assert "host_changes" not in data  # the run's journal holds them (host-changes.json)
    manifest = RunDir.open(real_run).read_manifest()
    assert manifest.checks is not None
    pv = next(v for v in manifest.checks.verdicts if v.mode.value == "pv")
    assert all(r.checks for r in pv.remedies)  # structured: every fix names its checks
    names = set(manifest.raw_files)
    for trial in ("r0-fv", "r0-pv", "r1-fv", "r1-pv"):
        assert {f"raw/{trial}/domain.xml", f"raw/{trial}/console.log"} <= names
    assert sum(n.endswith("/fio.json") for n in names) == 4
    assert len(RunDir.open(real_run).load().samples) > 0


def test_certification_of_the_real_run(real_run: Path, tmp_path: Path) -> None:
    junit = tmp_path / "certify.xml"
    proc = _vbench("report", str(real_run), "--no-pdf", "--check", "--junit", str(junit))
    manifest = RunDir.open(real_run).read_manifest()
    assert manifest.checks is not None
    pv_ready = next(v for v in manifest.checks.verdicts if v.mode.value == "pv").ready
    # p99 under 10 s is a certain pass on any host; "pv ready" is what the host check said
    assert proc.returncode == (0 if pv_ready else 2), proc.stderr
    (line,) = [x for x in proc.stderr.splitlines() if "read.clat_p99 <= 10 s" in x]
    # judged on the tables' figure: the median with its bootstrap CI, in the tables' units
    assert line.startswith("PASS         pv randread read.clat_p99 <= 10 s: median "), line
    assert " µs, 95% CI " in line and ", n = 2 " in line
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite is not None and suite.get("tests") == "2"
    html = (real_run / "report.html").read_text()
    assert html.index("Verdict:") < html.index('<h2 id="summary">Summary</h2>')


def test_bundle_of_the_real_run_verifies_and_catches_a_changed_byte(
    real_run: Path, tmp_path: Path
) -> None:
    bundle = tmp_path / "evidence.tar.gz"
    assert _vbench("bundle", str(real_run), "-o", str(bundle)).returncode == 0
    with tarfile.open(bundle) as tar:  # the run's one record of its host changes rides along
        assert f"{real_run.name}/host-changes.json" in tar.getnames()
    ok = _vbench("bundle", "--verify", str(bundle))
    assert ok.returncode == 0, ok.stderr
    work = tmp_path / "x"
    work.mkdir()
    subprocess.run(["tar", "-xzf", str(bundle), "-C", str(work)], check=True)
    xml = work / real_run.name / "raw" / "r0-pv" / "domain.xml"
    data = bytearray(xml.read_bytes())
    data[0] ^= 0x20
    xml.write_bytes(bytes(data))
    changed = tmp_path / "changed.tar.gz"
    subprocess.run(["tar", "-czf", str(changed), "-C", str(work), real_run.name], check=True)
    bad = _vbench("bundle", "--verify", str(changed))
    assert bad.returncode == 1
    assert bad.stderr.splitlines() == [
        f"{changed}:{real_run.name}/raw/r0-pv/domain.xml: sha256 differs from SHA256SUMS: "
        "the file was changed"
    ]


def _report_error(run: Path) -> str:
    proc = _vbench("report", str(run), "--no-pdf")
    assert proc.returncode == 1, proc.stdout
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    return lines[0]


def test_damaged_copies_of_the_real_run_are_one_line_errors(real_run: Path, tmp_path: Path) -> None:
    # a malformed sample row (the value of line 3 replaced by NaN)
    run = _copy(real_run, tmp_path / "nan")
    samples = run / "samples.csv"
    rows = _rows(samples)
    rows[2][rows[0].index("value")] = "NaN"
    _write_rows(samples, rows)
    assert _report_error(run).startswith(f"vbench: error: {samples}:3: malformed sample row")
    # a truncated manifest
    run = _copy(real_run, tmp_path / "truncated")
    manifest = run / "manifest.json"
    text = manifest.read_text()
    manifest.write_text(text[: len(text) // 3])
    assert f"{manifest}:" in _report_error(run) and "not valid JSON" in _report_error(run)
    # a raw file the manifest names, missing
    run = _copy(real_run, tmp_path / "missing")
    (run / "raw" / "r1-pv" / "console.log").unlink()
    assert "names raw/r1-pv/console.log, which is missing" in _report_error(run)
    # samples of a case the manifest does not list
    run = _copy(real_run, tmp_path / "foreign")
    samples = run / "samples.csv"
    rows = _rows(samples)
    rows.append(list(rows[-1]))
    rows[-1][rows[0].index("case_id")] = "r7-pv-fio-foreign"
    _write_rows(samples, rows)
    assert _report_error(run).startswith(
        f"vbench: error: {samples}:{len(rows)}: case 'r7-pv-fio-foreign' is not one "
        "manifest.json lists"
    )


def _rows(path: Path) -> list[list[str]]:
    with path.open(newline="") as f:
        return list(csv.reader(f))


def _write_rows(path: Path, rows: list[list[str]]) -> None:
    with path.open("w", newline="") as f:
        csv.writer(f, lineterminator="\n").writerows(rows)
