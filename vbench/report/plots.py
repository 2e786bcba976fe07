"""Charts as inline SVG strings, drawn element by element (vector, self-contained, no script).

Why not a matplotlib figure per chart: a big run's report has dozens of charts, and a matplotlib
SVG with a dot per repetition took seconds to make and WeasyPrint minutes to draw (measured with
benchmarks/report_speed.py).  What matplotlib does well here, choosing tick positions, is still
its job (`matplotlib.ticker`).

Three kinds of chart:
* `bars_svg`: a panel per metric, a bar per mode at the median of its repetitions, whiskers at
  the bootstrap 95 % CI of that median (the tables' figures), dots for the repetitions (up to
  `MAX_DOTS` per mode);
* `latency_svg`: completion-latency percentile curves (p1 ... p99.99) per mode, both axes
  logarithmic-like (the percentile on a logit scale, the latency on a log scale);
* `timeseries_svg`: a figure per tick across the case (median over repetitions, band from the
  lowest to the highest repetition).

Colours are Okabe-Ito (safe for the common colour-vision deficiencies); each mode is also named on
the chart (axis labels, line-end labels, legend) and has its own marker and dash pattern, so no
chart relies on colour alone.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from matplotlib.ticker import MaxNLocator

from vbench.model import BAREMETAL
from vbench.report.analysis import in_chart, metric_group, metric_sort_key

# Okabe & Ito (2008), "Color Universal Design": guest modes in this order, bare metal black.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#D55E00", "#56B4E9", "#F0E442")
BAREMETAL_COLOR = "#000000"
MARKERS = ("circle", "square", "triangle", "diamond", "down", "cross", "plus")
DASHES = ("", "6 3", "2 2", "8 3 2 3", "4 2 1 2", "10 3", "1 2")
BAREMETAL_STYLE = ("cross", "3 2 1 2")
MAX_DOTS = 30  # repetitions drawn as dots per bar; more only make ink
FONT = "DejaVu Sans, Arial, Helvetica, sans-serif"
INK, MUTED, GRID = "#1d232b", "#5f6b7a", "#dde2e8"


@dataclass(frozen=True)
class Style:
    color: str
    marker: str
    dash: str


def mode_styles(modes: Sequence[str]) -> dict[str, Style]:
    """Colour, marker and dash pattern of each mode (guest modes in order; bare metal its own)."""
    styles: dict[str, Style] = {}
    for i, mode in enumerate(m for m in modes if m != BAREMETAL):
        styles[mode] = Style(
            PALETTE[i % len(PALETTE)], MARKERS[i % len(MARKERS)], DASHES[i % len(DASHES)]
        )
    styles[BAREMETAL] = Style(BAREMETAL_COLOR, *BAREMETAL_STYLE)
    return styles


def mode_colors(modes: Sequence[str]) -> dict[str, str]:
    return {m: s.color for m, s in mode_styles(modes).items()}


def short_name(mode: str) -> str:
    """A mode's name on a chart: `FV`, `PV`, `bare metal`, `FV-2`."""
    return "bare metal" if mode == BAREMETAL else mode.upper()


def chart_metrics(metrics: Sequence[str]) -> list[list[str]]:
    """The chart metrics of the catalogue present, one row per group:
    [[read.iops, read.bw, read.clat_p99], [write.iops, ...]]."""
    rows: dict[str, list[str]] = {}
    for metric in sorted(set(metrics), key=metric_sort_key):
        if in_chart(metric):
            rows.setdefault(metric_group(metric), []).append(metric)
    return list(rows.values())


# -- drawing -------------------------------------------------------------------------------------


def _n(v: float) -> str:
    return f"{v:.1f}".rstrip("0").rstrip(".")


def tick_label(v: float) -> str:
    """A short axis number: 0.5, 12, 1.5k, 250k, 3M."""
    a = abs(v)
    for div, suffix in ((1e6, "M"), (1e3, "k")):
        if a >= div * 10 or (a >= div and v % div == 0) or a >= div * 1.5:
            return f"{v / div:.3g}{suffix}"
    return f"{v:.3g}"


