"""The check document as plain data (what `vbench check --json` prints without pydantic) is, byte
for byte, the typed `CheckDocument`'s JSON: on hand-made reports, every testbed and this host."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from support import ALL_TESTBEDS
from test_check_testbeds import _check
from test_checkdoc import report
from test_readiness import GOOD_CHECKS, LAB

from vbench.checkdata import HOST_DEFAULTS, CheckOutcome, plain
from vbench.checkdoc import CheckDocument, CheckHost
from vbench.model import ModeId
from vbench.readiness import CheckReport, CheckResult, Status


def pydantic_text(text: str) -> str:
    """The same document read and written back by the typed record."""
    return CheckDocument.model_validate(json.loads(text)).model_dump_json(indent=2)


def test_host_record_fields_and_defaults_are_checkhost_s() -> None:
    fields = CheckHost.model_fields
    assert list(HOST_DEFAULTS) == list(fields)
    assert {k: fields[k].get_default(call_default_factory=True) for k in fields} == HOST_DEFAULTS


@pytest.mark.parametrize("strict", [False, True])
@pytest.mark.parametrize("requested", [(ModeId.FV, ModeId.PV), (ModeId.VFIO, ModeId.SRIOV)])
def test_text_is_pydantic_s(strict: bool, requested: tuple[ModeId, ...]) -> None:
    outcome = CheckOutcome.of(report(), strict, requested)
    doc = CheckDocument.build(report(), strict, requested)
    assert outcome.json() == doc.model_dump_json(indent=2)
    assert (outcome.ready, outcome.exit_code) == (doc.ready, doc.exit_code)


def test_text_is_pydantic_s_with_odd_values() -> None:
    """Non-ASCII and control characters, floats, nested data, partial host facts."""
    odd = CheckResult(
        "odd.check",
        "Ünïcödé → title",
        Status.WARN,
        'quote " backslash \\ tab \t newline \n bell \x07 del \x7f',
        remedy="µs ≤ 5 %",
        degrades=(ModeId.PV,),
        data={"ratio": 0.25, "big": 2**60, "third": 1 / 3, "nested": {"a": [1, None, True]}},
    )
    rep = CheckReport(
        host={"hostname": "hôte", "duration_s": 0.123, "os_release": {"NAME": "Débian"}},
        checks=(*GOOD_CHECKS, odd),
        inventory=LAB,
    )
    outcome = CheckOutcome.of(rep, True, (ModeId.PV,))
    assert outcome.json() == CheckDocument.build(rep, True, (ModeId.PV,)).model_dump_json(indent=2)
    assert outcome.data()["checks"][-1]["data"]["nested"] == {"a": [1, None, True]}


def test_plain_values() -> None:
    assert plain(Status.PASS) == "PASS"
    assert plain((ModeId.FV, (1, 2))) == ["fv", [1, 2]]
    assert plain(LAB)["pci"][0] == {
        k: list(v) if isinstance(v, tuple) else v for k, v in vars(LAB.pci[0]).items()
    }


@pytest.mark.parametrize("name", ALL_TESTBEDS)
def test_command_output_is_pydantic_s_on_every_testbed(name: str) -> None:
    rc, out, err = _check(name, ())
    assert rc in (0, 2), err
    assert out == pydantic_text(out) + "\n"


def test_command_output_is_pydantic_s_on_this_host() -> None:
    p = subprocess.run(
        [sys.executable, "-c", "from vbench.cli import main; main()", "check", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert p.returncode in (0, 1, 2) and "Traceback" not in p.stderr, p.stderr
    assert p.stdout == pydantic_text(p.stdout) + "\n"
