"""iperf3: TCP throughput between the guest and its peer, in each direction.

The client runs where the case runs (the guest), the server (`iperf3 -s`) on the peer: inside
the run's network namespace, bound to the host end of the guest's link.  One case is one
direction, so that each figure is a one-way capacity and not a share of a contended link:

| direction | argv        | measures                                                        |
|-----------|-------------|-----------------------------------------------------------------|
| `tx`      | (default)   | guest -> peer: `end.sum_received` (what the peer received)      |
| `rx`      | `--reverse` | peer -> guest: `end.sum_received` (what the guest received)     |
| `bidir`   | `--bidir`   | both at once: tx `sum_received`, rx `sum_received_bidir_reverse` |

Throughput is the receiver's figure (bytes that arrived, over the receiver's seconds), in
decimal Mbit/s as iperf3 prints it; retransmissions are the sender's TCP retransmits.  iperf3 3.12
with `-J` prints one JSON object; a failure is an object with `error` (and exit code 1).

Pure: no subprocess, no sockets.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Mapping
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, Field

from vbench.errors import WorkloadOutputError
from vbench.model import Sample, WorkloadCase
from vbench.workloads.base import Metric, Needs, SampleLabels, Spec, Tallies, Target, Workload
from vbench.workloads.peer import bind_address, peer_address, samples

KIND = "iperf3"
PORT = 5201
Direction = Literal["tx", "rx", "bidir"]
DIRECTIONS: tuple[str, ...] = ("tx", "rx", "bidir")
# iperf3's own setup (control connection, parameter exchange, results) under TCG took ~2 s.
_TIMEOUT_MARGIN_S = 30.0
_CONNECT_TIMEOUT_MS = 10_000

_GROUP = "network"
METRICS: tuple[Metric, ...] = (
    Metric(
        "tx.throughput",
        "Mbit/s",
        True,
        "network tx throughput",
        _GROUP,
        note="guest to peer, as received by the peer",
        overview=True,
        chart=True,
    ),
    Metric(
        "rx.throughput",
        "Mbit/s",
        True,
        "network rx throughput",
        _GROUP,
        note="peer to guest, as received by the guest",
        overview=True,
        chart=True,
    ),
    Metric(
        "tx.retransmits",
        "count",
        False,
        "network tx retransmits",
        _GROUP,
        note="TCP retransmissions by the guest",
    ),
    Metric(
        "rx.retransmits",
        "count",
        False,
        "network rx retransmits",
        _GROUP,
        note="TCP retransmissions by the peer",
    ),
    # what arrived, for cross-checks against the NIC's own counters (libvirt interface stats)
    Metric("tx.bytes", "B", None, "network tx bytes", _GROUP, note="received by the peer"),
    Metric("rx.bytes", "B", None, "network rx bytes", _GROUP, note="received by the guest"),
    # what the sender wrote: received + what was still in flight when the receiver's clock stopped
    Metric("tx.bytes_sent", "B", None, "network tx bytes sent", _GROUP, note="sent by the guest"),
    Metric("rx.bytes_sent", "B", None, "network rx bytes sent", _GROUP, note="sent by the peer"),
    Metric(
        "iperf3.client_cpu",
        "%",
        None,
        "network client CPU",
        _GROUP,
        note="iperf3 client (where the case runs), user + system",
    ),
    Metric(
        "iperf3.server_cpu",
        "%",
        None,
        "network server CPU",
        _GROUP,
        note="iperf3 server (the peer), user + system",
    ),
)


class Iperf3Spec(Spec):
    """`[[workloads]] kind = "iperf3"`: the matrix is direction x streams."""

    kind: Literal["iperf3"]
    direction: list[Direction] = Field(
        default_factory=lambda: list[Direction](["tx", "rx"]), min_length=1
    )
    streams: list[Annotated[int, Field(ge=1, le=128)]] = Field(
        default_factory=lambda: [1], min_length=1
    )
    duration_s: Annotated[int, Field(ge=1, le=3600)] = 5
    omit_s: Annotated[int, Field(ge=0, le=600)] = 0  # seconds of TCP slow start left out


def _int(case: WorkloadCase, key: str) -> int:
    value = case.params.get(key)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"iperf3 case parameter {key}={value!r} is not an integer")
    return value


def _direction(case: WorkloadCase) -> str:
    value = case.params.get("direction")
    if value not in DIRECTIONS:
        raise ValueError(f"iperf3 case direction={value!r} (one of {', '.join(DIRECTIONS)})")
    return str(value)


class Iperf3(Workload):
    """The iperf3 workload."""

    kind: ClassVar[str] = KIND
    spec_type: ClassVar[type[BaseModel]] = Iperf3Spec
    needs: ClassVar[Needs] = Needs.NETWORK
    raw_name: ClassVar[str] = "iperf3.json"
    metrics: ClassVar[tuple[Metric, ...]] = METRICS
    version_argv: ClassVar[tuple[str, ...]] = ("iperf3", "--version")
    parameter_order: ClassVar[tuple[str, ...]] = ("direction", "streams", "duration_s", "omit_s")
    key_parameters: ClassVar[tuple[str, ...]] = ("direction", "streams")
    about: ClassVar[str] = (
        "iperf3 throughput is TCP payload as received, in decimal Mbit/s, over the mode's NIC "
        "between the guest and a server in the run's network namespace (on bare metal: loopback "
        "inside that namespace, the host's stack without a NIC)."
    )

    def cases(self, spec: BaseModel) -> list[WorkloadCase]:
        if not isinstance(spec, Iperf3Spec):
            raise TypeError(f"iperf3 cases from a {type(spec).__name__}")
        return [
            WorkloadCase(
                KIND,
                {
                    "direction": direction,
                    "streams": streams,
                    "duration_s": spec.duration_s,
                    "omit_s": spec.omit_s,
                },
            )
            for direction, streams in itertools.product(spec.direction, spec.streams)
        ]

    def argv(self, case: WorkloadCase, target: Target) -> list[str]:
        peer = peer_address(target, KIND)
        direction = _direction(case)
        argv = [
            "iperf3",
            "--client",
            peer,
            "--port",
            str(PORT),
            "--json",
            "--time",
            str(_int(case, "duration_s")),
            "--omit",
            str(_int(case, "omit_s")),
            "--parallel",
            str(_int(case, "streams")),
            "--connect-timeout",
            str(_CONNECT_TIMEOUT_MS),
        ]
        if direction == "rx":
            argv.append("--reverse")
        elif direction == "bidir":
            argv.append("--bidir")
        return argv

    def server_argv(self, case: WorkloadCase, bind: str | None = None) -> list[str]:
        """The peer's server; `bind` is the host end of the guest's link (None: all addresses)."""
        return ["iperf3", "--server", "--bind", bind_address(bind, KIND), "--port", str(PORT)]

    def timeout(self, case: WorkloadCase) -> float:
        return float(_int(case, "duration_s") + _int(case, "omit_s")) * 1.5 + _TIMEOUT_MARGIN_S

    def slug(self, case: WorkloadCase) -> str:
        return f"iperf3-{_direction(case)}-p{_int(case, 'streams')}-t{_int(case, 'duration_s')}"

    def parse(self, raw: bytes, labels: SampleLabels) -> list[Sample]:
        return samples(parse_iperf3_json(raw), METRICS, labels)

    def tallies(self, samples: list[Sample]) -> Tallies:
        """Payload bytes that arrived and that were sent, per direction of the guest (tx: sent
        by the guest)."""
        by_name = {s.metric: s.value for s in samples}
        moved = {d: by_name[f"{d}.bytes"] for d in ("tx", "rx") if f"{d}.bytes" in by_name}
        sent = {d: by_name[f"{d}.bytes_sent"] for d in ("tx", "rx") if f"{d}.bytes_sent" in by_name}
        return Tallies(net_bytes=moved, net_bytes_sent=sent)


# --- the parser ---------------------------------------------------------------------------------


def _section(end: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = end.get(key)
    if not isinstance(value, Mapping):
        raise WorkloadOutputError(f"iperf3 JSON: end.{key} is missing (was it a TCP test?)")
    return value


def _number(section: Mapping[str, Any], key: str, where: str) -> float:
    value = section.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise WorkloadOutputError(f"iperf3 JSON: end.{where}.{key} is missing or not a number")
    return float(value)


def parse_iperf3_json(raw: bytes) -> dict[str, float]:
    """Metric values (see METRICS) from `iperf3 --json` output of a TCP client.

    Raises WorkloadOutputError (one line) when the output is not iperf3's JSON, reports an error,
    is not TCP, or moved no bytes.
    """
    text = raw.decode(errors="replace").strip()
    if not text:
        raise WorkloadOutputError("iperf3 printed nothing: no JSON output to parse")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        first = text.splitlines()[0][:120]
        raise WorkloadOutputError(
            f"iperf3 output is not JSON (line {exc.lineno}: {exc.msg}); it begins: {first!r}"
        ) from None
    if not isinstance(data, Mapping):
        raise WorkloadOutputError("iperf3 output is JSON but not an object")
    if data.get("error"):
        raise WorkloadOutputError(f"iperf3 failed: {str(data['error'])[:200]}")
    start, end = data.get("start"), data.get("end")
    if not isinstance(start, Mapping) or not isinstance(end, Mapping):
        raise WorkloadOutputError("iperf3 JSON has no start/end sections (was --json given?)")
    test = start.get("test_start")
    protocol = test.get("protocol") if isinstance(test, Mapping) else None
    if protocol != "TCP":
        raise WorkloadOutputError(f"iperf3 JSON is a {protocol or 'unknown'} test; vbench runs TCP")

    reverse = bool(test.get("reverse")) if isinstance(test, Mapping) else False
    bidir = "sum_received_bidir_reverse" in end
    # (received section, sent section) per direction of the guest (the client)
    legs: dict[str, tuple[str, str]] = {}
    if bidir:
        legs = {
            "tx": ("sum_received", "sum_sent"),
            "rx": ("sum_received_bidir_reverse", "sum_sent_bidir_reverse"),
        }
    else:
        legs = {"rx" if reverse else "tx": ("sum_received", "sum_sent")}

    out: dict[str, float] = {}
    for direction, (received_key, sent_key) in legs.items():
        received = _section(end, received_key)
        sent = _section(end, sent_key)
        moved = _number(received, "bytes", received_key)
        if moved <= 0:
            raise WorkloadOutputError(f"iperf3 moved no data {direction} ({received_key}.bytes)")
        out[f"{direction}.throughput"] = _number(received, "bits_per_second", received_key) / 1e6
        out[f"{direction}.bytes"] = moved
        out[f"{direction}.bytes_sent"] = _number(sent, "bytes", sent_key)
        out[f"{direction}.retransmits"] = _number(sent, "retransmits", sent_key)
    cpu = end.get("cpu_utilization_percent")
    if isinstance(cpu, Mapping):
        # iperf3 calls the client "host" and the server "remote"
        out["iperf3.client_cpu"] = _number(cpu, "host_total", "cpu_utilization_percent")
        out["iperf3.server_cpu"] = _number(cpu, "remote_total", "cpu_utilization_percent")
    return out


IPERF3 = Iperf3()
