"""From tidy samples to per-(workload, parameters, metric, mode) summaries; the metric catalogue.

Every mode is compared with one reference per metric: a chosen mode, else bare metal where it ran
(`mode == "baremetal"`: % of native), else the first mode of the run (the scenario's order).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from vbench.model import MODE_TITLES, ModeId
from vbench.results import Manifest
from vbench.stats import (
    DEFAULT_ALPHA,
    Flag,
    holm,
    relative_changes,
    stability_flags,
    summarize_many,
)

BAREMETAL = "baremetal"
DIRECTION_ORDER = ("read", "write", "trim")
METRIC_ORDER = ("iops", "bw", "clat_mean", "clat_p50", "clat_p99", "clat_p99.9", "lat_mean")
KEY_METRICS = ("iops", "bw", "clat_p99")
COST = "host cost"
# Row groups of a workload table, in this order: fio directions, then what the mode costs.
GROUP_ORDER = (*DIRECTION_ORDER, COST, "")
# What each mode costs the host, in table order (full metric names).
COST_METRICS = (
    "host.qemu_cpu_per_io",
    "host.qemu_cpu_util",
    "host.cpu_busy",
    "guest.disk_reqs",
)


@dataclass(frozen=True)
class MetricInfo:
    label: str
    higher_is_better: bool | None  # None: neither (a count, a denominator)
    note: str = ""


METRICS: dict[str, MetricInfo] = {
    "iops": MetricInfo("IOPS", True),
    "bw": MetricInfo("bandwidth", True),
    "clat_mean": MetricInfo("clat mean", False),
    "clat_p50": MetricInfo("clat p50", False),
    "clat_p99": MetricInfo("clat p99", False),
    "clat_p99.9": MetricInfo("clat p99.9", False),
    "lat_mean": MetricInfo("total lat mean", False),
    # full names: metrics without a fio direction
    "host.qemu_cpu_per_io": MetricInfo(
        "QEMU CPU per request", False, "QEMU process CPU time per guest disk request"
    ),
    "host.qemu_cpu_util": MetricInfo(
        "QEMU CPU", False, "QEMU process CPU time (vCPUs + device emulation) / wall time"
    ),
    "host.cpu_busy": MetricInfo("host CPU busy", False, "all CPUs of the host"),
    "guest.disk_reqs": MetricInfo("guest disk requests", None, "completed in the case"),
    "boot_to_agent": MetricInfo("boot to guest agent", False, "guest start to agent reply"),
}
UNIT_LABELS = {"us": "µs", "IO/s": "IO/s", "MiB/s": "MiB/s", "count": "requests"}

SUMMARY_COLUMNS = (
    "workload",
    "parameters",
    "metric",
    "unit",
    "mode",
    "n",
    "median",
    "mean",
    "stdev",
    "cv",
    "min",
    "max",
    "q1",
    "q3",
    "ci_low",  # of the mean (Student t)
    "ci_high",
    "median_ci_low",  # of the median (bootstrap)
    "median_ci_high",
    "reference",  # the mode this row is compared with
    "ratio",  # median / reference's median
    "ratio_low",
    "ratio_high",
    "p_value",  # Mann-Whitney U against the reference, two-sided
    "p_holm",  # Holm-adjusted over every comparison of the table
    "significant",  # p_holm <= alpha
    "min_p",  # the smallest p-value these sample sizes allow
    "flags",  # tuple[vbench.stats.Flag, ...]
)


def split_metric(metric: str) -> tuple[str, str]:
    """`read.clat_p99` -> (`read`, `clat_p99`); a metric without a direction -> (``, metric)."""
    direction, dot, name = metric.partition(".")
    return (direction, name) if dot else ("", metric)


def metric_info(metric: str) -> MetricInfo | None:
    """The catalogue entry: by full name (`host.qemu_cpu_util`), else by name (`read.iops`)."""
    return METRICS.get(metric) or METRICS.get(split_metric(metric)[1])


def metric_group(metric: str) -> str:
    """The table group of a metric: a fio direction, `host cost`, or `` (e.g. boot time)."""
    if metric in COST_METRICS or metric.startswith("host."):
        return COST
    direction = split_metric(metric)[0]
    return direction if direction in DIRECTION_ORDER else ""


def metric_sort_key(metric: str) -> tuple[int, int, str]:
    group = metric_group(metric)
    g = GROUP_ORDER.index(group)
    if group == COST:
        m = COST_METRICS.index(metric) if metric in COST_METRICS else len(COST_METRICS)
    else:
        name = split_metric(metric)[1]
        m = METRIC_ORDER.index(name) if name in METRIC_ORDER else len(METRIC_ORDER)
    return (g, m, metric)


def metric_label(metric: str, *, with_direction: bool = True) -> str:
    """`read.clat_p99` -> `read clat p99` (clat: fio's completion latency);
    `host.qemu_cpu_per_io` -> `QEMU CPU per request`."""
    if metric in METRICS:
        return METRICS[metric].label
    direction, name = split_metric(metric)
    info = METRICS.get(name)
    if direction not in DIRECTION_ORDER:
        return metric
    label = info.label if info else name
    return f"{direction} {label}" if with_direction else label


def metric_note(metric: str) -> str:
    info = metric_info(metric)
    return info.note if info else ""


def higher_is_better(metric: str) -> bool | None:
    info = metric_info(metric)
    return info.higher_is_better if info else None


def unit_label(unit: str) -> str:
    return UNIT_LABELS.get(unit, unit)


def mode_title(label: str, manifest: Manifest | None = None) -> str:
    """A reader's name for a mode label: `pv` -> `PV-on-HVM (virtio)`.

    `fv-2` (a repeated mode) -> `FV (emulated) #2`.
    """
    if label == BAREMETAL:
        return "Bare metal"
    mode_id = label
    if manifest is not None:
        for case in manifest.cases:
            if case.mode == label:
                mode_id = case.mode_id
                break
        else:
            for trial in manifest.trials:
                if trial.mode == label:
                    mode_id = trial.mode_id
                    break
    try:
        title = MODE_TITLES[ModeId(mode_id)]
    except ValueError:
        return label
    if label != mode_id:
        suffix = label.removeprefix(f"{mode_id}-")
        return f"{title} #{suffix}" if suffix != label else f"{title} ({label})"
    return title


def mode_order(manifest: Manifest | None, samples: pd.DataFrame) -> list[str]:
    """Modes in run order (first appearance in trials, cases, then samples); bare metal last."""
    seen: list[str] = []

    def add(labels: Iterable[str]) -> None:
        for label in labels:
            if label not in seen:
                seen.append(label)

    if manifest is not None:
        add(t.mode for t in manifest.trials)
        add(c.mode for c in manifest.cases)
    if "mode" in samples.columns:
        add(str(m) for m in samples["mode"].dropna().tolist())
    ordered = [m for m in seen if m != BAREMETAL]
    if BAREMETAL in seen:
        ordered.append(BAREMETAL)
    return ordered


def parse_parameters(parameters: str) -> list[tuple[str, str]]:
    """`bs=4k,rw=randread` -> [("bs", "4k"), ("rw", "randread")]."""
    pairs: list[tuple[str, str]] = []
    for item in str(parameters).split(","):
        key, eq, value = item.partition("=")
        if key:
            pairs.append((key, value if eq else ""))
    return pairs


@dataclass(frozen=True)
class CaseFlag:
    """A flag raised outside the statistics (a failed cross-check) for one figure's repetitions:
    `metric` None flags every metric of that (workload, parameters, mode)."""

    workload: str
    parameters: str
    mode: str
    flag: Flag
    metric: str | None = None


def choose_reference(present: Sequence[str], chosen: str | None = None) -> str | None:
    """The mode a metric is compared with: `chosen`, else bare metal, else the first mode."""
    if chosen is not None and chosen in present:
        return chosen
    if BAREMETAL in present:
        return BAREMETAL
    return present[0] if present else None


def summarize_samples(
    samples: pd.DataFrame,
    modes: Sequence[str],
    *,
    reference: str | None = None,
    case_flags: Iterable[CaseFlag] = (),
    alpha: float = DEFAULT_ALPHA,
) -> pd.DataFrame:
    """One row per (workload, parameters, metric, mode): the summary, the ratio of its median to
    the reference's (see `choose_reference`) with its interval, the Mann-Whitney test against the
    reference Holm-adjusted over every comparison of the table, and the stability flags.
    """
    rows: list[dict[str, Any]] = []
    if samples.empty:
        return pd.DataFrame({c: pd.Series(dtype="object") for c in SUMMARY_COLUMNS})
    frame = samples.copy()
    frame["parameters"] = frame["parameters"].fillna("").astype(str)
    frame["mode"] = frame["mode"].astype(str)
    rank = {m: i for i, m in enumerate(modes)}
    extra: dict[tuple[str, str, str], list[CaseFlag]] = {}
    for cf in case_flags:
        extra.setdefault((cf.workload, cf.parameters, cf.mode), []).append(cf)
    # One pass over the groups, then every summary and comparison computed together (batched).
    figures: dict[tuple[str, str, str], dict[str, list[float]]] = {}
    units: dict[tuple[str, str, str], set[str]] = {}
    for (workload, parameters, metric, mode), group in frame.groupby(
        ["workload", "parameters", "metric", "mode"], sort=False
    ):
        key = (str(workload), str(parameters), str(metric))
        figures.setdefault(key, {})[str(mode)] = [float(v) for v in group["value"].tolist()]
        units.setdefault(key, set()).update(group["unit"].dropna().astype(str).tolist())
    cells: list[tuple[tuple[str, str, str], str, str | None]] = []  # (figure, mode, reference)
    for key, by_mode in figures.items():
        present = sorted(by_mode, key=lambda m: (rank.get(m, len(rank)), m))
        ref = choose_reference(present, reference)
        cells += [(key, mode, ref) for mode in present]
    summaries = summarize_many([figures[key][mode] for key, mode, _ in cells])
    compared = [i for i, (_, mode, ref) in enumerate(cells) if ref is not None and mode != ref]
    changes = dict(
        zip(
            compared,
            relative_changes(
                [
                    (figures[cells[i][0]][cells[i][1]], figures[cells[i][0]][str(cells[i][2])])
                    for i in compared
                ]
            ),
            strict=True,
        )
    )
    for i, ((workload, parameters, metric), mode, ref) in enumerate(cells):
        s = summaries[i]
        rel = changes.get(i)
        given = [
            cf.flag
            for cf in extra.get((workload, parameters, mode), [])
            if cf.metric in (None, metric)
        ]
        rows.append(
            {
                "workload": workload,
                "parameters": parameters,
                "metric": metric,
                "unit": "/".join(sorted(units[(workload, parameters, metric)])),
                "mode": mode,
                "n": s.n,
                "median": s.median,
                "mean": s.mean,
                "stdev": s.stdev,
                "cv": s.cv,
                "min": s.min,
                "max": s.max,
                "q1": s.q1,
                "q3": s.q3,
                "ci_low": s.ci_low,
                "ci_high": s.ci_high,
                "median_ci_low": s.median_ci_low,
                "median_ci_high": s.median_ci_high,
                "reference": ref,
                "ratio": rel.ratio if rel else None,
                "ratio_low": rel.ratio_low if rel else None,
                "ratio_high": rel.ratio_high if rel else None,
                "p_value": rel.p_value if rel else None,
                "p_holm": None,
                "significant": None,
                "min_p": rel.test.min_p if rel else None,
                "flags": stability_flags(figures[(workload, parameters, metric)][mode], given),
            }
        )
    tested = [i for i, r in enumerate(rows) if r["p_value"] is not None]
    for i, p in zip(tested, holm([float(rows[i]["p_value"]) for i in tested]), strict=True):
        rows[i]["p_holm"] = p
        rows[i]["significant"] = p <= alpha
    return pd.DataFrame(rows, columns=list(SUMMARY_COLUMNS))


def flags_document(summary: pd.DataFrame) -> dict[str, Any]:
    """The stability flags of a summary as JSON-ready data (the run directory's `flags.json`)."""
    figures = [
        {
            "workload": str(r["workload"]),
            "parameters": str(r["parameters"]),
            "metric": str(r["metric"]),
            "mode": str(r["mode"]),
            "n": int(r["n"]),
            "flags": [
                {"kind": str(f.kind), "short": f.short, "message": f.message} for f in r["flags"]
            ],
        }
        for r in summary.to_dict("records")
        if r["flags"]
    ]
    return {"format_version": 1, "figures": figures}
