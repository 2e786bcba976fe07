"""The run directory: atomic files, manifest round trip, refusal of unknown formats."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from support import rewrite_samples

from vbench.errors import RunDirError
from vbench.model import SAMPLE_COLUMNS, Sample
from vbench.results import (
    CaseRecord,
    CrossCheckRecord,
    Manifest,
    RunDir,
    RunTiming,
    ScenarioRecord,
    atomic_write,
    load_samples,
)


def _manifest(run_id: str = "r1", cases: int = 2) -> Manifest:
    return Manifest(
        run_id=run_id,
        libvirt_uri="test:///default",
        scenario=ScenarioRecord(path="s.toml", name="s", sha256="0" * 64, text="x"),
        cases=[
            CaseRecord(
                case_id=f"c{rep}",
                mode="pv",
                mode_id="pv",
                workload="fio",
                parameters="bs=4k",
                repetition=rep,
                status="ok",
            )
            for rep in range(cases)
        ],
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
    run.write_raw("c0", "fio.json", "{}")
    run.write_manifest(m)
    assert m.raw_files == ["raw/c0/fio.json"]
    run.append_samples([_sample(10.0)])
    run.append_samples([])
    run.append_samples([_sample(12.5, 1)])
    back = RunDir.open(tmp_path / "r1").read_manifest()
    assert back == m
    frame = load_samples(tmp_path / "r1")
    assert list(frame.columns) == list(SAMPLE_COLUMNS)
    assert frame["value"].tolist() == [10.0, 12.5]
    assert frame["parameters"].tolist() == ["bs=4k", "bs=4k"]


def test_cross_checks_and_timing_round_trip(tmp_path: Path) -> None:
    run = RunDir.create(tmp_path, "r1")
    m = _manifest()
    m.cases[0].workload_s = 5.2
    m.cases[0].cross_checks = [
        CrossCheckRecord(
            name="net_bytes_tx",
            workload=1e8,
            sampled=1.07e8,
            disagreement_pct=7.0,
            limit_pct=5.0,
            flagged=True,
        )
    ]
    m.cases[0].flags = ["net_bytes_tx"]
    m.timing = RunTiming.of(200.0, 50.0)
    run.write_manifest(m)
    back = RunDir.open(tmp_path / "r1").read_manifest()
    assert back == m
    assert back.timing is not None and back.timing.overhead_ratio == pytest.approx(0.75)
    assert RunTiming.of(0.0, 0.0).overhead_ratio == 0.0
    assert RunTiming.of(10.0, 12.0).overhead_ratio == 0.0  # never negative


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


@pytest.mark.parametrize("version", [1, 2])
def test_an_older_manifests_host_changes_are_left_out(tmp_path: Path, version: int) -> None:
    """v1/v2 kept the network's host changes as lines; since v3 the run's journal holds them."""
    run = RunDir.create(tmp_path, "r1")
    run.write_manifest(_manifest())
    data = json.loads((run.path / "manifest.json").read_text())
    assert data["format_version"] == 3 and "host_changes" not in data
    data["format_version"] = version
    data["host_changes"] = [{"at": "2026-12-01T10:00:00+00:00", "what": "create tap vbt0"}]
    (run.path / "manifest.json").write_text(json.dumps(data))
    back = run.read_manifest()
    assert back.format_version == 3
    assert back == _manifest().model_copy(update={"started_at": back.started_at})


def test_host_changes_in_a_v3_manifest_are_refused_in_one_line(tmp_path: Path) -> None:
    run = RunDir.create(tmp_path, "r1")
    run.write_manifest(_manifest())
    data = json.loads((run.path / "manifest.json").read_text())
    data["host_changes"] = []
    (run.path / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(RunDirError, match=r"manifest.json: host_changes: Extra inputs") as err:
        run.read_manifest()
    assert "\n" not in str(err.value)


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


# -- damaged run directories: one line naming the file and the line, never a traceback ----------


def _good_run(tmp_path: Path, status: str = "complete") -> RunDir:
    """A small run directory written through the real writer: 2 cases, raw files, 4 samples."""
    run = RunDir.create(tmp_path, "r1")
    m = _manifest()
    m.status = status  # type: ignore[assignment]
    for rep in range(2):
        run.write_raw(f"c{rep}", "fio.json", json.dumps({"jobs": [{"rep": rep}]}))
    run.write_manifest(m)
    rewrite_samples(run, [_sample(10.0), _sample(11.0), _sample(12.5, 1), _sample(13.0, 1)])
    return run


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines(keepends=True)


def _error(run: RunDir) -> str:
    with pytest.raises(RunDirError) as err:
        run.load()
    message = str(err.value)
    assert "\n" not in message
    return message


def test_a_good_run_loads(tmp_path: Path) -> None:
    loaded = _good_run(tmp_path).load()
    assert loaded.manifest.raw_files == ["raw/c0/fio.json", "raw/c1/fio.json"]
    assert loaded.samples["value"].tolist() == [10.0, 11.0, 12.5, 13.0]
    assert loaded.samples["repetition"].tolist() == [0, 0, 1, 1]


@pytest.mark.parametrize(
    ("line", "edit", "expected"),
    [
        (3, lambda t: t.replace("11.0", "NaN"), "value 'NaN' is not a finite number"),
        (3, lambda t: t.replace("11.0", "eleven"), "value 'eleven' is not a finite number"),
        (4, lambda t: t.replace(",1,read.iops", ",-1,read.iops"), "repetition '-1'"),
        (2, lambda t: t.replace("read.iops", ""), "metric '' is empty"),
        (5, lambda t: t.rstrip("\n") + ",extra\n", "11 fields, want 10"),
        (3, lambda t: t.split(",pv,")[0] + "\n", "mode '' is empty"),
        (3, lambda t: "\n", "run_id '' is empty"),
    ],
    ids=["nan", "text", "negative-rep", "no-metric", "extra-field", "cut-row", "blank"],
)
def test_a_malformed_sample_row_names_its_line(
    tmp_path: Path, line: int, edit: Callable[[str], str], expected: str
) -> None:
    run = _good_run(tmp_path)
    path = run.path / "samples.csv"
    lines = _lines(path)
    lines[line - 1] = edit(lines[line - 1])
    path.write_text("".join(lines))
    message = _error(run)
    assert message.startswith(f"{path}:{line}: malformed sample row"), message
    assert expected in message


def test_samples_without_a_header_or_columns(tmp_path: Path) -> None:
    run = _good_run(tmp_path)
    path = run.path / "samples.csv"
    path.write_text("")
    assert _error(run).startswith(f"{path}:1: empty")
    path.write_text("run_id,value\nr1,1\n")
    assert _error(run).startswith(f"{path}:1: missing columns")


def test_a_truncated_manifest_names_its_line(tmp_path: Path) -> None:
    run = _good_run(tmp_path)
    path = run.path / "manifest.json"
    text = path.read_text()
    path.write_text(text[: len(text) // 2])
    message = _error(run)
    lines_kept = text[: len(text) // 2].count("\n") + 1
    assert message.startswith(f"{path}:{lines_kept}: not valid JSON"), message
    assert "truncated or damaged" in message


def test_a_missing_raw_file_names_the_manifest_line(tmp_path: Path) -> None:
    run = _good_run(tmp_path)
    (run.path / "raw" / "c1" / "fio.json").unlink()
    message = _error(run)
    manifest = run.path / "manifest.json"
    line = next(i for i, t in enumerate(_lines(manifest), 1) if '"raw/c1/fio.json"' in t)
    assert message.startswith(f"{manifest}:{line}: names raw/c1/fio.json, which is missing")


def test_samples_of_an_unlisted_case(tmp_path: Path) -> None:
    run = _good_run(tmp_path)
    samples = [_sample(10.0), _sample(12.5, 1), _sample(14.0, 2)]  # c2 is not in the manifest
    rewrite_samples(run, samples)
    message = _error(run)
    assert message.startswith(f"{run.path / 'samples.csv'}:4: case 'c2' is not one manifest.json")
    # a run that stopped mid-case holds that case's samples before its record: left out
    m = run.read_manifest()
    m.status = "interrupted"
    run.write_manifest(m)
    assert run.load().samples["case_id"].tolist() == ["c0", "c1"]


def test_damaged_run_dir_is_one_line_on_the_command_line(tmp_path: Path) -> None:
    run = _good_run(tmp_path)
    path = run.path / "samples.csv"
    path.write_text(path.read_text().replace("12.5", "NaN"))
    proc = subprocess.run(
        [sys.executable, "-m", "vbench", "report", str(run.path), "--no-pdf"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])},
        check=False,
    )
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == [
        f"vbench: error: {path}:4: malformed sample row (value 'NaN' is not a finite number); "
        "fix or delete that line"
    ]


def test_timing_counts_a_density_case_once() -> None:
    # a density case in 2 guests at once: each guest's record and the aggregate carry ~its wall
    # time; the run spent it once (a single-guest case and the bare-metal one: guest None)
    def case(cid: str, seconds: float, guest: int | None, density: int | None) -> CaseRecord:
        return CaseRecord(
            case_id=cid,
            mode="pv",
            mode_id="pv",
            workload="fio",
            parameters="bs=4k",
            repetition=0,
            status="ok",
            workload_s=seconds,
            density=density,
            guest=guest,
        )

    cases = [
        case("r0-pv-n2g0-fio", 3.0, 0, 2),
        case("r0-pv-n2g1-fio", 3.1, 1, 2),
        case("r0-pv-n2-fio", 3.1, None, 2),
        case("r0-pv-fio", 3.0, None, None),
    ]
    timing = RunTiming.of_cases(10.0, cases)
    assert timing.workload_s == pytest.approx(6.1)
    assert timing.overhead_ratio == pytest.approx(0.39)
