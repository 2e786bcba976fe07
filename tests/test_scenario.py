"""Scenario validation: good files load, every bad file fails with one line naming the file and
the key path."""

from __future__ import annotations

from pathlib import Path

import pytest

from vbench.errors import ScenarioError
from vbench.model import ModeId, Trial, WorkloadCase
from vbench.scenario import ModeSpec, load_scenario, parse_scenario
from vbench.workloads import workload

ROOT = Path(__file__).parent.parent
DATA = Path(__file__).parent / "data" / "scenarios"

# bad file -> what must follow "<path>: " in the error
BAD: dict[str, str] = {
    "bad-pci-address.toml": "modes[0].pci: '0000:81:00' is not a PCI address",
    "bad-unknown-top-key.toml": "colour: unknown key",
    "bad-unknown-mode-key.toml": "modes[0].diskbus: unknown key",
    "bad-unknown-fio-key.toml": "workloads[0].blocksize: unknown key",
    "bad-type-vcpus-string.toml": "guest.vcpus: Input should be a valid integer, not '2'",
    "bad-type-direct-string.toml": "workloads[0].direct: Input should be a valid boolean, not 'yes",
    "bad-type-iodepth-float.toml": "workloads[0].iodepth[0]: Input should be a valid integer",
    "bad-type-rw-not-list.toml": "workloads[0].rw: Input should be a valid list",
    "bad-type-guest-not-table.toml": "guest: Input should be a valid dictionary",
    "bad-missing-name.toml": "name: required key is missing",
    "bad-missing-format-version.toml": "format_version: required key is missing",
    "bad-missing-modes.toml": "modes: required key is missing",
    "bad-missing-workloads.toml": "workloads: required key is missing",
    "bad-missing-workload-kind.toml": "workloads[0].kind: required key is missing",
    "bad-unknown-workload-kind.toml": "workloads[0].kind: 'iperf' is not a workload kind",
    "bad-format-version.toml": "format_version: 2: Input should be 1",
    "bad-toml.toml": "not valid TOML: ",
    "bad-fv-virtio-disk.toml": "modes[0].disk_bus: fv takes an emulated disk bus (ide or sata)",
    "bad-fv-virtio-nic.toml": "modes[0].nic_model: fv takes an emulated NIC",
    "bad-pv-ide.toml": "modes[0].disk_bus: pv takes a paravirtual disk bus (virtio or scsi)",
    "bad-pv-e1000.toml": "modes[0].nic_model: pv takes the virtio NIC, not 'e1000'",
    "bad-vfio-without-pci.toml": "modes[1].pci: vfio needs `pci`",
    "bad-vfio-ide.toml": "modes[0].disk_bus: `disk_bus` does not apply to mode vfio (the guest",
    "bad-sriov-without-pf.toml": "modes[0].pf: sriov needs `pf`",
    "bad-fv-with-pci.toml": "modes[0].pci: `pci` does not apply to mode fv",
    "bad-duplicate-mode-labels.toml": "modes: modes repeat the label(s) ['pv']",
    "bad-unknown-mode-id.toml": "modes[0].id: 'hvm': Input should be 'fv', 'pv', 'vfio' or 'sriov'",
    "bad-fio-rw.toml": "workloads[0].rw[1]: 'randomwrite': Input should be",
    "bad-fio-block-size.toml": "workloads[0].bs: '4kb' is not a block size",
    "bad-empty-modes.toml": "modes: List should have at least 1 item",
    "bad-mode-label.toml": "modes[0].label: String should match pattern",
    "bad-repetitions-zero.toml": "run.repetitions: Input should be greater than or equal to 1",
    "bad-fio-precondition.toml": "workloads[0].precondition: 'trim': Input should be 'none' or",
    "bad-fio-size.toml": "workloads[0].size: 'lots' is not a size",
    "bad-fio-ioengine.toml": "workloads[0].ioengine: 'windowsaio': Input should be 'libaio'",
    "bad-duplicate-cases.toml": (
        "workloads: entries [0] and [1] both have the case fio-randwrite-4k-qd16-j1"
    ),
    "bad-stress-ng-method.toml": (
        "workloads[1].stressors[0].method: 'fastest' is not a cpu method of stress-ng"
    ),
    "bad-stress-ng-method-without-methods.toml": (
        "workloads[1].stressors[0].method: stressor 'pipe' has no methods"
    ),
    "bad-stress-ng-stressor.toml": "workloads[1].stressors[1].name: 'fork': Input should be 'cpu'",
    "bad-stress-ng-no-stressors.toml": "workloads[1].stressors: required key is missing",
    "bad-stress-ng-workers-zero.toml": "workloads[1].workers: Input should be greater than or",
    "bad-stress-ng-fio-key.toml": "workloads[1].rw: unknown key",
    "bad-sample-interval-zero.toml": "run.sample_interval_s: Input should be greater than or equal",
    "bad-iperf3-direction.toml": "workloads[0].direction[1]: 'up': Input should be 'tx', 'rx' or",
    "bad-sockperf-msg-size.toml": "workloads[0].msg_size[0]: Input should be greater than or equal",
}


