"""iperf3 workload: spec, cases, argv, and the parser on real iperf3 3.12 output.

tests/data/iperf3/ holds output captured on this machine: `*-loopback.json` over loopback,
`e1000-*`/`virtio-*-guest.json` from a guest on a tap in the run's namespace
(tests/test_network_e2e.py with VBENCH_NET_RAW_DIR).  The argv is also run for real, server and
client inside a network namespace of the test's own.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from support import run_peer_case_in_namespace

from vbench.errors import WorkloadOutputError
from vbench.model import WorkloadCase
from vbench.workloads.base import Needs, Target
from vbench.workloads.fio import SampleLabels
from vbench.workloads.iperf3 import METRICS, Iperf3, Iperf3Spec, parse_iperf3_json

DATA = Path(__file__).parent / "data" / "iperf3"
LABELS = SampleLabels("run1", "r0-pv-iperf3-tx-p1-t5", "pv", "iperf3", "direction=tx", 0, 1.0)
PEER = Target("guest", peer_address="169.254.1.1")
W = Iperf3()


def _json(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((DATA / name).read_text())
    return data


def _parse(name: str) -> dict[str, float]:
    return parse_iperf3_json((DATA / name).read_bytes())


# -- the parser ---------------------------------------------------------------------------------

ONE_WAY = [
    ("tcp-forward-loopback.json", "tx"),
    ("tcp-forward-p2-loopback.json", "tx"),
    ("tcp-reverse-loopback.json", "rx"),
    ("e1000-iperf3-tx-p1-t5-guest.json", "tx"),
    ("e1000-iperf3-rx-p1-t5-guest.json", "rx"),
    ("virtio-iperf3-tx-p1-t5-guest.json", "tx"),
    ("virtio-iperf3-rx-p1-t5-guest.json", "rx"),
]


@pytest.mark.parametrize(("name", "direction"), ONE_WAY)
def test_one_way_figures_are_the_receivers(name: str, direction: str) -> None:
    got = _parse(name)
    end = _json(name)["end"]
    other = "rx" if direction == "tx" else "tx"
    assert got[f"{direction}.throughput"] == end["sum_received"]["bits_per_second"] / 1e6
    assert got[f"{direction}.bytes"] == end["sum_received"]["bytes"]
    assert got[f"{direction}.bytes_sent"] == end["sum_sent"]["bytes"]
    assert got[f"{direction}.retransmits"] == end["sum_sent"]["retransmits"]
    assert got["iperf3.client_cpu"] == end["cpu_utilization_percent"]["host_total"]
    assert got["iperf3.server_cpu"] == end["cpu_utilization_percent"]["remote_total"]
    assert not any(k.startswith(other + ".") for k in got)  # one case, one direction


@pytest.mark.parametrize(("name", "direction"), ONE_WAY)
def test_throughput_agrees_with_bytes_over_seconds(name: str, direction: str) -> None:
    got = _parse(name)
    seconds = _json(name)["end"]["sum_received"]["seconds"]
    assert got[f"{direction}.throughput"] == pytest.approx(
        got[f"{direction}.bytes"] * 8 / seconds / 1e6, rel=1e-6
    )


def test_bidir_gives_both_directions() -> None:
    got = _parse("tcp-bidir-loopback.json")
    end = _json("tcp-bidir-loopback.json")["end"]
    assert got["tx.throughput"] == end["sum_received"]["bits_per_second"] / 1e6
    assert got["rx.throughput"] == end["sum_received_bidir_reverse"]["bits_per_second"] / 1e6
    assert got["rx.retransmits"] == end["sum_sent_bidir_reverse"]["retransmits"]


def test_samples_carry_the_catalogues_units_and_the_labels() -> None:
    samples = W.parse((DATA / "virtio-iperf3-tx-p1-t5-guest.json").read_bytes(), LABELS)
    units = {m.name: m.unit for m in METRICS}
    assert samples and all(s.unit == units[s.metric] for s in samples)
    assert {s.case_id for s in samples} == {LABELS.case_id}
    assert next(s for s in samples if s.metric == "tx.throughput").unit == "Mbit/s"


def test_an_iperf3_error_is_one_line() -> None:
    with pytest.raises(WorkloadOutputError, match="iperf3 failed: unable to connect"):
        _parse("error-refused.json")


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"", "printed nothing"),
        (b"iperf3: error - unable to connect", "not JSON"),
        (b"[1, 2]", "not an object"),
        (b'{"start": {}}', "no start/end"),
    ],
)
def test_bad_output_is_refused(raw: bytes, message: str) -> None:
    with pytest.raises(WorkloadOutputError, match=message):
        parse_iperf3_json(raw)


def test_udp_and_empty_tests_are_refused() -> None:
    data = _json("tcp-forward-loopback.json")
    data["start"]["test_start"]["protocol"] = "UDP"
    with pytest.raises(WorkloadOutputError, match="UDP test"):
        parse_iperf3_json(json.dumps(data).encode())
    data = _json("tcp-forward-loopback.json")
    data["end"]["sum_received"]["bytes"] = 0
    with pytest.raises(WorkloadOutputError, match="moved no data"):
        parse_iperf3_json(json.dumps(data).encode())


# -- spec, cases, argv --------------------------------------------------------------------------


def test_defaults_are_both_directions_one_stream() -> None:
    cases = W.cases(Iperf3Spec(kind="iperf3"))
    assert [(c.params["direction"], c.params["streams"]) for c in cases] == [
        ("tx", 1),
        ("rx", 1),
    ]
    assert W.needs is Needs.NETWORK
    assert [W.slug(c) for c in cases] == ["iperf3-tx-p1-t5", "iperf3-rx-p1-t5"]


def test_matrix_is_direction_by_streams() -> None:
    spec = Iperf3Spec(kind="iperf3", direction=["tx", "bidir"], streams=[1, 4], duration_s=10)
    assert len(W.cases(spec)) == 4


@pytest.mark.parametrize(
    "bad",
    [
        {"direction": ["up"]},
        {"direction": []},
        {"streams": [0]},
        {"duration_s": "5"},
        {"port": 1},
    ],
)
def test_spec_rejects(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        Iperf3Spec.model_validate({"kind": "iperf3", **bad})


def test_argv_per_direction() -> None:
    tx, rx = W.cases(Iperf3Spec(kind="iperf3"))
    assert W.argv(tx, PEER)[:3] == ["iperf3", "--client", "169.254.1.1"]
    assert "--json" in W.argv(tx, PEER)
    assert "--reverse" not in W.argv(tx, PEER) and "--reverse" in W.argv(rx, PEER)
    bidir = W.cases(Iperf3Spec(kind="iperf3", direction=["bidir"]))[0]
    assert "--bidir" in W.argv(bidir, PEER)
    assert W.server_argv(tx, "169.254.1.1") == [
        "iperf3",
        "--server",
        "--bind",
        "169.254.1.1",
        "--port",
        "5201",
    ]
    assert W.timeout(tx) > tx.params["duration_s"]  # type: ignore[operator]


@pytest.mark.parametrize(
    ("peer", "message"),
    [
        (None, "needs a peer"),
        ("example.org", "not an IPv4 address"),
        ("10.0.0.1", "only into the network namespace"),
        ("192.168.1.1", "only into the network namespace"),
    ],
)
def test_traffic_goes_only_to_vbenchs_own_addresses(peer: str | None, message: str) -> None:
    case = W.cases(Iperf3Spec(kind="iperf3"))[0]
    with pytest.raises(ValueError, match=message):
        W.argv(case, Target("guest", peer_address=peer))


def test_a_bad_case_is_refused() -> None:
    with pytest.raises(ValueError, match="direction"):
        W.argv(WorkloadCase("iperf3", {"direction": "up", "streams": 1}), PEER)


# -- the argv for real: server and client inside a namespace of the test's own ------------------


@pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("iperf3") is None or shutil.which("ip") is None,
    reason="needs root, iperf3 and iproute2 (run the suite as root after scripts/setup-host.sh)",
)
@pytest.mark.parametrize("direction", ["tx", "rx", "bidir"])
def test_argv_runs_and_parses_for_real(direction: str) -> None:
    spec = Iperf3Spec(kind="iperf3", direction=[direction], duration_s=1)  # type: ignore[list-item]
    (case,) = W.cases(spec)
    stdout = run_peer_case_in_namespace(W, case, "t-iperf3")
    got = {s.metric: s.value for s in W.parse(stdout, LABELS)}
    wanted = ["tx", "rx"] if direction == "bidir" else [direction]
    assert all(got[f"{d}.throughput"] > 0 for d in wanted)
