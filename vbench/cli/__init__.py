"""The command line: the only place that catches `VbenchError` (one line on stderr, exit != 0).

Each command lives in its own module under `vbench/cli/`; this module builds the app and `main()`.
"""

from __future__ import annotations

import sys

import typer
from rich.console import Console

from vbench import __version__
from vbench.errors import VbenchError

app = typer.Typer(
    name="vbench",
    help=(
        "Validate virtualization hosts and benchmark guests across I/O virtualization modes:\n\n"
        "FV (emulated devices), PV-on-HVM (virtio), VFIO pass-through and SR-IOV VFs.\n\n"
        "Typical use: `vbench check` (can this host do each mode?), "
        "`vbench run scenarios/quick.toml` (measure), `vbench report reports/<run-id>` (compare)."
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"vbench {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """vbench: host checks, guest benchmarks and reports for FV, PV-on-HVM, VFIO and SR-IOV."""


# Register the commands (each module adds its own to `app`).
from vbench.cli import check as _check  # noqa: E402,F401
from vbench.cli import compare as _compare  # noqa: E402,F401
from vbench.cli import guest as _guest  # noqa: E402,F401
from vbench.cli import report as _report  # noqa: E402,F401
from vbench.cli import run as _run  # noqa: E402,F401


def main() -> None:
    try:
        app()
    except VbenchError as exc:
        err_console.print(f"vbench: error: {exc}", markup=False)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        err_console.print("vbench: interrupted", markup=False)
        sys.exit(130)
