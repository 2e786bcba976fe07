"""The report's view model, its HTML (Jinja2, self-contained) and its PDF
(WeasyPrint, from the same HTML).
"""

from __future__ import annotations

import functools
import json
import math
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, cast

import jinja2
import pandas as pd

from vbench import __version__
from vbench.checkdoc import CheckDocument, CheckRecord, VerdictRecord
from vbench.inventory import Inventory
from vbench.model import BAREMETAL, ModeId
from vbench.readiness import Status
from vbench.report.analysis import (
    Best,
    best_mode,
    choose_reference,
    efficiency_metric,
    group_note,
    higher_is_better,
    in_overview,
    key_parameters,
    metric_group,
    metric_label,
    metric_note,
    metric_sort_key,
    mode_title,
    parameter_rank,
    parse_parameters,
    throughput_metric,
    unit_label,
    workload_notes,
)
from vbench.report.curves import latency_curves, series_panels
from vbench.report.density import density_context
from vbench.report.plots import (
    MAX_DOTS,
    Bar,
    BarPanel,
    LinePanel,
    bars_svg,
    chart_metrics,
    latency_svg,
    mode_colors,
    short_name,
    timeseries_svg,
)
from vbench.results import MANIFEST, RAW, SAMPLES, Manifest
from vbench.series import SERIES, load_series
from vbench.stats import DEFAULT_ALPHA, FlagKind

TCG_WARNING = (
    "Guests ran under QEMU's TCG software emulation: these figures compare the modes relative to "
    "each other on this machine only; they are not hardware figures."
)
DASH = "\u2013"  # en dash: empty cells and ranges


def fmt(value: object) -> str:
    """A number for a table: grouped thousands, about four significant digits."""
    if value is None:
        return DASH
    try:
        v = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return str(value)
    if math.isnan(v):
        return DASH
    a = abs(v)
    if a >= 10000:
        return f"{v:,.0f}"
    if a >= 100:
        return f"{v:,.1f}"
    if a >= 10:
        return f"{v:.2f}"
    if a >= 1 or a == 0:
        return f"{v:.3f}"
    return f"{v:.3g}"


def fmt_pct(value: object) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return DASH
    return f"{float(value):+.1f}%"  # type: ignore[arg-type]


