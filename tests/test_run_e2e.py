"""End to end: `vbench run` against the real libvirtd, real QEMU guests (TCG here), real fio and
stress-ng.

Also the ways a run can go wrong: a bad scenario, libvirtd unreachable, a guest that does not
answer in time, and an interrupted run.  Each must leave no guest and no scratch file behind.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

pytestmark = pytest.mark.e2e

VBENCH = [sys.executable, "-m", "vbench"]
TINY = """
format_version = 1
name = "tiny"
description = "e2e: fv vs pv, one short fio job and one short stress-ng job"
[guest]
memory_mib = 384
boot_timeout_s = {boot_timeout}
[disk]
size_mib = 64
[[modes]]
id = "fv"
[[modes]]
id = "pv"
[[workloads]]
kind = "fio"
rw = ["randread"]
bs = ["4k"]
iodepth = [8]
runtime_s = {runtime}
[[workloads]]
kind = "stress-ng"
stressors = [{{ name = "cpu", method = "int64" }}]
timeout_s = 2
[run]
repetitions = {reps}
baremetal = {baremetal}
"""


def _scenario(
    tmp_path: Path,
    *,
    boot_timeout: float = 60,
    runtime: int = 2,
    reps: int = 1,
    baremetal: bool = False,
) -> Path:
    path = tmp_path / "tiny.toml"
    text = TINY.format(
        boot_timeout=boot_timeout, runtime=runtime, reps=reps, baremetal=str(baremetal).lower()
    )
    path.write_text(text)
    return path


def _vbench_domains() -> list[str]:
    out = subprocess.run(
        ["virsh", "-c", "qemu:///system", "list", "--all", "--name"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [n for n in out.split() if n.startswith("vbench-tiny-")]  # this module's runs only


def _scratch_dirs(scratch: Path) -> list[Path]:
    return [p for p in scratch.iterdir()] if scratch.is_dir() else []


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    e = dict(os.environ)
    e["VBENCH_SCRATCH"] = str(Path("/var/lib/vbench/test-scratch") / tmp_path.name)
    return e


def _run(
    args: list[str], env: dict[str, str], timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*VBENCH, *args], capture_output=True, text=True, env=env, timeout=timeout, check=False
    )


def _only_run_dir(out: Path) -> Path:
    runs = [p for p in out.iterdir() if p.is_dir()]
    assert len(runs) == 1, runs
    return runs[0]


def test_fv_and_pv_run_to_a_report(tmp_path: Path, env: dict[str, str]) -> None:
    out = tmp_path / "reports"
    proc = _run(["run", str(_scenario(tmp_path, baremetal=True)), "--output", str(out)], env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = _only_run_dir(out)
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["status"] == "complete"
    assert manifest["accelerator"]["name"] in ("tcg", "kvm")
    assert manifest["accelerator"]["reason"]
    samples = pd.read_csv(run / "samples.csv")
    iops = samples[samples.metric == "read.iops"]
    assert set(iops["mode"]) == {"baremetal", "fv", "pv"}
    assert (iops["value"] > 0).all()
    cost = samples[samples.metric == "host.qemu_cpu_per_io"]
    assert set(cost["mode"]) == {"fv", "pv"}  # a guest's QEMU process; none on bare metal
    assert (cost["value"] > 0).all()
    bogo = samples[samples.metric == "cpu.bogo_ops_s_real"]
    assert set(bogo["mode"]) == {"baremetal", "fv", "pv"}
    assert (bogo["value"] > 0).all()
    assert set(bogo["parameters"]) == {"method=int64,stressor=cpu,timeout_s=2,workers=vcpus"}
    assert {c["workload"] for c in manifest["cases"]} == {"fio", "stress-ng"}
    for case in manifest["cases"]:
        assert case["status"] == "ok"
        raw = run / "raw" / case["case_id"]
        if case["workload"] == "fio":
            assert json.loads((raw / "fio.json").read_text())["jobs"]
        else:
            assert "bogo-ops-per-second-real-time" in (raw / "stress-ng.yaml").read_text()
            assert "successful run completed" in (raw / "stress-ng.stderr").read_text()
    for trial in ("r0-fv", "r0-pv"):
        assert "<domain" in (run / "raw" / trial / "domain.xml").read_text()
        assert (run / "raw" / trial / "console.log").stat().st_size > 0
    html = (run / "report.html").read_text()
    assert "fv" in html and "pv" in html and "baremetal" in html
    assert "bogo-ops/CPU-s" in html  # the stress-ng rows, labelled from the catalogue
    assert (run / "report.pdf").read_bytes().startswith(b"%PDF")
    assert _vbench_domains() == []
    assert _scratch_dirs(Path(env["VBENCH_SCRATCH"])) == []


def test_bad_scenario_is_one_line_and_starts_nothing(tmp_path: Path, env: dict[str, str]) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(
        'format_version = 1\nname = "x"\n[[modes]]\nid = "vfio"\npci = "0000:81:00"\n'
        '[[workloads]]\nkind = "fio"\n'
    )
    proc = _run(["run", str(bad), "--output", str(tmp_path / "out")], env)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "bad.toml: modes[0].pci: '0000:81:00' is not a PCI address" in lines[0]
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "out").exists()


def test_unreachable_libvirt_says_how_to_start_it(tmp_path: Path, env: dict[str, str]) -> None:
    uri = "qemu+unix:///system?socket=/nonexistent/libvirt-sock"
    proc = _run(["run", str(_scenario(tmp_path)), "-c", uri, "--output", str(tmp_path / "o")], env)
    assert proc.returncode == 1
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "cannot connect to libvirt" in proc.stderr and "libvirtd" in proc.stderr
    assert not (tmp_path / "o").exists()


def test_silent_guest_fails_its_cases_and_the_run_goes_on(
    tmp_path: Path, env: dict[str, str]
) -> None:
    # A boot timeout far below any boot time: the agent cannot answer in time.
    out = tmp_path / "reports"
    proc = _run(
        ["run", str(_scenario(tmp_path, boot_timeout=0.5)), "--output", str(out), "--no-report"],
        env,
    )
    assert proc.returncode == 3, proc.stderr[-2000:]
    manifest = json.loads((_only_run_dir(out) / "manifest.json").read_text())
    assert manifest["status"] == "failed"
    assert [t["status"] for t in manifest["trials"]] == ["failed", "failed"]  # both tried
    assert all(c["status"] == "failed" for c in manifest["cases"])
    assert all("agent" in (t["error"] or "") for t in manifest["trials"])
    assert _vbench_domains() == []
    assert _scratch_dirs(Path(env["VBENCH_SCRATCH"])) == []


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_interrupted_run_leaves_nothing_and_stays_readable(
    tmp_path: Path, env: dict[str, str], sig: signal.Signals
) -> None:
    out = tmp_path / "reports"
    proc = subprocess.Popen(
        [
            *VBENCH,
            "run",
            str(_scenario(tmp_path, runtime=30, reps=2)),
            "-o",
            str(out),
            "--no-report",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    # wait until a guest of this run is up, then interrupt mid-run
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and not _vbench_domains():
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        time.sleep(0.5)
    assert _vbench_domains(), "no guest started within 180 s"
    time.sleep(3)
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr[-2000:]
    assert "Traceback" not in stderr
    run = _only_run_dir(out)
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["status"] == "interrupted"
    assert manifest["ended_at"]
    assert _vbench_domains() == []
    assert _scratch_dirs(Path(env["VBENCH_SCRATCH"])) == []
