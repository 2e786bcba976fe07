"""End to end, a real guest (TCG here): a fio case with `precondition = "fill"` keeps its block
cross-checks within 5 %.  The fill runs before the case's sampling window opens, so libvirt's
block counters over the window hold the measured job's requests and bytes only (a fill inside
the window added its 16 MiB to libvirt's count and none to fio's)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from support import e2e_env, fio_job, guests_named, scenario_toml, vbench_run

pytestmark = pytest.mark.e2e

NAME = f"fill-{uuid.uuid4().hex[:6]}"  # unique: other runs go on at the same time
FILL = fio_job(3, rw=["randwrite"], size="16m", precondition="fill")


def _run(tmp_path: Path, name: str, density: list[int] | None = None) -> dict[str, Any]:
    env = e2e_env(tmp_path)
    scenario = tmp_path / "fill.toml"
    run: dict[str, Any] = {"repetitions": 1} | ({"density": density} if density else {})
    guest = {"memory_mib": 320, "boot_timeout_s": 180}
    scenario.write_text(scenario_toml(name, FILL, guest=guest, run=run))
    _, run_dir = vbench_run(scenario, tmp_path / "reports", env)
    assert guests_named(f"vbench-{name}-") == []
    manifest: dict[str, Any] = json.loads((run_dir / "manifest.json").read_text())
    manifest["dir"] = str(run_dir)
    return manifest


def _assert_filled_then_within_5_pct(run: Path, case: dict[str, Any]) -> None:
    assert case["status"] == "ok" and case["case_id"].endswith("-fill"), case
    raw = run / "raw" / case["case_id"]
    fill = json.loads((raw / "fio.precondition.json").read_text())
    assert fill["jobs"][0]["write"]["io_bytes"] == 16 * 2**20  # the fill ran, before the window
    measured = json.loads((raw / "fio.json").read_text())
    assert [j["jobname"] for j in measured["jobs"]] == ["fio-randwrite-4k-qd4-j1-16m-fill"]
    checks = {c["name"]: c for c in case["cross_checks"]}
    assert set(checks) == {"block_requests", "block_bytes"}, checks
    for c in checks.values():
        print(
            f"\n{case['case_id']} {c['name']}: fio {c['workload']:.0f}, "
            f"libvirt {c['sampled']:.0f}, {c['disagreement_pct']:.2f} % apart"
        )
        assert c["disagreement_pct"] <= 5.0 and not c["flagged"], c
    assert case["flags"] == []


def test_fill_stays_out_of_the_block_cross_checks(tmp_path: Path) -> None:
    manifest = _run(tmp_path, NAME)
    (case,) = manifest["cases"]
    _assert_filled_then_within_5_pct(Path(manifest["dir"]), case)


def test_density_guests_fill_first_then_start_together(tmp_path: Path) -> None:
    manifest = _run(tmp_path, f"{NAME}-n2", density=[2])
    cases = {c["case_id"]: c for c in manifest["cases"]}
    slug = "fio-randwrite-4k-qd4-j1-16m-fill"
    assert set(cases) == {f"r0-pv-n2g0-{slug}", f"r0-pv-n2g1-{slug}", f"r0-pv-n2-{slug}"}
    for guest in (0, 1):
        _assert_filled_then_within_5_pct(Path(manifest["dir"]), cases[f"r0-pv-n2g{guest}-{slug}"])
    # the fills ran before the barrier: the measured jobs were released together
    assert 0 <= cases[f"r0-pv-n2-{slug}"]["start_spread_ms"] < 1000
