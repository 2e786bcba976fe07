"""fio: the scenario entry, the argv of one case, and fio's JSON output turned into tidy samples.

Pure: no subprocess, no filesystem, no clock.  The runner executes the argv where the case runs
(guest agent or host, never a shell) and hands the captured stdout to `parse_fio_json`.

Metrics (one set per direction that did I/O: `read`, `write`, and `trim` if present; the
catalogue is `FIO_METRICS`):

| metric               | unit  | from fio JSON                                   |
|----------------------|-------|-------------------------------------------------|
| `<dir>.iops`         | IO/s  | `iops`                                          |
| `<dir>.bw`           | MiB/s | `bw_bytes` / 2**20 (fio's `bw` is KiB/s)        |
| `<dir>.clat_mean`    | us    | `clat_ns.mean` / 1000 (completion latency)      |
| `<dir>.clat_p50`     | us    | `clat_ns.percentile["50.000000"]` / 1000        |
| `<dir>.clat_p99`     | us    | `clat_ns.percentile["99.000000"]` / 1000        |
| `<dir>.clat_p99.9`   | us    | `clat_ns.percentile["99.900000"]` / 1000        |
| `<dir>.lat_mean`     | us    | `lat_ns.mean` / 1000 (submission + completion)  |
| `<dir>.ios`          | count | `total_ios` (requests completed, for cross-checks) |
| `<dir>.io_bytes`     | B     | `io_bytes` (bytes moved, for cross-checks)      |

Several jobs (`numjobs > 1`):

* with `--group_reporting` (what `fio_argv` always asks for) fio prints one aggregated job and its
  figures are taken as they are;
* without it (output from elsewhere), the jobs are combined here: IOPS and bandwidth are summed;
  mean latencies are the I/O-count weighted mean (the exact pooled mean); percentiles are the
  *largest* per-job percentile, because the pooled percentile cannot be recovered from per-job
  percentiles and the largest is a guaranteed upper bound (the pooled p99 lies between the smallest
  and largest job p99): the report never understates tail latency.

Preconditioning (`precondition`, for cases that write: write, randwrite, rw, randrw, readwrite):

* `none` (the default): measure the target as it is.  vbench's test disks (guest and bare metal)
  are written full of random data when created, so no write lands on an unwritten extent.
* `fill`: before the measured job, a fio run of its own (`fill_argv`, the job `precondition`)
  writes the whole target (or `size` of it) once, sequentially in 1 MiB blocks.  The runner runs
  it before the case's sampling window opens (`Fio.prepare`; its output is kept as
  raw/<case>/fio.precondition.json), so the samples, the window's figures (host CPU per I/O, ...)
  and the cross-checks against libvirt's block counters all cover the measured job only: libvirt
  counts every request, and a fill inside the window made it count the fill's too.  Use it where
  the first write to a block costs more than a rewrite (thin images, SSDs out of the box) to
  measure the steady state rather than the first fill.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, field_validator

from vbench.errors import WorkloadOutputError
from vbench.model import ParamValue, Sample, WorkloadCase
from vbench.workloads.base import (
    TIMEOUT_MARGIN_S,
    Metric,
    Needs,
    SampleLabels,
    Spec,
    Step,
    Tallies,
    Target,
    Workload,
)

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
    "ios": "count",
    "io_bytes": "B",
}

_BLOCK_SIZE = re.compile(r"^[1-9]\d{0,9}[kKmMgG]?$")
_SIZE = re.compile(r"^[1-9]\d{0,12}[kKmMgGtT]?$|^[1-9]\d?%$|^100%$")
_JOB_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
# fio splits --filename on ':' (several files) and treats a leading '-' as stdin/stdout.
_FILENAME = re.compile(r"^/[A-Za-z0-9._/+-]{1,254}$")

_KNOWN_PARAMS = frozenset(
    {
        "rw",
        "bs",
        "iodepth",
        "numjobs",
        "runtime_s",
        "ramp_s",
        "ioengine",
        "direct",
        "size",
        "precondition",
    }
)
WRITING_RW = frozenset({"write", "randwrite", "rw", "randrw", "readwrite"})
PRECONDITIONS = ("none", "fill")
PRECONDITION_JOB = "precondition"  # the name of the unmeasured fill job; never a sample
FILL_RAW_NAME = "fio.precondition.json"  # the fill's output, kept next to the case's fio.json


def _int_param(params: Mapping[str, ParamValue], key: str, lo: int, hi: int, default: int) -> int:
    value = params.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise ValueError(f"fio parameter {key}={value!r}: expected an integer in {lo}..{hi}")
    return value


@dataclass(frozen=True)
class _Job:
    """A case's fio parameters, checked (see `fio_argv`)."""

    filename: str
    rw: str
    bs: str
    iodepth: int
    numjobs: int
    runtime_s: int
    ramp_s: int
    ioengine: str
    direct: bool
    size: str | None
    precondition: str


