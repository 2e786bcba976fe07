"""The Typer app behind every command but the fast path of `vbench check` (see `vbench.cli`).

Command modules register on `app` (`from vbench.cli import app`); the root group imports a
command's module only when that command is asked for (`COMMAND_MODULES`).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

import typer
import typer.main
from typer.core import TyperGroup

from vbench import __version__
from vbench.cli import COMMAND_MODULES

if TYPE_CHECKING:  # only for mypy: typer >= 0.2x vendors click here, older typer uses click itself
    from typer._click import Command, Context

_PACKAGE = "vbench.cli"


def _load_all_commands() -> None:
    import pkgutil  # ~10 ms (importlib.util): only for a command missing from COMMAND_MODULES

    package = importlib.import_module(_PACKAGE)
    for info in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"{_PACKAGE}.{info.name}")


class _LazyGroup(TyperGroup):
    """The root command group: a subcommand's module is imported when the subcommand is asked for.

    A name missing from COMMAND_MODULES (a module added without an entry) loads every module, so
    it still works, only slower.
    """

    def list_commands(self, ctx: Context) -> list[str]:
        return list(dict.fromkeys([*COMMAND_MODULES, *super().list_commands(ctx)]))

    def get_command(self, ctx: Context, cmd_name: str) -> Command | None:
        found = super().get_command(ctx, cmd_name)
        if found is not None:
            return found
        module = COMMAND_MODULES.get(cmd_name)
        if module is None:
            _load_all_commands()
        else:
            importlib.import_module(f"{_PACKAGE}.{module}")
        found = typer.main.get_group(app).commands.get(cmd_name)
        if found is not None:
            self.add_command(found, cmd_name)
        return found


app = typer.Typer(
    name="vbench",
    cls=_LazyGroup,
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
