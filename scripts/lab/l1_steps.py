"""The lab's steps, run inside the L1 lab host (an emulated IOMMU + SR-IOV NVMe, see run_lab.py).

    python scripts/lab/l1_steps.py OUTDIR

(a) `vbench check --mode vfio --mode sriov`: both modes ready;
(b) plan_vf + ChangeJournal on the NVMe PF: the VF gets a secondary controller online and a
    namespace, bound to nvme; fio runs on it; restore; L1's sysfs and nvme-cli show the first
    state again;
(c) when scenarios/lab.toml exists: `vbench run --prepare-host` on it, and once more with a
    SIGTERM in the middle, each followed by the same proof that the host is restored.

Writes OUTDIR/results.json (every step's duration and findings) and prints one line per step.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vbench.host.changes import ChangeJournal
from vbench.host.paths import HostPaths
from vbench.host.sriov_prep import plan_vf

PCI = Path("/sys/bus/pci/devices")
VBENCH = [sys.executable, "-m", "vbench"]


class StepFailed(Exception):
    pass


class Lab:
    def __init__(self, out: Path) -> None:
        self.out = out
        self.results: dict[str, Any] = {"steps": [], "ok": True}

    def save(self) -> None:
        (self.out / "results.json").write_text(json.dumps(self.results, indent=2) + "\n")

    def step(self, name: str, fn: Callable[[], dict[str, Any] | None]) -> dict[str, Any] | None:
        print(f"lab-l1: {name} ...", flush=True)
        t0 = time.monotonic()
        rec: dict[str, Any] = {"name": name}
        try:
            found = fn() or {}
            rec.update(found)
            rec["ok"] = True
        except Exception as exc:
            rec["ok"] = False
            rec["error"] = f"{type(exc).__name__}: {exc}"
            self.results["ok"] = False
            found = None
        rec["duration_s"] = round(time.monotonic() - t0, 2)
        self.results["steps"].append(rec)
        self.save()
        status = "ok" if rec["ok"] else f"FAILED: {rec['error']}"
        print(f"lab-l1: {name}: {status} ({rec['duration_s']} s)", flush=True)
        return found


def run(argv: list[str], timeout: float = 600, check: bool = True) -> str:
    p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    if check and p.returncode != 0:
        tail = (p.stderr or p.stdout).strip().splitlines()[-3:]
        raise StepFailed(f"`{' '.join(argv)}` exited {p.returncode}: {' | '.join(tail)}")
    return p.stdout


def nvme_json(*args: str) -> Any:
    return json.loads(run(["nvme", *args, "-o", "json"]))


def find_pf() -> str:
    for d in sorted(PCI.iterdir()):
        if (d / "sriov_totalvfs").exists() and (d / "class").read_text().startswith("0x0108"):
            return d.name
    raise StepFailed("no SR-IOV NVMe PF in L1")


def ctrl_of(addr: str) -> str:
    names = sorted(os.listdir(PCI / addr / "nvme"))
    return names[0]


def host_state(pf: str) -> dict[str, Any]:
    """Everything a VF preparation changes, read from sysfs and nvme-cli."""
    d = PCI / pf
    dev = f"/dev/{ctrl_of(pf)}"
    vfs = sorted(p.name for p in d.iterdir() if p.name.startswith("virtfn"))
    drivers = {}
    for v in vfs:
        vf = os.path.basename(os.readlink(d / v))
        drv = PCI / vf / "driver"
        drivers[vf] = os.path.basename(os.readlink(drv)) if drv.exists() else None
    ns = [n["nsid"] for n in nvme_json("list-ns", dev, "--all").get("nsid_list", [])]
    return {
        "sriov_drivers_autoprobe": (d / "sriov_drivers_autoprobe").read_text().strip(),
        "sriov_numvfs": (d / "sriov_numvfs").read_text().strip(),
        "vf_drivers": drivers,
        "secondary": nvme_json("list-secondary", dev).get("secondary-controllers", []),
        "primary": nvme_json("primary-ctrl-caps", dev),
        "namespaces": {
            str(n): nvme_json("list-ctrl", dev, "--namespace-id", str(n)).get("ctrl_list", [])
            for n in ns
        },
    }


def record_nvme(pf: str, dest: Path) -> None:
    """nvme-cli's answers for the fresh PF: the recording NvmeRecording replays on a testbed."""
    ctrl = ctrl_of(pf)
    d = dest / ctrl
    d.mkdir(parents=True, exist_ok=True)
    dev = f"/dev/{ctrl}"
    for name, args in (
        ("list-secondary", ["list-secondary", dev]),
        ("primary-ctrl-caps", ["primary-ctrl-caps", dev]),
        ("list-ns", ["list-ns", dev, "--all"]),
    ):
        (d / f"{name}.json").write_text(json.dumps(nvme_json(*args), indent=2) + "\n")
    for n in nvme_json("list-ns", dev, "--all").get("nsid_list", []):
        doc = nvme_json("list-ctrl", dev, "--namespace-id", str(n["nsid"]))
        (d / f"list-ctrl-{n['nsid']}.json").write_text(json.dumps(doc, indent=2) + "\n")


