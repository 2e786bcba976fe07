"""sockperf ping-pong: round-trip latency between the guest and its peer.

The client (`sockperf ping-pong`) runs where the case runs (the guest) and sends one message at a
time; the server (`sockperf server`) on the peer echoes it.  `--full-rtt` makes sockperf report
the round trip itself (without it: half of it, "latency"), which is what vbench measures.

sockperf 3.7 prints its results as text on stdout (with ANSI colours), e.g.::

    sockperf: [Valid Duration] RunTime=1.554 sec; SentMessages=52020; ReceivedMessages=52020
    sockperf: ====> avg-rtt=29.834 (std-dev=192.728)
    sockperf: # dropped messages = 0; # duplicated messages = 0; # out-of-order messages = 0
    sockperf: ---> <MAX> observation = 7350.921
    sockperf: ---> percentile 99.900 = 3197.650
    ...

and exits 0 even when it failed ("No messages were received from the server", "ERROR: Can`t
connect socket"): the parser refuses an output without statistics.  Times are microseconds.

Pure: no subprocess, no sockets.
"""

from __future__ import annotations

import itertools
import re
from typing import Annotated, ClassVar, Literal

from pydantic import BaseModel, Field

from vbench.errors import WorkloadOutputError
from vbench.model import Sample, WorkloadCase
from vbench.workloads.base import Metric, Needs, SampleLabels, Spec, Target, Workload
from vbench.workloads.peer import bind_address, peer_address, samples

KIND = "sockperf"
PORT = 11111
Protocol = Literal["udp", "tcp"]
PROTOCOLS: tuple[str, ...] = ("udp", "tcp")
# sockperf's warm-up (~0.4 s) and start-up; under TCG a 5 s run took 7.7 s in all.
_TIMEOUT_MARGIN_S = 30.0

_GROUP = "round trip"
# (metric, sockperf's percentile) -- sockperf prints percentiles with three decimals
PERCENTILES: tuple[tuple[str, str], ...] = (
    ("rtt.p50", "50.000"),
    ("rtt.p99", "99.000"),
    ("rtt.p99.9", "99.900"),
)
METRICS: tuple[Metric, ...] = (
    Metric("rtt.mean", "us", False, "round trip mean", _GROUP),
    Metric(
        "rtt.p50",
        "us",
        False,
        "round trip p50",
        _GROUP,
        note="one message there and back (sockperf --full-rtt)",
        overview=True,
        chart=True,
    ),
    Metric("rtt.p99", "us", False, "round trip p99", _GROUP, overview=True, chart=True),
    Metric("rtt.p99.9", "us", False, "round trip p99.9", _GROUP, chart=True),
    Metric("rtt.max", "us", False, "round trip max", _GROUP),
    Metric("rtt.rate", "1/s", True, "round trip rate", _GROUP, note="round trips per second"),
    Metric("rtt.dropped", "count", False, "round trip messages dropped", _GROUP),
)


class SockperfSpec(Spec):
    """`[[workloads]] kind = "sockperf"`: the matrix is protocol x msg_size."""

    kind: Literal["sockperf"]
    protocol: list[Protocol] = Field(default_factory=lambda: list[Protocol](["udp"]), min_length=1)
    # sockperf's smallest message is 14 bytes (its header); 65000 keeps UDP in one datagram
    msg_size: list[Annotated[int, Field(ge=14, le=65000)]] = Field(
        default_factory=lambda: [64], min_length=1
    )
    duration_s: Annotated[int, Field(ge=1, le=3600)] = 5


def _int(case: WorkloadCase, key: str) -> int:
    value = case.params.get(key)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"sockperf case parameter {key}={value!r} is not an integer")
    return value


def _protocol(case: WorkloadCase) -> str:
    value = case.params.get("protocol")
    if value not in PROTOCOLS:
        raise ValueError(f"sockperf case protocol={value!r} (one of {', '.join(PROTOCOLS)})")
    return str(value)


