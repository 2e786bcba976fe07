"""Run a scenario: plan -> provision each trial's guest -> run its workloads -> store.

One guest boot serves every workload of its (mode, repetition); repetitions interleave the modes.
A run is rounds of trials: a fixed count, or with adaptive repetitions rounds are added until the
headline figures' CIs are tight enough (`vbench.adaptive`).  A density trial boots N guests of one
mode and starts each case in all of them at once (`vbench.density` for its figures).
A trial whose guest fails is recorded as failed (with its console tail) and the run goes on.
Every guest and scratch file is removed on every way out: success, error, Ctrl-C, SIGTERM.
"""

from __future__ import annotations

import contextlib
import math
import os
import platform
import secrets
import shutil
import signal
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from types import FrameType
from typing import Literal, Protocol

import libvirt

from vbench import __version__
from vbench.adaptive import decide, headline_figures, relative_ci_widths
from vbench.checkdoc import CheckDocument
from vbench.command import CommandFailed
from vbench.command import run as run_command
from vbench.density import density_figures
from vbench.domxml import DomainSpec, build_domain_xml, disk_target_dev
from vbench.domxml.modes import mode_devices
from vbench.errors import AgentTimeout, GuestError, VbenchError
from vbench.guest.agent import GuestAgent
from vbench.guest.microguest import Microguest, build_microguest
from vbench.host.baremetal import run_on_host
from vbench.host.checks import check_document
from vbench.host.facts import read_system_facts
from vbench.metrics.cost import CostSnapshot, cost_metrics, host_snapshot, snapshot
from vbench.model import (
    BAREMETAL,
    DENSITY,
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
    Manifest,
    RepetitionsRecord,
    RoundRecord,
    RunDir,
    ScenarioRecord,
    SkippedMode,
    TrialRecord,
    utc_now,
)
from vbench.scenario import LoadedScenario, ModeSpec
from vbench.virt.accel import AccelVerdict, choose_accelerator
from vbench.virt.connection import open_connection, resolve_uri
from vbench.virt.guests import RunScratch, running_guest
from vbench.workloads import WORKLOADS, Needs, SampleLabels, Target, workload
from vbench.workloads.common import BOOT, BOOT_METRIC

# Modes this version can provision; the others are skipped with a reason, never dropped silently.
PROVISIONED_MODES = {ModeId.FV, ModeId.PV}
CONSOLE_TAIL_LINES = 30
# How long the guests of a density trial wait for each other before a case (they are all up)
DENSITY_BARRIER_TIMEOUT_S = 120.0


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
    """Where one guest of a density trial runs its cases."""

    executor: GuestExecutor
    target: Target
    measure: Callable[[], CostSnapshot]


@dataclass
class RunResult:
    path: Path
    status: str
    failed_cases: int
    ok_cases: int


@dataclass
class _State:
    manifest: Manifest
    rundir: RunDir
    # every sample of the run so far (the stopping rule and density figures read them)
    samples: list[Sample] = field(default_factory=list)
    # the guests of a density trial run their cases in threads of their own
    lock: threading.Lock = field(default_factory=threading.Lock)

    def save(self) -> None:
        with self.lock:
            self.rundir.write_manifest(self.manifest)

    def add_samples(self, samples: list[Sample]) -> None:
        with self.lock:
            self.rundir.append_samples(samples)
            self.samples += samples


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


