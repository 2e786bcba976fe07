"""stress-ng: CPU and memory work, one case per stressor of the scenario entry.

    [[workloads]]
    kind = "stress-ng"
    stressors = [{ name = "cpu", method = "matrixprod" }, { name = "memcpy" }]
    workers = 2        # instances per stressor; default: the guest's vCPUs (also on bare metal)
    timeout_s = 5

Each case runs `stress-ng --<stressor> N [--<stressor>-method M] --timeout Ts --metrics
--yaml /proc/self/fd/1`: the YAML report goes to stdout (the only stream the guest agent
captures; `/proc/self/fd/1` rather than `/dev/stdout`, which the microguest's devtmpfs lacks),
the human-readable lines to stderr.  stress-ng writes the YAML when it ends, as one document:
`system-info` and `metrics`, a list with one entry per stressor.

Metrics (catalogue `STRESS_NG_METRICS`, group `cpu`; the stressor is a case parameter):

| metric                   | unit  | from the YAML `metrics[]` entry of the case's stressor |
|--------------------------|-------|--------------------------------------------------------|
| `cpu.bogo_ops_s_real`    | ops/s | `bogo-ops-per-second-real-time` (all workers)          |
| `cpu.bogo_ops_s_usr_sys` | ops/s | `bogo-ops-per-second-usr-sys-time` (per CPU second)    |
| `cpu.bogo_ops`           | ops   | `bogo-ops`                                             |
| `cpu.usage_per_instance` | %     | `cpu-usage-per-instance`                               |

Bogo-ops are only comparable for the same stressor, method, worker count and stress-ng version.

Pure: no subprocess, no filesystem, no clock.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, Field, ValidationInfo, field_validator

from vbench.errors import WorkloadOutputError
from vbench.model import ParamValue, Sample, WorkloadCase
from vbench.workloads.base import (
    TIMEOUT_MARGIN_S,
    Metric,
    Needs,
    SampleLabels,
    Spec,
    Target,
    Workload,
)

# The stressors a scenario may name: CPU and memory work that needs no disk, network or privilege.
StressorName = Literal[
    "cpu", "matrix", "memcpy", "vm", "cache", "stream", "vecmath", "switch", "pipe", "hash"
]


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Their methods, as stress-ng 0.15 (Debian 12) lists them (`stress-ng --cpu-method which`).
METHODS: dict[str, frozenset[str]] = {
    "cpu": _words(
        "all ackermann apery bitops callfunc cdouble cfloat clongdouble collatz correlate crc16 "
        "decimal32 decimal64 decimal128 dither div8 div16 div32 div64 div128 double euler explog "
        "factorial fibonacci fft fletcher16 float float32 float64 float80 float128 "
        "floatconversion gamma gcd gray hamming hanoi hyperbolic idct int128 int64 int32 int16 "
        "int8 int128float int128double int128longdouble int128decimal32 int128decimal64 "
        "int128decimal128 int64float int64double int64longdouble int32float int32double "
        "int32longdouble intconversion ipv4checksum jmp lfsr32 ln2 logmap longdouble loop "
        "matrixprod nsqrt omega parity phi pi prime psi queens rand rand48 rgb sieve stats sqrt "
        "trig union zeta"
    ),
    "matrix": _words(
        "all add copy div frobenius hadamard identity mean mult negate prod sub square trans zero"
    ),
    "memcpy": _words("all libc builtin naive naive_o0 naive_o1 naive_o2 naive_o3"),
    "vm": _words(
        "all cache-lines cache-stripe checkerboard flip fwdrev galpat-0 galpat-1 gray grayflip "
        "rowhammer incdec inc-nybble lfsr32 rand-set rand-sum read64 ror swap move-inv "
        "modulo-x mscan wrrd128nt prime-0 prime-1 prime-gray-0 prime-gray-1 prime-incdec "
        "walk-0d walk-1d walk-0a walk-1a write64 write64nt write1024v zero-one"
    ),
}
WORKERS_DEFAULT = "vcpus"  # the `workers` parameter of a case that uses the target's vCPUs
_METHOD = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")


class Stressor(Spec):
    name: StressorName
    method: Annotated[str | None, Field(validate_default=True)] = None

    @field_validator("method")
    @classmethod
    def _known_method(cls, value: str | None, info: ValidationInfo) -> str | None:
        name = info.data.get("name")
        if value is None or name is None:
            return value
        methods = METHODS.get(name)
        if methods is None:
            with_methods = ", ".join(sorted(METHODS))
            raise ValueError(f"stressor {name!r} has no methods (only {with_methods} do)")
        if value not in methods:
            raise ValueError(
                f"{value!r} is not a {name} method of stress-ng (e.g. "
                f"{', '.join(sorted(methods)[:6])}; `stress-ng --{name}-method which` lists all)"
            )
        return value


class StressNgSpec(Spec):
    """A `[[workloads]]` entry with `kind = "stress-ng"`: one case per stressor."""

    kind: Literal["stress-ng"]
    stressors: list[Stressor] = Field(min_length=1)
    # instances per stressor; None: one per vCPU of the guest (the same count on bare metal)
    workers: Annotated[int, Field(ge=1, le=1024)] | None = None
    timeout_s: Annotated[int, Field(ge=1, le=86400)] = 5


STRESS_NG_METRICS: tuple[Metric, ...] = (
    Metric(
        "cpu.bogo_ops_s_real",
        "ops/s",
        True,
        "cpu bogo-ops/s",
        "cpu",
        note="all workers, per second of wall time",
        overview=True,
        chart=True,
    ),
    Metric(
        "cpu.bogo_ops_s_usr_sys",
        "ops/s",
        True,
        "cpu bogo-ops/CPU-s",
        "cpu",
        note="per second of usr+sys CPU time the workers got",
        chart=True,
    ),
    Metric("cpu.bogo_ops", "ops", True, "cpu bogo-ops", "cpu", note="done in the run time"),
    Metric(
        "cpu.usage_per_instance",
        "%",
        None,
        "cpu CPU use per worker",
        "cpu",
        note="CPU time / wall time of one worker",
    ),
)
# metric suffix -> key of the stressor's YAML entry
_YAML_KEYS = (
    ("bogo_ops_s_real", "bogo-ops-per-second-real-time"),
    ("bogo_ops_s_usr_sys", "bogo-ops-per-second-usr-sys-time"),
    ("bogo_ops", "bogo-ops"),
    ("usage_per_instance", "cpu-usage-per-instance"),
)


def _load(text: str) -> Mapping[str, Any]:
    import yaml  # here: only parsing needs it, not every CLI start that loads the scenario types

    if not text.strip():
        raise WorkloadOutputError("stress-ng printed nothing: no YAML report to parse")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise WorkloadOutputError(f"stress-ng output is not valid YAML{where}") from None
    if not isinstance(data, Mapping):
        raise WorkloadOutputError("stress-ng output is not a YAML report (was --yaml given?)")
    return data


def parse_stress_ng_yaml(
    text: str, labels: SampleLabels, stressor: str | None = None
) -> list[Sample]:
    """Samples from stress-ng's `--metrics --yaml` report of one stressor (a vbench case runs
    one), or of `stressor` when the report holds several.

    Raises `WorkloadOutputError` (one line) when the output is empty, not YAML, has no metrics,
    lacks the stressor or its bogo-ops rates, or holds several stressors and none was named.
    """
    data = _load(text)
    entries = data.get("metrics")
    if not isinstance(entries, list) or not entries:
        raise WorkloadOutputError("stress-ng YAML has no metrics (was --metrics given?)")
    if not all(isinstance(e, Mapping) for e in entries):
        raise WorkloadOutputError("stress-ng YAML: metrics[] entries are not mappings")
    seen = [e.get("stressor") for e in entries]
    if stressor is None and len(entries) > 1:
        raise WorkloadOutputError(f"stress-ng YAML holds several stressors {seen}; name one")
    entry = (
        entries[0]
        if stressor is None
        else next((e for e in entries if e.get("stressor") == stressor), None)
    )
    if entry is None:
        raise WorkloadOutputError(
            f"stress-ng YAML has no metrics of stressor {stressor!r} ({seen})"
        )
    stressor = str(entry.get("stressor"))
    samples: list[Sample] = []
    for name, key in _YAML_KEYS:
        value = entry.get(key)
        if isinstance(value, bool) or not isinstance(value, int | float):
            if name.startswith("bogo_ops_s"):
                raise WorkloadOutputError(
                    f"stress-ng YAML: metrics[{stressor}].{key} is missing or not a number"
                )
            continue
        metric = next(m for m in STRESS_NG_METRICS if m.name == f"cpu.{name}")
        samples.append(labels.sample(metric.name, float(value), metric.unit))
    if next(s for s in samples if s.metric == "cpu.bogo_ops_s_real").value <= 0:
        raise WorkloadOutputError(f"stress-ng stressor {stressor!r} did no work (0 bogo-ops/s)")
    return samples


def stress_ng_argv(params: Mapping[str, ParamValue], *, vcpus: int) -> list[str]:
    """The argv (no shell) of one case; every value checked (the scenario validated it first)."""
    stressor = params.get("stressor")
    if not isinstance(stressor, str) or stressor not in get_args(StressorName):
        raise ValueError(f"stress-ng stressor {stressor!r} is not supported")
    workers = params.get("workers")
    if workers == WORKERS_DEFAULT:
        workers = vcpus
    if isinstance(workers, bool) or not isinstance(workers, int) or not 1 <= workers <= 1024:
        raise ValueError(f"stress-ng workers={workers!r}: expected 1..1024 or {WORKERS_DEFAULT!r}")
    timeout = params.get("timeout_s")
    if isinstance(timeout, bool) or not isinstance(timeout, int) or not 1 <= timeout <= 86400:
        raise ValueError(f"stress-ng timeout_s={timeout!r}: expected an integer in 1..86400")
    argv = ["stress-ng", f"--{stressor}", str(workers)]
    method = params.get("method")
    if method is not None:
        if not isinstance(method, str) or method not in METHODS.get(stressor, frozenset()):
            raise ValueError(f"stress-ng method {method!r} is not a {stressor} method")
        argv += [f"--{stressor}-method", method]
    return [*argv, "--timeout", f"{timeout}s", "--metrics", "--yaml", "/proc/self/fd/1"]


class StressNg(Workload):
    kind = "stress-ng"
    spec_type = StressNgSpec
    needs = Needs.NOTHING
    raw_name = "stress-ng.yaml"
    metrics = STRESS_NG_METRICS
    version_argv = ("stress-ng", "--version")
    parameter_order = ("stressor", "method", "workers", "timeout_s")
    key_parameters = ("stressor", "method", "workers")
    about = (
        "stress-ng bogo-ops compare only runs of the same stressor, method, worker count and "
        "stress-ng version; workers=vcpus means one per guest vCPU (the same count on bare metal)."
    )

    def cases(self, spec: BaseModel) -> list[WorkloadCase]:
        if not isinstance(spec, StressNgSpec):
            raise TypeError(f"stress-ng cases from a {type(spec).__name__}")
        out = []
        for stressor in spec.stressors:
            params: dict[str, ParamValue] = {
                "stressor": stressor.name,
                "workers": WORKERS_DEFAULT if spec.workers is None else spec.workers,
                "timeout_s": spec.timeout_s,
            }
            if stressor.method is not None:
                params["method"] = stressor.method
            out.append(WorkloadCase(self.kind, params))
        return out

    def argv(self, case: WorkloadCase, target: Target) -> list[str]:
        return stress_ng_argv(case.params, vcpus=target.vcpus)

    def timeout(self, case: WorkloadCase) -> float:
        return float(case.params["timeout_s"]) + TIMEOUT_MARGIN_S

    def parse(self, raw: bytes, labels: SampleLabels) -> list[Sample]:
        return parse_stress_ng_yaml(raw.decode(errors="replace"), labels)

    def slug(self, case: WorkloadCase) -> str:
        """`stress-ng-cpu-matrixprod-w2` (`-wvcpus`: one worker per vCPU)."""
        p = case.params
        parts = ["stress-ng", str(p["stressor"])]
        if "method" in p:
            parts.append(str(p["method"]))
        parts.append(f"w{p['workers']}")
        return "-".join(parts)


STRESS_NG = StressNg()
