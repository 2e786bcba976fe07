"""`vbench compare`: run directories written through the real RunDir writer (real fio outputs and
seeded series), and two real runs of `vbench run` (e2e)."""

from __future__ import annotations

import html as html_lib
import random
import re
import shutil
import statistics
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import e2e_env, fio_job, rewrite_samples, scenario_toml, vbench_run

from vbench.errors import RunDirError
from vbench.model import Sample
from vbench.report.compare import (
    ACCEL_HEADER,
    CompareError,
    build_compare,
    compare_runs,
    load_runs,
    parameter_differences,
)
from vbench.report.render import DASH
from vbench.results import Accel, CaseRecord, Manifest, RunDir, ScenarioRecord, TrialRecord
from vbench.stats import holm, mann_whitney
from vbench.workloads.fio import SampleLabels, parse_fio_json

FIO = Path(__file__).parent / "data" / "fio"
PARAMS = "bs=4k,direct=True,iodepth=16,ioengine=libaio,numjobs=1,ramp_s=0,runtime_s=5,rw=randread"
SCENARIO = 'format_version = 1\nname = "quick"\n'
VBENCH = [sys.executable, "-m", "vbench"]


def _manifest(
    run_id: str, host: dict[str, object], accel: str, versions: dict[str, str]
) -> Manifest:
    return Manifest(
        run_id=run_id,
        status="complete",
        started_at="2025-01-01T10:00:00+00:00",
        ended_at="2025-01-01T10:03:00+00:00",
        libvirt_uri="qemu:///system",
        scenario=ScenarioRecord(path="s.toml", name="quick", sha256="ab" * 32, text=SCENARIO),
        host=host,
        versions=versions,
        accelerator=Accel(name=accel, reason="from the test"),
    )


def _write_run(
    out: Path,
    run_id: str,
    cases: dict[tuple[str, str], list[list[Sample]]],
    *,
    host: dict[str, object] | None = None,
    accel: str = "tcg",
    versions: dict[str, str] | None = None,
) -> Path:
    """A run directory through RunDir: `cases[(mode, parameters)]` = samples per repetition."""
    run = RunDir.create(out, run_id)
    samples: list[Sample] = []
    records: list[CaseRecord] = []
    trials: list[TrialRecord] = []
    for (mode, params), reps in cases.items():
        for rep, rep_samples in enumerate(reps):
            samples += rep_samples
            trials.append(TrialRecord(mode=mode, mode_id=mode, repetition=rep, status="ok"))
            records.append(
                CaseRecord(
                    case_id=rep_samples[0].case_id,
                    mode=mode,
                    mode_id=mode,
                    workload="fio",
                    parameters=params,
                    repetition=rep,
                    status="ok",
                )
            )
    manifest = _manifest(
        run_id,
        host if host is not None else {"hostname": "lab", "kernel": "6.1.0-18-amd64"},
        accel,
        versions or {"qemu": "7.2.0", "libvirt": "9.0.0"},
    )
    run.write_manifest(manifest.model_copy(update={"cases": records, "trials": trials}))
    rewrite_samples(run, samples)
    return run.path


def _fio(run_id: str, mode: str, params: str, files: list[str]) -> list[list[Sample]]:
    """Real fio outputs, one file per repetition."""
    return [
        parse_fio_json(
            (FIO / name).read_text(),
            SampleLabels(run_id, f"r{rep}-{mode}-fio", mode, "fio", params, rep, 1.7e9 + rep),
        )
        for rep, name in enumerate(files)
    ]


def _series(run_id: str, mode: str, params: str, values: list[float]) -> list[list[Sample]]:
    return [
        [Sample(run_id, f"r{rep}-{mode}-fio", mode, "fio", params, rep, "read.iops", v, "IO/s", 0)]
        for rep, v in enumerate(values)
    ]


def _text(html: str) -> str:
    html = re.sub(r"<(style|svg)\b.*?</\1>", " ", html, flags=re.S)
    return " ".join(html_lib.unescape(re.sub(r"<[^>]+>", " ", html)).split())


A_FILES = [
    "randread-4k-libaio-qd16.json",
    "randread-4k-j2-group.json",
    "randread-4k-j2-nogroup.json",
]
B_FILES = [
    "randread-4k-j2-nogroup.json",
    "randread-4k-j2-nogroup.json",
    "randread-4k-j2-group.json",
]


