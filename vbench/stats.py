"""Statistics for benchmark repetitions, on SciPy.  Pure functions, frozen results.

* `summarize(values)`: n, median, mean, stdev, CV, min/max, quartiles, the Student t interval of the
  mean and a bootstrap interval of the median.
* `bootstrap_median_ci(values)`: percentile bootstrap of the median (`scipy.stats.bootstrap`,
  seeded: same values and seed, same interval).
* `relative_change(values, reference)`: the ratio of the medians with a bootstrap interval, and the
  Mann-Whitney U test of the difference (`scipy.stats.mannwhitneyu`).
* `holm(p_values)`: Holm's step-down adjustment over all the comparisons of one report.
* `stability_flags(values)`: pyperf's checks (its `_cli.format_checks`): CV >= 10 %, a repetition
  >= 50 % away from the mean, plus fewer than 3 repetitions; flags found elsewhere (a failed
  cross-check) are passed in and kept.

Why these choices: a handful of repetitions of a benchmark is small, often skewed and sometimes has
an outlier, so the headline is the median and the comparison is rank-based (Mann-Whitney needs no
normality).  The ratio's interval is a percentile bootstrap of median(values) / median(reference),
each sample resampled on its own (the two modes ran independently): it needs no normality either
and never leaves the ratios the data can produce.  With n <= 5 per side the bootstrap intervals
describe the data rather than guarantee 95 % coverage (simulated: 94 % for the median at n = 5, 95 %
for the ratio at n = 5); the report says so.  Fieller's interval for a ratio of means was the
alternative: exact under normality, but a statement about means while the table shows medians, and
unbounded whenever the reference's mean is not clearly above zero.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import stats as sps

DEFAULT_CONFIDENCE = 0.95
DEFAULT_ALPHA = 0.05
DEFAULT_SEED = 20240601  # fixed: a report re-rendered from the same run shows the same intervals
BOOTSTRAP_RESAMPLES = 4999  # 2.5 % tails each hold 125 resamples; ~1 ms per interval here
CV_LIMIT = 0.10  # pyperf: "the standard deviation is 10 % of the mean" or more
OUTLIER_LIMIT = 0.50  # pyperf: "the maximum is 50 % greater than the mean" (or the minimum smaller)
MIN_REPETITIONS = 3
# Exact permutation p-values with ties while the number of arrangements is at most this.
PERMUTATION_LIMIT = 9999

_Array = npt.NDArray[np.float64]


# -- distributions -------------------------------------------------------------------------------


def t_quantile(p: float, df: float) -> float:
    """The `p` quantile of Student's t with `df` (> 0, may be fractional or infinite) d.o.f."""
    if not 0.0 < p < 1.0:
        raise ValueError("a quantile needs 0 < p < 1")
    if not df > 0:
        raise ValueError("degrees of freedom must be > 0")
    if math.isinf(df):
        return float(sps.norm.ppf(p))
    return float(sps.t.ppf(p, df))


# -- summaries -----------------------------------------------------------------------------------


def _clean(values: Iterable[float]) -> list[float]:
    data = [float(v) for v in values]
    if not data:
        raise ValueError("no values to summarize")
    if not all(math.isfinite(v) for v in data):
        raise ValueError("values must be finite")
    return data


def _check_confidence(confidence: float) -> None:
    if not 0.0 < confidence < 1.0:
        raise ValueError("confidence must be between 0 and 1")


def mean_ci(
    values: Sequence[float], confidence: float = DEFAULT_CONFIDENCE
) -> tuple[float, float] | None:
    """The Student t confidence interval for the mean; None when n < 2."""
    data = _clean(values)
    _check_confidence(confidence)
    n = len(data)
    if n < 2:
        return None
    mean = statistics.fmean(data)
    half = t_quantile(0.5 + confidence / 2.0, n - 1) * statistics.stdev(data) / math.sqrt(n)
    return mean - half, mean + half


def _median(x: _Array, axis: int = -1) -> Any:
    return np.median(x, axis=axis)


def _ratio_of_medians(x: _Array, y: _Array, axis: int = -1) -> Any:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.median(x, axis=axis) / np.median(y, axis=axis)


def _bootstrap(
    samples: tuple[list[float], ...],
    statistic: Any,
    confidence: float,
    resamples: int,
    seed: int,
) -> tuple[float, float] | None:
    result = sps.bootstrap(
        tuple(np.asarray(s, dtype=float) for s in samples),
        statistic,
        n_resamples=resamples,
        vectorized=True,
        paired=False,
        confidence_level=confidence,
        # BCa's jackknife acceleration is undefined for the median of a few tied values; the
        # percentile method is defined for every sample and stays inside what the data can give.
        method="percentile",
        rng=np.random.default_rng(seed),
    )
    low, high = float(result.confidence_interval.low), float(result.confidence_interval.high)
    if not (math.isfinite(low) and math.isfinite(high)):
        return None
    return low, high


