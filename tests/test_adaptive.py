"""Adaptive repetitions and density: the scenario keys, the stopping rule and Jain's index, on
cases whose answers are known."""

from __future__ import annotations

import math

import pytest

from vbench.adaptive import decide, headline_figures, is_headline, relative_ci_widths
from vbench.density import density_figures, jain_index
from vbench.errors import ScenarioError
from vbench.model import Sample
from vbench.scenario import AdaptiveRepetitions, parse_scenario
from vbench.workloads import CATALOGUE, metric

BASE = """
format_version = 1
name = "ad"
[[modes]]
id = "fv"
[[modes]]
id = "pv"
[[workloads]]
kind = "fio"
rw = ["randread", "randwrite"]
[run]
baremetal = true
"""


def _scenario(run: str) -> str:
    return BASE + run


# -- the scenario keys ----------------------------------------------------------------------------


def test_adaptive_table_is_read_and_plans_max_rounds() -> None:
    s = parse_scenario(
        _scenario("repetitions = { min = 3, max = 6, target_ci_pct = 5 }"), "a.toml"
    ).scenario
    assert s.run.repetitions == AdaptiveRepetitions(min=3, max=6, target_ci_pct=5.0)
    assert s.run.adaptive is s.run.repetitions
    assert (s.run.min_rounds, s.run.max_rounds) == (3, 6)
    trials = s.trials()  # the whole plan: every round that may run
    assert len(trials) == 6 * 3
    assert [t.mode for t in s.round_trials(4)] == ["baremetal", "fv", "pv"]
    assert {t.repetition for t in s.round_trials(4)} == {4}


def test_plain_count_stays_a_fixed_count() -> None:
    s = parse_scenario(_scenario("repetitions = 4"), "a.toml").scenario
    assert s.run.repetitions == 4
    assert s.run.adaptive is None
    assert (s.run.min_rounds, s.run.max_rounds) == (4, 4)
    assert len(s.trials()) == 4 * 3


def test_adaptive_defaults_min_and_max() -> None:
    s = parse_scenario(_scenario("repetitions = { target_ci_pct = 2.5 }"), "a.toml").scenario
    assert s.run.repetitions == AdaptiveRepetitions(min=3, max=10, target_ci_pct=2.5)


@pytest.mark.parametrize(
    ("run", "message"),
    [
        ("repetitions = { min = 5, max = 3, target_ci_pct = 5 }", "run.repetitions: min (5) is"),
        ("repetitions = { min = 1, target_ci_pct = 5 }", "run.repetitions.min: Input should be"),
        ("repetitions = { max = 3000, target_ci_pct = 5 }", "run.repetitions.max: Input should"),
        ("repetitions = { min = 3 }", "run.repetitions.target_ci_pct: required key is missing"),
        ("repetitions = { target_ci_pct = 0 }", "run.repetitions.target_ci_pct: Input should be"),
        ("repetitions = { target_ci_pct = 100 }", "run.repetitions.target_ci_pct: Input should"),
        ("repetitions = { target_ci_pct = '5' }", "run.repetitions.target_ci_pct: Input should"),
        ("repetitions = { target = 5, target_ci_pct = 5 }", "run.repetitions.target: unknown"),
        ("repetitions = 0", "run.repetitions: Input should be greater than or equal to 1"),
        ("repetitions = 'many'", "run.repetitions: Input should be a valid integer, not 'many'"),
        ("density = []", "run.density: List should have at least 1 item"),
        ("density = [1, 2, 2]", "run.density: [1, 2, 2] repeats a level"),
        ("density = [0, 2]", "run.density[0]: Input should be greater than or equal to 1"),
        ("density = [1, 17]", "run.density[1]: Input should be less than or equal to 16"),
        ("density = 2", "run.density: Input should be a valid list"),
        ("density = [1.5]", "run.density[0]: Input should be a valid integer"),
    ],
)
def test_bad_repetitions_and_density_name_the_key(run: str, message: str) -> None:
    with pytest.raises(ScenarioError) as err:
        parse_scenario(_scenario(run), "bad.toml")
    text = str(err.value)
    assert text.startswith(f"bad.toml: {message}"), text
    assert "\n" not in text
    assert "<adaptive>" not in text and "<count>" not in text  # the union's tags stay inside


