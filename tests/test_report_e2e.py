"""End to end: the report of a real run (real libvirtd, QEMU guests under TCG here, real fio and
stress-ng, bare metal as the baseline, an SR-IOV mode the host cannot do): every section in the
HTML's tables and the PDF's text, and the HTML opened in headless Chromium.

One run serves the module (its scenario has a name of its own: other runs may go on meanwhile).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import e2e_env, guests_named, vbench_run
from support import vbench_cli as _vbench
from test_report import _text
from test_run_e2e import tiny

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).parents[1]
NAME = f"report-e2e-{uuid.uuid4().hex[:6]}"
SRIOV = {"id": "sriov", "pf": "0000:00:1f.0"}  # no such PF here: skipped


@pytest.fixture(scope="module")
def report_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    tmp = tmp_path_factory.mktemp("report-e2e")
    text = tiny(NAME, reps=2, baremetal=True, modes=["fv", "pv", SRIOV])
    scenario = tmp / "scenario.toml"
    scenario.write_text(text)
    env = e2e_env(tmp)
    _, run = vbench_run(scenario, tmp / "reports", env, report=True)
    assert not guests_named(f"vbench-{run.name}-")
    proc = _vbench("report", str(run), env=env)  # this code's report, whatever the run wrote
    assert proc.returncode == 0, proc.stderr[-3000:]
    yield run


def _rows(html: str, table_class: str) -> list[str]:
    """The visible text of each body row of the first table of that class."""
    found = re.search(rf'<table class="{table_class}">(.*?)</table>', html, re.S)
    assert found is not None, f"no table.{table_class}"
    body = found.group(1).split("<tbody>", 1)[-1]
    return [_text(r) for r in re.findall(r"<tr.*?</tr>", body, re.S)]


def test_html_sections_from_a_real_run(report_run: Path) -> None:
    html = (report_run / "report.html").read_text()
    text = _text(html)
    order = ["summary", "contents", "environment", "checks", "results", "failures", "raw"]
    at = [html.index(f'id="{a}"') for a in order]
    assert at == sorted(at)
    # summary: warnings (TCG here; the skipped SR-IOV mode with its reason), headline, best
    if "TCG" in text:
        assert "Software emulation (TCG)." in text
    assert re.search(r"Mode sriov skipped\. the host is not ready|Mode sriov skipped\. ", text)
    headline = _rows(html, "overview")
    assert "Key results: each mode as % of bare metal" in text
    iops = next(r for r in headline if "read IOPS" in r)
    # FV and PV against bare metal: a % and its [low, high] CI each
    assert len(re.findall(r"\d+\.\d% \[\d+\.\d%, \d+\.\d%\]", iops)) == 2, iops
    best = _rows(html, "best")
    assert any(r.startswith("fio rw=randread") and "QEMU CPU per request" in r for r in best)
    assert any(r.startswith("stress-ng") for r in best)
    # per workload: the table, bars, latency curves; a run without samplers has no series
    results = _rows(html, "results")
    assert any(r.startswith("IOPS (IO/s)") for r in results)
    assert "median per mode with its 95% CI" in html
    assert "latency percentiles" in html
    assert ("time series" in html) == (report_run / "series.csv").is_file()
    # skipped and failed, raw data with relative links that resolve
    section = text[text.index("Skipped and failed cases Skipped mode") :]
    assert section.startswith("Skipped and failed cases Skipped mode Reason sriov")
    links = re.findall(r'<a href="([^"#][^"]*)"', html)
    assert any(link.endswith("/fio.json") for link in links)
    assert all(not link.startswith("/") and (report_run / link).is_file() for link in links)


def test_pdf_text_has_every_section_and_page_numbers(report_run: Path) -> None:
    out = subprocess.run(
        ["pdftotext", "-layout", str(report_run / "report.pdf"), "-"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    pages = int(re.findall(r"page 1 of (\d+)", out)[0])
    for heading in (
        "Summary",
        "Key results: each mode as % of bare metal",
        "Best guest mode per workload",
        "Environment",
        "Host checks",
        "Results",
        "read completion latency",
        "Skipped and failed cases",
        "Raw data",
    ):
        assert heading in out, heading
    for entry in ("Summary", "Environment", "Results", "Raw data"):
        toc = re.search(rf"{entry}\s*\.{{3,}}\s*(\d+)", out)
        assert toc is not None and 1 <= int(toc.group(1)) <= pages, entry
    images = subprocess.run(
        ["pdfimages", "-list", str(report_run / "report.pdf")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    assert len(images) == 2  # header lines only: every chart is vector


def test_headless_chromium_renders_the_summary(report_run: Path, tmp_path: Path) -> None:
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip("chromium is not installed (scripts/setup-host.sh --test installs it)")
    html = report_run / "report.html"
    shot = tmp_path / "report.png"
    common = [
        chromium,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
    ]
    dom = subprocess.run(
        [*common, "--dump-dom", f"file://{html}"],
        capture_output=True,
        text=True,
        timeout=180,
        check=True,
    ).stdout
    assert '<h2 id="summary">Summary</h2>' in dom
    assert "<script" not in dom  # readable without JavaScript: there is none
    subprocess.run(
        [*common, f"--screenshot={shot}", "--window-size=1200,2000", f"file://{html}"],
        capture_output=True,
        timeout=180,
        check=True,
    )
    from matplotlib.image import imread

    pixels = imread(str(shot))
    assert pixels.shape[:2] == (2000, 1200)
    top = pixels[:1000, :, :3]
    # not blank: text and tables on white (a blank page has one colour)
    assert top.std() > 0.05
    dark = (top.mean(axis=2) < 0.5).mean()
    assert 0.005 < dark < 0.5
