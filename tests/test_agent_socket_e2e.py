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
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import libvirt
import libvirt_qemu
import pytest
from support import qemu_reachable_dir

from vbench.domxml import VBENCH_AGENT_NAME, AgentChannel, DomainSpec, build_domain_xml
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
    disk = workdir / "disk.raw"
    with disk.open("wb") as fh:
        fh.truncate(64 * 2**20)
    spec = DomainSpec(
        name=f"vbench-e2e-agent-socket-{uuid.uuid4().hex[:6]}",
        run_id="e2e-agent-socket",
        case="agent-socket",
        domain_type="qemu",  # TCG: KVM does not work on these machines
        vcpus=1,
        memory_mib=512,
        kernel=str(microguest.kernel),
        initrd=str(microguest.initrd),
        cmdline=microguest.cmdline,
        console_log=str(workdir / "console.log"),
        disk_path=str(disk),
        disk_bus="virtio",
        nic_model=None,
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
