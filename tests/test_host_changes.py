"""Host changes: the journal on real files, the VF plan on the umockdev lab testbed.

The journal tests write real files in a sysfs-like tree under tmp_path (a plain file stands in for
an attribute such as sriov_numvfs: the write is real; only the kernel behind it is missing).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import pytest
from support import TESTBEDS, bed

from vbench.errors import HostError
from vbench.host.changes import (
    JOURNAL,
    ChangeJournal,
    HostChange,
    find_journals,
    leftover_journals,
)
from vbench.host.nvme import NvmeRecording, parse_primary_caps, parse_secondary

REPO = Path(__file__).resolve().parent.parent
VBENCH = (sys.executable, "-m", "vbench")


def _tree(tmp_path: Path) -> Path:
    """A PF's sysfs directory with plain files for its SR-IOV attributes."""
    pf = tmp_path / "sys" / "bus" / "pci" / "devices" / "0000:00:04.0"
    pf.mkdir(parents=True)
    (pf / "sriov_drivers_autoprobe").write_text("1\n")
    (pf / "sriov_numvfs").write_text("0\n")
    (pf / "sriov_totalvfs").write_text("2\n")
    return pf


def _write(path: Path, before: str, after: str) -> HostChange:
    return HostChange(
        "sysfs_write", str(path), before, after, f"set {path.name} from {before} to {after}"
    )


def _val(path: Path) -> str:
    return path.read_text().strip()


def _journal_states(run_dir: Path) -> list[str]:
    return [c["state"] for c in json.loads((run_dir / JOURNAL).read_text())["changes"]]


def test_change_is_on_disk_before_it_is_made(tmp_path: Path) -> None:
    """A FIFO as the target: its reader wakes when the write starts, and reads the journal."""
    fifo = tmp_path / "sriov_drivers_autoprobe"
    os.mkfifo(fifo)
    run_dir = tmp_path / "run"
    seen: dict[str, object] = {}

    def reader() -> None:
        with fifo.open() as f:  # returns once the journal opens the target for writing
            seen["states"] = _journal_states(run_dir)
            seen["data"] = f.read()

    t = threading.Thread(target=reader)
    t.start()
    journal = ChangeJournal(run_dir)
    journal.apply(_write(fifo, "1", "0"))
    t.join(timeout=10)
    assert seen["states"] == ["planned"]
    assert seen["data"] == "0\n"
    assert _journal_states(run_dir) == ["made"]


def test_restore_undoes_in_reverse_order(tmp_path: Path) -> None:
    pf = _tree(tmp_path)
    run_dir = tmp_path / "run"
    journal = ChangeJournal(run_dir)
    journal.apply(_write(pf / "sriov_drivers_autoprobe", "1", "0"))
    journal.apply(_write(pf / "sriov_numvfs", "0", "2"))
    # a second change of the same file: only reverse order brings back the first value
    journal.apply(_write(pf / "sriov_numvfs", "2", "1"))
    assert (_val(pf / "sriov_drivers_autoprobe"), _val(pf / "sriov_numvfs")) == ("0", "1")
    assert journal.restore() == []
    assert (_val(pf / "sriov_drivers_autoprobe"), _val(pf / "sriov_numvfs")) == ("1", "0")
    assert _journal_states(run_dir) == ["restored"] * 3
    assert journal.pending() == []
    # a restored journal does not block a new one in the same directory
    ChangeJournal(run_dir)


def test_failed_change_is_recorded_and_the_rest_restored(tmp_path: Path) -> None:
    pf = _tree(tmp_path)
    run_dir = tmp_path / "run"
    journal = ChangeJournal(run_dir)
    journal.apply(_write(pf / "sriov_drivers_autoprobe", "1", "0"))
    journal.apply(_write(pf / "sriov_numvfs", "0", "2"))
    missing = pf / "no-such-attribute"
    with pytest.raises(HostError, match="no-such-attribute"):
        journal.apply(_write(missing, "x", "y"))
    assert _journal_states(run_dir) == ["made", "made", "failed"]
    problems = journal.restore()
    # the failed change's undo fails too (the file does not exist), but does not stop the others
    assert len(problems) == 1 and "may not have been made" in problems[0]
    assert (_val(pf / "sriov_drivers_autoprobe"), _val(pf / "sriov_numvfs")) == ("1", "0")
    assert _journal_states(run_dir) == ["restored", "restored", "restore-failed"]