class _Svg:
    def __init__(self, width: float, height: float, label: str) -> None:
        self.width, self.height, self.label = width, height, label
        self.parts: list[str] = []

    def text(
        self,
        x: float,
        y: float,
        s: str,
        *,
        size: float = 10,
        anchor: str = "start",
        fill: str = INK,
        weight: str = "normal",
        rotate: bool = False,
    ) -> None:
        turn = f' transform="rotate(-90 {_n(x)} {_n(y)})"' if rotate else ""
        # SVG's defaults (start, normal) left out: thousands of labels in a big report's HTML
        extra = "" if anchor == "start" else f' text-anchor="{anchor}"'
        extra += "" if weight == "normal" else f' font-weight="{weight}"'
        self.parts.append(
            f'<text x="{_n(x)}" y="{_n(y)}" font-size="{size}" fill="{fill}"{extra}{turn}>'
            f"{html.escape(s)}</text>"
        )

    def line(
        self, x1: float, y1: float, x2: float, y2: float, stroke: str, width: float = 1.0
    ) -> None:
        self.parts.append(
            f'<line x1="{_n(x1)}" y1="{_n(y1)}" x2="{_n(x2)}" y2="{_n(y2)}" stroke="{stroke}" '
            f'stroke-width="{width}"/>'
        )

    def rect(self, x: float, y: float, w: float, h: float, fill: str, opacity: float = 1) -> None:
        self.parts.append(
            f'<rect x="{_n(x)}" y="{_n(y)}" width="{_n(w)}" height="{_n(h)}" fill="{fill}" '
            f'fill-opacity="{opacity}" stroke="{INK}" stroke-width="0.6"/>'
        )

    def polyline(
        self, points: Sequence[tuple[float, float]], stroke: str, width: float, dash: str
    ) -> None:
        if len(points) < 2:
            return
        pts = " ".join(f"{_n(x)},{_n(y)}" for x, y in points)
        d = f' stroke-dasharray="{dash}"' if dash else ""
        self.parts.append(
            f'<polyline points="{pts}" fill="none" stroke="{stroke}" stroke-width="{width}"'
            f' stroke-linejoin="round"{d}/>'
        )

    def band(self, points: Sequence[tuple[float, float]], fill: str) -> None:
        if len(points) < 3:
            return
        pts = " ".join(f"{_n(x)},{_n(y)}" for x, y in points)
        self.parts.append(f'<polygon points="{pts}" fill="{fill}" fill-opacity="0.16"/>')

    def path(
        self,
        d: str,
        *,
        fill: str = "none",
        stroke: str = "none",
        width: float = 1.0,
        opacity: float = 1.0,
    ) -> None:
        """One element for many shapes: WeasyPrint's cost is per SVG node."""
        if d:
            alpha = "" if opacity == 1.0 else f' fill-opacity="{opacity}"'
            self.parts.append(
                f'<path d="{d}" fill="{fill}"{alpha} stroke="{stroke}" stroke-width="{width}"/>'
            )

    def markers(
        self, kind: str, points: Sequence[tuple[float, float]], color: str, r: float = 3.2
    ) -> None:
        """The markers of one line, as one path (crosses and pluses stroked, others filled)."""
        if kind in ("cross", "plus"):
            d = "".join(_stroke_marker(kind, x, y, r) for x, y in points)
            self.path(d, stroke=color, width=1.8)
        else:
            d = "".join(_filled_marker(kind, x, y, r) for x, y in points)
            self.path(d, fill=color, stroke="#ffffff", width=0.6)

    def marker(self, kind: str, x: float, y: float, color: str, r: float = 3.2) -> None:
        self.markers(kind, [(x, y)], color, r)

    def render(self) -> str:
        return (
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{_n(self.width)}" '
            f'height="{_n(self.height)}" viewBox="0 0 {_n(self.width)} {_n(self.height)}" '
            f'role="img" aria-label="{html.escape(self.label)}" font-family="{FONT}">'
            f"<title>{html.escape(self.label)}</title>" + "".join(self.parts) + "</svg>"
        )


def _filled_marker(kind: str, x: float, y: float, r: float) -> str:
    if kind == "circle":
        return f"M{_n(x - r)},{_n(y)}a{r},{r} 0 1,0 {_n(2 * r)},0a{r},{r} 0 1,0 {_n(-2 * r)},0Z"
    if kind == "square":
        pts = [(x - r, y - r), (x + r, y - r), (x + r, y + r), (x - r, y + r)]
    elif kind == "triangle":
        pts = [(x, y - r * 1.2), (x + r * 1.1, y + r * 0.8), (x - r * 1.1, y + r * 0.8)]
    elif kind == "down":
        pts = [(x, y + r * 1.2), (x + r * 1.1, y - r * 0.8), (x - r * 1.1, y - r * 0.8)]
    else:  # diamond
        pts = [(x, y - r * 1.3), (x + r, y), (x, y + r * 1.3), (x - r, y)]
    return "M" + "L".join(f"{_n(px)},{_n(py)}" for px, py in pts) + "Z"


