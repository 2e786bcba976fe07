"""The evidence bundle: written from a run directory, verified, and caught when a byte changes.

Real files and real archives: the run directory holds real fio output (tests/test_report.py),
the bundle is unpacked and repacked with GNU tar, and `sha256sum -c` must accept SHA256SUMS.
"""

from __future__ import annotations

import hashlib
import subprocess
import tarfile
from pathlib import Path

import pytest
from support import vbench_cli as _vbench
from test_report import _check_document, _make_run

from vbench.bundle import HOST_CHANGES, BundleError, verify_bundle, write_bundle
from vbench.errors import RunDirError
from vbench.host.changes import JOURNAL, ChangeJournal, HostChange
from vbench.report import build_report
from vbench.results import RunDir

ROOT = Path(__file__).parents[1]


@pytest.fixture
def bundled(tmp_path: Path) -> tuple[Path, Path]:
    run_path, _ = _make_run(tmp_path / "reports", checks=_check_document())
    run = RunDir(run_path)
    manifest = run.read_manifest()  # the helper's manifest claims sha256 0000...: make it true
    manifest.scenario.sha256 = hashlib.sha256(manifest.scenario.text.encode()).hexdigest()
    run.write_manifest(manifest)
    (run_path / "series-host.csv").write_text("t,metric,value\n0.0,host.cpu_busy,12.5\n")
    build_report(run_path, pdf=False)
    out = _vbench("bundle", str(run_path), "-o", str(tmp_path / "evidence.tar.gz"))
    assert out.returncode == 0, out.stderr
    return run_path, tmp_path / "evidence.tar.gz"


def test_the_bundle_carries_the_runs_host_change_journal(tmp_path: Path) -> None:
    """The journal is the run's one record of its host changes: it rides along, verified."""
    run_path, _ = _make_run(tmp_path / "reports", checks=_check_document())
    run = RunDir(run_path)
    manifest = run.read_manifest()
    manifest.scenario.sha256 = hashlib.sha256(manifest.scenario.text.encode()).hexdigest()
    run.write_manifest(manifest)
    build_report(run_path, pdf=False)
    attr = tmp_path / "sriov_drivers_autoprobe"  # a plain file stands in for the attribute
    attr.write_text("1\n")
    journal = ChangeJournal(run_path)
    journal.apply(HostChange("sysfs_write", str(attr), "1", "0", "autoprobe 1 -> 0"))
    assert journal.restore() == []
    assert HOST_CHANGES == JOURNAL
    bundle = write_bundle(run_path, tmp_path / "b.tar.gz").path
    with tarfile.open(bundle) as tar:
        member = tar.extractfile(f"{run_path.name}/{JOURNAL}")
        assert member is not None
        assert member.read() == (run_path / JOURNAL).read_bytes()
    assert verify_bundle(bundle)[1] == []


def _repack(bundle: Path, tmp_path: Path, edit: str, offset: int = 10) -> Path:
    """Unpack with tar, flip one byte of `edit` (a path below the run id), pack again."""
    work = tmp_path / "unpacked"
    work.mkdir()
    subprocess.run(["tar", "-xzf", str(bundle), "-C", str(work)], check=True)
    (top,) = list(work.iterdir())
    target = top / edit
    data = bytearray(target.read_bytes())
    data[offset] ^= 0x01
    target.write_bytes(bytes(data))
    changed = tmp_path / "changed.tar.gz"
    subprocess.run(["tar", "-czf", str(changed), "-C", str(work), top.name], check=True)
    return changed


def test_bundle_holds_the_evidence_and_verifies(bundled: tuple[Path, Path]) -> None:
    run_path, bundle = bundled
    with tarfile.open(bundle) as tar:
        names = {m.name.split("/", 1)[1] for m in tar if m.isfile()}
    top = run_path.name
    assert {
        "manifest.json",
        "checks.json",
        "scenario.toml",
        "samples.csv",
        "series-host.csv",
        "report.html",
        "SHA256SUMS",
        "raw/r0-fv-fio-randread-4k-qd16-j1/fio.json",
    } <= names
    assert sum(n.startswith("raw/") for n in names) == 6
    count, problems = verify_bundle(bundle)
    assert problems == [] and count == len(names) - 1
    proc = _vbench("bundle", "--verify", str(bundle))
    assert proc.returncode == 0, proc.stderr
    assert f"OK, {count} files match SHA256SUMS" in proc.stdout
    # the sums are plain sha256sum format: the real tool accepts them
    work = bundle.parent / "x"
    work.mkdir()
    subprocess.run(["tar", "-xzf", str(bundle), "-C", str(work)], check=True)
    check = subprocess.run(
        ["sha256sum", "--check", "--strict", "SHA256SUMS"],
        cwd=work / top,
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.returncode == 0, check.stdout + check.stderr


def test_verify_catches_one_changed_byte(bundled: tuple[Path, Path], tmp_path: Path) -> None:
    _, bundle = bundled
    changed = _repack(bundle, tmp_path, "raw/r1-pv-fio-randread-4k-qd16-j1/fio.json")
    proc = _vbench("bundle", "--verify", str(changed))
    assert proc.returncode == 1
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].endswith(
        "raw/r1-pv-fio-randread-4k-qd16-j1/fio.json: sha256 differs from SHA256SUMS: "
        "the file was changed"
    )


def test_verify_catches_a_changed_scenario(bundled: tuple[Path, Path], tmp_path: Path) -> None:
    _, bundle = bundled
    # byte 10 of the scenario text: inside `format_version = 1` of the manifest's copy too
    changed = _repack(bundle, tmp_path, "scenario.toml")
    _, problems = verify_bundle(changed)
    assert len(problems) == 2
    assert "scenario.toml: sha256 differs" in problems[0]
    assert "scenario.toml: differs from the manifest's scenario text" in problems[1]


def test_verify_checks_the_manifest_scenario_hash(tmp_path: Path) -> None:
    run_path, _ = _make_run(tmp_path / "reports")  # its manifest claims sha256 0000...
    build_report(run_path, pdf=False)
    result = write_bundle(run_path)
    assert result.path == run_path.parent / f"{run_path.name}.bundle.tar.gz"
    _, problems = verify_bundle(result.path)
    assert problems == [
        f"{result.path}:{run_path.name}/manifest.json: scenario.sha256 does not match the "
        "scenario text"
    ]


def test_unreadable_bundle_and_damaged_run_are_one_line(
    bundled: tuple[Path, Path], tmp_path: Path
) -> None:
    run_path, bundle = bundled
    data = bundle.read_bytes()
    broken = tmp_path / "broken.tar.gz"
    broken.write_bytes(data[: len(data) // 2])  # a truncated download
    with pytest.raises(BundleError, match=r"not a readable \.tar\.gz"):
        verify_bundle(broken)
    proc = _vbench("bundle", "--verify", str(broken))
    assert proc.returncode == 1 and len(proc.stderr.splitlines()) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0xFF  # inside the compressed stream: some file comes out changed
    broken.write_bytes(bytes(flipped))
    proc = _vbench("bundle", "--verify", str(broken))
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    (run_path / "raw" / "r0-fv-fio-randread-4k-qd16-j1" / "fio.json").unlink()
    with pytest.raises(RunDirError, match="which is missing"):
        write_bundle(run_path, tmp_path / "again.tar.gz")
    assert not (tmp_path / "again.tar.gz").exists()
