"""Small-sample statistics for benchmark repetitions.  Pure: standard library only, no scipy.

* `summarize(values)`: n, median, mean, stdev, min, max, quartiles and IQR, and a confidence
  interval for the mean (Student t).  With n = 1 the interval is undefined: `None`.
* `bootstrap_median_ci(values, seed=...)`: a percentile-bootstrap interval for the median,
  reproducible through its seed.
* `relative_change(values, baseline)`: how much larger a mode's mean is than the baseline's, in
  percent, with a confidence interval for the ratio of means from the delta method on the log ratio
  and Welch-Satterthwaite degrees of freedom (no equal-variance assumption).
* `t_quantile(p, df)`: the Student t quantile, by inverting the CDF, which is computed from the
  regularized incomplete beta function (continued fraction, as in Numerical Recipes §6.4).
"""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

DEFAULT_CONFIDENCE = 0.95


# -- distributions -------------------------------------------------------------------------------


def _beta_continued_fraction(a: float, b: float, x: float) -> float:
    """The continued fraction of the incomplete beta function (modified Lentz)."""
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 1000):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-15:
            break
    return h


def regularized_incomplete_beta(a: float, b: float, x: float) -> float:
    """I_x(a, b) for a, b > 0 and 0 <= x <= 1."""
    if a <= 0 or b <= 0:
        raise ValueError("the incomplete beta function needs a > 0 and b > 0")
    if not 0.0 <= x <= 1.0:
        raise ValueError("the incomplete beta function needs 0 <= x <= 1")
    if x in (0.0, 1.0):
        return x
    log_front = (
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    )
    front = math.exp(log_front)
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _beta_continued_fraction(a, b, x) / a
    return 1.0 - front * _beta_continued_fraction(b, a, 1.0 - x) / b


def t_cdf(t: float, df: float) -> float:
    """P(T <= t) for Student's t with `df` (> 0, may be fractional) degrees of freedom."""
    if df <= 0:
        raise ValueError("degrees of freedom must be > 0")
    if math.isinf(df):
        return statistics.NormalDist().cdf(t)
    tail = 0.5 * regularized_incomplete_beta(df / 2.0, 0.5, df / (df + t * t))
    return 1.0 - tail if t >= 0 else tail


def t_quantile(p: float, df: float) -> float:
    """The `p` quantile of Student's t with `df` degrees of freedom (inverse of `t_cdf`)."""
    if not 0.0 < p < 1.0:
        raise ValueError("a quantile needs 0 < p < 1")
    if df <= 0:
        raise ValueError("degrees of freedom must be > 0")
    if math.isinf(df):
        return statistics.NormalDist().inv_cdf(p)
    if p < 0.5:
        return -t_quantile(1.0 - p, df)
    if p == 0.5:
        return 0.0
    lo, hi = 0.0, 1.0
    while t_cdf(hi, df) < p:
        lo, hi = hi, hi * 2.0
        if hi > 1e12:
            return math.inf
    for _ in range(200):  # bisection: monotone, robust; converges to float precision
        mid = 0.5 * (lo + hi)
        if t_cdf(mid, df) < p:
            lo = mid
        else:
            hi = mid
        if hi - lo <= 1e-13 * max(1.0, hi):
            break
    return 0.5 * (lo + hi)


# -- summaries -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Summary:
    """The usual description of a handful of repetitions.  `stdev` and the CI need n >= 2."""

    n: int
    mean: float
    median: float
    stdev: float | None  # sample standard deviation (n - 1)
    min: float
    max: float
    q1: float
    q3: float
    ci_low: float | None  # confidence interval for the mean (Student t)
    ci_high: float | None
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
        """Coefficient of variation (stdev / mean), None when undefined."""
        if self.stdev is None or self.mean == 0:
            return None
        return self.stdev / abs(self.mean)


def _clean(values: Sequence[float]) -> list[float]:
    data = [float(v) for v in values]
    if not data:
        raise ValueError("no values to summarize")
    if not all(math.isfinite(v) for v in data):
        raise ValueError("values must be finite")
    return data


