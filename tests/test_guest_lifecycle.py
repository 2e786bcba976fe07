"""running_guest on libvirt's test driver: every way out leaves no guest behind."""

from __future__ import annotations

from pathlib import Path

import pytest

from vbench.errors import GuestError
from vbench.virt.connection import open_connection
from vbench.virt.guests import running_guest

DATA = Path(__file__).parent / "data"
URI = f"test://{(DATA / 'testdriver.xml').resolve()}"
XML = (DATA / "domxml" / "pv-virtio.xml").read_text()

pytestmark = pytest.mark.libvirt_test


def test_guest_is_destroyed_when_the_block_raises() -> None:
    conn = open_connection(URI)
    with pytest.raises(RuntimeError), running_guest(conn, XML) as dom:
        assert dom.isActive()
        raise RuntimeError("workload failed")
    assert conn.listAllDomains() == []


def test_refused_guest_is_a_guest_error_and_leaves_the_other_guest_alone() -> None:
    conn = open_connection(URI)
    with running_guest(conn, XML) as first:
        # the same name again: libvirt refuses, and the first guest must survive that refusal
        with pytest.raises(GuestError, match="libvirt refused"), running_guest(conn, XML):
            pass
        assert first.isActive()
    assert conn.listAllDomains() == []


class _InterruptedAfterStart:
    """The real test-driver connection, with Ctrl-C landing just after libvirt started the guest
    but before its handle reached Python (the window a SIGTERM sweep hit during boot)."""

    def __init__(self, conn: object) -> None:
        self._conn = conn

    def createXML(self, xml: str, flags: int) -> object:
        self._conn.createXML(xml, flags)  # type: ignore[attr-defined]
        raise KeyboardInterrupt

    def lookupByName(self, name: str) -> object:
        return self._conn.lookupByName(name)  # type: ignore[attr-defined]


def test_interrupt_inside_create_leaves_no_guest() -> None:
    conn = open_connection(URI)
    with pytest.raises(KeyboardInterrupt), running_guest(_InterruptedAfterStart(conn), XML):  # type: ignore[arg-type]
        pass
    assert conn.listAllDomains() == []
