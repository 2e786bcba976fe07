"""Certification: [[certify]] thresholds judged on confidence bounds, in the report and as exit
codes.  The judging is pure (vbench.certify); the run-level tests use run directories made of
real fio output (tests/test_report.py) and the real `vbench report` command line."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from test_report import SCENARIO, _check_document, _make_run, _manifest

from vbench.certify import (
    CertifySpec,
    Status,
    convert,
    evaluate_metric,
    evaluate_ready,
    overall,
    parse_quantity,
    specs_from_scenario_text,
)
from vbench.errors import RecordError, ScenarioError
from vbench.results import RunDir
from vbench.scenario import load_scenario
from vbench.stats import summarize

ROOT = Path(__file__).parents[1]


def spec(**kw: object) -> CertifySpec:
    return CertifySpec.model_validate({"mode": "pv", "metric": "read.iops", **kw})


# -- the judging (pure) ----------------------------------------------------------------------


def test_absolute_bound_on_the_ci_pass_fail_inconclusive() -> None:
    values = [90.0, 100.0, 110.0]
    s = summarize(values)
    assert s.ci_low is not None and s.ci_high is not None
    assert evaluate_metric(spec(min=s.ci_low - 1), values, "IO/s").status is Status.PASS
    assert evaluate_metric(spec(min=s.ci_high + 1), values, "IO/s").status is Status.FAIL
    assert evaluate_metric(spec(max=s.ci_high + 1), values, "IO/s").status is Status.PASS
    assert evaluate_metric(spec(max=s.ci_low - 1), values, "IO/s").status is Status.FAIL
    # the median (100) is above 95, but the CI reaches below it: not a pass
    v = evaluate_metric(spec(min=95), values, "IO/s")
    assert v.status is Status.INCONCLUSIVE and v.more_repetitions is not None
    assert "straddles" in v.detail and f"n = 3 -> {3 + v.more_repetitions}" in v.detail


def _same_spread(n: int, mean: float = 100.0, sd: float = 10.0) -> list[float]:
    """n values with exactly this mean and sample standard deviation."""
    z = [i - (n - 1) / 2 for i in range(n)]
    scale = sd / statistics.stdev(z)
    return [mean + x * scale for x in z]


def test_more_repetitions_estimate_would_settle_it() -> None:
    """Same mean and spread, as many repetitions as estimated: the CI clears the threshold."""
    values = _same_spread(3)
    v = evaluate_metric(spec(min=90), values, "IO/s")
    assert v.status is Status.INCONCLUSIVE and v.more_repetitions is not None
    settled = _same_spread(3 + v.more_repetitions)
    assert evaluate_metric(spec(min=90), settled, "IO/s").status is Status.PASS
    # With many repetitions (t quantile nearly flat) the 1/sqrt(n) estimate is also tight:
    # 30 repetitions, half-width 3.7 around 100, threshold 97.
    v = evaluate_metric(spec(min=97), _same_spread(30), "IO/s")
    assert v.status is Status.INCONCLUSIVE and v.more_repetitions is not None
    needed = 30 + v.more_repetitions
    assert evaluate_metric(spec(min=97), _same_spread(needed), "IO/s").status is Status.PASS
    short = _same_spread(needed - max(v.more_repetitions // 3, 1))
    assert evaluate_metric(spec(min=97), short, "IO/s").status is Status.INCONCLUSIVE


def test_units_convert_and_refuse_what_does_not_compare() -> None:
    assert parse_quantity("2 ms") == (2.0, "ms") and parse_quantity(5) == (5.0, None)
    assert convert(2.0, "ms", "us") == pytest.approx(2000.0)
    assert convert(1.0, "GiB/s", "MiB/s") == pytest.approx(1024.0)
    latency_us = [1500.0, 1600.0, 1550.0]
    assert evaluate_metric(spec(metric="read.clat_p99", max="2 ms"), latency_us, "us").status is (
        Status.PASS
    )
    assert evaluate_metric(spec(metric="read.clat_p99", max="1 ms"), latency_us, "us").status is (
        Status.FAIL
    )
    wrong = evaluate_metric(spec(metric="read.clat_p99", max="2 MiB/s"), latency_us, "us")
    assert wrong.status is Status.ERROR and "does not compare" in wrong.detail
    with pytest.raises(ValueError, match="unknown unit 'mss'"):
        spec(max="2 mss")


def test_relative_bound_uses_the_ratio_ci() -> None:
    base = [1000.0, 1010.0, 990.0]
    pv = [850.0, 860.0, 840.0]  # 85 % of the baseline, tight
    assert evaluate_metric(spec(min_pct_of="baremetal", pct=80), pv, "IO/s", base).status is (
        Status.PASS
    )
    assert evaluate_metric(spec(min_pct_of="baremetal", pct=90), pv, "IO/s", base).status is (
        Status.FAIL
    )
    wide = [700.0, 1000.0, 850.0]  # 85 % on average, but wide
    v = evaluate_metric(spec(min_pct_of="baremetal", pct=80), wide, "IO/s", base)
    assert v.status is Status.INCONCLUSIVE and v.more_repetitions
    assert "% of baremetal" in v.observed and "CI [" in v.observed
    # latency: <= 120 % of the reference
    lat = evaluate_metric(spec(max_pct_of="baremetal", pct=120), pv, "us", base)
    assert lat.status is Status.PASS


def test_one_repetition_has_no_ci_and_is_inconclusive() -> None:
    v = evaluate_metric(spec(min=1), [100.0], "IO/s")
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
        return evaluate_metric(spec(min=1), [5.0, 5.1], "IO/s").model_copy(
            update={"status": status}
        )

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
    assert s.ci_low is not None and s.ci_high is not None
    bound = {
        "pass": f"min = {s.ci_low * 0.9:.1f}",  # the whole CI above
        "fail": f"min = {s.ci_high * 1.1:.1f}",  # the whole CI below
        "inconclusive": f"min = {s.mean:.1f}",  # the CI straddles its own mean
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
    assert _report(str(run_path), "--check").returncode == 1


def test_check_without_thresholds_is_an_error(tmp_path: Path) -> None:
    run_path, _ = _make_run(tmp_path)
    proc = _report(str(run_path), "--check")
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1].startswith("vbench: error: ")
    assert "no [[certify]] thresholds" in proc.stderr
