"""The Ansible collection end to end: real ansible-playbook, real ssh, three loopback "hosts".

Each host is this machine reached over ssh on its own loopback address (127.0.0.2, .3, .4: an sshd
started here with a throw-away key), with its own install prefix, so install.yml builds a wheel of
this checkout, copies it and makes a venv per host; check.yml fetches each host's check document;
run.yml runs a short scenario on every host in parallel and fetches verified evidence bundles.
Host `c` gets a scenario it cannot run and must show up as failed while `a` and `b` complete.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest
from fleet_support import loopback_hosts, write_inventory
from support import fio_job, scenario_toml

pytestmark = [pytest.mark.e2e, pytest.mark.fleet]

REPO = Path(__file__).resolve().parents[1]
PLAYBOOKS = REPO / "ansible" / "playbooks"
ANSIBLE_PLAYBOOK = Path(sys.executable).with_name("ansible-playbook")

# boot_timeout_s: two guests boot at once under TCG on a loaded 2-core machine
GUEST = {"vcpus": 1, "memory_mib": 384, "boot_timeout_s": 300.0}


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    if not ANSIBLE_PLAYBOOK.exists():
        pytest.skip("ansible-playbook is missing (pip install ansible-core: the dev extra has it)")
    if not Path("/usr/sbin/sshd").exists():
        pytest.skip("sshd is missing (apt-get install openssh-server: setup-host.sh --test has it)")
    work = tmp_path_factory.mktemp("fleet")
    good = work / "tiny.toml"
    good.write_text(scenario_toml("fleet-tiny", fio_job(2), guest=GUEST))
    bad = work / "bad.toml"  # host c: a scenario it cannot run
    pv_on_ide = {"id": "pv", "disk_bus": "ide"}
    bad.write_text(scenario_toml("fleet-tiny", fio_job(2), guest=GUEST, modes=[pv_on_ide]))
    with loopback_hosts(work / "ssh", ["a", "b", "c"]) as (hosts, key):
        inventory = write_inventory(
            work / "inventory.ini",
            hosts,
            key,
            vbench_fleet_dir=str(work / "fleet"),
            vbench_scenario=str(good),
        )
        # host c's own scenario (a host variable wins over the group's)
        text = inventory.read_text().replace(
            f"vbench_prefix={hosts[2].prefix}",
            f"vbench_prefix={hosts[2].prefix} vbench_scenario={bad}",
        )
        inventory.write_text(text)
        yield {"work": work, "inventory": inventory, "fleet": work / "fleet"}


def playbook(fleet: dict[str, Path], name: str, *extra: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ANSIBLE_HOST_KEY_CHECKING": "False", "ANSIBLE_NOCOLOR": "1"}
    return subprocess.run(
        [
            str(ANSIBLE_PLAYBOOK),
            "-i",
            str(fleet["inventory"]),
            str(PLAYBOOKS / f"{name}.yml"),
            *extra,
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=1800,
        check=False,
    )


def _only_run_dir(fleet_dir: Path, playbook_name: str) -> Path:
    runs = [
        d
        for d in fleet_dir.iterdir()
        if (d / "fleet-status.json").is_file()
        and json.loads((d / "fleet-status.json").read_text())["playbook"] == playbook_name
    ]
    assert len(runs) == 1, runs
    return runs[0]


def _case_errors(host_dir: Path) -> list[str]:
    """What failed in a host's run, from its bundle's manifest (for the assertion message)."""
    bundle = host_dir / "bundle.tar.gz"
    if not bundle.is_file():
        return [f"no bundle: {sorted(p.name for p in host_dir.iterdir())}"]
    with tarfile.open(bundle) as tar:
        name = next(n for n in tar.getnames() if n.endswith("/manifest.json"))
        handle = tar.extractfile(name)
        assert handle is not None
        manifest = json.loads(handle.read())
    return [
        f"{r.get('case_id') or r.get('mode')}: {r.get('error')}"
        for r in manifest["trials"] + manifest["cases"]
        if r.get("error")
    ]


def test_install_check_run_and_fleet_report(fleet: dict[str, Path]) -> None:
    install = playbook(fleet, "install")
    assert install.returncode == 0, install.stdout[-3000:]
    for host in ("a", "b", "c"):
        vbench = fleet["work"] / "ssh" / "hosts" / host / "venv" / "bin" / "vbench"
        assert subprocess.run([str(vbench), "--version"], check=False).returncode == 0

    check = playbook(fleet, "check")
    assert check.returncode == 0, check.stdout[-3000:]
    check_dir = _only_run_dir(fleet["fleet"], "check")
    for host in ("a", "b", "c"):
        doc = json.loads((check_dir / host / "check.json").read_text())
        assert doc["kind"] == "vbench.check"
        assert (check_dir / host / "check.junit.xml").read_text().startswith("<?xml")

    run = playbook(fleet, "run")
    # host c failed: the play says so and exits non-zero, the others completed
    assert run.returncode != 0
    assert "c: failed" in run.stdout
    # parallel by default: the hosts' task results interleave
    hosts = re.findall(r"^(?:ok|changed|fatal|failed|skipping): \[([abc])\]", run.stdout, re.M)
    assert hosts != sorted(hosts), hosts
    run_dir = _only_run_dir(fleet["fleet"], "run")
    status = json.loads((run_dir / "fleet-status.json").read_text())["hosts"]
    for host in ("a", "b"):
        assert status[host]["status"] == "ok", (status, _case_errors(run_dir / host))
    assert status["c"]["status"] == "failed"
    assert "Run the scenario" in status["c"]["reason"] and "disk_bus" in status["c"]["reason"]
    for host in ("a", "b"):
        bundle = run_dir / host / "bundle.tar.gz"
        with tarfile.open(bundle) as tar:
            assert any(n.endswith("SHA256SUMS") for n in tar.getnames())
            assert any(n.endswith("/report.html") for n in tar.getnames())
        verify = subprocess.run(
            [sys.executable, "-m", "vbench", "bundle", "--verify", str(bundle)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert verify.returncode == 0, verify.stdout + verify.stderr
    assert (run_dir / "c" / "FAILED").is_file()
    assert not (run_dir / "c" / "bundle.tar.gz").exists()

    # the fleet report over every host, the failed one included
    out = fleet["work"] / "fleet-report"
    junit = fleet["work"] / "fleet.junit.xml"
    report = subprocess.run(
        [
            *(sys.executable, "-m", "vbench", "fleet", "report", str(fleet["fleet"])),
            *("-o", str(out), "--junit", str(junit), "--check"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert report.returncode == 2, report.stderr  # c failed
    assert "needing attention: c" in report.stderr
    html = " ".join((out / "fleet-report.html").read_text().split())
    for host in ("a", "b", "c"):
        assert f">{host}<" in html
    assert "1 host failed" in html and "disk_bus" in html
    assert "ran the same scenario; each is compared with" in html
    assert (out / "fleet-report.pdf").read_bytes().startswith(b"%PDF")
    suites = {s.get("hostname"): s for s in ET.parse(junit).getroot().iter("testsuite")}
    assert sorted(suites) == ["a", "b", "c"]
    assert suites["a"].get("failures") == "0" and suites["c"].get("failures") != "0"


def test_serial_runs_one_host_at_a_time(fleet: dict[str, Path]) -> None:
    """-e vbench_serial=1: each host's tasks all finish before the next host starts (a scenario
    every host refuses at once keeps this quick)."""
    if not (fleet["work"] / "ssh" / "hosts" / "c" / "venv").is_dir():
        pytest.skip("needs the install of test_install_check_run_and_fleet_report")
    serial = fleet["work"] / "fleet-serial"
    bad = fleet["work"] / "bad.toml"
    run = playbook(
        fleet,
        "run",
        *("-e", f"vbench_serial=1 vbench_scenario={bad} vbench_fleet_dir={serial}"),
    )
    assert run.returncode != 0
    hosts = re.findall(r"^(?:ok|changed|fatal|failed|skipping): \[([abc])\]", run.stdout, re.M)
    assert hosts == sorted(hosts) and set(hosts) == {"a", "b", "c"}, hosts
    (run_dir,) = list(serial.iterdir())
    status = json.loads((run_dir / "fleet-status.json").read_text())["hosts"]
    assert {h: s["status"] for h, s in status.items()} == dict.fromkeys("abc", "failed")
    shutil.rmtree(fleet["work"] / "ssh" / "hosts", ignore_errors=True)