def _stroke_marker(kind: str, x: float, y: float, r: float) -> str:
    if kind == "plus":
        return f"M{_n(x - r)},{_n(y)}H{_n(x + r)}M{_n(x)},{_n(y - r)}V{_n(y + r)}"
    a = r * 0.8
    return (
        f"M{_n(x - a)},{_n(y - a)}L{_n(x + a)},{_n(y + a)}"
        f"M{_n(x - a)},{_n(y + a)}L{_n(x + a)},{_n(y - a)}"
    )


def _segments(segs: Sequence[tuple[float, float, float, float]]) -> str:
    return "".join(f"M{_n(a)},{_n(b)}L{_n(c)},{_n(d)}" for a, b, c, d in segs)


@dataclass
class _Axis:
    """Data to pixels on one axis; `kind` linear, log (log10) or logit (percentiles)."""

    lo: float
    hi: float
    px0: float
    px1: float
    kind: str = "linear"

    def _t(self, v: float) -> float:
        if self.kind == "log":
            return math.log10(max(v, 1e-12))
        if self.kind == "logit":
            p = min(max(v, 1e-6), 100 - 1e-6) / 100
            return math.log10(p / (1 - p))
        return v

    def __call__(self, v: float) -> float:
        a, b = self._t(self.lo), self._t(self.hi)
        if b == a:
            return (self.px0 + self.px1) / 2
        return self.px0 + (self._t(v) - a) / (b - a) * (self.px1 - self.px0)

    def ticks(self) -> list[float]:
        if self.kind == "logit":
            marks = (1, 10, 50, 90, 99, 99.9, 99.99, 99.999)
            return [p for p in marks if self.lo - 1e-9 <= p <= self.hi + 1e-9]
        if self.kind == "log":
            lo, hi = math.floor(math.log10(self.lo)), math.ceil(math.log10(self.hi))
            decades = [10.0**k for k in range(lo, hi + 1)]
            subs = (1, 2, 5) if hi - lo <= 2 else (1,)
            vals = [d * s for d in decades for s in subs]
            return [v for v in vals if self.lo * 0.999 <= v <= self.hi * 1.001]
        locs = MaxNLocator(nbins=5, steps=[1, 2, 2.5, 5, 10]).tick_values(self.lo, self.hi)
        return [float(v) for v in locs if self.lo - 1e-9 <= v <= self.hi * 1.0001 + 1e-12]


def _log_range(values: Sequence[float]) -> tuple[float, float]:
    pos = [v for v in values if v > 0 and math.isfinite(v)]
    if not pos:
        return 1.0, 10.0
    lo, hi = min(pos), max(pos)
    lo = lo / 1.25
    hi = hi * 1.25
    if hi / lo < 10:  # at least a decade, centred
        mid = math.sqrt(lo * hi)
        lo, hi = mid / math.sqrt(10), mid * math.sqrt(10)
    return lo, hi


def _frame(
    svg: _Svg,
    x0: float,
    y0: float,
    w: float,
    h: float,
    yaxis: _Axis,
    title: str,
    unit: str,
) -> None:
    """Title, horizontal grid lines with labels, the y unit, the x base line."""
    svg.text(x0 - 40, y0 - 8, title, size=10, weight="bold")
    ticks = yaxis.ticks()
    svg.path(_segments([(x0, yaxis(t), x0 + w, yaxis(t)) for t in ticks]), stroke=GRID, width=0.7)
    for t in ticks:
        svg.text(x0 - 4, yaxis(t) + 3.2, tick_label(t), size=8, anchor="end", fill=MUTED)
    if unit:
        svg.text(x0 - 34, y0 + h / 2, unit, size=8, anchor="middle", fill=MUTED, rotate=True)
    svg.line(x0, y0 + h, x0 + w, y0 + h, "#9aa5b1", 0.8)


def _spread(ys: list[float], gap: float) -> list[float]:
    """Label positions near `ys`, at least `gap` apart, in the same order."""
    order = sorted(range(len(ys)), key=lambda i: ys[i])
    out = list(ys)
    for k in range(1, len(order)):
        prev, cur = order[k - 1], order[k]
        out[cur] = max(out[cur], out[prev] + gap)
    return out


