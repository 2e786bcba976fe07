"""Derived figures and cross-checks: known answers over small series."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from vbench.derive import CrossCheck, delta, derive_case
from vbench.series import SERIES_COLUMNS

Row = tuple[str, str, float, float, str]  # source, metric, t_s, value, unit


def frame(rows: list[Row]) -> pd.DataFrame:
    return pd.DataFrame([("run", "case", *r) for r in rows], columns=list(SERIES_COLUMNS)).astype(
        {"t_s": float, "value": float}
    )


def guest_case(*, reqs: float = 10_000, cpu_ns: float = 2e9, window: float = 10.0) -> pd.DataFrame:
    """A 10 s case: 3 ticks of libvirt, guest and host counters (the middle one is noise)."""
    rows: list[Row] = []
    for t, k in ((0.0, 0.0), (5.0, 0.3), (window, 1.0)):
        rows += [
            ("libvirt", "cpu.time", t, 5e9 + k * cpu_ns, "ns"),
            ("libvirt", "block.vda.rd.reqs", t, 100 + k * reqs * 0.75, "count"),
            ("libvirt", "block.vda.wr.reqs", t, 50 + k * reqs * 0.25, "count"),
            ("libvirt", "block.vda.rd.bytes", t, 1e6 + k * 0.75e9, "B"),
            ("libvirt", "block.vda.wr.bytes", t, 1e6 + k * 0.25e9, "B"),
            ("guest", "cpu.busy", t, 1000 + k * 3000, "ms"),
            ("guest", "cpu.idle", t, 500 + k * 7000, "ms"),
            ("host", "cpu.busy_s", t, 400 + k * 5, "s"),
            ("host", "cpu.total_s", t, 900 + k * 20, "s"),
        ]
    return frame(rows)


def test_figures_of_a_guest_case() -> None:
    d = derive_case(guest_case(), workload_ios=10_100)
    assert d.value("host.qemu_cpu_util") == pytest.approx(20.0)  # 2 s of CPU in 10 s
    assert d.value("host.qemu_cpu_per_io") == pytest.approx(200.0)  # 2 s / 10k requests
    assert d.value("host.qemu_cpu_per_gb") == pytest.approx(2.0)  # 2 s / 1 GB
    assert d.value("guest.disk_reqs") == pytest.approx(10_000)
    assert d.value("guest.cpu_per_io") == pytest.approx(300.0)  # 3000 ms / 10k
    assert d.value("guest.cpu_busy") == pytest.approx(30.0)
    assert d.value("host.cpu_busy") == pytest.approx(25.0)
    assert d.value("host.exits_per_io") is None  # no KVM counters (TCG): left out, not zero
    units = {f.metric: f.unit for f in d.figures}
    assert units["host.qemu_cpu_per_io"] == "us" and units["host.qemu_cpu_per_gb"] == "s/GB"
    [check] = d.checks
    assert check.name == "block_requests" and check.sampled == pytest.approx(10_000)
    assert check.disagreement_pct == pytest.approx(100 / 101)
    assert d.flags == []


def test_block_cross_check_flags_over_five_percent() -> None:
    d = derive_case(guest_case(), workload_ios=9_500)  # libvirt saw 10 000: 5.26 % more
    assert d.flags == ["block_requests"]
    assert derive_case(guest_case(), workload_ios=9_524).flags == []  # 4.998 %


def test_requests_split_by_the_guest_are_explained_by_the_bytes() -> None:
    """Measured on an emulated SATA disk: fio's 622 reads of 1 MiB reached QEMU as 4976 requests
    (8 x 128 KiB) and libvirt counted the same 652214272 bytes as fio."""
    series = frame(
        [
            ("libvirt", "block.sda.rd.reqs", 0.0, 10, "count"),
            ("libvirt", "block.sda.rd.reqs", 4.0, 10 + 4976, "count"),
            ("libvirt", "block.sda.rd.bytes", 0.0, 40960, "B"),
            ("libvirt", "block.sda.rd.bytes", 4.0, 40960 + 652214272, "B"),
        ]
    )
    d = derive_case(series, workload_ios=622, workload_bytes=652214272)
    reqs, moved = d.checks
    assert (reqs.name, moved.name) == ("block_requests", "block_bytes")
    assert reqs.disagreement_pct == pytest.approx(700.0)
    assert reqs.explained_by is not None and "8.00 device requests per I/O" in reqs.explained_by
    assert moved.disagreement_pct == 0.0
    assert d.flags == []
    # Without the bytes nothing explains it: flagged.
    assert derive_case(series, workload_ios=622).flags == ["block_requests"]
    # Bytes that disagree too: both flagged.
    wrong = derive_case(series, workload_ios=622, workload_bytes=600_000_000)
    assert wrong.flags == ["block_requests", "block_bytes"]
    # Fewer requests than the workload's is never a split.
    fewer = derive_case(series, workload_ios=6000, workload_bytes=652214272)
    assert fewer.flags == ["block_requests"]


def test_the_figures_metrics_cost_gave_on_known_counters() -> None:
    """The four figures of the old before/after snapshots, same names and units, known answers."""
    series = frame(
        [
            ("libvirt", "cpu.time", 0.0, 5_000_000_000, "ns"),
            ("libvirt", "cpu.time", 10.0, 7_000_000_000, "ns"),  # 2 s of QEMU CPU in 10 s
            ("libvirt", "block.sda.rd.reqs", 0.0, 100, "count"),
            ("libvirt", "block.sda.rd.reqs", 10.0, 7_600, "count"),
            ("libvirt", "block.sda.wr.reqs", 0.0, 50, "count"),
            ("libvirt", "block.sda.wr.reqs", 10.0, 2_550, "count"),  # 10 000 requests in all
            ("host", "cpu.busy_s", 0.0, 400.0, "s"),
            ("host", "cpu.busy_s", 10.0, 405.0, "s"),
            ("host", "cpu.total_s", 0.0, 900.0, "s"),
            ("host", "cpu.total_s", 10.0, 920.0, "s"),
        ]
    )
    got = {f.metric: (f.value, f.unit) for f in derive_case(series).figures}
    assert got == {
        "host.qemu_cpu_util": (pytest.approx(20.0), "%"),
        "host.qemu_cpu_per_io": (pytest.approx(200.0), "us"),
        "guest.disk_reqs": (pytest.approx(10_000), "count"),
        "host.cpu_busy": (pytest.approx(25.0), "%"),
    }


def test_bare_metal_case_has_only_host_figures() -> None:
    series = guest_case()
    d = derive_case(series[series["source"] == "host"], workload_ios=10_000)
    assert [f.metric for f in d.figures] == ["host.cpu_busy"]
    assert d.checks == []  # nothing of libvirt's to check against


def test_exits_per_io_where_kvm_counts_them() -> None:
    series = pd.concat(
        [
            guest_case(),
            frame(
                [
                    ("libvirt", "vcpu.0.exits", 0.0, 1_000, "count"),
                    ("libvirt", "vcpu.0.exits", 10.0, 31_000, "count"),
                    ("libvirt", "vcpu.1.exits", 0.0, 0, "count"),
                    ("libvirt", "vcpu.1.exits", 10.0, 20_000, "count"),
                ]
            ),
        ]
    )
    assert derive_case(series).value("host.exits_per_io") == pytest.approx(5.0)


def test_disk_filter_and_single_reading() -> None:
    series = pd.concat(
        [
            guest_case(),
            frame(
                [
                    ("libvirt", "block.sdb.rd.reqs", 0.0, 0, "count"),
                    ("libvirt", "block.sdb.rd.reqs", 10.0, 99_999, "count"),
                    ("libvirt", "block.hdc.rd.reqs", 3.0, 7, "count"),  # one reading: no delta
                ]
            ),
        ]
    )
    assert derive_case(series, disk="vda").value("guest.disk_reqs") == pytest.approx(10_000)
    assert derive_case(series).value("guest.disk_reqs") == pytest.approx(109_999)
    assert delta(series, "libvirt", "block.hdc.rd.reqs") is None


def test_net_cross_check_counts_payload_in_the_guests_direction() -> None:
    # iperf3 in the guest sent 1 GB; the tap saw 1 GB + 66 B headers on each of 20 000 frames.
    payload = 1_000_000_000
    pkts = 20_000
    series = frame(
        [
            ("libvirt", "net.vnet3.tx.bytes", 0.0, 0, "B"),
            ("libvirt", "net.vnet3.tx.bytes", 10.0, payload + 66 * pkts, "B"),
            ("libvirt", "net.vnet3.tx.pkts", 0.0, 0, "count"),
            ("libvirt", "net.vnet3.tx.pkts", 10.0, pkts, "count"),
            ("libvirt", "net.vnet3.rx.bytes", 0.0, 0, "B"),
            ("libvirt", "net.vnet3.rx.bytes", 10.0, 2_000_000, "B"),  # the ACKs
        ]
    )
    ok = derive_case(series, workload_net_bytes={"tx": payload})
    [check] = ok.checks
    assert check.name == "net_bytes_tx" and check.disagreement_pct == pytest.approx(0.0)
    assert ok.flags == []
    wrong_way = derive_case(series, workload_net_bytes={"rx": payload})
    assert wrong_way.flags == ["net_bytes_rx"]


def test_net_cross_check_from_the_taps_own_counters_when_libvirt_lost_it() -> None:
    # The tap moved into the run's namespace: libvirt names it but has no counters; the host's
    # sampler read the tap in the namespace (its rx is what the guest sent).
    payload, pkts = 500_000_000, 10_000
    series = frame(
        [
            ("host", "net.vbt1.rx.bytes", 0.0, 0, "B"),
            ("host", "net.vbt1.rx.bytes", 5.0, payload + 66 * pkts, "B"),
            ("host", "net.vbt1.rx.pkts", 0.0, 0, "count"),
            ("host", "net.vbt1.rx.pkts", 5.0, pkts, "count"),
            ("host", "net.vbt1.tx.bytes", 0.0, 0, "B"),
            ("host", "net.vbt1.tx.bytes", 5.0, 1_000_000, "B"),
        ]
    )
    d = derive_case(series, workload_net_bytes={"tx": payload * 1.01}, iface="vbt1")
    [check] = d.checks
    assert check.name == "net_bytes_tx"
    assert check.disagreement_pct == pytest.approx(100 * (1 - 1 / 1.01))
    assert d.flags == []
    assert derive_case(series, workload_net_bytes={"rx": payload}, iface="vbt1").flags == [
        "net_bytes_rx"
    ]
    assert derive_case(series, workload_net_bytes={"tx": payload}).checks == []  # no iface: none


def test_bytes_in_flight_at_the_receivers_end_explain_a_larger_nic_count() -> None:
    # Measured in a quick run (fv, iperf3 rx, 2 s): the peer sent 18 874 368 B, the guest counted
    # 15 218 480 B, the tap carried 18 498 341 B of payload: 21.6 % over what was received.
    sent, received, carried, pkts = 18_874_368, 15_218_480, 18_498_341, 13_000
    series = frame(
        [
            ("host", "net.vbt1.tx.bytes", 0.0, 0, "B"),
            ("host", "net.vbt1.tx.bytes", 4.0, carried + 66 * pkts, "B"),
            ("host", "net.vbt1.tx.pkts", 0.0, 0, "count"),
            ("host", "net.vbt1.tx.pkts", 4.0, pkts, "count"),
        ]
    )
    args = {"workload_net_bytes": {"rx": received}, "iface": "vbt1"}
    [plain] = derive_case(series, **args).checks  # type: ignore[arg-type]
    assert plain.flagged and plain.disagreement_pct == pytest.approx(21.55, abs=0.01)
    explained = derive_case(series, workload_net_sent={"rx": sent}, **args)  # type: ignore[arg-type]
    [check] = explained.checks
    assert not check.flagged and explained.flags == []
    assert check.explained_by is not None and "in flight" in check.explained_by
    # more than the sender ever sent is no longer explained
    over = derive_case(series, workload_net_sent={"rx": carried / 1.2}, **args)  # type: ignore[arg-type]
    assert over.flags == ["net_bytes_rx"]


def test_cross_check_edge_cases() -> None:
    assert CrossCheck("block_requests", 0, 0).disagreement_pct == 0.0
    assert math.isinf(CrossCheck("block_requests", 0, 5).disagreement_pct)
    assert CrossCheck("block_requests", 100, 106).flagged
    assert not CrossCheck("block_requests", 100, 95).flagged


def test_empty_series() -> None:
    d = derive_case(frame([]), workload_ios=5)
    assert d.figures == [] and d.checks == []
