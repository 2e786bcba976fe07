"""The workloads vbench can run, and the catalogue of every metric it records.

Adding a workload: write its module (spec, `Workload` subclass, metric catalogue; see
`vbench.workloads.base`), add its instance to `WORKLOADS` and its spec to `WorkloadSpec`.
`tests/test_workloads.py` checks that both lists agree and that each catalogue covers what the
parser emits.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from vbench.workloads.base import Metric, Needs, SampleLabels, Tallies, Target, Workload
from vbench.workloads.common import COMMON_METRICS, GROUP_NOTES, HOST_COST, density_metrics
from vbench.workloads.fio import FIO, FioSpec
from vbench.workloads.iperf3 import IPERF3, Iperf3Spec
from vbench.workloads.sockperf import SOCKPERF, SockperfSpec
from vbench.workloads.stress_ng import STRESS_NG, StressNgSpec

WORKLOADS: dict[str, Workload] = {w.kind: w for w in (FIO, STRESS_NG, IPERF3, SOCKPERF)}

# The scenario's `[[workloads]]` entry: one spec per registered workload, selected by `kind`.
WorkloadSpec = Annotated[
    FioSpec | StressNgSpec | Iperf3Spec | SockperfSpec, Field(discriminator="kind")
]

# Every metric: the workloads' catalogues in registration order, then the runner's own, then the
# density figures derived from the workloads' key throughput figures.
# The report's group order follows this order.
_WORKLOAD_METRICS: tuple[Metric, ...] = tuple(m for w in WORKLOADS.values() for m in w.metrics)
CATALOGUE: tuple[Metric, ...] = (
    *_WORKLOAD_METRICS,
    *COMMON_METRICS,
    *density_metrics(_WORKLOAD_METRICS),
)
_BY_NAME: dict[str, Metric] = {m.name: m for m in CATALOGUE}


def workload(kind: str) -> Workload:
    """The workload of a scenario `kind`; KeyError for an unknown one (the scenario refused it)."""
    return WORKLOADS[kind]


def metric(name: str) -> Metric | None:
    """The catalogue entry of a sample's metric, or None for a metric no catalogue knows."""
    return _BY_NAME.get(name)


def group_order() -> list[str]:
    """The report's metric groups, in catalogue order (e.g. read, write, trim, cpu, host cost)."""
    return list(dict.fromkeys(m.group for m in CATALOGUE))


__all__ = [
    "CATALOGUE",
    "GROUP_NOTES",
    "HOST_COST",
    "WORKLOADS",
    "Metric",
    "Needs",
    "SampleLabels",
    "Tallies",
    "Target",
    "Workload",
    "WorkloadSpec",
    "group_order",
    "metric",
    "workload",
]
