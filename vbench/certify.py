"""Certification thresholds (`[[certify]]` in a scenario) and their verdicts on confidence bounds.

    [[certify]]                       # a metric of a mode's case >= X % of another mode
    mode = "pv"
    metric = "read.iops"
    case = { rw = "randread", bs = "4k" }
    min_pct_of = "baremetal"
    pct = 80

    [[certify]]                       # <= / >= an absolute value, with its unit
    mode = "pv"
    metric = "read.clat_p99"
    case = { rw = "randread" }
    max = "2 ms"

    [[certify]]                       # the host check verdict of a mode
    mode = "vfio"
    ready = true

Each threshold is judged on the very figures the report's tables show (`vbench.stats`, the same
functions): an absolute bound on the median and its bootstrap 95 % CI (`summarize`), a relative
bound (`min_pct_of` / `max_pct_of`) on the ratio of the medians and its bootstrap CI
(`relative_change`, as the tables' "% of reference" column).  Not on the figure alone: PASS when the
whole interval is on the right side, FAIL when it is wholly on the wrong side, INCONCLUSIVE when it
straddles the threshold (with about how many repetitions would likely settle it, see
`_repetitions_to_settle`), ERROR when the run cannot answer it.

Pure core: no I/O; the report layer picks the values out of the samples and passes the tables'
number formats (`FigureStyle`), so a verdict quotes the figures as the tables print them.
"""

from __future__ import annotations

import math
import re
import statistics
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from vbench.checkdoc import CheckDocument
from vbench.errors import RecordError
from vbench.model import ModeId, ParamValue
from vbench.stats import DEFAULT_CONFIDENCE, relative_change, summarize, t_quantile

# Units a threshold may be written in: (dimension, factor to the dimension's base unit).
UNITS: dict[str, tuple[str, float]] = {
    "ns": ("time", 1e-9),
    "us": ("time", 1e-6),
    "µs": ("time", 1e-6),
    "ms": ("time", 1e-3),
    "s": ("time", 1.0),
    "IO/s": ("rate", 1.0),
    "kIO/s": ("rate", 1e3),
    "KiB/s": ("bandwidth", 1024.0),
    "MiB/s": ("bandwidth", 1024.0**2),
    "GiB/s": ("bandwidth", 1024.0**3),
    "KB/s": ("bandwidth", 1e3),
    "MB/s": ("bandwidth", 1e6),
    "GB/s": ("bandwidth", 1e9),
    "Mbit/s": ("bandwidth", 1e6 / 8),
    "Gbit/s": ("bandwidth", 1e9 / 8),
    "%": ("percent", 1.0),
    "count": ("count", 1.0),
}
_QUANTITY = re.compile(r"^\s*([-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*(\S*)\s*$")


def parse_quantity(text: str | float) -> tuple[float, str | None]:
    """`"2 ms"` -> (2.0, "ms"); a bare number -> (value, None): in the metric's own unit."""
    if isinstance(text, int | float):
        return float(text), None
    m = _QUANTITY.match(text)
    if not m:
        raise ValueError(f"{text!r} is not a number with a unit, e.g. '2 ms' or '50000 IO/s'")
    unit = m.group(2) or None
    if unit is not None and unit not in UNITS:
        raise ValueError(f"unknown unit {unit!r} in {text!r}; use one of {', '.join(UNITS)}")
    return float(m.group(1)), unit


def convert(value: float, unit: str | None, to: str) -> float:
    """`value unit` in the unit `to` (a sample's unit); ValueError when they do not compare."""
    if unit is None or unit == to:
        return value
    if to not in UNITS:
        raise ValueError(f"the metric's unit {to!r} has no conversions; write the bare number")
    (dim, factor), (to_dim, to_factor) = UNITS[unit], UNITS[to]
    if dim != to_dim:
        raise ValueError(f"{unit!r} does not compare with the metric's unit {to!r}")
    return value * factor / to_factor


