"""fio argv builder and JSON parser, against real fio 3.33 output in tests/data/fio."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from vbench.command import run
from vbench.errors import VbenchError, WorkloadOutputError
from vbench.model import WorkloadCase
from vbench.workloads.base import SampleLabels, Target
from vbench.workloads.fio import FIO, FioSpec, fio_argv, parse_fio_json

DATA = Path(__file__).parent / "data" / "fio"
LABELS = SampleLabels(
    run_id="run1",
    case_id="r0-pv-fio-randread-4k-qd16-j1",
    mode="pv",
    workload="fio",
    parameters="bs=4k,rw=randread",
    repetition=0,
    timestamp=1700000000.0,
)


def _load(name: str) -> tuple[str, dict[str, Any]]:
    text = (DATA / name).read_text()
    return text, json.loads(text[text.index("{") :])


def _by_metric(name: str) -> dict[str, tuple[float, str]]:
    text, _ = _load(name)
    return {s.metric: (s.value, s.unit) for s in parse_fio_json(text, LABELS)}


def _expected(section: dict[str, Any]) -> dict[str, float]:
    clat = section["clat_ns"]
    return {
        "iops": section["iops"],
        "bw": section["bw_bytes"] / 1048576,
        "clat_mean": clat["mean"] / 1000,
        "clat_p50": clat["percentile"]["50.000000"] / 1000,
        "clat_p99": clat["percentile"]["99.000000"] / 1000,
        "clat_p99.9": clat["percentile"]["99.900000"] / 1000,
        "lat_mean": section["lat_ns"]["mean"] / 1000,
        "ios": section["total_ios"],
        "io_bytes": section["io_bytes"],
    }


@pytest.mark.parametrize(
    ("name", "directions"),
    [
        ("randread-4k-libaio-qd16.json", ["read"]),
        ("randwrite-4k-libaio-qd16.json", ["write"]),
        ("read-1m-psync.json", ["read"]),
        ("randrw-4k-libaio-qd8.json", ["read", "write"]),
        ("randread-4k-j2-group.json", ["read"]),
        ("randread-4k-psync-note-line.txt", ["read"]),
    ],
)
def test_single_job_values_match_the_json(name: str, directions: list[str]) -> None:
    got = _by_metric(name)
    _, data = _load(name)
    assert len(data["jobs"]) == 1
    job = data["jobs"][0]
    expected_metrics = set()
    for direction in directions:
        for metric, value in _expected(job[direction]).items():
            key = f"{direction}.{metric}"
            expected_metrics.add(key)
            assert got[key][0] == pytest.approx(value, rel=1e-12), key
    assert set(got) == expected_metrics  # directions without I/O produce nothing
    assert got[f"{directions[0]}.iops"][1] == "IO/s"
    assert got[f"{directions[0]}.bw"][1] == "MiB/s"
    assert got[f"{directions[0]}.clat_p99"][1] == "us"


def test_bw_is_mib_per_second_consistent_with_fio_kib() -> None:
    _, data = _load("read-1m-psync.json")
    got = _by_metric("read-1m-psync.json")
    # fio's `bw` is KiB/s (rounded); bw_bytes / 2**20 must agree with it to within a KiB/s.
    assert got["read.bw"][0] * 1024 == pytest.approx(data["jobs"][0]["read"]["bw"], abs=1.0)


def test_group_reporting_with_two_jobs_is_taken_as_fio_aggregated_it() -> None:
    _, data = _load("randread-4k-j2-group.json")
    assert data["jobs"][0]["job options"]["numjobs"] == "2"
    got = _by_metric("randread-4k-j2-group.json")
    assert got["read.iops"][0] == pytest.approx(data["jobs"][0]["read"]["iops"])


def test_two_jobs_without_group_reporting_are_combined() -> None:
    _, data = _load("randread-4k-j2-nogroup.json")
    jobs = [j["read"] for j in data["jobs"]]
    assert len(jobs) == 2
    got = _by_metric("randread-4k-j2-nogroup.json")
    assert got["read.iops"][0] == pytest.approx(sum(j["iops"] for j in jobs))
    assert got["read.bw"][0] == pytest.approx(sum(j["bw_bytes"] for j in jobs) / 2**20)
    n = [j["clat_ns"]["N"] for j in jobs]
    pooled = sum(j["clat_ns"]["mean"] * k for j, k in zip(jobs, n, strict=True)) / sum(n)
    assert got["read.clat_mean"][0] == pytest.approx(pooled / 1000)
    worst_p99 = max(j["clat_ns"]["percentile"]["99.000000"] for j in jobs)
    assert got["read.clat_p99"][0] == pytest.approx(worst_p99 / 1000)
    assert "write.iops" not in got


def test_labels_are_carried_on_every_sample() -> None:
    text, _ = _load("randrw-4k-libaio-qd8.json")
    samples = parse_fio_json(text, LABELS)
    assert {(s.run_id, s.case_id, s.mode, s.workload, s.parameters) for s in samples} == {
        ("run1", LABELS.case_id, "pv", "fio", "bs=4k,rw=randread")
    }
    assert {s.repetition for s in samples} == {0}
    assert {s.timestamp for s in samples} == {1700000000.0}


def test_leading_fio_warning_and_trailing_text_are_tolerated() -> None:
    text, data = _load("randread-4k-libaio-qd16.json")
    noisy = "fio: this platform does not support process shared mutexes\n" + text + "\nfio: bye\n"
    got = {s.metric: s.value for s in parse_fio_json(noisy, LABELS)}
    assert got["read.iops"] == pytest.approx(data["jobs"][0]["read"]["iops"])


def test_real_note_line_file_starts_with_a_non_json_line() -> None:
    text = (DATA / "randread-4k-psync-note-line.txt").read_text()
    assert not text.startswith("{")
    with pytest.raises(json.JSONDecodeError):
        json.loads(text)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "printed nothing"),
        ("   \n", "printed nothing"),
        ("fio: failed to open /dev/vdb: No such file\n", "no JSON object"),
        ('{"jobs": [', "not valid JSON"),
        ('{"fio version": "fio-3.33"}', "no jobs"),
        ('{"jobs": []}', "no jobs"),
        ('{"jobs": [{"jobname": "x", "error": 5}]}', "error 5"),
    ],
)
def test_bad_output_raises_one_line_error(text: str, fragment: str) -> None:
    with pytest.raises(WorkloadOutputError) as info:
        parse_fio_json(text, LABELS)
    assert isinstance(info.value, VbenchError)
    assert fragment in str(info.value)
    assert "\n" not in str(info.value)


def test_output_without_any_io_raises() -> None:
    _, data = _load("randread-4k-libaio-qd16.json")
    for direction in ("read", "write", "trim"):
        data["jobs"][0][direction]["total_ios"] = 0
        data["jobs"][0][direction]["io_bytes"] = 0
    with pytest.raises(WorkloadOutputError, match="no I/O"):
        parse_fio_json(json.dumps(data), LABELS)


def test_missing_percentiles_are_left_out() -> None:
    _, data = _load("randread-4k-libaio-qd16.json")
    del data["jobs"][0]["read"]["clat_ns"]["percentile"]
    got = {s.metric for s in parse_fio_json(json.dumps(data), LABELS)}
    assert "read.clat_mean" in got
    assert not {m for m in got if "_p" in m}


# -- argv ----------------------------------------------------------------------------------------


def _case() -> WorkloadCase:
    spec = FioSpec(kind="fio", rw=["randread"], bs=["4K"], iodepth=[32], numjobs=[2], runtime_s=7)
    return FIO.cases(spec)[0]


def test_argv_shape_from_a_scenario_case() -> None:
    argv = fio_argv(_case().params, filename="/dev/vdb", job_name="r0-pv-fio-randread-4k-qd32-j2")
    assert argv == [
        "fio",
        "--name=r0-pv-fio-randread-4k-qd32-j2",
        "--filename=/dev/vdb",
        "--rw=randread",
        "--bs=4k",
        "--iodepth=32",
        "--numjobs=2",
        "--runtime=7",
        "--time_based",
        "--ramp_time=0",
        "--ioengine=libaio",
        "--direct=1",
        "--group_reporting",
        "--output-format=json",
    ]


def test_argv_size_and_buffered() -> None:
    params = dict(_case().params, direct=False, size="64m", ioengine="psync")
    argv = fio_argv(params, filename="/tmp/fio.dat", job_name="t")
    assert "--direct=0" in argv
    assert "--ioengine=psync" in argv
    assert argv.index("--size=64m") < argv.index("--group_reporting")


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"rw": "randread --exec_prerun=sh"}, "rw="),
        ({"bs": "4k;reboot"}, "bs="),
        ({"iodepth": 0}, "iodepth="),
        ({"iodepth": True}, "iodepth="),
        ({"numjobs": "2"}, "numjobs="),
        ({"ioengine": "external:/tmp/x.so"}, "ioengine="),
        ({"direct": 1}, "direct="),
        ({"size": "1m --write_iolog=/x"}, "size="),
        ({"exec_prerun": "reboot"}, "not supported"),
    ],
)
def test_argv_rejects_values_outside_the_whitelist(change: dict[str, Any], fragment: str) -> None:
    params = dict(_case().params, **change)
    with pytest.raises(ValueError, match=fragment):
        fio_argv(params, filename="/dev/vdb", job_name="t")


@pytest.mark.parametrize("filename", ["vdb", "/dev/vdb:/etc/passwd", "-", "/dev/../etc/x", "/a b"])
def test_argv_rejects_bad_filenames(filename: str) -> None:
    with pytest.raises(ValueError, match="filename"):
        fio_argv(_case().params, filename=filename, job_name="t")


@pytest.mark.parametrize("job_name", ["", "a b", "--rw=write", "x/y"])
def test_argv_rejects_bad_job_names(job_name: str) -> None:
    with pytest.raises(ValueError, match="job name"):
        fio_argv(_case().params, filename="/dev/vdb", job_name=job_name)


def test_labels_for_case_use_canonical_parameters() -> None:
    case = _case()
    labels = SampleLabels.for_case(
        case, run_id="r", case_id="c", mode="pv", repetition=2, timestamp=1.0
    )
    assert labels.workload == "fio"
    assert labels.parameters.startswith("bs=4k,direct=True,")
    assert "rw=randread" in labels.parameters


# -- size, ioengine, precondition ----------------------------------------------------------------


def _write_case(**spec: Any) -> WorkloadCase:
    fields = {"kind": "fio", "rw": ["randwrite"], "iodepth": [8], **spec}
    (case,) = FIO.cases(FioSpec.model_validate(fields))
    return case


def test_size_and_ioengine_from_the_spec() -> None:
    case = _write_case(size="64M", ioengine="io_uring")
    argv = FIO.argv(case, Target("guest", disk="/dev/vda"))
    assert "--size=64m" in argv and "--ioengine=io_uring" in argv
    assert case.slug == "fio-randwrite-4k-qd8-j1-io_uring-64m"
    assert _write_case(size="50%").slug.endswith("-50pct")


def test_precondition_fill_is_a_step_before_the_measured_job() -> None:
    case = _write_case(precondition="fill", size="16m")
    target = Target("host", disk="/var/lib/vbench/x.raw")
    step = FIO.prepare(case, target)
    assert step is not None and step.raw_name == "fio.precondition.json"
    fill = step.argv
    assert fill[:2] == ["fio", "--name=precondition"] and "--output-format=json" in fill
    assert {"--rw=write", "--bs=1m", "--size=16m", "--filename=/var/lib/vbench/x.raw"} <= set(fill)
    assert "--time_based" not in fill  # the fill ends when the target is written once
    # the measured command is the case alone: the window (samplers, cross-checks) opens after
    # the fill, so libvirt's block counters there are the measured job's only
    measured = FIO.argv(case, target)
    assert not any(a.startswith("--name=precondition") or a == "--stonewall" for a in measured)
    assert {"--rw=randwrite", "--time_based", "--size=16m"} <= set(measured)
    plain = FIO.argv(_write_case(precondition="none", size="16m"), target)
    assert measured == [plain[0], f"--name={case.slug}", *plain[2:]]  # the same job, renamed
    assert FIO.timeout(case) == FIO.timeout(_write_case())
    assert step.timeout_s > 0


def test_precondition_none_is_the_plain_job() -> None:
    case = _write_case(precondition="none")
    assert case.params["precondition"] == "none"
    argv = FIO.argv(case, Target("guest", disk="/dev/vda"))
    assert argv[1] == f"--name={case.slug}" and "--stonewall" not in argv
    assert FIO.prepare(case, Target("guest", disk="/dev/vda")) is None
    assert FIO.prepare(_case(), Target("guest", disk="/dev/vda")) is None  # a read


def test_fill_then_measured_job_on_real_fio_output() -> None:
    """Real fio 3.33 output of the two commands (16 MiB scratch file, qd8, 2 s): the fill wrote
    the target once; the measured output holds the measured job only, so its tallies are what a
    device counter sees over the window that opens after the fill."""
    _text, fill = _load("fill/precondition-16m-qd8.json")
    (job,) = fill["jobs"]
    assert job["jobname"] == "precondition" and job["write"]["io_bytes"] == 16 * 2**20
    text, measured = _load("randwrite-4k-libaio-qd8-after-fill.json")
    (mjob,) = measured["jobs"]
    tallies = FIO.tallies(FIO.parse(text.encode(), LABELS))
    assert tallies.ios == mjob["write"]["total_ios"] + mjob["read"]["total_ios"]
    assert tallies.io_bytes == mjob["write"]["io_bytes"] + mjob["read"]["io_bytes"]


def test_fill_and_measured_commands_run_by_real_fio(tmp_path: Path) -> None:
    case = _write_case(precondition="fill", size="4m", runtime_s=1)
    target = Target("host", disk=str(tmp_path / "scratch.raw"))
    step = FIO.prepare(case, target)
    assert step is not None
    fill = json.loads(run(step.argv, timeout_s=step.timeout_s).stdout)
    assert [j["jobname"] for j in fill["jobs"]] == ["precondition"]
    assert fill["jobs"][0]["write"]["io_bytes"] == 4 * 2**20
    out = run(FIO.argv(case, target), timeout_s=FIO.timeout(case)).stdout
    assert [j["jobname"] for j in json.loads(out)["jobs"]] == [case.slug]
    assert (FIO.tallies(FIO.parse(out, LABELS)).ios or 0) > 0


def test_precondition_applies_to_writes_only() -> None:
    params = dict(_case().params, precondition="fill")  # a randread case
    with pytest.raises(ValueError, match="applies to writes"):
        fio_argv(params, filename="/dev/vdb", job_name="t")
    with pytest.raises(ValueError, match="reserved"):
        fio_argv(_write_case().params, filename="/dev/vdb", job_name="precondition")


def test_parser_skips_the_precondition_job_of_real_output() -> None:
    # real fio 3.33 output of the fill and the case in one fio run (16 MiB file, qd8), as vbench
    # ran them before the fill became a step of its own: the fill job comes first, and fio prints
    # a description line of it before the JSON.  Such runs' raw outputs still parse.
    text = (DATA / "randwrite-4k-libaio-qd8-fill.txt").read_text()
    data = json.loads(text[text.index("{") :])
    fill, measured = data["jobs"]
    assert fill["jobname"] == "precondition" and fill["write"]["io_bytes"] == 16 * 2**20
    got = {s.metric: s.value for s in parse_fio_json(text, LABELS)}
    assert got["write.iops"] == measured["write"]["iops"] != fill["write"]["iops"]
    assert not any(m.startswith("read.") for m in got)


def test_output_with_only_the_precondition_job_is_refused() -> None:
    text = (DATA / "randwrite-4k-libaio-qd8-fill.txt").read_text()
    data = json.loads(text[text.index("{") :])
    data["jobs"] = data["jobs"][:1]
    with pytest.raises(WorkloadOutputError, match="only the precondition job"):
        parse_fio_json(json.dumps(data), LABELS)
