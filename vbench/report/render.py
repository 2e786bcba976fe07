"""The report's view model, its HTML (Jinja2, self-contained) and its PDF
(WeasyPrint, from the same HTML).
"""

from __future__ import annotations

import json
import math
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import jinja2
import pandas as pd

from vbench import __version__
from vbench.report.analysis import (
    BAREMETAL,
    higher_is_better,
    metric_label,
    metric_sort_key,
    mode_title,
    parse_parameters,
    split_metric,
    unit_label,
)
from vbench.report.plots import mode_colors, workload_chart_svg
from vbench.results import SAMPLES, Manifest

TCG_WARNING = (
    "Guests ran under QEMU's TCG software emulation: these figures compare the modes relative to "
    "each other on this machine only; they are not hardware figures."
)
DASH = "\u2013"  # en dash: empty cells and ranges
PARAMETER_ORDER = ("rw", "bs", "iodepth", "numjobs", "ioengine", "direct", "runtime_s", "ramp_s")


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
    ci: str = ""
    rel: str = ""
    rel_ci: str = ""
    rel_class: str = ""


@dataclass
class MetricRow:
    metric: str
    label: str
    unit: str
    cells: list[Cell]
    direction: str = ""
    first_of_direction: bool = False


@dataclass
class WorkloadSection:
    anchor: str
    workload: str
    parameters: list[tuple[str, str]]
    rows: list[MetricRow]
    chart: str | None
    modes: list[str]


@dataclass
class ModeView:
    label: str
    title: str
    color: str
    repetitions: int
    is_baseline: bool


@dataclass
class CheckView:
    rows: list[dict[str, str]] = field(default_factory=list)
    columns: list[str] = field(default_factory=list)
    modes: list[dict[str, Any]] = field(default_factory=list)
    other: str = ""


def _check_value(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, list | tuple):
        return ", ".join(v if isinstance(v, str) else json.dumps(v, default=str) for v in value)
    if isinstance(value, Mapping):
        return json.dumps(value, default=str)
    return str(value)


def _checks_view(checks: Mapping[str, Any] | None) -> CheckView | None:
    """Render whatever the host checks recorded, defensively (shape owned by `vbench.host`)."""
    if not checks:
        return None
    view = CheckView()
    items = checks.get("checks")
    if isinstance(items, list):
        preferred = ["id", "title", "status", "observed", "remedy"]
        keys: list[str] = []
        for item in items:
            if isinstance(item, Mapping):
                keys += [str(k) for k in item if str(k) not in keys]
        view.columns = [k for k in preferred if k in keys]
        extra = [k for k in keys if k not in preferred]
        if extra:
            view.columns.append("details")
        for item in items:
            if isinstance(item, Mapping):
                row = {k: _check_value(item.get(k)) for k in view.columns if k != "details"}
                if extra:
                    row["details"] = "; ".join(
                        f"{k}: {_check_value(item.get(k))}"
                        for k in extra
                        if item.get(k) not in (None, "", [], {})
                    )
                view.rows.append(row)
    modes = checks.get("modes")
    if isinstance(modes, list):
        for m in modes:
            if not isinstance(m, Mapping):
                continue
            blockers = m.get("blockers") or []
            if not isinstance(blockers, list):
                blockers = [blockers]
            ready = m.get("ready")
            view.modes.append(
                {
                    "mode": str(m.get("mode", "?")),
                    "ready": ready if isinstance(ready, bool) else None,
                    "blockers": [
                        b if isinstance(b, str) else json.dumps(b, default=str) for b in blockers
                    ],
                }
            )
    rest = {k: v for k, v in checks.items() if k not in ("checks", "modes")}
    if rest:
        view.other = json.dumps(rest, indent=2, default=str)[:4000]
    return view


def _status_class(status: str) -> str:
    s = status.lower()
    if s in ("pass", "passed", "ok", "yes", "ready", "true"):
        return "ok"
    if s in ("warn", "warning", "skip", "skipped", "unknown", "info"):
        return "warn"
    if s in ("fail", "failed", "error", "no", "false", "blocked"):
        return "bad"
    return ""


def _cell(row: Mapping[str, Any], metric: str, is_baseline: bool) -> Cell:
    n = int(row["n"])
    cell = Cell(median=fmt(row["median"]), n=n)
    if n >= 2:
        cell.spread = f"range {fmt(row['min'])} {DASH} {fmt(row['max'])}"
        if _is_num(row["ci_low"]) and _is_num(row["ci_high"]):
            half = (float(row["ci_high"]) - float(row["ci_low"])) / 2
            cell.ci = f"mean {fmt(row['mean'])} ± {fmt(half)}"
    else:
        cell.ci = "no CI (n = 1)"
    if is_baseline:
        cell.rel = "baseline"
        cell.rel_class = "base"
    elif _is_num(row["rel_pct"]):
        cell.rel = fmt_pct(row["rel_pct"])
        low, high = row["rel_low"], row["rel_high"]
        if _is_num(low) and _is_num(high):
            cell.rel_ci = f"[{fmt_pct(low)}, {fmt_pct(high)}]"
            hib = higher_is_better(metric)
            if hib is not None and (float(low) > 0 or float(high) < 0):
                better = (float(low) > 0) == hib
                cell.rel_class = "better" if better else "worse"
        else:
            cell.rel_ci = "no CI (n < 2)"
    return cell


