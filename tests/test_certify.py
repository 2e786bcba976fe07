"""Certification: [[certify]] thresholds judged on confidence bounds, in the report and as exit
codes.  The judging is pure (vbench.certify); the run-level tests use run directories made of
real fio output (tests/test_report.py) and the real `vbench report` command line."""

from __future__ import annotations

import html
import math
import os
import statistics
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from statistics import NormalDist

import pytest
from test_report import SCENARIO, _check_document, _make_run, _manifest

from vbench.certify import (
    CertifySpec,
    Status,
    Verdict,
    convert,
    evaluate_metric,
    evaluate_ready,
    overall,
    parse_quantity,
    specs_from_scenario_text,
)
from vbench.errors import RecordError, ScenarioError
from vbench.report.analysis import summarize_samples
from vbench.report.certification import TABLE_STYLE, certify_run
from vbench.report.render import summary_cell
from vbench.results import RunDir
from vbench.scenario import load_scenario
from vbench.stats import relative_change, summarize
from vbench.workloads import WORKLOADS

ROOT = Path(__file__).parents[1]


def spec(**kw: object) -> CertifySpec:
    return CertifySpec.model_validate({"mode": "pv", "metric": "read.iops", **kw})


def judge(
    bound: CertifySpec,
    values: list[float],
    unit: str = "IO/s",
    reference: list[float] | None = None,
) -> Verdict:
    """The verdict as the report has it (the tables' figure formats)."""
    return evaluate_metric(bound, values, unit, reference, style=TABLE_STYLE)


# -- the judging (pure) ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "bound", "status"),
    [
        # Known answers where the median's CI and the mean's differ (the t interval of the mean
        # judged otherwise).  Up to 7 repetitions the percentile bootstrap CI of the median is
        # the data's range: [100, 102] here; the mean's t interval is [98.5, 103.5].
        ([100.0, 101.0, 102.0], {"min": 99}, Status.PASS),  # mean: inconclusive
        ([100.0, 101.0, 102.0], {"min": 102.5}, Status.FAIL),  # mean: inconclusive
        ([100.0, 101.0, 102.0], {"max": 99.5}, Status.FAIL),  # mean: inconclusive
        # An outlier: the median's CI [100, 200], the mean's [66.5, 175.9]
        ([100.0, 101.0, 102.0, 103.0, 200.0], {"min": 90}, Status.PASS),  # mean: inconclusive
        ([100.0, 101.0, 102.0, 103.0, 200.0], {"max": 180}, Status.INCONCLUSIVE),  # mean: pass
        ([100.0, 101.0, 102.0, 103.0, 200.0], {"min": 101}, Status.INCONCLUSIVE),
    ],
)
def test_absolute_bound_is_judged_on_the_median_ci(
    values: list[float], bound: dict[str, float], status: Status
) -> None:
    v = judge(spec(**bound), values)
    assert v.status is status, v
    assert v.figure is not None and v.figure.statistic == "median"
    assert v.figure.value == statistics.median(values)
    assert (v.figure.low, v.figure.high) == (min(values), max(values))
    median, high = statistics.median(values), max(values)
    assert (
        v.observed
        == f"median {median:.1f} IO/s, 95% CI 100.0 \u2013 {high:.1f} IO/s, n = {len(values)}"
    )
    if status is Status.INCONCLUSIVE:
        assert v.more_repetitions is not None
        assert "straddles" in v.detail and f"n = {len(values)} -> " in v.detail


def _ideal_normal(n: int, median: float = 100.0, sd: float = 10.0) -> list[float]:
    """n values at the normal distribution's quantiles (i + 0.5) / n: an idealised sample."""
    return [median + sd * NormalDist().inv_cdf((i + 0.5) / n) for i in range(n)]


