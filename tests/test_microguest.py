"""The microguest builder: pure helpers, and real builds from this host's files into a tmp cache."""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import threading
from collections.abc import Iterable
from pathlib import Path

import pytest

from vbench.domxml import AgentChannel
from vbench.errors import HostError
from vbench.guest import kernel as gk
from vbench.guest import microguest as mg
from vbench.packages import MICROGUEST_MODULES

MODULES_DEP = """\
kernel/drivers/virtio/virtio.ko:
kernel/drivers/virtio/virtio_ring.ko:
kernel/drivers/virtio/virtio_pci.ko: kernel/drivers/virtio/virtio_pci_modern_dev.ko \
kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/virtio/virtio_pci_modern_dev.ko:
kernel/drivers/scsi/scsi_common.ko:
kernel/drivers/scsi/scsi_mod.ko: kernel/drivers/scsi/scsi_common.ko
kernel/drivers/ata/libata.ko: kernel/drivers/scsi/scsi_mod.ko kernel/drivers/scsi/scsi_common.ko
kernel/drivers/ata/ata_piix.ko: kernel/drivers/ata/libata.ko kernel/drivers/scsi/scsi_mod.ko \
kernel/drivers/scsi/scsi_common.ko
kernel/drivers/nvme/host/nvme-core.ko:
kernel/drivers/nvme/host/nvme.ko: kernel/drivers/nvme/host/nvme-core.ko
"""


def _position(order: list[str]) -> dict[str, int]:
    return {mg.module_name(p): i for i, p in enumerate(order)}


def test_modules_come_after_their_dependencies() -> None:
    order = mg.resolve_modules(MODULES_DEP, ["ata_piix", "virtio_pci", "nvme"])
    pos = _position(order)
    assert pos["scsi_common"] < pos["scsi_mod"] < pos["libata"] < pos["ata_piix"]
    assert pos["virtio"] < pos["virtio_pci"] and pos["virtio_ring"] < pos["virtio_pci"]
    assert pos["nvme_core"] < pos["nvme"]  # file names use '-', module names '_'
    assert len(order) == len(set(order)) == 10
    assert "kernel/drivers/nvme/host/nvme-core.ko" in order


def test_unknown_module_is_a_key_error() -> None:
    with pytest.raises(KeyError):
        mg.resolve_modules(MODULES_DEP, ["e1000"])


def test_module_name_normalizes_compressed_and_dashed_names() -> None:
    assert mg.module_name("kernel/drivers/nvme/host/nvme-core.ko.xz") == "nvme_core"
    assert mg.module_name("kernel/drivers/net/ethernet/realtek/8139cp.ko") == "8139cp"


def test_parse_ldd_keeps_the_loader_and_drops_the_vdso() -> None:
    out = (
        "\tlinux-vdso.so.1 (0x00007ffd)\n"
        "\tlibz.so.1 => /lib/x86_64-linux-gnu/libz.so.1 (0x00007f)\n"
        "\t/lib64/ld-linux-x86-64.so.2 (0x00007f)\n"
    )
    assert mg.parse_ldd(out) == [
        Path("/lib/x86_64-linux-gnu/libz.so.1"),
        Path("/lib64/ld-linux-x86-64.so.2"),
    ]
    with pytest.raises(HostError):
        mg.parse_ldd("\tlibfoo.so.1 => not found\n")


def test_parse_dynamic_symbols_reads_versions() -> None:
    text = (
        "0000000000000000      DF *UND*\t0000000000000000 (GFAPI_6.0)  glfs_fsync\n"
        "0000000000000000      DF *UND*\t0000000000000000  Base        rados_aio_read\n"
        "0000000000012340 g    DF .text\t0000000000000042  LIBNBD_1.0  nbd_create\n"
    )
    assert mg.parse_dynamic_symbols(text) == [
        ("glfs_fsync", "GFAPI_6.0", False, "F"),
        ("rados_aio_read", None, False, "F"),
        ("nbd_create", "LIBNBD_1.0", True, "F"),
    ]