def _legend(svg: _Svg, x: float, y: float, items: Sequence[tuple[str, Style]]) -> float:
    """The legend from `x` on; returns where it ends."""
    for name, style in items:
        svg.polyline([(x, y - 3), (x + 22, y - 3)], style.color, 2, style.dash)
        svg.marker(style.marker, x + 11, y - 3, style.color)
        svg.text(x + 26, y, name, size=9)
        x += 34 + 6.2 * len(name)
    return x


# -- bars ----------------------------------------------------------------------------------------


@dataclass
class Bar:
    mode: str
    median: float
    low: float | None  # the bootstrap CI of the median
    high: float | None
    points: list[float] = field(default_factory=list)  # the repetitions


@dataclass
class BarPanel:
    title: str
    unit: str
    bars: list[Bar]


PANEL_W, PANEL_H = 180.0, 120.0
LEFT, TOP, BOTTOM, GAP = 48.0, 34.0, 22.0, 26.0


def bars_svg(rows: Sequence[Sequence[BarPanel]], modes: Sequence[str], label: str) -> str | None:
    """A grid of bar panels (a row per metric group)."""
    rows = [r for r in rows if r]
    if not rows:
        return None
    styles = mode_styles(modes)
    ncols = max(len(r) for r in rows)
    cell_w, cell_h = LEFT + PANEL_W + GAP, TOP + PANEL_H + BOTTOM
    svg = _Svg(ncols * cell_w, len(rows) * cell_h + 4, label)
    for r, row in enumerate(rows):
        for c, panel in enumerate(row):
            _bar_panel(svg, c * cell_w + LEFT, r * cell_h + TOP, panel, styles)
    return svg.render()


def _bar_panel(svg: _Svg, x0: float, y0: float, panel: BarPanel, styles: dict[str, Style]) -> None:
    tops = [0.0]
    for b in panel.bars:
        tops += [b.median, *(v for v in (b.high,) if v is not None)]
        if len(b.points) <= MAX_DOTS:
            tops += b.points
    top = max(v for v in tops if math.isfinite(v))
    yaxis = _Axis(0.0, top * 1.12 if top > 0 else 1.0, y0 + PANEL_H, y0)
    yaxis.hi = max(yaxis.ticks()[-1], yaxis.hi)
    _frame(svg, x0, y0, PANEL_W, PANEL_H, yaxis, panel.title, panel.unit)
    slot = PANEL_W / max(len(panel.bars), 1)
    for i, b in enumerate(panel.bars):
        style = styles.get(b.mode, Style("#999999", "circle", ""))
        cx = x0 + slot * (i + 0.5)
        bw = slot * 0.62
        svg.rect(cx - bw / 2, yaxis(b.median), bw, yaxis(0) - yaxis(b.median), style.color, 0.85)
        if b.low is not None and b.high is not None:
            lo, hi = yaxis(b.low), yaxis(b.high)
            whiskers = [(cx, lo, cx, hi), (cx - 5, lo, cx + 5, lo), (cx - 5, hi, cx + 5, hi)]
            svg.path(_segments(whiskers), stroke=INK, width=1.3)
        if len(b.points) <= MAX_DOTS:
            k = len(b.points)
            step = min(5.0, bw * 0.7 / max(k, 1))
            dots = [(cx + (j - (k - 1) / 2) * step, yaxis(v)) for j, v in enumerate(b.points)]
            svg.path(
                "".join(_filled_marker("circle", x, y, 2.0) for x, y in dots),
                fill="#ffffff",
                stroke=INK,
                width=0.7,
            )
        svg.text(cx, y0 + PANEL_H + 12, short_name(b.mode), size=8.5, anchor="middle")


# -- lines (latency percentiles, time series) ----------------------------------------------------


@dataclass
class Line:
    mode: str
    xs: list[float]
    ys: list[float]
    lows: list[float] | None = None  # a band (the repetitions' range), same length
    highs: list[float] | None = None


@dataclass
class LinePanel:
    title: str
    unit: str
    lines: list[Line]
    xlabel: str = ""


LINE_W, LINE_H, LINE_RIGHT = 250.0, 140.0, 70.0


def latency_svg(panels: Sequence[LinePanel], modes: Sequence[str], label: str) -> str | None:
    """Percentile curves: x the percentile (logit scale), y the latency (log scale)."""
    return _lines_svg(panels, modes, label, xkind="logit", ykind="log")


def timeseries_svg(panels: Sequence[LinePanel], modes: Sequence[str], label: str) -> str | None:
    """Figures over the case's time: x seconds since its first tick, y from 0."""
    return _lines_svg(panels, modes, label, xkind="linear", ykind="linear")


