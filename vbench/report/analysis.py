"""From tidy samples to per-(workload, parameters, metric, mode) summaries.

What a metric is called, its unit, direction and group come from the metric catalogue
(`vbench.workloads.metric`); nothing here knows a metric by name.  The baseline of every
comparison is the first mode of the run (the scenario's order); bare metal
(`mode == "baremetal"`), when present, is shown as one more column but is never the baseline.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import pandas as pd

from vbench.model import BAREMETAL, MODE_TITLES, ModeId
from vbench.results import Manifest
from vbench.stats import relative_change, summarize
from vbench.workloads import CATALOGUE, GROUP_NOTES, WORKLOADS, Metric, group_order
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
    "min",
    "max",
    "q1",
    "q3",
    "ci_low",
    "ci_high",
    "baseline",
    "rel_pct",
    "rel_low",
    "rel_high",
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
    """The parameters that name a case of the workload in the overview table."""
    w = WORKLOADS.get(workload)
    return w.key_parameters if w else ()


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


def summarize_samples(samples: pd.DataFrame, modes: Sequence[str]) -> pd.DataFrame:
    """One row per (workload, parameters, metric, mode), with relative change vs the baseline.

    The baseline is the first of `modes` that has values for the metric (bare metal excluded);
    `rel_*` are percentages of the mean (see `vbench.stats.relative_change`).
    """
    rows: list[dict[str, object]] = []
    if samples.empty:
        return pd.DataFrame({c: pd.Series(dtype="object") for c in SUMMARY_COLUMNS})
    frame = samples.copy()
    frame["parameters"] = frame["parameters"].fillna("").astype(str)
    frame["mode"] = frame["mode"].astype(str)
    rank = {m: i for i, m in enumerate(modes)}
    for (workload, parameters, metric), group in frame.groupby(
        ["workload", "parameters", "metric"], sort=False
    ):
        by_mode = {
            str(mode): [float(v) for v in g["value"].tolist()]
            for mode, g in group.groupby("mode", sort=False)
        }
        units = group["unit"].dropna().astype(str).unique().tolist()
        unit = units[0] if len(units) == 1 else "/".join(units)
        present = sorted(by_mode, key=lambda m: (rank.get(m, len(rank)), m))
        baseline = next((m for m in present if m != BAREMETAL), None)
        for mode in present:
            values = by_mode[mode]
            s = summarize(values)
            rel = (
                relative_change(values, by_mode[baseline])
                if baseline is not None and mode != baseline
                else None
            )
            rows.append(
                {
                    "workload": str(workload),
                    "parameters": str(parameters),
                    "metric": str(metric),
                    "unit": unit,
                    "mode": mode,
                    "n": s.n,
                    "median": s.median,
                    "mean": s.mean,
                    "stdev": s.stdev,
                    "min": s.min,
                    "max": s.max,
                    "q1": s.q1,
                    "q3": s.q3,
                    "ci_low": s.ci_low,
                    "ci_high": s.ci_high,
                    "baseline": baseline,
                    "rel_pct": rel.percent if rel else None,
                    "rel_low": rel.ci_low if rel else None,
                    "rel_high": rel.ci_high if rel else None,
                }
            )
    return pd.DataFrame(rows, columns=list(SUMMARY_COLUMNS))
