"""`vbench check` must start fast (≤ 1 s, benchmarks/check_speed.py): loading the CLI must not load
the report stack, which alone takes ~0.6 s.  A structural guard; the timing is the benchmark's."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("pandas", "matplotlib", "weasyprint", "jinja2")


def test_loading_the_cli_does_not_load_the_report_stack() -> None:
    probe = f"import sys, vbench.cli; print(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.split() == [], f"imported at CLI load: {done.stdout.strip()}"


# What `vbench run` and `vbench report` need and `vbench check` must not load (issue 7: the run's
# models alone cost more than the whole check).  Nor Typer (it builds a pydantic TypeAdapter per
# option) nor pydantic (more than half of the check's start): the check prints its document from
# plain data (vbench.checkdata).
NOT_FOR_CHECK = (
    "typer",
    "pydantic",
    "vbench.checkdoc",
    "vbench.runner",
    "vbench.results",
    "vbench.scenario",
    "vbench.report",
    "vbench.samplers",
    "vbench.series",
    "vbench.domxml",
    "vbench.guest.microguest",
    "vbench.guest.agent",
    "vbench.virt.guests",
    "rich.console",
    *HEAVY,
)


def test_vbench_check_json_loads_neither_the_run_nor_the_report_stack() -> None:
    probe = (
        "import sys\n"
        "from vbench.cli import main\n"
        "sys.argv = ['vbench', 'check', '--json', '-c', 'test:///default']\n"
        "try:\n"
        "    main()\n"
        "except SystemExit as exc:\n"
        "    code = exc.code\n"
        f"loaded = [m for m in {NOT_FOR_CHECK!r} if m in sys.modules]\n"
        "print(code, 'vbench.host.checks' in sys.modules, *loaded, file=sys.stderr)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120
    )
    assert done.stdout.startswith("{")  # the check really ran and printed its document
    code, ran, *loaded = done.stderr.split()
    assert code in ("0", "2") and ran == "True"
    assert loaded == [], f"`vbench check --json` loaded: {loaded}"


def test_every_command_is_listed_and_found_lazily() -> None:
    """COMMAND_MODULES must name every command of every cli module, in the module defining it."""
    probe = (
        "import importlib, json, pkgutil, typer.main, vbench.cli as cli\n"
        "registered = {}\n"
        "for info in pkgutil.iter_modules(cli.__path__):\n"
        "    before = set(typer.main.get_group(cli.app).commands)\n"
        "    importlib.import_module(f'vbench.cli.{info.name}')\n"
        "    for name in set(typer.main.get_group(cli.app).commands) - before:\n"
        "        registered[name] = info.name\n"
        "print(json.dumps([registered, cli.COMMAND_MODULES]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    registered, listed = json.loads(done.stdout)  # fresh process: nothing imported before
    assert registered == listed
    help_text = subprocess.run(
        [sys.executable, "-m", "vbench", "--help"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    for name in listed:
        assert f" {name} " in help_text, f"`vbench --help` does not list {name}"
    bad = subprocess.run(
        [sys.executable, "-m", "vbench", "no-such-command"], capture_output=True, text=True
    )
    assert bad.returncode == 2 and "No such command" in bad.stderr