def mean_ci(
    values: Sequence[float], confidence: float = DEFAULT_CONFIDENCE
) -> tuple[float, float] | None:
    """The Student t confidence interval for the mean; None when n < 2."""
    data = _clean(values)
    if not 0.0 < confidence < 1.0:
        raise ValueError("confidence must be between 0 and 1")
    n = len(data)
    if n < 2:
        return None
    mean = statistics.fmean(data)
    half = t_quantile(0.5 + confidence / 2.0, n - 1) * statistics.stdev(data) / math.sqrt(n)
    return mean - half, mean + half


def summarize(values: Sequence[float], confidence: float = DEFAULT_CONFIDENCE) -> Summary:
    """Summarize repetitions; quartiles interpolate linearly (as numpy's and pandas' default)."""
    data = _clean(values)
    n = len(data)
    if n >= 2:
        q1, _, q3 = statistics.quantiles(data, n=4, method="inclusive")
    else:
        q1 = q3 = data[0]
    ci = mean_ci(data, confidence)
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
        confidence=confidence,
    )


def bootstrap_median_ci(
    values: Sequence[float],
    confidence: float = DEFAULT_CONFIDENCE,
    *,
    resamples: int = 2000,
    seed: int = 0,
) -> tuple[float, float] | None:
    """Percentile-bootstrap interval for the median; None when n < 2.  Same seed, same interval.

    With very few repetitions the interval cannot be wider than the data's range: read it as
    descriptive, not as a guarantee of coverage.
    """
    data = _clean(values)
    if len(data) < 2:
        return None
    if not 0.0 < confidence < 1.0:
        raise ValueError("confidence must be between 0 and 1")
    rng = random.Random(seed)
    n = len(data)
    medians = sorted(statistics.median(rng.choices(data, k=n)) for _ in range(resamples))
    alpha = (1.0 - confidence) / 2.0
    lo_index = math.floor(alpha * (resamples - 1))
    hi_index = math.ceil((1.0 - alpha) * (resamples - 1))
    return medians[lo_index], medians[hi_index]


# -- comparisons ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class RelativeChange:
    """(mean of values / mean of baseline - 1) in percent, with its CI (None when undefined)."""

    percent: float
    ci_low: float | None
    ci_high: float | None
    df: float | None  # Welch-Satterthwaite degrees of freedom used for the interval
    confidence: float = DEFAULT_CONFIDENCE


def relative_change(
    values: Sequence[float],
    baseline: Sequence[float],
    confidence: float = DEFAULT_CONFIDENCE,
) -> RelativeChange | None:
    """How much the mean of `values` differs from the mean of `baseline`, in percent.

    The interval is for the ratio of means R = m1/m0: log R is estimated by log(x1/x0) with variance
    s1²/(n1·x1²) + s0²/(n0·x0²) (delta method), and its t quantile uses Welch-Satterthwaite degrees
    of freedom.  The interval is then mapped back, so it is asymmetric around the estimate.  Returns
    None when either mean is not positive (a ratio is meaningless); the interval is None when either
    side has fewer than two values.
    """
    x1 = _clean(values)
    x0 = _clean(baseline)
    m1, m0 = statistics.fmean(x1), statistics.fmean(x0)
    if m1 <= 0 or m0 <= 0:
        return None
    ratio = m1 / m0
    percent = (ratio - 1.0) * 100.0
    if len(x1) < 2 or len(x0) < 2:
        return RelativeChange(percent, None, None, None, confidence)
    a = statistics.variance(x1) / (len(x1) * m1 * m1)
    b = statistics.variance(x0) / (len(x0) * m0 * m0)
    if a + b == 0.0:
        return RelativeChange(percent, percent, percent, None, confidence)
    df = (a + b) ** 2 / (a * a / (len(x1) - 1) + b * b / (len(x0) - 1))
    half = t_quantile(0.5 + confidence / 2.0, df) * math.sqrt(a + b)
    log_ratio = math.log(ratio)
    low = (math.exp(log_ratio - half) - 1.0) * 100.0
    high = (math.exp(log_ratio + half) - 1.0) * 100.0
    return RelativeChange(percent, low, high, df, confidence)
