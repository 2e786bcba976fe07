"""nox sessions: tests (everything, end-to-end guests included), lint, typecheck, demo, fleet.

Every session first makes the host ready (scripts/setup-host.sh: idempotent), since libvirt-python
needs libvirt's headers to build and the end-to-end tests need libvirtd and QEMU.
"""

from __future__ import annotations

from pathlib import Path

import nox

nox.options.sessions = ["lint", "typecheck", "tests"]
nox.options.reuse_existing_virtualenvs = True

SETUP = ("bash", "scripts/setup-host.sh")
# the test sessions also install what only the tests use (openssh-server for the fleet test)
SETUP_TESTS = (*SETUP, "--test")
# setup-host.sh installed every prerequisite, so a test that would skip for a missing one fails.
STRICT = {"VBENCH_TESTS_STRICT": "1"}


def _install(session: nox.Session, *, tests: bool = False) -> None:
    session.run(*(SETUP_TESTS if tests else SETUP), external=True)
    session.install("-e", ".[dev]")


@nox.session
def tests(session: nox.Session) -> None:
    """The whole suite: pure, libvirt test driver, umockdev testbeds, and real QEMU guests (TCG);
    the fleet test (Ansible over loopback ssh, ~10 min here) runs in its own session `fleet`."""
    _install(session, tests=True)
    session.run("pytest", *(session.posargs or ["-q", "-m", "not fleet"]), env=STRICT)


@nox.session
def unit(session: nox.Session) -> None:
    """The quick part: everything but the end-to-end guests."""
    _install(session, tests=True)
    session.run("pytest", "-q", "-m", "not e2e", *session.posargs, env=STRICT)


@nox.session
def fleet(session: nox.Session) -> None:
    """The Ansible playbooks end to end: install, check and run on three loopback ssh "hosts"
    (an sshd on 127.0.0.2-4 started by the test), then `vbench fleet report`."""
    _install(session, tests=True)
    session.run("pytest", "-q", "-m", "fleet", *session.posargs, env=STRICT)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff (lint + format check), the import-linter layer contract, and the Ansible collection
    (`ansible-playbook --syntax-check` of every playbook, ansible-lint)."""
    session.install("ruff>=0.5", "import-linter>=2.0", "ansible-core>=2.15", "ansible-lint>=24")
    session.install("-e", ".", "--no-deps")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("lint-imports")
    for playbook in sorted(Path("ansible/playbooks").glob("*.yml")):
        session.run("ansible-playbook", "--syntax-check", "-i", "localhost,", str(playbook))
    with session.chdir("ansible"):  # its .ansible-lint
        session.run("ansible-lint")


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