def test_density_levels_make_one_trial_each_per_mode_and_round() -> None:
    s = parse_scenario(_scenario("repetitions = 2\ndensity = [1, 2, 4]"), "d.toml").scenario
    trials = s.round_trials(1)
    assert [(t.mode, t.density) for t in trials] == [
        ("baremetal", None), ("fv", 1), ("fv", 2), ("fv", 4), ("pv", 1), ("pv", 2), ("pv", 4)
    ]  # fmt: skip
    assert [t.id for t in trials[:3]] == ["r1-baremetal", "r1-fv-n1", "r1-fv-n2"]
    # every case carries its density (the bare-metal pass: one instance, the N=1 reference)
    assert {w.density for t in trials for w in t.workloads if t.density} == {1, 2, 4}
    assert {w.density for w in trials[0].workloads} == {1}
    assert {w.labels["density"] for w in trials[0].workloads} == {1}
    assert all("density" not in w.params for t in trials for w in t.workloads)  # not fio's
    fv2 = trials[2]
    case = fv2.workloads[0]
    assert fv2.case_id(case) == f"r1-fv-n2-{case.slug}"
    assert case.slug == "fio-randread-4k-qd16-j1"  # the slug (file names) does not change
    assert len(s.trials()) == 2 * 7


def test_without_density_cases_carry_no_density() -> None:
    s = parse_scenario(_scenario("repetitions = 1"), "d.toml").scenario
    assert all(w.density is None and w.labels == w.params for t in s.trials() for w in t.workloads)
    assert all(t.density is None for t in s.trials())


# -- the stopping rule ------------------------------------------------------------------------

KEY = ("pv", "fio", "bs=4k,rw=randread", "read.iops")
KEY2 = ("fv", "fio", "bs=4k,rw=randread", "read.iops")


def test_width_of_three_spread_values_is_known() -> None:
    """Resampling {50, 100, 150} three times, the median is 50 with P = 7/27 (at least two 50s),
    150 likewise: both tails exceed 2.5 %, so the 95 % interval is [50, 150], half width 50, and
    relative to the median 100 that is 50 %."""
    widths = relative_ci_widths({KEY: [50.0, 100.0, 150.0]})
    assert widths[KEY] == pytest.approx(50.0)


def test_width_of_equal_values_is_zero_and_of_one_value_undefined() -> None:
    widths = relative_ci_widths({KEY: [7.0, 7.0, 7.0], KEY2: [3.0]})
    assert widths == {KEY: 0.0, KEY2: None}


def test_width_with_zero_median() -> None:
    assert relative_ci_widths({KEY: [0.0, 0.0]}) == {KEY: 0.0}
    assert relative_ci_widths({KEY: [-1.0, 0.0, 1.0]}) == {KEY: None}


def _decide(widths: dict[tuple[str, str, str, str], float | None], rounds: int) -> object:
    return decide(widths, rounds, min_rounds=3, max_rounds=5, target_ci_pct=5.0)


def test_rule_goes_on_before_min_even_when_tight() -> None:
    d = decide({KEY: 0.0}, 2, min_rounds=3, max_rounds=5, target_ci_pct=5.0)
    assert (d.stop, d.reason) == (False, None)


def test_rule_stops_when_every_figure_is_within_target() -> None:
    d = decide({KEY: 4.9, KEY2: 5.0}, 3, min_rounds=3, max_rounds=5, target_ci_pct=5.0)
    assert (d.stop, d.reason, d.rounds) == (True, "target", 3)
    assert (d.widest, d.widest_pct) == (KEY2, 5.0)
    assert d.describe(5.0).startswith("target reached after 3 rounds")


def test_rule_goes_on_while_one_figure_is_wide() -> None:
    d = decide({KEY: 1.0, KEY2: 5.1}, 4, min_rounds=3, max_rounds=5, target_ci_pct=5.0)
    assert (d.stop, d.widest, d.widest_pct) == (False, KEY2, 5.1)


