"""The report, built from a run directory made of real fio output (tests/data/fio)."""

from __future__ import annotations

import html as html_lib
import json
import re
import shutil
import statistics
import subprocess
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from support import rewrite_samples

from vbench.checkdoc import CheckDocument
from vbench.errors import RunDirError
from vbench.model import ModeId, Sample
from vbench.report import build_report
from vbench.report.analysis import CaseFlag, flags_document, mode_order, summarize_samples
from vbench.report.render import DASH, TCG_WARNING
from vbench.results import (
    Accel,
    CaseRecord,
    Manifest,
    RunDir,
    ScenarioRecord,
    SkippedMode,
    TrialRecord,
)
from vbench.stats import (
    Flag,
    FlagKind,
    bootstrap_median_ci,
    holm,
    mann_whitney,
    stability_flags,
    summarize,
)
from vbench.workloads.base import SampleLabels
from vbench.workloads.fio import parse_fio_json

DATA = Path(__file__).parent / "data" / "fio"
# A run directory written by vbench 0.1 (manifest format 1), kept to prove it still renders.
V1_RUN = Path(__file__).parent / "data" / "records" / "run-v1"
RUN_ID = "20250101T100000-quick"
SCENARIO = 'format_version = 1\nname = "quick"\ndescription = "Emulated vs virtio disk"\n'
PARAMS = "bs=4k,direct=True,iodepth=16,ioengine=libaio,numjobs=1,ramp_s=0,runtime_s=5,rw=randread"
# Real outputs stand in for repetitions: each mode gets three different real fio runs.
FILES = {
    "fv": [
        "randread-4k-j2-nogroup.json",
        "randread-4k-j2-group.json",
        "randread-4k-psync-note-line.txt",
    ],
    "pv": [
        "randread-4k-libaio-qd16.json",
        "randread-4k-j2-group.json",
        "randread-4k-libaio-qd16.json",
    ],
}


def _manifest(status: str = "complete", **extra: Any) -> Manifest:
    return Manifest(
        run_id=RUN_ID,
        status=status,  # type: ignore[arg-type]
        started_at="2025-01-01T10:00:00+00:00",
        ended_at="2025-01-01T10:03:05+00:00",
        libvirt_uri="qemu:///system",
        scenario=ScenarioRecord(
            path="scenarios/quick.toml", name="quick", sha256="0" * 64, text=SCENARIO
        ),
        host={"hostname": "lab", "cpu": {"model": "test cpu", "cores": 2}},
        versions={"vbench": "0.1.0", "libvirt": "9.0.0", "qemu": "7.2.0", "fio": "fio-3.33"},
        accelerator=Accel(name="tcg", reason="KVM probe failed: no vmx/svm"),
        **extra,
    )


def _make_run(tmp_path: Path, status: str = "complete", **extra: Any) -> tuple[Path, list[Sample]]:
    run = RunDir.create(tmp_path, RUN_ID)
    samples: list[Sample] = []
    cases: list[CaseRecord] = []
    trials: list[TrialRecord] = []
    for rep in range(3):
        for mode in ("fv", "pv"):
            name = FILES[mode][rep]
            text = (DATA / name).read_text()
            case_id = f"r{rep}-{mode}-fio-randread-4k-qd16-j1"
            labels = SampleLabels(RUN_ID, case_id, mode, "fio", PARAMS, rep, 1.7e9 + rep)
            samples += parse_fio_json(text, labels)
            run.write_raw(case_id, "fio.json", text)
            trials.append(TrialRecord(mode=mode, mode_id=mode, repetition=rep, status="ok"))
            cases.append(
                CaseRecord(
                    case_id=case_id,
                    mode=mode,
                    mode_id=mode,
                    workload="fio",
                    parameters=PARAMS,
                    repetition=rep,
                    status="ok",
                )
            )
    extra.setdefault("trials", trials)
    extra.setdefault("cases", cases)
    run.write_manifest(_manifest(status, **extra))
    run.append_samples(samples)
    return run.path, samples