class Sockperf(Workload):
    """The sockperf ping-pong workload."""

    kind: ClassVar[str] = KIND
    spec_type: ClassVar[type[BaseModel]] = SockperfSpec
    needs: ClassVar[Needs] = Needs.NETWORK
    raw_name: ClassVar[str] = "sockperf.txt"
    metrics: ClassVar[tuple[Metric, ...]] = METRICS
    version_argv: ClassVar[tuple[str, ...]] = ("sockperf", "--version")
    parameter_order: ClassVar[tuple[str, ...]] = ("protocol", "msg_size", "duration_s")
    key_parameters: ClassVar[tuple[str, ...]] = ("protocol", "msg_size")
    about: ClassVar[str] = (
        "sockperf round trips are one message there and back (ping-pong, --full-rtt) in µs "
        "between the guest and a server in the run's network namespace."
    )

    def cases(self, spec: BaseModel) -> list[WorkloadCase]:
        if not isinstance(spec, SockperfSpec):
            raise TypeError(f"sockperf cases from a {type(spec).__name__}")
        return [
            WorkloadCase(
                KIND, {"protocol": protocol, "msg_size": size, "duration_s": spec.duration_s}
            )
            for protocol, size in itertools.product(spec.protocol, spec.msg_size)
        ]

    def argv(self, case: WorkloadCase, target: Target) -> list[str]:
        argv = [
            "sockperf",
            "ping-pong",
            "--ip",
            peer_address(target, KIND),
            "--port",
            str(PORT),
            "--time",
            str(_int(case, "duration_s")),
            "--msg-size",
            str(_int(case, "msg_size")),
            "--full-rtt",
        ]
        if _protocol(case) == "tcp":
            argv.append("--tcp")
        return argv

    def server_argv(self, case: WorkloadCase, bind: str | None = None) -> list[str]:
        """The peer's echo server; `bind` is the host end of the guest's link."""
        argv = ["sockperf", "server", "--ip", bind_address(bind, KIND), "--port", str(PORT)]
        if _protocol(case) == "tcp":
            argv.append("--tcp")
        return argv

    def timeout(self, case: WorkloadCase) -> float:
        return _int(case, "duration_s") * 1.5 + _TIMEOUT_MARGIN_S

    def slug(self, case: WorkloadCase) -> str:
        return f"sockperf-{_protocol(case)}-m{_int(case, 'msg_size')}-t{_int(case, 'duration_s')}"

    def parse(self, raw: bytes, labels: SampleLabels) -> list[Sample]:
        return samples(parse_sockperf(raw), METRICS, labels)


# --- the parser ---------------------------------------------------------------------------------

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_NUM = r"([0-9]+(?:\.[0-9]+)?)"
_VALID = re.compile(
    rf"\[Valid Duration\] RunTime={_NUM} sec; SentMessages=(\d+); ReceivedMessages=(\d+)"
)
_AVG = re.compile(rf"avg-(rtt|latency)={_NUM} \(std-dev={_NUM}\)")
_DROPPED = re.compile(r"# dropped messages = (\d+);")
_PERCENTILE = re.compile(rf"---> percentile ([0-9.]+) =\s*{_NUM}")
_MAX = re.compile(rf"---> <MAX> observation =\s*{_NUM}")
_SERVERS = re.compile(r"Printing statistics for Server No:\s*(\d+)")


def parse_sockperf(raw: bytes) -> dict[str, float]:
    """Metric values (see METRICS) from `sockperf ping-pong --full-rtt` stdout.

    Raises WorkloadOutputError (one line) on a failed run (sockperf still exits 0), on half
    round-trip output (no --full-rtt), on several servers, or on missing statistics.
    """
    text = _ANSI.sub("", raw.decode(errors="replace"))
    if not text.strip():
        raise WorkloadOutputError("sockperf printed nothing: no statistics to parse")
    if "No messages were received" in text:
        raise WorkloadOutputError(
            "sockperf got no replies: its server did not answer (is it running, and reachable?)"
        )
    for line in text.splitlines():
        if "ERROR" in line:
            raise WorkloadOutputError(f"sockperf failed: {line.strip()[:200]}")
    if len(set(_SERVERS.findall(text))) > 1:
        raise WorkloadOutputError("sockperf output covers several servers; vbench runs one")

    valid, avg = _VALID.search(text), _AVG.search(text)
    if valid is None or avg is None:
        raise WorkloadOutputError(
            "sockperf output has no ping-pong statistics ([Valid Duration], avg-rtt)"
        )
    if avg.group(1) != "rtt":
        raise WorkloadOutputError(
            "sockperf printed half round trips (avg-latency): run it with --full-rtt"
        )
    runtime, received = float(valid.group(1)), int(valid.group(3))
    if received == 0 or runtime <= 0:
        raise WorkloadOutputError("sockperf measured no round trips")

    percentiles = {p: float(v) for p, v in _PERCENTILE.findall(text)}
    out: dict[str, float] = {"rtt.mean": float(avg.group(2))}
    for name, key in PERCENTILES:
        if key not in percentiles:
            raise WorkloadOutputError(f"sockperf output has no percentile {key}")
        out[name] = percentiles[key]
    maximum = _MAX.search(text)
    if maximum is not None:
        out["rtt.max"] = float(maximum.group(1))
    out["rtt.rate"] = received / runtime
    dropped = _DROPPED.search(text)
    if dropped is not None:
        out["rtt.dropped"] = float(dropped.group(1))
    return out


SOCKPERF = Sockperf()
