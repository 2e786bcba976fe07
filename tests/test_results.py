"""The run directory: atomic files, manifest round trip, refusal of unknown formats."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vbench.errors import RunDirError
from vbench.model import SAMPLE_COLUMNS, Sample
from vbench.results import (
    Manifest,
    RunDir,
    ScenarioRecord,
    atomic_write,
    load_samples,
)


def _manifest(run_id: str = "r1") -> Manifest:
    return Manifest(
        run_id=run_id,
        libvirt_uri="test:///default",
        scenario=ScenarioRecord(path="s.toml", name="s", sha256="0" * 64, text="x"),
    )


def _sample(value: float, rep: int = 0) -> Sample:
    return Sample("r1", f"c{rep}", "pv", "fio", "bs=4k", rep, "read.iops", value, "IO/s", 1.0)


def test_atomic_write_leaves_no_temp_file(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "f.txt"
    atomic_write(target, "one")
    atomic_write(target, b"two")
    assert target.read_text() == "two"
    assert [p.name for p in target.parent.iterdir()] == ["f.txt"]


def test_manifest_and_samples_round_trip(tmp_path: Path) -> None:
    run = RunDir.create(tmp_path, "r1")
    m = _manifest()
    m.status = "interrupted"
    run.write_manifest(m)
    run.append_samples([_sample(10.0)])
    run.append_samples([])
    run.append_samples([_sample(12.5, 1)])
    back = RunDir.open(tmp_path / "r1").read_manifest()
    assert back == m
    frame = load_samples(tmp_path / "r1")
    assert list(frame.columns) == list(SAMPLE_COLUMNS)
    assert frame["value"].tolist() == [10.0, 12.5]
    assert frame["parameters"].tolist() == ["bs=4k", "bs=4k"]


def test_a_run_without_samples_reads_as_an_empty_frame(tmp_path: Path) -> None:
    run = RunDir.create(tmp_path, "r1")
    run.write_manifest(_manifest())
    frame = run.read_samples()
    assert frame.empty and list(frame.columns) == list(SAMPLE_COLUMNS)


def test_existing_run_dir_is_not_overwritten(tmp_path: Path) -> None:
    RunDir.create(tmp_path, "r1")
    with pytest.raises(RunDirError, match="already exists"):
        RunDir.create(tmp_path, "r1")


def test_not_a_run_dir(tmp_path: Path) -> None:
    with pytest.raises(RunDirError, match="not a vbench run directory"):
        RunDir.open(tmp_path)


def test_unknown_format_version_is_refused(tmp_path: Path) -> None:
    run = RunDir.create(tmp_path, "r1")
    run.write_manifest(_manifest())
    data = json.loads((run.path / "manifest.json").read_text())
    data["format_version"] = 99
    (run.path / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(RunDirError, match="format_version 99"):
        run.read_manifest()


def test_a_broken_manifest_names_the_key(tmp_path: Path) -> None:
    run = RunDir.create(tmp_path, "r1")
    run.write_manifest(_manifest())
    data = json.loads((run.path / "manifest.json").read_text())
    data["status"] = "exploded"
    (run.path / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(RunDirError, match="status"):
        run.read_manifest()


def test_samples_reject_non_finite_values() -> None:
    with pytest.raises(ValueError, match="non-finite"):
        _sample(float("nan"))


def test_samples_are_appended_as_cases_finish(tmp_path: Path) -> None:
    run = RunDir.create(tmp_path, "r1")
    run.write_manifest(_manifest())
    run.append_samples([_sample(10.0)])
    path = tmp_path / "r1" / "samples.csv"
    first = path.read_bytes()
    inode = path.stat().st_ino
    run.append_samples([_sample(12.5, 1), _sample(14.0, 2)])
    data = path.read_bytes()
    assert data.startswith(first)  # earlier rows are never rewritten
    assert path.stat().st_ino == inode  # the same file, not a replacement
    assert data.count(b"run_id,") == 1  # one header
    assert load_samples(tmp_path / "r1")["value"].tolist() == [10.0, 12.5, 14.0]
