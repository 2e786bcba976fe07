"""stress-ng: scenario entry, argv, and the parser on real stress-ng 0.15 YAML output.

The YAML files under tests/data/stress-ng were written by
`stress-ng ... --metrics --yaml /proc/self/fd/1` on the development machine (2 CPUs, Debian 12);
the `.stderr` file is the human-readable output of the same run.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from vbench.errors import WorkloadOutputError
from vbench.model import WorkloadCase
from vbench.workloads import Target
from vbench.workloads.base import SampleLabels
from vbench.workloads.stress_ng import (
    STRESS_NG,
    StressNgSpec,
    parse_stress_ng_yaml,
    stress_ng_argv,
)

DATA = Path(__file__).parent / "data" / "stress-ng"
LABELS = SampleLabels("run1", "r0-pv-stress-ng-cpu-w2", "pv", "stress-ng", "stressor=cpu", 0, 1.0)
# metric -> key of the YAML metrics entry it comes from
KEYS = {
    "cpu.bogo_ops_s_real": "bogo-ops-per-second-real-time",
    "cpu.bogo_ops_s_usr_sys": "bogo-ops-per-second-usr-sys-time",
    "cpu.bogo_ops": "bogo-ops",
    "cpu.usage_per_instance": "cpu-usage-per-instance",
}


def _entries(path: Path) -> list[dict[str, Any]]:
    entries = yaml.safe_load(path.read_text())["metrics"]
    assert isinstance(entries, list)
    return entries


@pytest.mark.parametrize(
    "name", ["cpu-matrixprod-2workers.yaml", "matrix-1worker.yaml", "memcpy-libc-1worker.yaml"]
)
def test_parser_takes_the_figures_of_the_real_report(name: str) -> None:
    path = DATA / name
    (entry,) = _entries(path)
    samples = STRESS_NG.parse(path.read_bytes(), LABELS)
    got = {s.metric: s.value for s in samples}
    assert got == {metric: float(entry[key]) for metric, key in KEYS.items()}
    assert {s.unit for s in samples if s.metric.startswith("cpu.bogo_ops_s")} == {"ops/s"}
    assert all(s.case_id == LABELS.case_id and s.workload == "stress-ng" for s in samples)


def test_two_workers_report_the_sum_in_real_time_and_the_rate_per_cpu_second() -> None:
    got = {
        s.metric: s.value
        for s in STRESS_NG.parse((DATA / "cpu-matrixprod-2workers.yaml").read_bytes(), LABELS)
    }
    # 5316 bogo-ops in 3.00 s of wall time by 2 workers with 4.94 s of CPU time between them
    assert got["cpu.bogo_ops"] == 5316
    assert got["cpu.bogo_ops_s_real"] == pytest.approx(5316 / 3.002177, rel=1e-4)
    assert got["cpu.bogo_ops_s_usr_sys"] == pytest.approx(5316 / (4.931978 + 0.007773), rel=1e-4)


def test_the_human_readable_lines_are_not_in_the_yaml() -> None:
    # what --yaml /proc/self/fd/1 relies on: stdout is YAML only, the table goes to stderr
    assert "stress-ng: metrc:" in (DATA / "cpu-matrixprod-2workers.stderr").read_text()
    assert "stress-ng:" not in (DATA / "cpu-matrixprod-2workers.yaml").read_text()


def test_a_report_of_several_stressors_needs_a_name() -> None:
    text = (DATA / "several" / "cpu-int64-and-matrix.yaml").read_text()
    with pytest.raises(WorkloadOutputError, match=r"several stressors \['cpu', 'matrix'\]"):
        parse_stress_ng_yaml(text, LABELS)
    cpu, matrix = _entries(DATA / "several" / "cpu-int64-and-matrix.yaml")
    got = {s.metric: s.value for s in parse_stress_ng_yaml(text, LABELS, stressor="matrix")}
    assert got["cpu.bogo_ops"] == matrix["bogo-ops"] != cpu["bogo-ops"]
    with pytest.raises(WorkloadOutputError, match="no metrics of stressor 'vm'"):
        parse_stress_ng_yaml(text, LABELS, stressor="vm")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "printed nothing"),
        ("   \n", "printed nothing"),
        ("successful run completed in 2.00s", "not a YAML report"),
        ("---\nmetrics: [\n", "not valid YAML"),
        ("---\nsystem-info:\n  cpus: 2\n...\n", "has no metrics"),
        ("---\nmetrics: []\n", "has no metrics"),
        ("---\nmetrics:\n  - 3\n", "not mappings"),
        ("---\nmetrics:\n  - stressor: cpu\n    bogo-ops: 5\n", "bogo-ops-per-second-real-time"),
        (
            "---\nmetrics:\n  - stressor: cpu\n    bogo-ops-per-second-real-time: 0.0\n"
            "    bogo-ops-per-second-usr-sys-time: 0.0\n",
            "did no work",
        ),
    ],
)
def test_unusable_output_is_one_line(text: str, message: str) -> None:
    with pytest.raises(WorkloadOutputError, match=message) as info:
        parse_stress_ng_yaml(text, LABELS)
    assert "\n" not in str(info.value)


# -- spec, cases, argv ---------------------------------------------------------------------------


def _cases(**spec: Any) -> list[WorkloadCase]:
    return STRESS_NG.cases(StressNgSpec.model_validate({"kind": "stress-ng", **spec}))


def test_one_case_per_stressor_workers_default_to_the_vcpus() -> None:
    cases = _cases(stressors=[{"name": "cpu", "method": "matrixprod"}, {"name": "memcpy"}])
    assert [c.slug for c in cases] == ["stress-ng-cpu-matrixprod-wvcpus", "stress-ng-memcpy-wvcpus"]
    assert STRESS_NG.argv(cases[0], Target("guest", vcpus=4)) == [
        "stress-ng",
        "--cpu",
        "4",
        "--cpu-method",
        "matrixprod",
        "--timeout",
        "5s",
        "--metrics",
        "--yaml",
        "/proc/self/fd/1",
    ]
    assert STRESS_NG.argv(cases[1], Target("host", vcpus=1))[1:3] == ["--memcpy", "1"]
    assert STRESS_NG.timeout(cases[0]) > 5


def test_explicit_workers_and_timeout() -> None:
    (case,) = _cases(stressors=[{"name": "matrix"}], workers=3, timeout_s=7)
    assert case.slug == "stress-ng-matrix-w3"
    argv = STRESS_NG.argv(case, Target("guest", vcpus=1))
    assert argv[1:3] == ["--matrix", "3"] and argv[argv.index("--timeout") + 1] == "7s"


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"stressor": "fork-bomb"}, "stressor"),
        ({"workers": 0}, "workers"),
        ({"workers": "all"}, "workers"),
        ({"timeout_s": "5s"}, "timeout_s"),
        ({"method": "matrixprod; reboot"}, "method"),
    ],
)
def test_argv_rejects_values_outside_the_whitelist(change: dict[str, Any], fragment: str) -> None:
    params = {"stressor": "cpu", "workers": 1, "timeout_s": 5, **change}
    with pytest.raises(ValueError, match=fragment):
        stress_ng_argv(params, vcpus=1)


def test_the_argv_runs_here_and_parses() -> None:
    """The real tool on this host: YAML on stdout, the table on stderr, one stressor's figures."""
    (case,) = _cases(stressors=[{"name": "cpu", "method": "int64"}], workers=1, timeout_s=1)
    argv = STRESS_NG.argv(case, Target("host", vcpus=1))
    proc = subprocess.run(argv, capture_output=True, timeout=60, check=True)
    assert b"successful run completed" in proc.stderr
    got = {s.metric: s.value for s in STRESS_NG.parse(proc.stdout, LABELS)}
    assert got["cpu.bogo_ops_s_real"] > 0 and got["cpu.bogo_ops"] > 0
