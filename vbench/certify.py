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

Each threshold is judged on the confidence interval of the mean (`vbench.stats`), not the mean
alone: PASS when the whole interval is on the right side, FAIL when it is wholly on the wrong side,
INCONCLUSIVE when it straddles the threshold (with how many repetitions would likely settle it:
the interval's half-width shrinks about as 1/sqrt(n)), ERROR when the run cannot answer it.

Pure core: no I/O; the report layer picks the values out of the samples.
"""

from __future__ import annotations

import math
import re
import tomllib
from collections.abc import Sequence
from enum import StrEnum
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from vbench.checkdoc import CheckDocument
from vbench.errors import RecordError
from vbench.model import ModeId, ParamValue
from vbench.stats import relative_change, summarize

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
    min_pct_of: str | None = None  # relative bound: >= pct % of this mode's mean
    max_pct_of: str | None = None  # <= pct % of this mode's mean
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
        where = " ".join(str(v) for v in self.case.values())
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


class Verdict(BaseModel):
    """The verdict on one threshold, with what was observed and what would settle it."""

    model_config = ConfigDict(frozen=True)

    name: str
    status: Status
    observed: str  # e.g. "mean 81.2 % of baremetal, 95 % CI [78.0, 84.5] %, n = 3"
    threshold: str  # e.g. ">= 80 % of baremetal"
    detail: str = ""  # why, and for inconclusive how many more repetitions
    more_repetitions: int | None = None  # inconclusive: about how many more would settle it


def _repetitions_to_settle(n: int, half: float, distance: float) -> int | None:
    """More repetitions after which a CI of half-width `half` (at n) likely excludes a point
    `distance` away from its centre: the half-width shrinks about as 1/sqrt(n).  An upper
    estimate at small n, where the t quantile shrinks too; close once n is a few tens."""
    if distance <= 0 or not math.isfinite(half) or half <= 0:
        return None
    needed = math.ceil(n * (half / distance) ** 2)
    return max(needed - n, 1)


def _judge(
    spec: CertifySpec,
    low: float,
    high: float,
    threshold: float,
    n: int,
    half: float,
    distance: float,
    observed: str,
    shown: str,
) -> Verdict:
    ok_side = low >= threshold if spec.at_least else high <= threshold
    bad_side = high < threshold if spec.at_least else low > threshold
    if ok_side:
        return Verdict(
            name=spec.describe(),
            status=Status.PASS,
            observed=observed,
            threshold=shown,
            detail="the whole confidence interval meets the threshold",
        )
    if bad_side:
        return Verdict(
            name=spec.describe(),
            status=Status.FAIL,
            observed=observed,
            threshold=shown,
            detail="the whole confidence interval misses the threshold",
        )
    more = _repetitions_to_settle(n, half, distance)
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
    )


def _error(spec: CertifySpec, why: str) -> Verdict:
    return Verdict(
        name=spec.describe(), status=Status.ERROR, observed="-", threshold="-", detail=why
    )


def _no_ci(spec: CertifySpec, observed: str, shown: str, why: str, more: int) -> Verdict:
    """Inconclusive for want of a confidence interval (too few repetitions)."""
    return Verdict(
        name=spec.describe(),
        status=Status.INCONCLUSIVE,
        observed=observed,
        threshold=shown,
        detail=why,
        more_repetitions=more,
    )


def _num(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4g}"


def evaluate_metric(
    spec: CertifySpec,
    values: Sequence[float],
    unit: str,
    reference: Sequence[float] | None = None,
) -> Verdict:
    """Judge a metric threshold on `values` (one per repetition, in `unit`); `reference` are the
    reference mode's values for min_pct_of / max_pct_of."""
    if not values:
        return _error(spec, f"the run has no {spec.metric} values for mode {spec.mode}")
    op = ">=" if spec.at_least else "<="
    if spec.reference is not None:
        if not reference:
            return _error(spec, f"the run has no {spec.metric} values for mode {spec.reference}")
        pct = float(spec.pct or 0)
        rel = relative_change(values, reference)
        if rel is None:
            return _error(spec, "a ratio needs positive means on both sides")
        n = min(len(values), len(reference))
        shown = f"{op} {pct:g} % of {spec.reference}"
        if rel.ci_low is None or rel.ci_high is None:
            return _no_ci(
                spec,
                f"mean {100 + rel.percent:.1f} % of {spec.reference}, no CI (n = {n})",
                shown,
                "a confidence interval needs at least 2 repetitions of both modes",
                max(2 - n, 1),
            )
        low, high = 100 + rel.ci_low, 100 + rel.ci_high
        observed = (
            f"mean {100 + rel.percent:.1f} % of {spec.reference}, "
            f"{rel.confidence:.0%} CI [{low:.1f}, {high:.1f}] %, n = {n}"
        )
        # The interval is symmetric in log(ratio): measure half-width and distance there.
        half = (math.log(high) - math.log(low)) / 2 if low > 0 else math.inf
        distance = abs(math.log(100 + rel.percent) - math.log(pct))
        return _judge(spec, low, high, pct, n, half, distance, observed, shown)
    bound = spec.min if spec.min is not None else spec.max
    assert bound is not None  # the validator guarantees one form
    number, bound_unit = parse_quantity(bound)
    try:
        threshold = convert(number, bound_unit, unit)
    except ValueError as exc:
        return _error(spec, f"{spec.metric}: {exc}")
    shown = f"{op} {number:g} {bound_unit or unit}".rstrip()
    s = summarize(values)
    if s.ci_low is None or s.ci_high is None:
        return _no_ci(
            spec,
            f"mean {_num(s.mean)} {unit}, no CI (n = {s.n})",
            shown,
            "a confidence interval needs at least 2 repetitions",
            1,
        )
    observed = (
        f"mean {_num(s.mean)} {unit}, {s.confidence:.0%} CI "
        f"[{_num(s.ci_low)}, {_num(s.ci_high)}] {unit}, n = {s.n}"
    )
    half = s.ci_half_width or 0.0
    return _judge(
        spec, s.ci_low, s.ci_high, threshold, s.n, half, abs(s.mean - threshold), observed, shown
    )


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