def test_different_hosts_are_compared_and_shown_side_by_side(tmp_path: Path) -> None:
    a = _write_run(tmp_path, "run-a", {("pv", PARAMS): _fio("run-a", "pv", PARAMS, A_FILES)})
    b = _write_run(
        tmp_path,
        "run-b",
        {("pv", PARAMS): _fio("run-b", "pv", PARAMS, B_FILES)},
        host={"hostname": "gen2", "kernel": "6.8.0-40-generic", "cpu_model": "EPYC"},
        versions={"qemu": "8.2.2", "libvirt": "9.0.0"},
    )
    files = build_compare([a, b], tmp_path / "cmp")
    comparison = files.comparison
    assert comparison.not_compared == ()
    assert comparison.accel_warning is None
    rows = comparison.rows
    iops = rows[(rows["metric"] == "read.iops") & (rows["mode"] == "pv")]
    assert list(iops["run"]) == ["A", "B"]
    va = [
        s.value for rep in _fio("x", "pv", PARAMS, A_FILES) for s in rep if s.metric == "read.iops"
    ]
    vb = [
        s.value for rep in _fio("x", "pv", PARAMS, B_FILES) for s in rep if s.metric == "read.iops"
    ]
    b_row = iops.iloc[1]
    assert b_row["ratio"] == pytest.approx(statistics.median(vb) / statistics.median(va))
    assert b_row["ratio_low"] <= b_row["ratio"] <= b_row["ratio_high"]
    assert b_row["p_value"] == pytest.approx(mann_whitney(vb, va).p_value)
    compared = comparison.compared
    assert list(compared["p_holm"]) == pytest.approx(holm(list(compared["p_value"])))
    env = {e.key: e for e in comparison.environment}
    assert env["host: hostname"].values == ("lab", "gen2") and env["host: hostname"].differs
    assert env["host: kernel"].differs and env["version: qemu"].values == ("7.2.0", "8.2.2")
    assert not env["version: libvirt"].differs
    assert env["host: cpu_model"].values == (DASH, "EPYC")
    text = _text(files.html.read_text())
    assert "gen2" in text and "6.8.0-40-generic" in text and "8.2.2" in text
    assert f"{b_row['ratio'] * 100:.1f}%" in text
    assert "n too small" in text  # 3 against 3
    assert ACCEL_HEADER not in text
    assert files.pdf is not None and files.pdf.read_bytes().startswith(b"%PDF")


def test_mismatched_cases_are_listed_not_compared(tmp_path: Path) -> None:
    other_runtime = PARAMS.replace("runtime_s=5", "runtime_s=2")
    write = PARAMS.replace("rw=randread", "rw=randwrite")
    a = _write_run(
        tmp_path,
        "run-a",
        {
            ("fv", PARAMS): _fio("run-a", "fv", PARAMS, A_FILES),
            ("pv", PARAMS): _fio("run-a", "pv", PARAMS, A_FILES),
        },
    )
    b = _write_run(
        tmp_path,
        "run-b",
        {
            ("fv", other_runtime): _fio("run-b", "fv", other_runtime, B_FILES),
            ("pv", PARAMS): _fio("run-b", "pv", PARAMS, B_FILES),
            ("pv", write): _fio("run-b", "pv", write, ["randwrite-4k-libaio-qd16.json"]),
        },
    )
    comparison = compare_runs(load_runs([a, b]))
    assert set(comparison.rows["mode"]) == {"pv"}  # fv's job differs: not compared
    reasons = {(n.mode, n.reason) for n in comparison.not_compared}
    assert ("fv", "job parameters differ (A / B): runtime_s: 5 / 2") in reasons
    assert ("pv", "only in run B") in reasons
    assert len(comparison.not_compared) == 2
    text = _text(build_compare([a, b], tmp_path / "cmp", pdf=False).html.read_text())
    assert "Not compared" in text and "runtime_s: 5 / 2" in text and "only in run B" in text


def test_three_runs_are_each_compared_with_the_first(tmp_path: Path) -> None:
    other_runtime = PARAMS.replace("runtime_s=5", "runtime_s=2")
    a = _write_run(tmp_path, "run-a", {("pv", PARAMS): _fio("run-a", "pv", PARAMS, A_FILES)})
    b = _write_run(tmp_path, "run-b", {("pv", PARAMS): _fio("run-b", "pv", PARAMS, B_FILES)})
    c = _write_run(
        tmp_path, "run-c", {("pv", other_runtime): _fio("run-c", "pv", other_runtime, B_FILES)}
    )
    d = _write_run(tmp_path, "run-d", {("pv", PARAMS): _fio("run-d", "pv", PARAMS, A_FILES)})
    files = build_compare([a, b, c, d], tmp_path / "cmp", pdf=False)
    comparison = files.comparison
    iops = comparison.rows[comparison.rows["metric"] == "read.iops"]
    assert list(iops["run"]) == ["A", "B", "D"]  # C's job differs
    assert list(iops["reference"])[1:] == ["A", "A"]
    assert iops.iloc[2]["ratio"] == 1.0  # D repeats A's outputs
    assert [(n.runs, n.reason) for n in comparison.not_compared] == [
        ("A, C", "job parameters differ (A / C): runtime_s: 5 / 2")
    ]
    compared = comparison.compared
    assert len(compared) == 2 * len(comparison.rows) // 3  # B and D rows, Holm over both
    assert list(compared["p_holm"]) == pytest.approx(holm(list(compared["p_value"])))
    text = _text(files.html.read_text())
    assert "Run A reference Run B Run C Run D" in text and "not in this run" in text


