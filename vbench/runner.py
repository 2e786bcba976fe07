"""Run a scenario: plan -> provision each trial's guest -> run its workloads -> store.

One guest boot serves every workload of its (mode, repetition); repetitions interleave the modes.
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
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Literal, Protocol

import libvirt

from vbench import __version__
from vbench.checkdoc import CheckDocument
from vbench.command import CommandFailed
from vbench.command import run as run_command
from vbench.derive import CrossCheck, Derived, derive_case
from vbench.domxml import DomainSpec, build_domain_xml, disk_target_dev
from vbench.domxml.modes import mode_devices
from vbench.errors import AgentTimeout, GuestError, VbenchError
from vbench.guest.agent import GuestAgent
from vbench.guest.microguest import Microguest, build_microguest
from vbench.host.baremetal import run_on_host
from vbench.host.checks import check_document
from vbench.host.facts import read_system_facts
from vbench.host.netns import GuestLink, RunNetwork
from vbench.model import (
    BAREMETAL,
    Accelerator,
    ModeId,
    Sample,
    Trial,
    WorkloadCase,
    canonical_parameters,
)
from vbench.results import (
    Accel,
    CaseRecord,
    CrossCheckRecord,
    HostChange,
    Manifest,
    RunDir,
    RunTiming,
    ScenarioRecord,
    SkippedMode,
    TrialRecord,
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
from vbench.virt.guests import RunScratch, running_guest
from vbench.workloads import WORKLOADS, Needs, SampleLabels, Tallies, Target, workload
from vbench.workloads.common import BOOT, BOOT_METRIC

# Modes this version can provision; the others are skipped with a reason, never dropped silently.
PROVISIONED_MODES = {ModeId.FV, ModeId.PV}
CONSOLE_TAIL_LINES = 30
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
    network: RunNetwork | None = None  # None: no case of the scenario needs a network
    series: SeriesWriter | None = None
    guests: int = 0  # guests given a test link so far (each gets the next index)

    def save(self) -> None:
        self.rundir.write_manifest(self.manifest)

    def add_samples(self, samples: list[Sample]) -> None:
        self.rundir.append_samples(samples)

    def host_change(self, what: str) -> None:
        """RunNetwork's journal: each change to the host is in the manifest before it is made."""
        self.manifest.host_changes.append(HostChange(at=utc_now(), what=what))
        self.save()

    def next_guest_index(self) -> int:
        self.guests += 1
        return self.guests - 1


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
        "qemu": _libvirt_version(conn.getVersion()),
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


def trial_id(trial: Trial) -> str:
    return f"r{trial.repetition}-{trial.mode}"


