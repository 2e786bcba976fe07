"""Shared test setup.

With VBENCH_TESTS_STRICT=1 (the nox `tests` session, hence CI and the README's test command) a test
that skips because a prerequisite is missing fails instead: a green suite then means every level ran
(umockdev testbeds, xmllint, libvirtd, real guests).  Skips that only mean "not applicable on this
kind of host" carry support.NOT_APPLICABLE and stay skips.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
from support import NOT_APPLICABLE


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    if os.environ.get("VBENCH_TESTS_STRICT") != "1" or not report.skipped:
        return
    if hasattr(report, "wasxfail"):
        return
    reason = str(report.longrepr[2]) if isinstance(report.longrepr, tuple) else str(report.longrepr)
    if NOT_APPLICABLE in reason:
        return
    report.outcome = "failed"
    report.longrepr = f"skipped under VBENCH_TESTS_STRICT=1 (a prerequisite is missing): {reason}"


# -- real guests: shared by the end-to-end tests that boot the microguest themselves -------------
E2E_URI = os.environ.get("VBENCH_E2E_URI", "qemu:///system")


@pytest.fixture(scope="module")
def microguest() -> Any:
    """The cached microguest (its default cache: qemu, user libvirt-qemu, must read it, which
    pytest's 0700 tmp directories do not allow)."""
    from vbench.errors import HostError
    from vbench.guest.microguest import build_microguest

    try:
        return build_microguest()
    except HostError as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def conn() -> Iterator[Any]:
    """A connection to the real libvirtd (VBENCH_E2E_URI, default qemu:///system)."""
    from vbench.errors import LibvirtUnavailable
    from vbench.virt.connection import open_connection

    try:
        c = open_connection(E2E_URI)
    except LibvirtUnavailable as exc:
        pytest.skip(str(exc))
    yield c
    c.close()