def wait_for(pred: Callable[[], Any], timeout: float, what: str) -> Any:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = pred()
        if value:
            return value
        time.sleep(0.2)
    raise StepFailed(f"{what} did not appear within {timeout:g} s")


def vf_namespace(vf: str) -> str | None:
    """The block device of the VF's namespace, found by the VF's PCI address."""
    base = PCI / vf / "nvme"
    if not base.is_dir():
        return None
    for ctrl in sorted(base.iterdir()):
        for entry in sorted(ctrl.iterdir()):
            if entry.name.startswith(ctrl.name + "n") and Path(f"/dev/{entry.name}").exists():
                return f"/dev/{entry.name}"
    return None


def fio_iops(target: str, runtime_s: int = 5) -> float:
    argv = ["fio", "--name=lab", f"--filename={target}", "--rw=randread", "--bs=4k"]
    argv += ["--iodepth=16", "--ioengine=libaio", "--direct=1", f"--runtime={runtime_s}"]
    argv += ["--time_based", "--output-format=json"]
    out = run(argv, timeout=120)
    return round(float(json.loads(out)["jobs"][0]["read"]["iops"]), 1)


def changes_in_force(runs: Path) -> bool:
    """True once a run's host-change journal has a change made (the run is mid-way)."""
    for journal in runs.glob("*/host-changes.json"):
        try:
            doc = json.loads(journal.read_text())
        except (OSError, ValueError):
            continue
        if any(c.get("state") == "made" for c in doc.get("changes", [])):
            return True
    return False


def run_scenario(lab: Lab, pf: str, first: dict[str, Any], sigterm: bool) -> dict[str, Any]:
    """`vbench run --prepare-host scenarios/lab.toml`; with `sigterm`, SIGTERM once host changes
    are in force.  Either way L1 must be back in its first state afterwards."""
    runs = lab.out / ("runs-sigterm" if sigterm else "runs")
    argv = [*VBENCH, "run", "--prepare-host", "--no-report", "scenarios/lab.toml", "-o", str(runs)]
    t0 = time.monotonic()
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    found: dict[str, Any] = {}
    if sigterm:
        wait_for(lambda: changes_in_force(runs) or p.poll() is not None, 1200, "a host change")
        time.sleep(5)  # into the trial: the guest is being started with the VF
        found["sigterm_after_s"] = round(time.monotonic() - t0, 1)
        p.send_signal(signal.SIGTERM)
    text, _ = p.communicate(timeout=1800)
    (lab.out / f"{runs.name}.log").write_text(text)
    found.update(exit=p.returncode, tail=text.strip().splitlines()[-6:])
    now = host_state(pf)
    diff = {k: (first[k], now[k]) for k in first if first[k] != now[k]}
    if diff:
        raise StepFailed(f"exit {p.returncode}, host not restored: {diff}")
    if not sigterm and p.returncode != 0:
        raise StepFailed(f"exit {p.returncode}: {found['tail']}")
    if sigterm and p.returncode == 0:
        raise StepFailed("the run was not interrupted (it ended before the SIGTERM)")
    figures: dict[str, dict[str, float]] = {}
    for path in sorted(runs.glob("*/samples.csv")):
        with path.open() as f:
            for row in csv.DictReader(f):
                if row["metric"] in ("boot_to_agent", "read.iops", "write.iops", "read.clat_p99"):
                    figures.setdefault(row["mode"], {})[row["metric"]] = float(row["value"])
    found["figures"] = figures
    if not sigterm and sorted(figures) != ["sriov", "vfio"]:
        raise StepFailed(f"no fio figures for both modes: {figures}")
    return found