def test_rule_stops_at_max_and_names_the_widest() -> None:
    d = decide({KEY: 1.0, KEY2: 12.25}, 5, min_rounds=3, max_rounds=5, target_ci_pct=5.0)
    assert (d.stop, d.reason, d.widest) == (True, "max", KEY2)
    text = d.describe(5.0)
    assert "max reached (5 rounds)" in text
    assert "fv fio (bs=4k,rw=randread) read.iops ±12.2 %" in text


def test_undefined_width_is_the_widest_and_never_meets_the_target() -> None:
    d = decide({KEY: 100.0, KEY2: None}, 4, min_rounds=3, max_rounds=5, target_ci_pct=5.0)
    assert (d.stop, d.widest, d.widest_pct) == (False, KEY2, None)
    d = decide({KEY2: None}, 5, min_rounds=3, max_rounds=5, target_ci_pct=5.0)
    assert (d.stop, d.reason) == (True, "max")
    assert "undefined" in d.describe(5.0)


def test_no_figures_stop_at_min() -> None:
    assert decide({}, 2, min_rounds=3, max_rounds=5, target_ci_pct=5.0).stop is False
    d = decide({}, 3, min_rounds=3, max_rounds=5, target_ci_pct=5.0)
    assert (d.stop, d.reason, d.widest) == (True, "no-figures", None)


def test_rule_refuses_nonsense_bounds() -> None:
    with pytest.raises(ValueError):
        decide({}, 1, min_rounds=4, max_rounds=3, target_ci_pct=5.0)
    with pytest.raises(ValueError):
        decide({}, 1, min_rounds=1, max_rounds=3, target_ci_pct=0.0)


def _sample(metric: str, value: float, parameters: str = "bs=4k,rw=randread", mode: str = "pv",
            workload: str = "fio", case_id: str = "r0-pv-x") -> Sample:  # fmt: skip
    return Sample("run", case_id, mode, workload, parameters, 0, metric, value, "u", 0.0)


def test_headline_metrics_are_the_workloads_key_results() -> None:
    assert is_headline(_sample("read.iops", 1))
    assert is_headline(_sample("read.clat_p99", 1))
    assert not is_headline(_sample("read.clat_mean", 1))  # not in the overview
    assert not is_headline(_sample("host.qemu_cpu_per_io", 1))  # the runner's: explains, no key
    assert not is_headline(_sample("boot_to_agent", 1, workload="boot", parameters=""))
    assert is_headline(_sample("cpu.bogo_ops_s_real", 1, workload="stress-ng"))


def test_in_density_cases_only_the_aggregates_count() -> None:
    params = "bs=4k,density=2,rw=randread"
    assert not is_headline(_sample("read.iops", 1, params))  # N values per round
    assert is_headline(_sample("agg.read.iops", 1, params))
    assert not is_headline(_sample("fair.read.iops", 1, params))
    one = "bs=4k,density=1,rw=randread"  # one guest (or bare metal): one value per round
    assert is_headline(_sample("read.iops", 1, one))
    assert not is_headline(_sample("agg.read.iops", 1, one))  # the same value again


def test_headline_figures_group_by_mode_case_and_metric() -> None:
    samples = [
        _sample("read.iops", 10),
        _sample("read.iops", 12),
        _sample("read.iops", 11, mode="fv"),
        _sample("read.lat_mean", 3),
    ]
    assert headline_figures(samples) == {KEY: [10.0, 12.0], KEY2: [11.0]}


# -- density: Jain's index and the aggregate figures ----------------------------------------------


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([5.0], 1.0),
        ([3.0, 3.0, 3.0, 3.0], 1.0),
        ([1.0, 0.0], 0.5),  # one of two got everything: 1/N
        ([4.0, 0.0, 0.0, 0.0], 0.25),
        ([1.0, 2.0], 9.0 / 10.0),  # (1+2)^2 / (2 * (1+4))
        ([1.0, 2.0, 3.0], 36.0 / 42.0),  # 6^2 / (3 * 14)
    ],
)
def test_jain_index_known_answers(values: list[float], expected: float) -> None:
    assert jain_index(values) == pytest.approx(expected)


