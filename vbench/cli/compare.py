"""`vbench compare RUN_A RUN_B [...]`: the runs side by side, as compare.html and compare.pdf."""

from __future__ import annotations

from pathlib import Path

import typer

from vbench.cli import app


@app.command("compare")
def compare(
    run_dirs: list[Path] = typer.Argument(
        ...,
        help="Two or more run directories (reports/<run-id>); each is compared with the first.",
    ),
    output: Path | None = typer.Option(
        None,
        "--output",
        "-o",
        help="Directory for compare.html and compare.pdf; default compare-<A>-vs-<B> beside RUN_A.",
    ),
    no_pdf: bool = typer.Option(False, "--no-pdf", help="Write only compare.html (no WeasyPrint)."),
) -> None:
    """Compare runs case by case: ratio of medians with its CI and Holm-corrected significance."""
    # Imported here, like `vbench report`: pandas, SciPy and WeasyPrint are slow to load.
    from vbench.report.compare import build_compare, default_output

    files = build_compare(run_dirs, output or default_output(run_dirs), pdf=not no_pdf)
    typer.echo(f"html: {files.html}")
    if files.pdf is not None:
        typer.echo(f"pdf:  {files.pdf}")
    skipped = len(files.comparison.not_compared)
    if skipped:
        typer.echo(f"not compared: {skipped} (listed in the page with the reason)")