@pytest.mark.parametrize(("n", "threshold"), [(3, 95.0), (10, 97.0), (30, 97.0)])
def test_more_repetitions_estimate_would_settle_it(n: int, threshold: float) -> None:
    """Samples of the same (normal) shape: at the estimated count the median's CI is close to
    clearing the threshold; a quarter more clears it, half as many do not.  (The mean's t
    interval, scaled from n = 3, asked for more than twice as many.)"""
    bound = spec(min=threshold)
    v = judge(bound, _ideal_normal(n))
    assert v.status is Status.INCONCLUSIVE and v.more_repetitions is not None
    estimate = n + v.more_repetitions
    settled = judge(bound, _ideal_normal(math.ceil(estimate * 1.25)))
    assert settled.status is Status.PASS
    short = judge(bound, _ideal_normal(estimate // 2))
    assert short.status is Status.INCONCLUSIVE


def test_the_estimate_starts_from_the_wider_of_the_ci_and_the_normal_theory_width() -> None:
    """At n = 3 the median's bootstrap CI is the data's range (narrow): the estimate uses the
    normal-theory half-width z sqrt(pi/2) s / sqrt(n) instead; at n = 30 the CI's own reach."""
    three = _ideal_normal(3)
    v = judge(spec(min=95), three)
    half = 1.959964 * math.sqrt(math.pi / 2) * statistics.stdev(three) / math.sqrt(3)
    assert v.figure is not None and v.figure.low is not None
    assert 100 - v.figure.low < half  # the range is narrower than the normal-theory width
    assert v.more_repetitions == math.ceil(3 * (half / 5) ** 2) - 3
    # two clusters: the median's CI spans the gap between them, far wider than s suggests
    split = [90.0] * 15 + [110.0] * 15
    w = judge(spec(min=95), split)
    assert w.status is Status.INCONCLUSIVE and w.figure is not None and w.figure.low is not None
    narrow = 1.959964 * math.sqrt(math.pi / 2) * statistics.stdev(split) / math.sqrt(30)
    reach = w.figure.value - w.figure.low
    assert reach > narrow
    assert w.more_repetitions == math.ceil(30 * (reach / (w.figure.value - 95)) ** 2) - 30


def test_units_convert_and_refuse_what_does_not_compare() -> None:
    assert parse_quantity("2 ms") == (2.0, "ms") and parse_quantity(5) == (5.0, None)
    assert convert(2.0, "ms", "us") == pytest.approx(2000.0)
    assert convert(1.0, "GiB/s", "MiB/s") == pytest.approx(1024.0)
    latency_us = [1500.0, 1600.0, 1550.0]
    assert judge(spec(metric="read.clat_p99", max="2 ms"), latency_us, "us").status is (Status.PASS)
    assert judge(spec(metric="read.clat_p99", max="1 ms"), latency_us, "us").status is (Status.FAIL)
    wrong = judge(spec(metric="read.clat_p99", max="2 MiB/s"), latency_us, "us")
    assert wrong.status is Status.ERROR and "does not compare" in wrong.detail
    with pytest.raises(ValueError, match="unknown unit 'mss'"):
        spec(max="2 mss")


def test_relative_bound_is_judged_on_the_ratio_of_medians_and_its_ci() -> None:
    """The report's "% of reference" figures (`relative_change`): up to 7 repetitions each, the
    bootstrap CI of a ratio of medians runs from the lowest to the highest ratio the data allow."""
    base = [990.0, 1000.0, 1010.0]
    pv = [850.0, 860.0, 2000.0]  # an outlier: the ratio of means would be 123 %
    rel = relative_change(pv, base)
    assert rel is not None and rel.ratio == pytest.approx(0.86)
    assert (rel.ratio_low, rel.ratio_high) == (pytest.approx(850 / 1010), pytest.approx(2000 / 990))
    v = judge(spec(min_pct_of="baremetal", pct=80), pv, reference=base)
    assert v.status is Status.PASS  # the whole CI [84.2 %, 202 %] is >= 80 %
    assert v.observed == "median 86.0% of baremetal's, 95% CI [84.2%, 202.0%], n = 3 / 3"
    assert v.figure is not None and v.figure.statistic == "ratio of medians"
    assert judge(spec(min_pct_of="baremetal", pct=90), pv, reference=base).status is (
        Status.INCONCLUSIVE
    )
    tight = [850.0, 860.0, 840.0]
    assert judge(spec(min_pct_of="baremetal", pct=90), tight, reference=base).status is (
        Status.FAIL
    )
    # latency: <= 120 % of the reference
    lat = judge(spec(max_pct_of="baremetal", pct=120), tight, "us", base)
    assert lat.status is Status.PASS
    wide = [700.0, 1000.0, 850.0]
    w = judge(spec(min_pct_of="baremetal", pct=80), wide, reference=base)
    assert w.status is Status.INCONCLUSIVE and w.more_repetitions
    assert "n = 3 -> " in w.detail
    # no CI with one repetition of the reference
    one = judge(spec(min_pct_of="baremetal", pct=80), wide, reference=[1000.0])
    assert one.status is Status.INCONCLUSIVE and "2 repetitions of both modes" in one.detail
    assert one.observed == "median 85.0% of baremetal's, no CI (n = 3 / 1)"


def test_one_repetition_has_no_ci_and_is_inconclusive() -> None:
    v = judge(spec(min=1), [100.0])
    assert v.status is Status.INCONCLUSIVE and "at least 2 repetitions" in v.detail


def test_ready_uses_the_stored_host_check_verdict() -> None:
    doc = _check_document()  # vfio.modules FAILs: VFIO and SR-IOV not ready; FV, PV ready
    ready = CertifySpec(mode="fv", ready=True)
    assert evaluate_ready(ready, "fv", doc).status is Status.PASS
    vfio = evaluate_ready(CertifySpec(mode="vfio", ready=True), "vfio", doc)
    assert vfio.status is Status.FAIL and "vfio.modules:" in vfio.detail
    assert evaluate_ready(ready, "fv", None).status is Status.ERROR


def test_overall() -> None:
    def v(status: Status) -> object:
        return judge(spec(min=1), [5.0, 5.1]).model_copy(update={"status": status})

    assert overall([v(Status.PASS), v(Status.PASS)]) is Status.PASS  # type: ignore[list-item]
    assert overall([v(Status.PASS), v(Status.INCONCLUSIVE)]) is Status.INCONCLUSIVE  # type: ignore[list-item]
    assert overall([v(Status.INCONCLUSIVE), v(Status.FAIL)]) is Status.FAIL  # type: ignore[list-item]
    assert overall([v(Status.FAIL), v(Status.ERROR)]) is Status.ERROR  # type: ignore[list-item]


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"mode": "pv"}, "give exactly one of"),
        ({"mode": "pv", "ready": True, "min": 1, "metric": "x"}, "give exactly one of"),
        ({"mode": "pv", "metric": "read.iops", "min_pct_of": "fv"}, "need pct"),
        ({"mode": "pv", "min": 5}, "needs metric"),
        ({"mode": "pv", "metric": "read.iops", "min": 1, "max": 2}, "give one bound"),
        ({"mode": "pv", "ready": True, "bogus": 1}, "bogus: Extra inputs"),
    ],
)
def test_bad_certify_entries_name_the_entry(entry: dict[str, object], message: str) -> None:
    text = SCENARIO + "[[certify]]\n" + "".join(f"{k} = {_toml(v)}\n" for k, v in entry.items())
    with pytest.raises(RecordError) as err:
        specs_from_scenario_text(text, "s.toml")
    assert str(err.value).startswith("s.toml: certify[0]") and message in str(err.value)


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    return f'"{value}"' if isinstance(value, str) else str(value)


