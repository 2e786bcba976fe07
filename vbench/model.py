"""Core data records shared by every layer.  Immutable, validated when built."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class ModeId(StrEnum):
    """How a guest reaches its disk and NIC."""

    FV = "fv"  # emulated devices: IDE/SATA disk, e1000/rtl8139 NIC
    PV = "pv"  # PV-on-HVM: virtio-blk / virtio-scsi, virtio-net
    VFIO = "vfio"  # PCI pass-through of a host device
    SRIOV = "sriov"  # a virtual function handed to the guest

    @property
    def display_name(self) -> str:
        """The mode's name for reports, e.g. "PV-on-HVM (virtio)".

        (Not `title`: that would shadow `str.title()`, which an enum of `str` must keep.)
        """
        return MODE_TITLES[self]


MODE_TITLES: dict[ModeId, str] = {
    ModeId.FV: "FV (emulated)",
    ModeId.PV: "PV-on-HVM (virtio)",
    ModeId.VFIO: "VFIO pass-through",
    ModeId.SRIOV: "SR-IOV VF",
}


class Accelerator(StrEnum):
    KVM = "kvm"
    TCG = "tcg"
    XEN = "xen"  # libvirt's libxl driver: Xen runs the guests (no KVM probe)

    @property
    def libvirt_domain_type(self) -> str:
        return {Accelerator.KVM: "kvm", Accelerator.TCG: "qemu", Accelerator.XEN: "xen"}[self]


ParamValue = str | int | float | bool


# The label of the bare-metal baseline: the same workloads run on the host itself.
BAREMETAL = "baremetal"
# The case parameter of a density trial: how many guests of the mode ran the case at once.
DENSITY = "density"


@dataclass(frozen=True)
class Sample:
    """One measured value (the tidy row): metric, value and unit, with the labels of its case."""

    run_id: str
    case_id: str
    mode: str
    workload: str
    parameters: str  # canonical "k=v,k=v" of the workload parameters
    repetition: int
    metric: str
    value: float
    unit: str
    timestamp: float

    def __post_init__(self) -> None:
        if not self.metric:
            raise ValueError("a sample needs a metric name")
        if not math.isfinite(self.value):
            raise ValueError(f"sample {self.metric} has a non-finite value {self.value!r}")
        if self.repetition < 0:
            raise ValueError("repetition must be >= 0")

    def as_row(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in SAMPLE_COLUMNS}


SAMPLE_COLUMNS: tuple[str, ...] = (
    "run_id",
    "case_id",
    "mode",
    "workload",
    "parameters",
    "repetition",
    "metric",
    "value",
    "unit",
    "timestamp",
)


def canonical_parameters(params: dict[str, ParamValue]) -> str:
    """A stable, readable key for a parameter set: sorted `k=v` pairs joined by commas."""
    return ",".join(f"{k}={params[k]}" for k in sorted(params))


@dataclass(frozen=True)
class WorkloadCase:
    """One workload invocation with concrete parameters (one point of a scenario's matrix)."""

    kind: str  # a registered workload: "fio", "stress-ng", ... (vbench.workloads.WORKLOADS)
    params: dict[str, ParamValue] = field(hash=False)  # what the workload runs with
    # a density trial's: how many guests ran the case at once; a label of its samples (the
    # parameter `density=N`), not something the workload itself is given
    density: int | None = None

    @property
    def labels(self) -> dict[str, ParamValue]:
        """The parameters its samples and records carry: `params`, and `density` if set."""
        return self.params if self.density is None else {**self.params, DENSITY: self.density}

    @property
    def key(self) -> str:
        return f"{self.kind}[{canonical_parameters(self.labels)}]"

    @property
    def slug(self) -> str:
        """A file-system safe short name (its workload's), e.g. `fio-randread-4k-qd16-j1`."""
        # imported here: the workloads build on this module
        from vbench.workloads import workload

        return workload(self.kind).slug(self)


def trial_id(
    mode: str, repetition: int, density: int | None = None, guest: int | None = None
) -> str:
    """`r0-pv`; a density trial `r0-pv-n2`, its second guest `r0-pv-n2g1`."""
    out = f"r{repetition}-{mode}"
    if density is not None:
        out += f"-n{density}"
    if guest is not None:
        out += f"g{guest}"
    return out


@dataclass(frozen=True)
class Trial:
    """One guest boot (or one bare-metal pass): a mode at a repetition, running every case.

    A density trial (`density` = N) boots N guests of the mode that run each case together; each
    guest's part is the same trial with its `guest` index (0 .. N-1).
    """

    mode: str  # the mode entry's label (its id unless the scenario names it), or BAREMETAL
    mode_index: int  # index into the scenario's modes; -1 for the bare-metal baseline
    repetition: int
    workloads: tuple[WorkloadCase, ...]
    density: int | None = None
    guest: int | None = None

    @property
    def is_baremetal(self) -> bool:
        return self.mode_index < 0

    @property
    def id(self) -> str:
        return trial_id(self.mode, self.repetition, self.density, self.guest)

    def case_id(self, workload: WorkloadCase) -> str:
        return f"{self.id}-{workload.slug}"
