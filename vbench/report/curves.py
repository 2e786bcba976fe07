"""The report's curves, gathered per (workload, parameters, mode) over the repetitions:

* latency percentiles (p1 ... p99.99) from each fio case's own output (raw/<case>/fio.json);
* time series from series.csv (vbench.series): per tick, the rate of the samplers' counters over
  the tick before it: the QEMU process's CPU (libvirt cpu.time), the guest's CPU busy share
  (guest agent cpu.busy / cpu.idle), the host's CPU busy share (/proc/stat), disk and network
  throughput (libvirt block / interface bytes).

Per tick (or percentile) the line is the median over the repetitions, the band their range.
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from vbench.errors import WorkloadOutputError
from vbench.report.plots import Line, LinePanel
from vbench.results import RAW, Manifest
from vbench.workloads.fio import Fio, clat_percentiles

Figure = tuple[str, str]  # (workload, parameters)


def _ok_cases(manifest: Manifest) -> dict[str, tuple[str, str, str]]:
    """case id -> (workload, parameters, mode) of every case that ran."""
    return {
        c.case_id: (c.workload, c.parameters, c.mode) for c in manifest.cases if c.status == "ok"
    }


def _line(mode: str, by_x: Mapping[float, list[float]]) -> Line:
    xs = sorted(by_x)
    return Line(
        mode=mode,
        xs=xs,
        ys=[statistics.median(by_x[x]) for x in xs],
        lows=[min(by_x[x]) for x in xs],
        highs=[max(by_x[x]) for x in xs],
    )


@dataclass
class LatencyCurves:
    panels: dict[Figure, list[LinePanel]]
    unreadable: list[str]  # raw files that exist but are not fio JSON (named in the report)


def latency_curves(run_path: Path, manifest: Manifest, modes: list[str]) -> LatencyCurves:
    """Per fio case: a panel per direction, a line per mode (median over repetitions)."""
    gathered: dict[tuple[str, str, str, str], dict[float, list[float]]] = {}
    unreadable: list[str] = []
    for case_id, (workload, parameters, mode) in _ok_cases(manifest).items():
        if workload != Fio.kind:
            continue
        path = run_path / RAW / case_id / Fio.raw_name
        try:
            curves = clat_percentiles(path.read_text(encoding="utf-8", errors="replace"))
        except FileNotFoundError:
            continue
        except (OSError, WorkloadOutputError):
            unreadable.append(f"{RAW}/{case_id}/{Fio.raw_name}")
            continue
        for direction, points in curves.items():
            into = gathered.setdefault((workload, parameters, direction, mode), {})
            for p, v in points.items():
                into.setdefault(p, []).append(v)
    rank = {m: i for i, m in enumerate(modes)}
    panels: dict[Figure, list[LinePanel]] = {}
    for (workload, parameters, direction, mode), by_p in sorted(
        gathered.items(), key=lambda kv: (kv[0][2], rank.get(kv[0][3], len(rank)))
    ):
        runs = max(len(v) for v in by_p.values())
        by_p = {p: v for p, v in by_p.items() if len(v) == runs}  # percentiles every run has
        figure = panels.setdefault((workload, parameters), [])
        panel = next((p for p in figure if p.title == f"{direction} completion latency"), None)
        if panel is None:
            panel = LinePanel(f"{direction} completion latency", "µs", [], "percentile")
            figure.append(panel)
        panel.lines.append(_line(mode, by_p))
    return LatencyCurves(panels, unreadable)


# -- time series ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Signal:
    title: str
    unit: str
    source: str
    pattern: str  # counters summed (fullmatch on the metric)
    scale: float  # rate (per second) times this
    share_of: str | None = None  # a second counter: the signal is d(pattern) / (d + d(share_of))
    total: bool = False  # share_of is the total itself: d(pattern) / d(share_of)


SIGNALS: tuple[Signal, ...] = (
    Signal("QEMU CPU (host)", "% of a core", "libvirt", r"cpu\.time", 100 / 1e9),
    Signal("guest CPU busy", "%", "guest", r"cpu\.busy", 100.0, share_of=r"cpu\.idle"),
    Signal(
        "host CPU busy", "%", "host", r"cpu\.busy_s", 100.0, share_of=r"cpu\.total_s", total=True
    ),
    Signal("disk throughput", "MiB/s", "libvirt", r"block\.[^.]+\.(rd|wr)\.bytes", 1 / 2**20),
    Signal("network throughput", "Mbit/s", "libvirt", r"net\.[^.]+\.(rx|tx)\.bytes", 8 / 1e6),
)


def _matching(rows: pd.DataFrame, pattern: str) -> pd.DataFrame:
    """The rows whose metric fullmatches `pattern` (each distinct name matched once)."""
    names = [str(n) for n in rows["metric"].unique()]
    return rows[rows["metric"].isin([n for n in names if re.fullmatch(pattern, n)])]


def _increments(rows: pd.DataFrame) -> pd.DataFrame:
    """Per case and tick: the summed increase of the counters since the previous tick, and dt."""
    rows = rows.sort_values(["case_id", "metric", "t_s"], kind="stable")
    grouped = rows.groupby(["case_id", "metric"], sort=False, observed=True)
    rows = rows.assign(dv=grouped["value"].diff(), dt=grouped["t_s"].diff()).dropna()
    return rows.groupby(["case_id", "t_s"], sort=False, observed=True).agg(
        dv=("dv", "sum"), dt=("dt", "max")
    )


def series_panels(
    series: pd.DataFrame, manifest: Manifest, modes: list[str]
) -> dict[Figure, list[LinePanel]]:
    """Per (workload, parameters): a panel per signal the series has, a line per mode."""
    cases = _ok_cases(manifest)
    if series.empty or not cases:
        return {}
    series = series[series["case_id"].isin(cases.keys())]
    # Categories: a big run has ~10^6 rows but a few hundred distinct names; sorting, grouping and
    # matching them as codes (and each name once) is what keeps this under a second.
    series = series.astype({"case_id": "category", "source": "category", "metric": "category"})
    by_source = {str(k): g for k, g in series.groupby("source", sort=False, observed=True)}
    out: dict[Figure, list[LinePanel]] = {}
    rank = {m: i for i, m in enumerate(modes)}
    for signal in SIGNALS:
        own = by_source.get(signal.source)
        if own is None:
            continue
        part = _matching(own, signal.pattern)
        if part.empty:
            continue
        inc = _increments(part)
        if signal.share_of is not None:
            other = _increments(_matching(own, signal.share_of))
            joined = inc.merge(other, left_index=True, right_index=True, suffixes=("", "_o"))
            denominator = joined["dv_o"] if signal.total else joined["dv"] + joined["dv_o"]
            # a share of jiffies or milliseconds: rounding may step a hair past 0 or 100 %
            value = (joined["dv"] / denominator.where(denominator > 0) * signal.scale).clip(0, 100)
        else:
            value = inc["dv"] / inc["dt"].where(inc["dt"] > 0) * signal.scale
        frame = value.rename("y").reset_index().dropna()
        frame = frame[np.isfinite(frame["y"].to_numpy(dtype=float))]
        if frame.empty:
            continue
        step = float(inc["dt"].median()) if len(inc) else 1.0
        step = step if step > 0 else 1.0
        frame["x"] = (frame["t_s"] / step).round() * step
        case = frame["case_id"].astype(str)
        for i, column in enumerate(("workload", "parameters", "mode")):
            frame[column] = case.map({c: key[i] for c, key in cases.items()})
        stats = frame.groupby(["workload", "parameters", "mode", "x"], sort=False)["y"].agg(
            ["median", "min", "max"]
        )
        for (workload, parameters, mode), g in stats.groupby(level=[0, 1, 2], sort=False):
            g = g.droplevel([0, 1, 2]).sort_index()
            figure = out.setdefault((str(workload), str(parameters)), [])
            panel = next((p for p in figure if p.title == signal.title), None)
            if panel is None:
                panel = LinePanel(signal.title, signal.unit, [], "seconds into the case")
                figure.append(panel)
            panel.lines.append(
                Line(
                    str(mode),
                    [float(x) for x in g.index],
                    g["median"].tolist(),
                    g["min"].tolist(),
                    g["max"].tolist(),
                )
            )
    for figure in out.values():
        for panel in figure:
            panel.lines.sort(key=lambda line: rank.get(line.mode, len(rank)))
    return out