def test_one_change_undone_before_the_rest(tmp_path: Path) -> None:
    """`undo`: a guest's tap goes when its trial ends; the rest stays in force until `restore`."""
    pf = _tree(tmp_path)
    run_dir = tmp_path / "run"
    journal = ChangeJournal(run_dir)
    first = _write(pf / "sriov_drivers_autoprobe", "1", "0")
    journal.apply(first)
    journal.apply(_write(pf / "sriov_numvfs", "0", "2"))
    journal.undo(first)
    assert (_val(pf / "sriov_drivers_autoprobe"), _val(pf / "sriov_numvfs")) == ("1", "2")
    assert _journal_states(run_dir) == ["restored", "made"]
    (pf / "sriov_drivers_autoprobe").write_text("7\n")
    journal.undo(first)  # not in force any more: left as it is
    assert _val(pf / "sriov_drivers_autoprobe") == "7"
    assert journal.restore() == []
    assert _journal_states(run_dir) == ["restored", "restored"]


def test_an_undo_that_fails_stays_in_force(tmp_path: Path) -> None:
    pf = _tree(tmp_path)
    run_dir = tmp_path / "run"
    journal = ChangeJournal(run_dir)
    change = _write(pf / "sriov_numvfs", "0", "2")
    journal.apply(change)
    (pf / "sriov_numvfs").unlink()
    (pf / "sriov_numvfs").mkdir()  # the undo fails (EISDIR)
    with pytest.raises(HostError, match="could not undo 'set sriov_numvfs from 0 to 2'"):
        journal.undo(change)
    assert _journal_states(run_dir) == ["restore-failed"]
    assert journal.pending() == [change]  # for restore and `vbench cleanup`


@pytest.mark.parametrize(
    ("kind", "target", "message"),
    [
        ("netns", "eth0", "'eth0' in the journal is not a vbench network namespace"),
        ("netns", "vbench-../x", "not a vbench network namespace"),
        ("tap", "eth0 netns vbench-r1", "'eth0' in the journal is not a tap of run r1"),
        ("tap", "vbt000000000 netns vbench-r1", "is not a tap of run r1"),  # another run's hash
        ("tap", "eth0", "unreadable tap target 'eth0'"),
    ],
)
def test_network_entries_touch_only_vbench_names(
    tmp_path: Path, kind: str, target: str, message: str
) -> None:
    """A journal edited by hand (or damaged) cannot make cleanup delete a device of the host's."""
    entry = {"kind": kind, "target": target, "before": "absent", "after": "present"}
    doc = {"format": 1, "changes": [{**entry, "describe": "x", "state": "made"}]}
    (tmp_path / JOURNAL).write_text(json.dumps(doc))
    (problem,) = ChangeJournal.load(tmp_path).restore()
    assert message in problem


def test_undo_failing_mid_way_keeps_going(tmp_path: Path) -> None:
    pf = _tree(tmp_path)
    journal = ChangeJournal(tmp_path / "run")
    journal.apply(_write(pf / "sriov_drivers_autoprobe", "1", "0"))
    journal.apply(_write(pf / "sriov_numvfs", "0", "2"))
    journal.apply(_write(pf / "sriov_totalvfs", "2", "3"))
    (pf / "sriov_numvfs").unlink()
    (pf / "sriov_numvfs").mkdir()  # the middle undo now fails (EISDIR)
    problems = journal.restore()
    assert len(problems) == 1
    assert "sriov_numvfs" in problems[0] and "could not undo" in problems[0]
    assert _val(pf / "sriov_totalvfs") == "2" and _val(pf / "sriov_drivers_autoprobe") == "1"
    # still pending: the next restore (e.g. `vbench cleanup`) tries again
    assert [c.target for c in journal.pending()] == [str(pf / "sriov_numvfs")]


def _killed_run(pf: Path, run_dir: Path) -> None:
    """A process that makes two changes and is then SIGKILLed; load() refuses while it lives."""
    script = textwrap.dedent(
        f"""
        import sys, time
        from pathlib import Path
        from vbench.host.changes import ChangeJournal, HostChange
        pf = Path({str(pf)!r})
        j = ChangeJournal(Path({str(run_dir)!r}))
        j.apply(HostChange("sysfs_write", str(pf / "sriov_drivers_autoprobe"), "1", "0", "a"))
        j.apply(HostChange("sysfs_write", str(pf / "sriov_numvfs"), "0", "2", "n"))
        print("applied", flush=True)
        time.sleep(60)
        """
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, env=env)
    try:
        assert proc.stdout is not None and proc.stdout.readline() == b"applied\n"
        with pytest.raises(HostError, match="still runs"):
            ChangeJournal.load(run_dir)
        assert leftover_journals(run_dir.parent) == ([], [])  # a live run's are not leftovers
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert (_val(pf / "sriov_drivers_autoprobe"), _val(pf / "sriov_numvfs")) == ("0", "2")


