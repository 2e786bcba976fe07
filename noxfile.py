"""nox sessions: tests (everything, end-to-end guests included), lint, typecheck, demo.

Every session first makes the host ready (scripts/setup-host.sh: idempotent), since libvirt-python
needs libvirt's headers to build and the end-to-end tests need libvirtd and QEMU.
"""

from __future__ import annotations

import nox

nox.options.sessions = ["lint", "typecheck", "tests"]
nox.options.reuse_existing_virtualenvs = True

SETUP = ("bash", "scripts/setup-host.sh")
# setup-host.sh installed every prerequisite, so a test that would skip for a missing one fails.
STRICT = {"VBENCH_TESTS_STRICT": "1"}


def _install(session: nox.Session, *setup_args: str) -> None:
    session.run(*SETUP, *setup_args, external=True)
    session.install("-e", ".[dev]")


@nox.session
def tests(session: nox.Session) -> None:
    """The whole suite: pure, libvirt test driver, umockdev testbeds, and real QEMU guests (TCG)."""
    _install(session, "--test")  # with what only tests need (headless Chromium)
    session.run("pytest", *(session.posargs or ["-q"]), env=STRICT)


@nox.session
def unit(session: nox.Session) -> None:
    """The quick part: everything but the end-to-end guests."""
    _install(session)
    session.run("pytest", "-q", "-m", "not e2e", *session.posargs, env=STRICT)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff (lint + format check) and the import-linter layer contract."""
    session.install("ruff>=0.5", "import-linter>=2.0")
    session.install("-e", ".", "--no-deps")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("lint-imports")


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy --strict on vbench/."""
    _install(session)
    session.run("mypy")


@nox.session
def demo(session: nox.Session) -> None:
    """Run the default scenario and write its HTML and PDF report."""
    _install(session)
    args = session.posargs or ["scenarios/quick.toml"]
    session.run("vbench", "run", *args, "--report")
