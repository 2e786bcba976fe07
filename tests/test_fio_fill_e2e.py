"""End to end, a real guest (TCG here): a fio case with `precondition = "fill"` keeps its block
cross-checks within 5 %.  The fill runs before the case's sampling window opens, so libvirt's
block counters over the window hold the measured job's requests and bytes only (a fill inside
the window added its 16 MiB to libvirt's count and none to fio's)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

VBENCH = [sys.executable, "-m", "vbench"]
NAME = f"fill-{uuid.uuid4().hex[:6]}"  # unique: other runs go on at the same time
SCENARIO = f"""
format_version = 1
name = "{NAME}"
[guest]
memory_mib = 320
boot_timeout_s = 180
[disk]
size_mib = 32
[[modes]]
id = "pv"
[[workloads]]
kind = "fio"
rw = ["randwrite"]
bs = ["4k"]
iodepth = [4]
size = "16m"
precondition = "fill"
runtime_s = 3
[run]
repetitions = 1
"""


def test_fill_stays_out_of_the_block_cross_checks(tmp_path: Path) -> None:
    env = dict(os.environ)
    env["VBENCH_SCRATCH"] = str(Path("/var/lib/vbench/test-scratch") / tmp_path.name)
    scenario = tmp_path / "fill.toml"
    scenario.write_text(SCENARIO)
    out = tmp_path / "reports"
    proc = subprocess.run(
        [*VBENCH, "run", str(scenario), "--output", str(out), "--no-report"],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run,) = [p for p in out.iterdir() if p.is_dir()]
    manifest = json.loads((run / "manifest.json").read_text())
    (case,) = manifest["cases"]
    assert case["status"] == "ok" and case["case_id"].endswith("-fill"), case
    raw = run / "raw" / case["case_id"]
    fill = json.loads((raw / "fio.precondition.json").read_text())
    assert fill["jobs"][0]["write"]["io_bytes"] == 16 * 2**20  # the fill ran, before the window
    measured = json.loads((raw / "fio.json").read_text())
    assert [j["jobname"] for j in measured["jobs"]] == [case["case_id"].split("-", 2)[2]]
    checks = {c["name"]: c for c in case["cross_checks"]}
    assert set(checks) == {"block_requests", "block_bytes"}, checks
    for c in checks.values():
        print(
            f"\n{c['name']}: fio {c['workload']:.0f}, libvirt {c['sampled']:.0f}, "
            f"{c['disagreement_pct']:.2f} % apart"
        )
        assert c["disagreement_pct"] <= 5.0 and not c["flagged"], c
    assert case["flags"] == []
    names = subprocess.run(
        ["virsh", "-c", "qemu:///system", "list", "--all", "--name"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert [n for n in names if n.startswith(f"vbench-{NAME}-")] == []