def test_journal_of_a_killed_run_is_replayed(tmp_path: Path) -> None:
    pf = _tree(tmp_path)
    run_dir = tmp_path / "runs" / "run-1"
    _killed_run(pf, run_dir)
    assert find_journals(run_dir.parent) == [run_dir]
    journal = ChangeJournal.load(run_dir)
    assert [c.describe for c in journal.pending()] == ["a", "n"]
    with pytest.raises(HostError, match="never restored"):
        ChangeJournal(run_dir)
    assert journal.restore() == []
    assert (_val(pf / "sriov_drivers_autoprobe"), _val(pf / "sriov_numvfs")) == ("1", "0")
    assert ChangeJournal.load(run_dir).pending() == []


def test_vbench_cleanup_undoes_a_killed_runs_changes(tmp_path: Path) -> None:
    """`vbench cleanup -o DIR` (libvirt's test driver: no guests) replays the journal."""
    pf = _tree(tmp_path)
    runs = tmp_path / "runs"
    _killed_run(pf, runs / "run-1")
    env = {**os.environ, "PYTHONPATH": str(REPO), "VBENCH_SCRATCH": str(tmp_path / "scratch")}

    def cleanup(*extra: str) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-m", "vbench", "cleanup", "-c", "test:///default", "-o", str(runs)]
        return subprocess.run([*argv, *extra], capture_output=True, text=True, env=env, timeout=120)

    dry = cleanup("--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "would undo: n\nwould undo: a" in dry.stderr
    assert _val(pf / "sriov_numvfs") == "2"
    done = cleanup()
    assert done.returncode == 0, done.stderr
    assert "undoing: n\nundoing: a" in done.stderr
    assert (_val(pf / "sriov_drivers_autoprobe"), _val(pf / "sriov_numvfs")) == ("1", "0")
    again = cleanup()
    assert again.returncode == 0 and "nothing to clean up" in again.stderr


def test_sriov_numvfs_goes_through_zero(tmp_path: Path) -> None:
    """The kernel refuses 2 -> 1 directly: the journal writes 0 first (every write is recorded)."""
    attr = tmp_path / "sriov_numvfs"
    attr.write_text("2\n")
    written: list[str] = []
    real_write = os.write

    def recording_write(fd: int, data: bytes) -> int:  # notes what reaches the file, writes it
        written.append(data.decode().strip())
        return real_write(fd, data)

    journal = ChangeJournal(tmp_path / "run")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(os, "write", recording_write)
        journal.apply(_write(attr, "2", "1"))
    assert [w for w in written if w in ("0", "1", "2")] == ["0", "1"]
    assert _val(attr) == "1"


def test_unknown_journal_format_is_refused(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / JOURNAL).write_text(json.dumps({"format": 99, "changes": []}))
    with pytest.raises(HostError, match="format 1"):
        ChangeJournal.load(run_dir)


# --- nvme-cli output and the plan on the lab testbed -------------------------------------------


def test_recorded_nvme_cli_output_parses() -> None:
    rec = TESTBEDS / "lab-iommu-sriov" / "nvme" / "nvme0"
    secs = parse_secondary(json.loads((rec / "list-secondary.json").read_text()))
    assert [(s.cntlid, s.vf_number, s.online, s.vq, s.vi) for s in secs] == [
        (1, 1, False, 0, 0),
        (2, 2, False, 0, 0),
    ]
    caps = parse_primary_caps(json.loads((rec / "primary-ctrl-caps.json").read_text()))
    assert (caps.vq_total, caps.vq_free, caps.vq_max_per_vf) == (4, 4, 2)
    assert (caps.vi_total, caps.vi_free, caps.vi_max_per_vf) == (2, 2, 1)
    assert NvmeRecording(rec.parent).namespaces(Path("/dev/nvme0")) == [1]


def _plan(*args: str) -> tuple[int, object, str]:
    testbed = bed("lab-iommu-sriov")
    proc = subprocess.run(
        [sys.executable, "-m", "vbench.host.sriov_prep", *args, "--testbed", str(testbed)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=120,
    )
    return proc.returncode, json.loads(proc.stdout) if proc.returncode == 0 else None, proc.stderr


def test_plan_vf_on_the_lab_testbed() -> None:
    """The lab's state: 2 VFs on, autoprobe off, VF 0 on vfio-pci, secondaries offline."""
    rc, plan, err = _plan("0000:00:04.0", "--want", "2", "--bind", "nvme")
    assert rc == 0, err
    assert isinstance(plan, list)
    steps = [(c["kind"], c["target"].split("nvme0 ")[-1], c["before"], c["after"]) for c in plan]
    assert steps == [
        ("nvme_virt_mgmt", "ctrl 1 VI", "0", "1"),
        ("nvme_virt_mgmt", "ctrl 1 VQ", "0", "2"),
        ("nvme_virt_mgmt", "ctrl 1 state", "offline", "online"),
        ("nvme_attach_ns", "ns 1 ctrl 1", "detached", "attached"),
        (
            "driver_bind",
            "/sys/bus/pci/devices/0000:00:04.1",
            "vfio-pci (driver_override vfio-pci)",
            "nvme",
        ),
    ]
    assert plan[-1]["describe"] == "bind VF 0000:00:04.1 of 0000:00:04.0 to nvme (was vfio-pci)"


def test_plan_second_vf_and_more_vfs_than_enabled() -> None:
    rc, plan, err = _plan("0000:00:04.0", "--want", "2", "--vf", "1")
    assert rc == 0, err
    assert isinstance(plan, list)
    assert [c["target"].split("nvme0 ")[-1] for c in plan] == [
        "ctrl 2 VI",
        "ctrl 2 VQ",
        "ctrl 2 state",
        "ns 1 ctrl 2",
    ]
    assert "0000:00:04.2" in plan[0]["describe"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["0000:00:04.0", "--want", "3"], "has 2 VFs at most"),
        (["0000:00:04.0", "--want", "1", "--vf", "1"], "outside the 1 VFs"),
        (["0000:00:02.0", "--want", "1"], "not an SR-IOV physical function"),
        (["0000:00:09.0", "--want", "1"], "no PCI device 0000:00:09.0"),
    ],
)
def test_plan_refusals_are_one_line(args: list[str], message: str) -> None:
    rc, _, err = _plan(*args)
    assert rc != 0
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_plan_applied_under_umockdev_and_restored(tmp_path: Path) -> None:
    """In the testbed the PF's attributes are files umockdev made: plan, apply, restore them."""
    testbed = bed("lab-iommu-sriov")
    script = textwrap.dedent(
        f"""
        import json
        from pathlib import Path
        from vbench.host.changes import ChangeJournal
        from vbench.host.nvme import NvmeRecording
        from vbench.host.paths import HostPaths
        from vbench.host.sriov_prep import plan_vf
        attr = Path("/sys/bus/pci/devices/0000:00:04.0/sriov_drivers_autoprobe")
        attr.write_text("1")  # as a host with autoprobing on would have it
        tb = Path({str(testbed)!r})
        plan = plan_vf("0000:00:04.0", HostPaths.for_testbed(tb), 2,
                       nvme=NvmeRecording(tb / "nvme"))
        sysfs = [c for c in plan if c.kind == "sysfs_write"]
        j = ChangeJournal(Path({str(tmp_path)!r}))
        for c in sysfs:
            j.apply(c)
        during = attr.read_text().strip()
        problems = j.restore()
        print(json.dumps([[c.describe for c in sysfs], during, attr.read_text().strip(),
                          problems]))
        """
    )
    proc = subprocess.run(
        [
            "umockdev-run",
            "-d",
            str(testbed / "devices.umockdev"),
            "--",
            sys.executable,
            "-c",
            script,
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    described, during, after, problems = json.loads(proc.stdout)
    assert described == ["set sriov_drivers_autoprobe of 0000:00:04.0 from 1 to 0"]
    assert (during, after, problems) == ("0", "1", [])


def test_journal_lives_in_the_run_dir_only(tmp_path: Path) -> None:
    pf = _tree(tmp_path)
    run_dir = tmp_path / "run"
    j = ChangeJournal(run_dir)
    j.apply(_write(pf / "sriov_numvfs", "0", "2"))
    assert sorted(p.name for p in run_dir.iterdir()) == [JOURNAL, "host-changes.lock"]
    assert j.restore() == []


def _check_doc(name: str) -> dict[str, Any]:
    proc = subprocess.run(
        [*VBENCH, "check", "--testbed", str(bed(name)), "--json", "-c", "test:///default"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=120,
    )
    assert proc.returncode in (0, 2), proc.stderr
    doc: dict[str, Any] = json.loads(proc.stdout)
    return doc


def test_check_shows_each_vfs_secondary_controller() -> None:
    checks = _check_doc("lab-iommu-sriov")["checks"]
    assert isinstance(checks, list)
    nvme = next(c for c in checks if c["id"] == "sriov.nvme")
    assert nvme["status"] == "PASS"
    assert nvme["observed"].startswith(
        "PF 0000:00:04.0 (nvme0): VF 0000:00:04.1 ctrl 1 offline, VQ 0, VI 0; "
        "VF 0000:00:04.2 ctrl 2 offline, VQ 0, VI 0"
    )
    secs = nvme["data"]["0000:00:04.0"]["secondaries"]
    assert [(s["vf"], s["cntlid"], s["online"]) for s in secs] == [
        ("0000:00:04.1", 1, False),
        ("0000:00:04.2", 2, False),
    ]


def test_check_skips_nvme_secondaries_without_an_nvme_pf() -> None:
    checks = _check_doc("nic-sriov")["checks"]
    assert isinstance(checks, list)
    nvme = next(c for c in checks if c["id"] == "sriov.nvme")
    assert nvme["status"] == "SKIP" and "no SR-IOV NVMe PF" in nvme["observed"]
