"""The report's summary, curves and appendix on run directories written by the real writers:
fio's real JSON outputs as raw files, and a series.csv written by the real samplers (the host
sampler on this host's /proc, the libvirt sampler on libvirt's test driver) through SeriesWriter.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import libvirt
import pytest
from test_report import FILES, PARAMS, _append_listed, _make_run, _text

from vbench.model import Sample
from vbench.report import build_report
from vbench.report.analysis import best_mode, efficiency_metric, throughput_metric
from vbench.report.curves import latency_curves, series_panels
from vbench.report.plots import PALETTE, mode_styles
from vbench.results import RunDir, SkippedMode
from vbench.samplers import Sampling
from vbench.samplers.host import HostSampler
from vbench.samplers.libvirt_stats import LibvirtSampler
from vbench.series import SERIES, SeriesWriter, load_series
from vbench.workloads.fio import clat_percentiles

DATA = Path(__file__).parent / "data" / "fio"


def _cost(run_path: Path, per_io: dict[str, list[float]]) -> None:
    """QEMU CPU per request samples for the fio cases of `_make_run`."""
    samples = [
        Sample(
            "20250101T100000-quick",
            f"r{rep}-{mode}-fio-randread-4k-qd16-j1",
            mode,
            "fio",
            PARAMS,
            rep,
            "host.qemu_cpu_per_io",
            value,
            "us",
            1.7e9,
        )
        for mode, values in per_io.items()
        for rep, value in enumerate(values)
    ]
    _append_listed(run_path, samples)


@pytest.fixture(scope="module")
def series_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fio run of test_report with a series per case from real samplers."""
    run_path, _ = _make_run(tmp_path_factory.mktemp("series"))
    _cost(run_path, {"fv": [40.0, 42.0, 41.0], "pv": [20.0, 21.0, 19.5]})
    conn = libvirt.open("test:///default")
    try:
        dom = conn.lookupByName("test")
        manifest = RunDir.open(run_path).read_manifest()
        with SeriesWriter(run_path / SERIES, manifest.run_id) as writer:
            for case in manifest.cases:
                samplers = [HostSampler(), LibvirtSampler(conn, {"libvirt": dom})]
                with Sampling(samplers, writer.sink(case.case_id), interval_s=0.1):
                    deadline = time.monotonic() + 0.45
                    while time.monotonic() < deadline:  # some host CPU to see
                        sum(i * i for i in range(20000))
    finally:
        conn.close()
    return run_path


def test_fio_percentile_lists_are_read_from_its_json() -> None:
    curves = clat_percentiles((DATA / "randrw-4k-libaio-qd8.json").read_text())
    assert set(curves) == {"read", "write"}
    read = curves["read"]
    assert min(read) == 1.0 and max(read) == 99.99 and len(read) == 17  # fio's default list
    values = list(read.values())
    assert values == sorted(values) and values[0] > 0  # µs, non-decreasing


def test_latency_curves_are_the_median_over_repetitions(series_run: Path) -> None:
    manifest = RunDir.open(series_run).read_manifest()
    curves = latency_curves(series_run, manifest, ["fv", "pv"])
    assert curves.unreadable == []
    ((figure, panels),) = curves.panels.items()
    assert figure == ("fio", PARAMS)
    (panel,) = panels
    assert panel.title == "read completion latency"
    fv = next(line for line in panel.lines if line.mode == "fv")
    p99 = [clat_percentiles((DATA / name).read_text())["read"][99.0] for name in FILES["fv"]]
    i = fv.xs.index(99.0)
    assert fv.ys[i] == pytest.approx(sorted(p99)[1])  # the median of three
    assert fv.lows is not None and fv.highs is not None
    assert (fv.lows[i], fv.highs[i]) == pytest.approx((min(p99), max(p99)))


def test_time_series_from_a_real_samplers_series(series_run: Path) -> None:
    series = load_series(series_run)
    assert {"host", "libvirt"} <= set(series["source"])
    manifest = RunDir.open(series_run).read_manifest()
    panels = series_panels(series, manifest, ["fv", "pv"])
    (figure,) = panels
    by_title = {p.title: p for p in panels[figure]}
    busy = by_title["host CPU busy"]
    assert [line.mode for line in busy.lines] == ["fv", "pv"]
    for line in busy.lines:
        assert len(line.xs) >= 3  # ticks every 0.1 s over 0.45 s
        assert all(0.0 <= y <= 100.0 for y in line.ys)
        assert max(line.ys) > 0  # the loop above kept a CPU busy
        assert line.xs == sorted(line.xs)
    # the test driver's domain stats have no cpu.time: a figure without its counters is left out
    assert "QEMU CPU (host)" not in by_title


