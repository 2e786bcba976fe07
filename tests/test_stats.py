"""vbench.stats against published t tables, hand computations and simulation."""

from __future__ import annotations

import math
import random
import statistics

import pytest

from vbench.stats import (
    bootstrap_median_ci,
    mean_ci,
    regularized_incomplete_beta,
    relative_change,
    summarize,
    t_cdf,
    t_quantile,
)

# Two-sided critical values from standard Student t tables (e.g. NIST/SEMATECH handbook 1.3.6.7.2).
T_TABLE = [
    (0.975, 1, 12.706),
    (0.975, 2, 4.303),
    (0.975, 3, 3.182),
    (0.975, 4, 2.776),
    (0.975, 5, 2.571),
    (0.975, 9, 2.262),
    (0.975, 10, 2.228),
    (0.975, 20, 2.086),
    (0.975, 30, 2.042),
    (0.975, 100, 1.984),
    (0.95, 1, 6.314),
    (0.95, 5, 2.015),
    (0.995, 5, 4.032),
    (0.995, 10, 3.169),
    (0.9, 1, 3.078),
    (0.9995, 1, 636.619),
]


@pytest.mark.parametrize(("p", "df", "expected"), T_TABLE)
def test_t_quantile_matches_the_table(p: float, df: int, expected: float) -> None:
    assert t_quantile(p, df) == pytest.approx(expected, abs=5e-4)


def test_t_quantile_is_symmetric_and_inverts_the_cdf() -> None:
    for df in (1, 2.5, 3.7, 8, 57):
        for p in (0.6, 0.8, 0.95, 0.975, 0.999):
            q = t_quantile(p, df)
            assert t_cdf(q, df) == pytest.approx(p, abs=1e-12)
            assert t_quantile(1 - p, df) == pytest.approx(-q, rel=1e-12)
    assert t_quantile(0.5, 4) == 0.0


def test_t_tends_to_the_normal() -> None:
    assert t_quantile(0.975, math.inf) == pytest.approx(1.959964, abs=1e-6)
    assert t_quantile(0.975, 1e7) == pytest.approx(1.959964, abs=1e-5)


def test_t_cdf_closed_forms() -> None:
    # df=1 is the Cauchy distribution; df=2 has F(t) = 1/2 + t / (2 sqrt(2 + t^2)).
    for t in (-3.0, -0.5, 0.0, 0.7, 2.0, 40.0):
        assert t_cdf(t, 1) == pytest.approx(0.5 + math.atan(t) / math.pi, abs=1e-13)
        assert t_cdf(t, 2) == pytest.approx(0.5 + t / (2 * math.sqrt(2 + t * t)), abs=1e-13)


def test_incomplete_beta_closed_forms() -> None:
    for x in (0.0, 0.1, 0.5, 0.93, 1.0):
        assert regularized_incomplete_beta(1, 1, x) == pytest.approx(x)  # uniform
        assert regularized_incomplete_beta(2, 1, x) == pytest.approx(x * x)
        assert regularized_incomplete_beta(1, 3, x) == pytest.approx(1 - (1 - x) ** 3)


@pytest.mark.parametrize(("p", "df"), [(0.0, 3), (1.0, 3), (0.5, 0), (0.9, -1)])
def test_t_quantile_rejects_bad_arguments(p: float, df: float) -> None:
    with pytest.raises(ValueError):
        t_quantile(p, df)


def test_summary_by_hand() -> None:
    s = summarize([5, 1, 4, 2, 3])
    assert (s.n, s.mean, s.median, s.min, s.max) == (5, 3.0, 3.0, 1.0, 5.0)
    assert s.stdev == pytest.approx(math.sqrt(2.5))
    assert (s.q1, s.q3, s.iqr) == (2.0, 4.0, 2.0)
    half = 2.776445105 * math.sqrt(2.5) / math.sqrt(5)
    assert s.ci_low == pytest.approx(3 - half)
    assert s.ci_high == pytest.approx(3 + half)
    assert s.ci_half_width == pytest.approx(half)
    assert s.cv == pytest.approx(math.sqrt(2.5) / 3)


def test_quartiles_match_pandas_default() -> None:
    pd = pytest.importorskip("pandas")
    values = [3.1, 9.4, 2.2, 7.7, 5.0, 6.6, 1.9]
    s = summarize(values)
    series = pd.Series(values)
    assert s.q1 == pytest.approx(series.quantile(0.25))
    assert s.q3 == pytest.approx(series.quantile(0.75))


def test_one_value_has_no_spread_and_no_interval() -> None:
    s = summarize([42.0])
    assert (s.n, s.mean, s.median, s.min, s.max, s.iqr) == (1, 42.0, 42.0, 42.0, 42.0, 0.0)
    assert s.stdev is None
    assert s.ci_low is None and s.ci_high is None and s.ci_half_width is None
    assert mean_ci([42.0]) is None
    assert bootstrap_median_ci([42.0]) is None


def test_empty_or_non_finite_values_are_refused() -> None:
    with pytest.raises(ValueError):
        summarize([])
    with pytest.raises(ValueError):
        summarize([1.0, math.nan])


def test_mean_ci_covers_about_95_percent() -> None:
    rng = random.Random(7)
    trials, hits = 2000, 0
    for _ in range(trials):
        ci = mean_ci([rng.gauss(10.0, 2.0) for _ in range(4)])
        assert ci is not None
        hits += ci[0] <= 10.0 <= ci[1]
    assert 0.93 <= hits / trials <= 0.97


def test_bootstrap_median_ci_is_reproducible_and_inside_the_range() -> None:
    values = [10.0, 12.0, 11.0, 15.0, 9.0, 13.0]
    a = bootstrap_median_ci(values, seed=3)
    assert a == bootstrap_median_ci(values, seed=3)
    assert a is not None
    assert min(values) <= a[0] <= statistics.median(values) <= a[1] <= max(values)


def test_relative_change_exact_scaling() -> None:
    rc = relative_change([2.0, 4.0, 6.0], [1.0, 2.0, 3.0])
    assert rc is not None
    assert rc.percent == pytest.approx(100.0)
    assert rc.ci_low is not None and rc.ci_high is not None
    assert rc.ci_low < 100.0 < rc.ci_high
    # symmetric on the log scale: (1+low)(1+high) = ratio^2
    assert (1 + rc.ci_low / 100) * (1 + rc.ci_high / 100) == pytest.approx(4.0)
    assert rc.df == pytest.approx(4.0)  # equal relative variances and sizes: n1 + n0 - 2


def test_relative_change_edge_cases() -> None:
    same = relative_change([5.0, 5.0], [5.0, 5.0])
    assert same is not None and (same.percent, same.ci_low, same.ci_high) == (0.0, 0.0, 0.0)
    single = relative_change([110.0], [100.0, 101.0])
    assert single is not None and single.percent == pytest.approx((110.0 / 100.5 - 1) * 100)
    assert single.ci_low is None and single.ci_high is None
    assert relative_change([1.0, 2.0], [0.0, 0.0]) is None


def test_relative_change_ci_covers_the_true_ratio() -> None:
    rng = random.Random(11)
    true_percent = (120.0 / 100.0 - 1) * 100
    trials, hits = 1500, 0
    for _ in range(trials):
        base = [rng.gauss(100.0, 5.0) for _ in range(5)]
        mode = [rng.gauss(120.0, 12.0) for _ in range(5)]
        rc = relative_change(mode, base)
        assert rc is not None and rc.ci_low is not None and rc.ci_high is not None
        hits += rc.ci_low <= true_percent <= rc.ci_high
    assert 0.92 <= hits / trials <= 0.975