def test_image_path_merges_usr() -> None:
    assert mg.image_path("/lib/x86_64-linux-gnu/libc.so.6") == "usr/lib/x86_64-linux-gnu/libc.so.6"
    assert mg.image_path("/usr/bin/fio") == "usr/bin/fio"
    assert mg.image_path("/lib64/ld-linux-x86-64.so.2") == "usr/lib64/ld-linux-x86-64.so.2"


def test_missing_kernel_names_the_package(tmp_path: Path) -> None:
    with pytest.raises(HostError, match="linux-image-amd64"):
        mg.find_kernel(boot=tmp_path, modules_root=tmp_path)


def test_cache_root_is_outside_root_home_for_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", "/root/.cache")
    root = mg.default_cache_root()
    if os.geteuid() == 0:
        assert root == Path("/var/cache/vbench")
    else:
        assert root == Path("/root/.cache/vbench")


# --- real builds (need the host pieces: kernel, busybox-static, fio, ...) -----------------------


def _host_sources() -> mg.HostSources:
    try:
        return mg.host_sources()
    except HostError as exc:
        pytest.skip(str(exc))


def _cpio_members(initrd: Path) -> dict[str, bytes]:
    """The regular files and symlinks of a compressed newc cpio, by name (links map to targets)."""
    magic = initrd.read_bytes()[:4]
    tool = {b"\x02\x21\x4c\x18": "lz4", b"\x28\xb5\x2f\xfd": "zstd"}.get(magic, "gzip")
    raw = subprocess.run([tool, "-dc", str(initrd)], capture_output=True, check=True).stdout
    members: dict[str, bytes] = {}
    off = 0
    while True:
        header = raw[off : off + 110]
        assert header[:6] == b"070701"
        fields = [int(header[6 + 8 * i : 14 + 8 * i], 16) for i in range(13)]
        mode, filesize, namesize = fields[1], fields[6], fields[11]
        name_start = off + 110
        name = raw[name_start : name_start + namesize - 1].decode()
        data_start = name_start + namesize + (-(110 + namesize) % 4)
        if name == "TRAILER!!!":
            return members
        if mode & 0o170000 in (0o100000, 0o120000):
            members[name] = raw[data_start : data_start + filesize]
        off = data_start + filesize + (-filesize % 4)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, mg.Microguest]:
    src = _host_sources()
    cache = tmp_path_factory.mktemp("cache")
    return cache, mg.build_from_sources(src, cache)


def test_build_is_small_bootable_and_complete(built: tuple[Path, mg.Microguest]) -> None:
    _, guest = built
    assert guest.size_bytes == guest.initrd.stat().st_size <= mg.MAX_INITRD_BYTES
    assert guest.kernel.is_file() and guest.kernel.stat().st_size > 1_000_000
    assert "console=ttyS0" in guest.cmdline
    members = _cpio_members(guest.initrd)
    for name in ("init", "usr/bin/busybox", "usr/bin/fio", "usr/bin/stress-ng", "usr/bin/iperf3"):
        assert name in members, name
    assert "usr/sbin/qemu-ga" in members
    assert "usr/bin/sockperf" in members  # the network workloads' latency client
    assert "usr/lib64/ld-linux-x86-64.so.2" in members
    assert members["bin"] == b"usr/bin"  # merged /usr, like the host
    # fio's unused engine libraries are stubs, not the 70 MB Ceph/Gluster stack
    assert len(members["usr/lib/x86_64-linux-gnu/librbd.so.1"]) < 100_000
    assert not any("libceph-common" in n for n in members)


