"""End to end: `vbench run` against the real libvirtd, real QEMU guests (TCG here), real fio,
stress-ng, iperf3 and sockperf (over each mode's NIC, servers in the run's network namespace),
with the samplers on.

Also the ways a run can go wrong: a bad scenario, libvirtd unreachable, a guest that does not
answer in time, and an interrupted run.  Each must leave no guest, tap, network namespace, peer
server or scratch file behind.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from support import e2e_env, fio_job, guests_named, run_taps, scenario_toml

pytestmark = pytest.mark.e2e

VBENCH = [sys.executable, "-m", "vbench"]
# Unique per test session: other runs (other checkouts' tests) may go on at the same time.
NAME = f"tiny-{uuid.uuid4().hex[:6]}"


def tiny(
    name: str,
    *,
    boot_timeout: float = 180,  # TCG on a loaded 2-core machine: boots can take > 60 s
    runtime: int = 2,
    reps: int = 1,
    baremetal: bool = False,
    net_s: int = 2,
    modes: Sequence[str | Mapping[str, Any]] = ("fv", "pv"),
) -> str:
    """The tiny scenario: fv vs pv, a short fio, stress-ng, iperf3 and sockperf job each."""
    return scenario_toml(
        name,
        fio_job(runtime, iodepth=[8]),
        {"kind": "stress-ng", "stressors": [{"name": "cpu", "method": "int64"}], "timeout_s": 2},
        {"kind": "iperf3", "direction": ["tx"], "duration_s": net_s},
        {"kind": "sockperf", "duration_s": 2},
        guest={"memory_mib": 384, "boot_timeout_s": boot_timeout},
        disk_mib=64,
        modes=modes,
        run={"repetitions": reps, "baremetal": baremetal},
        description="e2e: fv vs pv, short fio, stress-ng, iperf3 and sockperf jobs",
    )


def _scenario(
    tmp_path: Path,
    *,
    boot_timeout: float = 180,
    runtime: int = 2,
    reps: int = 1,
    baremetal: bool = False,
    net_s: int = 2,
) -> Path:
    path = tmp_path / "tiny.toml"
    text = tiny(
        NAME,
        boot_timeout=boot_timeout,
        runtime=runtime,
        reps=reps,
        baremetal=baremetal,
        net_s=net_s,
    )
    path.write_text(text)
    return path


def _vbench_domains() -> list[str]:
    return guests_named(f"vbench-{NAME}-")  # this module's runs only


def _scratch_dirs(scratch: Path) -> list[Path]:
    return [p for p in scratch.iterdir()] if scratch.is_dir() else []


def _namespaces() -> list[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return [line.split()[0] for line in out.splitlines() if line.startswith(f"vbench-{NAME}-")]


def _servers(namespace: str) -> set[int]:
    out = subprocess.run(["ip", "netns", "pids", namespace], capture_output=True, text=True)
    return {int(p) for p in out.stdout.split()}


def _alive(pid: int) -> bool:
    """A process that runs (a zombie whose killed parent left it to init does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[:1] != ["Z"]


class Watch:
    """What a run under test has shown of itself: namespaces, peer server pids, guests."""

    def __init__(self) -> None:
        self.namespaces: set[str] = set()
        self.servers: set[int] = set()
        self.guests: set[str] = set()

    def look(self) -> None:
        self.guests.update(_vbench_domains())
        for ns in _namespaces():
            self.namespaces.add(ns)
            self.servers |= _servers(ns)

    def left_behind(self, run_id: str, scratch: Path) -> list[str]:
        left = [f"guest {g}" for g in _vbench_domains()]
        left += [f"namespace {ns}" for ns in _namespaces()]
        left += [f"tap {t}" for t in run_taps(run_id)]
        left += [f"server {p}" for p in self.servers if _alive(p)]
        left += [f"scratch {p}" for p in _scratch_dirs(scratch)]
        return left


def _run_watched(
    args: list[str], env: dict[str, str], watch: Watch, timeout: float = 900
) -> subprocess.CompletedProcess[str]:
    """`vbench ARGS`, looking at its guests, namespaces and servers every 0.3 s as it goes."""
    proc = subprocess.Popen(
        [*VBENCH, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + timeout
    while proc.poll() is None and time.monotonic() < deadline:
        watch.look()
        time.sleep(0.3)
    out, err = proc.communicate(timeout=max(1.0, deadline - time.monotonic()))
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return e2e_env(tmp_path)


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
    watch = Watch()
    scenario = _scenario(tmp_path, baremetal=True)
    proc = _run_watched(["run", str(scenario), "--output", str(out)], env, watch)
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = _only_run_dir(out)
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["status"] == "complete"
    assert watch.namespaces == {f"vbench-{manifest['run_id']}"}
    assert len(watch.servers) >= 2  # an iperf3 and a sockperf server at least were seen
    assert watch.left_behind(manifest["run_id"], Path(env["VBENCH_SCRATCH"])) == []
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
    assert {c["workload"] for c in manifest["cases"]} == {"fio", "stress-ng", "iperf3", "sockperf"}
    # the network over each mode's NIC (and loopback in the namespace on bare metal)
    tx = samples[samples.metric == "tx.throughput"]
    assert set(tx["mode"]) == {"baremetal", "fv", "pv"} and (tx["value"] > 0).all()
    rtt = samples[samples.metric == "rtt.p50"]
    assert set(rtt["mode"]) == {"baremetal", "fv", "pv"} and (rtt["value"] > 0).all()
    e1000 = (run / "raw" / "r0-fv" / "domain.xml").read_text()
    virtio = (run / "raw" / "r0-pv" / "domain.xml").read_text()
    assert '<interface type="ethernet">' in e1000 and '<model type="e1000"' in e1000
    assert '<model type="virtio"' in virtio and "vbench.ip=169.254." in virtio
    # the run's host changes are its journal: the namespace, a tap per guest, all undone
    assert "host_changes" not in manifest
    journal = json.loads((run / "host-changes.json").read_text())["changes"]
    ns = f"vbench-{manifest['run_id']}"
    assert [(c["kind"], c["state"]) for c in journal] == [
        ("netns", "restored"),
        ("tap", "restored"),
        ("tap", "restored"),
    ]
    assert journal[0]["target"] == ns
    assert all(c["target"].endswith(f" netns {ns}") for c in journal[1:])
    # the samplers: a series per case, host cost derived from it, cross-checks within 5 %
    series = pd.read_csv(run / "series.csv")
    assert set(series["case_id"]) == {c["case_id"] for c in manifest["cases"]}
    assert {"libvirt", "host", "guest"} <= set(series["source"])
    for case in manifest["cases"]:
        checks = {c["name"]: c for c in case["cross_checks"]}
        if case["mode"] != "baremetal" and case["workload"] == "fio":
            assert "block_requests" in checks and "block_bytes" in checks
        if case["mode"] != "baremetal" and case["workload"] == "iperf3":
            assert "net_bytes_tx" in checks
        assert case["flags"] == [c for c, v in checks.items() if v["flagged"]]
        assert all(v["disagreement_pct"] <= 5.0 or v["explained_by"] for v in checks.values()), (
            case["case_id"],
            checks,
        )
        assert case["workload_s"] > 0
    timing = manifest["timing"]
    assert 0 < timing["workload_s"] < timing["wall_s"]
    assert 0 < timing["overhead_ratio"] < 1
    for case in manifest["cases"]:
        assert case["status"] == "ok"
        raw = run / "raw" / case["case_id"]
        if case["workload"] == "fio":
            assert json.loads((raw / "fio.json").read_text())["jobs"]
        elif case["workload"] == "iperf3":
            assert json.loads((raw / "iperf3.json").read_text())["end"]
        elif case["workload"] == "sockperf":
            assert "avg-rtt" in (raw / "sockperf.txt").read_text()
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
    assert _namespaces() == [] and run_taps(manifest["run_id"]) == []
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
            str(_scenario(tmp_path, runtime=2, reps=2, net_s=60)),
            "-o",
            str(out),
            "--no-report",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    # wait until a guest of this run is up and its iperf3 server runs, then interrupt mid-case
    watch = Watch()
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and not (watch.guests and watch.servers):
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        watch.look()
        time.sleep(0.3)
    assert watch.guests and watch.servers, "no guest with a peer server within 300 s"
    [namespace] = watch.namespaces
    assert run_taps(namespace.removeprefix("vbench-"))
    time.sleep(2)
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr[-2000:]
    assert "Traceback" not in stderr
    run = _only_run_dir(out)
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["status"] == "interrupted"
    assert manifest["ended_at"]
    journal = json.loads((run / "host-changes.json").read_text())["changes"]
    assert (journal[0]["kind"], journal[0]["target"]) == ("netns", namespace)
    assert {c["state"] for c in journal} == {"restored"}  # undone on the way out
    assert watch.left_behind(manifest["run_id"], Path(env["VBENCH_SCRATCH"])) == []
