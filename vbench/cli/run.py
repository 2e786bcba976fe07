"""`vbench run SCENARIO` and `vbench cleanup`."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from vbench.cli import app
from vbench.errors import VbenchError
from vbench.host.paths import HostPaths
from vbench.host.testbed import devices_file, in_testbed, reexec_under_umockdev
from vbench.runner import Runner
from vbench.scenario import load_scenario
from vbench.virt.connection import connection
from vbench.virt.guests import destroy_guest, find_leftovers, live_run_ids, stale_scratch_dirs

console = Console(stderr=True, highlight=False)

EXIT_CASES_FAILED = 3


class UsageError(VbenchError):
    """A bad combination of options (exit 1)."""


URI_HELP = "libvirt URI (like virsh -c); default: $LIBVIRT_DEFAULT_URI, else qemu:///system."


class _TerminalEvents:
    """Progress on the terminal: which case runs now, how many are done, and the ETA.

    On a terminal a live bar; otherwise (CI logs, `| tee`) one line per step, since a live bar
    would only show up once, at the end.  Either way the rich task keeps the counts and the ETA.
    """

    def __init__(self) -> None:
        self.live = console.is_terminal
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=console,
            transient=False,
        )
        self.task: TaskID | None = None

    def phase(self, text: str) -> None:
        console.print(f"[dim]·[/dim] {escape(text)}", markup=True)

    def begin(self, total_cases: int) -> None:
        if self.live:
            self.progress.start()
        self.task = self.progress.add_task("starting", total=total_cases)

    def case(self, label: str) -> None:
        if self.task is None:
            return
        self.progress.update(self.task, description=label)
        if not self.live:
            task = self.progress.tasks[self.task]
            eta = "" if task.time_remaining is None else f", ETA {task.time_remaining:.0f} s"
            line = f"[{task.completed:.0f}/{task.total:.0f} done, {task.elapsed or 0:.0f} s{eta}]"
            console.print(f"{line} {label}", markup=False, soft_wrap=True)

    def advance(self, n: int = 1) -> None:
        if self.task is not None:
            self.progress.advance(self.task, n)

    def warn(self, text: str) -> None:
        console.print(f"[yellow]warning:[/yellow] {escape(text)}", markup=True, soft_wrap=True)

    def more(self, cases: int) -> None:
        if self.task is not None:
            total = self.progress.tasks[self.task].total or 0
            self.progress.update(self.task, total=total + cases)

    def stop(self) -> None:
        if self.live:
            self.progress.stop()


@app.command("run")
def run_command(
    scenario: Path = typer.Argument(..., help="Scenario file (TOML), e.g. scenarios/quick.toml."),
    output: Path = typer.Option(
        Path("reports"), "--output", "-o", help="Directory that receives <run-id>/."
    ),
    connect: str | None = typer.Option(None, "--connect", "-c", help=URI_HELP),
    report: bool = typer.Option(
        True, "--report/--no-report", help="Write report.html and report.pdf when the run ends."
    ),
    dry_run: bool = typer.Option(
        False,
        "--dry-run",
        "-n",
        help="Plan, resolve devices and run the safety checks; write each trial's domain XML and "
        "the host changes it would make to OUTPUT/<run-id>-dry-run/. Starts and changes nothing.",
    ),
    prepare_host: bool = typer.Option(
        False,
        "--prepare-host",
        help="Let modes change the host (VF count, NVMe secondary controllers, driver binding); "
        "every change is recorded in the run directory first and undone at the end. "
        "Same as \\[host] prepare = true.",
    ),
    require_all_modes: bool = typer.Option(
        False, "--require-all-modes", help="A mode the host cannot run is an error, not a skip."
    ),
    testbed: Path | None = typer.Option(
        None, "--testbed", hidden=True, help="Plan on a recorded testbed (with --dry-run)."
    ),
) -> None:
    """Run a scenario: boot a guest per mode and repetition, run its workloads, keep every output.

    Writes OUTPUT/<run-id>/ with manifest.json, samples.csv and raw/ (fio JSON, domain XML,
    console log per case).  Exit codes: 0 all cases ran, 1 error before or during the run,
    3 the run finished but some cases failed (see the manifest), 130 interrupted.
    """
    loaded = load_scenario(scenario)  # a bad file stops here: nothing started
    paths = HostPaths()
    if testbed is not None:
        if not dry_run:
            raise UsageError("--testbed plans on a recorded host: it needs --dry-run")
        testbed = testbed.resolve()
        devices_file(testbed)  # one line when it is not a testbed
        if not in_testbed():
            argv = ["run", str(scenario.resolve()), "--dry-run", "--testbed", str(testbed)]
            argv += ["--output", str(output.resolve())]
            argv += [f for f, on in (("--prepare-host", prepare_host),) if on]
            argv += [f for f, on in (("--require-all-modes", require_all_modes),) if on]
            argv += ["--connect", connect] if connect else []
            reexec_under_umockdev(
                testbed, [sys.executable, "-c", "from vbench.cli import main; main()", *argv]
            )
        paths = HostPaths.for_testbed(testbed)
    events = _TerminalEvents()
    try:
        result = Runner(
            loaded,
            output=output,
            uri=connect,
            events=events,
            prepare_host=prepare_host,
            dry_run=dry_run,
            require_all_modes=require_all_modes,
            paths=paths,
        ).run()
    finally:
        events.stop()
    if dry_run:
        console.print(f"dry run: domain XML and host changes per trial -> {result.path}")
        return
    console.print(
        f"run {result.status}: {result.ok_cases} case(s) ok, {result.failed_cases} failed -> "
        f"{result.path}"
    )
    if result.timing is not None:
        t = result.timing
        console.print(
            f"time: {t.wall_s:.0f} s, of which {t.workload_s:.0f} s in workloads; overhead "
            f"(boot, teardown, disk fill, servers) {100 * t.overhead_ratio:.0f} %"
        )
    if report:
        from vbench.report import build_report

        files = build_report(result.path)
        console.print(f"report: {files.html}" + (f" and {files.pdf}" if files.pdf else ""))
    if result.failed_cases:
        raise typer.Exit(EXIT_CASES_FAILED)


@app.command("cleanup")
def cleanup_command(
    connect: str | None = typer.Option(None, "--connect", "-c", help=URI_HELP),
    dry_run: bool = typer.Option(False, "--dry-run", "-n", help="Only list what would go."),
    output: Path = typer.Option(
        Path("reports"), "--output", "-o", help="Directory of the runs (their host-change records)."
    ),
) -> None:
    """Destroy guests, network namespaces, taps and scratch files left by earlier, killed runs,
    and undo their host changes.

    Only guests whose name starts with `vbench-` AND that carry vbench's run metadata are touched,
    and never those of a run that is still going.  Host changes recorded in
    `<output>/<run-id>/host-changes.json` and still in force (the run's network namespace with
    the peer servers in it, its taps, VF counts, NVMe secondary controllers, driver bindings) are
    undone, newest first, after the guests that may use them are gone; never those of a live run
    (it holds the journal's lock; its namespace's owner process runs).  Then network namespaces
    (`vbench-<run-id>`) and taps (`vbt...`) of runs whose journal is not under --output, and
    scratch directories, are removed when no live run holds their run's lock.
    """
    from vbench.host.changes import leftover_journals
    from vbench.host.netns import find_leftovers as find_net_leftovers
    from vbench.host.netns import remove_leftover as remove_net_leftover

    with connection(connect) as conn:
        live = live_run_ids()
        leftovers = [
            (d, i) for d, i in find_leftovers(conn) if i.run_id not in live and not i.owner_alive()
        ]
        for dom, info in leftovers:
            console.print(
                f"{'would destroy' if dry_run else 'destroying'} {info.name} (run {info.run_id})"
            )
            if not dry_run:
                destroy_guest(dom)
    # After the guests (their QEMU no longer holds the taps or the devices): the runs' journals
    journals, problems = leftover_journals(output)
    for journal in journals:
        for change in reversed(journal.pending()):
            console.print(f"{'would undo' if dry_run else 'undoing'}: {change.describe}")
        if not dry_run:
            problems += journal.restore()
    # What a journal out of sight (another --output) left, with the locks read afresh: a run
    # that started meanwhile holds its lock before it creates its namespace.
    journalled = {
        c.target.split()[0] for j in journals for c in j.pending() if c.kind in ("netns", "tap")
    }  # listed above (a dry run): once is enough
    net_leftovers = [n for n in find_net_leftovers(live_run_ids()) if n.name not in journalled]
    for left in net_leftovers:
        console.print(f"{'would remove' if dry_run else 'removing'} {left.describe()}")
        if not dry_run:
            remove_net_leftover(left)
    stale = stale_scratch_dirs()
    for d in stale:
        console.print(f"{'would remove' if dry_run else 'removing'} {d}")
        if not dry_run:
            shutil.rmtree(d, ignore_errors=True)
    for line in problems:
        console.print(f"vbench: error: {line}", markup=False)
    if not leftovers and not net_leftovers and not stale and not journals and not problems:
        console.print("nothing to clean up")
    if problems:
        raise typer.Exit(1)