class CertifySpec(BaseModel):
    """One `[[certify]]` entry of a scenario."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str | None = None  # how the verdict is titled; generated when absent
    mode: str = Field(min_length=1)  # a mode label of the scenario (or its id), or "baremetal"
    ready: bool | None = None  # "<mode> ready": the host check verdict
    metric: str | None = None  # e.g. "read.iops", "read.clat_p99", "host.qemu_cpu_per_io"
    workload: str | None = None  # the workload kind ("fio"), when several could match
    case: dict[str, ParamValue] = {}  # workload parameters that pick the case, e.g. rw, bs
    min: float | str | None = None  # absolute bound, "2 ms" or a bare number (metric's unit)
    max: float | str | None = None
    min_pct_of: str | None = None  # relative bound: median >= pct % of this mode's median
    max_pct_of: str | None = None  # median <= pct % of this mode's median
    pct: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _one_form(self) -> Self:
        absolute = [b for b in (self.min, self.max) if b is not None]
        relative = [r for r in (self.min_pct_of, self.max_pct_of) if r is not None]
        forms = (self.ready is not None) + bool(absolute) + bool(relative)
        if forms != 1:
            raise ValueError(
                "give exactly one of: ready = true, min/max (an absolute value), "
                "min_pct_of/max_pct_of with pct"
            )
        if self.ready is not None:
            if self.ready is not True:
                raise ValueError("ready = false certifies nothing; write ready = true")
            if self.metric or self.case or self.workload or self.pct is not None:
                raise ValueError("ready = true takes only mode (and name)")
            return self
        if not self.metric:
            raise ValueError("a metric threshold needs metric, e.g. metric = 'read.iops'")
        if len(absolute) + len(relative) != 1:
            raise ValueError("give one bound: min, max, min_pct_of or max_pct_of")
        if relative and self.pct is None:
            raise ValueError("min_pct_of/max_pct_of need pct, e.g. pct = 80")
        if absolute and self.pct is not None:
            raise ValueError("pct goes with min_pct_of/max_pct_of, not with min/max")
        for bound in absolute:
            parse_quantity(bound)
        return self

    @property
    def at_least(self) -> bool:
        """True: the value must be >= the threshold; False: <=."""
        return self.min is not None or self.min_pct_of is not None

    @property
    def reference(self) -> str | None:
        return self.min_pct_of or self.max_pct_of

    def describe(self) -> str:
        if self.name:
            return self.name
        if self.ready:
            return f"{self.mode} ready"
        # words stand alone ("randread 4k"); a bare number says what it is ("density=1")
        where = " ".join(v if isinstance(v, str) else f"{k}={v}" for k, v in self.case.items())
        subject = " ".join(t for t in (self.mode, self.workload, where, self.metric) if t)
        op = ">=" if self.at_least else "<="
        if self.reference:
            return f"{subject} {op} {self.pct:g} % of {self.reference}"
        bound = self.min if self.min is not None else self.max
        return (
            f"{subject} {op} {bound:g}" if isinstance(bound, float) else f"{subject} {op} {bound}"
        )


class Status(StrEnum):
    PASS = "pass"
    FAIL = "fail"
    INCONCLUSIVE = "inconclusive"
    ERROR = "error"


class Figure(BaseModel):
    """What a metric threshold was judged on, as the report's tables show it: the median with its
    bootstrap CI, or the ratio of the medians to the reference's with its bootstrap CI."""

    model_config = ConfigDict(frozen=True)

    statistic: Literal["median", "ratio of medians"]
    value: float  # the median (in `unit`), or the ratio (1.0: as much as the reference)
    low: float | None  # the 95 % CI; None below 2 repetitions
    high: float | None
    n: int  # repetitions of the mode
    unit: str = ""  # the metric's unit (a median's)
    reference: str | None = None  # the ratio's reference mode
    n_reference: int | None = None
    confidence: float = DEFAULT_CONFIDENCE