def test_parameter_differences() -> None:
    assert parameter_differences("bs=4k,rw=read", "bs=4k,rw=read") == []
    assert parameter_differences("bs=4k,rw=read", "bs=8k,iodepth=4,rw=read") == [
        "bs: 4k / 8k",
        f"iodepth: {DASH} / 4",
    ]


def test_no_case_in_common_still_writes_the_page(tmp_path: Path) -> None:
    a = _write_run(tmp_path, "run-a", {("fv", PARAMS): _fio("run-a", "fv", PARAMS, A_FILES)})
    b = _write_run(tmp_path, "run-b", {("pv", PARAMS): _fio("run-b", "pv", PARAMS, B_FILES)})
    files = build_compare([a, b], tmp_path / "cmp", pdf=False)
    assert files.comparison.rows.empty
    text = _text(files.html.read_text())
    assert "No case in common." in text and "only in run A" in text and "only in run B" in text


def test_a_clear_difference_is_significant_after_holm(tmp_path: Path) -> None:
    rng = random.Random(4)
    params2 = PARAMS.replace("iodepth=16", "iodepth=1")
    base = [rng.gauss(1000.0, 20.0) for _ in range(8)]
    same = [rng.gauss(1000.0, 20.0) for _ in range(8)]
    faster = [v * 1.3 for v in (rng.gauss(1000.0, 20.0) for _ in range(8))]
    a = _write_run(
        tmp_path,
        "run-a",
        {
            ("pv", PARAMS): _series("run-a", "pv", PARAMS, base),
            ("pv", params2): _series("run-a", "pv", params2, base),
        },
    )
    b = _write_run(
        tmp_path,
        "run-b",
        {
            ("pv", PARAMS): _series("run-b", "pv", PARAMS, faster),
            ("pv", params2): _series("run-b", "pv", params2, same),
        },
    )
    files = build_compare([a, b], tmp_path / "cmp", pdf=False)
    compared = files.comparison.compared.set_index("parameters")
    fast, null = compared.loc[PARAMS], compared.loc[params2]
    assert fast["significant"] and fast["p_holm"] == pytest.approx(2 * fast["p_value"])
    assert not null["significant"]
    assert fast["ratio_low"] > 1.0
    text = _text(files.html.read_text())
    assert "1 significantly different" in text
    assert re.search(r"\d+\.\d% \* \[", text)  # the mark beside the ratio


def test_tcg_against_kvm_warns_on_every_page(tmp_path: Path) -> None:
    cases_a = {("pv", PARAMS): _fio("run-a", "pv", PARAMS, A_FILES)}
    for i in range(6):  # enough cases for several pages
        p = PARAMS.replace("iodepth=16", f"iodepth={i + 1}")
        cases_a[("pv", p)] = _fio("run-a", "pv", p, A_FILES)
    cases_b = {k: _fio("run-b", k[0], k[1], B_FILES) for k in cases_a}
    a = _write_run(tmp_path, "run-a", cases_a, accel="tcg")
    b = _write_run(tmp_path, "run-b", cases_b, accel="kvm")
    files = build_compare([a, b], tmp_path / "cmp")
    assert files.comparison.accel_warning is not None
    assert "A: TCG, B: KVM" in files.comparison.accel_warning
    text = _text(files.html.read_text())
    assert "TCG compared with KVM." in text
    assert text.count(ACCEL_HEADER) >= 7  # above every results table
    if shutil.which("pdftotext") is None:
        pytest.skip("pdftotext (poppler-utils) is not installed")
    assert files.pdf is not None
    out = subprocess.run(
        ["pdftotext", str(files.pdf), "-"], capture_output=True, text=True, check=True
    )
    pages = [p for p in out.stdout.split("\f") if p.strip()]
    assert len(pages) >= 3
    for page in pages:
        assert ACCEL_HEADER in " ".join(page.split())


