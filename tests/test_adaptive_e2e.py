"""End to end, real guests (TCG here): adaptive repetitions stop at `min` when the target is met
and run to `max` when it cannot be; a density trial runs N = 2 guests of one mode at once and
leaves nothing behind."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from support import e2e_env, fio_job, guests_named, scenario_toml, vbench_run

pytestmark = pytest.mark.e2e

VBENCH = [sys.executable, "-m", "vbench"]
GUEST = {"memory_mib": 320, "boot_timeout_s": 120}


def _scenario(name: str, run: dict[str, Any], *, runtime: int = 1) -> str:
    return scenario_toml(name, fio_job(runtime), guest=GUEST, run=run)


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return e2e_env(tmp_path)


def _run(
    tmp_path: Path,
    env: dict[str, str],
    name: str,
    run: dict[str, Any],
    *,
    runtime: int = 1,
    report: bool = False,
) -> tuple[subprocess.CompletedProcess[str], Path]:
    scenario = tmp_path / f"{name}.toml"
    scenario.write_text(_scenario(name, run, runtime=runtime))
    return vbench_run(scenario, tmp_path / "reports", env, report=report, timeout=1200)


def _left_behind(name: str, env: dict[str, str]) -> tuple[list[str], list[Path]]:
    """This test's guests (by its scenario's unique name) and its scratch files."""
    scratch = Path(env["VBENCH_SCRATCH"])
    files = [p for p in scratch.rglob("*") if p.is_file()] if scratch.is_dir() else []
    return guests_named(f"vbench-{name}-"), files


def test_adaptive_stops_at_min_when_the_target_is_met(tmp_path: Path, env: dict[str, str]) -> None:
    # 99 %: two rounds of a 1 s fio job agree far better than that
    name = "adapt-easy-e2e"
    proc, run_dir = _run(
        tmp_path, env, name, {"repetitions": {"min": 2, "max": 4, "target_ci_pct": 99}}
    )
    manifest = json.loads((run_dir / "manifest.json").read_text())
    reps = manifest["repetitions"]
    assert (reps["rule"], reps["stopped_by"], reps["rounds"]) == ("adaptive", "target", 2)
    assert reps["summary"].startswith("target reached after 2 rounds")
    assert [h["round"] for h in reps["history"]] == [1, 2]
    assert reps["history"][-1]["widest_ci_pct"] <= 99
    assert "adaptive repetitions: target reached after 2 rounds" in proc.stderr
    samples = pd.read_csv(run_dir / "samples.csv")
    assert sorted(samples[samples.metric == "read.iops"]["repetition"]) == [0, 1]
    assert _left_behind(name, env) == ([], [])


def test_adaptive_runs_to_max_on_an_impossible_target(tmp_path: Path, env: dict[str, str]) -> None:
    name = "adapt-hard-e2e"
    _, run_dir = _run(
        tmp_path, env, name, {"repetitions": {"min": 2, "max": 3, "target_ci_pct": 0.001}}
    )
    manifest = json.loads((run_dir / "manifest.json").read_text())
    reps = manifest["repetitions"]
    assert (reps["stopped_by"], reps["rounds"]) == ("max", 3)
    assert "max reached (3 rounds)" in reps["summary"]
    assert reps["history"][-1]["widest"].startswith("pv fio (")
    assert reps["history"][-1]["widest_ci_pct"] > 0.001
    samples = pd.read_csv(run_dir / "samples.csv")
    assert sorted(samples[samples.metric == "read.iops"]["repetition"]) == [0, 1, 2]
    assert {c["status"] for c in manifest["cases"]} == {"ok"}
    assert _left_behind(name, env) == ([], [])


def test_density_two_guests_at_once(tmp_path: Path, env: dict[str, str]) -> None:
    name = "density-e2e"
    _, run_dir = _run(
        tmp_path, env, name, {"repetitions": 1, "density": [2]}, runtime=2, report=True
    )
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "complete"
    assert [(t["mode"], t["density"], t["guest"], t["status"]) for t in manifest["trials"]] == [
        ("pv", 2, 0, "ok"),
        ("pv", 2, 1, "ok"),
    ]
    slug = "fio-randread-4k-qd4-j1"
    cases = {c["case_id"]: c for c in manifest["cases"]}
    assert set(cases) == {f"r0-pv-n2g0-{slug}", f"r0-pv-n2g1-{slug}", f"r0-pv-n2-{slug}"}
    aggregate = cases[f"r0-pv-n2-{slug}"]
    assert (aggregate["status"], aggregate["density"], aggregate["guest"]) == ("ok", 2, None)
    assert 0 <= aggregate["start_spread_ms"] < 1000  # released together (a barrier)
    samples = pd.read_csv(run_dir / "samples.csv", keep_default_na=False)
    iops = samples[samples.metric == "read.iops"]
    assert sorted(iops["case_id"]) == [f"r0-pv-n2g0-{slug}", f"r0-pv-n2g1-{slug}"]
    assert (iops["value"] > 0).all()
    assert set(samples[samples.workload == "fio"]["parameters"]) == {
        "bs=4k,density=2,direct=True,iodepth=4,ioengine=libaio,numjobs=1,ramp_s=0,runtime_s=2,"
        "rw=randread"
    }
    agg = samples[samples.case_id == f"r0-pv-n2-{slug}"].set_index("metric")["value"]
    assert agg["agg.read.iops"] == pytest.approx(iops["value"].sum())
    values = iops["value"].tolist()
    jain = sum(values) ** 2 / (2 * sum(v * v for v in values))
    assert agg["fair.read.iops"] == pytest.approx(jain)
    assert 0.5 <= agg["fair.read.iops"] <= 1.0
    assert 0 < agg["host.cpu_busy"] <= 100
    boots = samples[samples.metric == "boot_to_agent"]
    assert sorted(boots["case_id"]) == ["r0-pv-n2g0-boot", "r0-pv-n2g1-boot"]
    for g in (0, 1):
        assert (run_dir / "raw" / f"r0-pv-n2g{g}" / "console.log").stat().st_size > 0
        assert (run_dir / "raw" / f"r0-pv-n2g{g}-{slug}" / "fio.json").is_file()
    html = (run_dir / "report.html").read_text()
    assert "aggregate read IOPS" in html and "fairness of read IOPS" in html
    assert "Repetitions: 1 round (a fixed count)." in html
    assert ">Density</h3>" in html
    assert _left_behind(name, env) == ([], [])


def test_density_interrupted_mid_case_leaves_nothing(tmp_path: Path, env: dict[str, str]) -> None:
    """SIGTERM while both guests run their case (threads in guest-exec): every guest, disk and
    console goes, and the run directory says it was interrupted."""
    name = "density-term-e2e"
    scenario = tmp_path / f"{name}.toml"
    scenario.write_text(_scenario(name, {"repetitions": 1, "density": [2]}, runtime=8))
    out = tmp_path / "reports"
    proc = subprocess.Popen(
        [*VBENCH, "run", str(scenario), "--output", str(out), "--no-report"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    # both guests booted (their boot samples are written before the first case starts)
    deadline = time.monotonic() + 400
    booted = 0
    while time.monotonic() < deadline and booted < 2:
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        time.sleep(0.5)
        runs = list(out.glob("*/samples.csv")) if out.is_dir() else []
        booted = runs[0].read_text().count("boot_to_agent") if runs else 0
    assert booted == 2, "the two guests did not boot within 400 s"
    time.sleep(3)  # inside the 8 s fio case
    assert len(_left_behind(name, env)[0]) == 2
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=180)
    assert proc.returncode == 130, stderr[-2000:]
    assert "Traceback" not in stderr
    (run_dir,) = [p for p in out.iterdir() if p.is_dir()]
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "interrupted"
    assert "SIGTERM" in manifest["error"]
    assert _left_behind(name, env) == ([], [])


def test_density_network_cases_each_guest_on_its_own_link(
    tmp_path: Path, env: dict[str, str]
) -> None:
    """Two guests' iperf3 at once, each to a peer server on its own tap's host end."""
    name = "density-net-e2e"
    scenario = tmp_path / f"{name}.toml"
    iperf3 = {"kind": "iperf3", "direction": ["tx"], "duration_s": 2}
    run = {"repetitions": 1, "density": [2]}
    scenario.write_text(scenario_toml(name, iperf3, guest=GUEST, disk_mib=None, run=run))
    _, run_dir = vbench_run(scenario, tmp_path / "reports", env, timeout=1200)
    samples = pd.read_csv(run_dir / "samples.csv", keep_default_na=False)
    tx = samples[samples.metric == "tx.throughput"]
    assert sorted(c.split("-")[2] for c in tx["case_id"]) == ["n2g0", "n2g1"]
    assert (tx["value"] > 0).all()
    agg = samples[samples.metric == "agg.tx.throughput"]
    assert len(agg) == 1
    assert agg["value"].iloc[0] == pytest.approx(tx["value"].sum())
    assert len(samples[samples.metric == "fair.tx.throughput"]) == 1
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert f"vbench-{run_dir.name}" not in netns
    assert _left_behind(name, env) == ([], [])