def test_report_shows_summary_curves_and_appendix(series_run: Path) -> None:
    import subprocess

    files = build_report(series_run)
    html = files.html.read_text()
    text = _text(html)
    # the summary: headline figures with CI, best modes, warnings; then the contents
    assert html.index('id="summary"') < html.index('id="contents"') < html.index('id="results"')
    assert "Key results: each mode as % of FV (emulated)" in text
    assert "Best guest mode per workload" in text
    # by throughput (read IOPS: pv is higher in these files) and by QEMU CPU per request (lower)
    row = re.search(r"<td><a href=\"#w0\">fio [^<]*</a></td>(.*?)</tr>", html, re.S)
    assert row is not None
    assert "PV-on-HVM (virtio)" in row.group(1) and "QEMU CPU per request" in row.group(1)
    assert "Software emulation (TCG)." in text
    # per workload: bars, latency curves, time series, efficiency
    assert 'aria-label="fio rw=randread, bs=4k, iodepth=16, numjobs=1: median per mode' in html
    assert "latency percentiles" in html and "time series" in html
    assert "Efficiency, QEMU CPU per request:" in text
    # skipped/failed (none) and the raw appendix with relative links that resolve
    assert "None: every mode ran and every case finished" in text
    links = re.findall(r'<a href="([^"#][^"]*)"', html)
    assert "manifest.json" in links and "series.csv" in links
    raw = [link for link in links if link.startswith("raw/")]
    assert len(raw) == 6  # a fio.json per case
    assert all((series_run / link).is_file() for link in links)
    # PDF: vector charts (no raster image), page numbers, the contents with page numbers
    pdf = files.pdf
    assert pdf is not None
    images = subprocess.run(
        ["pdfimages", "-list", str(pdf)], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert len(images) == 2  # the header lines only
    pdf_text = subprocess.run(
        ["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True, check=True
    ).stdout
    pages = int(re.findall(r"page 1 of (\d+)", pdf_text)[0])
    assert pages >= 3
    toc = re.search(r"Results\s*\.{3,}\s*(\d+)", pdf_text)
    assert toc is not None and 1 < int(toc.group(1)) <= pages
    for heading in ("Summary", "Contents", "Environment", "Skipped and failed cases", "Raw data"):
        assert heading in pdf_text
    assert "read completion latency" in pdf_text and "host CPU busy" in pdf_text


def test_skipped_mode_and_failed_case_are_in_warnings_and_their_section(tmp_path: Path) -> None:
    run_path, _ = _make_run(
        tmp_path,
        skipped_modes=[
            SkippedMode(mode="sriov", mode_id="sriov", reason="no SR-IOV capable device")
        ],
    )
    run = RunDir(run_path)
    manifest = run.read_manifest()
    failed = manifest.cases[-1].model_copy(
        update={"case_id": "r2-pv-fio-randwrite", "status": "failed", "error": "fio timed out"}
    )
    manifest.cases.append(failed)
    run.write_raw("r2-pv-fio-randwrite", "console.log", "boot\nlast words of the guest\n")
    run.write_manifest(manifest)
    text = _text(build_report(run_path, pdf=False).html.read_text())
    assert "Mode sriov skipped. no SR-IOV capable device" in text
    assert "1 failed case(s), 0 failed guest(s)" in text
    section = text[text.index("Skipped and failed cases Skipped mode") :]
    assert "sriov no SR-IOV capable device" in section
    assert "r2-pv-fio-randwrite PV-on-HVM (virtio) failed fio timed out" in section
    assert "last words of the guest" in section


def test_best_mode_says_when_the_cis_do_not_separate(tmp_path: Path) -> None:
    import pandas as pd

    rows = pd.DataFrame(
        [
            {
                "workload": "fio",
                "parameters": "p",
                "metric": "read.iops",
                "mode": m,
                "median": v,
                "median_ci_low": lo,
                "median_ci_high": hi,
            }
            for m, v, lo, hi in (
                ("fv", 100.0, 90.0, 110.0),
                ("pv", 120.0, 105.0, 130.0),
                ("baremetal", 500.0, 490.0, 510.0),
            )
        ]
    )
    best = best_mode(rows, "read.iops")
    assert best is not None and best.mode == "pv" and best.runner_up == "fv"
    assert not best.separated  # 105 < 110: the intervals overlap
    rows.loc[rows["mode"] == "pv", "median_ci_low"] = 111.0
    best = best_mode(rows, "read.iops")
    assert best is not None and best.separated
    assert throughput_metric(["read.clat_p99", "read.iops", "host.qemu_cpu_per_io"]) == "read.iops"
    assert efficiency_metric(["read.iops", "host.qemu_cpu_per_io"]) == "host.qemu_cpu_per_io"


def test_palette_is_okabe_ito_and_modes_differ_beyond_colour() -> None:
    styles = mode_styles(["fv", "pv", "vfio", "baremetal"])
    assert styles["fv"].color == PALETTE[0] == "#0072B2"
    assert len({(s.marker, s.dash) for s in styles.values()}) == 4
