"""The host-check document record: round trip, v1 upgrade, refusal, JUnit XML."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from test_readiness import GOOD_CHECKS, LAB, SRIOV, VFIO, fail

from vbench.checkdoc import CHECK_FORMAT_VERSION, CheckDocument, load_check_document
from vbench.errors import RecordError
from vbench.model import ModeId
from vbench.readiness import DEVICES_SRIOV, CheckReport, CheckResult, Status, mode_verdicts

FV, PV = ModeId.FV, ModeId.PV
# A document written by `vbench check --json` of vbench 0.1 (format 1) on the lab testbed.
V1_DOC = Path(__file__).parent / "data" / "records" / "check-v1.json"


def report() -> CheckReport:
    return CheckReport(
        host={"hostname": "lab", "os_release": {"ID": "opensuse-leap", "ID_LIKE": "suse"}},
        checks=(
            *GOOD_CHECKS,
            CheckResult("kvm.probe", "probe", Status.SKIP, "not run"),
            fail("net.tun", gates=(FV, PV)),
        ),
        inventory=LAB,
    )


def test_json_document_round_trip() -> None:
    doc = CheckDocument.build(report(), strict=False, requested=(VFIO, SRIOV))
    back = json.loads(doc.model_dump_json())
    assert back["format_version"] == CHECK_FORMAT_VERSION == 2
    assert back["kind"] == "vbench.check"
    assert back["requested_modes"] == ["vfio", "sriov"]
    assert back["ready"] is True and back["exit_code"] == 0
    assert back["counts"] == {"PASS": 4, "WARN": 1, "FAIL": 1, "SKIP": 1}
    modes = {v["mode"]: v for v in back["verdicts"]}
    assert modes["fv"]["ready"] is False and modes["fv"]["blockers"] == ["net.tun"]
    assert modes["fv"]["requested"] is False
    # remedies are structured: the check ids they fix, and the fix
    assert modes["fv"]["remedies"] == [{"checks": ["net.tun"], "text": "fix net.tun"}]
    assert modes["sriov"]["offered"][0]["address"] == "0000:00:04.1"

    again = load_check_document(back, "doc")
    assert again == doc
    assert again.report().checks == report().checks
    assert again.inventory == LAB
    assert again.verdict(FV) is not None and again.verdict(FV).ready is False  # type: ignore[union-attr]


def test_remedies_of_device_pseudo_checks_name_them() -> None:
    doc = CheckDocument.build(
        CheckReport(host={}, checks=tuple(GOOD_CHECKS), inventory=type(LAB)())
    )
    sriov = doc.verdict(SRIOV)
    assert sriov is not None and sriov.blockers == (DEVICES_SRIOV,)
    assert sriov.remedies[0].checks == (DEVICES_SRIOV,)
    assert "no SR-IOV capable device" in sriov.remedies[0].text


def test_v1_document_is_upgraded_with_structured_remedies() -> None:
    data = json.loads(V1_DOC.read_text())
    assert data["format_version"] == 1
    doc = load_check_document(data, str(V1_DOC))
    assert doc.format_version == 2
    assert [c.id for c in doc.checks] == [c["id"] for c in data["checks"]]
    assert doc.host.hostname == data["host"]["hostname"]
    assert doc.requested_modes == tuple(ModeId(m) for m in data["requested_modes"])
    for old, new in zip(data["verdicts"], doc.verdicts, strict=True):
        assert (old["mode"], old["ready"], old["blockers"]) == (
            new.mode.value,
            new.ready,
            list(new.blockers),
        )
        # the v1 strings are exactly the v2 remedies written out
        assert old["remedies"] == [str(r) for r in new.remedies]
    assert any(v.remedies for v in doc.verdicts), "the lab testbed has blocked modes"
    # the upgrade recomputes; it must agree with the rules applied to the same checks
    core = mode_verdicts(doc.report().checks, doc.inventory, doc.strict)
    assert [v.remedies for v in core] == [v.remedies for v in doc.verdicts]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"format_version": 99}, "format_version 99 is not one this vbench reads"),
        ({"format_version": None}, "format_version None"),
        ({"checks": [{"id": "x"}]}, "checks.0.title: Field required"),
        ({"host": {"hostname": "h", "surprise": 1}}, "host.surprise: Extra inputs"),
    ],
)
def test_bad_documents_are_one_line_errors(change: dict[str, object], message: str) -> None:
    data = json.loads(CheckDocument.build(report()).model_dump_json())
    data.update(change)
    with pytest.raises(RecordError) as err:
        load_check_document(data, "x.json")
    assert str(err.value).startswith("x.json: ") and message in str(err.value)
    assert "\n" not in str(err.value)
    with pytest.raises(RecordError, match="not a vbench check document"):
        load_check_document([1, 2], "x.json")


def test_junit_shape() -> None:
    for strict in (False, True):
        doc = CheckDocument.build(report(), strict=strict)
        root = ET.fromstring(doc.junit_xml())
        suite = root.find("testsuite")
        assert suite is not None
        cases = suite.findall("testcase")
        assert len(cases) == len(report().checks)
        assert suite.get("tests") == str(len(cases))
        by = {c.get("name", "").split(":")[0]: c for c in cases}
        tun = by["net.tun"].find("failure")
        assert tun is not None and tun.get("type") == "fail" and "fix net.tun" in (tun.text or "")
        assert by["kvm.probe"].find("skipped") is not None
        hw = by["cpu.hwvirt"]
        if strict:
            failure = hw.find("failure")
            assert failure is not None and failure.get("type") == "warning"
            assert suite.get("failures") == "2"
        else:
            assert hw.find("failure") is None
            assert "WARN" in (hw.findtext("system-out") or "")
            assert suite.get("failures") == "1"
        assert by["libvirt.reachable"].find("failure") is None
        props = {p.get("name"): p.get("value") for p in suite.iter("property")}
        assert props["format_version"] == "2"
        assert props["mode.fv.ready"] == "false"
        assert props["mode.vfio.ready"] == ("false" if strict else "true")