def _sections(
    samples: pd.DataFrame, summary: pd.DataFrame, modes: Sequence[str]
) -> list[WorkloadSection]:
    sections: list[WorkloadSection] = []
    if summary.empty:
        return sections
    for index, ((workload, parameters), group) in enumerate(
        summary.groupby(["workload", "parameters"], sort=False)
    ):
        present = [m for m in modes if m in set(group["mode"])]
        present += sorted(set(group["mode"]) - set(present))
        rows: list[MetricRow] = []
        last_direction: str | None = None
        for metric in sorted(group["metric"].unique().tolist(), key=metric_sort_key):
            direction = split_metric(metric)[0]
            mrows = group[group["metric"] == metric]
            by_mode = {str(r["mode"]): r.to_dict() for _, r in mrows.iterrows()}
            baseline = str(mrows["baseline"].iloc[0]) if len(mrows) else ""
            cells = [
                _cell(by_mode[m], metric, m == baseline) if m in by_mode else Cell()
                for m in present
            ]
            rows.append(
                MetricRow(
                    metric=metric,
                    label=metric_label(metric, with_direction=False),
                    unit=unit_label(str(mrows["unit"].iloc[0])),
                    cells=cells,
                    direction=direction,
                    first_of_direction=direction != last_direction,
                )
            )
            last_direction = direction
        params = parse_parameters(str(parameters))
        rank = {k: i for i, k in enumerate(PARAMETER_ORDER)}
        params.sort(key=lambda kv: (rank.get(kv[0], len(rank)), kv[0]))
        wsamples = samples[
            (samples["workload"] == workload) & (samples["parameters"] == parameters)
        ]
        chart = workload_chart_svg(wsamples, group, present, salt=f"w{index}")
        sections.append(
            WorkloadSection(
                anchor=f"w{index}",
                workload=str(workload),
                parameters=params,
                rows=rows,
                chart=chart,
                modes=present,
            )
        )
    return sections


OVERVIEW_METRICS = ("iops", "bw", "clat_p99")


def _overview(sections: Sequence[WorkloadSection], modes: Sequence[str]) -> list[dict[str, Any]]:
    """Key metrics of every workload in one table: one row per (workload, metric), cells by mode."""
    out: list[dict[str, Any]] = []
    for section in sections:
        start = len(out)
        short = ", ".join(
            f"{k}={v}" for k, v in section.parameters if k in ("rw", "bs", "iodepth", "numjobs")
        )
        for row in section.rows:
            if split_metric(row.metric)[1] not in OVERVIEW_METRICS:
                continue
            by_mode = dict(zip(section.modes, row.cells, strict=True))
            out.append(
                {
                    "anchor": section.anchor,
                    "workload": f"{section.workload} {short}",
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


def build_context(
    manifest: Manifest,
    samples: pd.DataFrame,
    summary: pd.DataFrame,
    modes: Sequence[str],
    run_path: Path,
    generated_at: str,
) -> dict[str, Any]:
    """Everything the template shows, already formatted."""
    samples = samples.copy()
    if not samples.empty:
        samples["parameters"] = samples["parameters"].fillna("").astype(str)
        samples["mode"] = samples["mode"].astype(str)
    colors = mode_colors(modes)
    first = next((m for m in modes if m != BAREMETAL), None)
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
            is_baseline=m == first,
        )
        for m in modes
    ]
    accel = manifest.accelerator
    sections = _sections(samples, summary, modes)
    failed_trials = [t for t in manifest.trials if t.status == "failed"]
    failed_cases = [c for c in manifest.cases if c.status == "failed"]
    counts = {
        s: sum(1 for c in manifest.cases if c.status == s) for s in ("ok", "failed", "skipped")
    }
    raw = run_path / "raw"
    raw_cases = sorted(p.name for p in raw.iterdir() if p.is_dir()) if raw.is_dir() else []
    return {
        "m": manifest,
        "title": manifest.scenario.name or manifest.run_id,
        "description": _description(manifest),
        "status": manifest.status,
        "started_at": manifest.started_at,
        "ended_at": manifest.ended_at or DASH,
        "duration": _duration(manifest.started_at, manifest.ended_at),
        "accel": accel,
        "is_tcg": accel is not None and accel.name.lower() == "tcg",
        "tcg_warning": TCG_WARNING,
        "host": _flatten(manifest.host),
        "versions": sorted(manifest.versions.items()),
        "checks": _checks_view(manifest.checks),
        "status_class": _status_class,
        "modes": mode_views,
        "baseline": mode_title(first, manifest) if first else None,
        "skipped_modes": manifest.skipped_modes,
        "failed_trials": [
            {
                "mode": mode_title(t.mode, manifest),
                "repetition": t.repetition,
                "error": t.error or DASH,
                "console_tail": "\n".join((t.console_tail or "").splitlines()[-40:]),
            }
            for t in failed_trials
        ],
        "failed_cases": failed_cases,
        "case_counts": counts,
        "n_samples": len(samples),
        "sections": sections,
        "overview": _overview(sections, modes),
        "samples_path": str((run_path / SAMPLES).resolve()),
        "samples_exists": (run_path / SAMPLES).is_file(),
        "raw_path": str(raw.resolve()),
        "raw_cases": raw_cases,
        "run_path": str(run_path.resolve()),
        "vbench_version": __version__,
        "generated_at": generated_at,
    }


# -- output --------------------------------------------------------------------------------------


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("vbench.report", "templates"),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return env


def render_html(context: Mapping[str, Any]) -> str:
    return _environment().get_template("report.html.j2").render(**context)


def render_pdf(html: str) -> bytes:
    """The PDF of the very same HTML (WeasyPrint; no network: the HTML has no external assets)."""
    import weasyprint

    def no_fetch(url: str) -> dict[str, Any]:
        raise ValueError(f"the report must be self-contained; refusing to fetch {url}")

    pdf = weasyprint.HTML(string=html, url_fetcher=no_fetch).write_pdf()
    if not isinstance(pdf, bytes):
        raise TypeError("WeasyPrint returned no PDF bytes")
    return pdf
