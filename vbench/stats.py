"""Statistics for benchmark repetitions, on SciPy.  Pure functions, frozen results.

* `summarize(values)`: n, median, mean, stdev, CV, min/max, quartiles, the Student t interval of the
  mean and a bootstrap interval of the median.
* `bootstrap_median_ci(values)`: percentile bootstrap of the median (the resamples
  `scipy.stats.bootstrap` draws, their medians read off the sorted sample; seeded: same values and
  seed, same interval).
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
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from scipy import stats as sps

DEFAULT_CONFIDENCE = 0.95
DEFAULT_ALPHA = 0.05
DEFAULT_SEED = 20240601  # fixed: a report re-rendered from the same run shows the same intervals
BOOTSTRAP_RESAMPLES = 1999  # the 2.5 % tails hold 50 resamples each
_BATCH_ELEMENTS = 4_000_000  # bound on one array of resampled indices or medians (32 MB)
CV_LIMIT = 0.10  # pyperf: "the standard deviation is 10 % of the mean" or more
OUTLIER_LIMIT = 0.50  # pyperf: "the maximum is 50 % greater than the mean" (or the minimum smaller)
MIN_REPETITIONS = 3
# Exact permutation p-values with ties while the number of arrangements is at most this.
PERMUTATION_LIMIT = 9999

_Array = npt.NDArray[np.float64]
_Index = npt.NDArray[np.intp]


# -- distributions -------------------------------------------------------------------------------


@lru_cache(maxsize=1024)  # a report asks for the same few (p, n - 1) thousands of times
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


def _stdev(data: Sequence[float]) -> float:
    """The sample standard deviation (n - 1) in floats: `statistics.stdev` computes it exactly
    with fractions, which is most of a report's time once it has thousands of figures."""
    mean = math.fsum(data) / len(data)
    return math.sqrt(math.fsum((v - mean) ** 2 for v in data) / (len(data) - 1))


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
    half = t_quantile(0.5 + confidence / 2.0, n - 1) * _stdev(data) / math.sqrt(n)
    return mean - half, mean + half


