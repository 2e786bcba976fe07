"""Density figures: N guests of one mode ran a case at once; what did they get together?  (Pure.)

For every key throughput figure of the case (`vbench.workloads.common.density_metrics`: in the
overview and higher is better) that every guest reported once:
  - `agg.<metric>`: the sum over the guests (what the host delivered in all);
  - `fair.<metric>`: Jain's fairness index of the guests' values, (sum x)^2 / (N * sum x^2):
    1 when every guest got the same, 1/N when one guest got everything (Jain, Chiu, Hawe 1984).
And the host's CPU busy while they ran: the mean of the guests' `host.cpu_busy` (each measured over
its own run of the case; they started together).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from vbench.model import Sample
from vbench.workloads import metric as catalogue_entry
from vbench.workloads.common import AGGREGATE_PREFIX, FAIRNESS_PREFIX, HOST_CPU_BUSY, JAIN_UNIT


def jain_index(values: Sequence[float]) -> float | None:
    """Jain's fairness index of non-negative shares; None when every share is 0 (no throughput
    to share: fairness is undefined), ValueError for no values or a negative or non-finite one."""
    if not values:
        raise ValueError("Jain's index needs at least one value")
    if any(not math.isfinite(v) or v < 0 for v in values):
        raise ValueError("Jain's index needs finite values >= 0")
    squares = math.fsum(v * v for v in values)
    if squares == 0:
        return None
    return math.fsum(values) ** 2 / (len(values) * squares)


def density_figures(per_guest: Sequence[Sequence[Sample]]) -> list[tuple[str, float, str]]:
    """(metric, value, unit) of the aggregate and fairness figures of one case, from each guest's
    samples of it.  A metric some guest lacks (its case failed) gives no figure: a sum over fewer
    guests than ran would not be the density's."""
    if not per_guest:
        return []
    by_guest: list[dict[str, Sample]] = [{s.metric: s for s in samples} for samples in per_guest]
    out: list[tuple[str, float, str]] = []
    for name, first in by_guest[0].items():
        agg = catalogue_entry(f"{AGGREGATE_PREFIX}{name}")
        if agg is None or not all(name in g for g in by_guest):
            continue
        values = [g[name].value for g in by_guest]
        out.append((agg.name, math.fsum(values), first.unit))
        if (fair := jain_index(values)) is not None:
            out.append((f"{FAIRNESS_PREFIX}{name}", fair, JAIN_UNIT))
    if all(HOST_CPU_BUSY in g for g in by_guest):
        busy = [g[HOST_CPU_BUSY] for g in by_guest]
        out.append((HOST_CPU_BUSY, math.fsum(s.value for s in busy) / len(busy), busy[0].unit))
    return out
