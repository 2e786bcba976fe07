"""`vbench check` on the Typer app: the options and the work are vbench/cli/check.py's.

`vbench check ...` from the shell does not come here (`vbench.cli.main` runs the check without
building the app); this entry serves `vbench --help` and callers of `app` (Typer's test runner).
"""

from __future__ import annotations

import typer

from vbench.cli import app
from vbench.cli.check import DESCRIPTION, main


@app.command(
    "check",
    help=DESCRIPTION,
    add_help_option=False,  # -h/--help go to check's own parser, like every other option
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
)
def check(ctx: typer.Context) -> None:
    raise typer.Exit(main(list(ctx.args)))