class Verdict(BaseModel):
    """The verdict on one threshold, with what was observed and what would settle it."""

    model_config = ConfigDict(frozen=True)

    name: str
    status: Status
    observed: str  # e.g. "median 81.2% of baremetal's, 95% CI [78.0%, 84.5%], n = 3 / 3"
    threshold: str  # e.g. ">= 80 % of baremetal"
    detail: str = ""  # why, and for inconclusive how many more repetitions
    more_repetitions: int | None = None  # inconclusive: about how many more would settle it
    figure: Figure | None = None  # a metric threshold's figure, as numbers


@dataclass(frozen=True)
class FigureStyle:
    """How a verdict writes its figure.  The report passes its tables' formatters
    (`vbench.report.certification.TABLE_STYLE`): the verdict then quotes the tables' figures."""

    number: Callable[[float], str]  # a median or a bound: 79060.4 -> "79,060"
    ratio: Callable[[float], str]  # a ratio as percent: 0.973 -> "97.3%"
    unit: Callable[[str], str]  # a unit as shown: "us" -> "µs"


def observed_text(figure: Figure, style: FigureStyle) -> str:
    """`median 3,542 IO/s, 95% CI 3,401 - 3,610 IO/s, n = 3` (an en dash), or for a ratio
    `median 97.3% of fv's, 95% CI [95.1%, 99.0%], n = 3 / 3` (the tables' cell formats)."""
    conf = f"{figure.confidence:.0%}"
    if figure.statistic == "median":
        unit = f" {style.unit(figure.unit)}" if figure.unit else ""
        head = f"median {style.number(figure.value)}{unit}"
        if figure.low is None or figure.high is None:
            return f"{head}, no CI (n = {figure.n})"
        low, high = style.number(figure.low), style.number(figure.high)
        return f"{head}, {conf} CI {low} \u2013 {high}{unit}, n = {figure.n}"
    head = f"median {style.ratio(figure.value)} of {figure.reference}'s"
    n = f"n = {figure.n} / {figure.n_reference}"
    if figure.low is None or figure.high is None:
        return f"{head}, no CI ({n})"
    return f"{head}, {conf} CI [{style.ratio(figure.low)}, {style.ratio(figure.high)}], {n}"


def _repetitions_to_settle(n: int, reach: float, distance: float) -> int | None:
    """About how many more repetitions make a CI that reaches `reach` from its estimate towards
    a threshold `distance` away (reach >= distance: it straddles) stop short of it.

    The spread of a sample median shrinks as 1/sqrt(n), as that of a mean does (asymptotically
    sqrt(pi/2) sigma / sqrt(n) for normal data; a ratio of medians likewise in log(ratio)), so
    the reach at n' is about reach * sqrt(n / n'): settled once n' > n (reach / distance)^2.
    A fair approximation, no more; see `_median_reach` for the reach it starts from.
    """
    if distance <= 0 or not math.isfinite(reach) or reach <= 0:
        return None
    needed = math.ceil(n * (reach / distance) ** 2)
    return max(needed - n, 1)


def _median_half_width(values: Sequence[float], confidence: float, *, relative: bool) -> float:
    """The normal-theory half-width of the median's CI, z sqrt(pi/2) s / sqrt(n) (relative: over
    the median, the half-width in log units); 0 where undefined."""
    if len(values) < 2:
        return 0.0
    z = t_quantile(0.5 + confidence / 2, math.inf)  # the normal quantile
    width = z * math.sqrt(math.pi / 2) * statistics.stdev(values) / math.sqrt(len(values))
    if not relative:
        return width
    median = statistics.median(values)
    return width / median if median > 0 else 0.0


def _median_reach(ci_reach: float, half_width: float) -> float:
    """The reach the repetitions estimate starts from: the CI's side towards the threshold (a
    percentile bootstrap interval need not be symmetric), but at least the normal-theory
    half-width.  Up to 7 repetitions the bootstrap CI of a median is the data's range, narrower at
    n = 3 than the median's real spread: scaled alone it asked for an eighth to a quarter of the
    repetitions needed at n = 3 (simulated as below, without the floor).  With the floor the
    estimate comes out at 0.8-1.3 times the repetitions needed for normal and lognormal data
    (median of 150 draws each at n = 3, 5, 10; quartiles about half and twice that), 0.55-0.7
    times for flat (uniform) data (benchmarks/certify_settle.py).
    """
    return max(ci_reach, half_width)


