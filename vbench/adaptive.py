"""Adaptive repetitions: after each round, is every headline figure known well enough?  (Pure.)

`[run] repetitions = { min = 3, max = 10, target_ci_pct = 5 }`: the runner runs `min` rounds (a
round = every trial of one repetition, modes interleaved), then asks `decide` after each round.

**Headline figures** are, per (mode, workload case), the metrics the workload's own catalogue marks
`overview` (its key results: fio's IOPS, bandwidth and clat p99 of each direction it did I/O in,
stress-ng's bogo-ops/s, iperf3's throughput, sockperf's round-trip percentiles).  The runner's
own metrics (host cost, boot time) explain a figure and do not count.  In a density trial of N > 1
guests (`density=N` in the case's parameters) the per-guest values are N per round, not one, so
there the headline figures are the density aggregates the catalogue marks `overview`
(`agg.<metric>`, the sum over the guests: one value per round); at N = 1 (and on bare metal,
`density=1`) the single guest's figures count as usual.

**The width** of a figure is the half width of the 95 % bootstrap CI of its median
(`vbench.stats.summarize`), as a percentage of that median.  It is undefined (counted as wider
than any target) with fewer than two values, or with a zero median and a non-zero interval.

**The rule** (`decide`): before `min` rounds, go on; then stop when every headline figure's width
is at most `target_ci_pct` ("target"), else when `max` rounds have run ("max", reporting the widest
figure left); a run with no headline figure at all (every case failed) stops at `min`
("no-figures").
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from vbench.model import DENSITY, Sample
from vbench.stats import summarize_many
from vbench.workloads import WORKLOADS
from vbench.workloads import metric as catalogue_entry
from vbench.workloads.common import AGGREGATE_PREFIX

# (mode, workload, parameters, metric): one figure of the report
FigureKey = tuple[str, str, str, str]
StopReason = Literal["target", "max", "no-figures"]


def _density(parameters: str) -> int:
    """The case's `density=N`, 1 without one."""
    for p in parameters.split(","):
        key, _, value = p.partition("=")
        if key == DENSITY and value.isdigit():
            return int(value)
    return 1


def is_headline(sample: Sample) -> bool:
    """Does this sample's figure count for the stopping rule?  (See the module docstring.)"""
    if _density(sample.parameters) > 1:
        info = catalogue_entry(sample.metric)
        return sample.metric.startswith(AGGREGATE_PREFIX) and info is not None and info.overview
    w = WORKLOADS.get(sample.workload)
    return w is not None and any(m.name == sample.metric and m.overview for m in w.metrics)


def headline_figures(samples: Iterable[Sample]) -> dict[FigureKey, list[float]]:
    """The values of every headline figure, in sample order."""
    out: dict[FigureKey, list[float]] = {}
    for s in samples:
        if is_headline(s):
            out.setdefault((s.mode, s.workload, s.parameters, s.metric), []).append(s.value)
    return out


def relative_ci_widths(figures: Mapping[FigureKey, list[float]]) -> dict[FigureKey, float | None]:
    """Each figure's CI half width in % of its median; None where undefined."""
    keys = list(figures)
    summaries = summarize_many([figures[k] for k in keys])
    out: dict[FigureKey, float | None] = {}
    for key, s in zip(keys, summaries, strict=True):
        lo, hi = s.median_ci_low, s.median_ci_high
        if lo is None or hi is None:
            out[key] = None
        elif s.median == 0:
            out[key] = 0.0 if hi == lo else None
        else:
            out[key] = 100.0 * (hi - lo) / 2.0 / abs(s.median)
    return out


@dataclass(frozen=True)
class Decision:
    """After `rounds` rounds: stop or not, why, and the widest figure (None: no figure)."""

    stop: bool
    reason: StopReason | None  # None while going on
    rounds: int
    widest: FigureKey | None
    widest_pct: float | None  # None: undefined (too few values) or no figure

    @property
    def widest_label(self) -> str | None:
        """The widest figure as `mode workload (parameters) metric` (no brackets: terminals read
        them as markup)."""
        if self.widest is None:
            return None
        mode, workload, parameters, metric = self.widest
        return f"{mode} {workload} ({parameters}) {metric}"

    def describe(self, target_pct: float) -> str:
        """One line for the terminal, the manifest and the report."""
        widest = ""
        if self.widest is not None:
            pct = "undefined" if self.widest_pct is None else f"±{self.widest_pct:.1f} %"
            widest = f"{self.widest_label} {pct}"
        if self.reason == "target":
            return (
                f"target reached after {self.rounds} rounds: every headline CI within "
                f"±{target_pct:g} % (widest: {widest})"
            )
        if self.reason == "max":
            return (
                f"max reached ({self.rounds} rounds) with CIs wider than ±{target_pct:g} % left; "
                f"widest: {widest}"
            )
        if self.reason == "no-figures":
            return f"stopped after {self.rounds} rounds: no headline figure (every case failed)"
        return f"after {self.rounds} rounds, widest: {widest}; another round"


def decide(
    widths: Mapping[FigureKey, float | None],
    rounds: int,
    *,
    min_rounds: int,
    max_rounds: int,
    target_ci_pct: float,
) -> Decision:
    """The stopping rule (see the module docstring).  `widths` from `relative_ci_widths`."""
    if not 1 <= min_rounds <= max_rounds:
        raise ValueError("need 1 <= min_rounds <= max_rounds")
    if not target_ci_pct > 0:
        raise ValueError("target_ci_pct must be > 0")
    widest: FigureKey | None = None
    widest_pct: float | None = None
    if widths:
        # an undefined width counts as the widest
        def width(key: FigureKey) -> float:
            w = widths[key]
            return math.inf if w is None else w

        widest = max(widths, key=width)
        widest_pct = widths[widest]
    reason: StopReason | None = None
    if rounds >= min_rounds:
        if not widths:
            reason = "no-figures"
        elif widest_pct is not None and widest_pct <= target_ci_pct:
            reason = "target"
        elif rounds >= max_rounds:
            reason = "max"
    return Decision(
        stop=reason is not None,
        reason=reason,
        rounds=rounds,
        widest=widest,
        widest_pct=widest_pct,
    )