def test_modules_in_the_image_are_in_dependency_order(built: tuple[Path, mg.Microguest]) -> None:
    _, guest = built
    members = _cpio_members(guest.initrd)
    order = (
        members["etc/vbench/modules.agent"].decode().split()
        + members["etc/vbench/modules.devices"].decode().split()
    )
    dep_text = (Path("/lib/modules") / guest.kernel_release / "modules.dep").read_text()
    deps = mg.parse_modules_dep(dep_text)
    pos = _position(order)
    for wanted in (*mg.AGENT_MODULES, *mg.DEVICE_MODULES):
        assert wanted.replace("-", "_") in pos, wanted
    for name, (_path, its_deps) in deps.items():
        if name in pos:
            for dep in its_deps:
                assert pos[mg.module_name(dep)] < pos[name], (dep, name)
    for path in order:
        assert f"usr/lib/modules/{path}" in members
    assert order[: len(members["etc/vbench/modules.agent"].split())][-1].endswith(
        "virtio_console.ko"
    )


def test_second_build_is_a_cache_hit(built: tuple[Path, mg.Microguest]) -> None:
    cache, guest = built
    messages: list[str] = []
    again = mg.build_from_sources(_host_sources(), cache, progress=messages.append)
    assert again == guest
    assert any(m.startswith("cache hit") for m in messages)