def _append_listed(run_path: Path, samples: list[Sample]) -> None:
    """Append samples and list their cases in the manifest, as the runner does."""
    run = RunDir(run_path)
    manifest = run.read_manifest()
    known = set(manifest.case_ids())
    for s in samples:
        if s.case_id not in known:
            known.add(s.case_id)
            manifest.cases.append(
                CaseRecord(
                    case_id=s.case_id,
                    mode=s.mode,
                    mode_id=s.mode,
                    workload=s.workload,
                    parameters=s.parameters,
                    repetition=s.repetition,
                    status="ok",
                )
            )
    run.write_manifest(manifest)
    run.append_samples(samples)


def _pdf_text(path: Path) -> str | None:
    if shutil.which("pdftotext") is None:
        return None
    out = subprocess.run(["pdftotext", str(path), "-"], capture_output=True, text=True, check=True)
    return out.stdout


def _text(html: str) -> str:
    """Visible text, roughly: tags and <style>/<svg> blocks removed, whitespace collapsed."""
    html = re.sub(r"<(style|svg)\b.*?</\1>", " ", html, flags=re.S)
    return " ".join(html_lib.unescape(re.sub(r"<[^>]+>", " ", html)).split())


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Sample], Any]:
    run_path, samples = _make_run(tmp_path_factory.mktemp("runs"))
    return run_path, samples, build_report(run_path)


def test_html_is_self_contained_with_charts(built: tuple[Path, list[Sample], Any]) -> None:
    run_path, _, files = built
    assert files.html == run_path / "report.html"
    html = files.html.read_text()
    assert "<svg" in html
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)
    assert not re.search(r"url\(\s*['\"]?(https?:)?//", html)
    assert "<link" not in html and "<script" not in html
    assert "@import" not in html


def test_html_names_modes_status_and_warns_about_tcg(
    built: tuple[Path, list[Sample], Any],
) -> None:
    _, _, files = built
    text = _text(files.html.read_text())
    assert "FV (emulated)" in text and "PV-on-HVM (virtio)" in text
    assert TCG_WARNING in text
    assert RUN_ID in text
    assert "complete" in text.lower()
    assert "Emulated vs virtio disk" in text
    assert "interrupted" not in text.lower()
    assert "samples.csv" in text and "raw" in text


def test_html_table_shows_the_medians_of_the_samples(
    built: tuple[Path, list[Sample], Any],
) -> None:
    _, samples, files = built
    text = _text(files.html.read_text())
    for mode in ("fv", "pv"):
        values = [s.value for s in samples if s.mode == mode and s.metric == "read.iops"]
        assert len(values) == 3
        assert f"{summarize(values).median:,.0f}" in text


def test_pdf_exists_has_pages_and_names_both_modes(built: tuple[Path, list[Sample], Any]) -> None:
    _, _, files = built
    assert files.pdf is not None
    data = files.pdf.read_bytes()
    assert data.startswith(b"%PDF")
    assert data.rstrip().endswith(b"%%EOF")
    if shutil.which("pdfinfo") is None:
        pytest.skip("pdfinfo (poppler-utils) is not installed")
    info = subprocess.run(["pdfinfo", str(files.pdf)], capture_output=True, text=True, check=True)
    pages = re.search(r"^Pages:\s+(\d+)", info.stdout, re.M)
    assert pages is not None and int(pages.group(1)) >= 2
    text = _pdf_text(files.pdf)
    if text is None:
        pytest.skip("pdftotext (poppler-utils) is not installed")
    flat = " ".join(text.split())
    assert "FV (emulated)" in flat and "PV-on-HVM (virtio)" in flat
    assert "TCG software emulation" in flat