def _lines_svg(
    panels: Sequence[LinePanel], modes: Sequence[str], label: str, *, xkind: str, ykind: str
) -> str | None:
    panels = [p for p in panels if any(len(line.xs) >= 1 for line in p.lines)]
    if not panels:
        return None
    styles = mode_styles(modes)
    present = [m for m in modes if any(line.mode == m for p in panels for line in p.lines)]
    ncols = min(len(panels), 2 if xkind == "logit" else 3)
    nrows = math.ceil(len(panels) / ncols)
    cell_w = LEFT + LINE_W + LINE_RIGHT
    cell_h = TOP + LINE_H + BOTTOM + 14
    legend_h = 18.0
    svg = _Svg(ncols * cell_w, nrows * cell_h + legend_h, label)
    end = _legend(svg, 8, 13, [(short_name(m), styles[m]) for m in present if m in styles])
    # The x axis is the same in every panel: named once, beside the legend, not under each panel
    # (WeasyPrint lays SVG text out letter by letter: repeated labels were a tenth of a PDF's time).
    xlabels = {p.xlabel for p in panels}
    shared = xlabels.pop() if len(xlabels) == 1 else None
    if shared:
        svg.text(end + 14, 13, f"x axis: {shared}", size=8.5, fill=MUTED)
    for i, panel in enumerate(panels):
        x0 = (i % ncols) * cell_w + LEFT
        y0 = (i // ncols) * cell_h + TOP + legend_h
        _line_panel(svg, x0, y0, panel, styles, xkind, ykind, xlabel=not shared)
    return svg.render()


def _line_panel(
    svg: _Svg,
    x0: float,
    y0: float,
    panel: LinePanel,
    styles: dict[str, Style],
    xkind: str,
    ykind: str,
    *,
    xlabel: bool = True,
) -> None:
    xs = [x for line in panel.lines for x in line.xs]
    ys = [y for line in panel.lines for y in (*line.ys, *(line.highs or ()), *(line.lows or ()))]
    ys = [y for y in ys if math.isfinite(y)]
    if ykind == "log":
        ylo, yhi = _log_range(ys)
    else:
        ylo, yhi = 0.0, (max(ys) * 1.1 if ys and max(ys) > 0 else 1.0)
    yaxis = _Axis(ylo, yhi, y0 + LINE_H, y0, ykind)
    if ykind == "linear":
        yaxis.hi = max(yaxis.ticks()[-1], yaxis.hi)
    xaxis = _Axis(min(xs), max(xs) if max(xs) > min(xs) else min(xs) + 1, x0, x0 + LINE_W, xkind)
    _frame(svg, x0, y0, LINE_W, LINE_H, yaxis, panel.title, panel.unit)
    xticks = xaxis.ticks()
    svg.path(
        _segments([(xaxis(t), y0 + LINE_H, xaxis(t), y0 + LINE_H + 3) for t in xticks]),
        stroke="#9aa5b1",
        width=0.8,
    )
    for t in xticks:
        x = xaxis(t)
        text = f"p{t:g}" if xkind == "logit" else tick_label(t)
        svg.text(x, y0 + LINE_H + 13, text, size=8, anchor="middle", fill=MUTED)
    if xlabel and panel.xlabel:
        svg.text(x0 + LINE_W / 2, y0 + LINE_H + 26, panel.xlabel, size=8, anchor="middle")
    ends: list[tuple[float, str, str]] = []
    for line in panel.lines:
        style = styles.get(line.mode, Style("#999999", "circle", ""))
        if line.lows is not None and line.highs is not None:
            upper = [(xaxis(x), yaxis(h)) for x, h in zip(line.xs, line.highs, strict=True)]
            lower = [(xaxis(x), yaxis(lo)) for x, lo in zip(line.xs, line.lows, strict=True)]
            svg.band(upper + lower[::-1], style.color)
        pts = [(xaxis(x), yaxis(y)) for x, y in zip(line.xs, line.ys, strict=True)]
        svg.polyline(pts, style.color, 1.8, style.dash)
        every = max(1, math.ceil(len(pts) / 12))
        shown = [pt for j, pt in enumerate(pts) if j % every == 0 or j == len(pts) - 1]
        svg.markers(style.marker, shown, style.color, 2.8)
        if pts:
            ends.append((pts[-1][1], short_name(line.mode), style.color))
    placed = _spread([y for y, _, _ in ends], 10.0)
    for (_, name, color), y in zip(ends, placed, strict=True):
        svg.text(x0 + LINE_W + 5, y + 3, name, size=8.5, fill=color, weight="bold")
