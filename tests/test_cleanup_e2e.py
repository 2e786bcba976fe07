"""`vbench cleanup` after a run killed with SIGKILL (no chance to clean up itself).

It must destroy that run's guest and scratch files, and leave alone a guest that merely has the
`vbench-` name prefix without vbench's metadata.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import libvirt
import pytest

from vbench.guest.microguest import build_microguest

pytestmark = pytest.mark.e2e

URI = "qemu:///system"
DECOY = "vbench-decoy-not-ours"
SCENARIO = """
format_version = 1
name = "killed"
[disk]
size_mib = 32
[[modes]]
id = "pv"
[[workloads]]
kind = "fio"
runtime_s = 60
[run]
repetitions = 1
"""


def _names() -> set[str]:
    out = subprocess.run(
        ["virsh", "-c", URI, "list", "--all", "--name"], capture_output=True, text=True, check=True
    ).stdout
    # only this test's guests (other runs may be going on at the same time)
    return {n for n in out.split() if n.startswith(("vbench-killed-", DECOY))}


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
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and not (_names() - {decoy}):
        assert proc.poll() is None, (tmp_path / "run.log").read_text()[-2000:]
        time.sleep(0.5)
    ours = _names() - {decoy}
    assert ours, f"the run started no guest within 180 s ({_names()}, {proc.poll()})"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert _names() - {decoy} == ours  # SIGKILL: the guest was left behind
    assert any(scratch.iterdir())

    dry = subprocess.run(
        [sys.executable, "-m", "vbench", "cleanup", "--dry-run"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert all(name in dry.stderr + dry.stdout for name in ours)
    assert _names() - {decoy} == ours  # a dry run changes nothing

    subprocess.run([sys.executable, "-m", "vbench", "cleanup"], env=env, check=True)
    assert _names() == {decoy}
    assert not any(scratch.iterdir())