def _job(params: Mapping[str, ParamValue], filename: str) -> _Job:
    """Every value checked against a whitelist; `ValueError` for an unknown key or a bad value."""
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
    precondition = params.get("precondition", "none")
    if not isinstance(precondition, str) or precondition not in PRECONDITIONS:
        raise ValueError(
            f"fio parameter precondition={precondition!r}: expected one of {PRECONDITIONS}"
        )
    if precondition == "fill" and rw not in WRITING_RW:
        raise ValueError(f"fio parameter precondition='fill' applies to writes, not rw={rw!r}")
    if not _FILENAME.match(filename) or "/../" in f"{filename}/":
        raise ValueError(f"fio filename {filename!r}: expected an absolute path like /dev/vdb")
    return _Job(
        filename=filename,
        rw=rw,
        bs=bs.lower(),
        iodepth=iodepth,
        numjobs=numjobs,
        runtime_s=runtime_s,
        ramp_s=ramp_s,
        ioengine=ioengine,
        direct=direct,
        size=None if size is None else size.lower(),
        precondition=precondition,
    )


def fio_argv(
    params: Mapping[str, ParamValue],
    *,
    filename: str,
    job_name: str,
) -> list[str]:
    """The argv (no shell) to run one fio case against `filename` (a guest block device).

    `params` are a `WorkloadCase`'s params (see `FioSpec`): rw, bs, iodepth, numjobs, runtime_s,
    ramp_s, ioengine, direct, and optionally size (fio's `--size`, e.g. `256m` or `50%`; without
    it fio uses the whole device) and precondition (`none` or `fill`: `fill_argv` is then run
    first, see the module docstring).  Every value is checked against a whitelist;
    an unknown key or a bad value raises `ValueError` (the scenario validates them first, so this is
    a programming error, not a user's).
    """
    job = _job(params, filename)
    if not _JOB_NAME.match(job_name):
        raise ValueError(f"fio job name {job_name!r}: use letters, digits, '.', '_' and '-'")
    if job_name == PRECONDITION_JOB:
        raise ValueError(f"fio job name {job_name!r} is reserved for the precondition job")
    argv = [
        "fio",
        f"--name={job_name}",
        f"--filename={filename}",
        f"--rw={job.rw}",
        f"--bs={job.bs}",
        f"--iodepth={job.iodepth}",
        f"--numjobs={job.numjobs}",
        f"--runtime={job.runtime_s}",
        "--time_based",
        f"--ramp_time={job.ramp_s}",
        f"--ioengine={job.ioengine}",
        f"--direct={int(job.direct)}",
    ]
    if job.size is not None:
        argv.append(f"--size={job.size}")
    argv += ["--group_reporting", "--output-format=json"]
    return argv


def fill_argv(params: Mapping[str, ParamValue], *, filename: str) -> list[str] | None:
    """The argv of a case's `fill` (None: precondition `none`): the target (or `size` of it)
    written once, sequentially in 1 MiB blocks, with the case's engine, as the job `precondition`.
    """
    job = _job(params, filename)
    if job.precondition != "fill":
        return None
    argv = [
        "fio",
        f"--name={PRECONDITION_JOB}",
        f"--filename={filename}",
        "--rw=write",
        "--bs=1m",
        f"--iodepth={min(job.iodepth, 16)}",
        f"--ioengine={job.ioengine}",
        f"--direct={int(job.direct)}",
    ]
    if job.size is not None:
        argv.append(f"--size={job.size}")
    return [*argv, "--output-format=json"]


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
        "ios": sum(_num(s, "total_ios", direction) for s in sections),
        "io_bytes": sum(_num(s, "io_bytes", direction) for s in sections),
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


