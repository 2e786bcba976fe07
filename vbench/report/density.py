"""The report's density table: per case and mode, how the aggregate throughput, the guests'
fairness and the host's CPU go as the number of guests running at once grows.

Read from the summary (one row per workload, parameters, metric, mode): a case of a density trial
carries `density=N` in its parameters; its figures are the catalogue's density metrics
(`agg.<metric>`, `fair.<metric>`, `vbench.workloads.common.density_metrics`) and the host's CPU.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd

from vbench.model import DENSITY
from vbench.report.analysis import (
    key_parameters,
    metric_label,
    parameter_rank,
    parse_parameters,
    unit_label,
)
from vbench.workloads import metric as catalogue_entry
from vbench.workloads.common import AGGREGATE_PREFIX, FAIRNESS_PREFIX, HOST_CPU_BUSY


@dataclass(frozen=True)
class DensityCell:
    aggregate: float | None
    fairness: float | None
    host_cpu: float | None


@dataclass(frozen=True)
class DensityRow:
    workload: str
    case: str  # the key parameters, e.g. "rw=randread, bs=4k"
    mode: str
    metric: str  # the label of the aggregate, e.g. "aggregate read IOPS"
    unit: str
    cells: list[DensityCell]  # one per level, in `DensityTable.levels` order


@dataclass(frozen=True)
class DensityTable:
    levels: list[int]
    rows: list[DensityRow]


def density_table(summary: pd.DataFrame, modes: list[str]) -> DensityTable | None:
    """None when the run had no density trial."""
    if summary.empty:
        return None
    medians: dict[tuple[str, str, str], dict[str, dict[int, float]]] = {}
    levels: set[int] = set()
    for r in summary.to_dict("records"):
        params = parse_parameters(str(r["parameters"]))
        level = next((int(v) for k, v in params if k == DENSITY and v.isdigit()), None)
        if level is None:
            continue
        shown = key_parameters(str(r["workload"]))
        rank = parameter_rank(str(r["workload"]))
        named = sorted(
            (kv for kv in params if kv[0] in shown and kv[0] != DENSITY),
            key=lambda kv: rank.get(kv[0], len(rank)),
        )
        case = ", ".join(f"{k}={v}" for k, v in named)
        key = (str(r["workload"]), case, str(r["mode"]))
        medians.setdefault(key, {}).setdefault(str(r["metric"]), {})[level] = float(r["median"])
        levels.add(level)
    if not levels:
        return None
    order = sorted(levels)
    rank = {m: i for i, m in enumerate(modes)}
    rows: list[DensityRow] = []
    for (workload, case, mode), by_metric in sorted(
        medians.items(), key=lambda kv: (kv[0][0], kv[0][1], rank.get(kv[0][2], len(rank)))
    ):
        cpu = by_metric.get(HOST_CPU_BUSY, {})
        for name, values in by_metric.items():
            info = catalogue_entry(name)
            if info is None or not name.startswith(AGGREGATE_PREFIX):
                continue
            fair = by_metric.get(FAIRNESS_PREFIX + name.removeprefix(AGGREGATE_PREFIX), {})
            rows.append(
                DensityRow(
                    workload=workload,
                    case=case,
                    mode=mode,
                    metric=metric_label(name, with_group=False),
                    unit=unit_label(info.unit),
                    cells=[DensityCell(values.get(n), fair.get(n), cpu.get(n)) for n in order],
                )
            )
    return DensityTable(levels=order, rows=rows) if rows else None


def density_context(
    summary: pd.DataFrame, modes: list[str], fmt: Callable[[object], str]
) -> dict[str, Any] | None:
    """The template's view, numbers formatted with the report's `fmt`."""
    table = density_table(summary, modes)
    if table is None:
        return None
    rows = [
        {
            "case": f"{r.workload} {r.case}".strip(),
            "mode": r.mode,
            "metric": r.metric,
            "unit": r.unit,
            "cells": [
                None
                if c.aggregate is None
                else {
                    "aggregate": fmt(c.aggregate),
                    "fairness": fmt(c.fairness),
                    "host_cpu": fmt(c.host_cpu),
                }
                for c in r.cells
            ],
        }
        for r in table.rows
    ]
    return {"levels": table.levels, "rows": rows}