def bootstrap_median_ci(
    values: Sequence[float],
    confidence: float = DEFAULT_CONFIDENCE,
    *,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = DEFAULT_SEED,
) -> tuple[float, float] | None:
    """Percentile-bootstrap interval for the median; None when n < 2.  Same seed, same interval.

    With very few repetitions the interval cannot be wider than the data's range: read it as
    descriptive, not as a guarantee of coverage.
    """
    data = _clean(values)
    _check_confidence(confidence)
    if len(data) < 2:
        return None
    if min(data) == max(data):
        return data[0], data[0]
    return _bootstrap((data,), _median, confidence, resamples, seed)


@dataclass(frozen=True)
class Summary:
    """The usual description of a handful of repetitions.  `stdev` and the intervals need n >= 2."""

    n: int
    mean: float
    median: float
    stdev: float | None  # sample standard deviation (n - 1)
    min: float
    max: float
    q1: float
    q3: float
    ci_low: float | None  # confidence interval of the mean (Student t)
    ci_high: float | None
    median_ci_low: float | None  # confidence interval of the median (percentile bootstrap)
    median_ci_high: float | None
    confidence: float = DEFAULT_CONFIDENCE

    @property
    def iqr(self) -> float:
        return self.q3 - self.q1

    @property
    def ci_half_width(self) -> float | None:
        if self.ci_low is None or self.ci_high is None:
            return None
        return (self.ci_high - self.ci_low) / 2.0

    @property
    def cv(self) -> float | None:
        """Coefficient of variation (stdev / |mean|), None when undefined."""
        if self.stdev is None or self.mean == 0:
            return None
        return self.stdev / abs(self.mean)


def summarize(
    values: Sequence[float],
    confidence: float = DEFAULT_CONFIDENCE,
    *,
    seed: int = DEFAULT_SEED,
) -> Summary:
    """Summarize repetitions; quartiles interpolate linearly (as numpy's and pandas' default)."""
    data = _clean(values)
    n = len(data)
    if n >= 2:
        q1, _, q3 = statistics.quantiles(data, n=4, method="inclusive")
    else:
        q1 = q3 = data[0]
    ci = mean_ci(data, confidence)
    mci = bootstrap_median_ci(data, confidence, seed=seed)
    return Summary(
        n=n,
        mean=statistics.fmean(data),
        median=statistics.median(data),
        stdev=statistics.stdev(data) if n >= 2 else None,
        min=min(data),
        max=max(data),
        q1=q1,
        q3=q3,
        ci_low=ci[0] if ci else None,
        ci_high=ci[1] if ci else None,
        median_ci_low=mci[0] if mci else None,
        median_ci_high=mci[1] if mci else None,
        confidence=confidence,
    )


# -- tests and comparisons -----------------------------------------------------------------------


@dataclass(frozen=True)
class MannWhitney:
    """Two-sided Mann-Whitney U test of `values` against `reference`.

    `u` is U of `values` (the number of pairs where it is the larger, ties counting one half).
    `min_p` is the smallest two-sided p-value these sample sizes can give at all (no ties): with 3
    against 3 repetitions it is 0.1, so no difference can be significant at 5 %.
    """

    u: float
    p_value: float
    method: str  # "exact", "permutation" (exact, with ties), "asymptotic"
    min_p: float


def min_attainable_p(n1: int, n2: int) -> float:
    """The smallest two-sided exact Mann-Whitney p-value for sizes n1 and n2: 2 / C(n1 + n2, n1)."""
    if n1 < 1 or n2 < 1:
        raise ValueError("both samples need at least one value")
    return min(1.0, 2.0 / math.comb(n1 + n2, n1))