def clat_percentiles(text: str) -> dict[str, dict[float, float]]:
    """fio's own completion-latency percentile list per direction with I/O, in µs:
    {"read": {1.0: 95.2, 5.0: 101.4, ..., 99.99: 4012.0}} (fio's default list is p1 ... p99.99).

    Over several jobs (no --group_reporting) the largest per-job value, as in the samples.
    Raises WorkloadOutputError when `text` is not fio JSON."""
    jobs = _decode(text).get("jobs")
    if not isinstance(jobs, list):
        raise WorkloadOutputError("fio JSON has no jobs list")
    out: dict[str, dict[float, float]] = {}
    for direction in DIRECTIONS:
        merged: dict[float, float] = {}
        for job in jobs:
            section = job.get(direction) if isinstance(job, Mapping) else None
            if not isinstance(section, Mapping) or not section.get("total_ios"):
                continue
            clat = section.get("clat_ns")
            pct = clat.get("percentile") if isinstance(clat, Mapping) else None
            if not isinstance(pct, Mapping):
                continue
            for key, value in pct.items():
                try:
                    p, v = float(key), float(value)
                except (TypeError, ValueError):
                    continue
                if 0 < p < 100 and v > 0:
                    merged[p] = max(merged.get(p, 0.0), v / 1000.0)
        if merged:
            out[direction] = dict(sorted(merged.items()))
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
    # runs before the fill became a command of its own ran it in the same fio: not a sample
    jobs = [job for job in jobs if job.get("jobname") != PRECONDITION_JOB]
    if not jobs:
        raise WorkloadOutputError("fio JSON has only the precondition job, no measured job")
    for job in jobs:
        error = job.get("error", 0)
        if error:
            raise WorkloadOutputError(
                f"fio job {job.get('jobname', '?')!r} failed with error {error}"
            )

    samples: list[Sample] = []
    for direction in DIRECTIONS:
        for name, value in _direction_metrics(jobs, direction).items():
            samples.append(labels.sample(f"{direction}.{name}", value, UNITS[name]))
    if not samples:
        raise WorkloadOutputError("fio JSON reports no I/O in any direction (read, write, trim)")
    return samples


# -- the scenario entry, the catalogue and the contract ------------------------------------------

FioRw = Literal["read", "write", "randread", "randwrite", "rw", "randrw", "readwrite"]
_SPEC_BLOCK_SIZE = re.compile(r"^\d+[kKmM]?$")


class FioSpec(Spec):
    """A `[[workloads]]` entry with `kind = "fio"`: the matrix is rw x bs x iodepth x numjobs."""

    kind: Literal["fio"]
    rw: list[FioRw] = Field(default_factory=lambda: list[FioRw](["randread"]), min_length=1)
    bs: list[str] = Field(default_factory=lambda: ["4k"], min_length=1)
    iodepth: list[Annotated[int, Field(ge=1, le=4096)]] = Field(
        default_factory=lambda: [16], min_length=1
    )
    numjobs: list[Annotated[int, Field(ge=1, le=256)]] = Field(
        default_factory=lambda: [1], min_length=1
    )
    runtime_s: Annotated[int, Field(ge=1, le=86400)] = 5
    ramp_s: Annotated[int, Field(ge=0, le=3600)] = 0
    ioengine: Literal["libaio", "io_uring", "psync", "sync"] = "libaio"
    direct: bool = True
    # fio's --size: how much of the target the job touches (e.g. "128m", "50%"); default all of it
    size: str | None = None
    # for the cases that write (see the module docstring): "none" or "fill"
    precondition: Literal["none", "fill"] = "none"

    @field_validator("bs")
    @classmethod
    def _block_sizes(cls, values: list[str]) -> list[str]:
        for v in values:
            if not _SPEC_BLOCK_SIZE.match(v):
                raise ValueError(f"{v!r} is not a block size (e.g. 4k, 64k, 1m, 512)")
        return [v.lower() for v in values]

    @field_validator("size")
    @classmethod
    def _size(cls, value: str | None) -> str | None:
        if value is not None and not _SIZE.match(value):
            raise ValueError(f"{value!r} is not a size (e.g. 128m, 1g or 50%)")
        return None if value is None else value.lower()


def _metric(
    direction: str, name: str, label: str, higher: bool | None, key: bool = False
) -> Metric:
    """A catalogue entry; `key` metrics are in the report's overview and charts."""
    return Metric(
        name=f"{direction}.{name}",
        unit=UNITS[name],
        higher_is_better=higher,
        label=f"{direction} {label}",
        group=direction,
        overview=key,
        chart=key,
    )