def main() -> int:
    out = Path(sys.argv[1])
    lab = Lab(out)
    lab.results["uptime_start_s"] = float(Path("/proc/uptime").read_text().split()[0])

    def check(want_sriov: bool) -> dict[str, Any]:
        doc = json.loads(
            run([*VBENCH, "check", "--mode", "vfio", "--mode", "sriov", "--json"], check=False)
        )
        verdicts = {v["mode"]: v for v in doc["verdicts"]}
        found = {m: verdicts[m]["ready"] for m in ("vfio", "sriov")}
        nvme = next((c for c in doc["checks"] if c["id"] == "sriov.nvme"), {})
        rec = {
            "ready": found,
            "summaries": {m: verdicts[m]["summary"] for m in found},
            "sriov.nvme": nvme.get("observed"),
        }
        if not found["vfio"] or found["sriov"] != want_sriov:
            raise StepFailed(f"unexpected verdicts: {rec}")
        return rec

    # a fresh lab host has no VF yet: vfio is ready, sriov waits for a VF (the check only reads)
    lab.step("a: vbench check (vfio ready; sriov: no VF yet)", lambda: check(False))

    pf = find_pf()
    lab.results["pf"] = pf
    if os.environ.get("LAB_RECORD_NVME"):
        record_nvme(pf, out / "nvme")
    first = host_state(pf)
    lab.results["state_before"] = first
    journal = ChangeJournal(out / "b-run")
    vf = (
        os.path.basename(os.readlink(PCI / pf / "virtfn0"))
        if first["sriov_numvfs"] != "0"
        else None
    )

    def plan() -> dict[str, Any]:
        changes = plan_vf(pf, HostPaths(), 2, bind="nvme")
        lab.results["plan"] = [c.describe for c in changes]
        timings = []
        try:
            for c in changes:
                t0 = time.monotonic()
                journal.apply(c)
                timings.append(
                    {"change": c.describe, "duration_s": round(time.monotonic() - t0, 2)}
                )
        finally:
            lab.results["apply"] = timings
        return {"changes": len(changes)}

    try:
        lab.step("b: plan_vf + ChangeJournal.apply on the NVMe PF", plan)
        vf = os.path.basename(os.readlink(PCI / pf / "virtfn0"))
        lab.results["vf"] = vf

        def fio_on_vf() -> dict[str, Any]:
            target = wait_for(lambda: vf_namespace(vf), 60, f"the namespace of VF {vf}")
            return {"target": target, "iops_4k_randread_qd16": fio_iops(target)}

        lab.step("b: fio on the VF in L1", fio_on_vf)
        lab.step("a: vbench check with the VF prepared (vfio, sriov ready)", lambda: check(True))
        lab.results["state_during"] = host_state(pf)
    finally:

        def restore() -> dict[str, Any]:
            problems = journal.restore()
            if problems:
                raise StepFailed("; ".join(problems))
            return {}

        lab.step("b: ChangeJournal.restore", restore)

    def restored() -> dict[str, Any]:
        now = host_state(pf)
        lab.results["state_after"] = now
        diff = {k: (first[k], now[k]) for k in first if first[k] != now[k]}
        if diff:
            raise StepFailed(f"not restored: {diff}")
        return {"compared": sorted(first)}

    lab.step("b: L1 sysfs + nvme-cli show the first state", restored)

    scenario = Path("scenarios/lab.toml")
    if os.environ.get("LAB_SKIP_RUN"):
        lab.results["c"] = "step (c) left out (--skip-run)"
    elif scenario.is_file():
        lab.step("c: vbench run --prepare-host", lambda: run_scenario(lab, pf, first, False))
        lab.step("c: the same, SIGTERM mid-run", lambda: run_scenario(lab, pf, first, True))
    else:
        lab.results["c"] = "scenarios/lab.toml is not in this checkout: step (c) not run"

    lab.save()
    return 0 if lab.results["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