def test_changed_input_rebuilds(tmp_path: Path) -> None:
    src = _host_sources()
    # Our own copy of one program, so that we can change it without touching the host.
    iperf3 = tmp_path / "bin" / "iperf3"
    iperf3.parent.mkdir()
    shutil.copy2(dict(src.programs)["iperf3"], iperf3)
    programs = tuple((n, iperf3 if n == "iperf3" else p) for n, p in src.programs)
    src = dataclasses.replace(src, programs=programs)
    cache = tmp_path / "cache"
    first = mg.build_from_sources(src, cache)

    st = iperf3.stat()
    os.utime(iperf3, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    messages: list[str] = []
    second = mg.build_from_sources(src, cache, progress=messages.append)
    assert second.digest != first.digest
    assert not any(m.startswith("cache hit") for m in messages)

    third = mg.build_from_sources(
        dataclasses.replace(src, init_script=src.init_script + "\n# changed\n"), cache
    )
    assert third.digest not in (first.digest, second.digest)
    # no half-built temporary directories are left behind
    assert not [p for p in (cache / "microguest").iterdir() if p.name.startswith(".")]


def test_passthrough_aliases_pick_the_drivers_pci_patterns() -> None:
    text = (
        "alias pci:v*d*sv*sd*bc01sc08i02* nvme\n"
        "alias pci:v00008086d000010EDsv*sd*bc*sc*i* ixgbevf\n"
        "alias usb:v0BDAp8153d*dc*dsc*dp*ic*isc*ip*in* r8152\n"
        "alias pci:v000015B3d0000101Esv*sd*bc*sc*i* mlx5_core\n"
        "alias nvme-core nvme_core\n"
    )
    assert mg.passthrough_aliases(text, ["nvme", "mlx5-core"]) == [
        ("pci:v*d*sv*sd*bc01sc08i02*", "nvme"),
        ("pci:v000015B3d0000101Esv*sd*bc*sc*i*", "mlx5_core"),
    ]


def test_passthrough_drivers_are_in_the_image_but_not_loaded_at_boot(
    built: tuple[Path, mg.Microguest],
) -> None:
    _, guest = built
    members = _cpio_members(guest.initrd)
    early = (
        members["etc/vbench/modules.agent"].decode().split()
        + members["etc/vbench/modules.devices"].decode().split()
    )
    assert not any(p.endswith(("/nvme.ko", "/mlx5_core.ko", "/igb.ko")) for p in early)
    table = {
        line.split()[0]: line.split()[1:]
        for line in members["etc/vbench/modules.passthrough"].decode().splitlines()
    }
    moddir = Path("/lib/modules") / guest.kernel_release
    deps = mg.parse_modules_dep((moddir / "modules.dep").read_text())
    # every pass-through driver the host's kernel has is there, with its dependencies first
    assert set(table) == {m for m in mg.PASSTHROUGH_MODULES if m in deps}
    assert "nvme" in table
    for name, paths in table.items():
        assert paths[-1] == deps[name][0]
        for p in paths:
            assert f"usr/lib/modules/{p}" in members
    aliases = members["etc/vbench/modules.passthrough.alias"].decode().splitlines()
    assert "pci:v*d*sv*sd*bc01sc08i02* nvme" in aliases  # any NVMe controller (class 01:08:02)
    assert {line.split()[1] for line in aliases} == set(table)


def _boot_console(guest: mg.Microguest, extra: list[str], timeout_s: float = 240) -> str:
    """Boot the microguest in plain QEMU (TCG) and return its console up to the ready line."""
    argv = ["qemu-system-x86_64", "-accel", "tcg", "-m", "512", "-smp", "1", "-nodefaults"]
    argv += ["-no-user-config", "-display", "none", "-serial", "stdio", "-no-reboot"]
    argv += ["-kernel", str(guest.kernel), "-initrd", str(guest.initrd), "-append", guest.cmdline]
    proc = subprocess.Popen(
        [*argv, *extra], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    assert proc.stdout is not None
    timer = threading.Timer(timeout_s, proc.kill)
    timer.start()
    lines = []
    try:
        for raw in proc.stdout:
            lines.append(raw.decode(errors="replace").rstrip())
            if "vbench: microguest ready" in lines[-1]:
                break
    finally:
        timer.cancel()
        proc.kill()
        proc.wait()
    assert "vbench: microguest ready" in lines[-1], "\n".join(lines[-20:])
    return "\n".join(lines)


@pytest.mark.e2e
def test_nvme_driver_is_loaded_only_for_an_nvme_device(tmp_path: Path) -> None:
    """An NVMe controller (as an assigned VF would be) gets its driver; a virtio guest does not."""
    guest = mg.build_microguest()
    disk = tmp_path / "nvme.img"
    disk.write_bytes(b"\0" * (1 << 20))
    with_nvme = _boot_console(
        guest,
        ["-drive", f"file={disk},if=none,id=n0,format=raw", "-device", "nvme,serial=t,drive=n0"],
    )
    assert "vbench: drivers for assigned devices: nvme" in with_nvme
    plain = _boot_console(guest, ["-device", "virtio-rng-pci"])
    assert "drivers for assigned devices" not in plain


def _fake_kernel(boot: Path, modules_root: Path, release: str, modules: Iterable[str]) -> None:
    (boot / f"vmlinuz-{release}").write_bytes(b"kernel")
    moddir = modules_root / release
    moddir.mkdir(parents=True)
    dep = "".join(f"kernel/drivers/{m.replace('_', '-')}.ko.xz:\n" for m in modules)
    (moddir / "modules.dep").write_text(dep)


def test_the_kernel_is_chosen_by_version_and_by_the_modules_the_build_needs(
    tmp_path: Path,
) -> None:
    boot, mods = tmp_path / "boot", tmp_path / "modules"
    boot.mkdir()
    _fake_kernel(boot, mods, "6.9.0-1", MICROGUEST_MODULES)
    _fake_kernel(boot, mods, "6.10.0-1", MICROGUEST_MODULES)  # newer, though "6.1" < "6.9"
    _fake_kernel(boot, mods, "6.11.0-1", MICROGUEST_MODULES[:-1])  # newest, lacks nvme
    (boot / "vmlinuz-6.12.0-1").write_bytes(b"no modules")
    found = gk.kernel_candidates(boot, mods)
    assert [k.name for k, _ in found] == [
        "vmlinuz-6.12.0-1",
        "vmlinuz-6.11.0-1",
        "vmlinuz-6.10.0-1",
        "vmlinuz-6.9.0-1",
    ]
    assert found[0][1] == f"no {mods / '6.12.0-1' / 'modules.dep'}"
    assert found[1][1] == "lacks nvme"
    assert mg.find_kernel(boot, mods) == boot / "vmlinuz-6.10.0-1"


def test_vbench_check_reports_the_kernel_the_builder_takes() -> None:
    from vbench.host.checks import check_guest_kernel, read_facts
    from vbench.host.paths import HostPaths

    result = check_guest_kernel(read_facts(HostPaths()))
    try:
        kernel = mg.find_kernel()
    except HostError as exc:
        assert result.status.value == "WARN"  # neither the check nor the builder finds one
        assert "apt-get install linux-image-amd64" in str(exc)
        return
    assert result.status.value == "PASS"
    assert result.data["kernel"] == str(kernel)


def test_modules_in_dep_agrees_with_the_full_parse() -> None:
    text = (
        "kernel/drivers/virtio/virtio-pci.ko.zst: kernel/x/virtio_ring.ko\n"
        "kernel/drivers/block/xvirtio_blk.ko:\n"  # another module whose name ends alike
        "kernel/drivers/nvme/host/nvme.ko.xz: kernel/drivers/nvme/host/nvme-core.ko.xz\n"
        "kernel/drivers/nvme/host/nvme-core.ko.xz:\n"
    )
    wanted = ["virtio_pci", "virtio_blk", "nvme", "nvme_core", "e1000"]
    assert gk.modules_in_dep(text, wanted) == {"virtio_pci", "nvme", "nvme_core"}
    assert gk.modules_in_dep(text, wanted) == set(gk.parse_modules_dep(text)) & set(wanted)


def test_xen_frontends_are_in_the_image_and_loaded_only_on_xen(
    built: tuple[Path, mg.Microguest],
) -> None:
    _, guest = built
    members = _cpio_members(guest.initrd)
    xen = members["etc/vbench/modules.xen"].decode().split()
    moddir = Path("/lib/modules") / guest.kernel_release
    deps = mg.parse_modules_dep((moddir / "modules.dep").read_text())
    have = {m for m in mg.XEN_MODULES if m in deps}
    assert have <= {mg.module_name(p) for p in xen}  # each one the kernel has, deps first
    pos = _position(xen)
    for name in have:
        for dep in deps[name][1]:
            assert mg.module_name(dep) not in pos or pos[mg.module_name(dep)] < pos[name]
    for p in xen:
        assert f"usr/lib/modules/{p}" in members
    init = members["init"].decode()
    assert "if [ -d /sys/bus/xen/devices ]; then" in init and "modules.xen" in init


def test_domain_spec_of_a_test_guest_makes_its_sparse_disk(tmp_path: Path) -> None:
    guest = mg.Microguest(
        kernel=tmp_path / "kernel",
        initrd=tmp_path / "initrd.img",
        cmdline="console=ttyS0",
        digest="d",
        size_bytes=1,
        kernel_release="6.1.0",
    )
    spec = guest.domain_spec("vbench-t", tmp_path, run_id="t", case="c", disk_mib=8)
    disk = tmp_path / "disk.raw"
    assert spec.disk_path == str(disk) and spec.disk_bus == "virtio"
    assert disk.stat().st_size == 8 * 2**20 and disk.stat().st_blocks == 0  # sparse
    assert (spec.domain_type, spec.vcpus, spec.memory_mib, spec.nic_model) == ("qemu", 1, 512, None)
    assert (spec.kernel, spec.initrd) == (str(guest.kernel), str(guest.initrd))
    assert spec.cmdline == "console=ttyS0" and spec.agent == AgentChannel()
    assert spec.console_log == str(tmp_path / "console.log")

    bare = guest.domain_spec(
        "vbench-u",
        tmp_path / "u",
        run_id="t",
        case="c",
        disk_bus=None,
        cmdline="x",
        nic_model="e1000",
    )
    assert (bare.disk_path, bare.disk_bus, bare.cmdline, bare.nic_model) == (
        None,
        None,
        "x",
        "e1000",
    )
    assert not (tmp_path / "u").exists()  # no disk, nothing made
