"""`vbench report RUN_DIR`: write report.html (self-contained) and report.pdf into the run dir."""

from __future__ import annotations

from pathlib import Path

import typer

from vbench.cli import app


@app.command("report")
def report(
    run_dir: Path = typer.Argument(
        ..., help="A run directory, e.g. reports/<run-id> (the one holding manifest.json)."
    ),
    no_pdf: bool = typer.Option(False, "--no-pdf", help="Write only report.html (no WeasyPrint)."),
) -> None:
    """Summarize a run: per-workload tables and charts comparing the modes, as HTML and PDF."""
    # Imported here: pandas, matplotlib and WeasyPrint take ~0.6 s to load, which every other
    # command (`vbench check` in particular, with its 1 s budget) would otherwise pay.
    from vbench.report import build_report

    files = build_report(run_dir, pdf=not no_pdf)
    typer.echo(f"html: {files.html}")
    if files.pdf is not None:
        typer.echo(f"pdf:  {files.pdf}")
