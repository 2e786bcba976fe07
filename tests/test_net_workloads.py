"""iperf3 and sockperf against the workload contract's expectations (as the contract's own
registry test checks every registered workload): catalogue, real outputs, argv, servers."""

from __future__ import annotations

import re
import typing
from pathlib import Path

import pytest

from vbench.model import WorkloadCase
from vbench.workloads.base import Metric, Needs, SampleLabels, Target
from vbench.workloads.iperf3 import IPERF3
from vbench.workloads.sockperf import SOCKPERF

DATA = Path(__file__).parent / "data"
WORKLOADS = {w.kind: w for w in (IPERF3, SOCKPERF)}
# real outputs that parse (the failures are tested in test_iperf3.py / test_sockperf.py)
REAL_OUTPUTS = {
    "iperf3": sorted((DATA / "iperf3").glob("*tcp-*.json"))
    + sorted((DATA / "iperf3").glob("*-guest.json")),
    "sockperf": sorted((DATA / "sockperf").glob("*fullrtt*.txt"))
    + sorted((DATA / "sockperf").glob("*-guest.txt")),
}
SPECS = {
    "iperf3": {"kind": "iperf3", "direction": ["tx", "rx", "bidir"], "streams": [1, 2]},
    "sockperf": {"kind": "sockperf", "protocol": ["udp", "tcp"], "msg_size": [64, 1024]},
}
SAFE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
LABELS = SampleLabels("run", "case", "pv", "kind", "a=1", 0, 1.0)


@pytest.mark.parametrize("kind", sorted(WORKLOADS))
def test_shape(kind: str) -> None:
    w = WORKLOADS[kind]
    assert w.kind == kind and w.needs is Needs.NETWORK
    assert typing.get_args(w.spec_type.model_fields["kind"].annotation) == (kind,)
    assert w.version_argv[0] == kind and w.raw_name
    assert any(m.overview for m in w.metrics) and any(m.chart for m in w.metrics)


def test_catalogue_names_are_unique_and_labelled_by_group() -> None:
    metrics: list[Metric] = [m for w in WORKLOADS.values() for m in w.metrics]
    assert len({m.name for m in metrics}) == len(metrics)
    for m in metrics:
        assert m.label.startswith(f"{m.group} "), m.label
        assert m.short_label == m.label.removeprefix(f"{m.group} ")


@pytest.mark.parametrize(
    ("kind", "path"),
    [(k, p) for k in sorted(REAL_OUTPUTS) for p in REAL_OUTPUTS[k]],
    ids=lambda v: v.name if isinstance(v, Path) else v,
)
def test_parser_emits_only_catalogued_metrics(kind: str, path: Path) -> None:
    w = WORKLOADS[kind]
    units = {m.name: m.unit for m in w.metrics}
    samples = w.parse(path.read_bytes(), LABELS)
    assert samples
    assert all(units[s.metric] == s.unit for s in samples)


def test_every_real_output_is_listed() -> None:
    assert len(REAL_OUTPUTS["iperf3"]) >= 6 and len(REAL_OUTPUTS["sockperf"]) >= 4


@pytest.mark.parametrize("kind", sorted(WORKLOADS))
def test_cases_argv_servers_and_slugs(kind: str) -> None:
    w = WORKLOADS[kind]
    cases = w.cases(w.spec_type.model_validate(SPECS[kind]))
    assert len(cases) == 6 if kind == "iperf3" else len(cases) == 4
    slugs = [w.slug(c) for c in cases]
    assert len(set(slugs)) == len(slugs)
    assert all(SAFE.match(s) and s.startswith(kind) for s in slugs)
    for case in cases:
        assert isinstance(case, WorkloadCase) and case.kind == kind
        for where in ("guest", "host"):
            argv = w.argv(case, Target(where, peer_address="169.254.0.1", vcpus=2))  # type: ignore[arg-type]
            assert argv[0] == w.version_argv[0] and all(argv)
            assert "169.254.0.1" in argv
        assert w.timeout(case) > float(case.params["duration_s"])
        server = w.server_argv(case)
        assert server[0] == kind and "0.0.0.0" in server
        assert "169.254.1.1" in w.server_argv(case, "169.254.1.1")


@pytest.mark.parametrize("kind", sorted(WORKLOADS))
def test_cases_refuse_another_workloads_spec(kind: str) -> None:
    other = "sockperf" if kind == "iperf3" else "iperf3"
    spec = WORKLOADS[other].spec_type.model_validate(SPECS[other])
    with pytest.raises(TypeError):
        WORKLOADS[kind].cases(spec)