def test_pdf_tables_carry_the_figures_and_say_what_they_leave_out(
    built: tuple[Path, list[Sample], Any],
) -> None:
    _, samples, files = built
    assert files.pdf is not None
    text = _pdf_text(files.pdf)
    if text is None:
        pytest.skip("pdftotext (poppler-utils) is not installed")
    flat = " ".join(text.split())
    pv = [s.value for s in samples if s.mode == "pv" and s.metric == "read.iops"]
    fv = [s.value for s in samples if s.mode == "fv" and s.metric == "read.iops"]
    # the condensed cell: median, % of the reference, n and the median's CI
    assert f"{statistics.median(pv):,.0f}" in flat
    assert f"{statistics.median(pv) / statistics.median(fv) * 100:.1f}%" in flat
    low, high = bootstrap_median_ci(pv) or (0.0, 0.0)
    assert f"n = 3 · CI = range {low:,.0f} {DASH} {high:,.0f}" in flat
    assert "the full report is report.html beside it" in flat
    assert "left out of the PDF" not in flat  # a small run's PDF keeps every chart


def test_a_big_runs_pdf_points_to_the_html_for_the_curves(tmp_path: Path) -> None:
    # the PDF variant of the HTML (what render_pdf prints), for a run with more workloads than
    # the PDF carries curves for: the omission is said once in the results and in every section
    from vbench.report.analysis import cross_check_flags
    from vbench.report.render import PDF_CURVES_MAX_SECTIONS, build_context, render_html
    from vbench.results import RunDir

    run_path, _ = _make_run(tmp_path)
    run = RunDir.open(run_path).load()
    modes = mode_order(run.manifest, run.samples)
    summary = summarize_samples(run.samples, modes, case_flags=cross_check_flags(run.manifest))
    context = build_context(run.manifest, run.samples, summary, modes, run_path, "now")
    (section,) = context["sections"]
    section.series_chart = "<svg><title>series</title></svg>"
    small = render_html(context, for_pdf=True)
    assert "<title>series</title>" in small and "left out of the PDF" not in small
    many = {**context, "sections": [section] * (PDF_CURVES_MAX_SECTIONS + 1)}
    big = render_html(many, for_pdf=True)
    assert "<title>series</title>" not in big
    assert big.count("left out of the PDF of a run with more than 12 workloads") == 13
    assert "the latency-percentile curves and time series" in _text(big)
    assert "<title>series</title>" in render_html(many)  # the HTML keeps them


def test_summary_reference_is_the_first_mode_without_baremetal(
    built: tuple[Path, list[Sample], Any],
) -> None:
    run_path, samples, _ = built
    frame = RunDir.open(run_path).read_samples()
    manifest = RunDir.open(run_path).read_manifest()
    modes = mode_order(manifest, frame)
    assert modes == ["fv", "pv"]
    summary = summarize_samples(frame, modes)
    row = summary[(summary["metric"] == "read.iops") & (summary["mode"] == "pv")].iloc[0]
    fv = [s.value for s in samples if s.mode == "fv" and s.metric == "read.iops"]
    pv = [s.value for s in samples if s.mode == "pv" and s.metric == "read.iops"]
    assert row["reference"] == "fv"
    assert row["ratio"] == pytest.approx(statistics.median(pv) / statistics.median(fv))
    assert row["ratio_low"] <= row["ratio"] <= row["ratio_high"]
    assert row["p_value"] == pytest.approx(mann_whitney(pv, fv).p_value)
    # Holm over every comparison of the table: never below the raw p-value
    assert row["p_value"] <= row["p_holm"] <= 1.0
    assert row["significant"] == (row["p_holm"] <= 0.05)
    ref = summary[(summary["metric"] == "read.iops") & (summary["mode"] == "fv")].iloc[0]
    assert pd.isna(ref["ratio"]) and pd.isna(ref["p_value"])
    tested = summary[summary["p_value"].notna()]
    assert list(tested["p_holm"]) == pytest.approx(holm(list(tested["p_value"])))


