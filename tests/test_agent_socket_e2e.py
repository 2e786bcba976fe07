"""End to end: vbench's own agent transport to a real guest, as on Xen, but under the QEMU driver.

No Xen host here, so the path libxl needs is proven where it can be: the microguest gets a unix
channel libvirt's QEMU driver does NOT connect to itself (virtio `org.vbench.agent.0`; libvirt
grabs only `org.qemu.guest_agent.0`), its /init starts qemu-ga on the port the kernel command line
names (`vbench.agent=/dev/virtio-ports/org.vbench.agent.0`, what `vbench.agent=/dev/hvc1` is on
Xen), and vbench's socket transport pings it, runs commands, reads the guest sampler's counters
and rides out the agent's restart.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import libvirt
import libvirt_qemu
import pytest
from support import guests_named, qemu_reachable_dir

from vbench.domxml import (
    QEMU_AGENT_NAME,
    VBENCH_AGENT_NAME,
    AgentChannel,
    build_domain_xml,
)
from vbench.guest.agent import open_agent
from vbench.guest.microguest import Microguest
from vbench.samplers.guest import GuestSampler
from vbench.virt.guests import running_guest

pytestmark = pytest.mark.e2e

BOOT_BOUND_S = 180.0  # TCG on a loaded 2-core machine


@pytest.fixture
def workdir() -> Iterator[Path]:
    with qemu_reachable_dir("vbench-agent-sock-") as d:  # short: a socket path has <= 107 bytes
        yield d


def test_socket_transport_drives_a_real_guest(
    conn: libvirt.virConnect, microguest: Microguest, workdir: Path
) -> None:
    spec = microguest.domain_spec(
        f"vbench-e2e-agent-socket-{uuid.uuid4().hex[:6]}",
        workdir,
        run_id="e2e-agent-socket",
        case="agent-socket",
        agent=AgentChannel(name=VBENCH_AGENT_NAME, socket=str(workdir / "agent.sock")),
    )
    xml = build_domain_xml(spec)
    with running_guest(conn, xml) as dom, open_agent(dom, spec.agent) as agent:
        live = ET.fromstring(dom.XMLDesc(0))
        channel = live.find("devices/channel/target")
        assert channel is not None and channel.get("name") == VBENCH_AGENT_NAME
        # libvirt has no agent for this guest: whatever answers below came over vbench's socket
        with pytest.raises(libvirt.libvirtError):
            libvirt_qemu.qemuAgentCommand(dom, '{"execute": "guest-ping"}', 5, 0)

        booted = agent.wait_ready(BOOT_BOUND_S)
        assert 0 < booted < BOOT_BOUND_S
        assert agent.command("guest-ping") == {}

        cmdline = agent.exec(["cat", "/proc/cmdline"], timeout_s=30).stdout.decode()
        assert f"vbench.agent=/dev/virtio-ports/{VBENCH_AGENT_NAME}" in cmdline
        assert agent.test_disk() == "/dev/vda"
        # Xen's frontends stay unloaded off Xen (no xenbus): they cost a QEMU guest nothing
        assert b"xen_blkfront" not in agent.exec(["cat", "/proc/modules"], timeout_s=30).stdout
        fio = agent.exec(
            [
                "fio",
                "--name=e2e",
                "--filename=/dev/vda",
                "--rw=randread",
                "--bs=4k",
                "--direct=1",
                "--ioengine=libaio",
                "--size=8M",
                "--output-format=json",
            ],
            timeout_s=120,
        )
        assert json.loads(fio.stdout)["jobs"][0]["read"]["io_bytes"] > 0

        values = {v.metric: v.value for v in GuestSampler(agent).sample()}
        assert values["cpu.busy"] > 0
        assert values["disk.vda.rd.reqs"] > 0  # fio's reads, counted inside the guest

        # The agent restarts (as after a guest reboot): /init respawns it, the transport resyncs.
        before = agent.exec(["pidof", "qemu-ga"], timeout_s=30).stdout.split()
        agent.command("guest-exec", {"path": "sh", "arg": ["-c", "sleep 1; killall qemu-ga"]})
        time.sleep(3)
        agent.wait_ready(60)
        after = agent.exec(["pidof", "qemu-ga"], timeout_s=30).stdout.split()
        assert before and after and before != after
        assert agent.exec(["echo", "again"], timeout_s=30).stdout == b"again\n"


@pytest.mark.parametrize("transport", ["socket", "libvirt"])
def test_vbench_run_drives_its_guest_over_either_transport(tmp_path: Path, transport: str) -> None:
    """The whole runner (boot wait, I/O target, fio, the guest sampler) over vbench's own agent
    channel, as on libvirt's libxl driver (VBENCH_AGENT=socket under QEMU), and over libvirt's:
    one code path above the transport."""
    import pandas as pd

    name = f"agsock-{uuid.uuid4().hex[:6]}"
    scenario = tmp_path / "s.toml"
    scenario.write_text(
        f'format_version = 1\nname = "{name}"\n[guest]\nmemory_mib = 384\nboot_timeout_s = 180\n'
        '[disk]\nsize_mib = 64\n[[modes]]\nid = "pv"\n[[workloads]]\nkind = "fio"\n'
        'rw = ["randread"]\nbs = ["4k"]\niodepth = [8]\nruntime_s = 3\n[run]\nrepetitions = 1\n'
    )
    # short: the agent's socket lives in the scratch directory (a unix path has <= 107 bytes)
    scratch = Path("/var/lib/vbench") / f"ts-{uuid.uuid4().hex[:6]}"
    env = dict(os.environ, VBENCH_AGENT=transport, VBENCH_SCRATCH=str(scratch))
    out = tmp_path / "out"
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "vbench", "run", str(scenario), "-o", str(out), "--no-report"],
            capture_output=True, text=True, env=env, timeout=900, check=False,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr[-3000:]
        (run,) = out.iterdir()
        manifest = json.loads((run / "manifest.json").read_text())
        assert manifest["status"] == "complete"
        assert [c["status"] for c in manifest["cases"]] == ["ok"]
        domain = ET.parse(run / "raw" / "r0-pv" / "domain.xml").getroot()
        target = domain.find("devices/channel/target")
        own = VBENCH_AGENT_NAME if transport == "socket" else QEMU_AGENT_NAME
        assert target is not None and target.get("name") == own
        series = pd.read_csv(run / "series.csv")
        guest = series[series["source"] == "guest"]  # the guest sampler, over the socket
        assert not guest.empty and (guest[guest["metric"] == "cpu.busy"]["value"] > 0).all()
        samples = pd.read_csv(run / "samples.csv")
        assert (samples[samples["metric"] == "read.iops"]["value"] > 0).all()
        assert not samples[samples["metric"] == "read.iops"].empty
        assert not guests_named(f"vbench-{name}-")
        assert not scratch.exists() or not any(scratch.iterdir())
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
