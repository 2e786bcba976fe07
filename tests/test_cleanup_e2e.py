"""`vbench cleanup` after a run killed with SIGKILL (no chance to clean up itself).

It must destroy that run's guest, network namespace, taps, peer servers and scratch files, and
leave alone a guest that merely has the `vbench-` name prefix without vbench's metadata.  The
namespace and the taps go by the run's host-change journal (`-o` names the runs' directory).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import libvirt
import pytest
from support import guests_named, run_taps, scenario_toml

from vbench.guest.microguest import build_microguest
from vbench.host.netns import run_hash

pytestmark = pytest.mark.e2e

URI = "qemu:///system"
DECOY = "vbench-decoy-not-ours"
NAME = f"killed-{uuid.uuid4().hex[:6]}"  # other runs may go on at the same time
IPERF3 = {"kind": "iperf3", "direction": ["tx"], "duration_s": 120}
SCENARIO = scenario_toml(NAME, IPERF3, guest={"boot_timeout_s": 180})


def _names() -> set[str]:
    return set(guests_named(f"vbench-{NAME}-", DECOY))


def _namespaces() -> set[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return {line.split()[0] for line in out.splitlines() if line.startswith(f"vbench-{NAME}-")}


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


@pytest.fixture
def decoy() -> Iterator[str]:
    """A running guest named vbench-* but without vbench's metadata: not ours to touch."""
    guest = build_microguest()
    xml = f"""<domain type='qemu'><name>{DECOY}</name><memory unit='MiB'>128</memory>
      <os><type arch='x86_64' machine='pc'>hvm</type><kernel>{guest.kernel}</kernel>
      <initrd>{guest.initrd}</initrd><cmdline>{guest.cmdline}</cmdline></os>
      <devices><memballoon model='none'/></devices></domain>"""
    conn = libvirt.open(URI)
    dom = conn.createXML(xml, 0)
    try:
        yield DECOY
    finally:
        with contextlib.suppress(libvirt.libvirtError):
            dom.destroy()
        conn.close()


def test_cleanup_after_sigkill(tmp_path: Path, decoy: str) -> None:
    scratch = Path("/var/lib/vbench/test-scratch") / tmp_path.name  # QEMU must reach it
    env = dict(os.environ, VBENCH_SCRATCH=str(scratch))
    scenario = tmp_path / "killed.toml"
    scenario.write_text(SCENARIO)
    proc = subprocess.Popen(
        [sys.executable, "-m", "vbench", "run", str(scenario), "-o", str(tmp_path / "out")],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=(tmp_path / "run.log").open("w"),
    )
    # wait for the guest and its peer server (the case is running), then kill -9
    deadline = time.monotonic() + 300
    servers: set[int] = set()
    while time.monotonic() < deadline and not (_names() - {decoy} and servers):
        assert proc.poll() is None, (tmp_path / "run.log").read_text()[-2000:]
        servers = {p for ns in _namespaces() for p in _servers(ns)}
        time.sleep(0.3)
    ours = _names() - {decoy}
    assert ours and servers, f"no guest with a server within 300 s ({_names()}, {proc.poll()})"
    [namespace] = _namespaces()
    run_id = namespace.removeprefix("vbench-")
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    # SIGKILL: the guest, the namespace with its tap, the server and the scratch files stay
    assert _names() - {decoy} == ours
    assert _namespaces() == {namespace} and run_taps(run_id)
    assert all(_alive(p) for p in servers)
    assert any(scratch.iterdir())

    out = tmp_path / "out"
    dry = subprocess.run(
        [sys.executable, "-m", "vbench", "cleanup", "--dry-run", "-o", str(out)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert all(name in dry.stderr + dry.stdout for name in ours)
    said = dry.stderr + dry.stdout
    assert f"would undo: create network namespace {namespace}" in said
    assert f"would undo: create tap vbt{run_hash(run_id)}0 (guest 0)" in said
    assert f"would remove namespace {namespace}" not in said  # the journal's, listed once
    assert _names() - {decoy} == ours  # a dry run changes nothing
    assert _namespaces() == {namespace}

    subprocess.run([sys.executable, "-m", "vbench", "cleanup", "-o", str(out)], env=env, check=True)
    assert _names() == {decoy}
    assert _namespaces() == set() and run_taps(run_id) == []
    assert not any(_alive(p) for p in servers)
    assert not any(scratch.iterdir())
    journal = json.loads((out / run_id / "host-changes.json").read_text())["changes"]
    assert [(c["kind"], c["state"]) for c in journal] == [
        ("netns", "restored"),
        ("tap", "restored"),
    ]
