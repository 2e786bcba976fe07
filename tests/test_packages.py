"""One table of system packages (vbench/packages.py): setup-host.sh, the remedies and the microguest
builder must all say the same package for the same thing."""

from __future__ import annotations

import shlex
from pathlib import Path

from vbench import packages
from vbench.readiness import install_remedy

SETUP = Path(__file__).resolve().parents[1] / "scripts" / "setup-host.sh"


def setup_need_lines(command: str = "need") -> list[tuple[str, str, str]]:
    """The `need <probe> <debian> <suse>` (or `need_test ...`) calls of setup-host.sh, in order."""
    out: list[tuple[str, str, str]] = []
    for line in SETUP.read_text(encoding="utf-8").splitlines():
        if not line.startswith(f"{command} "):  # calls inside functions are indented
            continue
        words = shlex.split(line, comments=True)
        if words[:1] == [command]:
            assert len(words) == 4, f"setup-host.sh: malformed need line: {line!r}"
            out.append((words[1], words[2], words[3]))
    return out


def test_setup_host_installs_exactly_the_table() -> None:
    script = setup_need_lines()
    table = packages.setup_need_lines()
    assert len(script) > 10  # the parser found the lines (a renamed `need` would find none)
    only_script = sorted(set(script) - set(table))
    only_table = sorted(set(table) - set(script))
    assert not only_script, f"need lines not in vbench/packages.py NEEDS: {only_script}"
    assert not only_table, f"NEEDS rows missing from setup-host.sh: {only_table}"


def test_setup_host_installs_the_test_packages_only_with_test() -> None:
    script = setup_need_lines("need_test")
    assert script == packages.setup_need_lines(test_only=True)
    assert ("/usr/sbin/sshd", "openssh-server", "openssh-server") in script  # the fleet test
    assert not set(script) & set(setup_need_lines())


def test_each_probe_is_named_once() -> None:
    probes = [p for t in (False, True) for p, _, _ in packages.setup_need_lines(test_only=t)]
    assert len(probes) == len(set(probes))
    names = [n.name for n in packages.NEEDS]
    assert len(names) == len(set(names))


def test_the_microguest_programs_and_the_kernel_are_in_the_table() -> None:
    for name, _path in packages.MICROGUEST_PROGRAMS:
        packages.need(name)  # KeyError: a program the builder copies has no package
    packages.need("kernel")
    assert packages.MICROGUEST_PROGRAMS[0][0] == "busybox"  # the builder links applets to it


def test_busybox_is_one_package_per_family_everywhere() -> None:
    leap = {"ID": "opensuse-leap", "ID_LIKE": "suse opensuse"}
    debian = {"ID": "debian"}
    assert install_remedy(["busybox"], leap) == "`zypper install busybox`"
    assert install_remedy(["busybox"], debian) == "`apt-get install busybox-static`"
    assert ("/bin/busybox", "busybox-static", "busybox") in setup_need_lines()
    hint = packages.install_hint("busybox (/bin/busybox)", "busybox")
    assert "`apt-get install busybox-static`" in hint and "`zypper install busybox`" in hint


def test_remedies_fall_back_to_the_name_for_unknown_things_and_families() -> None:
    assert install_remedy(["no-such-tool"], {"ID": "debian"}) == "`apt-get install no-such-tool`"
    assert install_remedy(["libvirtd", "kernel"], {"ID": "fedora"}) == (
        "`dnf install libvirt-daemon kernel`"
    )
    assert install_remedy(["fio"], {}).startswith("install fio (")


def test_the_guest_kernel_modules_cover_agent_and_devices() -> None:
    mods = packages.MICROGUEST_MODULES
    assert mods[: len(packages.AGENT_MODULES)] == packages.AGENT_MODULES
    assert {"virtio_console", "virtio_blk", "virtio_net", "e1000", "nvme"} <= set(mods)
    assert len(mods) == len(set(mods))
