"""Per-driver choices (vbench.virt.driver); `vbench run -c xen:///system` from a host without Xen.

This host has no libvirt libxl driver, so `xen:///system` is unreachable here, as it is on any
machine that only prepares a run for a Xen host: a dry run plans for libxl from the URI and writes
the Xen domain XML (with vbench's agent channel), a real run stops with one line.
"""

from __future__ import annotations

import json
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from support import bed
from support import vbench_cli as _vbench

from vbench.domxml import QEMU_AGENT_NAME, VBENCH_AGENT_NAME, AgentChannel, DomainSpec
from vbench.errors import HostError
from vbench.model import Accelerator
from vbench.virt.driver import LIBXL, QEMU, driver_for_uri, driver_of

ROOT = Path(__file__).resolve().parent.parent
DOMAIN_RNG = Path("/usr/share/libvirt/schemas/domain.rng")


@pytest.mark.parametrize(
    ("uri", "driver"),
    [
        ("xen:///system", LIBXL),
        ("xen+ssh://root@dom0/system", LIBXL),
        ("qemu:///system", QEMU),
        ("qemu+ssh://h/system", QEMU),
        ("test:///default", QEMU),
    ],
)
def test_the_uri_names_the_driver(uri: str, driver: object) -> None:
    assert driver_for_uri(uri) == driver


@pytest.mark.libvirt_test
def test_an_open_connection_names_its_driver() -> None:
    libvirt: Any = pytest.importorskip("libvirt")
    conn = libvirt.open("test:///default")
    try:
        assert driver_of(conn) == QEMU  # the test driver stands in for QEMU
    finally:
        conn.close()


def test_per_driver_choices() -> None:
    # QEMU: the probe decides kvm or qemu; libvirt's own agent channel, no socket
    assert QEMU.accelerator is None and QEMU.hypervisor == "kvm"
    assert QEMU.domain_type(Accelerator.KVM) == "kvm"
    assert QEMU.domain_type(Accelerator.TCG) == QEMU.domain_type(None) == "qemu"
    assert QEMU.agent_channel(Path("/x/a.agent")) == AgentChannel()
    assert AgentChannel().kernel_arg == ""  # /init's default port
    # libxl: Xen, no probe; a Xen channel on a socket vbench connects to, hvc1 in the guest
    assert LIBXL.accelerator is Accelerator.XEN and LIBXL.hypervisor == "xen"
    assert LIBXL.domain_type(None) == Accelerator.XEN.libvirt_domain_type == "xen"
    channel = LIBXL.agent_channel(Path("/var/lib/vbench/scratch/r/r0-pv.agent"))
    assert (channel.target, channel.name) == ("xen", QEMU_AGENT_NAME)
    assert channel.socket == "/var/lib/vbench/scratch/r/r0-pv.agent"
    assert channel.kernel_arg == "vbench.agent=/dev/hvc1"