def test_table_cells_show_ci_percent_of_reference_significance_and_flags(
    built: tuple[Path, list[Sample], Any],
) -> None:
    run_path, samples, files = built
    html = files.html.read_text()
    text = _text(html)
    pv = [s.value for s in samples if s.mode == "pv" and s.metric == "read.iops"]
    fv = [s.value for s in samples if s.mode == "fv" and s.metric == "read.iops"]
    pct = statistics.median(pv) / statistics.median(fv) * 100
    assert f"{pct:.1f}%" in text
    low, high = bootstrap_median_ci(pv) or (0.0, 0.0)
    # three repetitions: the median's bootstrap interval is their range, and the cell says so
    assert (low, high) == pytest.approx((min(pv), max(pv)))
    assert f"CI = range {low:,.0f} {DASH} {high:,.0f}" in text
    # 3 against 3 repetitions: Mann-Whitney cannot reach 5 %, and the table says so
    assert "n too small" in text
    flags = json.loads((run_path / "flags.json").read_text())
    assert flags["format_version"] == 1
    unstable = {(f["metric"], f["mode"]) for f in flags["figures"]}
    for metric, mode in unstable:
        values = [s.value for s in samples if s.mode == mode and s.metric == metric]
        assert stability_flags(values)  # only figures that really are unstable are listed
    for f in flags["figures"]:
        for flag in f["flags"]:
            assert f"⚠ {flag['short']}" in text or flag["short"] in text


def test_reference_is_baremetal_when_it_ran_or_a_chosen_mode(tmp_path: Path) -> None:
    run_path, samples = _make_run(tmp_path)
    text = (DATA / "randread-4k-libaio-qd16.json").read_text()
    extra = parse_fio_json(text, SampleLabels(RUN_ID, "bm-0", "baremetal", "fio", PARAMS, 0, 1.7e9))
    run = RunDir(run_path)
    manifest = run.read_manifest()
    manifest.cases.append(
        CaseRecord(
            case_id="bm-0",
            mode="baremetal",
            mode_id="baremetal",
            workload="fio",
            parameters=PARAMS,
            repetition=0,
            status="ok",
        )
    )
    run.write_manifest(manifest)
    rewrite_samples(run, samples + extra)
    frame = RunDir.open(run_path).read_samples()
    modes = mode_order(RunDir.open(run_path).read_manifest(), frame)
    summary = summarize_samples(frame, modes)
    iops = summary[summary["metric"] == "read.iops"]
    assert set(iops["reference"]) == {"baremetal"}
    bm = [s.value for s in extra if s.metric == "read.iops"]
    fv_row = iops[iops["mode"] == "fv"].iloc[0]
    assert fv_row["ratio"] == pytest.approx(fv_row["median"] / bm[0])
    assert pd.isna(fv_row["ratio_low"])  # one bare-metal repetition: no interval
    chosen = summarize_samples(frame, modes, reference="pv")
    assert set(chosen[chosen["metric"] == "read.iops"]["reference"]) == {"pv"}
    html = build_report(run_path, pdf=False).html.read_text()
    assert "Bare metal" in _text(html)
    assert "reference (not a guest)" in _text(html)


def test_passed_in_cross_check_flags_reach_the_table(tmp_path: Path) -> None:
    run_path, _ = _make_run(tmp_path)
    frame = RunDir.open(run_path).read_samples()
    cross = Flag(FlagKind.CROSS_CHECK, "cross-check", "fio's I/Os differ from libvirt's by 7%")
    summary = summarize_samples(
        frame, ["fv", "pv"], case_flags=[CaseFlag("fio", PARAMS, "pv", cross, "read.iops")]
    )
    flagged = summary[summary["flags"].map(lambda fs: cross in fs)]
    assert list(zip(flagged["metric"], flagged["mode"], strict=True)) == [("read.iops", "pv")]
    doc = flags_document(summary)
    assert {
        "kind": "cross-check",
        "short": "cross-check",
        "message": "fio's I/Os differ from libvirt's by 7%",
    } in next(f["flags"] for f in doc["figures"] if (f["metric"], f["mode"]) == ("read.iops", "pv"))


def test_no_pdf(tmp_path: Path) -> None:
    run_path, _ = _make_run(tmp_path)
    files = build_report(run_path, pdf=False)
    assert files.pdf is None
    assert not (run_path / "report.pdf").exists()
    assert files.html.is_file()