def mann_whitney(values: Sequence[float], reference: Sequence[float]) -> MannWhitney:
    """The two-sided Mann-Whitney U test; exact whenever that is affordable.

    Without ties and with a side of at most 8 values SciPy's exact distribution is used; with ties
    and few arrangements (C(n1 + n2, n1) <= PERMUTATION_LIMIT), the exact permutation distribution
    of U given the ties; otherwise the normal approximation with its tie correction.
    """
    x, y = _clean(values), _clean(reference)
    tied = len(set(x) | set(y)) < len(x) + len(y)
    min_p = min_attainable_p(len(x), len(y))
    if len(set(x) | set(y)) == 1:  # every value equal: no evidence of any difference
        return MannWhitney(u=len(x) * len(y) / 2.0, p_value=1.0, method="exact", min_p=min_p)
    method: Any
    if (not tied and min(len(x), len(y)) <= 8) or min(len(x), len(y)) < 2:
        # a single value on one side (p >= 0.5 then): SciPy's permutation test needs two
        name, method = "exact", "exact"
    elif tied and math.comb(len(x) + len(y), len(x)) <= PERMUTATION_LIMIT:
        # n_resamples above the number of arrangements: permutation_test enumerates them all.
        name, method = "permutation", sps.PermutationMethod(n_resamples=PERMUTATION_LIMIT)
    else:
        name, method = "asymptotic", "asymptotic"
    result = sps.mannwhitneyu(x, y, alternative="two-sided", method=method)
    return MannWhitney(
        u=float(result.statistic),
        p_value=min(1.0, float(result.pvalue)),
        method=name,
        min_p=min_p,
    )


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values, in the input order.

    Sorted ascending, p_(i) becomes max over j <= i of min(1, (m - j + 1) p_(j)); a hypothesis is
    rejected at level alpha exactly when its adjusted p-value is <= alpha.  Controls the
    family-wise error rate under any dependence between the tests (Holm 1979).
    """
    m = len(p_values)
    for p in p_values:
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"a p-value must be between 0 and 1, not {p}")
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


@dataclass(frozen=True)
class RelativeChange:
    """median(values) / median(reference), its interval, and the Mann-Whitney test.

    `percent`, `ci_low` and `ci_high` are the same figures as a change in percent
    ((ratio - 1) * 100).  Intervals are None when a side has fewer than two values.
    """

    ratio: float
    ratio_low: float | None
    ratio_high: float | None
    test: MannWhitney
    confidence: float = DEFAULT_CONFIDENCE

    @property
    def percent(self) -> float:
        return (self.ratio - 1.0) * 100.0

    @property
    def ci_low(self) -> float | None:
        return None if self.ratio_low is None else (self.ratio_low - 1.0) * 100.0

    @property
    def ci_high(self) -> float | None:
        return None if self.ratio_high is None else (self.ratio_high - 1.0) * 100.0

    @property
    def p_value(self) -> float:
        return self.test.p_value


def ratio_of_medians_ci(
    values: Sequence[float],
    reference: Sequence[float],
    confidence: float = DEFAULT_CONFIDENCE,
    *,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = DEFAULT_SEED,
) -> tuple[float, float] | None:
    """Percentile bootstrap of median(values) / median(reference), each resampled on its own.

    None when a side has fewer than two values or a reference value is not positive (a resampled
    reference median could then be 0).
    """
    x, y = _clean(values), _clean(reference)
    _check_confidence(confidence)
    if len(x) < 2 or len(y) < 2 or min(y) <= 0:
        return None
    if min(x) == max(x) and min(y) == max(y):
        return x[0] / y[0], x[0] / y[0]
    return _bootstrap((x, y), _ratio_of_medians, confidence, resamples, seed)


def relative_change(
    values: Sequence[float],
    reference: Sequence[float],
    confidence: float = DEFAULT_CONFIDENCE,
    *,
    seed: int = DEFAULT_SEED,
) -> RelativeChange | None:
    """How `values` compare with `reference`: the ratio of the medians (see the module docstring).

    None when a ratio is meaningless: the reference's median is not positive or the values' median
    is negative.
    """
    x, y = _clean(values), _clean(reference)
    mx, my = statistics.median(x), statistics.median(y)
    if my <= 0 or mx < 0:
        return None
    ci = ratio_of_medians_ci(x, y, confidence, seed=seed)
    return RelativeChange(
        ratio=mx / my,
        ratio_low=ci[0] if ci else None,
        ratio_high=ci[1] if ci else None,
        test=mann_whitney(x, y),
        confidence=confidence,
    )


# -- stability -----------------------------------------------------------------------------------


class FlagKind(StrEnum):
    HIGH_CV = "high-cv"
    OUTLIER = "outlier"
    FEW_REPETITIONS = "few-repetitions"
    CROSS_CHECK = "cross-check"  # raised by whoever cross-checks (the samplers), passed in here


@dataclass(frozen=True)
class Flag:
    """Why a figure is not to be trusted as it is: `short` for a table cell, `message` in full."""

    kind: FlagKind
    short: str
    message: str


def _g(value: float) -> str:
    return f"{value:.4g}"


def stability_flags(values: Sequence[float], extra: Iterable[Flag] = ()) -> tuple[Flag, ...]:
    """pyperf's stability checks on one figure's repetitions, then the `extra` flags given."""
    data = _clean(values)
    flags: list[Flag] = []
    n = len(data)
    if n < MIN_REPETITIONS:
        flags.append(
            Flag(
                FlagKind.FEW_REPETITIONS,
                f"n = {n}",
                f"only {n} repetition{'s' if n != 1 else ''}; at least {MIN_REPETITIONS} are "
                "needed to judge the spread",
            )
        )
    mean = statistics.fmean(data)
    if mean != 0:
        if n >= 2:
            stdev = statistics.stdev(data)
            cv = stdev / abs(mean)
            if cv >= CV_LIMIT:
                flags.append(
                    Flag(
                        FlagKind.HIGH_CV,
                        f"CV {cv * 100:.0f}%",
                        f"the standard deviation ({_g(stdev)}) is {cv * 100:.0f}% of the mean "
                        f"({_g(mean)})",
                    )
                )
        for name, value in (("minimum", min(data)), ("maximum", max(data))):
            away = (value - mean) / abs(mean)
            if abs(away) >= OUTLIER_LIMIT:
                how = "greater" if away > 0 else "smaller"
                flags.append(
                    Flag(
                        FlagKind.OUTLIER,
                        f"{name[:3]} {away * 100:+.0f}%",
                        f"the {name} ({_g(value)}) is {abs(away) * 100:.0f}% {how} than the mean "
                        f"({_g(mean)})",
                    )
                )
    flags.extend(extra)
    return tuple(flags)
