"""`vbench fleet report FLEET_DIR`: every host of a fleet (ansible/ playbooks' results) in one
HTML + PDF, and JUnit with one testsuite per host."""

from __future__ import annotations

from pathlib import Path

import typer

from vbench.cli import app

fleet_app = typer.Typer(
    name="fleet",
    help="Many hosts: reports over the results the Ansible playbooks (ansible/) fetched.",
    no_args_is_help=True,
)
app.add_typer(fleet_app)


@fleet_app.command("report")
def report(
    fleet_dir: Path = typer.Argument(
        ...,
        metavar="FLEET_DIR",
        help="fleet/ (every fleet run: each host's latest check and run) or fleet/<fleet-run-id>/.",
    ),
    output: Path | None = typer.Option(
        None,
        "--output",
        "-o",
        metavar="DIR",
        help="Directory for fleet-report.html and .pdf (default: FLEET_DIR/fleet-report).",
    ),
    junit: Path | None = typer.Option(
        None, "--junit", metavar="FILE", help="Write JUnit XML: one testsuite per host."
    ),
    no_pdf: bool = typer.Option(False, "--no-pdf", help="Write only the HTML (no WeasyPrint)."),
    check: bool = typer.Option(
        False,
        "--check",
        help="Exit 0 when every host passed (ready, run ok, thresholds met), 2 when one did not, "
        "1 on an error.",
    ),
) -> None:
    """Readiness matrix (hosts x modes), certification verdict per host, and per workload the
    modes x hosts figures with CIs (`vbench compare` of the hosts' runs)."""
    # Imported here, like `vbench report`: pandas, SciPy and WeasyPrint are slow to load.
    from vbench.report.fleet import build_fleet_report, default_output

    files = build_fleet_report(
        fleet_dir, output or default_output(fleet_dir), pdf=not no_pdf, junit=junit
    )
    typer.echo(f"html: {files.html}")
    if files.pdf is not None:
        typer.echo(f"pdf:  {files.pdf}")
    if files.junit is not None:
        typer.echo(f"junit: {files.junit}")
    typer.echo(
        f"hosts: {files.hosts}, needing attention: {', '.join(files.failed) or 'none'}", err=True
    )
    if check:
        raise typer.Exit(files.exit_code)