def _judge(
    spec: CertifySpec,
    figure: Figure,
    threshold: float,
    shown: str,
    style: FigureStyle,
    half_width: float,
    scale: Callable[[float], float] = lambda x: x,
) -> Verdict:
    """PASS / FAIL / INCONCLUSIVE of `figure` (with a CI) against `threshold`.  The repetitions
    estimate measures the CI's reach and the threshold's distance on `scale` (log for a ratio),
    `half_width` the normal-theory half-width on that scale (see `_median_reach`)."""
    assert figure.low is not None and figure.high is not None
    low, high = figure.low, figure.high
    observed = observed_text(figure, style)
    ok_side = low >= threshold if spec.at_least else high <= threshold
    bad_side = high < threshold if spec.at_least else low > threshold
    if ok_side or bad_side:
        return Verdict(
            name=spec.describe(),
            status=Status.PASS if ok_side else Status.FAIL,
            observed=observed,
            threshold=shown,
            detail=f"the whole confidence interval {'meets' if ok_side else 'misses'} the "
            "threshold",
            figure=figure,
        )
    towards = high if threshold > figure.value else low
    try:
        reach = _median_reach(abs(scale(towards) - scale(figure.value)), half_width)
        distance = abs(scale(threshold) - scale(figure.value))
    except ValueError:  # a ratio or its CI bound at 0 has no log: the CI's reach as it is
        reach, distance = abs(towards - figure.value), abs(threshold - figure.value)
    n = min(figure.n, figure.n_reference or figure.n)  # a ratio: both modes repeat
    more = _repetitions_to_settle(n, reach, distance)
    hint = (
        f"about {more} more repetitions (n = {n} -> {n + more}) would likely settle it"
        if more is not None
        else "the estimate sits on the threshold; more repetitions may not settle it"
    )
    return Verdict(
        name=spec.describe(),
        status=Status.INCONCLUSIVE,
        observed=observed,
        threshold=shown,
        detail=f"the confidence interval straddles the threshold; {hint}",
        more_repetitions=more,
        figure=figure,
    )


def _error(spec: CertifySpec, why: str) -> Verdict:
    return Verdict(
        name=spec.describe(), status=Status.ERROR, observed="-", threshold="-", detail=why
    )


def _no_ci(spec: CertifySpec, figure: Figure, shown: str, style: FigureStyle, why: str) -> Verdict:
    """Inconclusive for want of a confidence interval (fewer than 2 repetitions)."""
    return Verdict(
        name=spec.describe(),
        status=Status.INCONCLUSIVE,
        observed=observed_text(figure, style),
        threshold=shown,
        detail=why,
        more_repetitions=max(2 - min(figure.n, figure.n_reference or figure.n), 1),
        figure=figure,
    )


