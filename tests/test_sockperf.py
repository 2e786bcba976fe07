"""sockperf ping-pong workload: spec, cases, argv, and the parser on real sockperf 3.7 output.

tests/data/sockperf/ holds output captured on this machine: `*-loopback.txt` over loopback (and
the failures: no server, connection refused, half round trips), `e1000-*`/`virtio-*-guest.txt`
from a guest on a tap in the run's namespace (tests/test_network_e2e.py).  The argv also runs for
real, server and client inside a network namespace of the test's own.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest
from pydantic import ValidationError
from support import run_peer_case_in_namespace

from vbench.errors import WorkloadOutputError
from vbench.workloads.base import Needs, Target
from vbench.workloads.fio import SampleLabels
from vbench.workloads.sockperf import METRICS, Sockperf, SockperfSpec, parse_sockperf

DATA = Path(__file__).parent / "data" / "sockperf"
LABELS = SampleLabels("run1", "r0-pv-sockperf-udp-m64-t5", "pv", "sockperf", "protocol=udp", 0, 1.0)
PEER = Target("guest", peer_address="169.254.1.1")
W = Sockperf()

GOOD = [
    "udp-pingpong-fullrtt-loopback.txt",
    "tcp-pingpong-fullrtt-m64-loopback.txt",
    "e1000-sockperf-udp-m64-t5-guest.txt",
    "virtio-sockperf-udp-m64-t5-guest.txt",
]


def _lines(name: str) -> dict[str, str]:
    """An independent reading of the file: `key = value` / `key=value` pairs, colours removed."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", (DATA / name).read_text())
    out: dict[str, str] = {}
    for line in text.splitlines():
        if "---> percentile" in line:
            key, value = line.split("percentile", 1)[1].split("=")
            out[f"p{key.strip()}"] = value.strip()
        elif "<MAX> observation" in line:
            out["max"] = line.split("=")[1].strip()
        elif "avg-rtt=" in line:
            out["avg"] = line.split("avg-rtt=")[1].split()[0]
        elif "[Valid Duration]" in line:
            for part in line.split("]", 1)[1].split(";"):
                k, v = part.strip().split("=")
                out[k] = v.split()[0]
    return out


@pytest.mark.parametrize("name", GOOD)
def test_figures_match_the_text(name: str) -> None:
    got = parse_sockperf((DATA / name).read_bytes())
    raw = _lines(name)
    assert got["rtt.mean"] == float(raw["avg"])
    assert got["rtt.p50"] == float(raw["p50.000"])
    assert got["rtt.p99"] == float(raw["p99.000"])
    assert got["rtt.p99.9"] == float(raw["p99.900"])
    assert got["rtt.max"] == float(raw["max"])
    assert got["rtt.rate"] == int(raw["ReceivedMessages"]) / float(raw["RunTime"])
    assert got["rtt.dropped"] == 0
    assert got["rtt.p50"] <= got["rtt.p99"] <= got["rtt.p99.9"] <= got["rtt.max"]


def test_samples_carry_the_catalogues_units() -> None:
    samples = W.parse((DATA / GOOD[3]).read_bytes(), LABELS)
    units = {m.name: m.unit for m in METRICS}
    assert {s.metric for s in samples} == set(units)
    assert all(s.unit == units[s.metric] for s in samples)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("udp-no-server.txt", "got no replies"),
        ("tcp-refused.txt", "sockperf failed: .*Connection refused"),
        ("udp-pingpong-halfrtt-loopback.txt", "--full-rtt"),
    ],
)
def test_failures_that_exit_0_are_refused(name: str, message: str) -> None:
    with pytest.raises(WorkloadOutputError, match=message):
        parse_sockperf((DATA / name).read_bytes())


def test_truncated_output_is_refused() -> None:
    text = (DATA / GOOD[0]).read_text()
    with pytest.raises(WorkloadOutputError, match=r"no percentile 99\.900"):
        parse_sockperf(text.replace("percentile 99.900", "percentile 99.901").encode())
    with pytest.raises(WorkloadOutputError, match="no ping-pong statistics"):
        parse_sockperf(text.split("[Valid Duration]")[0].encode())
    with pytest.raises(WorkloadOutputError, match="printed nothing"):
        parse_sockperf(b"")


def test_two_servers_are_refused() -> None:
    text = (DATA / GOOD[0]).read_text()
    text += text.replace("Server No: 0", "Server No: 1")
    with pytest.raises(WorkloadOutputError, match="several servers"):
        parse_sockperf(text.encode())


# -- spec, cases, argv --------------------------------------------------------------------------


def test_defaults_and_matrix() -> None:
    (case,) = W.cases(SockperfSpec(kind="sockperf"))
    assert case.params == {"protocol": "udp", "msg_size": 64, "duration_s": 5}
    assert W.slug(case) == "sockperf-udp-m64-t5"
    assert W.needs is Needs.NETWORK
    spec = SockperfSpec(kind="sockperf", protocol=["udp", "tcp"], msg_size=[14, 1400])
    assert len(W.cases(spec)) == 4


@pytest.mark.parametrize(
    "bad", [{"protocol": ["sctp"]}, {"msg_size": [13]}, {"duration_s": 0}, {"mps": 10}]
)
def test_spec_rejects(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        SockperfSpec.model_validate({"kind": "sockperf", **bad})


def test_argv_and_server_argv() -> None:
    udp, tcp = W.cases(SockperfSpec(kind="sockperf", protocol=["udp", "tcp"]))
    argv = W.argv(udp, PEER)
    assert argv[:4] == ["sockperf", "ping-pong", "--ip", "169.254.1.1"]
    assert "--full-rtt" in argv and "--tcp" not in argv
    assert "--tcp" in W.argv(tcp, PEER)
    assert W.server_argv(tcp, "169.254.1.1")[:4] == ["sockperf", "server", "--ip", "169.254.1.1"]
    assert "--tcp" in W.server_argv(tcp) and W.server_argv(udp)[3] == "0.0.0.0"
    with pytest.raises(ValueError, match="only into the network namespace"):
        W.argv(udp, Target("guest", peer_address="8.8.8.8"))


# -- the argv for real --------------------------------------------------------------------------


@pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("sockperf") is None or shutil.which("ip") is None,
    reason="needs root, sockperf and iproute2 (run the suite as root after scripts/setup-host.sh)",
)
@pytest.mark.parametrize("protocol", ["udp", "tcp"])
def test_argv_runs_and_parses_for_real(protocol: str) -> None:
    spec = SockperfSpec(kind="sockperf", protocol=[protocol], duration_s=1)  # type: ignore[list-item]
    (case,) = W.cases(spec)
    stdout = run_peer_case_in_namespace(W, case, "t-sockperf")
    got = {s.metric: s.value for s in W.parse(stdout, LABELS)}
    assert got["rtt.p50"] > 0 and got["rtt.rate"] > 0
