"""fio: the argv for one workload case, and its JSON output turned into tidy samples.

Pure: no subprocess, no filesystem, no clock.  The runner executes the argv in the guest (through
the guest agent, never a shell) and hands the captured stdout to `parse_fio_json`.

Metrics (one set per direction that did I/O: `read`, `write`, and `trim` if present):

| metric               | unit  | from fio JSON                                   |
|----------------------|-------|-------------------------------------------------|
| `<dir>.iops`         | IO/s  | `iops`                                          |
| `<dir>.bw`           | MiB/s | `bw_bytes` / 2**20 (fio's `bw` is KiB/s)        |
| `<dir>.clat_mean`    | us    | `clat_ns.mean` / 1000 (completion latency)      |
| `<dir>.clat_p50`     | us    | `clat_ns.percentile["50.000000"]` / 1000        |
| `<dir>.clat_p99`     | us    | `clat_ns.percentile["99.000000"]` / 1000        |
| `<dir>.clat_p99.9`   | us    | `clat_ns.percentile["99.900000"]` / 1000        |
| `<dir>.lat_mean`     | us    | `lat_ns.mean` / 1000 (submission + completion)  |

Several jobs (`numjobs > 1`):

* with `--group_reporting` (what `fio_argv` always asks for) fio prints one aggregated job and its
  figures are taken as they are;
* without it (output from elsewhere), the jobs are combined here: IOPS and bandwidth are summed;
  mean latencies are the I/O-count weighted mean (the exact pooled mean); percentiles are the
  *largest* per-job percentile, because the pooled percentile cannot be recovered from per-job
  percentiles and the largest is a guaranteed upper bound (the pooled p99 lies between the smallest
  and largest job p99): the report never understates tail latency.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from vbench.errors import WorkloadOutputError
from vbench.model import ParamValue, Sample, WorkloadCase, canonical_parameters

RW_MODES = frozenset(
    {"read", "write", "randread", "randwrite", "rw", "randrw", "readwrite", "trim"}
)
IOENGINES = frozenset({"libaio", "io_uring", "psync", "sync", "pvsync", "pvsync2", "posixaio"})
DIRECTIONS = ("read", "write", "trim")
PERCENTILES: tuple[tuple[str, str], ...] = (
    ("clat_p50", "50.000000"),
    ("clat_p99", "99.000000"),
    ("clat_p99.9", "99.900000"),
)
UNITS: dict[str, str] = {
    "iops": "IO/s",
    "bw": "MiB/s",
    "clat_mean": "us",
    "clat_p50": "us",
    "clat_p99": "us",
    "clat_p99.9": "us",
    "lat_mean": "us",
}

_BLOCK_SIZE = re.compile(r"^[1-9]\d{0,9}[kKmMgG]?$")
_SIZE = re.compile(r"^[1-9]\d{0,12}[kKmMgGtT]?$|^[1-9]\d?%$|^100%$")
_JOB_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
# fio splits --filename on ':' (several files) and treats a leading '-' as stdin/stdout.
_FILENAME = re.compile(r"^/[A-Za-z0-9._/+-]{1,254}$")

_KNOWN_PARAMS = frozenset(
    {"rw", "bs", "iodepth", "numjobs", "runtime_s", "ramp_s", "ioengine", "direct", "size"}
)


def _int_param(params: Mapping[str, ParamValue], key: str, lo: int, hi: int, default: int) -> int:
    value = params.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise ValueError(f"fio parameter {key}={value!r}: expected an integer in {lo}..{hi}")
    return value


def fio_argv(
    params: Mapping[str, ParamValue],
    *,
    filename: str,
    job_name: str,
) -> list[str]:
    """The argv (no shell) to run one fio case against `filename` (a guest block device).

    `params` are a `WorkloadCase`'s params (see `vbench.scenario.FioSpec.cases`): rw, bs, iodepth,
    numjobs, runtime_s, ramp_s, ioengine, direct, and optionally size (fio's `--size`, e.g. `256m`
    or `50%`; without it fio uses the whole device).  Every value is checked against a whitelist;
    an unknown key or a bad value raises `ValueError` (the scenario validates them first, so this is
    a programming error, not a user's).
    """
    unknown = sorted(set(params) - _KNOWN_PARAMS)
    if unknown:
        raise ValueError(f"fio parameters {unknown} are not supported")
    rw = params.get("rw", "randread")
    if not isinstance(rw, str) or rw not in RW_MODES:
        raise ValueError(f"fio parameter rw={rw!r}: expected one of {sorted(RW_MODES)}")
    bs = params.get("bs", "4k")
    if not isinstance(bs, str) or not _BLOCK_SIZE.match(bs):
        raise ValueError(f"fio parameter bs={bs!r}: expected a block size such as 4k or 1m")
    iodepth = _int_param(params, "iodepth", 1, 4096, 1)
    numjobs = _int_param(params, "numjobs", 1, 256, 1)
    runtime_s = _int_param(params, "runtime_s", 1, 86400, 5)
    ramp_s = _int_param(params, "ramp_s", 0, 3600, 0)
    ioengine = params.get("ioengine", "libaio")
    if not isinstance(ioengine, str) or ioengine not in IOENGINES:
        raise ValueError(
            f"fio parameter ioengine={ioengine!r}: expected one of {sorted(IOENGINES)}"
        )
    direct = params.get("direct", True)
    if not isinstance(direct, bool):
        raise ValueError(f"fio parameter direct={direct!r}: expected true or false")
    size = params.get("size")
    if size is not None and (not isinstance(size, str) or not _SIZE.match(size)):
        raise ValueError(f"fio parameter size={size!r}: expected a size such as 256m or 50%")
    if not _FILENAME.match(filename) or "/../" in f"{filename}/":
        raise ValueError(f"fio filename {filename!r}: expected an absolute path like /dev/vdb")
    if not _JOB_NAME.match(job_name):
        raise ValueError(f"fio job name {job_name!r}: use letters, digits, '.', '_' and '-'")

    argv = [
        "fio",
        f"--name={job_name}",
        f"--filename={filename}",
        f"--rw={rw}",
        f"--bs={bs.lower()}",
        f"--iodepth={iodepth}",
        f"--numjobs={numjobs}",
        f"--runtime={runtime_s}",
        "--time_based",
        f"--ramp_time={ramp_s}",
        f"--ioengine={ioengine}",
        f"--direct={int(direct)}",
    ]
    if size is not None:
        argv.append(f"--size={size.lower()}")
    argv += ["--group_reporting", "--output-format=json"]
    return argv


@dataclass(frozen=True)
class SampleLabels:
    """The labels every sample of one fio invocation carries (see `vbench.model.Sample`)."""

    run_id: str
    case_id: str
    mode: str
    workload: str
    parameters: str  # canonical "k=v,k=v" (vbench.model.canonical_parameters)
    repetition: int
    timestamp: float

    @classmethod
    def for_case(
        cls,
        case: WorkloadCase,
        *,
        run_id: str,
        case_id: str,
        mode: str,
        repetition: int,
        timestamp: float,
    ) -> SampleLabels:
        return cls(
            run_id=run_id,
            case_id=case_id,
            mode=mode,
            workload=case.kind,
            parameters=canonical_parameters(dict(case.params)),
            repetition=repetition,
            timestamp=timestamp,
        )


def _first_line(text: str) -> str:
    stripped = text.strip()
    line = stripped.splitlines()[0] if stripped else ""
    return line[:120]


def _decode(text: str) -> dict[str, Any]:
    """fio's JSON object, skipping lines printed before it ("fio: ...", "note: ...")."""
    if not text.strip():
        raise WorkloadOutputError("fio printed nothing: no JSON output to parse")
    decoder = json.JSONDecoder()
    offset = 0
    for line in text.splitlines(keepends=True):
        if line.lstrip().startswith("{"):
            start = offset + (len(line) - len(line.lstrip()))
            try:
                obj, _ = decoder.raw_decode(text, start)
            except json.JSONDecodeError as exc:
                raise WorkloadOutputError(
                    f"fio output is not valid JSON (line {exc.lineno}: {exc.msg})"
                ) from None
            if not isinstance(obj, dict):
                break
            return obj
        offset += len(line)
    raise WorkloadOutputError(f"fio output has no JSON object; it begins: {_first_line(text)!r}")


def _num(section: Mapping[str, Any], key: str, where: str) -> float:
    value = section.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise WorkloadOutputError(f"fio JSON: {where}.{key} is missing or not a number")
    return float(value)


def _direction_metrics(jobs: Sequence[Mapping[str, Any]], direction: str) -> dict[str, float]:
    """The metrics of one direction, combined over `jobs` (see the module docstring)."""
    sections: list[Mapping[str, Any]] = []
    for index, job in enumerate(jobs):
        section = job.get(direction)
        if section is None:
            continue
        if not isinstance(section, Mapping):
            raise WorkloadOutputError(f"fio JSON: jobs[{index}].{direction} is not an object")
        where = f"jobs[{index}].{direction}"
        if _num(section, "total_ios", where) > 0 or _num(section, "io_bytes", where) > 0:
            sections.append(section)
    if not sections:
        return {}

    out: dict[str, float] = {
        "iops": sum(_num(s, "iops", direction) for s in sections),
        "bw": sum(_num(s, "bw_bytes", direction) for s in sections) / 2**20,
    }
    for name, key in (("clat_mean", "clat_ns"), ("lat_mean", "lat_ns")):
        stats = [s.get(key) for s in sections]
        if not all(isinstance(st, Mapping) for st in stats):
            continue
        pairs = [
            (_num(st, "mean", f"{direction}.{key}"), _num(st, "N", f"{direction}.{key}"))
            for st in stats
            if isinstance(st, Mapping)
        ]
        total = sum(n for _, n in pairs)
        if total > 0:
            out[name] = sum(mean * n for mean, n in pairs) / total / 1000.0
    for name, key in PERCENTILES:
        values: list[float] = []
        for s in sections:
            clat = s.get("clat_ns")
            pct = clat.get("percentile") if isinstance(clat, Mapping) else None
            if not isinstance(pct, Mapping) or key not in pct:
                break
            values.append(_num(pct, key, f"{direction}.clat_ns.percentile"))
        else:
            out[name] = max(values) / 1000.0
    return out


def parse_fio_json(text: str, labels: SampleLabels) -> list[Sample]:
    """Tidy samples from fio's `--output-format=json` stdout (leading non-JSON lines are skipped).

    Raises `WorkloadOutputError` (one line) when the output is empty, not JSON, has no jobs, a job
    reports an error, or no direction did any I/O.
    """
    data = _decode(text)
    jobs = data.get("jobs")
    if not isinstance(jobs, list) or not jobs:
        raise WorkloadOutputError("fio JSON has no jobs (was --output-format=json given?)")
    if not all(isinstance(job, Mapping) for job in jobs):
        raise WorkloadOutputError("fio JSON: jobs[] entries are not objects")
    for job in jobs:
        error = job.get("error", 0)
        if error:
            raise WorkloadOutputError(
                f"fio job {job.get('jobname', '?')!r} failed with error {error}"
            )

    samples: list[Sample] = []
    for direction in DIRECTIONS:
        for name, value in _direction_metrics(jobs, direction).items():
            samples.append(
                Sample(
                    run_id=labels.run_id,
                    case_id=labels.case_id,
                    mode=labels.mode,
                    workload=labels.workload,
                    parameters=labels.parameters,
                    repetition=labels.repetition,
                    metric=f"{direction}.{name}",
                    value=value,
                    unit=UNITS[name],
                    timestamp=labels.timestamp,
                )
            )
    if not samples:
        raise WorkloadOutputError("fio JSON reports no I/O in any direction (read, write, trim)")
    return samples
