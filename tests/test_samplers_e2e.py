"""End to end: every sampler beside fio in a real microguest (libvirtd, TCG), into series.csv.

fio runs in the guest through its agent while the libvirt, host and guest samplers tick at 1 Hz
in their own thread; afterwards the series has values from each source, and fio's own I/O count
agrees with the block requests libvirt counted in the same window (the cross-check, <= 5 %).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import libvirt
import pytest
from support import qemu_reachable_dir

from vbench.derive import derive_case
from vbench.domxml import build_domain_xml
from vbench.guest.agent import open_agent
from vbench.guest.microguest import Microguest
from vbench.samplers import Sampling
from vbench.samplers.host import find_block_device
from vbench.samplers.sets import guest_samplers
from vbench.series import SERIES, SeriesWriter, load_series

pytestmark = pytest.mark.e2e

FIO_RUNTIME_S = 6


@pytest.fixture
def workdir() -> Iterator[Path]:
    with qemu_reachable_dir("vbench-e2e-samplers-") as d:
        yield d


def test_all_samplers_beside_fio_in_a_guest(
    conn: libvirt.virConnect, microguest: Microguest, workdir: Path, tmp_path: Path
) -> None:
    spec = microguest.domain_spec(
        f"vbench-dev-samplers-e2e-{uuid.uuid4().hex[:6]}", workdir, run_id="e2e", case="samplers"
    )
    dom = conn.createXML(build_domain_xml(spec), 0)
    try:
        agent = open_agent(dom, spec.agent)
        agent.wait_ready(60)
        device = agent.test_disk()
        block = find_block_device(workdir)
        # "lo" stands in for the guest's tap until the run has one: a real NIC's sysfs.
        samplers = guest_samplers(conn, agent, workdir, net_ifaces=["lo"])
        with SeriesWriter(tmp_path / SERIES, "e2e") as writer:
            sampling = Sampling(samplers, writer.sink("case1"), interval_s=1.0)
            with sampling:
                fio = agent.exec(
                    [
                        "fio",
                        "--name=e2e",
                        f"--filename={device}",
                        "--rw=randrw",
                        "--bs=4k",
                        "--iodepth=4",
                        "--ioengine=libaio",
                        "--direct=1",
                        "--time_based",
                        f"--runtime={FIO_RUNTIME_S}",
                        "--output-format=json",
                    ],
                    timeout_s=120,
                )
    finally:
        dom.destroy()

    report = sampling.report
    assert report.errors == {}
    assert report.ticks >= FIO_RUNTIME_S  # 1 Hz over the case, first and last tick included
    series = load_series(tmp_path)
    counts = series.groupby("source").size().to_dict()
    assert set(counts) == {"libvirt", "host", "guest"}, counts
    metrics = set(series["metric"])
    assert {"cpu.time", "block.vda.rd.reqs", "vcpu.0.time", "balloon.current"} <= set(
        series.loc[series["source"] == "libvirt", "metric"]
    )
    assert {"cpu.busy", "disk.vda.wr.reqs"} <= set(
        series.loc[series["source"] == "guest", "metric"]
    )
    assert {"cpu.busy_s", "cpu0.busy", "net.lo.rx.bytes"} <= metrics
    if block is not None:
        assert f"disk.{block.name}.wr.reqs" in metrics

    job = json.loads(fio.stdout)["jobs"][0]
    fio_ios = job["read"]["total_ios"] + job["write"]["total_ios"]
    fio_bytes = job["read"]["io_bytes"] + job["write"]["io_bytes"]
    assert fio_ios > 0
    derived = derive_case(series, workload_ios=fio_ios, workload_bytes=fio_bytes, disk="vda")
    check, moved = derived.checks
    assert (check.name, moved.name) == ("block_requests", "block_bytes")
    print(
        f"\nfio ios {fio_ios}, libvirt block reqs {check.sampled:.0f}: "
        f"{check.disagreement_pct:.2f} % apart; bytes {moved.disagreement_pct:.2f} % apart; "
        f"sampler thread CPU {report.thread_cpu_s:.3f} s "
        f"in {report.wall_s:.1f} s ({100 * report.cpu_share:.2f} % of a core); "
        + ", ".join(f"{f.metric}={f.value:.4g} {f.unit}" for f in derived.figures)
    )
    assert check.disagreement_pct <= 5.0, check
    assert moved.disagreement_pct <= 5.0, moved
    assert derived.flags == []
    for metric in ("host.qemu_cpu_per_io", "host.qemu_cpu_util", "guest.cpu_per_io"):
        value = derived.value(metric)
        assert value is not None and value > 0, metric
    # The guest's own count of requests agrees with QEMU's too.
    guest_reqs = sum(
        series.loc[(series["source"] == "guest") & (series["metric"] == f"disk.vda.{d}.reqs")]
        .sort_values("t_s")["value"]
        .pipe(lambda s: s.iloc[-1] - s.iloc[0])
        for d in ("rd", "wr")
    )
    assert guest_reqs == pytest.approx(check.sampled, rel=0.05)