def test_interrupted_run_says_so_loudly(tmp_path: Path) -> None:
    run_path, _ = _make_run(
        tmp_path, status="interrupted", error="interrupted by the user (SIGINT)"
    )
    html = build_report(run_path, pdf=False).html.read_text()
    assert 'class="banner interrupted"' in html
    assert "Run interrupted." in _text(html)
    assert "SIGINT" in _text(html)


def test_failed_run_shows_error_skipped_modes_failures_and_checks(tmp_path: Path) -> None:
    trials = [
        TrialRecord(mode="fv", mode_id="fv", repetition=0, status="ok"),
        TrialRecord(
            mode="pv",
            mode_id="pv",
            repetition=0,
            status="failed",
            error="guest agent silent for 60 s",
            console_tail="Booting Linux\nKernel panic - not syncing: VFS: Unable to mount root fs",
        ),
    ]
    run_path, _ = _make_run(
        tmp_path,
        status="failed",
        error="libvirtd went away",
        trials=trials,
        skipped_modes=[SkippedMode(mode="vfio", mode_id="vfio", reason="IOMMU is off")],
        checks=_check_document(),
    )
    files = build_report(run_path)
    text = _text(files.html.read_text())
    assert "Run failed: libvirtd went away" in text
    assert "IOMMU is off" in text
    assert "guest agent silent for 60 s" in text
    assert "Kernel panic - not syncing" in text
    assert "Enable VT-x/AMD-V in the firmware setup" in text
    assert "not ready" in text and "vfio.modules" in text
    assert files.pdf is not None and files.pdf.read_bytes().startswith(b"%PDF")


def test_run_without_samples_renders_no_results(tmp_path: Path) -> None:
    run = RunDir.create(tmp_path, RUN_ID)
    run.write_manifest(_manifest("failed", error="host checks failed for every mode"))
    files = build_report(run.path)
    text = _text(files.html.read_text())
    assert "No results." in text
    assert "<svg" not in files.html.read_text()
    assert files.pdf is not None and files.pdf.read_bytes().startswith(b"%PDF")


def test_missing_run_dir_raises(tmp_path: Path) -> None:
    with pytest.raises(RunDirError):
        build_report(tmp_path / "nope")


