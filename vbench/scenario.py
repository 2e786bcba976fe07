"""Scenario files: TOML read with the standard library, validated with pydantic.

Every error names the file and the key path, e.g.
`scenarios/x.toml: modes[2].pci: '0000:81:00' is not a PCI address`.
"""

from __future__ import annotations

import hashlib
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from vbench.certify import CertifySpec
from vbench.errors import ScenarioError
from vbench.model import BAREMETAL, ModeId, Trial, WorkloadCase
from vbench.modes import provider_for
from vbench.workloads import WORKLOADS, WorkloadSpec, workload

FORMAT_VERSION = 1
WORKLOAD_KINDS = tuple(WORKLOADS)


class _Strict(BaseModel):
    # strict: TOML has real types, so "2" is not an int and "yes" is not a bool
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class GuestSpec(_Strict):
    image: str = "microguest"
    vcpus: Annotated[int, Field(ge=1, le=64)] = 1
    memory_mib: Annotated[int, Field(ge=128, le=1 << 20)] = 512
    boot_timeout_s: Annotated[float, Field(gt=0, le=600)] = 60.0


class DiskSpec(_Strict):
    size_mib: Annotated[int, Field(ge=16, le=1 << 22)] = 256


class DeviceMatch(_Strict):
    """A host device named by what it is rather than by its address (exactly one key)."""

    vendor_device: Annotated[str, Field(pattern=r"^[0-9a-fA-F]{4}:[0-9a-fA-F]{4}$")] | None = None
    netdev: Annotated[str, Field(pattern=r"^[^/\s]{1,15}$")] | None = None  # host NIC name
    blockdev: Annotated[str, Field(pattern=r"^(/dev/)?[^/\s]{1,64}$")] | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> DeviceMatch:
        given = [k for k in ("vendor_device", "netdev", "blockdev") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(
                "give exactly one of vendor_device (e.g. '8086:1521'), netdev (a host NIC name) "
                f"or blockdev (a host block device), not {len(given)}"
            )
        return self


# The mode keys; each one's rules and default come from the mode's provider (vbench.modes).
# Field order matters: a provider's check of `pci` sees `match`, of `pf` sees `network`.
_MODE_KEYS = (
    "disk_bus",
    "nic_model",
    "match",
    "pci",
    "network",
    "pf",
    "vfs",
    "mac",
    "vlan",
    "viommu",
    "allow",
    "xen",
)


class ModeSpec(_Strict):
    id: Annotated[ModeId, Field(strict=False)]  # TOML gives a string; strict would want a ModeId
    # a label names the mode in case ids, file names and domain names: keep it a slug
    label: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$")] | None = None
    # fv, pv: the emulated test disk's bus and the NIC model (defaults: the mode's first)
    disk_bus: Annotated[
        Literal["ide", "sata", "virtio", "scsi"] | None, Field(validate_default=True)
    ] = None
    nic_model: Annotated[
        Literal["e1000", "e1000e", "rtl8139", "virtio"] | None, Field(validate_default=True)
    ] = None
    # vfio: the host device(s) by address (every endpoint of its IOMMU group), or by a match
    match: DeviceMatch | None = None
    pci: Annotated[str | list[str] | None, Field(validate_default=True)] = None
    # sriov: a libvirt hostdev network, or the PF whose free VF the guest gets
    network: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")] | None = None
    pf: Annotated[str | None, Field(validate_default=True)] = None
    vfs: Annotated[int, Field(ge=1, le=256)] | None = None  # how many VFs the PF should have
    mac: str | None = None  # NIC VFs: the MAC libvirt gives the VF (default: stable per label)
    vlan: Annotated[int, Field(ge=1, le=4094)] | None = None  # NIC VFs: VLAN tag
    viommu: bool = False  # vfio, sriov: an emulated IOMMU in the guest
    # vfio, sriov: devices vbench may assign (or leave in a shared IOMMU group) although the
    # safety checks refuse them: the only override, at the scenario author's risk
    allow: list[str] = Field(default_factory=list)
    # pv, vfio, sriov on a Xen host (libvirt's libxl driver): an HVM guest (default) or PV
    xen: Literal["hvm", "pv"] | None = None

    @field_validator(*_MODE_KEYS)
    @classmethod
    def _provider_rules(cls, value: Any, info: ValidationInfo) -> Any:
        mode = info.data.get("id")
        if mode is None:  # the id itself is invalid: that error is reported
            return value
        assert info.field_name is not None
        return provider_for(mode).check_field(info.field_name, value, info.data)

    @property
    def pci_addresses(self) -> list[str]:
        """`pci` as a list (one address or several)."""
        if self.pci is None:
            return []
        return [self.pci] if isinstance(self.pci, str) else list(self.pci)


class AdaptiveRepetitions(_Strict):
    """`repetitions = { min = 3, max = 10, target_ci_pct = 5 }`: rounds are added until the 95 %
    CI of the median of every headline figure is within `target_ci_pct` % of that median (half
    width), or `max` rounds have run (the rule: `vbench.adaptive`)."""

    min: Annotated[int, Field(ge=2, le=1000)] = 3  # a CI needs two values
    max: Annotated[int, Field(ge=2, le=1000)] = 10
    target_ci_pct: Annotated[float, Field(gt=0, lt=100)]

    @model_validator(mode="after")
    def _min_not_above_max(self) -> AdaptiveRepetitions:
        if self.min > self.max:
            raise ValueError(f"min ({self.min}) is more than max ({self.max})")
        return self


def _repetitions_shape(value: object) -> str:
    return "<adaptive>" if isinstance(value, dict | AdaptiveRepetitions) else "<count>"


# Union tags of `repetitions`, left out of the key path of an error (see _first_error).
_UNION_TAGS = ("<count>", "<adaptive>")
MAX_DENSITY = 16


class RunSpec(_Strict):
    # a fixed count of rounds, or an adaptive rule (a table)
    repetitions: Annotated[
        Annotated[Annotated[int, Field(ge=1, le=1000)], Tag("<count>")]
        | Annotated[AdaptiveRepetitions, Tag("<adaptive>")],
        Discriminator(_repetitions_shape),
    ] = 3
    # guests of one mode at once: each level is a trial of N guests running every case together
    density: (
        Annotated[list[Annotated[int, Field(ge=1, le=MAX_DENSITY)]], Field(min_length=1)] | None
    ) = None
    command_timeout_s: Annotated[float, Field(gt=0, le=86400)] = 300.0
    # also run every workload on the host itself (a raw file in the scratch directory, O_DIRECT)
    # at the start of each repetition: the bare-metal column of the report
    baremetal: bool = False
    # how often the samplers read (libvirt, host, guest; see vbench.samplers)
    sample_interval_s: Annotated[float, Field(ge=0.1, le=60)] = 1.0

    @field_validator("density")
    @classmethod
    def _distinct_levels(cls, levels: list[int] | None) -> list[int] | None:
        if levels is not None and len(set(levels)) != len(levels):
            raise ValueError(f"{levels} repeats a level; list each number of guests once")
        return levels

    @property
    def adaptive(self) -> AdaptiveRepetitions | None:
        return self.repetitions if isinstance(self.repetitions, AdaptiveRepetitions) else None

    @property
    def min_rounds(self) -> int:
        """Rounds that always run (a fixed count, or the adaptive rule's `min`)."""
        r = self.repetitions
        return r.min if isinstance(r, AdaptiveRepetitions) else r

    @property
    def max_rounds(self) -> int:
        r = self.repetitions
        return r.max if isinstance(r, AdaptiveRepetitions) else r


class HostSpec(_Strict):
    # let the run change the host (VF count, NVMe secondary controllers, driver bindings): each
    # change is recorded in the run directory before it is made and undone at the end
    prepare: bool = False


class Scenario(_Strict):
    format_version: Literal[1]
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")]
    description: str = ""
    guest: GuestSpec = Field(default_factory=GuestSpec)
    disk: DiskSpec = Field(default_factory=DiskSpec)
    modes: list[ModeSpec] = Field(min_length=1)
    workloads: list[WorkloadSpec] = Field(min_length=1)
    run: RunSpec = Field(default_factory=RunSpec)
    host: HostSpec = Field(default_factory=HostSpec)
    certify: list[CertifySpec] = []

    @field_validator("modes")
    @classmethod
    def _unique_labels(cls, modes: list[ModeSpec]) -> list[ModeSpec]:
        labels = [m.label or m.id.value for m in modes]
        dupes = sorted({x for x in labels if labels.count(x) > 1})
        if dupes:
            raise ValueError(f"modes repeat the label(s) {dupes}; give each a distinct `label`")
        if BAREMETAL in labels:
            raise ValueError(f"{BAREMETAL!r} names the bare-metal baseline; choose another label")
        return modes

    def mode_labels(self) -> list[str]:
        return [m.label or m.id.value for m in self.modes]

    @field_validator("workloads")
    @classmethod
    def _distinct_cases(cls, specs: list[WorkloadSpec]) -> list[WorkloadSpec]:
        # case ids (and raw/<case>/ directories) are built from the slugs: they must not clash
        first: dict[str, int] = {}
        for index, spec in enumerate(specs):
            for case in workload(spec.kind).cases(spec):
                seen = first.setdefault(case.slug, index)
                if seen != index:
                    raise ValueError(
                        f"entries [{seen}] and [{index}] both have the case {case.slug}; "
                        "merge them or change a parameter"
                    )
        return specs

    def workload_cases(self) -> list[WorkloadCase]:
        return [case for spec in self.workloads for case in workload(spec.kind).cases(spec)]

    def trials(self) -> list[Trial]:
        """Every trial the run may do: `round_trials` of each round up to the most rounds (with
        adaptive repetitions the run may stop after fewer)."""
        return [t for rep in range(self.run.max_rounds) for t in self.round_trials(rep)]

    def round_trials(self, rep: int) -> list[Trial]:
        """The trials of one round (repetition), modes interleaved: the bare-metal pass first if
        asked, then each mode (at each density level, in the scenario's order).

        Interleaving (FV PV, FV PV, ...) keeps slow drift of the host from looking like a mode
        effect.  With `density`, every case carries the parameter `density=N` (the bare-metal
        pass `density=1`: one instance, the reference of the one-guest figures).
        """
        cases = tuple(self.workload_cases())
        labels = self.mode_labels()
        levels = self.run.density
        trials = []
        if self.run.baremetal:
            bm = cases if levels is None else _with_density(cases, 1)
            trials.append(Trial(mode=BAREMETAL, mode_index=-1, repetition=rep, workloads=bm))
        for i in range(len(self.modes)):
            if levels is None:
                trials.append(Trial(mode=labels[i], mode_index=i, repetition=rep, workloads=cases))
                continue
            trials += [
                Trial(
                    mode=labels[i],
                    mode_index=i,
                    repetition=rep,
                    workloads=_with_density(cases, n),
                    density=n,
                )
                for n in levels
            ]
        return trials


def _with_density(cases: tuple[WorkloadCase, ...], n: int) -> tuple[WorkloadCase, ...]:
    return tuple(WorkloadCase(c.kind, c.params, density=n) for c in cases)


@dataclass(frozen=True)
class LoadedScenario:
    path: str
    text: str
    sha256: str
    scenario: Scenario


def _key_path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(top level)"


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    # drop the discriminator tag pydantic inserts for tagged unions
    # (workloads[0].fio.rw -> workloads[0].rw, workloads[1].stress-ng.stressors -> ...), and
    # the shape tag of `run.repetitions`
    loc = tuple(p for p in err["loc"] if p not in WORKLOADS and p not in _UNION_TAGS)
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        msg = "unknown key (check its spelling)"
    elif err["type"] == "missing":
        msg = "required key is missing"
    elif err["type"].endswith("_type") and isinstance(err.get("input"), str | int | float | bool):
        msg = f"{msg}, not {err['input']!r}"
    elif err["type"] in ("literal_error", "enum") and "input" in err:
        msg = f"{err['input']!r}: {msg}"
    elif err["type"] == "union_tag_not_found":
        loc, msg = (*loc, "kind"), f"required key is missing (one of {', '.join(WORKLOAD_KINDS)})"
    elif err["type"] == "union_tag_invalid":
        kinds = ", ".join(WORKLOAD_KINDS)
        loc, msg = (*loc, "kind"), f"{err['ctx']['tag']!r} is not a workload kind (one of {kinds})"
    more = len(exc.errors()) - 1
    suffix = f" (and {more} more error{'s' if more > 1 else ''})" if more else ""
    return f"{_key_path(loc)}: {msg}{suffix}"


def parse_scenario(text: str, path: str = "<scenario>") -> LoadedScenario:
    """Validate scenario text.  Raises ScenarioError naming `path` and the key path."""
    try:
        data: dict[str, Any] = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"{path}: not valid TOML: {exc}") from None
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as exc:
        raise ScenarioError(f"{path}: {_first_error(exc)}") from None
    return LoadedScenario(
        path=path,
        text=text,
        sha256=hashlib.sha256(text.encode()).hexdigest(),
        scenario=scenario,
    )


def load_scenario(path: Path) -> LoadedScenario:
    """Read and validate a scenario file (the only filesystem read in the core: a plain read)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ScenarioError(f"{path}: no such scenario file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError(f"{path}: cannot read: {exc}") from None
    return parse_scenario(text, str(path))
