"""Host facts from one place (vbench/host/facts.py): the live host and recorded testbeds."""

from __future__ import annotations

import os
import platform
import socket
from pathlib import Path

from vbench.host.checks import read_facts
from vbench.host.facts import (
    parse_cpuinfo,
    parse_meminfo,
    parse_os_release,
    read_system_facts,
)
from vbench.host.paths import HostPaths
from vbench.virt.accel import cpu_virt_flags

TESTBEDS = Path(__file__).parent / "data" / "testbeds"


def test_parsers_on_small_texts() -> None:
    cpu = parse_cpuinfo(
        "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Xeon\nflags\t\t: fpu vmx sse\n\n"
        "processor\t: 1\nvendor_id\t: GenuineIntel\nmodel name\t: Xeon\nflags\t\t: fpu vmx sse\n"
    )
    assert (cpu.vendor, cpu.model, cpu.processors) == ("GenuineIntel", "Xeon", 2)
    assert cpu.flags == {"fpu", "vmx", "sse"}
    assert parse_cpuinfo("Features\t: fp asimd\n").flags == {"fp", "asimd"}  # Arm spelling
    assert parse_meminfo("MemTotal:  2048 kB\nHugePages_Total:  4\nbogus\n") == {
        "MemTotal": 2048,
        "HugePages_Total": 4,
    }
    assert parse_os_release("# c\nID=\"opensuse-leap\"\nPRETTY_NAME='Leap 15.6'\nX\n") == {
        "ID": "opensuse-leap",
        "PRETTY_NAME": "Leap 15.6",
    }


def test_a_testbed_is_read_from_its_own_files() -> None:
    bed = TESTBEDS / "nokvm-noiommu"
    facts = read_system_facts(HostPaths.for_testbed(bed))
    assert not facts.live and facts.root == bed and facts.hostname == "nokvm-noiommu"
    assert (facts.cpu.model, facts.cpu.vendor, facts.cpus) == ("AMD EPYC", "AuthenticAMD", 2)
    assert facts.arch == "x86_64" and facts.memory_mib == 24684092 // 1024
    assert "svm" not in facts.cpu.flags and "vmx" not in facts.cpu.flags
    assert facts.kernel == ""  # the recording has no proc/sys/kernel/osrelease
    # the checks and the accelerator read the same facts
    checks = read_facts(HostPaths.for_testbed(bed))
    assert checks.system == facts and checks.cpu_flags == facts.cpu.flags
    assert cpu_virt_flags(bed / "proc") == []


def test_a_testbed_without_files_has_unknown_facts(tmp_path: Path) -> None:
    (tmp_path / "proc").mkdir()
    facts = read_system_facts(HostPaths.for_testbed(tmp_path))
    assert facts.cpus is None and facts.memory_mib is None and facts.os_name is None
    assert facts.manifest() == {"hostname": tmp_path.name, "kernel": "", "arch": platform.machine()}


def test_the_live_host() -> None:
    facts = read_system_facts()
    assert facts.live and facts.root == Path("/")
    assert facts.hostname == socket.gethostname()
    assert facts.kernel == platform.release() and facts.arch == platform.machine()
    assert facts.cpus == os.cpu_count()
    mem = facts.manifest()
    assert mem["memory_mib"] == os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 2**20
    again = read_facts(HostPaths()).system  # meminfo moves between reads; the identity does not
    assert (again.hostname, again.kernel, again.cpu, again.os_release) == (
        facts.hostname,
        facts.kernel,
        facts.cpu,
        facts.os_release,
    )
