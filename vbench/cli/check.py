"""`vbench check`: can this host do FV, PV-on-HVM, VFIO and SR-IOV, and if not, what to change.

Typer-free on purpose: `vbench.cli.main` runs `main(argv)` here without building the Typer app
(Typer and its pydantic option validators cost about as much as the check itself); check_app.py
puts the same command on the app for `vbench --help` and Typer's test runner.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from vbench.checkdata import CheckOutcome
from vbench.errors import VbenchError
from vbench.host.checks import run_checks
from vbench.host.paths import HostPaths
from vbench.host.testbed import devices_file, in_testbed, reexec_under_umockdev
from vbench.inventory import Inventory
from vbench.model import ModeId
from vbench.readiness import (
    DEFAULT_REQUESTED,
    ModeVerdict,
    Status,
    assessment_failures,
    parse_modes,
)

if TYPE_CHECKING:  # rich loads only to draw the tables: `check --json` does without (~20 ms)
    from rich.console import Console
    from rich.table import Table

STATUS_STYLE = {
    Status.PASS: "bold green",
    Status.WARN: "bold yellow",
    Status.FAIL: "bold red",
    Status.SKIP: "dim",
}


class UsageError(VbenchError):
    """A bad option value (exit 1, like every other error; 2 means 'a requested mode not ready')."""


def _checks_table(outcome: CheckOutcome) -> Table:
    from rich.table import Table
    from rich.text import Text

    table = Table(title="Host checks", title_justify="left", expand=False, show_lines=False)
    table.add_column("Status", no_wrap=True)
    table.add_column("Check", max_width=26, overflow="fold")
    table.add_column("Observed (→ remedy)", overflow="fold", ratio=1)
    for c in outcome.report.checks:
        cell = Text(c.observed)
        if c.remedy and c.status is not Status.PASS:
            cell.append(f"\n→ {c.remedy}", style="cyan")
        table.add_row(
            Text(c.status.value, style=STATUS_STYLE[c.status]),
            Text(f"{c.id}\n", style="bold").append(c.title, style="dim"),
            cell,
        )
    return table


def _devices_table(inv: Inventory) -> Table:
    from rich.table import Table
    from rich.text import Text

    table = Table(title="PCI devices", title_justify="left")
    for col in ("Address", "Device", "Driver", "IOMMU group", "SR-IOV", "Host use"):
        table.add_column(col, overflow="fold")
    for d in inv.pci:
        if d.sriov_totalvfs:
            sriov = f"PF {d.sriov_numvfs or 0}/{d.sriov_totalvfs} VFs"
        elif d.physfn:
            sriov = f"VF of {d.physfn}"
        else:
            sriov = ""
        uses = inv.in_use_reasons(d.address)
        name = (
            d.device_name or d.class_name or f"[{d.vendor_id}:{d.device_id}] class {d.class_code}"
        )
        table.add_row(
            d.address,
            name,
            d.driver or "-",
            "-" if d.iommu_group is None else str(d.iommu_group),
            sriov,
            Text("; ".join(uses), style="red") if uses else Text(""),
        )
    return table


def _verdicts_table(verdicts: tuple[ModeVerdict, ...], requested: tuple[ModeId, ...]) -> Table:
    from rich.table import Table
    from rich.text import Text

    table = Table(title="Readiness per mode (* = requested)", title_justify="left")
    table.add_column("Mode", no_wrap=True)
    table.add_column("Verdict", no_wrap=True)
    table.add_column("Details", overflow="fold")
    for v in verdicts:
        mark = "*" if v.mode in requested else " "
        verdict = (
            Text("READY", style="bold green") if v.ready else Text("NOT READY", style="bold red")
        )
        details = Text(v.summary)
        for o in v.offered:
            details.append(f"\n  + {o.address} {o.description} (group {o.iommu_group}): {o.note}")
        for e in v.excluded:
            details.append(f"\n  - {e.address}: {e.reason}", style="dim")
        for r in v.remedies:
            details.append(f"\n→ {r}", style="cyan")
        table.add_row(f"{mark} {v.mode.display_name}", verdict, details)
    return table


def render(outcome: CheckOutcome, console: Console) -> None:
    h = outcome.report.host
    inventory = outcome.report.inventory
    where = f"testbed {h['testbed']}" if h.get("testbed") else str(h.get("hostname"))
    osr = outcome.report.os_release.get("PRETTY_NAME", "unknown OS")
    console.print(
        f"[bold]vbench check[/bold] on {where}: {osr}, kernel {h.get('kernel_release') or '?'}, "
        f"libvirt {h.get('libvirt_version') or '-'} at {h.get('libvirt_uri')}"
        + (" [yellow](strict)[/yellow]" if outcome.strict else "")
    )
    console.print(_checks_table(outcome))
    if inventory.pci:
        console.print(_devices_table(inventory))
    for note in inventory.notes:
        console.print(f"[dim]note: {note}[/dim]")
    console.print(_verdicts_table(outcome.verdicts, outcome.requested))
    not_ready = [
        v.mode.value for v in outcome.verdicts if v.mode in outcome.requested and not v.ready
    ]
    blocking = assessment_failures(outcome.report.checks)
    if blocking:
        why = "; ".join(f"{c.id} FAILED (see above) → {c.remedy}" for c in blocking)
        console.print(f"[bold red]Cannot assess this host[/bold red] (exit 1): {why}")
    elif not_ready:
        console.print(f"[bold red]Not ready:[/bold red] {', '.join(not_ready)} (exit 2)")
    else:
        names = ", ".join(m.value for m in outcome.requested)
        console.print(f"[bold green]Ready:[/bold green] {names}")


def _reexec_argv(
    testbed: Path,
    json_out: bool,
    junit: Path | None,
    modes: list[str],
    strict: bool,
    probe: bool,
    connect: str | None,
) -> list[str]:
    args = ["check", "--testbed", str(testbed)]
    if json_out:
        args.append("--json")
    if junit is not None:
        args += ["--junit", str(junit.resolve())]
    for m in modes:
        args += ["--mode", m]
    if strict:
        args.append("--strict")
    if probe:
        args.append("--probe")
    if connect:
        args += ["--connect", connect]
    return [sys.executable, "-c", "from vbench.cli import main; main()", *args]


DESCRIPTION = """\
Can this host do FV, PV-on-HVM, VFIO and SR-IOV?  And if not, what exactly to change.

