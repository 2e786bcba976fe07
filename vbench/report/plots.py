"""Charts as inline SVG strings (matplotlib's object API, no pyplot state, no files).

One figure per workload: a panel per chart metric of the catalogue (for fio: IOPS, bandwidth, p99
completion latency) and a row per group (for fio: the direction).  In each panel a bar is the
median of a mode's repetitions, the black mark and whiskers are the mean and its 95% confidence
interval (Student t, when n >= 2), and the dots are the repetitions.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence

import matplotlib
import pandas as pd
from matplotlib.figure import Figure

from vbench.model import BAREMETAL
from vbench.report.analysis import (
    in_chart,
    metric_group,
    metric_label,
    metric_sort_key,
    unit_label,
)

PALETTE = ("#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B3", "#937860", "#DA8BC3", "#8C8C8C")
BAREMETAL_COLOR = "#555555"


def mode_colors(modes: Sequence[str]) -> dict[str, str]:
    colors: dict[str, str] = {}
    for i, mode in enumerate(m for m in modes if m != BAREMETAL):
        colors[mode] = PALETTE[i % len(PALETTE)]
    colors[BAREMETAL] = BAREMETAL_COLOR
    return colors


def chart_metrics(metrics: Sequence[str]) -> list[list[str]]:
    """The chart metrics of the catalogue present, one row per group:
    [[read.iops, read.bw, read.clat_p99], [write.iops, ...]]."""
    rows: dict[str, list[str]] = {}
    for metric in sorted(set(metrics), key=metric_sort_key):
        if in_chart(metric):
            rows.setdefault(metric_group(metric), []).append(metric)
    return list(rows.values())


def _axis_label(mode: str) -> str:
    return "bare metal" if mode == BAREMETAL else mode.upper()


def workload_chart_svg(
    samples: pd.DataFrame,
    summary: pd.DataFrame,
    modes: Sequence[str],
    *,
    salt: str,
) -> str | None:
    """An SVG figure of one workload's samples and summary rows; None without key metrics."""
    rows = chart_metrics(summary["metric"].unique().tolist())
    if not rows:
        return None
    colors = mode_colors(modes)
    ncols = max(len(r) for r in rows)
    with matplotlib.rc_context(
        {
            "svg.fonttype": "none",
            "svg.hashsalt": salt,
            "font.family": "DejaVu Sans",
            "font.size": 8.5,
            "axes.titlesize": 9,
            "axes.spines.top": False,
            "axes.spines.right": False,
            "axes.grid": True,
            "axes.grid.axis": "y",
            "grid.color": "#dddddd",
            "grid.linewidth": 0.6,
            "axes.axisbelow": True,
        }
    ):
        fig = Figure(figsize=(2.45 * ncols, 2.0 * len(rows)), layout="constrained")
        axes = fig.subplots(len(rows), ncols, squeeze=False)
        for r, row in enumerate(rows):
            for c in range(ncols):
                ax = axes[r][c]
                if c >= len(row):
                    ax.set_visible(False)
                    continue
                _panel(ax, row[c], samples, summary, modes, colors)
        buf = io.StringIO()
        fig.savefig(
            buf,
            format="svg",
            metadata={"Date": None, "Creator": None, "Format": None, "Type": None},
        )
    text = buf.getvalue()
    return text[text.index("<svg") :]


def _panel(
    ax: object,
    metric: str,
    samples: pd.DataFrame,
    summary: pd.DataFrame,
    modes: Sequence[str],
    colors: dict[str, str],
) -> None:
    from matplotlib.axes import Axes

    assert isinstance(ax, Axes)
    rows = summary[summary["metric"] == metric]
    by_mode = {str(r["mode"]): r for _, r in rows.iterrows()}
    present = [m for m in modes if m in by_mode] + sorted(set(by_mode) - set(modes))
    xs = list(range(len(present)))
    medians = [float(by_mode[m]["median"]) for m in present]
    ax.bar(xs, medians, width=0.62, color=[colors.get(m, "#999999") for m in present], alpha=0.85)
    points = samples[samples["metric"] == metric]
    for x, mode in zip(xs, present, strict=True):
        row = by_mode[mode]
        low, high = row["ci_low"], row["ci_high"]
        mean = float(row["mean"])
        if low is not None and high is not None and not pd.isna(low) and not pd.isna(high):
            ax.errorbar(
                [x],
                [mean],
                yerr=[[mean - float(low)], [float(high) - mean]],
                fmt="_",
                color="black",
                markersize=9,
                elinewidth=1.1,
                capsize=4,
                zorder=3,
            )
        values = [float(v) for v in points[points["mode"] == mode]["value"].tolist()]
        k = len(values)
        offsets = [(i - (k - 1) / 2) * min(0.09, 0.36 / max(k, 1)) for i in range(k)]
        ax.scatter(
            [x + o for o in offsets],
            values,
            s=14,
            color="white",
            edgecolors="black",
            linewidths=0.7,
            zorder=4,
        )
    ax.set_xticks(xs, [_axis_label(m) for m in present])
    unit = unit_label(str(rows["unit"].iloc[0])) if len(rows) else ""
    ax.set_title(metric_label(metric), loc="left")
    ax.set_ylabel(unit)
    highs = [float(v) for v in rows["ci_high"].tolist() if v is not None and not pd.isna(v)]
    top = max([*medians, *highs, *(float(v) for v in points["value"].tolist())], default=1.0)
    ax.set_ylim(0, top * 1.15 if math.isfinite(top) and top > 0 else 1.0)
    ax.set_xlim(-0.6, len(present) - 0.4)