def test_jain_index_edges() -> None:
    assert jain_index([0.0, 0.0]) is None
    with pytest.raises(ValueError):
        jain_index([])
    with pytest.raises(ValueError):
        jain_index([1.0, -1.0])
    with pytest.raises(ValueError):
        jain_index([1.0, math.inf])


def test_density_figures_sum_and_fairness_of_key_throughput() -> None:
    params = "bs=4k,density=2,rw=randread"
    g0 = [_sample("read.iops", 300, params), _sample("read.clat_p99", 50, params)]
    g1 = [_sample("read.iops", 100, params), _sample("read.clat_p99", 70, params)]
    g0.append(_sample("host.cpu_busy", 60, params))
    g1.append(_sample("host.cpu_busy", 70, params))
    figures = {name: (value, unit) for name, value, unit in density_figures([g0, g1])}
    # latency is not summed; IOPS is, and (300+100)^2 / (2 * (300^2 + 100^2)) = 0.8
    assert set(figures) == {"agg.read.iops", "fair.read.iops", "host.cpu_busy"}
    assert figures["host.cpu_busy"] == (65.0, "u")  # the host's, while they ran: the mean
    assert figures["agg.read.iops"] == (400.0, "u")
    assert figures["fair.read.iops"][0] == pytest.approx(0.8)
    assert figures["fair.read.iops"][1] == "Jain"


def test_density_figures_need_every_guest() -> None:
    g0 = [_sample("read.iops", 300)]
    assert density_figures([g0, []]) == []
    assert density_figures([]) == []


def test_density_catalogue_covers_the_key_throughput_of_every_workload() -> None:
    for m in CATALOGUE:
        if m.overview and m.higher_is_better and not m.name.startswith(("agg.", "fair.")):
            agg, fair = metric(f"agg.{m.name}"), metric(f"fair.{m.name}")
            assert agg is not None and fair is not None, m.name
            assert (agg.unit, agg.group, agg.overview) == (m.unit, "density", True)
            assert fair.unit == "Jain"
    assert metric("agg.read.clat_p99") is None  # latencies are not summed


# -- records and the report ------------------------------------------------------------------------


def test_density_guests_boot_samples_are_cases_of_the_manifest() -> None:
    from vbench.results import Manifest, ScenarioRecord, TrialRecord

    manifest = Manifest(
        run_id="r",
        libvirt_uri="test:///default",
        scenario=ScenarioRecord(path="s.toml", name="s", sha256="0", text=""),
        trials=[
            TrialRecord(mode="pv", mode_id="pv", repetition=0, status="ok"),
            TrialRecord(mode="pv", mode_id="pv", repetition=1, status="ok", density=2, guest=1),
        ],
    )
    assert manifest.case_ids() == {"r0-pv-boot", "r1-pv-n2g1-boot"}


def test_report_density_table_has_a_column_per_level() -> None:
    from vbench.report.analysis import summarize_samples
    from vbench.report.density import density_table

    base = "bs=4k,rw=randread"
    rows = []
    for n, agg, fair, cpu in ((1, 100.0, 1.0, 40.0), (2, 180.0, 0.9, 80.0)):
        params = f"{base},density={n}"
        for rep in range(2):
            rows += [
                _sample("agg.read.iops", agg + rep, params),
                _sample("fair.read.iops", fair, params),
                _sample("host.cpu_busy", cpu, params),
                _sample("read.iops", agg / n, params),
            ]
    rows.append(_sample("read.iops", 50.0, base, mode="fv"))  # no density: not in the table
    import pandas as pd

    frame = pd.DataFrame([s.as_row() for s in rows])
    table = density_table(summarize_samples(frame, ["pv", "fv"]), ["pv", "fv"])
    assert table is not None
    assert table.levels == [1, 2]
    (row,) = table.rows
    assert (row.workload, row.case, row.mode, row.unit) == (
        "fio",
        "rw=randread, bs=4k",
        "pv",
        "IO/s",
    )
    assert row.metric == "aggregate read IOPS"
    assert [(c.aggregate, c.fairness, c.host_cpu) for c in row.cells] == [
        (100.5, 1.0, 40.0),
        (180.5, 0.9, 80.0),
    ]
