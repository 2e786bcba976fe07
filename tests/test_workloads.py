"""The workload contract: every registered workload is complete and consistent.

Each workload's parser runs on its real outputs under tests/data/<kind>/; whatever it emits must be
in its own catalogue with the catalogue's unit.  A new workload without checked-in real output
fails `test_every_workload_has_real_output`.
"""

from __future__ import annotations

import re
import typing
from pathlib import Path

import pytest

from vbench.model import WorkloadCase
from vbench.scenario import Scenario
from vbench.workloads import (
    CATALOGUE,
    WORKLOADS,
    Needs,
    SampleLabels,
    Target,
    Workload,
    WorkloadSpec,
    group_order,
    metric,
    workload,
)
from vbench.workloads.common import COMMON_METRICS

DATA = Path(__file__).parent / "data"
# Real outputs of each workload, by kind: the directory and the file patterns of its outputs.
REAL_OUTPUTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "fio": ("fio", ("*.json", "*.txt")),
    "stress-ng": ("stress-ng", ("*.yaml",)),
    # the successful runs only (the others are outputs of failures, refused by the parser)
    "iperf3": ("iperf3", ("*-loopback.json", "*-guest.json")),
    "sockperf": ("sockperf", ("*-fullrtt-*.txt", "*-guest.txt")),
}
# A minimal spec per kind, as a scenario gives it.
SPECS: dict[str, dict[str, object]] = {
    "fio": {"kind": "fio", "rw": ["randread", "randwrite"], "iodepth": [1, 8]},
    "stress-ng": {"kind": "stress-ng", "stressors": [{"name": "cpu"}, {"name": "matrix"}]},
    "iperf3": {"kind": "iperf3", "direction": ["tx", "rx"]},
    "sockperf": {"kind": "sockperf", "protocol": ["udp", "tcp"]},
}
SAFE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def _outputs(kind: str) -> list[Path]:
    sub, patterns = REAL_OUTPUTS[kind]
    return sorted(p for pattern in patterns for p in (DATA / sub).glob(pattern))


def _labels() -> SampleLabels:
    return SampleLabels("run", "case", "pv", "kind", "a=1", 0, 1.0)


def _spec(kind: str) -> object:
    spec_type = WORKLOADS[kind].spec_type
    return spec_type.model_validate(SPECS[kind])


def test_the_scenario_union_has_every_registered_spec() -> None:
    union = typing.get_args(typing.get_args(WorkloadSpec)[0])
    assert set(union) == {w.spec_type for w in WORKLOADS.values()}
    field = Scenario.model_fields["workloads"]
    assert typing.get_args(field.annotation)[0] == WorkloadSpec


@pytest.mark.parametrize("kind", sorted(WORKLOADS))
def test_spec_kind_matches_the_registry(kind: str) -> None:
    w = workload(kind)
    assert w.kind == kind
    assert typing.get_args(w.spec_type.model_fields["kind"].annotation) == (kind,)
    assert isinstance(w.needs, Needs)
    assert w.version_argv and w.raw_name


@pytest.mark.parametrize("kind", sorted(WORKLOADS))
def test_every_workload_has_real_output(kind: str) -> None:
    assert kind in REAL_OUTPUTS, f"check in real {kind} output under tests/data/ and list it"
    assert _outputs(kind)


@pytest.mark.parametrize(
    ("kind", "path"),
    [(k, p) for k in sorted(REAL_OUTPUTS) for p in _outputs(k)],
    ids=lambda v: v.name if isinstance(v, Path) else v,
)
def test_parser_emits_only_catalogued_metrics(kind: str, path: Path) -> None:
    w = workload(kind)
    own = {m.name: m for m in w.metrics}
    samples = w.parse(path.read_bytes(), _labels())
    assert samples
    for s in samples:
        assert s.metric in own, f"{path.name}: {s.metric} is not in the {kind} catalogue"
        assert s.unit == own[s.metric].unit
        assert metric(s.metric) is own[s.metric]


def test_catalogue_names_are_unique_and_complete() -> None:
    names = [m.name for m in CATALOGUE]
    assert len(names) == len(set(names))
    for m in CATALOGUE:
        assert m.label and m.unit and isinstance(m.group, str)
        if m.group and m.label.startswith(f"{m.group} "):
            assert m.short_label == m.label.removeprefix(f"{m.group} ")
    assert metric("no.such.metric") is None
    assert all(metric(m.name) is m for m in COMMON_METRICS)
    # each workload's key metrics exist: the report's overview shows something for every kind
    for w in WORKLOADS.values():
        assert any(m.overview for m in w.metrics), w.kind
        assert any(m.chart for m in w.metrics), w.kind


def test_group_order_follows_the_catalogue() -> None:
    order = group_order()
    assert order[:4] == ["read", "write", "trim", "cpu"]
    assert order.index("host cost") > order.index("cpu")


@pytest.mark.parametrize("kind", sorted(WORKLOADS))
def test_cases_argv_timeout_and_slugs(kind: str) -> None:
    w: Workload = workload(kind)
    cases = w.cases(_spec(kind))  # type: ignore[arg-type]
    assert len(cases) >= 2
    slugs = [c.slug for c in cases]
    assert len(set(slugs)) == len(slugs)
    assert all(SAFE.match(s) and s.startswith(kind) for s in slugs)
    disk = "/dev/vda" if w.needs is Needs.DISK else None
    peer = "169.254.1.1" if w.needs is Needs.NETWORK else None
    for case in cases:
        assert isinstance(case, WorkloadCase) and case.kind == kind
        for where in ("guest", "host"):
            argv = w.argv(case, Target(where, disk=disk, peer_address=peer, vcpus=2))  # type: ignore[arg-type]
            assert argv and all(isinstance(a, str) and a for a in argv)
            assert argv[0] == w.version_argv[0]
        assert w.timeout(case) > 0
        assert (w.server_argv(case) is not None) == (w.needs is Needs.NETWORK)


def test_derived_figures_are_catalogued_with_their_units() -> None:
    """Every figure the runner derives from a case's series (vbench.derive) is in the catalogue."""
    import pandas as pd

    from vbench.derive import derive_case
    from vbench.series import SERIES_COLUMNS

    rows = []
    for t, k in ((0.0, 0), (10.0, 1)):
        rows += [
            ("libvirt", "cpu.time", t, 1e9 + k * 2e9, "ns"),
            ("libvirt", "block.vda.rd.reqs", t, 10 + k * 1000, "count"),
            ("libvirt", "block.vda.rd.bytes", t, 1e6 + k * 4e6, "B"),
            ("libvirt", "vcpu.0.exits", t, k * 5000, "count"),
            ("guest", "cpu.busy", t, 100 + k * 900, "ms"),
            ("guest", "cpu.idle", t, 100 + k * 9000, "ms"),
            ("host", "cpu.busy_s", t, 50 + k * 3, "s"),
            ("host", "cpu.total_s", t, 100 + k * 20, "s"),
        ]
    series = pd.DataFrame([("r", "c", *r) for r in rows], columns=list(SERIES_COLUMNS))
    figures = derive_case(series).figures
    assert {f.metric for f in figures} == {m.name for m in COMMON_METRICS if m.group == "host cost"}
    for f in figures:
        entry = metric(f.metric)
        assert entry is not None and entry.unit == f.unit, f.metric
