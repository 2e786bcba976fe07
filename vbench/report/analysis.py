"""From tidy samples to per-(workload, parameters, metric, mode) summaries.

What a metric is called, its unit, direction and group come from the metric catalogue
(`vbench.workloads.metric`); nothing here knows a metric by name.
Every mode is compared with one reference per metric: a chosen mode, else bare metal where it ran
(`mode == "baremetal"`: % of native), else the first mode of the run (the scenario's order).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from vbench.model import BAREMETAL, DENSITY, MODE_TITLES, ModeId
from vbench.results import Manifest
from vbench.stats import (
    DEFAULT_ALPHA,
    Flag,
    FlagKind,
    holm,
    relative_changes,
    stability_flags,
    summarize_many,
)
from vbench.workloads import CATALOGUE, GROUP_NOTES, HOST_COST, WORKLOADS, Metric, group_order
from vbench.workloads import metric as catalogue_entry

UNIT_LABELS = {"us": "µs", "IO/s": "IO/s", "MiB/s": "MiB/s", "count": "requests"}
_CATALOGUE_RANK = {m.name: i for i, m in enumerate(CATALOGUE)}

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


def metric_info(name: str) -> Metric | None:
    """The catalogue entry of a metric; None for one no catalogue knows (shown by its name)."""
    return catalogue_entry(name)


def metric_group(name: str) -> str:
    """The table group of a metric: `read`, `cpu`, `host cost`, ... or `` (ungrouped)."""
    info = catalogue_entry(name)
    return info.group if info else ""


def group_note(group: str) -> str:
    return GROUP_NOTES.get(group, "")


def metric_sort_key(name: str) -> tuple[int, int, str]:
    """Groups in catalogue order, then catalogue order within a group; unknown metrics last."""
    groups = group_order()
    group = metric_group(name)
    g = groups.index(group) if group in groups else len(groups)
    return (g, _CATALOGUE_RANK.get(name, len(_CATALOGUE_RANK)), name)


def metric_label(name: str, *, with_group: bool = True) -> str:
    """`read.clat_p99` -> `read clat p99` (`clat p99` inside its group's rows)."""
    info = catalogue_entry(name)
    if info is None:
        return name
    return info.label if with_group else info.short_label


def metric_note(name: str) -> str:
    info = catalogue_entry(name)
    return info.note if info else ""


def higher_is_better(name: str) -> bool | None:
    info = catalogue_entry(name)
    return info.higher_is_better if info else None


def in_overview(name: str) -> bool:
    info = catalogue_entry(name)
    return info is not None and info.overview


def in_chart(name: str) -> bool:
    info = catalogue_entry(name)
    return info is not None and info.chart


def parameter_rank(workload: str) -> dict[str, int]:
    """The order a workload's parameters are shown in (its own order; others sort after)."""
    w = WORKLOADS.get(workload)
    return {k: i for i, k in enumerate(w.parameter_order)} if w else {}


def key_parameters(workload: str) -> tuple[str, ...]:
    """The parameters that name a case of the workload in the overview table (and a density
    trial's `density`: the same job at N = 1, 2, 4 are different rows)."""
    w = WORKLOADS.get(workload)
    return (*w.key_parameters, DENSITY) if w else (DENSITY,)


def workload_notes(workloads: Iterable[str]) -> list[str]:
    """How to read the figures of each workload present (its `about`), in registry order."""
    present = set(workloads)
    return [w.about for kind, w in WORKLOADS.items() if kind in present and w.about]


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


def cross_check_flags(manifest: Manifest | None) -> list[CaseFlag]:
    """A CaseFlag for every case whose cross-check disagreed (the manifest's `flags`), on every
    metric of its (workload, parameters, mode): the case's figures are in doubt."""
    out: list[CaseFlag] = []
    for case in manifest.cases if manifest is not None else ():
        for check in case.cross_checks:
            if not check.flagged:
                continue
            apart = (
                "nothing counted by the workload"
                if check.disagreement_pct is None
                else f"{check.disagreement_pct:.1f} % apart, limit {check.limit_pct:g} %"
            )
            message = (
                f"{case.case_id}: {check.name}: the workload counted {check.workload:.6g}, "
                f"the samplers {check.sampled:.6g} ({apart})"
            )
            flag = Flag(FlagKind.CROSS_CHECK, check.name, message)
            out.append(CaseFlag(case.workload, case.parameters, case.mode, flag))
    return out


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


# -- the summary's picks -------------------------------------------------------------------------

# What "host CPU per operation" is, in order of preference: per disk request, per GB moved.
EFFICIENCY_METRICS = ("host.qemu_cpu_per_io", "host.qemu_cpu_per_gb")


def throughput_metric(metrics: Iterable[str]) -> str | None:
    """What a workload's modes are ranked by: its first key metric (catalogue order) where higher
    is better and that is not a host cost (fio: read or write IOPS; stress-ng: bogo-ops/s)."""
    chosen = [
        m
        for m in metrics
        if in_overview(m) and higher_is_better(m) is True and metric_group(m) != HOST_COST
    ]
    return min(chosen, key=metric_sort_key) if chosen else None


def efficiency_metric(metrics: Iterable[str]) -> str | None:
    """The host-CPU-per-operation figure present, if any (see EFFICIENCY_METRICS)."""
    present = set(metrics)
    return next((m for m in EFFICIENCY_METRICS if m in present), None)


@dataclass(frozen=True)
class Best:
    """The best guest mode of one (workload, parameters) by one metric."""

    workload: str
    parameters: str
    metric: str
    mode: str
    median: float
    runner_up: str | None
    runner_up_median: float | None
    # the two medians' 95 % CIs do not overlap: the order is not an accident of the repetitions
    separated: bool


def best_mode(rows: pd.DataFrame, metric: str) -> Best | None:
    """Among the guest modes of one figure's summary rows (not bare metal: no guest can use it),
    the one with the best median by `metric`'s direction; None with no guest mode."""
    hib = higher_is_better(metric)
    part = rows[(rows["metric"] == metric) & (rows["mode"] != BAREMETAL)]
    if part.empty or hib is None:
        return None
    ordered = part.sort_values("median", ascending=not hib, kind="stable")
    first = ordered.iloc[0]
    second = ordered.iloc[1] if len(ordered) > 1 else None
    separated = False
    if second is not None:
        lo1, hi1 = first["median_ci_low"], first["median_ci_high"]
        lo2, hi2 = second["median_ci_low"], second["median_ci_high"]
        if all(v is not None and not pd.isna(v) for v in (lo1, hi1, lo2, hi2)):
            separated = float(lo1) > float(hi2) if hib else float(hi1) < float(lo2)
    return Best(
        workload=str(first["workload"]),
        parameters=str(first["parameters"]),
        metric=metric,
        mode=str(first["mode"]),
        median=float(first["median"]),
        runner_up=None if second is None else str(second["mode"]),
        runner_up_median=None if second is None else float(second["median"]),
        separated=separated,
    )
