"""The command line: the only place that catches `VbenchError` (one line on stderr, exit != 0).

Each command lives in its own module under `vbench/cli/`, registered on the Typer `app`
(vbench/cli/_app.py).  A command's module is imported only when that command runs
(`COMMAND_MODULES`), and `vbench check` does not even build the Typer app: `main()` hands it
straight to its own argparse parser (vbench/cli/check.py), because Typer (which builds a pydantic
validator per option) and the run's models cost more than the check itself
(benchmarks/check_speed.py; goal: median <= 250 ms).  This module imports neither Typer nor rich:
`app` is loaded on first use.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from vbench.errors import VbenchError

if TYPE_CHECKING:
    from vbench.cli._app import app as app

# command name -> the module under vbench/cli/ that registers it on `app`
COMMAND_MODULES: dict[str, str] = {
    "check": "check_app",
    "run": "run",
    "cleanup": "run",
    "report": "report",
    "guest": "guest",
    "bundle": "bundle",
    "compare": "compare",
    "fleet": "fleet",
}


def __getattr__(name: str) -> object:
    """`vbench.cli.app`, built on first use (`from vbench.cli import app` in command modules)."""
    if name == "app":
        from vbench.cli._app import app

        return app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _print_error(text: str) -> None:
    from rich.console import Console  # only on the way out: `vbench check` does without it

    Console(stderr=True, highlight=False, soft_wrap=True).print(text, markup=False)


def main() -> None:
    argv = sys.argv[1:]
    try:
        if argv[:1] == ["check"]:  # the fast path: no Typer app (see the module's docstring)
            from vbench.cli.check import main as check_main

            sys.exit(check_main(argv[1:]))
        from vbench.cli._app import app

        app()
    except VbenchError as exc:
        _print_error(f"vbench: error: {exc}")
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        _print_error("vbench: interrupted")
        sys.exit(130)
