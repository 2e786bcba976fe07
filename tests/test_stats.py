"""vbench.stats against published tables, SciPy's reference values, brute force and simulation."""

from __future__ import annotations

import itertools
import math
import random
import statistics

import pytest

from vbench.stats import (
    CV_LIMIT,
    Flag,
    FlagKind,
    bootstrap_median_ci,
    bootstrap_median_cis,
    holm,
    mann_whitney,
    mann_whitney_many,
    mean_ci,
    min_attainable_p,
    ratio_of_medians_ci,
    relative_change,
    stability_flags,
    summarize,
    t_quantile,
)

# Critical values from standard Student t tables (NIST/SEMATECH e-Handbook 1.3.6.7.2).
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


def test_t_quantile_closed_forms_and_limits() -> None:
    # df = 1 is Cauchy: q(p) = tan(pi (p - 1/2)); df = 2: q(p) = (2p - 1) / sqrt(2 p (1 - p)).
    for p in (0.6, 0.8, 0.95, 0.975, 0.999):
        assert t_quantile(p, 1) == pytest.approx(math.tan(math.pi * (p - 0.5)), rel=1e-10)
        assert t_quantile(p, 2) == pytest.approx((2 * p - 1) / math.sqrt(2 * p * (1 - p)))
        assert t_quantile(1 - p, 3.7) == pytest.approx(-t_quantile(p, 3.7), rel=1e-12)
    assert t_quantile(0.975, math.inf) == pytest.approx(1.959964, abs=1e-6)
    assert t_quantile(0.975, 1e7) == pytest.approx(1.959964, abs=1e-5)
    assert t_quantile(0.5, 4) == 0.0


@pytest.mark.parametrize(("p", "df"), [(0.0, 3), (1.0, 3), (0.5, 0), (0.9, -1), (0.9, math.nan)])
def test_t_quantile_rejects_bad_arguments(p: float, df: float) -> None:
    with pytest.raises(ValueError):
        t_quantile(p, df)


# -- summaries -----------------------------------------------------------------------------------


def test_summary_by_hand() -> None:
    s = summarize([5, 1, 4, 2, 3])
    assert (s.n, s.mean, s.median, s.min, s.max) == (5, 3.0, 3.0, 1.0, 5.0)
    assert s.stdev == pytest.approx(math.sqrt(2.5))
    assert (s.q1, s.q3, s.iqr) == (2.0, 4.0, 2.0)
    half = 2.776445105 * math.sqrt(2.5) / math.sqrt(5)  # t_{0.975,4} from the table
    assert s.ci_low == pytest.approx(3 - half)
    assert s.ci_high == pytest.approx(3 + half)
    assert s.ci_half_width == pytest.approx(half)
    assert s.cv == pytest.approx(math.sqrt(2.5) / 3)
    assert s.median_ci_low is not None and s.median_ci_high is not None
    assert 1.0 <= s.median_ci_low < 3.0 < s.median_ci_high <= 5.0


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
    assert s.stdev is None and s.cv is None
    assert s.ci_low is None and s.ci_high is None and s.ci_half_width is None
    assert s.median_ci_low is None and s.median_ci_high is None
    assert mean_ci([42.0]) is None
    assert bootstrap_median_ci([42.0]) is None


def test_identical_values_have_a_point_interval() -> None:
    assert bootstrap_median_ci([7.0, 7.0, 7.0]) == (7.0, 7.0)
    s = summarize([7.0, 7.0, 7.0])
    assert (s.ci_low, s.ci_high, s.cv) == (7.0, 7.0, 0.0)


def test_empty_or_non_finite_values_are_refused() -> None:
    with pytest.raises(ValueError):
        summarize([])
    with pytest.raises(ValueError):
        summarize([1.0, math.nan])
    with pytest.raises(ValueError):
        mean_ci([1.0, 2.0], confidence=1.0)


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
    assert bootstrap_median_ci(values, seed=4) is not None