FIO_METRICS: tuple[Metric, ...] = tuple(
    m
    for d in DIRECTIONS
    for m in (
        _metric(d, "iops", "IOPS", True, key=True),
        _metric(d, "bw", "bandwidth", True, key=True),
        _metric(d, "clat_mean", "clat mean", False),
        _metric(d, "clat_p50", "clat p50", False),
        _metric(d, "clat_p99", "clat p99", False, key=True),
        _metric(d, "clat_p99.9", "clat p99.9", False),
        _metric(d, "lat_mean", "total lat mean", False),
        _metric(d, "ios", "requests", None),
        _metric(d, "io_bytes", "bytes", None),
    )
)


class Fio(Workload):
    kind = "fio"
    spec_type = FioSpec
    needs = Needs.DISK
    raw_name = "fio.json"
    metrics = FIO_METRICS
    version_argv = ("fio", "--version")
    parameter_order = (
        "rw",
        "bs",
        "iodepth",
        "numjobs",
        "ioengine",
        "direct",
        "size",
        "precondition",
        "runtime_s",
        "ramp_s",
    )
    key_parameters = ("rw", "bs", "iodepth", "numjobs")
    about = (
        "fio latencies are completion latencies (clat) in µs; bandwidth in MiB/s "
        "(1 MiB = 1,048,576 bytes)."
    )

    def cases(self, spec: BaseModel) -> list[WorkloadCase]:
        if not isinstance(spec, FioSpec):
            raise TypeError(f"fio cases from a {type(spec).__name__}")
        out = []
        for rw, bs, qd, jobs in itertools.product(spec.rw, spec.bs, spec.iodepth, spec.numjobs):
            params: dict[str, ParamValue] = {
                "rw": rw,
                "bs": bs,
                "iodepth": qd,
                "numjobs": jobs,
                "runtime_s": spec.runtime_s,
                "ramp_s": spec.ramp_s,
                "ioengine": spec.ioengine,
                "direct": spec.direct,
            }
            if spec.size is not None:
                params["size"] = spec.size
            if rw in WRITING_RW:
                params["precondition"] = spec.precondition
            out.append(WorkloadCase(self.kind, params))
        return out

    def argv(self, case: WorkloadCase, target: Target) -> list[str]:
        if target.disk is None:
            raise ValueError("fio needs a target disk")
        return fio_argv(case.params, filename=target.disk, job_name=self.slug(case))

    def prepare(self, case: WorkloadCase, target: Target) -> Step | None:
        """The `fill` of a preconditioned case, run before the window opens."""
        if target.disk is None:
            raise ValueError("fio needs a target disk")
        argv = fill_argv(case.params, filename=target.disk)
        if argv is None:
            return None
        # a fill is not time-bound: it writes the whole target; the margin is for a hang
        return Step(argv, 2 * TIMEOUT_MARGIN_S, FILL_RAW_NAME)

    def timeout(self, case: WorkloadCase) -> float:
        runtime = float(case.params["runtime_s"]) + float(case.params["ramp_s"])
        return runtime + TIMEOUT_MARGIN_S

    def parse(self, raw: bytes, labels: SampleLabels) -> list[Sample]:
        return parse_fio_json(raw.decode(errors="replace"), labels)

    def tallies(self, samples: list[Sample]) -> Tallies:
        """Requests and bytes of the measured job, every direction (not a `fill` job's)."""
        ios = [s.value for s in samples if s.metric.endswith(".ios")]
        moved = [s.value for s in samples if s.metric.endswith(".io_bytes")]
        return Tallies(ios=sum(ios) if ios else None, io_bytes=sum(moved) if moved else None)

    def slug(self, case: WorkloadCase) -> str:
        """`fio-randread-4k-qd16-j1`, plus what sets a case apart from the defaults:
        `-io_uring`, `-128m`, `-fill`."""
        p = case.params
        parts = [f"fio-{p['rw']}-{p['bs']}-qd{p['iodepth']}-j{p['numjobs']}"]
        if p.get("ioengine", "libaio") != "libaio":
            parts.append(str(p["ioengine"]))
        if "size" in p:
            parts.append(str(p["size"]).replace("%", "pct"))
        if p.get("precondition", "none") != "none":
            parts.append(str(p["precondition"]))
        return "-".join(parts)


FIO = Fio()