def _is_num(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def _duration(start: str | None, end: str | None) -> str:
    a, b = _parse_time(start), _parse_time(end)
    if a is None or b is None:
        return DASH
    try:
        seconds = int((b - a).total_seconds())
    except TypeError:  # naive vs aware
        return DASH
    hours, rest = divmod(max(seconds, 0), 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours} h {minutes:02d} min {secs:02d} s" if hours else f"{minutes} min {secs:02d} s"


def _flatten(data: Mapping[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.extend(_flatten(value, f"{name}."))
        elif isinstance(value, list | tuple):
            if all(isinstance(v, str | int | float | bool) for v in value):
                out.append((name, ", ".join(str(v) for v in value) or DASH))
            else:
                out.append((name, json.dumps(value, default=str)[:400]))
        else:
            out.append((name, DASH if value is None else str(value)))
    return out


# -- view model ----------------------------------------------------------------------------------


@dataclass
class Cell:
    median: str = DASH
    n: int = 0
    spread: str = ""
    ci: str = ""  # of the median
    rel: str = ""  # % of the reference's median, or "reference"
    rel_ci: str = ""
    rel_class: str = ""
    sig: str = ""  # "*" significant (Holm), "n.s.", or "n too small" (cannot be significant)
    sig_title: str = ""
    flags: list[str] = field(default_factory=list)  # short stability flags
    flag_title: str = ""


@dataclass
class MetricRow:
    metric: str
    label: str
    unit: str
    cells: list[Cell]
    direction: str = ""  # the row group of the catalogue: "read", "cpu", "host cost", ...
    first_of_direction: bool = False
    note: str = ""
    group_note: str = ""  # shown beside the group's heading


@dataclass
class EfficiencyCell:
    mode: str  # the mode's title
    value: str  # median
    ci: str
    versus: str  # against the reference's median: "2.10x", "reference"


@dataclass
class WorkloadSection:
    anchor: str
    workload: str
    parameters: list[tuple[str, str]]
    key_parameters: list[tuple[str, str]]  # those that name the case (section title, overview)
    rows: list[MetricRow]
    chart: str | None
    modes: list[str]
    latency_chart: str | None = None
    series_chart: str | None = None
    efficiency: list[EfficiencyCell] = field(default_factory=list)
    efficiency_label: str = ""
    title: str = ""  # workload and key parameters: "fio rw=randread, bs=4k"
    raw_parameters: str = ""  # as in the samples: "bs=4k,direct=True,..."


@dataclass
class ModeView:
    label: str
    title: str
    color: str
    repetitions: int
    is_reference: bool


@dataclass
class CheckRow:
    id: str
    title: str
    status: str
    observed: str
    remedy: str


@dataclass
class DeviceRow:
    address: str
    group: str
    driver: str
    note: str


@dataclass
class ModeReadiness:
    mode: str
    title: str
    requested: bool | None
    ready: bool | None
    summary: str
    blockers: list[str] = field(default_factory=list)
    remedies: list[str] = field(default_factory=list)
    see_checks: list[str] = field(default_factory=list)  # blockers whose fix is in the table
    offered: list[DeviceRow] = field(default_factory=list)
    offered_more: int = 0
    excluded: list[tuple[str, str]] = field(default_factory=list)
    excluded_more: int = 0


@dataclass
class PciRow:
    address: str
    ids: str
    name: str
    cls: str
    driver: str
    group: str
    sriov: str
    host_use: str


@dataclass
class CheckView:
    summary: str = ""
    counts: list[tuple[str, int]] = field(default_factory=list)
    facts: list[tuple[str, str]] = field(default_factory=list)
    modes: list[ModeReadiness] = field(default_factory=list)
    rows: list[CheckRow] = field(default_factory=list)
    pci: list[PciRow] = field(default_factory=list)
    pci_total: int = 0
    notes: list[str] = field(default_factory=list)


# Names for a PCI inventory without pci.ids names (class code prefix -> name; vendor id -> name).
PCI_CLASSES = {
    "0100": "SCSI storage",
    "0101": "IDE",
    "0104": "RAID",
    "0106": "SATA",
    "0107": "SAS",
    "0108": "NVMe",
    "0180": "storage",
    "0200": "Ethernet",
    "0207": "InfiniBand",
    "0280": "network",
    "0300": "VGA",
    "0302": "3D controller",
    "0403": "audio",
    "0600": "host bridge",
    "0601": "ISA bridge",
    "0604": "PCI bridge",
    "0c03": "USB",
    "0c05": "SMBus",
    "1200": "accelerator",
    "ff00": "unclassified",
}
PCI_VENDORS = {
    "8086": "Intel",
    "1022": "AMD",
    "1af4": "Red Hat (virtio)",
    "1b36": "Red Hat (QEMU)",
    "10de": "NVIDIA",
    "15b3": "Mellanox",
    "14e4": "Broadcom",
    "144d": "Samsung",
    "1000": "Broadcom / LSI",
    "1077": "QLogic",
    "19e5": "Huawei",
    "1d0f": "Amazon",
}
PCI_ROWS_MAX = 40
DEVICES_MAX = 12


def _text_of(value: object) -> str:
    """A short, human line for a scalar or a list of scalars; never a JSON dump."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, str | int | float):
        return str(value)
    if isinstance(value, list | tuple):
        return ", ".join(t for t in (_text_of(v) for v in value) if t)
    if isinstance(value, Mapping):
        return ", ".join(f"{k} {_text_of(v)}" for k, v in value.items() if _text_of(v))
    return str(value)


def _mode_name(mode: str) -> str:
    try:
        return ModeId(mode).display_name
    except ValueError:
        return mode


def _mode_readiness(v: VerdictRecord, fixes: Mapping[str, str]) -> ModeReadiness:
    out = ModeReadiness(
        mode=v.mode.value,
        title=v.title,
        requested=v.requested,
        ready=v.ready,
        summary=v.summary,
        blockers=list(v.blockers),
    )
    for remedy in v.remedies:
        # A fix that is already in the checks table is a link there, not repeated.
        if remedy.checks and all(i in fixes for i in remedy.checks):
            out.see_checks += [i for i in remedy.checks if i not in out.see_checks]
        else:
            out.remedies.append(str(remedy))
    for o in v.offered[:DEVICES_MAX]:
        note = o.note or o.description
        desc = o.description
        out.offered.append(
            DeviceRow(
                address=o.address,
                group=DASH if o.iommu_group is None else str(o.iommu_group),
                driver=o.driver or "none",
                note=f"{desc}; {note}" if desc and note != desc else note,
            )
        )
    out.offered_more = max(len(v.offered) - DEVICES_MAX, 0)
    out.excluded = [(e.address, e.reason) for e in v.excluded[:DEVICES_MAX]]
    out.excluded_more = max(len(v.excluded) - DEVICES_MAX, 0)
    return out


def _check_row(c: CheckRecord) -> CheckRow:
    return CheckRow(
        id=c.id,
        title=c.title,
        status=c.status.value,
        observed=c.observed,
        remedy="" if c.status is Status.PASS else (c.remedy or ""),
    )


def _pci_rows(inventory: Inventory) -> tuple[list[PciRow], int]:
    uses: dict[str, list[str]] = {}
    for use in inventory.host_use:
        uses.setdefault(use.pci_address, []).append(use.reason)
    rows: list[PciRow] = []
    for d in inventory.pci[:PCI_ROWS_MAX]:
        vid, did = d.vendor_id, d.device_id
        names = " ".join(t for t in (d.vendor_name, d.device_name) if t) or PCI_VENDORS.get(
            vid.lower(), ""
        )
        code = d.class_code.lower().removeprefix("0x")
        if d.sriov_totalvfs:
            sriov = f"{d.sriov_numvfs or 0} / {d.sriov_totalvfs} VFs"
        elif d.physfn:
            sriov = f"VF of {d.physfn}"
        else:
            sriov = ""
        rows.append(
            PciRow(
                address=d.address,
                ids=f"{vid}:{did}" if vid or did else "",
                name=names,
                cls=d.class_name
                or (f"{PCI_CLASSES[code[:4]]} ({code})" if code[:4] in PCI_CLASSES else code),
                driver=d.driver or "",
                group="" if d.iommu_group is None else str(d.iommu_group),
                sriov=sriov,
                host_use="; ".join(dict.fromkeys(uses.get(d.address, []))),
            )
        )
    return rows, len(inventory.pci)


def _when(text: str | None) -> str:
    t = _parse_time(text)
    if t is None:
        return text or ""
    return t.strftime("%Y-%m-%d %H:%M:%S") + (f" {t.tzname()}" if t.tzname() else "")


def _checks_view(doc: CheckDocument | None) -> CheckView | None:
    """The run's host-check document (`vbench.checkdoc.CheckDocument`), compact: summary,
    per-mode readiness, checks, PCI inventory."""
    if doc is None:
        return None
    view = CheckView()
    view.rows = [_check_row(c) for c in doc.checks]
    view.counts = [(s.value, n) for s, n in doc.counts.items()]
    host = doc.host
    parts = []
    if host.checked_at:
        parts.append(f"checked {_when(host.checked_at)}")
    if host.hostname:
        parts.append(f"on {host.hostname}")
    parts.append("strict (a WARN blocks)" if doc.strict else "not strict (a WARN never blocks)")
    parts.append("KVM boot probe run" if host.probe else "without the KVM boot probe")
    view.summary = ", ".join(parts)
    if doc.requested_modes:
        names = ", ".join(m.display_name for m in doc.requested_modes)
        state = "ready" if doc.ready else "not ready"
        view.facts.append(("requested modes", f"{names}: {state}"))
    for label, value in (
        ("kernel", host.kernel_release),
        ("kernel command line", host.cmdline),
        ("KVM module", host.kvm_backend),
        ("libvirt", host.libvirt_version),
        ("QEMU", host.hypervisor_version),
    ):
        if value:
            view.facts.append((label, value))
    fixes = {r.id: r.remedy for r in view.rows if r.remedy}
    view.modes = [_mode_readiness(v, fixes) for v in doc.verdicts]
    view.pci, view.pci_total = _pci_rows(doc.inventory)
    view.notes = list(doc.inventory.notes)
    return view


def _status_class(status: str) -> str:
    s = status.lower()
    if s in ("pass", "passed", "ok", "yes", "ready", "true"):
        return "ok"
    if s in ("warn", "warning", "skip", "skipped", "unknown", "info", "inconclusive"):
        return "warn"
    if s in ("fail", "failed", "error", "no", "false", "blocked"):
        return "bad"
    return ""


def fmt_ratio(value: object) -> str:
    """A ratio as percent of the reference: 0.973 -> `97.3%`."""
    if not _is_num(value):
        return DASH
    return f"{float(value) * 100:.1f}%"  # type: ignore[arg-type]


def summary_cell(row: Mapping[str, Any], metric: str, is_reference: bool) -> Cell:
    """One table cell from a summary row (see `analysis.SUMMARY_COLUMNS`)."""
    n = int(row["n"])
    cell = Cell(median=fmt(row["median"]), n=n)
    if n >= 2:
        span = f"{fmt(row['min'])} {DASH} {fmt(row['max'])}"
        cell.spread = f"range {span}"
        if _is_num(row["median_ci_low"]) and _is_num(row["median_ci_high"]):
            cell.ci = f"CI {fmt(row['median_ci_low'])} {DASH} {fmt(row['median_ci_high'])}"
            if cell.ci == f"CI {span}":  # a few repetitions: the median's CI is their range
                cell.ci, cell.spread = f"CI = range {span}", ""
    else:
        cell.ci = "no CI (n = 1)"
    flags = row["flags"] or ()
    cell.flags = [f.short for f in flags]
    cell.flag_title = "; ".join(f.message for f in flags)
    if is_reference:
        cell.rel = "reference"
        cell.rel_class = "base"
    elif _is_num(row["ratio"]):
        cell.rel = fmt_ratio(row["ratio"])
        low, high = row["ratio_low"], row["ratio_high"]
        if _is_num(low) and _is_num(high):
            cell.rel_ci = f"[{fmt_ratio(low)}, {fmt_ratio(high)}]"
            hib = higher_is_better(metric)
            if hib is not None and (float(low) > 1.0 or float(high) < 1.0):
                cell.rel_class = "better" if (float(low) > 1.0) == hib else "worse"
        else:
            cell.rel_ci = "no CI (n < 2)"
        if _is_num(row["p_holm"]):
            p, p_holm = float(row["p_value"]), float(row["p_holm"])
            cell.sig_title = f"Mann-Whitney p = {p:.3g}, Holm-adjusted {p_holm:.3g}"
            if row["significant"]:
                cell.sig = "*"
            elif _is_num(row["min_p"]) and float(row["min_p"]) > DEFAULT_ALPHA:
                cell.sig = "n too small"
                cell.sig_title += f"; these sample sizes cannot go below p = {row['min_p']:.3g}"
            else:
                cell.sig = "n.s."
    return cell


Points = dict[tuple[str, str, str, str], list[float]]  # (workload, parameters, metric, mode)


def _points(samples: pd.DataFrame) -> Points:
    """Every figure's repetitions, grouped once (the charts' dots)."""
    if samples.empty:
        return {}
    grouped = samples.groupby(["workload", "parameters", "metric", "mode"], sort=False)["value"]
    out: Points = {}
    for key, values in grouped.agg(list).items():
        w, p, m, mode = (str(k) for k in key)  # type: ignore[attr-defined]
        out[(w, p, m, mode)] = values
    return out


ByMetric = dict[str, dict[str, dict[str, Any]]]  # one section's summary rows: metric -> mode -> row


def _by_metric(group: pd.DataFrame) -> ByMetric:
    """A section's summary rows by metric and mode, read once (filtering the frame per metric and
    chart was most of the sections' time in a big run)."""
    out: ByMetric = {}
    for r in group.to_dict("records"):
        out.setdefault(str(r["metric"]), {})[str(r["mode"])] = cast(dict[str, Any], r)
    return out


def _bars_chart(
    workload: str,
    parameters: str,
    by_metric: ByMetric,
    present: Sequence[str],
    points: Points,
    title: str,
) -> str | None:
    """Bars of the chart metrics (and the host CPU per operation): median and its CI."""
    metrics = list(by_metric)
    rows = chart_metrics(metrics)
    efficiency = efficiency_metric(metrics)
    if efficiency is not None:
        rows.append([efficiency])
    panels: list[list[BarPanel]] = []
    for row in rows:
        out: list[BarPanel] = []
        for metric in row:
            by_mode = by_metric.get(metric, {})
            bars = [
                Bar(
                    mode=m,
                    median=float(by_mode[m]["median"]),
                    low=_num_or_none(by_mode[m]["median_ci_low"]),
                    high=_num_or_none(by_mode[m]["median_ci_high"]),
                    points=points.get((workload, parameters, metric, m), []),
                )
                for m in present
                if m in by_mode
            ]
            if bars:
                unit = unit_label(str(next(iter(by_mode.values()))["unit"]))
                out.append(BarPanel(metric_label(metric), unit, bars))
        panels.append(out)
    return bars_svg(panels, present, f"{title}: median per mode with its 95% CI")


def _num_or_none(value: object) -> float | None:
    return float(value) if _is_num(value) else None  # type: ignore[arg-type]


def _efficiency(
    by_metric: ByMetric, present: Sequence[str], manifest: Manifest | None
) -> tuple[str, list[EfficiencyCell]]:
    metric = efficiency_metric(list(by_metric))
    if metric is None:
        return "", []
    rows = by_metric.get(metric, {})
    unit = unit_label(str(next(iter(rows.values()))["unit"])) if rows else ""
    cells: list[EfficiencyCell] = []
    for m in present:
        r = rows.get(m)
        if r is None:
            continue
        ci = ""
        if _is_num(r["median_ci_low"]) and _is_num(r["median_ci_high"]):
            ci = f"CI {fmt(r['median_ci_low'])} {DASH} {fmt(r['median_ci_high'])}"
        versus = "reference" if r["reference"] == m else ""
        if _is_num(r["ratio"]):
            versus = f"{fmt_ratio(r['ratio'])} of the reference"
        cells.append(
            EfficiencyCell(mode_title(m, manifest), f"{fmt(r['median'])} {unit}", ci, versus)
        )
    return metric_label(metric), cells


def _sections(
    samples: pd.DataFrame,
    summary: pd.DataFrame,
    modes: Sequence[str],
    *,
    manifest: Manifest | None = None,
    latency: Mapping[tuple[str, str], list[LinePanel]] | None = None,
    series: Mapping[tuple[str, str], list[LinePanel]] | None = None,
) -> list[WorkloadSection]:
    sections: list[WorkloadSection] = []
    if summary.empty:
        return sections
    points = _points(samples)
    for index, ((workload, parameters), group) in enumerate(
        summary.groupby(["workload", "parameters"], sort=False)
    ):
        workload, parameters = str(workload), str(parameters)
        by_metric = _by_metric(group)
        in_group = {m for by_mode in by_metric.values() for m in by_mode}
        present = [m for m in modes if m in in_group]
        present += sorted(in_group - set(present))
        rows: list[MetricRow] = []
        last_direction: str | None = None
        for metric in sorted(by_metric, key=metric_sort_key):
            direction = metric_group(metric)
            by_mode = by_metric[metric]
            first = next(iter(by_mode.values()))
            reference = str(first["reference"])
            cells = [
                summary_cell(by_mode[m], metric, m == reference) if m in by_mode else Cell()
                for m in present
            ]
            rows.append(
                MetricRow(
                    metric=metric,
                    label=metric_label(metric, with_group=False),
                    unit=unit_label(str(first["unit"])),
                    note=metric_note(metric),
                    cells=cells,
                    direction=direction,
                    first_of_direction=direction != last_direction,
                    group_note=group_note(direction),
                )
            )
            last_direction = direction
        params = parse_parameters(parameters)
        rank = parameter_rank(workload)
        params.sort(key=lambda kv: (rank.get(kv[0], len(rank)), kv[0]))
        keys = [(k, v) for k, v in params if k in key_parameters(workload)]
        title = f"{workload} {', '.join(f'{k}={v}' for k, v in keys)}".strip()
        chart = _bars_chart(workload, parameters, by_metric, present, points, title)
        lat = (latency or {}).get((workload, parameters))
        ser = (series or {}).get((workload, parameters))
        eff_label, eff = _efficiency(by_metric, present, manifest)
        sections.append(
            WorkloadSection(
                anchor=f"w{index}",
                workload=workload,
                parameters=params,
                key_parameters=keys,
                rows=rows,
                chart=chart,
                modes=present,
                latency_chart=latency_svg(lat, present, f"{title}: latency percentiles")
                if lat
                else None,
                series_chart=timeseries_svg(ser, present, f"{title}: time series") if ser else None,
                efficiency=eff,
                efficiency_label=eff_label,
                title=title,
                raw_parameters=parameters,
            )
        )
    return sections


def _overview(sections: Sequence[WorkloadSection], modes: Sequence[str]) -> list[dict[str, Any]]:
    """Key metrics of every workload in one table: one row per (workload, metric), cells by mode."""
    out: list[dict[str, Any]] = []
    for section in sections:
        start = len(out)
        short = ", ".join(f"{k}={v}" for k, v in section.key_parameters)
        for row in section.rows:
            if not in_overview(row.metric):
                continue
            by_mode = dict(zip(section.modes, row.cells, strict=True))
            out.append(
                {
                    "anchor": section.anchor,
                    "workload": f"{section.workload} {short}".strip(),
                    "metric": metric_label(row.metric),
                    "unit": row.unit,
                    "cells": [by_mode.get(m) for m in modes],
                    "rowspan": 0,
                }
            )
        if len(out) > start:
            out[start]["rowspan"] = len(out) - start
    return out


def _description(manifest: Manifest) -> str:
    try:
        data = tomllib.loads(manifest.scenario.text)
    except (tomllib.TOMLDecodeError, ValueError):
        return ""
    value = data.get("description")
    return value if isinstance(value, str) else ""


@dataclass
class Notice:
    level: str  # "bad", "warn" or "info" (the callout's colour)
    title: str
    text: str = ""
    items: list[str] = field(default_factory=list)
    more: int = 0  # items not listed
    link: str = ""  # an anchor with the details


WARNING_ITEMS_MAX = 8


def _warnings(
    manifest: Manifest, summary: pd.DataFrame, sections: Sequence[WorkloadSection], is_tcg: bool
) -> list[Notice]:
    """Every reason to read the figures with care (the summary's warnings), most serious first."""
    out: list[Notice] = []
    titles = {(s.workload, s.raw_parameters): s for s in sections}
    if manifest.status != "complete":
        out.append(Notice("bad", f"Run {manifest.status}", manifest.error or "not every case ran"))
    failed = [c for c in manifest.cases if c.status == "failed"]
    failed_trials = [t for t in manifest.trials if t.status == "failed"]
    if failed or failed_trials:
        out.append(
            Notice(
                "bad",
                f"{len(failed)} failed case(s), {len(failed_trials)} failed guest(s)",
                "their errors and console tails are below",
                link="#failures",
            )
        )
    if is_tcg:
        out.append(Notice("warn", "Software emulation (TCG)", TCG_WARNING))
    for sk in manifest.skipped_modes:
        out.append(Notice("warn", f"Mode {sk.mode} skipped", sk.reason, link="#failures"))
    skipped_cases = [c for c in manifest.cases if c.status == "skipped"]
    if skipped_cases:
        items = [f"{c.case_id}: {c.error or 'skipped'}" for c in skipped_cases]
        out.append(
            Notice(
                "warn",
                f"{len(skipped_cases)} case(s) skipped",
                items=items[:WARNING_ITEMS_MAX],
                more=max(0, len(items) - WARNING_ITEMS_MAX),
                link="#failures",
            )
        )
    cross: list[str] = []
    unstable: list[str] = []
    for r in summary.to_dict("records") if not summary.empty else []:
        flags = r["flags"] or ()
        if not flags:
            continue
        section = titles.get((str(r["workload"]), str(r["parameters"])))
        where = section.title if section else f"{r['workload']} {r['parameters']}"
        who = f"{short_name(str(r['mode']))}, {where}, {metric_label(str(r['metric']))}"
        if any(f.kind is FlagKind.CROSS_CHECK for f in flags):
            cross.append(
                f"{who}: " + "; ".join(f.message for f in flags if f.kind is FlagKind.CROSS_CHECK)
            )
        others = [f.short for f in flags if f.kind is not FlagKind.CROSS_CHECK]
        if others:
            unstable.append(f"{who}: {', '.join(others)}")
    if cross:
        out.append(
            Notice(
                "bad",
                f"{len(cross)} figure(s) failed a cross-check",
                "what the workload reported disagrees with what libvirt counted in the same "
                "window by more than the limit",
                items=cross[:WARNING_ITEMS_MAX],
                more=max(0, len(cross) - WARNING_ITEMS_MAX),
            )
        )
    if unstable:
        out.append(
            Notice(
                "warn",
                f"{len(unstable)} unstable figure(s)",
                "CV ≥ 10%, a repetition ≥ 50% from the mean, or fewer than 3 repetitions "
                "(marked ⚠ in the tables; all in flags.json)",
                items=unstable[:WARNING_ITEMS_MAX],
                more=max(0, len(unstable) - WARNING_ITEMS_MAX),
            )
        )
    return out


def _best(
    sections: Sequence[WorkloadSection], summary: pd.DataFrame, manifest: Manifest
) -> list[dict[str, Any]]:
    """Per workload case: the best guest mode by throughput and by host CPU per operation."""

    def say(best: Best | None) -> str:
        if best is None:
            return DASH
        name = mode_title(best.mode, manifest)
        if best.runner_up is None:
            return f"{name} (the only guest mode)"
        other = mode_title(best.runner_up, manifest)
        if best.separated:
            return f"{name}, ahead of {other} (CIs apart)"
        return f"{name}, not separable from {other} (CIs overlap)"

    out: list[dict[str, Any]] = []
    for section in sections:
        rows = summary[
            (summary["workload"] == section.workload)
            & (summary["parameters"] == section.raw_parameters)
        ]
        metrics = rows["metric"].unique().tolist()
        tput, eff = throughput_metric(metrics), efficiency_metric(metrics)
        if tput is None and eff is None:
            continue
        out.append(
            {
                "anchor": section.anchor,
                "workload": section.title,
                "throughput_metric": metric_label(tput) if tput else "",
                "throughput": say(best_mode(rows, tput)) if tput else DASH,
                "efficiency_metric": metric_label(eff) if eff else "",
                "efficiency": say(best_mode(rows, eff)) if eff else DASH,
            }
        )
    return out


def _tail(path: Path, lines: int = 30) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


RAW_ROWS_MAX = 100


def _raw_appendix(run_path: Path, manifest: Manifest) -> dict[str, Any]:
    """Relative links to the run's files (the HTML sits in the run directory)."""
    files: dict[str, list[str]] = {}
    listed = manifest.raw_files or [
        str(p.relative_to(run_path)) for p in sorted((run_path / RAW).glob("*/*")) if p.is_file()
    ]
    for rel in listed:
        parts = rel.split("/")
        if len(parts) == 3 and parts[0] == RAW:
            files.setdefault(parts[1], []).append(rel)
    status = {c.case_id: c.status for c in manifest.cases}
    rows = [
        {"case": case, "status": status.get(case, "guest"), "files": sorted(found)}
        for case, found in sorted(files.items())
    ]
    top = [
        name for name in (MANIFEST, SAMPLES, SERIES, "flags.json") if (run_path / name).is_file()
    ]
    return {
        "top": top,
        "rows": rows[:RAW_ROWS_MAX],
        "more": max(0, len(rows) - RAW_ROWS_MAX),
        "total": len(rows),
    }


def _problems(run_path: Path, manifest: Manifest) -> dict[str, Any]:
    """Skipped and failed cases with their reasons and the console's last lines."""
    failed_trials = [
        {
            "mode": mode_title(t.mode, manifest),
            "repetition": t.repetition,
            "error": t.error or DASH,
            "console_tail": "\n".join((t.console_tail or "").splitlines()[-40:]),
        }
        for t in manifest.trials
        if t.status == "failed"
    ]
    cases = []
    for c in manifest.cases:
        if c.status == "ok":
            continue
        console = ""
        if c.status == "failed":
            for candidate in (
                run_path / RAW / c.case_id / "console.log",
                run_path / RAW / f"r{c.repetition}-{c.mode}" / "console.log",
            ):
                console = _tail(candidate)
                if console:
                    break
        cases.append(
            {
                "case_id": c.case_id,
                "mode": mode_title(c.mode, manifest),
                "status": c.status,
                "error": c.error or DASH,
                "console_tail": console,
            }
        )
    return {"failed_trials": failed_trials, "cases": cases}


def build_context(
    manifest: Manifest,
    samples: pd.DataFrame,
    summary: pd.DataFrame,
    modes: Sequence[str],
    run_path: Path,
    generated_at: str,
    *,
    series: pd.DataFrame | None = None,
) -> dict[str, Any]:
    """Everything the template shows, already formatted.  `series` is the run's series.csv
    (read from `run_path` when not given)."""
    samples = samples.copy()
    if not samples.empty:
        samples["parameters"] = samples["parameters"].fillna("").astype(str)
        samples["mode"] = samples["mode"].astype(str)
    colors = mode_colors(modes)
    reference = choose_reference(modes)
    reps: dict[str, set[int]] = {}
    for trial in manifest.trials:
        if trial.status == "ok":
            reps.setdefault(trial.mode, set()).add(trial.repetition)
    if not samples.empty:
        for mode, group in samples.groupby("mode"):
            reps.setdefault(str(mode), set()).update(int(r) for r in group["repetition"])
    mode_views = [
        ModeView(
            label=m,
            title=mode_title(m, manifest),
            color=colors.get(m, "#999999"),
            repetitions=len(reps.get(m, set())),
            is_reference=m == reference,
        )
        for m in modes
    ]
    accel = manifest.accelerator
    is_tcg = accel is not None and accel.name.lower() == "tcg"
    latency = latency_curves(run_path, manifest, list(modes))
    if series is None:
        series = load_series(run_path)
    sections = _sections(
        samples,
        summary,
        modes,
        manifest=manifest,
        latency=latency.panels,
        series=series_panels(series, manifest, list(modes)),
    )
    counts = {
        s: sum(1 for c in manifest.cases if c.status == s) for s in ("ok", "failed", "skipped")
    }
    raw = run_path / RAW
    problems = _problems(run_path, manifest)
    warnings = _warnings(manifest, summary, sections, is_tcg)
    if latency.unreadable:
        warnings.append(
            Notice(
                "warn",
                f"{len(latency.unreadable)} raw fio output(s) unreadable",
                "left out of the latency curves",
                items=latency.unreadable[:WARNING_ITEMS_MAX],
                more=max(0, len(latency.unreadable) - WARNING_ITEMS_MAX),
            )
        )
    return {
        "m": manifest,
        "title": manifest.scenario.name or manifest.run_id,
        "description": _description(manifest),
        "status": manifest.status,
        "started_at": manifest.started_at,
        "ended_at": manifest.ended_at or DASH,
        "duration": _duration(manifest.started_at, manifest.ended_at),
        "accel": accel,
        "is_tcg": is_tcg,
        "tcg_warning": TCG_WARNING,
        "warnings": warnings,
        "host": _flatten(manifest.host),
        "versions": sorted(manifest.versions.items()),
        "checks": _checks_view(manifest.checks),
        "status_class": _status_class,
        "modes": mode_views,
        "reference": mode_title(reference, manifest) if reference else None,
        "reference_is_baremetal": reference == BAREMETAL,
        "skipped_modes": manifest.skipped_modes,
        "failed_trials": problems["failed_trials"],
        "problem_cases": problems["cases"],
        "failed_cases": [c for c in manifest.cases if c.status == "failed"],
        "case_counts": counts,
        "n_samples": len(samples),
        "sections": sections,
        "workload_notes": workload_notes(s.workload for s in sections),
        "overview": _overview(sections, modes),
        # adaptive repetitions and density (vbench.adaptive, vbench.report.density)
        "repetitions_rule": manifest.repetitions.summary if manifest.repetitions else "",
        "density": density_context(summary, list(modes), fmt),
        "best": _best(sections, summary, manifest),
        "max_dots": MAX_DOTS,
        "raw": _raw_appendix(run_path, manifest),
        "samples_path": str((run_path / SAMPLES).resolve()),
        "samples_exists": (run_path / SAMPLES).is_file(),
        "raw_path": str(raw.resolve()),
        "run_path": str(run_path.resolve()),
        "vbench_version": __version__,
        "generated_at": generated_at,
        "for_pdf": False,  # see render_html
    }


# -- output --------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)  # one compile of the templates per process (HTML and PDF variant)
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("vbench.report", "templates"),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return env


# A PDF carries each workload's latency curves and time series up to this many workloads; a bigger
# run's PDF (the benchmark's 24 fio cases: 48 more charts, a fifth of its time) points to the HTML.
PDF_CURVES_MAX_SECTIONS = 12


def render_html(context: Mapping[str, Any], *, for_pdf: bool = False) -> str:
    """The report's HTML; `for_pdf` the variant printed to PDF: its result cells are condensed and
    a big run's curves left out (see the template: the same figures, fewer boxes for WeasyPrint to
    lay out, and what it leaves out said on the page)."""
    sections = context.get("sections") or []
    return (
        _environment()
        .get_template("report.html.j2")
        .render(
            {
                **context,
                "for_pdf": for_pdf,
                "pdf_curves": len(sections) <= PDF_CURVES_MAX_SECTIONS,
                "pdf_curves_max": PDF_CURVES_MAX_SECTIONS,
            }
        )
    )


def template(name: str) -> jinja2.Template:
    """A template of the report's environment (autoescape, strict undefined), e.g. compare's."""
    return _environment().get_template(name)


def base_css(footer: str) -> str:
    """The report's stylesheet (the `style` block of report.html.j2) for pages that share its
    look; `footer` is what every PDF page's bottom-left margin shows."""
    report = template("report.html.j2")
    return "".join(report.blocks["style"](report.new_context({"m": {"run_id": footer}})))


def render_pdf(html: str) -> bytes:
    """The PDF of the very same HTML (WeasyPrint; no network: the HTML has no external assets)."""
    import weasyprint

    def no_fetch(url: str) -> dict[str, Any]:
        raise ValueError(f"the report must be self-contained; refusing to fetch {url}")

    pdf = weasyprint.HTML(string=html, url_fetcher=no_fetch).write_pdf()
    if not isinstance(pdf, bytes):
        raise TypeError("WeasyPrint returned no PDF bytes")
    return pdf