def test_the_resampled_medians_are_the_medians_of_the_resamples() -> None:
    # brute force: index the sorted sample with the drawn indices and take numpy's median
    np = pytest.importorskip("numpy")
    from vbench.stats import _positions, _resampled_medians

    rng = np.random.default_rng(1)
    for n in (2, 3, 6, 7, 40):
        rows = np.sort(rng.normal(size=(5, n)), axis=-1)
        rows[0, : n // 2] = rows[0, 0]  # ties
        drawn = np.random.default_rng(n).integers(0, n, (300, n))
        expected = np.median(rows[:, drawn], axis=-1)
        got = _resampled_medians(rows, _positions(np.random.default_rng(n), n, 300))
        assert np.allclose(got, expected)


@pytest.mark.parametrize("n", [3, 6, 11])
def test_the_median_interval_is_scipys_bootstrap_of_the_sorted_sample(n: int) -> None:
    np = pytest.importorskip("numpy")
    sps = pytest.importorskip("scipy.stats")
    values = [random.Random(n).gauss(50, 5) for _ in range(n)]
    ours = bootstrap_median_ci(values, seed=9)
    theirs = sps.bootstrap(
        (np.sort(values),),
        np.median,
        n_resamples=1999,
        method="percentile",
        rng=np.random.default_rng(9),
    ).confidence_interval
    assert ours == pytest.approx((theirs.low, theirs.high), rel=1e-12)


def test_the_ratio_interval_is_scipys_bootstrap_of_the_sorted_samples() -> None:
    np = pytest.importorskip("numpy")
    sps = pytest.importorskip("scipy.stats")
    rng = random.Random(4)
    x, y = [rng.gauss(120, 9) for _ in range(5)], [rng.gauss(100, 5) for _ in range(7)]
    ours = ratio_of_medians_ci(x, y, seed=5)
    theirs = sps.bootstrap(
        (np.sort(x), np.sort(y)),
        lambda a, b, axis: np.median(a, axis=axis) / np.median(b, axis=axis),
        n_resamples=1999,
        method="percentile",
        paired=False,
        rng=np.random.default_rng(5),
    ).confidence_interval
    assert ours == pytest.approx((theirs.low, theirs.high), rel=1e-12)


def test_the_interval_does_not_depend_on_the_order_of_the_values() -> None:
    values = [10.0, 12.0, 11.0, 15.0, 9.0, 13.0, 30.0]
    assert bootstrap_median_ci(values) == bootstrap_median_ci(sorted(values, reverse=True))
    ref = [5.0, 6.0, 5.5, 7.0]
    assert ratio_of_medians_ci(values, ref) == ratio_of_medians_ci(values[::-1], ref[::-1])


def test_a_large_sample_is_resampled_in_blocks_with_the_same_meaning() -> None:
    # n large enough that the index matrix is drawn in several blocks: the interval still holds
    # the median and sits inside the range, and it narrows like 1 / sqrt(n)
    rng = random.Random(3)
    big = [rng.gauss(100.0, 10.0) for _ in range(5000)]
    ci = bootstrap_median_ci(big, resamples=999)
    assert ci is not None
    assert ci[0] < statistics.median(big) < ci[1]
    # the median's standard error is about 1.2533 sigma / sqrt(n) = 0.177: a 95 % CI ~0.69 wide
    assert 0.45 < ci[1] - ci[0] < 0.95


def test_batched_intervals_equal_what_each_group_gets_alone() -> None:
    rng = random.Random(2)
    groups = [[rng.gauss(50, 5) for _ in range(n)] for n in (1, 3, 3, 4, 7, 3)]
    batched = bootstrap_median_cis(groups)
    assert batched[0] is None
    for group, ci in zip(groups[1:], batched[1:], strict=True):
        alone = bootstrap_median_ci(group)
        assert ci is not None and alone is not None
        # same seed, and one set of resampled indices per sample size: a group gets the interval
        # it gets alone, whatever else is in its batch
        assert ci == pytest.approx(alone)
        assert min(group) <= ci[0] <= statistics.median(group) <= ci[1] <= max(group)
    pairs = [(groups[i], groups[j]) for i, j in ((1, 2), (3, 4), (2, 5))]
    tests = mann_whitney_many(pairs)
    assert [t.p_value for t in tests] == [mann_whitney(x, y).p_value for x, y in pairs]


def test_bootstrap_median_ci_covers_about_95_percent() -> None:
    rng = random.Random(5)
    trials, hits = 300, 0
    for i in range(trials):
        ci = bootstrap_median_ci([rng.gauss(10.0, 2.0) for _ in range(10)], seed=i)
        assert ci is not None
        hits += ci[0] <= 10.0 <= ci[1]
    assert 0.89 <= hits / trials <= 0.99  # measured 0.935 (percentile bootstrap, n = 10)


# -- Mann-Whitney --------------------------------------------------------------------------------


def test_mann_whitney_scipy_reference_example() -> None:
    # SciPy's documentation of mannwhitneyu (ages of male and female workers): U1 = 17 and the
    # exact two-sided p-value 0.1111 (= 14 / 126).
    males = [19, 22, 16, 29, 24]
    females = [20, 11, 17, 12]
    mw = mann_whitney(males, females)
    assert mw.method == "exact"
    assert mw.u == 17.0
    assert mw.p_value == pytest.approx(0.1111111111111111)
    assert mw.min_p == pytest.approx(2 / math.comb(9, 4))


def test_mann_whitney_smallest_p_for_three_against_three() -> None:
    # Complete separation of 3 against 3: the most extreme of C(6, 3) = 20 arrangements, both
    # tails: p = 2 / 20.  This is why three repetitions can never be significant at 5 %.
    mw = mann_whitney([1.0, 2.0, 3.0], [4.0, 5.0, 6.0])
    assert (mw.u, mw.p_value, mw.method) == (0.0, 0.1, "exact")
    assert min_attainable_p(3, 3) == 0.1
    assert min_attainable_p(4, 4) == pytest.approx(2 / 70)
    assert min_attainable_p(1, 1) == 1.0


def _midrank_u(x: list[float], y: list[float]) -> float:
    return sum(1.0 if a > b else 0.5 if a == b else 0.0 for a in x for b in y)


def test_mann_whitney_with_ties_is_the_exact_permutation_p() -> None:
    x, y = [1.0, 2.0, 2.0], [2.0, 5.0, 6.0]
    mw = mann_whitney(x, y)
    assert mw.method == "permutation"
    # Brute force: U over every way of choosing which 3 of the 6 values are "x".
    pooled = x + y
    mean_u = len(x) * len(y) / 2
    observed = abs(_midrank_u(x, y) - mean_u)
    splits = list(itertools.combinations(range(6), 3))
    extreme = 0
    for idx in splits:
        xs = [pooled[i] for i in idx]
        ys = [pooled[i] for i in range(6) if i not in idx]
        extreme += abs(_midrank_u(xs, ys) - mean_u) >= observed - 1e-12
    assert mw.u == _midrank_u(x, y) == 1.0
    assert mw.p_value == pytest.approx(extreme / len(splits))  # 6 / 20 = 0.3


def test_mann_whitney_large_samples_use_the_normal_approximation() -> None:
    x = [float(i) for i in range(20)]
    y = [i + 5.5 for i in range(20)]
    mw = mann_whitney(x, y)
    assert mw.method == "asymptotic"
    # Hand computation: z = (|U - n1 n2 / 2| - 1/2) / sqrt(n1 n2 (n1 + n2 + 1) / 12).
    u = _midrank_u(x, y)
    z = (abs(u - 200) - 0.5) / math.sqrt(400 * 41 / 12)
    assert mw.u == u
    assert mw.p_value == pytest.approx(2 * (1 - statistics.NormalDist().cdf(z)), rel=1e-9)


def test_mann_whitney_identical_samples_and_single_values() -> None:
    mw = mann_whitney([3.0, 3.0, 3.0], [3.0, 3.0])
    assert (mw.p_value, mw.u) == (1.0, 3.0)
    # one value against three, tied with one of them: exact distribution, U = 2.5 of 3
    one = mann_whitney([2.0], [1.0, 2.0, 5.0])
    assert one.u == 1.5 and one.p_value >= one.min_p == 0.5


def test_mann_whitney_false_positive_rate_is_at_most_alpha() -> None:
    rng = random.Random(13)
    trials = 400
    rejected = sum(
        mann_whitney(
            [rng.gauss(0, 1) for _ in range(8)], [rng.gauss(0, 1) for _ in range(8)]
        ).p_value
        <= 0.05
        for _ in range(trials)
    )
    assert rejected / trials <= 0.08


# -- Holm ----------------------------------------------------------------------------------------


def test_holm_wikipedia_example() -> None:
    # Wikipedia, "Holm-Bonferroni method", example: four tests with p = 0.01, 0.04, 0.03, 0.005 at
    # alpha = 0.05 reject H1 and H4 only.  Adjusted: 4 * 0.005, 3 * 0.01, max(2 * 0.03, ...), ...
    adjusted = holm([0.01, 0.04, 0.03, 0.005])
    assert adjusted == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert [p <= 0.05 for p in adjusted] == [True, False, False, True]


def test_holm_table() -> None:
    # By hand from the definition: sorted p times (m, m - 1, ..., 1), running maximum, capped at 1.
    #   p:        0.02  0.001  0.3  0.04  0.01  0.011
    #   rank:        4      1    6     5     2      3
    #   times:       3      6    1     2     5      4
    #   product:  0.06  0.006  0.3  0.08  0.05  0.044 -> running max in rank order: 0.006, 0.05,
    #   0.05 (0.044 < 0.05), 0.06, 0.08, 0.3
    p = [0.02, 0.001, 0.3, 0.04, 0.01, 0.011]
    assert holm(p) == pytest.approx([0.06, 0.006, 0.3, 0.08, 0.05, 0.05])
    assert holm([0.9, 0.8]) == [1.0, 1.0]  # 2 * 0.8 capped at 1, and the maximum carries on


def test_holm_properties() -> None:
    rng = random.Random(3)
    for m in (1, 2, 5, 30):
        p = [rng.random() ** 3 for _ in range(m)]
        adjusted = holm(p)
        assert all(a >= q for a, q in zip(adjusted, p, strict=True))
        assert all(a <= 1.0 for a in adjusted)
        ranked = sorted(zip(p, adjusted, strict=True))
        assert all(a <= b for (_, a), (_, b) in itertools.pairwise(ranked))  # order kept
        assert min(adjusted) == pytest.approx(min(1.0, m * min(p)))  # smallest: Bonferroni
    assert holm([]) == []
    assert holm([0.3]) == [0.3]
    with pytest.raises(ValueError):
        holm([0.2, 1.5])


# -- ratio to a reference ------------------------------------------------------------------------


def test_relative_change_exact_scaling() -> None:
    rc = relative_change([2.0, 4.0, 6.0], [1.0, 2.0, 3.0])
    assert rc is not None
    assert rc.ratio == 2.0 and rc.percent == pytest.approx(100.0)
    assert rc.ratio_low is not None and rc.ratio_high is not None
    assert rc.ratio_low < 2.0 < rc.ratio_high
    # the bootstrap can only produce ratios of a resampled median to another: [2/3, 6/1]
    assert rc.ratio_low >= 2 / 3 and rc.ratio_high <= 6.0
    assert rc.ci_low == pytest.approx((rc.ratio_low - 1) * 100)
    assert rc.test.u == 7.5  # 2 > 1, 4 > 1, 2, 3 and 6 > all three; 2 = 2 counts one half
    assert relative_change([2.0, 4.0, 6.0], [1.0, 2.0, 3.0]) == rc  # seeded


def test_relative_change_edge_cases() -> None:
    same = relative_change([5.0, 5.0], [5.0, 5.0])
    assert same is not None
    assert (same.ratio, same.ratio_low, same.ratio_high, same.p_value) == (1.0, 1.0, 1.0, 1.0)
    single = relative_change([110.0], [100.0, 101.0])
    assert single is not None and single.ratio == pytest.approx(110.0 / 100.5)
    assert single.ratio_low is None and single.ci_low is None and single.ci_high is None
    assert relative_change([1.0, 2.0], [0.0, 0.0]) is None
    assert relative_change([-1.0, -2.0], [1.0, 2.0]) is None
    assert ratio_of_medians_ci([1.0, 2.0], [0.0, 0.0]) is None


def test_relative_change_ci_covers_the_true_ratio() -> None:
    rng = random.Random(11)
    trials, hits = 300, 0
    for i in range(trials):
        base = [rng.gauss(100.0, 5.0) for _ in range(6)]
        mode = [rng.gauss(120.0, 12.0) for _ in range(6)]
        rc = relative_change(mode, base, seed=i)
        assert rc is not None and rc.ratio_low is not None and rc.ratio_high is not None
        hits += rc.ratio_low <= 1.2 <= rc.ratio_high
    assert 0.9 <= hits / trials <= 0.99  # measured 0.95 at n = 5 and 0.965 at n = 10


# -- stability flags -----------------------------------------------------------------------------


def test_stable_figures_have_no_flag() -> None:
    assert stability_flags([100.0, 103.0, 98.0, 101.0]) == ()


def test_high_cv_flag_at_the_pyperf_threshold() -> None:
    # stdev / mean exactly 10 %: mean 10, stdev 1 (values 9, 10, 11).
    flags = stability_flags([9.0, 10.0, 11.0])
    assert [f.kind for f in flags] == [FlagKind.HIGH_CV]
    assert flags[0].short == "CV 10%"
    assert "10% of the mean (10)" in flags[0].message
    assert stability_flags([9.5, 10.0, 10.5]) == ()
    assert CV_LIMIT == 0.10


def test_outlier_flag_at_fifty_percent() -> None:
    # mean 12.5; the maximum 20 is 60 % greater (pyperf's wording), the CV is 40 %.
    flags = stability_flags([10.0, 10.0, 10.0, 20.0])
    kinds = [f.kind for f in flags]
    assert kinds == [FlagKind.HIGH_CV, FlagKind.OUTLIER]
    assert flags[1].message == "the maximum (20) is 60% greater than the mean (12.5)"
    assert flags[1].short == "max +60%"
    # 43 % away: no outlier (pyperf warns from 50 %), but still a CV flag
    assert [f.kind for f in stability_flags([10.0, 10.0, 10.0, 10.0, 16.0])] == [FlagKind.HIGH_CV]
    low = stability_flags([100.0] * 9 + [40.0])  # mean 94, minimum 57 % smaller
    assert FlagKind.OUTLIER in [f.kind for f in low]


def test_few_repetitions_and_passed_in_flags() -> None:
    cross = Flag(FlagKind.CROSS_CHECK, "x-check", "fio's I/Os differ from libvirt's by 7%")
    flags = stability_flags([5.0], extra=[cross])
    assert [f.kind for f in flags] == [FlagKind.FEW_REPETITIONS, FlagKind.CROSS_CHECK]
    assert flags[0].short == "n = 1"
    assert flags[1] is cross
    assert [f.kind for f in stability_flags([5.0, 5.1])] == [FlagKind.FEW_REPETITIONS]
