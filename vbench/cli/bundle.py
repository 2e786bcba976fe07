"""`vbench bundle RUN_DIR`: one verifiable .tar.gz of a run; `vbench bundle --verify FILE`."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from vbench.bundle import verify_bundle, write_bundle
from vbench.cli import app

err_console = Console(stderr=True, highlight=False, soft_wrap=True)


@app.command("bundle")
def bundle(
    target: Path = typer.Argument(
        ...,
        metavar="RUN_DIR | FILE",
        help="A run directory (reports/<run-id>) to bundle, or with --verify a bundle file.",
    ),
    output: Path | None = typer.Option(
        None,
        "-o",
        "--output",
        metavar="FILE",
        help="Where to write (default: <run-id>.bundle.tar.gz beside the run).",
    ),
    verify: bool = typer.Option(
        False, "--verify", help="Check every file's sha256 and the manifest's scenario hash."
    ),
) -> None:
    """Evidence bundle: manifest, host checks, scenario, raw outputs, samples, report, SHA256SUMS.

    With --verify: exit 0 when every hash matches, 1 with one line per problem otherwise.
    """
    if verify:
        if output is not None:
            raise typer.BadParameter("--output makes no sense with --verify")
        count, problems = verify_bundle(target)
        for line in problems:
            err_console.print(line, markup=False)
        if problems:
            raise typer.Exit(1)
        typer.echo(f"{target}: OK, {count} files match SHA256SUMS, the scenario hash matches")
        return
    result = write_bundle(target, output)
    typer.echo(f"bundle: {result.path} ({result.files} files, SHA256SUMS)")
