"""End to end: a real guest per NIC model on a tap in the run's network namespace.

The microguest boots on the real libvirtd under TCG with its NIC on a tap vbench created; the tap
is moved into `vbench-<run-id>` once the guest runs; iperf3 (both directions) and sockperf
ping-pong run in the guest through the guest agent against servers inside that namespace.  After
the network's context exits -- normally or through an exception -- no namespace, tap, server
process or guest is left.

The figures are printed (`pytest -s`) for the record; TCG figures compare the NIC models on this
machine only.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from pathlib import Path

import libvirt
import pytest
from support import qemu_reachable_dir

from vbench.domxml import AgentChannel, DomainSpec, build_domain_xml
from vbench.guest.agent import GuestAgent, open_agent
from vbench.guest.microguest import Microguest
from vbench.host.changes import ChangeJournal
from vbench.host.netns import GuestLink, RunNetwork, list_namespaces, run_hash
from vbench.model import Sample
from vbench.virt.guests import RunScratch, running_guest
from vbench.workloads.base import Target
from vbench.workloads.fio import SampleLabels
from vbench.workloads.iperf3 import Iperf3, Iperf3Spec
from vbench.workloads.sockperf import Sockperf, SockperfSpec

pytestmark = pytest.mark.e2e

BOOT_BOUND_S = 90.0
DURATION_S = 5
# Raw outputs land here when set (how tests/data/iperf3 and sockperf got their guest outputs).
RAW_DIR = os.environ.get("VBENCH_NET_RAW_DIR")


def _spec(run_id: str, guest: Microguest, link: GuestLink, nic: str, console: Path) -> DomainSpec:
    return DomainSpec(
        name=f"vbench-{run_id}-0",
        run_id=run_id,
        case=f"net-{nic}",
        domain_type="qemu",  # TCG: KVM does not work on these machines
        vcpus=1,
        memory_mib=512,
        kernel=str(guest.kernel),
        initrd=str(guest.initrd),
        cmdline=f"{guest.cmdline} {link.kernel_args}",
        console_log=str(console),
        disk_path=None,
        nic_model=nic,
        nic_tap=link.tap,
        nic_mac=link.mac,
        owner_pid=os.getpid(),
    )


def _ready_agent(dom: libvirt.virDomain) -> GuestAgent:
    agent = open_agent(dom, AgentChannel())  # the spec's default: libvirt's channel
    agent.wait_ready(BOOT_BOUND_S)
    deadline = time.monotonic() + 30
    while agent.exec(["test", "-e", "/run/vbench-ready"], timeout_s=10, check=False).exitcode:
        assert time.monotonic() < deadline, "the guest never wrote /run/vbench-ready"
        time.sleep(0.2)
    return agent


def _left_behind(conn: libvirt.virConnect, run_id: str, pids: list[int]) -> list[str]:
    """What of this run exists: its namespace, its taps (anywhere), server processes, guest."""
    left = []
    ns = f"vbench-{run_id}"
    links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
    if ns in list_namespaces():
        left.append("namespace")
        links += subprocess.run(
            ["ip", "-n", ns, "-o", "link", "show"], capture_output=True, text=True
        ).stdout
    if f"vbt{run_hash(run_id)}" in links:
        left.append("tap")
    left += ["server" for p in pids if Path(f"/proc/{p}").exists()]
    if any(d.name().startswith(f"vbench-{run_id}") for d in conn.listAllDomains(0)):
        left.append("guest")
    return left


def _labels(run_id: str, mode: str, case_id: str, kind: str, params: str) -> SampleLabels:
    return SampleLabels(run_id, case_id, mode, kind, params, 0, time.time())


@pytest.mark.parametrize(("mode", "nic"), [("fv", "e1000"), ("pv", "virtio")])
def test_iperf3_and_sockperf_over_the_modes_nic(
    mode: str, nic: str, conn: libvirt.virConnect, microguest: Microguest, tmp_path: Path
) -> None:
    run_id = f"e2e-net-{mode}-{uuid.uuid4().hex[:6]}"
    iperf3, sockperf = Iperf3(), Sockperf()
    samples: list[Sample] = []
    pids: list[int] = []
    with (
        qemu_reachable_dir("vbench-net-e2e-") as root,
        RunScratch(run_id, root=root) as scratch,
        RunNetwork(run_id, ChangeJournal(tmp_path)) as net,
        net.guest(0) as link,
    ):
        xml = build_domain_xml(_spec(run_id, microguest, link, nic, scratch.file("console.log")))
        with running_guest(conn, xml) as dom:
            net.attach(link)  # QEMU has the tap open: now it goes into the namespace
            agent = _ready_agent(dom)
            shown = agent.exec(["ip", "-o", "addr", "show"], timeout_s=10).stdout.decode()
            assert f"{link.guest_address}/30" in shown, shown
            peer = Target("guest", peer_address=str(link.host_address))
            cases = [
                *iperf3.cases(Iperf3Spec(kind="iperf3", duration_s=DURATION_S)),
                *sockperf.cases(SockperfSpec(kind="sockperf", duration_s=DURATION_S)),
            ]
            assert [c.params.get("direction") for c in cases[:2]] == ["tx", "rx"]
            for case in cases:
                workload = iperf3 if case.kind == "iperf3" else sockperf
                with net.server(workload.server_argv(case, str(link.host_address))) as server:
                    pids.append(server.pid)
                    result = agent.exec(workload.argv(case, peer), timeout_s=workload.timeout(case))
                slug = workload.slug(case)
                if RAW_DIR:
                    ext = workload.raw_name.rsplit(".", 1)[1]
                    Path(RAW_DIR, f"{nic}-{slug}-guest.{ext}").write_bytes(result.stdout)
                samples += workload.parse(
                    result.stdout, _labels(run_id, mode, slug, case.kind, case.key)
                )
    assert _left_behind(conn, run_id, pids) == []

    figures = {s.metric: s.value for s in samples}
    assert figures["tx.throughput"] > 0 and figures["rx.throughput"] > 0
    assert figures["tx.bytes"] > 0 and figures["rx.bytes"] > 0
    assert 0 < figures["rtt.p50"] <= figures["rtt.p99"] <= figures["rtt.p99.9"]
    assert figures["rtt.rate"] > 0
    rounded = {k: round(v, 1) for k, v in figures.items()}
    print(f"\nNETWORK {mode}/{nic} (TCG): {json.dumps(rounded)}")


def test_an_exception_with_a_guest_and_servers_up_leaves_nothing(
    conn: libvirt.virConnect, microguest: Microguest, tmp_path: Path
) -> None:
    run_id = f"e2e-net-exc-{uuid.uuid4().hex[:6]}"
    pids: list[int] = []
    with (
        pytest.raises(RuntimeError, match="mid-run"),
        qemu_reachable_dir("vbench-net-e2e-") as root,
        RunScratch(run_id, root=root) as scratch,
        RunNetwork(run_id, ChangeJournal(tmp_path)) as net,
        net.guest(0) as link,
    ):
        xml = build_domain_xml(
            _spec(run_id, microguest, link, "virtio", scratch.file("console.log"))
        )
        with running_guest(conn, xml):
            net.attach(link)
            bind = str(link.host_address)
            pids.append(net.start_server(["iperf3", "-s", "-B", bind]).pid)
            pids.append(net.start_server(["sockperf", "server", "-i", bind]).pid)
            everything = ["namespace", "tap", "server", "server", "guest"]
            assert _left_behind(conn, run_id, pids) == everything
            raise RuntimeError("mid-run")
    assert _left_behind(conn, run_id, pids) == []