def test_every_bad_file_is_in_the_table() -> None:
    assert sorted(p.name for p in DATA.glob("bad-*.toml")) == sorted(BAD)


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_file_fails_with_one_line_naming_file_and_key(name: str) -> None:
    path = DATA / name
    with pytest.raises(ScenarioError) as exc:
        load_scenario(path)
    message = str(exc.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: {BAD[name]}"), message


def test_a_missing_file_is_named() -> None:
    path = DATA / "absent.toml"
    with pytest.raises(ScenarioError, match=r"absent\.toml: no such scenario file"):
        load_scenario(path)


def test_more_errors_are_counted_on_the_same_line() -> None:
    text = 'format_version = 1\nname = "x"\ncolour = 1\n[[modes]]\nid = "pv"\nfoo = 2\n'
    with pytest.raises(ScenarioError) as exc:
        parse_scenario(text, "x.toml")
    assert "\n" not in str(exc.value)
    assert "(and 2 more errors)" in str(exc.value)  # colour, modes[0].foo, workloads missing


# -- good files -------------------------------------------------------------------------------


def test_quick_scenario_loads() -> None:
    loaded = load_scenario(ROOT / "scenarios" / "quick.toml")
    s = loaded.scenario
    assert s.name == "quick"
    assert [m.id for m in s.modes] == [ModeId.FV, ModeId.PV]
    # the mode providers fill in their defaults
    assert (s.modes[0].disk_bus, s.modes[0].nic_model) == ("ide", "e1000")
    assert (s.modes[1].disk_bus, s.modes[1].nic_model) == ("virtio", "virtio")
    assert s.run.repetitions == 3
    assert s.run.sample_interval_s == 1.0
    kinds = [c.kind for c in s.workload_cases()]
    assert {"fio", "stress-ng", "iperf3", "sockperf"} == set(kinds)
    directions = [c.params["direction"] for c in s.workload_cases() if c.kind == "iperf3"]
    assert directions == ["tx", "rx"]
    assert len(loaded.sha256) == 64
    assert loaded.text == (ROOT / "scenarios" / "quick.toml").read_text()


def test_quick_scenario_interleaves_modes_within_each_repetition() -> None:
    s = load_scenario(ROOT / "scenarios" / "quick.toml").scenario
    trials = s.trials()
    assert [(t.repetition, t.mode) for t in trials] == [
        (0, "fv"),
        (0, "pv"),
        (1, "fv"),
        (1, "pv"),
        (2, "fv"),
        (2, "pv"),
    ]
    assert all(isinstance(t, Trial) for t in trials)
    assert [t.mode_index for t in trials] == [0, 1, 0, 1, 0, 1]
    # every trial runs every workload case: randread 4k, randwrite 4k, read 1m, stress-ng cpu,
    # iperf3 both directions, sockperf udp ping-pong
    slugs = [w.slug for w in trials[0].workloads]
    assert slugs == [
        "fio-randread-4k-qd16-j1",
        "fio-randwrite-4k-qd16-j1",
        "fio-read-1m-qd4-j1",
        "stress-ng-cpu-matrixprod-wvcpus",
        "iperf3-tx-p1-t2",
        "iperf3-rx-p1-t2",
        "sockperf-udp-m64-t2",
    ]
    assert all(t.workloads == trials[0].workloads for t in trials)


def test_case_ids_are_unique_over_the_run() -> None:
    s = load_scenario(DATA / "good-all-modes.toml").scenario
    ids = [t.case_id(w) for t in s.trials() for w in t.workloads]
    assert len(ids) == len(set(ids)) == 2 * 5 * (2 * 2 * 2 * 2 + 1)
    assert ids[0] == "r0-fv-fio-randread-4k-qd1-j1"


def test_all_modes_file_loads_with_labels_and_mode_defaults() -> None:
    s = load_scenario(DATA / "good-all-modes.toml").scenario
    assert s.mode_labels() == ["fv", "pv", "pv-scsi", "vfio", "sriov"]
    assert [m.disk_bus for m in s.modes[:3]] == ["sata", "virtio", "scsi"]
    assert [m.nic_model for m in s.modes[:3]] == ["rtl8139", "virtio", "virtio"]
    assert s.modes[3].pci == ["0000:02:00.0"]
    assert (s.modes[3].disk_bus, s.modes[3].nic_model) == (None, None)
    assert s.modes[4].pf == "0000:81:00.0"
    assert s.guest.boot_timeout_s == 90.0  # an integer is fine where a float is wanted
    labels = [t.mode for t in s.trials()]
    assert labels == ["fv", "pv", "pv-scsi", "vfio", "sriov"] * 2


def test_workload_matrix_expands_rw_x_bs_x_iodepth_x_numjobs() -> None:
    s = load_scenario(DATA / "good-all-modes.toml").scenario
    cases = workload("fio").cases(s.workloads[0])
    assert len(cases) == 2 * 2 * 2 * 2
    got = {
        (c.params["rw"], c.params["bs"], c.params["iodepth"], c.params["numjobs"]) for c in cases
    }
    assert got == {
        (rw, bs, qd, nj)
        for rw in ("randread", "randwrite")
        for bs in ("4k", "64k")  # "4K" is normalised
        for qd in (1, 32)
        for nj in (1, 2)
    }
    # order: rw outermost, numjobs innermost
    assert [c.slug for c in cases[:3]] == [
        "fio-randread-4k-qd1-j1",
        "fio-randread-4k-qd1-j2",
        "fio-randread-4k-qd32-j1",
    ]
    assert all(c.params["runtime_s"] == 3 for c in cases)
    assert len(s.workload_cases()) == 16 + 1


def test_minimal_file_takes_every_default() -> None:
    s = load_scenario(DATA / "good-minimal.toml").scenario
    assert s.guest.image == "microguest"
    assert (s.guest.vcpus, s.guest.memory_mib, s.disk.size_mib) == (1, 512, 256)
    assert s.run.repetitions == 3
    (case,) = s.workload_cases()
    assert case == WorkloadCase(
        "fio",
        {
            "rw": "randread",
            "bs": "4k",
            "iodepth": 16,
            "numjobs": 1,
            "runtime_s": 5,
            "ramp_s": 0,
            "ioengine": "libaio",
            "direct": True,
        },
    )
    assert len(s.trials()) == 3


def test_scenario_is_immutable() -> None:
    s = load_scenario(DATA / "good-minimal.toml").scenario
    with pytest.raises(ValueError):
        s.name = "other"


def test_mode_spec_built_in_python() -> None:
    """The runner and tests may build a ModeSpec from plain strings, as TOML does."""
    m = ModeSpec(id="vfio", pci="0000:02:00.0")  # type: ignore[arg-type]
    assert m.id is ModeId.VFIO
    assert m.pci_addresses == ["0000:02:00.0"]
    with pytest.raises(ValueError, match="vfio needs `pci`"):
        ModeSpec(id=ModeId.VFIO)


BAREMETAL_SCENARIO = """
format_version = 1
name = "bm"
[[modes]]
id = "fv"
[[modes]]
id = "pv"
[[workloads]]
kind = "fio"
[run]
repetitions = 2
baremetal = true
"""


def test_baremetal_runs_first_in_every_repetition() -> None:
    trials = parse_scenario(BAREMETAL_SCENARIO, "bm.toml").scenario.trials()
    assert [(t.mode, t.repetition) for t in trials] == [
        ("baremetal", 0), ("fv", 0), ("pv", 0), ("baremetal", 1), ("fv", 1), ("pv", 1)
    ]  # fmt: skip
    assert [t.is_baremetal for t in trials] == [True, False, False, True, False, False]


def test_baremetal_is_not_a_mode_label() -> None:
    text = BAREMETAL_SCENARIO.replace('id = "pv"', 'id = "pv"\nlabel = "baremetal"')
    with pytest.raises(ScenarioError, match=r"bm.toml: modes: 'baremetal' names the bare-metal"):
        parse_scenario(text, "bm.toml")


def test_fio_and_stress_ng_in_one_scenario() -> None:
    s = load_scenario(DATA / "good-fio-and-stress-ng.toml").scenario
    slugs = [c.slug for c in s.workload_cases()]
    assert slugs == [
        "fio-randread-4k-qd16-j1-io_uring-128m",
        "fio-randwrite-4k-qd16-j1-io_uring-128m-fill",
        "stress-ng-cpu-matrixprod-wvcpus",
        "stress-ng-matrix-wvcpus",
        "stress-ng-memcpy-wvcpus",
        "stress-ng-cpu-matrixprod-w1",
    ]
    read, write, cpu = s.workload_cases()[:3]
    assert "precondition" not in read.params  # only cases that write are preconditioned
    assert write.params["precondition"] == "fill" and write.params["size"] == "128m"
    assert cpu.params == {
        "stressor": "cpu",
        "workers": "vcpus",
        "timeout_s": 5,
        "method": "matrixprod",
    }
    assert all(len(t.workloads) == 6 for t in s.trials())