def _chunks(items: list[int], size: int) -> Iterator[list[int]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


# -- the bootstrap -------------------------------------------------------------------------------
#
# A resample draws n indices into the sample uniformly with replacement (exactly what
# `scipy.stats.bootstrap` draws: `rng.integers(0, n, (resamples, n))`).  When the sample is sorted,
# the median of `sample[indices]` is `sample` at the middle order statistic(s) of the indices (a
# sorted sample is a non-decreasing map of its indices), so one sort of the index matrix serves
# every sample of that size: each sample then costs a gather of `resamples` values instead of a sort
# of `resamples x n` of them (a 100 000-sample report went from ~6 s of bootstrap to a fraction of a
# second).  Resampling a sorted copy instead of the values in their recorded order is the same
# bootstrap (the draws are uniform over the values whatever their order); with the indices SciPy
# would draw, the intervals are SciPy's for the sorted sample (tests/test_stats.py checks this).


def _positions(rng: np.random.Generator, n: int, resamples: int) -> tuple[_Index, _Index]:
    """For each resample of a sample of size n: the positions in the sorted sample of the lower
    and upper middle values of the resample (equal for odd n)."""
    lo = np.empty(resamples, dtype=np.intp)
    hi = np.empty(resamples, dtype=np.intp)
    block = max(1, _BATCH_ELEMENTS // n)  # a bounded index matrix, whatever n is
    for start in range(0, resamples, block):
        stop = min(resamples, start + block)
        idx = rng.integers(0, n, (stop - start, n))
        idx.sort(axis=-1)
        lo[start:stop] = idx[:, (n - 1) // 2]
        hi[start:stop] = idx[:, n // 2]
    return lo, hi


@lru_cache(maxsize=64)  # a report asks for the same few sizes hundreds of times
def _median_positions(n: int, resamples: int, seed: int) -> tuple[_Index, _Index]:
    lo, hi = _positions(np.random.default_rng(seed), n, resamples)
    lo.flags.writeable = hi.flags.writeable = False
    return lo, hi


@lru_cache(maxsize=64)
def _ratio_positions(
    n1: int, n2: int, resamples: int, seed: int
) -> tuple[tuple[_Index, _Index], tuple[_Index, _Index]]:
    """The values' positions, then the reference's, drawn in that order from one generator."""
    rng = np.random.default_rng(seed)
    out = _positions(rng, n1, resamples), _positions(rng, n2, resamples)
    for a in (*out[0], *out[1]):
        a.flags.writeable = False
    return out


def _resampled_medians(rows: _Array, positions: tuple[_Index, _Index]) -> Any:
    """The median of every resample (columns) of every sorted row: shape (rows, resamples)."""
    lo, hi = positions
    return 0.5 * (rows[:, lo] + rows[:, hi])


def _percentile_intervals(theta: _Array, confidence: float) -> list[tuple[float, float] | None]:
    """The percentile interval of each row of bootstrap statistics (linear interpolation between
    order statistics, as `scipy.stats.bootstrap`'s percentile method); None where not finite."""
    alpha = (1.0 - confidence) / 2.0
    lows, highs = np.quantile(theta, [alpha, 1.0 - alpha], axis=-1)
    return [
        (float(lo), float(hi)) if math.isfinite(lo) and math.isfinite(hi) else None
        for lo, hi in zip(np.atleast_1d(lows).tolist(), np.atleast_1d(highs).tolist(), strict=True)
    ]


def _rows_per_call(resamples: int) -> int:
    """Samples gathered at once: their statistics take `resamples` floats each."""
    return max(1, _BATCH_ELEMENTS // resamples)


def bootstrap_median_cis(
    groups: Sequence[Sequence[float]],
    confidence: float = DEFAULT_CONFIDENCE,
    *,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = DEFAULT_SEED,
) -> list[tuple[float, float] | None]:
    """`bootstrap_median_ci` of many groups at once: the groups of one size share their resampled
    indices (drawn once from `seed`), so a group gets the interval it gets alone."""
    _check_confidence(confidence)
    data = [_clean(g) for g in groups]
    out: list[tuple[float, float] | None] = [None] * len(data)
    by_size: dict[int, list[int]] = {}
    for i, d in enumerate(data):
        if len(d) < 2:
            continue
        if min(d) == max(d):
            out[i] = (d[0], d[0])
            continue
        by_size.setdefault(len(d), []).append(i)
    for n, idx in by_size.items():
        positions = _median_positions(n, resamples, seed)
        for chunk in _chunks(idx, _rows_per_call(resamples)):
            rows = np.sort(np.array([data[i] for i in chunk], dtype=float), axis=-1)
            cis = _percentile_intervals(_resampled_medians(rows, positions), confidence)
            for i, ci in zip(chunk, cis, strict=True):
                out[i] = ci
    return out


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
    return bootstrap_median_cis([values], confidence, resamples=resamples, seed=seed)[0]


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
    return summarize_many([values], confidence, seed=seed)[0]


def summarize_many(
    groups: Sequence[Sequence[float]],
    confidence: float = DEFAULT_CONFIDENCE,
    *,
    seed: int = DEFAULT_SEED,
) -> list[Summary]:
    """`summarize` of many groups, their bootstrap intervals computed together."""
    data = [_clean(g) for g in groups]
    medians = bootstrap_median_cis(data, confidence, seed=seed)
    out: list[Summary] = []
    for d, mci in zip(data, medians, strict=True):
        n = len(d)
        if n >= 2:
            q1, _, q3 = statistics.quantiles(d, n=4, method="inclusive")
        else:
            q1 = q3 = d[0]
        ci = mean_ci(d, confidence)
        out.append(
            Summary(
                n=n,
                mean=statistics.fmean(d),
                median=statistics.median(d),
                stdev=_stdev(d) if n >= 2 else None,
                min=min(d),
                max=max(d),
                q1=q1,
                q3=q3,
                ci_low=ci[0] if ci else None,
                ci_high=ci[1] if ci else None,
                median_ci_low=mci[0] if mci else None,
                median_ci_high=mci[1] if mci else None,
                confidence=confidence,
            )
        )
    return out


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


def _mw_method(x: list[float], y: list[float]) -> str:
    if len(set(x) | set(y)) == 1:
        return "equal"
    tied = len(set(x) | set(y)) < len(x) + len(y)
    if (not tied and min(len(x), len(y)) <= 8) or min(len(x), len(y)) < 2:
        # a single value on one side (p >= 0.5 then): SciPy's permutation test needs two
        return "exact"
    if tied and math.comb(len(x) + len(y), len(x)) <= PERMUTATION_LIMIT:
        return "permutation"
    return "asymptotic"


def mann_whitney_many(
    pairs: Sequence[tuple[Sequence[float], Sequence[float]]],
) -> list[MannWhitney]:
    """`mann_whitney` of many (values, reference) pairs; pairs of equal sizes and method share a
    SciPy call."""
    data = [(_clean(x), _clean(y)) for x, y in pairs]
    out: list[MannWhitney | None] = [None] * len(data)
    batches: dict[tuple[int, int, str], list[int]] = {}
    for i, (x, y) in enumerate(data):
        kind = _mw_method(x, y)
        if kind == "equal":  # every value equal: no evidence of any difference
            out[i] = MannWhitney(
                len(x) * len(y) / 2.0, 1.0, "exact", min_attainable_p(len(x), len(y))
            )
        else:
            batches.setdefault((len(x), len(y), kind), []).append(i)
    for (n1, n2, name), idx in batches.items():
        method: Literal["exact", "asymptotic"] | sps.PermutationMethod = (
            "exact" if name == "exact" else "asymptotic"
        )
        if name == "permutation":
            # n_resamples above the number of arrangements: permutation_test enumerates them all.
            method = sps.PermutationMethod(n_resamples=PERMUTATION_LIMIT)
        for chunk in _chunks(idx, 500):
            xs = np.array([data[i][0] for i in chunk], dtype=float)
            ys = np.array([data[i][1] for i in chunk], dtype=float)
            result = sps.mannwhitneyu(xs, ys, alternative="two-sided", axis=-1, method=method)
            us = np.atleast_1d(result.statistic).tolist()
            ps = np.atleast_1d(result.pvalue).tolist()
            for i, u, p in zip(chunk, us, ps, strict=True):
                out[i] = MannWhitney(float(u), min(1.0, float(p)), name, min_attainable_p(n1, n2))
    return [m for m in out if m is not None]


def mann_whitney(values: Sequence[float], reference: Sequence[float]) -> MannWhitney:
    """The two-sided Mann-Whitney U test; exact whenever that is affordable.

    Without ties and with a side of at most 8 values SciPy's exact distribution is used; with ties
    and few arrangements (C(n1 + n2, n1) <= PERMUTATION_LIMIT), the exact permutation distribution
    of U given the ties; otherwise the normal approximation with its tie correction.
    """
    return mann_whitney_many([(values, reference)])[0]


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


def ratio_of_medians_cis(
    pairs: Sequence[tuple[Sequence[float], Sequence[float]]],
    confidence: float = DEFAULT_CONFIDENCE,
    *,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = DEFAULT_SEED,
) -> list[tuple[float, float] | None]:
    """`ratio_of_medians_ci` of many (values, reference) pairs; pairs of equal sizes share their
    resampled indices (drawn once from `seed`)."""
    _check_confidence(confidence)
    data = [(_clean(x), _clean(y)) for x, y in pairs]
    out: list[tuple[float, float] | None] = [None] * len(data)
    by_size: dict[tuple[int, int], list[int]] = {}
    for i, (x, y) in enumerate(data):
        if len(x) < 2 or len(y) < 2 or min(y) <= 0:
            continue
        if min(x) == max(x) and min(y) == max(y):
            out[i] = (x[0] / y[0], x[0] / y[0])
            continue
        by_size.setdefault((len(x), len(y)), []).append(i)
    for (n1, n2), idx in by_size.items():
        pos_x, pos_y = _ratio_positions(n1, n2, resamples, seed)
        for chunk in _chunks(idx, _rows_per_call(resamples)):
            xs = np.sort(np.array([data[i][0] for i in chunk], dtype=float), axis=-1)
            ys = np.sort(np.array([data[i][1] for i in chunk], dtype=float), axis=-1)
            with np.errstate(divide="ignore", invalid="ignore"):
                theta = _resampled_medians(xs, pos_x) / _resampled_medians(ys, pos_y)
            for i, ci in zip(chunk, _percentile_intervals(theta, confidence), strict=True):
                out[i] = ci
    return out


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
    return ratio_of_medians_cis([(values, reference)], confidence, resamples=resamples, seed=seed)[
        0
    ]


def relative_changes(
    pairs: Sequence[tuple[Sequence[float], Sequence[float]]],
    confidence: float = DEFAULT_CONFIDENCE,
    *,
    seed: int = DEFAULT_SEED,
) -> list[RelativeChange | None]:
    """`relative_change` of many (values, reference) pairs, computed together."""
    data = [(_clean(x), _clean(y)) for x, y in pairs]
    meaningful = [
        i for i, (x, y) in enumerate(data) if statistics.median(y) > 0 and statistics.median(x) >= 0
    ]
    chosen = [data[i] for i in meaningful]
    cis = ratio_of_medians_cis(chosen, confidence, seed=seed)
    tests = mann_whitney_many(chosen)
    out: list[RelativeChange | None] = [None] * len(data)
    for i, ci, test in zip(meaningful, cis, tests, strict=True):
        x, y = data[i]
        out[i] = RelativeChange(
            ratio=statistics.median(x) / statistics.median(y),
            ratio_low=ci[0] if ci else None,
            ratio_high=ci[1] if ci else None,
            test=test,
            confidence=confidence,
        )
    return out


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
    return relative_changes([(values, reference)], confidence, seed=seed)[0]


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
            stdev = _stdev(data)
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