def test_bad_input_is_one_line(tmp_path: Path) -> None:
    a = _write_run(tmp_path, "run-a", {("pv", PARAMS): _fio("run-a", "pv", PARAMS, A_FILES)})
    with pytest.raises(CompareError):
        load_runs([a])
    with pytest.raises(CompareError, match="given twice"):
        load_runs([a, tmp_path / "run-a"])
    with pytest.raises(RunDirError):
        load_runs([a, tmp_path / "missing"])
    for args, expected in (
        ([str(a), str(tmp_path / "missing")], "not a vbench run directory"),
        ([str(a), str(a)], "given twice"),
        ([str(a), str(a / ".." / "run-a"), "-o", str(a / "manifest.json")], "given twice"),
    ):
        proc = subprocess.run(
            [*VBENCH, "compare", *args], capture_output=True, text=True, check=False
        )
        assert proc.returncode == 1
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("vbench: error: ") and expected in lines[0]
        assert "Traceback" not in proc.stderr


def test_unwritable_output_is_one_line(tmp_path: Path) -> None:
    a = _write_run(tmp_path, "run-a", {("pv", PARAMS): _fio("run-a", "pv", PARAMS, A_FILES)})
    b = _write_run(tmp_path, "run-b", {("pv", PARAMS): _fio("run-b", "pv", PARAMS, B_FILES)})
    proc = subprocess.run(
        [*VBENCH, "compare", str(a), str(b), "--no-pdf", "-o", str(a / "manifest.json")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 1
    assert proc.stderr.startswith("vbench: error: ") and len(proc.stderr.strip().splitlines()) == 1
    assert "pass another --output" in proc.stderr


def test_cli_writes_beside_the_first_run_by_default(tmp_path: Path) -> None:
    a = _write_run(tmp_path, "run-a", {("pv", PARAMS): _fio("run-a", "pv", PARAMS, A_FILES)})
    b = _write_run(tmp_path, "run-b", {("pv", PARAMS): _fio("run-b", "pv", PARAMS, B_FILES)})
    proc = subprocess.run(
        [*VBENCH, "compare", str(a), str(b), "--no-pdf"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    expected = tmp_path / "compare-run-a-vs-run-b" / "compare.html"
    assert proc.stdout.strip().splitlines() == [f"html: {expected}"]
    assert expected.is_file()


# -- two real runs -------------------------------------------------------------------------------

TINY = scenario_toml(
    "tiny-compare",
    fio_job(2, iodepth=[8]),
    guest={"memory_mib": 384},
    disk_mib=64,
    modes=["fv"],
    description="e2e: one short fio job in fv",
)


@pytest.fixture(scope="session")
def real_runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    """Two runs of the real `vbench run` (real libvirtd, QEMU guest, fio): about 1 min each here."""
    base = tmp_path_factory.mktemp("compare-e2e")
    scenario = base / "tiny.toml"
    scenario.write_text(TINY)
    env = e2e_env(base)
    paths: list[Path] = []
    for name in ("a", "b"):
        paths.append(vbench_run(scenario, base / name, env)[1])
    yield paths[0], paths[1]
    shutil.rmtree(Path(env["VBENCH_SCRATCH"]), ignore_errors=True)


@pytest.mark.e2e
def test_compare_two_real_runs(real_runs: tuple[Path, Path], tmp_path: Path) -> None:
    a, b = real_runs
    proc = subprocess.run(
        [*VBENCH, "compare", str(a), str(b), "--output", str(tmp_path / "cmp")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "cmp" / "compare.html").is_file()
    assert (tmp_path / "cmp" / "compare.pdf").read_bytes().startswith(b"%PDF")
    comparison = compare_runs(load_runs([a, b]))
    assert comparison.not_compared == ()
    compared = comparison.compared
    iops = compared[(compared["metric"] == "read.iops") & (compared["mode"] == "fv")]
    assert len(iops) == 1
    row = iops.iloc[0]
    va = RunDir(a).read_samples()
    vb = RunDir(b).read_samples()
    ia = float(va[(va["metric"] == "read.iops")]["value"].iloc[0])
    ib = float(vb[(vb["metric"] == "read.iops")]["value"].iloc[0])
    assert row["ratio"] == pytest.approx(ib / ia)
    assert row["n"] == 1 and row["p_value"] == 1.0  # one repetition each: nothing to test
    env = {e.key: e for e in comparison.environment}
    assert env["run id"].differs and not env["host: hostname"].differs
    text = _text((tmp_path / "cmp" / "compare.html").read_text())
    assert "n too small" in text and "n = 1" in text
