"""`vbench check` on the machine running the tests, compared with `virt-host-validate qemu`.

On every check both tools make, the verdicts agree: PASS where it says PASS, not-PASS where it
does not (and the same severity, except where noted).  Differences by design:

* virt-host-validate skips the /dev/kvm checks when the CPU shows no vmx/svm; vbench always makes
  them and adds `kvm.module`, which names the module behind /dev/kvm.  On the development machines
  /dev/kvm exists and is read/write (kvm.device/kvm.access PASS) but is backed by kvm_pvm and
  ordinary guests hang: kvm.module says so (WARN), and only the functional probe (--probe) decides.
* "device assignment IOMMU support": virt-host-validate looks for DMAR only on vmx CPUs and IVRS
  only on svm CPUs and says "Unknown" otherwise; vbench looks for either table (a virtual host may
  have a vIOMMU without exposing vmx).  Both say WARN when no table is found.
* "IOMMU is enabled by kernel": virt-host-validate WARNs; vbench FAILs `iommu.groups`, because no
  IOMMU groups means no VFIO or SR-IOV at all (the check gates those modes).
* Exit code: virt-host-validate exits 1 on any FAIL and ignores WARN; vbench exits by the readiness
  of the requested modes (default fv, pv), with --strict counting WARN.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from typing import Any

import pytest
from support import NOT_APPLICABLE

from vbench.host.checks import run_checks
from vbench.readiness import CheckReport, Status

VHV = shutil.which("virt-host-validate")
pytestmark = pytest.mark.skipif(VHV is None, reason="virt-host-validate not installed")

LINE = re.compile(
    r"^\s*QEMU: Checking (?P<what>.+?)\s*: (?P<status>PASS|WARN|FAIL)(?: \((?P<msg>.*)\))?$"
)

# virt-host-validate line -> vbench check id
MAP: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"^for hardware virtualization$"), "cpu.hwvirt"),
    (re.compile(r"^if device /dev/kvm exists$"), "kvm.device"),
    (re.compile(r"^if device /dev/kvm is accessible$"), "kvm.access"),
    (re.compile(r"^if device /dev/vhost-net exists$"), "vhost.net"),
    (re.compile(r"^if device /dev/net/tun exists$"), "net.tun"),
    (re.compile(r"^for cgroup '(\w+)' controller (?:support|mount-point)$"), "cgroup.{0}"),
    (re.compile(r"^for device assignment IOMMU support$"), "iommu.acpi"),
    (re.compile(r"^if IOMMU is enabled by kernel$"), "iommu.groups"),
    (re.compile(r"^for secure guest support$"), "secure.guest"),
]

# Same PASS/not-PASS verdict, different severity by design (see the module docstring).
SEVERITY_BY_DESIGN = {"iommu.groups": ("WARN", "FAIL")}


def virt_host_validate() -> tuple[int, dict[str, tuple[str, str]]]:
    assert VHV is not None
    p = subprocess.run([VHV, "qemu"], capture_output=True, text=True, timeout=60, check=False)
    found: dict[str, tuple[str, str]] = {}
    for raw in p.stdout.splitlines():
        m = LINE.match(raw)
        if not m:
            continue
        for pattern, cid in MAP:
            hit = pattern.match(m["what"])
            if hit:
                found[cid.format(*hit.groups())] = (m["status"], m["msg"] or "")
                break
        else:
            pytest.fail(f"unmapped virt-host-validate line: {raw!r}")
    return p.returncode, found


@pytest.fixture(scope="module")
def ours() -> CheckReport:
    return run_checks()


def test_agrees_with_virt_host_validate_on_every_common_check(ours: CheckReport) -> None:
    _rc, theirs = virt_host_validate()
    assert theirs, "virt-host-validate printed no QEMU lines"
    by_id = {c.id: c for c in ours.checks}
    disagreements = []
    for cid, (their_status, msg) in theirs.items():
        mine = by_id.get(cid)
        assert mine is not None, f"vbench makes no {cid} check (virt-host-validate: {msg})"
        expected = {their_status}
        if cid in SEVERITY_BY_DESIGN and their_status == SEVERITY_BY_DESIGN[cid][0]:
            expected = {SEVERITY_BY_DESIGN[cid][1]}
        if mine.status.value not in expected:
            disagreements.append(
                f"{cid}: virt-host-validate {their_status} ({msg}), vbench "
                f"{mine.status.value} ({mine.observed})"
            )
    assert not disagreements, "\n".join(disagreements)


def test_kvm_checks_where_virt_host_validate_stays_silent(ours: CheckReport) -> None:
    _rc, theirs = virt_host_validate()
    by_id = {c.id: c for c in ours.checks}
    hw = by_id["cpu.hwvirt"]
    if hw.status is Status.PASS:
        pytest.skip(
            f"{NOT_APPLICABLE} the CPU has vmx/svm: virt-host-validate checks /dev/kvm itself"
        )
    # By design: no vmx/svm -> virt-host-validate prints no /dev/kvm lines; vbench still looks.
    assert "kvm.device" not in theirs
    kvm = by_id["kvm.device"]
    module = by_id["kvm.module"]
    if kvm.status is Status.PASS:
        # /dev/kvm present but the CPU has no vmx/svm: the module explains what backs it and
        # the check does not claim KVM works (only --probe can).
        assert module.status is not Status.PASS, module.observed
        assert module.remedy and "--probe" in module.remedy


def test_exit_codes_differ_by_design(ours: CheckReport) -> None:
    rc, theirs = virt_host_validate()
    has_fail = any(status == "FAIL" for status, _ in theirs.values())
    assert rc == (1 if has_fail else 0)  # it ignores WARN
    p = subprocess.run(
        [sys.executable, "-c", "from vbench.cli import main; main()", "check", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    doc: dict[str, Any] = json.loads(p.stdout)
    assert p.returncode == doc["exit_code"] == (0 if doc["ready"] else 2), p.stderr
    ready = {v["mode"]: v["ready"] for v in doc["verdicts"]}
    assert p.returncode == (0 if ready["fv"] and ready["pv"] else 2)
    strict = subprocess.run(
        [
            sys.executable,
            "-c",
            "from vbench.cli import main; main()",
            "check",
            "--json",
            "--strict",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    warned = any(c["status"] == "WARN" and "fv" in c["degrades"] for c in doc["checks"])
    if warned:
        assert strict.returncode == 2


def test_unreachable_libvirtd_is_a_fail_line_not_a_crash() -> None:
    uri = "qemu+unix:///system?socket=/nonexistent/libvirt-sock"
    p = subprocess.run(
        [sys.executable, "-c", "from vbench.cli import main; main()", "check", "--json", "-c", uri],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert p.returncode == 1, p.stderr  # cannot be assessed: an error, not "not ready"
    assert "Traceback" not in p.stderr
    doc = json.loads(p.stdout)
    assert doc["exit_code"] == 1
    checks = {c["id"]: c for c in doc["checks"]}
    assert checks["libvirt.reachable"]["status"] == "FAIL"
    assert "libvirtd" in checks["libvirt.reachable"]["remedy"]
    for cid in ("libvirt.version", "qemu.version", "libvirt.domcaps", "hostdev.vfio"):
        assert checks[cid]["status"] == "SKIP"
    for v in doc["verdicts"]:
        assert not v["ready"] and "libvirt.reachable" in v["blockers"]


def test_fast_without_probe(ours: CheckReport) -> None:
    assert ours.host["duration_s"] < 1.0
    probe = next(c for c in ours.checks if c.id == "kvm.probe")
    assert probe.status is Status.SKIP