def evaluate_metric(
    spec: CertifySpec,
    values: Sequence[float],
    unit: str,
    reference: Sequence[float] | None = None,
    *,
    style: FigureStyle,
) -> Verdict:
    """Judge a metric threshold on `values` (one per repetition, in `unit`); `reference` are the
    reference mode's values for min_pct_of / max_pct_of.  `style` writes the observed figure."""
    if not values:
        return _error(spec, f"the run has no {spec.metric} values for mode {spec.mode}")
    op = ">=" if spec.at_least else "<="
    if spec.reference is not None:
        if not reference:
            return _error(spec, f"the run has no {spec.metric} values for mode {spec.reference}")
        pct = float(spec.pct or 0)
        # The same function as the report's "% of reference" column (`relative_changes`).
        rel = relative_change(values, reference)
        if rel is None:
            return _error(
                spec,
                f"a ratio needs a positive median for {spec.reference} and a non-negative one "
                f"for {spec.mode}",
            )
        shown = f"{op} {pct:g} % of {spec.reference}"
        figure = Figure(
            statistic="ratio of medians",
            value=rel.ratio,
            low=rel.ratio_low,
            high=rel.ratio_high,
            n=len(values),
            reference=spec.reference,
            n_reference=len(reference),
            confidence=rel.confidence,
        )
        if figure.low is None or figure.high is None:
            why = "a confidence interval needs at least 2 repetitions of both modes"
            return _no_ci(spec, figure, shown, style, why)
        # A ratio's spread is relative (its interval about symmetric in log(ratio)): measure the
        # CI's reach and the threshold's distance there.
        # log(ratio) = log(median) - log(reference's median): their spreads add in quadrature
        half_width = math.hypot(
            _median_half_width(values, rel.confidence, relative=True),
            _median_half_width(reference, rel.confidence, relative=True),
        )
        return _judge(spec, figure, pct / 100.0, shown, style, half_width, scale=math.log)
    bound = spec.min if spec.min is not None else spec.max
    assert bound is not None  # the validator guarantees one form
    number, bound_unit = parse_quantity(bound)
    try:
        threshold = convert(number, bound_unit, unit)
    except ValueError as exc:
        return _error(spec, f"{spec.metric}: {exc}")
    shown = f"{op} {number:g} {bound_unit or unit}".rstrip()
    s = summarize(values)  # the tables' median and its bootstrap CI
    figure = Figure(
        statistic="median",
        value=s.median,
        low=s.median_ci_low,
        high=s.median_ci_high,
        n=s.n,
        unit=unit,
        confidence=s.confidence,
    )
    if figure.low is None or figure.high is None:
        why = "a confidence interval needs at least 2 repetitions"
        return _no_ci(spec, figure, shown, style, why)
    half_width = _median_half_width(values, s.confidence, relative=False)
    return _judge(spec, figure, threshold, shown, style, half_width)


def evaluate_ready(spec: CertifySpec, mode_id: str, checks: CheckDocument | None) -> Verdict:
    """ "<mode> ready": the verdict of the host checks stored with the run."""
    if checks is None:
        return _error(spec, "the run has no host-check document")
    try:
        verdict = checks.verdict(ModeId(mode_id))
    except ValueError:
        verdict = None
    if verdict is None:
        return _error(spec, f"{spec.mode} is not a mode the host checks know")
    observed = verdict.summary
    if verdict.ready:
        return Verdict(
            name=spec.describe(), status=Status.PASS, observed=observed, threshold="ready"
        )
    fixes = "; ".join(str(r) for r in verdict.remedies)
    return Verdict(
        name=spec.describe(),
        status=Status.FAIL,
        observed=observed,
        threshold="ready",
        detail=fixes,
    )


def overall(verdicts: Sequence[Verdict]) -> Status:
    """error if any threshold could not be judged, else fail if any failed or was inconclusive
    (a certification needs every threshold settled), else pass."""
    statuses = {v.status for v in verdicts}
    if Status.ERROR in statuses:
        return Status.ERROR
    if statuses & {Status.FAIL, Status.INCONCLUSIVE}:
        return Status.FAIL if Status.FAIL in statuses else Status.INCONCLUSIVE
    return Status.PASS


def specs_from_scenario_text(text: str, source: str) -> list[CertifySpec]:
    """The `[[certify]]` entries of a scenario's text (e.g. the one stored in a manifest)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RecordError(f"{source}: the scenario text is not TOML: {exc}") from None
    entries = data.get("certify", [])
    if not isinstance(entries, list):
        raise RecordError(f"{source}: certify: want [[certify]] tables")
    specs: list[CertifySpec] = []
    for index, entry in enumerate(entries):
        try:
            specs.append(CertifySpec.model_validate(entry))
        except ValidationError as exc:
            err = exc.errors()[0]
            loc = ".".join(str(p) for p in err["loc"])
            where = f"certify[{index}]" + (f".{loc}" if loc else "")
            raise RecordError(f"{source}: {where}: {err['msg']}") from None
    return specs