def test_cli_report_prints_paths(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from vbench.cli import app

    run_path, _ = _make_run(tmp_path)
    result = CliRunner().invoke(app, ["report", str(run_path), "--no-pdf"])
    assert result.exit_code == 0, result.output
    assert str(run_path / "report.html") in result.output
    assert "pdf" not in result.output
    missing = CliRunner().invoke(app, ["report", str(tmp_path / "missing")])
    assert isinstance(missing.exception, RunDirError)


def test_samples_csv_round_trip_keeps_values(built: tuple[Path, list[Sample], Any]) -> None:
    run_path, samples, _ = built
    frame = RunDir.open(run_path).read_samples()
    assert len(frame) == len(samples)
    first = json.loads(json.dumps(samples[0].as_row()))
    row = frame.iloc[0]
    assert row["metric"] == first["metric"]
    assert row["value"] == pytest.approx(first["value"])


# -- host checks from a real check document, and the cost of each mode ---------------------------


def _check_document(extra_pci: int = 0) -> CheckDocument:
    """A `vbench check --json` document built by the real code from hand-made results."""
    from vbench.inventory import HostUse, Inventory, PciDevice
    from vbench.model import ModeId
    from vbench.readiness import CheckReport, CheckResult, Status

    pci = [
        PciDevice("0000:00:00.0", "8086", "29c0", "060000", is_bridge=False),
        PciDevice("0000:00:02.0", "1af4", "1042", "018000", driver="virtio-pci", iommu_group=2),
        PciDevice(
            "0000:01:00.0",
            "1b36",
            "0010",
            "010802",
            vendor_name="Red Hat, Inc.",
            device_name="QEMU NVM Express Controller",
            driver="nvme",
            iommu_group=5,
            sriov_totalvfs=2,
            sriov_numvfs=1,
            vfs=("0000:01:00.1",),
        ),
        PciDevice("0000:01:00.1", "1b36", "0010", "010802", iommu_group=6, physfn="0000:01:00.0"),
    ]
    pci += [
        PciDevice(
            f"0000:02:{i:02x}.0", "8086", "10d3", "020000", driver="e1000e", iommu_group=10 + i
        )
        for i in range(extra_pci)
    ]
    checks = (
        CheckResult("kvm.device", "/dev/kvm exists", Status.PASS, "/dev/kvm present"),
        CheckResult(
            "cpu.hwvirt",
            "Hardware virtualization (vmx/svm)",
            Status.WARN,
            "no vmx or svm in /proc/cpuinfo flags",
            remedy="Enable VT-x/AMD-V in the firmware setup",
            degrades=(ModeId.FV, ModeId.PV),
        ),
        CheckResult(
            "vfio.modules",
            "vfio, vfio_pci, vfio_iommu_type1 loaded or loadable",
            Status.FAIL,
            "vfio_pci missing",
            remedy="Load now: `modprobe -a vfio vfio_pci vfio_iommu_type1`",
            gates=(ModeId.VFIO, ModeId.SRIOV),
            data={"modules": {"vfio": False, "vfio_pci": False}, "vendor_id": "8086"},
        ),
        CheckResult("kvm.probe", "A guest really boots under KVM", Status.SKIP, "not run"),
    )
    host = {
        "hostname": "lab",
        "checked_at": "2025-01-01T09:59:00+00:00",
        "kernel_release": "6.1.0-56-amd64",
        "os_release": {"ID": "debian", "PRETTY_NAME": "Debian GNU/Linux 12 (bookworm)"},
    }
    inventory = Inventory(
        pci=tuple(pci),
        host_use=(HostUse("0000:00:02.0", "backs / (vda)"),),
        notes=("a note from the inventory",),
    )
    return CheckDocument.build(CheckReport(host=host, checks=checks, inventory=inventory))


def _cost_samples(run_path: Path, samples: list[Sample]) -> list[Sample]:
    extra: list[Sample] = []
    for s in samples:
        if s.metric != "read.iops":
            continue
        base = 100.0 if s.mode == "fv" else 40.0
        for metric, value, unit in (
            ("host.qemu_cpu_util", base + s.repetition, "%"),
            ("host.qemu_cpu_per_io", base * 2 + s.repetition, "us"),
            ("host.cpu_busy", 50.0 + s.repetition, "%"),
            ("guest.disk_reqs", 30000.0 + s.repetition, "count"),
        ):
            extra.append(
                Sample(
                    s.run_id,
                    s.case_id,
                    s.mode,
                    s.workload,
                    s.parameters,
                    s.repetition,
                    metric,
                    value,
                    unit,
                    s.timestamp,
                )
            )
        extra.append(
            Sample(
                s.run_id,
                f"r{s.repetition}-{s.mode}-boot",
                s.mode,
                "boot",
                "",
                s.repetition,
                "boot_to_agent",
                2.5 + s.repetition / 10,
                "s",
                s.timestamp,
            )
        )
    _append_listed(run_path, extra)
    return extra


@pytest.fixture(scope="module")
def checked(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    run_path, samples = _make_run(tmp_path_factory.mktemp("checked"), checks=_check_document())
    _cost_samples(run_path, samples)
    files = build_report(run_path)
    assert files.pdf is not None
    pdf = _pdf_text(files.pdf) or ""
    return run_path, files.html.read_text(), " ".join(pdf.split())


def test_check_document_renders_readiness_per_mode(checked: tuple[Path, str, str]) -> None:
    _, html, _ = checked
    text = _text(html)
    assert "Readiness per mode" in text
    for title in ("FV (emulated)", "PV-on-HVM (virtio)", "VFIO pass-through", "SR-IOV VF"):
        assert title in text
    # summary line: counts, when, strictness
    assert "4 checks:" in text and "1 PASS" in text and "1 WARN" in text and "1 FAIL" in text
    assert "1 SKIP" in text and "2025-01-01 09:59:00 UTC" in text and "not strict" in text
    # VFIO is blocked by vfio.modules (linked to its row in the checks table), its devices named
    vfio = text[text.index("VFIO pass-through") :]
    assert "not ready" in vfio and "vfio.modules" in vfio
    assert 'href="#chk-vfio.modules"' in html and 'id="chk-vfio.modules"' in html
    assert "Offered devices" in text and "0000:01:00.1" in text
    assert "Excluded devices" in text and "in use by the host: backs / (vda)" in text


def test_check_document_renders_checks_and_inventory_without_raw_json(
    checked: tuple[Path, str, str],
) -> None:
    _, html, pdf = checked
    text = _text(html)
    assert "Hardware virtualization (vmx/svm)" in text and "Enable VT-x/AMD-V" in text
    assert "modprobe -a vfio vfio_pci vfio_iommu_type1" in text
    # no raw JSON of the document: neither the host's os_release nor data/inventory keys
    for raw in ('"os_release"', '"vendor_id":', '"PRETTY_NAME"', "&#34;vendor_id&#34;", "{&#34;"):
        assert raw not in html, raw
    assert "os_release" not in text and "sriov_totalvfs" not in text
    assert "<pre" not in html
    # the PCI inventory as a table
    assert "PCI devices" in text
    assert "1b36:0010" in text and "QEMU NVM Express Controller" in text
    assert "1 / 2 VFs" in text and "VF of 0000:01:00.0" in text
    assert "a note from the inventory" in text
    if pdf:
        assert "Readiness per mode" in pdf and "vfio.modules" in pdf


def test_big_inventory_is_capped(tmp_path: Path) -> None:
    run_path, _ = _make_run(tmp_path, checks=_check_document(extra_pci=60))
    text = _text(build_report(run_path, pdf=False).html.read_text())
    assert "0000:02:23.0" in text  # the 40th device (4 + 36)
    assert "0000:02:24.0" not in text.split("PCI devices", 1)[1].split("more PCI devices")[0]
    assert "24 more PCI devices in manifest.json" in text


def test_a_run_of_manifest_format_1_still_renders(tmp_path: Path) -> None:
    """A run directory written by vbench 0.1 (manifest and check document format 1)."""
    run_path = tmp_path / "run-v1"
    shutil.copytree(V1_RUN, run_path)
    assert json.loads((run_path / "manifest.json").read_text())["format_version"] == 1
    manifest = RunDir.open(run_path).read_manifest()
    assert manifest.format_version == 3 and manifest.checks is not None
    vfio = manifest.checks.verdict(ModeId.VFIO)
    assert vfio is not None and not vfio.ready
    assert vfio.remedies[0].checks == ("vfio.modules",)
    text = _text(build_report(run_path, pdf=False).html.read_text())
    assert "Readiness per mode" in text and "SR-IOV VF" in text
    assert "1 FAIL" in text and "randread" in text


def test_cost_metrics_show_with_units_and_in_key_results(checked: tuple[Path, str, str]) -> None:
    _, html, pdf = checked
    text = _text(html)
    assert "host cost" in text.lower()
    assert "QEMU CPU per request (µs)" in text
    assert "QEMU CPU (%)" in text and "host CPU busy (%)" in text
    assert "guest disk requests (requests)" in text
    assert "boot to guest agent (s)" in text
    overview = text[text.index("Key results") : text.index("Environment")]
    assert "QEMU CPU per request" in overview and "IOPS" in overview
    assert "boot to guest agent" in overview
    # lower is better: PV's smaller CPU per request is coloured as better
    row = html[html.index("QEMU CPU per request") :]
    row = row[: row.index("</tr>")]
    assert 'class="r better"' in row
    if pdf:
        assert "QEMU CPU per request" in pdf


def test_stress_ng_section_from_the_catalogue(tmp_path: Path) -> None:
    """A workload the report has never heard of by name: labels, group, overview and chart all come
    from its catalogue.  Real stress-ng YAML stands in for the repetitions of each mode."""
    from vbench.workloads.stress_ng import STRESS_NG

    run_path, _ = _make_run(tmp_path)
    yaml_dir = Path(__file__).parent / "data" / "stress-ng"
    files = {"fv": "cpu-matrixprod-2workers.yaml", "pv": "memcpy-libc-1worker.yaml"}
    params = "stressor=cpu,timeout_s=5,workers=vcpus"
    extra: list[Sample] = []
    for mode, name in files.items():
        for rep in range(3):
            labels = SampleLabels(
                RUN_ID, f"r{rep}-{mode}-sng", mode, "stress-ng", params, rep, 1.7e9
            )
            extra += STRESS_NG.parse((yaml_dir / name).read_bytes(), labels)
    _append_listed(run_path, extra)
    html = build_report(run_path, pdf=False).html.read_text()
    text = _text(html)
    # in the section's table, under the group heading `cpu`, rows carry the short label
    assert 'class="dir"><td colspan="3">cpu</td>' in html
    assert "bogo-ops/s (ops/s)" in text and "bogo-ops/CPU-s (ops/s)" in text
    assert "stress-ng — stressor=cpu, workers=vcpus" in text  # the section title
    overview = text[text.index("Key results") : text.index("Environment")]
    assert "stress-ng stressor=cpu, workers=vcpus" in overview
    assert "cpu bogo-ops/s" in overview
    # higher is better: pv's 3,903.7 bogo-ops/s against the fv baseline's 1,770.7 is better
    row = html[html.index("bogo-ops/s <span") :]
    row = row[: row.index("</tr>")]
    assert 'class="r better"' in row
    assert html.count("<svg") >= 2  # the fio chart and the stress-ng chart
    # how to read each workload's figures, from the workloads present
    assert "fio latencies are completion latencies (clat)" in text
    assert "stress-ng bogo-ops compare only runs of the same stressor" in text


def test_notes_only_of_the_workloads_present(built: tuple[Path, list[Sample], Any]) -> None:
    _, _, files = built
    text = _text(files.html.read_text())
    assert "fio latencies are completion latencies (clat)" in text
    assert "stress-ng bogo-ops" not in text  # no stress-ng in this run


def test_a_flagged_cross_check_in_the_manifest_reaches_flags_json(tmp_path: Path) -> None:
    """The runner's cross-check (CaseRecord.cross_checks) flags every figure of that case's
    (workload, parameters, mode) in flags.json; an explained or agreeing check flags nothing."""
    from vbench.report import FLAGS
    from vbench.results import CrossCheckRecord

    run_path, _ = _make_run(tmp_path)
    run = RunDir(run_path)
    manifest = run.read_manifest()
    bad = CrossCheckRecord(
        name="block_requests",
        workload=1000,
        sampled=1100,
        disagreement_pct=10.0,
        limit_pct=5.0,
        flagged=True,
    )
    fine = bad.model_copy(update={"name": "block_bytes", "flagged": False})
    for case in manifest.cases:
        case.cross_checks = [bad, fine] if case.mode == "pv" and case.repetition == 1 else [fine]
        case.flags = ["block_requests"] if case.cross_checks[0].flagged else []
    run.write_manifest(manifest)
    build_report(run_path, pdf=False)
    doc = json.loads((run_path / FLAGS).read_text())
    crossed = {
        (f["metric"], f["mode"])
        for f in doc["figures"]
        if any(fl["kind"] == "cross-check" for fl in f["flags"])
    }
    assert ("read.iops", "pv") in crossed and ("read.clat_p99", "pv") in crossed
    assert all(mode == "pv" for _, mode in crossed)
    message = next(
        fl["message"] for f in doc["figures"] for fl in f["flags"] if fl["kind"] == "cross-check"
    )
    assert "r1-pv-fio-randread-4k-qd16-j1: block_requests" in message and "10.0 %" in message