class Runner:
    def __init__(
        self,
        loaded: LoadedScenario,
        *,
        output: Path,
        uri: str | None = None,
        events: RunEvents | None = None,
        checks: CheckDocument | None = None,
    ) -> None:
        self.loaded = loaded
        self.scenario = loaded.scenario
        self.output = output
        self.uri = resolve_uri(uri)
        self.events: RunEvents = events or QuietEvents()
        self.checks = checks

    # -- the whole run ---------------------------------------------------------------------
    def run(self) -> RunResult:
        conn = open_connection(self.uri)  # fails before anything is created
        try:
            if self.checks is None:
                self.events.phase("checking the host (vbench check)")
                requested = tuple(dict.fromkeys(m.id for m in self.scenario.modes))
                self.checks = check_document(self.uri, requested=requested)
            self.events.phase("building the microguest (cached after the first time)")
            guest = build_microguest(progress=self.events.phase)
            self.events.phase("choosing the accelerator (functional KVM probe, cached)")
            accel = choose_accelerator(conn, guest)
            if accel.accelerator is Accelerator.TCG:
                self.events.warn(
                    f"TCG: {accel.reason}. Figures compare modes on this machine only; "
                    "they are not hardware figures."
                )
            return self._run_trials(conn, guest, accel)
        finally:
            with contextlib.suppress(libvirt.libvirtError):
                conn.close()

    def _run_trials(
        self, conn: libvirt.virConnect, guest: Microguest, accel: AccelVerdict
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
        state.save()
        started = time.monotonic()
        trials = self.scenario.trials()
        self._record_skips(state)
        runnable = [t for t in trials if t.is_baremetal or self._mode(t).id in PROVISIONED_MODES]
        self.events.begin(sum(len(t.workloads) for t in runnable))
        try:
            with (
                _sigterm_as_interrupt(),
                RunScratch(run_id) as scratch,
                contextlib.ExitStack() as stack,
            ):
                # inside the scratch lock (it tells `vbench cleanup` the run lives); closed first
                state.series = stack.enter_context(SeriesWriter(rundir.path / SERIES, run_id))
                if any(self._needs(t, Needs.NETWORK) for t in runnable):
                    state.network = stack.enter_context(
                        RunNetwork(run_id, record=state.host_change)
                    )
                for trial in trials:
                    if trial.is_baremetal:
                        self._run_baremetal_trial(state, scratch, trial)
                        continue
                    mode = self._mode(trial)
                    if mode.id not in PROVISIONED_MODES:
                        self._record_trial_skipped(state, trial, mode)
                        continue
                    self._run_trial(conn, guest, accel, state, scratch, trial, mode)
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
        workload_s = sum(c.workload_s or 0.0 for c in manifest.cases)
        return RunTiming.of(time.monotonic() - started, workload_s)

    def _mode(self, trial: Trial) -> ModeSpec:
        return self.scenario.modes[trial.mode_index]

    def _record_skips(self, state: _State) -> None:
        for label, mode in zip(self.scenario.mode_labels(), self.scenario.modes, strict=True):
            verdict = self.checks.verdict(mode.id) if self.checks else None
            if mode.id in PROVISIONED_MODES:
                if verdict and not verdict.ready:
                    self.events.warn(f"host check: {label}: {verdict.summary}")
                continue
            if verdict and not verdict.ready:
                reason = f"the host is not ready: {verdict.summary}".rstrip(": ")
            else:
                reason = (
                    f"provisioning {mode.id.display_name} is not implemented in vbench "
                    f"{__version__} yet (the host checks say: "
                    f"{verdict.summary if verdict else 'see `vbench check`'})"
                )
            state.manifest.skipped_modes.append(
                SkippedMode(mode=label, mode_id=mode.id.value, reason=reason)
            )
            self.events.warn(f"skipping mode {label}: {reason}")

    def _case_record(
        self, trial: Trial, mode_id: str, wl: WorkloadCase, status: str, error: str | None = None
    ) -> CaseRecord:
        return CaseRecord(
            case_id=trial.case_id(wl),
            mode=trial.mode,
            mode_id=mode_id,
            workload=wl.kind,
            parameters=canonical_parameters(wl.params),
            repetition=trial.repetition,
            status=status,  # type: ignore[arg-type]
            error=error,
        )

    def _record_trial_skipped(self, state: _State, trial: Trial, mode: ModeSpec) -> None:
        state.manifest.trials.append(
            TrialRecord(
                mode=trial.mode,
                mode_id=mode.id.value,
                repetition=trial.repetition,
                status="skipped",
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
        mode: ModeSpec,
        guest: Microguest,
        accel: AccelVerdict,
        disk: Path,
        console: Path,
    ) -> DomainSpec:
        tid = trial_id(trial)
        devices = mode_devices(mode.id.value, mode.disk_bus, mode.nic_model)
        return DomainSpec(
            name=f"vbench-{run_id}-{tid}",
            run_id=run_id,
            case=tid,
            domain_type=accel.accelerator.libvirt_domain_type,
            vcpus=self.scenario.guest.vcpus,
            memory_mib=self.scenario.guest.memory_mib,
            kernel=str(guest.kernel),
            initrd=str(guest.initrd),
            cmdline=guest.cmdline,
            console_log=str(console),
            disk_path=str(disk),
            disk_bus=devices.disk_bus or mode.effective_disk_bus,
            nic_model=devices.nic_model,
            machine=devices.machine,
            hostdevs=devices.hostdevs,
            owner_pid=os.getpid(),
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
    ) -> None:
        run_id = state.manifest.run_id
        tid = trial_id(trial)
        record = TrialRecord(
            mode=trial.mode, mode_id=mode.id.value, repetition=trial.repetition, status="ok"
        )
        state.manifest.trials.append(record)
        disk = scratch.make_disk(f"{tid}.raw", self.scenario.disk.size_mib)
        console = scratch.file(f"{tid}.console.log")
        done: set[str] = set()
        try:
            with self._guest_link(state, trial) as link:
                spec = self._domain_spec(run_id, trial, mode, guest, accel, disk, console)
                xml = build_domain_xml(_with_link(spec, link))
                state.rundir.write_raw(tid, "domain.xml", xml)
                self.events.case(f"{tid}: booting the guest ({mode.id.display_name})")
                with running_guest(conn, xml) as dom:
                    self._attach(state, link)  # QEMU has the tap open: into the namespace with it
                    agent = GuestAgent(dom)
                    record.boot_to_agent_s = round(
                        agent.wait_ready(self.scenario.guest.boot_timeout_s), 3
                    )
                    state.add_samples(
                        [self._boot_sample(run_id, trial, mode, record.boot_to_agent_s)]
                    )
                    executor = GuestExecutor(
                        agent, on_hang=lambda: self._save_guest_kernel_log(agent, state, tid)
                    )
                    target = self._guest_target(agent, trial)
                    if link is not None:
                        agent.wait_init(self.scenario.guest.boot_timeout_s)  # its NIC is set up
                        target = dataclasses.replace(target, peer_address=str(link.host_address))
                    watch = CaseWatch(
                        samplers=lambda: guest_samplers(conn, agent, scratch.path),
                        disk=disk_target_dev(mode.effective_disk_bus),
                        iface=None if link is None else link.tap,
                    )
                    self._run_cases(state, trial, mode.id.value, executor, target, watch, done=done)
        except GuestError as exc:
            record.status = "failed"
            record.error = str(exc)
            record.console_tail = _console_tail(console)
            for wl in trial.workloads:
                if wl.slug not in done:
                    state.manifest.cases.append(
                        self._case_record(trial, mode.id.value, wl, "failed", str(exc))
                    )
                    self.events.advance()
            self.events.warn(f"{tid} failed: {exc}")
        finally:
            with contextlib.suppress(OSError):
                state.rundir.write_raw(tid, "console.log", console.read_bytes())
            disk.unlink(missing_ok=True)
            state.save()

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

    def _guest_target(self, agent: GuestAgent, trial: Trial) -> Target:
        """What the trial's cases run against inside the guest: the test disk as the guest names
        it (looked up only if a case needs a disk) and the guest's vCPUs."""
        needs_disk = self._needs(trial, Needs.DISK)
        return Target(
            where="guest",
            disk=agent.test_disk() if needs_disk else None,
            vcpus=self.scenario.guest.vcpus,
        )

    def _boot_sample(self, run_id: str, trial: Trial, mode: ModeSpec, seconds: float) -> Sample:
        return Sample(
            run_id=run_id,
            case_id=f"{trial_id(trial)}-boot",
            mode=trial.mode,
            workload=BOOT,
            parameters="",
            repetition=trial.repetition,
            metric=BOOT_METRIC.name,
            value=seconds,
            unit=BOOT_METRIC.unit,
            timestamp=time.time(),
        )

    def _run_baremetal_trial(self, state: _State, scratch: RunScratch, trial: Trial) -> None:
        """The workloads on the host itself, against a raw file like the guests' disks."""
        tid = trial_id(trial)
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
            self._run_cases(state, trial, BAREMETAL, HostExecutor(), target, watch, done=set())
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
        *,
        done: set[str],
    ) -> None:
        """Every case of a trial in turn, wherever it runs; `done` collects the finished slugs."""
        where = " (on the host)" if executor.where == "host" else ""
        for wl in trial.workloads:
            self.events.case(f"{trial_id(trial)}: {wl.slug}{where}")
            state.manifest.cases.append(
                self._run_case(state, trial, mode_id, wl, executor, target, watch)
            )
            done.add(wl.slug)
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
        """One workload case: its peer server (NETWORK), the samplers around the command, the raw
        output kept, the samples parsed, the series reduced to figures and cross-checks.

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

    def _case_failed(self, record: CaseRecord, exc: VbenchError) -> CaseRecord:
        record.status = "failed"
        record.error = str(exc)
        record.ended_at = utc_now()
        self.events.warn(f"{record.case_id} failed: {exc}")
        return record