def test_vbench_agent_socket_gives_a_qemu_guest_vbenchs_own_channel(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("VBENCH_AGENT", "socket")
    channel = QEMU.agent_channel(Path("/s/r0-pv.agent"))
    assert channel == AgentChannel(name=VBENCH_AGENT_NAME, socket="/s/r0-pv.agent")
    assert channel.kernel_arg == f"vbench.agent=/dev/virtio-ports/{VBENCH_AGENT_NAME}"
    assert LIBXL.agent_channel(Path("/s/a")).target == "xen"  # Xen's stays Xen's


def test_a_socket_path_too_long_for_unix_is_one_line_with_the_fix() -> None:
    with pytest.raises(HostError, match="set VBENCH_SCRATCH to a shorter directory") as exc:
        LIBXL.agent_channel(Path("/var/lib/" + "x" * 100 + "/r0-pv.agent"))
    assert "\n" not in str(exc.value)


@pytest.mark.parametrize(
    ("channel", "message"),
    [
        ({"socket": "/run/a.sock"}, "connects to org.qemu.guest_agent.0 itself"),
        ({"target": "xen"}, "only libvirt's own agent channel"),
        ({"name": VBENCH_AGENT_NAME}, "only libvirt's own agent channel"),
        ({"name": "x", "socket": "relative.sock"}, "absolute path"),
        ({"target": "vmci", "socket": "/a"}, "virtio or xen"),
    ],
)
def test_agent_channel_refusals(channel: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        AgentChannel(**channel)


def test_a_xen_guest_needs_a_xen_channel_and_only_it() -> None:
    spec = {
        "name": "vbench-x",
        "run_id": "r",
        "case": "c",
        "vcpus": 1,
        "memory_mib": 256,
        "kernel": "/k",
        "initrd": "/i",
        "cmdline": "",
        "console_log": "/c",
    }
    with pytest.raises(ValueError, match="agent channel is a xen one"):
        DomainSpec(domain_type="xen", **spec)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="agent channel is a xen one"):
        DomainSpec(domain_type="qemu", agent=LIBXL.agent_channel(Path("/a")), **spec)  # type: ignore[arg-type]


@pytest.mark.libvirt_test
def test_dry_run_for_a_xen_host_from_here_writes_xen_xml_with_the_agent_channel(
    tmp_path: Path,
) -> None:
    proc = _vbench(
        "run", str(ROOT / "scenarios" / "io-modes.toml"), "--dry-run", "--prepare-host",
        "--testbed", str(bed("lab-iommu-sriov")), "-o", str(tmp_path), "-c", "xen:///system",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "cannot connect to libvirt at xen:///system" in proc.stderr
    assert "plans for libvirt's libxl driver without it" in proc.stderr
    (out,) = tmp_path.iterdir()
    modes = {m["mode"]: m for m in json.loads((out / "dry-run.json").read_text())["modes"]}
    # the scenario's fv has a SATA disk, which a Xen HVM guest does not get (its provider says so)
    assert modes["fv"]["status"] == "skipped" and "IDE" in modes["fv"]["reason"]
    planned = [m for m, e in modes.items() if e["status"] == "planned"]
    assert planned == ["pv", "vfio", "sriov"]
    for mode in planned:
        path = out / "raw" / f"r0-{mode}" / "domain.xml"
        root = ET.parse(path).getroot()
        assert root.get("type") == "xen"
        cmdline = root.findtext("os/cmdline") or ""
        assert cmdline.endswith("vbench.agent=/dev/hvc1")
        channel = root.find("devices/channel")
        assert channel is not None and channel.get("type") == "unix"
        assert channel.find("target").attrib == {"type": "xen", "name": QEMU_AGENT_NAME}  # type: ignore[union-attr]
        assert channel.find("source").get("path", "").endswith(f"/r0-{mode}.agent")  # type: ignore[union-attr]
        if DOMAIN_RNG.exists():
            res = subprocess.run(
                ["xmllint", "--noout", "--relaxng", str(DOMAIN_RNG), str(path)],
                capture_output=True, text=True, check=False,
            )  # fmt: skip
            assert res.returncode == 0, res.stderr
    hostdev = ET.parse(out / "raw/r0-vfio/domain.xml").getroot().find("devices/hostdev/driver")
    assert hostdev is not None and hostdev.get("name") == "xen"  # pciback, not VFIO
    # libvirt's parser takes each one, channel and all (its test driver; no Xen here)
    libvirt: Any = pytest.importorskip("libvirt")
    conn = libvirt.open("test:///default")
    try:
        for mode in planned:
            dom = conn.createXML((out / "raw" / f"r0-{mode}" / "domain.xml").read_text(), 0)
            live = ET.fromstring(dom.XMLDesc(0)).find("devices/channel/target")
            assert live is not None and live.get("type") == "xen"
            dom.destroy()
    finally:
        conn.close()


def test_a_run_on_an_unreachable_xen_is_one_line(tmp_path: Path) -> None:
    scenario = tmp_path / "s.toml"
    scenario.write_text(
        'format_version = 1\nname = "xen-unreachable"\n[[modes]]\nid = "pv"\n'
        '[[workloads]]\nkind = "fio"\n[run]\nrepetitions = 1\n'
    )
    proc = _vbench("run", str(scenario), "-c", "xen:///system", "-o", str(tmp_path / "out"))
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr
    assert "xen:///system" in lines[0] and "libxl" in lines[0]
    assert not (tmp_path / "out").exists()


def test_the_report_names_xen_as_the_accelerator(tmp_path: Path) -> None:
    """A run on libvirt's libxl driver: the manifest's accelerator is xen, and the report says
    so (no TCG warning)."""
    from test_report import _make_run, _text

    from vbench.report import build_report
    from vbench.report.render import TCG_WARNING
    from vbench.results import Accel, RunDir

    run_path, _ = _make_run(tmp_path)
    run = RunDir(run_path)
    manifest = run.read_manifest()
    reason = "libvirt's libxl driver: Xen runs the guests (no KVM probe)"
    manifest.accelerator = Accel(name=Accelerator.XEN.value, reason=reason)
    run.write_manifest(manifest)
    text = _text(build_report(run_path, pdf=False).html.read_text())
    assert "accelerator XEN" in text
    assert TCG_WARNING not in text
