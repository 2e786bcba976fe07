"""`vbench report RUN_DIR`: write report.html (self-contained) and report.pdf into the run dir;
with --check / --junit, the certification verdict of the scenario's `[[certify]]` thresholds."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from vbench.cli import app
from vbench.errors import VbenchError

err_console = Console(stderr=True, highlight=False, soft_wrap=True)


class NothingToCertify(VbenchError):
    """--check or --junit on a run whose scenario has no [[certify]] thresholds."""


@app.command("report")
def report(
    run_dir: Path = typer.Argument(
        ..., help="A run directory, e.g. reports/<run-id> (the one holding manifest.json)."
    ),
    no_pdf: bool = typer.Option(False, "--no-pdf", help="Write only report.html (no WeasyPrint)."),
    check: bool = typer.Option(
        False,
        "--check",
        help="Judge the scenario's [[certify]] thresholds: exit 0 pass, 2 fail or inconclusive, "
        "1 error.",
    ),
    junit: Path | None = typer.Option(
        None, "--junit", metavar="FILE", help="Write JUnit XML: one testcase per threshold."
    ),
) -> None:
    """Summarize a run: the certification verdict (if the scenario has thresholds), per-workload
    tables and charts comparing the modes, as HTML and PDF."""
    # Imported here: pandas, matplotlib and WeasyPrint take ~0.6 s to load, which every other
    # command (`vbench check` in particular, with its 1 s budget) would otherwise pay.
    from vbench.report import build_report
    from vbench.report.certification import junit_xml

    files = build_report(run_dir, pdf=not no_pdf)
    typer.echo(f"html: {files.html}")
    if files.pdf is not None:
        typer.echo(f"pdf:  {files.pdf}")
    if not (check or junit):
        return
    cert = files.certification
    if cert is None:
        raise NothingToCertify(
            f"{run_dir}: the run's scenario has no [[certify]] thresholds; nothing to judge "
            "(add [[certify]] entries to the scenario, see README)"
        )
    if junit is not None:
        try:
            junit.write_text(junit_xml(cert, run_dir.name), encoding="utf-8")
        except OSError as exc:
            raise VbenchError(f"--junit: cannot write {junit}: {exc.strerror}") from None
        typer.echo(f"junit: {junit}")
    for v in cert.verdicts:
        detail = f" ({v.detail})" if v.detail else ""
        err_console.print(
            f"{v.status.value.upper():<12} {v.name}: {v.observed}{detail}", markup=False
        )
    counts = ", ".join(f"{n} {s.value}" for s, n in cert.counts().items() if n)
    err_console.print(f"certification: {cert.status.value.upper()} ({counts})", markup=False)
    if check:
        raise typer.Exit(cert.exit_code)