def test_scenario_accepts_and_checks_certify(tmp_path: Path) -> None:
    good = ROOT / "scenarios" / "certify-example.toml"
    loaded = load_scenario(good)
    assert len(loaded.scenario.certify) >= 3
    bad = tmp_path / "bad.toml"
    bad.write_text(good.read_text().replace('max = "2 ms"', 'max = "2 parsecs"'))
    with pytest.raises(ScenarioError, match=r"bad.toml: certify\[\d\]: .*unknown unit 'parsecs'"):
        load_scenario(bad)


# -- a run's certification: the report, --check and --junit ------------------------------------


def _certified_run(tmp_path: Path, certify: str) -> Path:
    run_path, _ = _make_run(tmp_path)
    run = RunDir(run_path)
    manifest = _manifest(checks=_check_document())
    old = run.read_manifest()
    manifest.trials, manifest.cases = old.trials, old.cases
    manifest.scenario.text = SCENARIO + certify
    run.write_manifest(manifest)
    return run_path


def _report(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vbench", "report", "--no-pdf", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        check=False,
    )


def _iops(run_path: Path, mode: str) -> list[float]:
    frame = RunDir.open(run_path).load().samples
    rows = frame[(frame["metric"] == "read.iops") & (frame["mode"] == mode)]
    return [float(v) for v in rows.sort_values("repetition")["value"]]


