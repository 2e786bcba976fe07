"""Run a scenario: plan -> provision each trial's guest -> run its workloads -> store.

One guest boot serves every workload of its (mode, repetition); repetitions interleave the modes.
A run is rounds of trials: a fixed count, or with adaptive repetitions rounds are added until the
headline figures' CIs are tight enough (`vbench.adaptive`).  A trial boots the guests of its mode
(one; N in a density trial) and starts each case in all of them at once (one path, `_run_trial`;
`vbench.density` for a density trial's figures).
A trial whose guest fails is recorded as failed (with its console tail) and the run goes on.
Every guest, tap, network namespace, peer server and scratch file is removed on every way out:
success, error, Ctrl-C, SIGTERM.

Around every case the samplers run (vbench.samplers: libvirt, host, guest agent) and append to
series.csv; the case's host-cost figures and cross-checks are reductions of that series
(vbench.derive).  A NETWORK case talks to a peer server started for it inside the run's network
namespace (vbench.host.netns), over the guest's NIC of the mode under test.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import platform
import secrets
import shutil
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from types import FrameType
from typing import Literal, Protocol

import libvirt
from pydantic import BaseModel, ConfigDict

from vbench import __version__
from vbench.adaptive import decide, headline_figures, relative_ci_widths
from vbench.checkdoc import CheckDocument
from vbench.command import CommandFailed
from vbench.command import run as run_command
from vbench.density import density_figures
from vbench.derive import CrossCheck, Derived, derive_case
from vbench.domxml import DomainSpec, build_domain_xml
from vbench.errors import AgentTimeout, GuestError, LibvirtUnavailable, VbenchError
from vbench.guest.agent import GuestAgent, open_agent
from vbench.guest.microguest import DEFAULT_CMDLINE, Microguest, build_microguest
from vbench.host.baremetal import run_on_host
from vbench.host.changes import ChangeJournal
from vbench.host.checks import check_document
from vbench.host.facts import read_system_facts
from vbench.host.inventory import collect_inventory
from vbench.host.netns import GuestLink, RunNetwork
from vbench.host.paths import HostPaths
from vbench.host.sriov_prep import plan_vf
from vbench.model import (
    BAREMETAL,
    DENSITY,
    Accelerator,
    Sample,
    Trial,
    WorkloadCase,
    canonical_parameters,
)
from vbench.modes import HostView, ModePlan, Skip, provider_for
from vbench.readiness import host_blockers
from vbench.results import (
    Accel,
    CaseRecord,
    CrossCheckRecord,
    Manifest,
    RepetitionsRecord,
    RoundRecord,
    RunDir,
    RunTiming,
    ScenarioRecord,
    SkippedMode,
    TrialRecord,
    atomic_write,
    utc_now,
)
from vbench.samplers import Reading, Sampler, Sampling
from vbench.samplers.host import NamespaceNicSampler
from vbench.samplers.libvirt_stats import SOURCE as LIBVIRT_SOURCE
from vbench.samplers.sets import guest_samplers, host_samplers
from vbench.scenario import LoadedScenario, ModeSpec
from vbench.series import SERIES, SERIES_COLUMNS, SeriesWriter
from vbench.virt.accel import AccelVerdict, choose_accelerator
from vbench.virt.connection import open_connection, resolve_uri
from vbench.virt.driver import driver_for_uri, driver_of
from vbench.virt.guests import RunScratch, running_guest
from vbench.virt.hostdevs import assigned_pci, hostdev_networks
from vbench.workloads import WORKLOADS, Needs, SampleLabels, Tallies, Target, workload
from vbench.workloads.common import BOOT, BOOT_METRIC

CONSOLE_TAIL_LINES = 30
# How long the guests of a trial wait for each other before a case (they are all up)
BARRIER_TIMEOUT_S = 120.0
# A bare-metal NETWORK case: client and server both in the run's namespace, over its loopback
# (the host's own TCP/UDP stack without any NIC: the ceiling the modes' NICs are measured against)
BAREMETAL_PEER = "127.0.0.1"


class Executor(Protocol):
    """Where a case runs: runs one command there (argv, no shell) -> (stdout, stderr).

    A non-zero exit or a timeout raises a `VbenchError`; `AgentTimeout` (a guest that stopped
    answering) ends the trial.
    """

    @property
    def where(self) -> Literal["guest", "host"]: ...

    def run(self, argv: list[str], timeout: float) -> tuple[bytes, bytes]: ...


class GuestExecutor:
    """Commands inside the guest, through its QEMU guest agent."""

    where: Literal["guest"] = "guest"

    def __init__(self, agent: GuestAgent, on_hang: Callable[[], None]) -> None:
        self.agent = agent
        self.on_hang = on_hang  # keeps what can be kept of a guest that stopped answering

    def run(self, argv: list[str], timeout: float) -> tuple[bytes, bytes]:
        try:
            result = self.agent.exec(argv, timeout_s=timeout)
        except AgentTimeout:
            self.on_hang()
            raise
        return result.stdout, result.stderr


class HostExecutor:
    """Commands on the host itself: the bare-metal baseline."""

    where: Literal["host"] = "host"

    def run(self, argv: list[str], timeout: float) -> tuple[bytes, bytes]:
        result = run_on_host(argv, timeout_s=timeout)
        return result.stdout, result.stderr


@dataclass(frozen=True)
class CaseWatch:
    """What watches one guest's (or the host's) cases: its samplers and its test devices.

    `samplers` makes a fresh set per case; `disk` and `iface` are the test disk and NIC as
    libvirt names them (None on bare metal; the NIC is the guest's tap).
    """

    samplers: Callable[[], list[Sampler]]
    disk: str | None = None
    iface: str | None = None


class RunEvents(Protocol):
    """What the runner tells the terminal (or a test) as it goes."""

    def phase(self, text: str) -> None: ...
    def begin(self, total_cases: int) -> None: ...
    def case(self, label: str) -> None: ...
    def advance(self, n: int = 1) -> None: ...
    def warn(self, text: str) -> None: ...
    def more(self, cases: int) -> None: ...  # the run grew (an adaptive round was added)


class QuietEvents:
    def phase(self, text: str) -> None:
        pass

    def begin(self, total_cases: int) -> None:
        pass

    def case(self, label: str) -> None:
        pass

    def advance(self, n: int = 1) -> None:
        pass

    def warn(self, text: str) -> None:
        pass

    def more(self, cases: int) -> None:
        pass


@dataclass(frozen=True)
class _GuestPlace:
    """Where one guest runs its cases: the executor, the target in the guest, the samplers."""

    executor: GuestExecutor
    target: Target
    watch: CaseWatch


@dataclass
class RunResult:
    path: Path
    status: str
    failed_cases: int
    ok_cases: int
    timing: RunTiming | None = None


@dataclass
class _State:
    manifest: Manifest
    rundir: RunDir
    # every sample of the run so far (the stopping rule and density figures read them)
    samples: list[Sample] = field(default_factory=list)
    # the guests of a density trial run their cases in threads of their own
    lock: threading.Lock = field(default_factory=threading.Lock)
    network: RunNetwork | None = None  # None: no case of the scenario needs a network
    series: SeriesWriter | None = None
    guests: int = 0  # guests given a test link so far (each gets the next index)

    def save(self) -> None:
        with self.lock:
            self.rundir.write_manifest(self.manifest)

    def add_samples(self, samples: list[Sample]) -> None:
        with self.lock:
            self.rundir.append_samples(samples)
            self.samples += samples

    def next_guest_index(self) -> int:
        self.guests += 1
        return self.guests - 1


class DryRunMode(BaseModel):
    """One mode entry of a dry run: planned (devices) or skipped (reason), and its host changes."""

    model_config = ConfigDict(extra="forbid")
    mode: str
    mode_id: str
    status: Literal["planned", "skipped"]
    reason: str | None = None
    devices: list[str] = []
    note: str | None = None
    host_changes: list[str] = []


class DryRun(BaseModel):
    """`<output>/<run-id>-dry-run/dry-run.json`: what `vbench run --dry-run` planned."""

    model_config = ConfigDict(extra="forbid")
    format_version: Literal[1] = 1
    kind: Literal["vbench.dry-run"] = "vbench.dry-run"
    run_id: str
    scenario: str
    modes: list[DryRunMode]


class ModesSkipped(VbenchError):
    """--require-all-modes and a mode the host cannot run (exit 1, nothing started)."""


class _Terminated(KeyboardInterrupt):
    """SIGTERM, handled like Ctrl-C so every cleanup path runs."""


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    def handler(signum: int, frame: FrameType | None) -> None:
        raise _Terminated()

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _abort_all(barriers: list[threading.Barrier]) -> None:
    for barrier in barriers:
        barrier.abort()


def new_run_id(scenario_name: str) -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    return f"{scenario_name}-{stamp}-{secrets.token_hex(2)}"


def _tool_version(argv: list[str]) -> str:
    if shutil.which(argv[0]) is None:
        return "not installed"
    try:
        out = run_command(argv, timeout_s=10, check=False)
    except CommandFailed:
        return "unknown"
    text = (out.out or out.err).strip()
    return text.splitlines()[0] if text else "unknown"


def _libvirt_version(n: int) -> str:
    return f"{n // 1000000}.{(n // 1000) % 1000}.{n % 1000}"


def _host_facts() -> dict[str, object]:
    return read_system_facts().manifest()


def _versions(conn: libvirt.virConnect, guest: Microguest) -> dict[str, str]:
    return {
        "vbench": __version__,
        "python": platform.python_version(),
        "libvirt": _libvirt_version(conn.getLibVersion()),
        # the hypervisor's version: QEMU's, or Xen's on libvirt's libxl driver
        ("xen" if driver_of(conn).is_xen else "qemu"): _libvirt_version(conn.getVersion()),
        "host_kernel": read_system_facts().kernel,
        "guest_kernel": guest.kernel_release,
        **{kind: _tool_version(list(w.version_argv)) for kind, w in WORKLOADS.items()},
    }


def _console_tail(path: Path, lines: int = CONSOLE_TAIL_LINES) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def _with_link(spec: DomainSpec, link: GuestLink | None) -> DomainSpec:
    """The guest's NIC on its tap, and its address and MAC on the kernel command line."""
    if link is None:
        return spec
    return dataclasses.replace(
        spec, nic_tap=link.tap, nic_mac=link.mac, cmdline=f"{spec.cmdline} {link.kernel_args}"
    )


def _check_record(check: CrossCheck) -> CrossCheckRecord:
    pct = check.disagreement_pct
    return CrossCheckRecord(
        name=check.name,
        workload=check.workload,
        sampled=check.sampled,
        disagreement_pct=round(pct, 3) if math.isfinite(pct) else None,
        limit_pct=check.limit_pct,
        flagged=check.flagged,
        explained_by=check.explained_by,
    )


class Runner:
    def __init__(
        self,
        loaded: LoadedScenario,
        *,
        output: Path,
        uri: str | None = None,
        events: RunEvents | None = None,
        checks: CheckDocument | None = None,
        prepare_host: bool = False,
        dry_run: bool = False,
        require_all_modes: bool = False,
        paths: HostPaths | None = None,
    ) -> None:
        self.loaded = loaded
        self.scenario = loaded.scenario
        self.output = output
        self.uri = resolve_uri(uri)
        self.events: RunEvents = events or QuietEvents()
        self.checks = checks
        # modes may change the host (VF count, NVMe secondary controllers, driver bindings)
        self.prepare_host = prepare_host or self.scenario.host.prepare
        self.dry_run = dry_run
        self.require_all_modes = require_all_modes
        self.paths = paths or HostPaths()  # a testbed's, for --dry-run --testbed
        self._view: HostView | None = None
        self._driver = driver_for_uri(self.uri)  # domain type, agent channel (virt.driver)

    # -- the whole run ---------------------------------------------------------------------
    def run(self) -> RunResult:
        conn = self._connect()  # fails before anything is created (a dry run goes on)
        try:
            if self.checks is None:
                self.events.phase("checking the host (vbench check)")
                requested = tuple(dict.fromkeys(m.id for m in self.scenario.modes))
                self.checks = check_document(self.uri, requested=requested, paths=self.paths)
            self.events.phase("planning the modes (devices, safety checks, host changes)")
            plans = self._plan(conn)  # a refused device stops the run here: nothing started
            skipped = [p for p in plans if isinstance(p, Skip)]
            if skipped and self.require_all_modes:
                raise ModesSkipped(
                    "--require-all-modes: "
                    + "; ".join(f"mode {p.label} would be skipped: {p.reason}" for p in skipped)
                )
            if self.dry_run:
                return self._dry_run(plans)
            assert conn is not None  # only a dry run goes on without libvirt
            self.events.phase("building the microguest (cached after the first time)")
            guest = build_microguest(progress=self.events.phase)
            self.events.phase("choosing the accelerator (KVM probe under QEMU, cached)")
            accel = choose_accelerator(conn, guest)
            if accel.accelerator is Accelerator.TCG:
                self.events.warn(
                    f"TCG: {accel.reason}. Figures compare modes on this machine only; "
                    "they are not hardware figures."
                )
            return self._run_trials(conn, guest, accel, plans)
        finally:
            if conn is not None:
                with contextlib.suppress(libvirt.libvirtError):
                    conn.close()

    def _connect(self) -> libvirt.virConnect | None:
        """libvirt, and its driver.  A dry run without a reachable libvirt (planning for a Xen
        host from elsewhere) goes on: the driver the URI names, no device held by any guest."""
        try:
            conn = open_connection(self.uri)
        except LibvirtUnavailable as exc:
            if not self.dry_run:
                raise
            self.events.warn(
                f"{exc}. The dry run plans for libvirt's {self._driver.name} driver without it "
                "(devices that running guests hold are not known)"
            )
            return None
        self._driver = driver_of(conn)
        return conn

    # -- the modes: plan (devices, safety), host changes, dry run -------------------------------
    def _host_view(self, conn: libvirt.virConnect | None) -> HostView:
        assert self.checks is not None  # the host is checked before planning
        report = self.checks.report()
        paths = self.paths
        # libvirt's libxl driver: the guests are Xen's, and the KVM/VFIO host checks (which
        # `vbench check` marks as not applying on a dom0) block nothing
        xen = self._driver.is_xen
        return HostView(
            inventory=report.inventory,
            blockers={} if xen else host_blockers(report.checks),
            hypervisor=self._driver.hypervisor,
            assigned=assigned_pci(conn) if conn else {},
            hostdev_networks=hostdev_networks(conn) if conn else {},
            plan_vf=lambda pf, want, index: plan_vf(pf, paths, want, vf_index=index),
            prepare=self.prepare_host,
        )

    def _plan(self, conn: libvirt.virConnect | None) -> list[ModePlan | Skip]:
        """Each mode entry's plan or skip; DeviceRefused when a named device is unsafe."""
        self._view = self._host_view(conn)
        plans: list[ModePlan | Skip] = []
        for label, mode in zip(self.scenario.mode_labels(), self.scenario.modes, strict=True):
            plan = provider_for(mode.id).plan(mode, label, self._view)
            if isinstance(plan, ModePlan):
                for line in plan.resolved:
                    self.events.phase(f"{label}: {line}")
                for change in plan.changes:
                    self.events.phase(f"{label}: host change: {change.describe}")
            plans.append(plan)
        return plans

    def _prepare(
        self, stack: contextlib.ExitStack, journal: ChangeJournal, plans: list[ModePlan | Skip]
    ) -> list[ModePlan | Skip]:
        """Make the modes' host changes (through the run's journal), then plan the VFs they
        made."""
        if not any(isinstance(p, ModePlan) and p.changes for p in plans):
            return plans
        out: list[ModePlan | Skip] = []
        for mode, plan in zip(self.scenario.modes, plans, strict=True):
            if isinstance(plan, ModePlan) and plan.changes:
                self.events.phase(f"{plan.label}: changing the host (restored at the end)")
                stack.enter_context(provider_for(mode.id).prepare(plan, journal, self.events.warn))
            if isinstance(plan, ModePlan) and plan.replan:
                assert self._view is not None
                view = replace(self._view, inventory=collect_inventory(self.paths))
                again = provider_for(mode.id).plan(mode, plan.label, view)
                if isinstance(again, ModePlan) and (again.changes or again.devices is None):
                    raise VbenchError(
                        f"mode {plan.label}: the host changes did not give a usable VF"
                    )
                plan = again
            out.append(plan)
        return out

    def _dry_run(self, plans: list[ModePlan | Skip]) -> RunResult:
        """Write each trial's domain XML and the host changes it would make; start nothing."""
        run_id = new_run_id(self.scenario.name) + "-dry-run"
        out = self.output / run_id
        modes: list[DryRunMode] = []
        for label, plan in zip(self.scenario.mode_labels(), plans, strict=True):
            entry = DryRunMode(
                mode=label,
                mode_id=plan.mode.value,
                status="skipped" if isinstance(plan, Skip) else "planned",
                host_changes=[c.describe for c in plan.changes],
            )
            if isinstance(plan, Skip):
                entry.reason = plan.reason
            else:
                entry.devices = list(plan.resolved)
                if plan.replan:
                    entry.note = "the VF is chosen again after the host changes" + (
                        "" if plan.devices else ": no domain XML before them"
                    )
            modes.append(entry)
        for trial in self.scenario.trials():
            if trial.is_baremetal:
                continue
            plan = plans[trial.mode_index]
            tid = trial.id
            if plan.changes:
                text = "".join(f"{c.describe}\n" for c in plan.changes)
                atomic_write(out / "raw" / tid / "host-changes.txt", text)
            if isinstance(plan, ModePlan) and plan.devices is not None:
                xml = build_domain_xml(
                    self._domain_spec(run_id, trial, plan, None, None, None, None)
                )
                atomic_write(out / "raw" / tid / "domain.xml", xml)
        doc = DryRun(run_id=run_id, scenario=self.loaded.path, modes=modes)
        atomic_write(out / "dry-run.json", doc.model_dump_json(indent=2) + "\n")
        for e in modes:
            what = e.reason or "; ".join(e.devices) or "emulated devices"
            self.events.phase(f"dry run: {e.mode}: {e.status}: {what}")
        return RunResult(path=out, status="dry-run", failed_cases=0, ok_cases=0)

    def _run_trials(
        self,
        conn: libvirt.virConnect,
        guest: Microguest,
        accel: AccelVerdict,
        plans: list[ModePlan | Skip],
    ) -> RunResult:
        run_id = new_run_id(self.scenario.name)
        rundir = RunDir.create(self.output, run_id)
        manifest = Manifest(
            run_id=run_id,
            libvirt_uri=self.uri,
            scenario=ScenarioRecord(
                path=self.loaded.path,
                name=self.scenario.name,
                sha256=self.loaded.sha256,
                text=self.loaded.text,
            ),
            host=_host_facts(),
            versions=_versions(conn, guest),
            accelerator=Accel(name=accel.accelerator.value, reason=accel.reason),
            checks=self.checks,
        )
        state = _State(manifest=manifest, rundir=rundir)
        run = self.scenario.run
        manifest.repetitions = RepetitionsRecord(
            rule="fixed" if run.adaptive is None else "adaptive",
            rounds=0,
            min=run.min_rounds,
            max=run.max_rounds,
            target_ci_pct=None if run.adaptive is None else run.adaptive.target_ci_pct,
        )
        state.save()
        started = time.monotonic()
        self._record_skips(state, plans)
        runnable = [
            t
            for t in self.scenario.trials()
            if t.is_baremetal or isinstance(plans[t.mode_index], ModePlan)
        ]
        self.events.begin(sum(self._round_cases(rep, plans) for rep in range(run.min_rounds)))
        try:
            with (
                _sigterm_as_interrupt(),
                RunScratch(run_id) as scratch,
                contextlib.ExitStack() as stack,
            ):
                # inside the scratch lock (it tells `vbench cleanup` the run lives); closed first
                state.series = stack.enter_context(SeriesWriter(rundir.path / SERIES, run_id))
                # The one record of the run's host changes (the modes' and the network's), each
                # written before it is made; undone newest first on every way out (the stack
                # unwinds: the network, made last, goes first), replayed by `vbench cleanup`.
                journal = ChangeJournal(rundir.path)
                plans = self._prepare(stack, journal, plans)
                if any(self._needs(t, Needs.NETWORK) for t in runnable):
                    state.network = stack.enter_context(RunNetwork(run_id, journal))
                rounds = 0
                while True:
                    for trial in self.scenario.round_trials(rounds):
                        self._dispatch(conn, guest, accel, state, scratch, trial, plans)
                    rounds += 1
                    if self._rounds_done(state, rounds):
                        break
                    if rounds >= run.min_rounds:  # begin() counted the first min_rounds
                        self.events.more(self._round_cases(rounds, plans))
        except KeyboardInterrupt as exc:
            manifest.status = "interrupted"
            manifest.ended_at = utc_now()
            manifest.timing = self._timing(manifest, started)
            how = "SIGTERM" if isinstance(exc, _Terminated) else "Ctrl-C"
            manifest.error = f"interrupted ({how}); the cases before it are intact"
            state.save()
            raise
        except BaseException as exc:
            manifest.status = "failed"
            manifest.ended_at = utc_now()
            manifest.timing = self._timing(manifest, started)
            manifest.error = str(exc) or type(exc).__name__
            state.save()
            raise
        failed = sum(1 for c in manifest.cases if c.status == "failed")
        ok = sum(1 for c in manifest.cases if c.status == "ok")
        manifest.status = "failed" if failed else "complete"
        manifest.ended_at = utc_now()
        manifest.timing = self._timing(manifest, started)
        state.save()
        return RunResult(
            path=rundir.path,
            status=manifest.status,
            failed_cases=failed,
            ok_cases=ok,
            timing=manifest.timing,
        )

    @staticmethod
    def _timing(manifest: Manifest, started: float) -> RunTiming:
        return RunTiming.of_cases(time.monotonic() - started, manifest.cases)

    def _dispatch(
        self,
        conn: libvirt.virConnect,
        guest: Microguest,
        accel: AccelVerdict,
        state: _State,
        scratch: RunScratch,
        trial: Trial,
        plans: list[ModePlan | Skip],
    ) -> None:
        """Run one trial of a round by its kind."""
        if trial.is_baremetal:
            self._run_baremetal_trial(state, scratch, trial)
            return
        mode = self._mode(trial)
        plan = plans[trial.mode_index]
        if isinstance(plan, Skip):
            self._record_trial_skipped(state, trial, mode)
        else:
            self._run_trial(conn, guest, accel, state, scratch, trial, mode, plan)

    def _round_cases(self, rep: int, plans: list[ModePlan | Skip]) -> int:
        """The cases of one round that will run (for the progress bar)."""
        return sum(
            len(t.workloads)
            for t in self.scenario.round_trials(rep)
            if t.is_baremetal or isinstance(plans[t.mode_index], ModePlan)
        )

    def _rounds_done(self, state: _State, rounds: int) -> bool:
        """After a round: enough rounds?  A fixed count, or the adaptive stopping rule on the
        headline figures so far (`vbench.adaptive`); the manifest keeps the answer."""
        record = state.manifest.repetitions
        assert record is not None
        record.rounds = rounds
        rule = self.scenario.run.adaptive
        if rule is None:
            done = rounds >= self.scenario.run.min_rounds
            if done:
                record.stopped_by = "fixed"
                record.summary = f"{rounds} round{'s' if rounds != 1 else ''} (a fixed count)"
            state.save()
            return done
        decision = decide(
            relative_ci_widths(headline_figures(state.samples)),
            rounds,
            min_rounds=rule.min,
            max_rounds=rule.max,
            target_ci_pct=rule.target_ci_pct,
        )
        record.history.append(
            RoundRecord(
                round=rounds, widest=decision.widest_label, widest_ci_pct=decision.widest_pct
            )
        )
        summary = decision.describe(rule.target_ci_pct)
        if decision.stop:
            record.stopped_by = decision.reason
            record.summary = summary
        if rounds >= rule.min:
            self.events.phase(f"adaptive repetitions: {summary}")
        state.save()
        return decision.stop

    def _mode(self, trial: Trial) -> ModeSpec:
        return self.scenario.modes[trial.mode_index]

    def _record_skips(self, state: _State, plans: list[ModePlan | Skip]) -> None:
        for label, mode, plan in zip(
            self.scenario.mode_labels(), self.scenario.modes, plans, strict=True
        ):
            if isinstance(plan, ModePlan):
                verdict = self.checks.verdict(mode.id) if self.checks else None
                if verdict and not verdict.ready and not plan.resolved:
                    self.events.warn(f"host check: {label}: {verdict.summary}")
                continue
            state.manifest.skipped_modes.append(
                SkippedMode(mode=label, mode_id=mode.id.value, reason=plan.reason)
            )
            self.events.warn(f"skipping mode {label}: {plan.reason}")

    def _case_record(
        self, trial: Trial, mode_id: str, wl: WorkloadCase, status: str, error: str | None = None
    ) -> CaseRecord:
        return CaseRecord(
            case_id=trial.case_id(wl),
            mode=trial.mode,
            mode_id=mode_id,
            workload=wl.kind,
            parameters=canonical_parameters(wl.labels),
            repetition=trial.repetition,
            status=status,  # type: ignore[arg-type]
            error=error,
            density=trial.density,
            guest=trial.guest,
        )

    def _record_trial_skipped(self, state: _State, trial: Trial, mode: ModeSpec) -> None:
        state.manifest.trials.append(
            TrialRecord(
                mode=trial.mode,
                mode_id=mode.id.value,
                repetition=trial.repetition,
                status="skipped",
                density=trial.density,
            )
        )
        for wl in trial.workloads:
            state.manifest.cases.append(self._case_record(trial, mode.id.value, wl, "skipped"))
        state.save()

    # -- one guest boot --------------------------------------------------------------------
    def _domain_spec(
        self,
        run_id: str,
        trial: Trial,
        plan: ModePlan,
        guest: Microguest | None,
        accel: AccelVerdict | None,
        disk: Path | None,
        console: Path | None,
    ) -> DomainSpec:
        """The trial's domain: the common parts here, the mode's devices from its provider.

        Without a guest, accelerator, disk or console (a dry run) it names where they would be.
        """
        tid = trial.id
        devices = plan.devices
        assert devices is not None  # only planned modes get here
        cmdline = guest.cmdline if guest else DEFAULT_CMDLINE
        if devices.cmdline:
            cmdline += " " + devices.cmdline
        dry = Path("/var/lib/vbench/dry-run")
        return DomainSpec(
            name=f"vbench-{run_id}-{tid}",
            run_id=run_id,
            case=tid,
            domain_type=self._driver.domain_type(accel.accelerator if accel else None),
            vcpus=self.scenario.guest.vcpus,
            memory_mib=self.scenario.guest.memory_mib,
            kernel=str(guest.kernel if guest else dry / "vmlinuz"),
            initrd=str(guest.initrd if guest else dry / "initrd.img"),
            cmdline=cmdline,
            console_log=str(console or dry / f"{tid}.console.log"),
            disk_path=str(disk or dry / f"{tid}.raw") if devices.disk_bus else None,
            disk_bus=devices.disk_bus,
            nic_model=devices.nic_model,
            machine=devices.machine,
            hostdevs=devices.hostdevs,
            owner_pid=os.getpid() if guest else None,
            passthrough_nics=devices.passthrough_nics,
            pcie_root_ports=devices.pcie_root_ports,
            iommu=devices.iommu,
            os_type=devices.os_type,
            # beside the console: the socket vbench talks to the agent over (libxl), if any
            agent=self._driver.agent_channel((console or dry / "x").with_name(f"{tid}.agent")),
        )

    def _run_trial(
        self,
        conn: libvirt.virConnect,
        guest: Microguest,
        accel: AccelVerdict,
        state: _State,
        scratch: RunScratch,
        trial: Trial,
        mode: ModeSpec,
        plan: ModePlan,
    ) -> None:
        """The guests of one trial: one, or N of the mode at once (`trial.density`), each with
        its own disk, test link (when a case needs a network) and agent.

        They boot together; each case starts in all of them at the same moment (their threads
        meet at a barrier) and runs through `_run_case`, so each guest's samples are its own
        (case ids `r<rep>-<mode>-...`, in a density trial `r<rep>-<mode>-n<N>g<i>-...`).  A
        density trial's case then gets its aggregate record (`r<rep>-<mode>-n<N>-...`) with the
        sums, the fairness and the host's CPU (`vbench.density`).  A guest that fails to boot or
        hangs fails the trial (a density with fewer guests is not that density) and its cases
        still to run; its console tail is kept.  Guests, taps and disks go on every way out.
        """
        n = trial.density or 1
        run_id = state.manifest.run_id
        parts = [trial] if trial.density is None else [replace(trial, guest=g) for g in range(n)]
        records = [
            TrialRecord(
                mode=trial.mode,
                mode_id=mode.id.value,
                repetition=trial.repetition,
                status="ok",
                density=part.density,
                guest=part.guest,
            )
            for part in parts
        ]
        state.manifest.trials += records
        consoles: list[Path] = []
        done: set[str] = set()
        at_once = "the guest" if trial.density is None else f"{n} guest(s) at once"
        self.events.case(f"{trial.id}: booting {at_once} ({mode.id.display_name})")
        try:
            with contextlib.ExitStack() as stack:
                # LIFO: guests are destroyed, consoles kept and disks removed before the pool
                # waits for its threads (which end once their guest is gone)
                pool = ThreadPoolExecutor(max_workers=n, thread_name_prefix=f"vbench-{trial.id}")
                stack.callback(pool.shutdown, wait=True, cancel_futures=True)
                barriers: list[threading.Barrier] = []
                stack.callback(_abort_all, barriers)  # threads waiting for a case: let go
                assert plan.devices is not None
                agents: list[GuestAgent] = []
                links: list[GuestLink | None] = []
                for part in parts:
                    tid = part.id
                    disk = None
                    if plan.devices.disk_bus:
                        disk = scratch.make_disk(f"{tid}.raw", self.scenario.disk.size_mib)
                        stack.callback(disk.unlink, missing_ok=True)
                    console = scratch.file(f"{tid}.console.log")
                    consoles.append(console)
                    stack.callback(self._keep_console, state, tid, console)
                    link = stack.enter_context(self._guest_link(state, part))
                    links.append(link)
                    spec = self._domain_spec(run_id, part, plan, guest, accel, disk, console)
                    xml = build_domain_xml(_with_link(spec, link))
                    state.rundir.write_raw(tid, "domain.xml", xml)
                    dom = stack.enter_context(running_guest(conn, xml))
                    agents.append(stack.enter_context(open_agent(dom, spec.agent)))
                    self._attach(state, link)  # QEMU has the tap open: into the namespace
                # They boot at once on shared CPUs: each gets N times one guest's boot time.
                boot_timeout = self.scenario.guest.boot_timeout_s * n
                waits = [pool.submit(a.wait_ready, boot_timeout) for a in agents]
                for part, record, wait in zip(parts, records, waits, strict=True):
                    record.boot_to_agent_s = round(wait.result(), 3)
                    state.add_samples(
                        [self._boot_sample(run_id, part, mode, record.boot_to_agent_s)]
                    )
                where: list[_GuestPlace] = []
                for part, agent, link in zip(parts, agents, links, strict=True):
                    where.append(
                        self._guest_place(
                            conn, state, scratch, part, mode, plan, agent, link, boot_timeout
                        )
                    )

                def one(
                    part: Trial, place: _GuestPlace, wl: WorkloadCase, barrier: threading.Barrier
                ) -> tuple[CaseRecord, float]:
                    # each guest's preparation (fio's fill) first: the cases start together
                    started = utc_now()
                    try:
                        failed = self._prepare_case(state, part, wl, place.executor, place.target)
                    except AgentTimeout:
                        barrier.abort()  # the other guests must not wait for this one
                        raise
                    barrier.wait(BARRIER_TIMEOUT_S)
                    released = time.monotonic()
                    if failed is not None:
                        return self._unprepared(part, mode.id.value, wl, started, failed), released
                    record = self._run_case(
                        state, part, mode.id.value, wl, place.executor, place.target, place.watch
                    )
                    return record, released

                in_all = "" if trial.density is None else f" in {at_once}"
                for wl in trial.workloads:
                    self.events.case(f"{trial.id}: {wl.slug}{in_all}")
                    barrier = threading.Barrier(n + 1)  # the guests' threads and this one
                    barriers.append(barrier)
                    futures = [
                        pool.submit(one, part, place, wl, barrier)
                        for part, place in zip(parts, where, strict=True)
                    ]
                    barrier.wait(BARRIER_TIMEOUT_S)
                    hung = self._collect_case(state, trial, mode, wl, parts, futures)
                    done.add(wl.slug)
                    state.save()
                    self.events.advance()
                    if hung is not None:
                        raise hung
        except (GuestError, threading.BrokenBarrierError) as exc:
            for record, console in zip(records, consoles, strict=False):
                record.status = "failed"
                record.error = str(exc) or type(exc).__name__
                record.console_tail = _console_tail(console)
            for wl in trial.workloads:
                if wl.slug not in done:
                    state.manifest.cases.append(
                        self._case_record(trial, mode.id.value, wl, "failed", str(exc))
                    )
                    self.events.advance()
            self.events.warn(f"{trial.id} failed: {exc}")
        finally:
            state.save()

    def _collect_case(
        self,
        state: _State,
        trial: Trial,
        mode: ModeSpec,
        wl: WorkloadCase,
        parts: list[Trial],
        futures: list[Future[tuple[CaseRecord, float]]],
    ) -> GuestError | None:
        """Collect one case from the trial's guests: each guest's record, then in a density trial
        the aggregate record and its samples.  Returns the error of a guest that stopped
        answering (it ends the trial)."""
        hung: GuestError | None = None
        released: list[float] = []
        records: list[CaseRecord] = []
        for part, future in zip(parts, futures, strict=True):
            try:
                record, at = future.result()
            except (GuestError, threading.BrokenBarrierError) as exc:
                if isinstance(exc, GuestError):
                    hung = hung or exc
                record = self._case_record(part, mode.id.value, wl, "failed", str(exc))
                at = math.nan
            else:
                self._warn_failed(record)
            records.append(record)
            released.append(at)
        state.manifest.cases += records
        if trial.density is not None:
            state.manifest.cases.append(
                self._density_aggregate(state, trial, mode, wl, parts, records, released)
            )
        return hung

    def _density_aggregate(
        self,
        state: _State,
        trial: Trial,
        mode: ModeSpec,
        wl: WorkloadCase,
        parts: list[Trial],
        records: list[CaseRecord],
        released: list[float],
    ) -> CaseRecord:
        """A density trial's case over all its guests: failed if one guest's failed, else the
        sums and fairness of their figures (samples added) and how far apart they started."""
        aggregate = self._case_record(trial, mode.id.value, wl, "ok")
        aggregate.started_at = min((r.started_at for r in records if r.started_at), default=None)
        aggregate.ended_at = utc_now()
        aggregate.workload_s = max((r.workload_s or 0.0 for r in records), default=None)  # at once
        failed = [
            f"guest {part.guest}: {record.error}"
            for part, record in zip(parts, records, strict=True)
            if record.status != "ok"
        ]
        if failed:
            aggregate.status = "failed"
            aggregate.error = "; ".join(failed)
            return aggregate
        aggregate.start_spread_ms = round(1000 * (max(released) - min(released)), 3)
        per_guest = [[s for s in state.samples if s.case_id == part.case_id(wl)] for part in parts]
        labels = SampleLabels.for_case(
            wl,
            run_id=state.manifest.run_id,
            case_id=trial.case_id(wl),
            mode=trial.mode,
            repetition=trial.repetition,
            timestamp=time.time(),
        )
        state.add_samples(
            [labels.sample(name, value, unit) for name, value, unit in density_figures(per_guest)]
        )
        return aggregate

    def _keep_console(self, state: _State, tid: str, console: Path) -> None:
        with contextlib.suppress(OSError):
            state.rundir.write_raw(tid, "console.log", console.read_bytes())

    def _guest_place(
        self,
        conn: libvirt.virConnect,
        state: _State,
        scratch: RunScratch,
        trial: Trial,
        mode: ModeSpec,
        plan: ModePlan,
        agent: GuestAgent,
        link: GuestLink | None,
        init_timeout_s: float,
    ) -> _GuestPlace:
        """Where a booted guest runs its cases: its agent as executor, its I/O target (and peer,
        once its NIC is up) and the samplers around each case."""
        assert plan.devices is not None
        target = self._guest_target(agent, trial, mode, plan)
        if link is not None:
            agent.wait_init(init_timeout_s)  # its NIC is set up
            target = replace(target, peer_address=str(link.host_address))
        return _GuestPlace(
            GuestExecutor(
                agent, on_hang=partial(self._save_guest_kernel_log, agent, state, trial.id)
            ),
            target,
            CaseWatch(
                samplers=partial(guest_samplers, conn, agent, scratch.path),
                disk=plan.devices.target.disk_stats,  # libvirt's name for the test disk
                iface=None if link is None else link.tap,
            ),
        )

    # -- one guest's network ---------------------------------------------------------------
    @contextlib.contextmanager
    def _guest_link(self, state: _State, trial: Trial) -> Iterator[GuestLink | None]:
        """A tap, MAC and /30 for one guest whose cases need a network (None otherwise), removed
        on every way out.  One call per guest: several guests at once get distinct links."""
        if state.network is None or not self._needs(trial, Needs.NETWORK):
            yield None
            return
        with state.network.guest(state.next_guest_index()) as link:
            yield link

    @staticmethod
    def _attach(state: _State, link: GuestLink | None) -> None:
        """Move a running guest's tap into the run's namespace (before waiting for its agent)."""
        if link is not None and state.network is not None:
            state.network.attach(link)

    def _guest_target(
        self, agent: GuestAgent, trial: Trial, mode: ModeSpec, plan: ModePlan
    ) -> Target:
        """What the trial's cases run against inside the guest: the mode's I/O target as its
        provider finds it in the guest (only if a case needs a disk) and the guest's vCPUs."""
        needs_disk = self._needs(trial, Needs.DISK)
        return Target(
            where="guest",
            disk=provider_for(mode.id).io_target(agent, plan).path if needs_disk else None,
            vcpus=self.scenario.guest.vcpus,
        )

    def _boot_sample(self, run_id: str, trial: Trial, mode: ModeSpec, seconds: float) -> Sample:
        return Sample(
            run_id=run_id,
            case_id=f"{trial.id}-boot",
            mode=trial.mode,
            workload=BOOT,
            parameters="" if trial.density is None else f"{DENSITY}={trial.density}",
            repetition=trial.repetition,
            metric=BOOT_METRIC.name,
            value=seconds,
            unit=BOOT_METRIC.unit,
            timestamp=time.time(),
        )

    def _run_baremetal_trial(self, state: _State, scratch: RunScratch, trial: Trial) -> None:
        """The workloads on the host itself, against a raw file like the guests' disks."""
        tid = trial.id
        record = TrialRecord(
            mode=trial.mode, mode_id=BAREMETAL, repetition=trial.repetition, status="ok"
        )
        state.manifest.trials.append(record)
        disk = (
            scratch.make_disk(f"{tid}.raw", self.scenario.disk.size_mib)
            if self._needs(trial, Needs.DISK)
            else None
        )
        target = Target(
            where="host",
            disk=None if disk is None else str(disk),
            # NETWORK cases: client and server inside the run's namespace, over its loopback
            peer_address=BAREMETAL_PEER if state.network is not None else None,
            vcpus=self.scenario.guest.vcpus,  # the guest's share, for a like-for-like column
        )
        watch = CaseWatch(samplers=lambda: host_samplers(scratch.path))
        try:
            self._run_cases(state, trial, BAREMETAL, HostExecutor(), target, watch)
        finally:
            if disk is not None:
                disk.unlink(missing_ok=True)
            state.save()

    @staticmethod
    def _needs(trial: Trial, need: Needs) -> bool:
        return any(workload(wl.kind).needs is need for wl in trial.workloads)

    def _run_cases(
        self,
        state: _State,
        trial: Trial,
        mode_id: str,
        executor: Executor,
        target: Target,
        watch: CaseWatch,
    ) -> None:
        """Every case of the bare-metal trial in turn, on the host."""
        where = " (on the host)" if executor.where == "host" else ""
        for wl in trial.workloads:
            self.events.case(f"{trial.id}: {wl.slug}{where}")
            started = utc_now()
            failed = self._prepare_case(state, trial, wl, executor, target)
            record = (
                self._unprepared(trial, mode_id, wl, started, failed)
                if failed is not None
                else self._run_case(state, trial, mode_id, wl, executor, target, watch)
            )
            self._warn_failed(record)
            state.manifest.cases.append(record)
            state.save()
            self.events.advance()

    def _run_case(
        self,
        state: _State,
        trial: Trial,
        mode_id: str,
        wl: WorkloadCase,
        executor: Executor,
        target: Target,
        watch: CaseWatch,
    ) -> CaseRecord:
        """One workload case, once its caller has prepared it (`_prepare_case`): its peer server
        (NETWORK), the samplers around the command, the raw output kept, the samples parsed, the
        series reduced to figures and cross-checks.

        A failed command fails the case; AgentTimeout (a guest that stopped answering) propagates
        and ends the trial.
        """
        w = workload(wl.kind)
        case_id = trial.case_id(wl)
        record = self._case_record(trial, mode_id, wl, "ok")
        record.started_at = utc_now()
        network = state.network if w.needs is Needs.NETWORK else None
        if w.needs is Needs.NETWORK and (network is None or target.peer_address is None):
            return self._case_failed(
                record, VbenchError(f"{wl.kind} needs a network peer; this run has none")
            )
        argv = w.argv(wl, target)
        if network is not None and executor.where == "host":
            argv = network.exec_argv(argv)  # the bare-metal client runs in the namespace too
        timeout = min(w.timeout(wl), self.scenario.run.command_timeout_s)
        readings: list[Reading] = []
        with contextlib.ExitStack() as around:
            samplers = watch.samplers()
            if network is not None:
                server_argv = w.server_argv(wl, bind=target.peer_address)
                if server_argv is not None:
                    try:
                        server = around.enter_context(network.server(server_argv))
                    except VbenchError as exc:  # a server that would not start fails its case
                        return self._case_failed(record, exc)
                    if watch.iface is not None:
                        samplers.append(NamespaceNicSampler(server.pid, [watch.iface]))
            sampling = Sampling(
                samplers,
                self._sink(state, case_id, readings),
                interval_s=self.scenario.run.sample_interval_s,
            )
            sampling.start()
            began = time.monotonic()
            try:
                stdout, stderr = executor.run(argv, timeout)
            except AgentTimeout:
                raise
            except VbenchError as exc:
                return self._case_failed(record, exc)
            finally:
                record.workload_s = round(time.monotonic() - began, 3)
                record.sampling_errors = sampling.stop().errors
        state.rundir.write_raw(case_id, w.raw_name, stdout)
        if stderr:
            state.rundir.write_raw(case_id, f"{w.raw_name.partition('.')[0]}.stderr", stderr)
        labels = SampleLabels.for_case(
            wl,
            run_id=state.manifest.run_id,
            case_id=case_id,
            mode=trial.mode,
            repetition=trial.repetition,
            timestamp=time.time(),
        )
        try:
            samples = w.parse(stdout, labels)
        except VbenchError as exc:
            return self._case_failed(record, exc)
        derived = self._derive(readings, w.tallies(samples), watch)
        samples += [labels.sample(f.metric, f.value, f.unit) for f in derived.figures]
        record.cross_checks = [_check_record(c) for c in derived.checks]
        record.flags = derived.flags
        if derived.flags:
            self.events.warn(f"{case_id}: cross-check disagrees: {', '.join(derived.flags)}")
        state.add_samples(samples)
        record.ended_at = utc_now()
        return record

    def _prepare_case(
        self, state: _State, trial: Trial, wl: WorkloadCase, executor: Executor, target: Target
    ) -> VbenchError | None:
        """The workload's preparation of the case (fio's fill), before the case's window opens, so
        that the window (samplers, cross-checks) sees the measured command only.  Its output is
        kept; its failure is returned (it fails the case), AgentTimeout propagates."""
        step = workload(wl.kind).prepare(wl, target)
        if step is None:
            return None
        try:
            out, _err = executor.run(
                step.argv, min(step.timeout_s, self.scenario.run.command_timeout_s)
            )
        except AgentTimeout:
            raise
        except VbenchError as exc:
            return exc
        state.rundir.write_raw(trial.case_id(wl), step.raw_name, out)
        return None

    @staticmethod
    def _sink(state: _State, case_id: str, keep: list[Reading]) -> Callable[[list[Reading]], None]:
        """Each tick's readings to series.csv (appended, flushed) and kept for the reduction."""

        def sink(batch: list[Reading]) -> None:
            keep.extend(batch)
            if state.series is not None:
                state.series.append(case_id, batch)

        return sink

    @staticmethod
    def _derive(readings: Sequence[Reading], tallies: Tallies, watch: CaseWatch) -> Derived:
        import pandas as pd

        frame = pd.DataFrame(
            [("", "", r.source, r.metric, r.t_s, r.value, r.unit) for r in readings],
            columns=list(SERIES_COLUMNS),
        ).astype({"t_s": float, "value": float})
        return derive_case(
            frame,
            workload_ios=tallies.ios,
            workload_bytes=tallies.io_bytes,
            workload_net_bytes=tallies.net_bytes or None,
            workload_net_sent=tallies.net_bytes_sent or None,
            disk=watch.disk,
            iface=watch.iface,
            libvirt=LIBVIRT_SOURCE,
        )

    def _save_guest_kernel_log(self, agent: GuestAgent, state: _State, tid: str) -> None:
        """Keep the guest kernel's log of a hung trial, if the agent still answers."""
        with contextlib.suppress(GuestError):
            log = agent.exec(["dmesg"], timeout_s=10, check=False)
            state.rundir.write_raw(tid, "dmesg.txt", log.stdout)

    @staticmethod
    def _case_failed(record: CaseRecord, exc: VbenchError) -> CaseRecord:
        """The case's record, failed; its caller tells the terminal (`_warn_failed`), so a case
        a Ctrl-C cut short (its guest destroyed under it) is not reported as failed."""
        record.status = "failed"
        record.error = str(exc)
        record.ended_at = utc_now()
        return record

    def _unprepared(
        self, trial: Trial, mode_id: str, wl: WorkloadCase, started: str, exc: VbenchError
    ) -> CaseRecord:
        """The record of a case whose preparation (`_prepare_case`) failed: it never ran."""
        record = self._case_record(trial, mode_id, wl, "ok")
        record.started_at = started
        return self._case_failed(record, exc)

    def _warn_failed(self, record: CaseRecord) -> None:
        if record.status == "failed":
            self.events.warn(f"{record.case_id} failed: {record.error}")