def trial_id(trial: Trial) -> str:
    return trial.id


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
        run = self.scenario.run
        manifest.repetitions = RepetitionsRecord(
            rule="fixed" if run.adaptive is None else "adaptive",
            rounds=0,
            min=run.min_rounds,
            max=run.max_rounds,
            target_ci_pct=None if run.adaptive is None else run.adaptive.target_ci_pct,
        )
        state.save()
        self._record_skips(state)
        self.events.begin(sum(self._round_cases(rep) for rep in range(run.min_rounds)))
        try:
            with _sigterm_as_interrupt(), RunScratch(run_id) as scratch:
                rounds = 0
                while True:
                    for trial in self.scenario.round_trials(rounds):
                        self._dispatch(conn, guest, accel, state, scratch, trial)
                    rounds += 1
                    if self._rounds_done(state, rounds):
                        break
                    if rounds >= run.min_rounds:  # begin() counted the first min_rounds
                        self.events.more(self._round_cases(rounds))
        except KeyboardInterrupt as exc:
            manifest.status = "interrupted"
            manifest.ended_at = utc_now()
            how = "SIGTERM" if isinstance(exc, _Terminated) else "Ctrl-C"
            manifest.error = f"interrupted ({how}); the cases before it are intact"
            state.save()
            raise
        except BaseException as exc:
            manifest.status = "failed"
            manifest.ended_at = utc_now()
            manifest.error = str(exc) or type(exc).__name__
            state.save()
            raise
        failed = sum(1 for c in manifest.cases if c.status == "failed")
        ok = sum(1 for c in manifest.cases if c.status == "ok")
        manifest.status = "failed" if failed else "complete"
        manifest.ended_at = utc_now()
        state.save()
        return RunResult(path=rundir.path, status=manifest.status, failed_cases=failed, ok_cases=ok)

    def _dispatch(
        self,
        conn: libvirt.virConnect,
        guest: Microguest,
        accel: AccelVerdict,
        state: _State,
        scratch: RunScratch,
        trial: Trial,
    ) -> None:
        """Run one trial of a round by its kind."""
        if trial.is_baremetal:
            self._run_baremetal_trial(state, scratch, trial)
            return
        mode = self._mode(trial)
        if mode.id not in PROVISIONED_MODES:
            self._record_trial_skipped(state, trial, mode)
        elif trial.density is not None:
            self._run_density_trial(conn, guest, accel, state, scratch, trial, mode)
        else:
            self._run_trial(conn, guest, accel, state, scratch, trial, mode)

    def _round_cases(self, rep: int) -> int:
        """The cases of one round that will run (for the progress bar)."""
        return sum(
            len(t.workloads)
            for t in self.scenario.round_trials(rep)
            if t.is_baremetal or self._mode(t).id in PROVISIONED_MODES
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
        xml = build_domain_xml(self._domain_spec(run_id, trial, mode, guest, accel, disk, console))
        state.rundir.write_raw(tid, "domain.xml", xml)
        done: set[str] = set()
        self.events.case(f"{tid}: booting the guest ({mode.id.display_name})")
        try:
            with running_guest(conn, xml) as dom:
                agent = GuestAgent(dom)
                record.boot_to_agent_s = round(
                    agent.wait_ready(self.scenario.guest.boot_timeout_s), 3
                )
                state.add_samples([self._boot_sample(run_id, trial, mode, record.boot_to_agent_s)])
                executor = GuestExecutor(
                    agent, on_hang=lambda: self._save_guest_kernel_log(agent, state, tid)
                )
                target = self._guest_target(agent, trial)
                block_dev = disk_target_dev(mode.effective_disk_bus)
                self._run_cases(
                    state,
                    trial,
                    mode.id.value,
                    executor,
                    target,
                    measure=lambda: snapshot(agent.domain, block_dev),
                    done=done,
                )
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

    def _run_density_trial(
        self,
        conn: libvirt.virConnect,
        guest: Microguest,
        accel: AccelVerdict,
        state: _State,
        scratch: RunScratch,
        trial: Trial,
        mode: ModeSpec,
    ) -> None:
        """N guests of one mode at once (`trial.density`), each with its own disk and agent.

        They boot together; each case starts in all of them at the same moment (their threads
        meet at a barrier) and runs through `_run_case` as in any trial, so each guest's samples
        are its own (case ids `r<rep>-<mode>-n<N>g<i>-...`).  Then the case's aggregate record
        (`r<rep>-<mode>-n<N>-...`) gets the sums, the fairness and the host's CPU
        (`vbench.density`).  A guest that fails to boot or hangs fails the trial: a density with
        fewer guests is not that density.  Guests and disks go on every way out.
        """
        n = trial.density
        assert n is not None
        run_id = state.manifest.run_id
        parts = [replace(trial, guest=g) for g in range(n)]
        records = [
            TrialRecord(
                mode=trial.mode,
                mode_id=mode.id.value,
                repetition=trial.repetition,
                status="ok",
                density=n,
                guest=part.guest,
            )
            for part in parts
        ]
        state.manifest.trials += records
        consoles: list[Path] = []
        done: set[str] = set()
        self.events.case(f"{trial.id}: booting {n} guest(s) at once ({mode.id.display_name})")
        try:
            with contextlib.ExitStack() as stack:
                # LIFO: guests are destroyed, consoles kept and disks removed before the pool
                # waits for its threads (which end once their guest is gone)
                pool = ThreadPoolExecutor(max_workers=n, thread_name_prefix=f"vbench-{trial.id}")
                stack.callback(pool.shutdown, wait=True, cancel_futures=True)
                barriers: list[threading.Barrier] = []
                stack.callback(_abort_all, barriers)  # threads waiting for a case: let go
                agents: list[GuestAgent] = []
                for part in parts:
                    tid = part.id
                    disk = scratch.make_disk(f"{tid}.raw", self.scenario.disk.size_mib)
                    stack.callback(disk.unlink, missing_ok=True)
                    console = scratch.file(f"{tid}.console.log")
                    consoles.append(console)
                    stack.callback(self._keep_console, state, tid, console)
                    spec = self._domain_spec(run_id, part, mode, guest, accel, disk, console)
                    xml = build_domain_xml(spec)
                    state.rundir.write_raw(tid, "domain.xml", xml)
                    agents.append(GuestAgent(stack.enter_context(running_guest(conn, xml))))
                # They boot at once on shared CPUs: each gets N times one guest's boot time.
                boot_timeout = self.scenario.guest.boot_timeout_s * n
                waits = [pool.submit(a.wait_ready, boot_timeout) for a in agents]
                for part, record, wait in zip(parts, records, waits, strict=True):
                    record.boot_to_agent_s = round(wait.result(), 3)
                    state.add_samples(
                        [self._boot_sample(run_id, part, mode, record.boot_to_agent_s)]
                    )
                block_dev = disk_target_dev(mode.effective_disk_bus)
                where = [
                    _GuestPlace(
                        GuestExecutor(
                            agent,
                            on_hang=partial(self._save_guest_kernel_log, agent, state, part.id),
                        ),
                        self._guest_target(agent, part),
                        partial(snapshot, agent.domain, block_dev),
                    )
                    for part, agent in zip(parts, agents, strict=True)
                ]

                def one(
                    part: Trial, place: _GuestPlace, wl: WorkloadCase, barrier: threading.Barrier
                ) -> tuple[CaseRecord, float]:
                    barrier.wait(DENSITY_BARRIER_TIMEOUT_S)
                    released = time.monotonic()
                    record = self._run_case(
                        state, part, mode.id.value, wl, place.executor, place.target, place.measure
                    )
                    return record, released

                for wl in trial.workloads:
                    self.events.case(f"{trial.id}: {wl.slug} in {n} guest(s) at once")
                    barrier = threading.Barrier(n + 1)  # the guests' threads and this one
                    barriers.append(barrier)
                    futures = [
                        pool.submit(one, part, place, wl, barrier)
                        for part, place in zip(parts, where, strict=True)
                    ]
                    barrier.wait(DENSITY_BARRIER_TIMEOUT_S)
                    hung = self._density_case(state, trial, mode, wl, parts, futures)
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

    def _density_case(
        self,
        state: _State,
        trial: Trial,
        mode: ModeSpec,
        wl: WorkloadCase,
        parts: list[Trial],
        futures: list[Future[tuple[CaseRecord, float]]],
    ) -> GuestError | None:
        """Collect one case of a density trial: each guest's record, then the aggregate record
        and its samples.  Returns the error of a guest that stopped answering (ends the trial)."""
        hung: GuestError | None = None
        released: list[float] = []
        failed: list[str] = []
        records: list[CaseRecord] = []
        for part, future in zip(parts, futures, strict=True):
            try:
                record, at = future.result()
            except (GuestError, threading.BrokenBarrierError) as exc:
                if isinstance(exc, GuestError):
                    hung = hung or exc
                record = self._case_record(part, mode.id.value, wl, "failed", str(exc))
                at = math.nan
            records.append(record)
            released.append(at)
            if record.status != "ok":
                failed.append(f"guest {part.guest}: {record.error}")
        state.manifest.cases += records
        aggregate = self._case_record(trial, mode.id.value, wl, "ok")
        aggregate.started_at = min((r.started_at for r in records if r.started_at), default=None)
        aggregate.ended_at = utc_now()
        if failed:
            aggregate.status = "failed"
            aggregate.error = "; ".join(failed)
        else:
            aggregate.start_spread_ms = round(1000 * (max(released) - min(released)), 3)
            per_guest = [
                [s for s in state.samples if s.case_id == part.case_id(wl)] for part in parts
            ]
            labels = SampleLabels.for_case(
                wl,
                run_id=state.manifest.run_id,
                case_id=trial.case_id(wl),
                mode=trial.mode,
                repetition=trial.repetition,
                timestamp=time.time(),
            )
            state.add_samples(
                [
                    labels.sample(name, value, unit)
                    for name, value, unit in density_figures(per_guest)
                ]
            )
        state.manifest.cases.append(aggregate)
        return hung

    def _keep_console(self, state: _State, tid: str, console: Path) -> None:
        with contextlib.suppress(OSError):
            state.rundir.write_raw(tid, "console.log", console.read_bytes())

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
            parameters="" if trial.density is None else f"{DENSITY}={trial.density}",
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
            vcpus=self.scenario.guest.vcpus,  # the guest's share, for a like-for-like column
        )
        try:
            self._run_cases(
                state, trial, BAREMETAL, HostExecutor(), target, measure=host_snapshot, done=set()
            )
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
        *,
        measure: Callable[[], CostSnapshot],
        done: set[str],
    ) -> None:
        """Every case of a trial in turn, wherever it runs; `done` collects the finished slugs."""
        where = " (on the host)" if executor.where == "host" else ""
        for wl in trial.workloads:
            self.events.case(f"{trial_id(trial)}: {wl.slug}{where}")
            state.manifest.cases.append(
                self._run_case(state, trial, mode_id, wl, executor, target, measure)
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
        measure: Callable[[], CostSnapshot],
    ) -> CaseRecord:
        """One workload case: run it, keep its raw output, parse it into samples.

        A failed command fails the case; AgentTimeout (a guest that stopped answering) propagates
        and ends the trial.
        """
        w = workload(wl.kind)
        case_id = trial.case_id(wl)
        record = self._case_record(trial, mode_id, wl, "ok")
        record.started_at = utc_now()
        if w.needs is Needs.NETWORK and target.peer_address is None:
            return self._case_failed(
                record, VbenchError(f"{wl.kind} needs a network peer; this run has none")
            )
        argv = w.argv(wl, target)
        timeout = min(w.timeout(wl), self.scenario.run.command_timeout_s)
        before = measure()
        try:
            stdout, stderr = executor.run(argv, timeout)
        except AgentTimeout:
            raise
        except VbenchError as exc:
            return self._case_failed(record, exc)
        after = measure()
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
        samples += [
            labels.sample(name, value, unit) for name, value, unit in cost_metrics(before, after)
        ]
        state.add_samples(samples)
        record.ended_at = utc_now()
        return record

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