def _certify(bound: str) -> str:
    return (
        '[[certify]]\nmode = "pv"\nmetric = "read.iops"\ncase = { rw = "randread", bs = "4k" }\n'
        f"{bound}\n"
        '[[certify]]\nmode = "fv"\nready = true\n'
    )


@pytest.mark.parametrize("outcome", ["pass", "fail", "inconclusive"])
def test_certification_scenarios_through_the_cli(tmp_path: Path, outcome: str) -> None:
    probe = _make_run(tmp_path / "probe")[0]
    s = summarize(_iops(probe, "pv"))
    low, high = s.median_ci_low, s.median_ci_high
    assert low is not None and high is not None and low < high
    bound = {
        "pass": f"min = {low * 0.9:.1f}",  # the median's whole CI above
        "fail": f"min = {high * 1.1:.1f}",  # the median's whole CI below
        "inconclusive": f"min = {(low + high) / 2:.1f}",  # the CI straddles its midpoint
    }[outcome]
    run_path = _certified_run(tmp_path / "run", _certify(bound))
    junit = tmp_path / "certify.xml"
    proc = _report(str(run_path), "--check", "--junit", str(junit))
    assert proc.returncode == {"pass": 0, "fail": 2, "inconclusive": 2}[outcome], proc.stderr
    assert "Traceback" not in proc.stderr
    assert f"certification: {outcome.upper()}" in proc.stderr
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite is not None and suite.get("tests") == "2"
    cases = {c.get("name"): c for c in suite.findall("testcase")}
    (iops,) = [c for n, c in cases.items() if n and n.startswith("pv randread 4k read.iops >= ")]
    if outcome == "pass":
        assert iops.find("failure") is None and iops.find("system-out") is not None
    else:
        failure = iops.find("failure")
        assert failure is not None and failure.get("type") == (
            "fail" if outcome == "fail" else outcome
        )
    assert cases["fv ready"].find("failure") is None
    # the verdict is the first thing in the report, before the run's banners and summary
    html = (run_path / "report.html").read_text()
    body = html[html.index("<body>") :]
    assert body.index("Verdict:") < body.index('<h2 id="summary">Summary</h2>')
    assert '<span class="badge' in body[body.index("Verdict:") :][:120]
    assert outcome in body[body.index("Verdict:") :][:120]


def test_a_threshold_the_run_cannot_answer_is_exit_1(tmp_path: Path) -> None:
    run_path = _certified_run(
        tmp_path, '[[certify]]\nmode = "sriov"\nmetric = "read.iops"\nmin = 1\n'
    )
    proc = _report(str(run_path), "--check")
    assert proc.returncode == 1, proc.stderr
    assert "ERROR" in proc.stderr and "mode 'sriov' has no samples" in proc.stderr
    run_path = _certified_run(
        tmp_path / "ambiguous",
        _certify("min = 1")
        .replace('case = { rw = "randread", bs = "4k" }\n', "")
        .replace('metric = "read.iops"', 'metric = "read.nothing"'),
    )
    proc = _report(str(run_path), "--check")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "ERROR" in proc.stderr and "no case has metric read.nothing" in proc.stderr
    # the same with a case filter (nothing left to filter)
    run_path = _certified_run(
        tmp_path / "filtered", _certify("min = 1").replace("read.iops", "rx.throughput")
    )
    proc = _report(str(run_path), "--check")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "no case has metric rx.throughput" in proc.stderr


def test_check_without_thresholds_is_an_error(tmp_path: Path) -> None:
    run_path, _ = _make_run(tmp_path)
    proc = _report(str(run_path), "--check")
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1].startswith("vbench: error: ")
    assert "no [[certify]] thresholds" in proc.stderr


