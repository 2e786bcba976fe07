"""The workload contract: what the runner and the report know about any workload.

A workload is one module under `vbench/workloads/` with a pydantic spec (its `[[workloads]]` entry,
selected by `kind`), a class implementing `Workload`, and its metric catalogue.  The runner only
calls the methods below; the report only reads the catalogue.  Adding a workload is adding a
module and registering it in `vbench/workloads/__init__.py`.

Pure: no subprocess, no filesystem, no clock.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from enum import StrEnum
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict

from vbench.model import Sample, WorkloadCase, canonical_parameters

# Added to a workload's own run time for its timeout: guest-side start-up and output under TCG.
TIMEOUT_MARGIN_S = 60.0


class Needs(StrEnum):
    """What a workload needs from where it runs, besides CPUs and memory."""

    NOTHING = "nothing"
    DISK = "disk"  # a block device or file to do I/O on (Target.disk)
    NETWORK = "network"  # a peer to talk to (Target.peer_address, a server from server_argv)


@dataclass(frozen=True)
class Metric:
    """One entry of a metric catalogue: what a sample's `metric` means and how to show it."""

    name: str  # e.g. "read.iops", "cpu.bogo_ops_s_real"
    unit: str
    higher_is_better: bool | None  # None: neither (a count, a denominator)
    label: str  # for the report; starts with the group ("read IOPS") when the group names it
    group: str  # table/chart group in the report ("read", "cpu", "host cost", "")
    note: str = ""  # one short line under the label
    overview: bool = False  # in the report's key-results table
    chart: bool = False  # a panel in the workload's chart

    @property
    def short_label(self) -> str:
        """The label inside its group's rows: `read IOPS` under `read` -> `IOPS`."""
        return self.label.removeprefix(f"{self.group} ") if self.group else self.label


@dataclass(frozen=True)
class Target:
    """What a case runs against, and where."""

    where: Literal["guest", "host"]
    disk: str | None = None  # DISK workloads: block device or file path
    peer_address: str | None = None  # NETWORK workloads: server address in the run's namespace
    vcpus: int = 1  # CPUs the workload may use by default (the guest's vCPUs, also on the host)


@dataclass(frozen=True)
class Step:
    """A command the runner runs before a case's sampling window opens: neither measured nor
    sampled (fio's `fill`), so the window and its cross-checks see the measured command only."""

    argv: list[str]
    timeout_s: float
    raw_name: str  # its stdout is kept as raw/<case>/<raw_name>


@dataclass(frozen=True)
class Tallies:
    """A case's own account of the work it did (from its samples): I/O requests and bytes on the
    test disk, payload bytes per direction on the test NIC (guest's view: tx = sent by the guest).
    None: the workload does not say (no cross-check)."""

    ios: float | None = None
    io_bytes: float | None = None
    net_bytes: dict[str, float] = field(default_factory=dict)  # "tx" / "rx" -> bytes received
    net_bytes_sent: dict[str, float] = field(default_factory=dict)  # ... -> bytes the sender sent


@dataclass(frozen=True)
class SampleLabels:
    """The labels every sample of one workload invocation carries (see `vbench.model.Sample`)."""

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
            parameters=canonical_parameters(dict(case.labels)),
            repetition=repetition,
            timestamp=timestamp,
        )

    def sample(self, metric: str, value: float, unit: str) -> Sample:
        return Sample(
            run_id=self.run_id,
            case_id=self.case_id,
            mode=self.mode,
            workload=self.workload,
            parameters=self.parameters,
            repetition=self.repetition,
            metric=metric,
            value=value,
            unit=unit,
            timestamp=self.timestamp,
        )


class Spec(BaseModel):
    """Base of every workload spec: strict (TOML has real types), unknown keys refused."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class Workload(ABC):
    """One kind of workload (fio, stress-ng, ...): its cases, commands, parser and catalogue."""

    kind: ClassVar[str]  # the scenario's `kind`
    spec_type: ClassVar[type[BaseModel]]  # its `[[workloads]]` entry; has `kind: Literal[kind]`
    needs: ClassVar[Needs]
    raw_name: ClassVar[str]  # stdout kept as raw/<case>/<raw_name>, e.g. "fio.json"
    metrics: ClassVar[tuple[Metric, ...]]
    version_argv: ClassVar[tuple[str, ...]]  # prints the tool's version (for the manifest)
    parameter_order: ClassVar[tuple[str, ...]] = ()  # how the report lists a case's parameters
    key_parameters: ClassVar[tuple[str, ...]] = ()  # the ones naming a case in the overview
    about: ClassVar[str] = ""  # one sentence for the report's readers: how to read its figures

    @abstractmethod
    def cases(self, spec: BaseModel) -> list[WorkloadCase]:
        """The matrix of cases of one scenario entry, in run order."""

    @abstractmethod
    def argv(self, case: WorkloadCase, target: Target) -> list[str]:
        """The command (no shell) that runs `case` against `target`; its stdout is parsed."""

    @abstractmethod
    def timeout(self, case: WorkloadCase) -> float:
        """Seconds after which the command is considered hung."""

    @abstractmethod
    def parse(self, raw: bytes, labels: SampleLabels) -> list[Sample]:
        """Samples from the command's stdout; `WorkloadOutputError` (one line) when unusable."""

    def server_argv(self, case: WorkloadCase, bind: str | None = None) -> list[str] | None:
        """NETWORK workloads: the peer server to start before the case (None: no server).

        `bind` is the address it listens on (the host end of one guest's link, so that several
        guests' servers can run at once); None: every address of the namespace.
        """
        return None

    def prepare(self, case: WorkloadCase, target: Target) -> Step | None:
        """A command to run before `argv`, outside the case's window (None: nothing to run)."""
        return None

    def tallies(self, samples: list[Sample]) -> Tallies:
        """What the case says it moved, for the cross-checks against libvirt's counters."""
        return Tallies()

    @abstractmethod
    def slug(self, case: WorkloadCase) -> str:
        """A file-system safe short name, unique among the cases of one scenario entry."""

    def metric(self, name: str) -> Metric | None:
        return next((m for m in self.metrics if m.name == name), None)