Checks everything `virt-host-validate qemu` does and more (KVM backend, IOMMU on the kernel
command line, interrupt remapping, vfio, hugepages, NUMA, libvirt domain capabilities, tools),
lists the PCI devices (IOMMU group, driver, SR-IOV, host use), then a verdict per mode naming
the blocking checks and their fixes.  It only reads: no module loading, no sysfs writes.

Exit codes: 0 every requested mode is ready; 2 a requested mode is not ready; 1 an error: the
host could not be assessed (libvirtd unreachable: a FAIL line with the fix, the other checks
still shown), a bad option, an unreadable testbed.  Requested modes: --mode (repeatable),
default fv and pv.
"""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # one line and exit 1 (a bad option), never 2: 2 means "a requested mode is not ready"
        raise UsageError(f"{message} (see `vbench check --help`)")


def parser() -> argparse.ArgumentParser:
    """The options of `vbench check` (the one definition: `main` and the Typer entry use it)."""
    p = _Parser(
        prog="vbench check",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    p.add_argument(
        "--json",
        dest="json_out",
        action="store_true",
        help="Print one versioned JSON document (checks, devices, verdicts).",
    )
    p.add_argument(
        "--junit", type=Path, metavar="FILE", help="Also write JUnit XML: one testcase per check."
    )
    p.add_argument(
        "--mode",
        dest="modes",
        action="append",
        default=[],
        metavar="fv|pv|vfio|sriov",
        help="A mode that must be ready (repeatable). Default: fv and pv. "
        "All four modes are always evaluated and shown.",
    )
    p.add_argument("--strict", action="store_true", help="Count WARN as not ready.")
    p.add_argument(
        "--probe",
        action="store_true",
        help="Boot a probe guest to see whether KVM really works (seconds).",
    )
    p.add_argument(
        "-c",
        "--connect",
        metavar="URI",
        help="libvirt URI (default: $LIBVIRT_DEFAULT_URI or qemu:///system).",
    )
    # a recorded testbed directory instead of this host (tests, demos)
    p.add_argument("--testbed", type=Path, help=argparse.SUPPRESS)
    return p


def main(argv: list[str]) -> int:
    """Run `vbench check` with its arguments (after the word `check`); returns the exit code."""
    args = parser().parse_args(argv)
    json_out: bool = args.json_out
    junit: Path | None = args.junit
    modes: list[str] = args.modes
    strict: bool = args.strict
    probe: bool = args.probe
    connect: str | None = args.connect
    testbed: Path | None = args.testbed
    try:
        requested = parse_modes(modes) if modes else DEFAULT_REQUESTED
    except ValueError as exc:
        raise UsageError(f"--mode: {exc}") from None
    paths = HostPaths()
    if testbed is not None:
        testbed = testbed.resolve()
        devices_file(testbed)  # HostError (exit 1) when it is not a testbed
        if not in_testbed():
            reexec_under_umockdev(
                testbed, _reexec_argv(testbed, json_out, junit, modes, strict, probe, connect)
            )
        paths = HostPaths.for_testbed(testbed)
    outcome = CheckOutcome.of(run_checks(paths, connect, probe), strict, requested)
    if junit is not None:
        from vbench.checkdoc import CheckDocument  # pydantic: only for the JUnit report

        try:
            junit.write_text(CheckDocument.model_validate(outcome.data()).junit_xml())
        except OSError as exc:
            raise UsageError(f"--junit: cannot write {junit}: {exc.strerror}") from None
    if json_out:
        sys.stdout.write(outcome.json() + "\n")
    else:
        from rich.console import Console

        render(outcome, Console(highlight=False))
    return outcome.exit_code