def test_the_verdict_quotes_the_tables_figures(tmp_path: Path) -> None:
    """The verdict section, the JUnit file and the command line show the same median, CI and
    % of the reference as the run's tables (a run of real fio output, rendered by the CLI)."""
    certify = (
        '[[certify]]\nmode = "pv"\nmetric = "read.iops"\nmin = 1\n'
        '[[certify]]\nmode = "pv"\nmetric = "read.iops"\nmin_pct_of = "fv"\npct = 1\n'
    )
    run_path = _certified_run(tmp_path, certify)
    junit = tmp_path / "certify.xml"
    proc = _report(str(run_path), "--check", "--junit", str(junit))
    assert proc.returncode == 0, proc.stderr
    # the table's cells, from the report's own summary (fv is the reference: no bare metal ran)
    loaded = RunDir.open(run_path).load()
    summary = summarize_samples(loaded.samples, ["fv", "pv"])
    (row,) = summary[(summary["metric"] == "read.iops") & (summary["mode"] == "pv")].to_dict(
        "records"
    )
    assert row["reference"] == "fv"
    cell = summary_cell(row, "read.iops", is_reference=False)
    assert cell.ci.startswith("CI ") and cell.rel_ci.startswith("[")
    median_ci = cell.ci.removeprefix("CI = range ").removeprefix("CI ")
    absolute = f"median {cell.median} IO/s, 95% CI {median_ci} IO/s, n = 3"
    relative = f"median {cell.rel} of fv's, 95% CI {cell.rel_ci}, n = 3 / 3"
    page = html.unescape((run_path / "report.html").read_text())  # as a browser shows it
    verdict = page[page.index("Verdict:") : page.index("</section>", page.index("Verdict:"))]
    tables = page[page.index("</section>", page.index("Verdict:")) :]
    assert cell.median in tables and cell.ci in tables and cell.rel_ci in tables
    assert absolute in verdict and relative in verdict
    body = "".join(e.text or "" for e in ET.parse(junit).getroot().iter("system-out"))
    assert absolute in body and relative in body
    assert absolute in proc.stderr and relative in proc.stderr


# -- the shipped scenarios' thresholds -----------------------------------------------------------


@pytest.mark.parametrize("name", ["quick", "full", "certify-example"])
def test_shipped_thresholds_each_pick_one_planned_case(name: str) -> None:
    """Every metric threshold of a shipped scenario names a metric its workloads report and
    picks exactly one of the cases the scenario plans (a density level is a case of its own)."""
    scenario = load_scenario(ROOT / "scenarios" / f"{name}.toml").scenario
    planned = {(c.kind, c.key) for t in scenario.trials() for c in t.workloads}
    cases = {c.key: c for t in scenario.trials() for c in t.workloads}
    for entry in scenario.certify:
        if entry.ready:
            continue
        picked = {
            key
            for kind, key in planned
            if WORKLOADS[kind].metric(str(entry.metric)) is not None
            and (entry.workload in (None, kind))
            and all(str(cases[key].labels.get(k)) == str(v) for k, v in entry.case.items())
        }
        assert len(picked) == 1, f"{entry.describe()}: {sorted(picked) or 'no case'}"


def test_quick_thresholds_judged_on_the_committed_example_run() -> None:
    """quick.toml's thresholds on the real quick run under reports/example (its scenario text
    predates them): every one is answered, on the figures its report's tables show."""
    run = RunDir.open(ROOT / "reports" / "example").load()
    manifest = run.manifest.model_copy(deep=True)
    manifest.scenario.text = (ROOT / "scenarios" / "quick.toml").read_text()
    cert = certify_run(manifest, run.samples)
    assert cert is not None and len(cert.verdicts) == 3
    assert all(v.status is not Status.ERROR for v in cert.verdicts), cert.verdicts
    summary = summarize_samples(run.samples, ["fv", "pv"])
    for v in cert.verdicts[:2]:
        assert v.figure is not None and v.figure.statistic == "ratio of medians"
        assert v.figure.reference == "fv" and v.figure.n == v.figure.n_reference == 3
        metric = "read.iops" if "read.iops" in v.name else "tx.throughput"
        rows = summary[(summary["metric"] == metric) & (summary["mode"] == "pv")]
        if metric == "read.iops":
            rows = rows[rows["parameters"].str.contains("rw=randread")]
        (row,) = rows.to_dict("records")
        assert (v.figure.value, v.figure.low, v.figure.high) == (
            row["ratio"],
            row["ratio_low"],
            row["ratio_high"],
        )
