"""The microguest: a kernel + initramfs assembled from the host's own files, with no download.

The initramfs holds busybox, fio, stress-ng, iperf3, sockperf and qemu-ga (with exactly the
shared libraries `ldd` says they load: none for Debian's static busybox), the kernel modules of
the disk and NIC models we benchmark (resolved through modules.dep, loaded in dependency order by
/init), and a short /init script.

It is cached under `default_cache_root()` by a digest of every input (source path, size and
mtime of each copied file, the init script, the builder version, the compression), and built
atomically: in a temporary directory that is renamed into place, so a half-built image is never
used and concurrent builders cannot corrupt each other.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from vbench.command import CommandFailed, run
from vbench.domxml import AgentChannel, DomainSpec
from vbench.errors import HostError
from vbench.guest.kernel import find_kernel, module_name, parse_modules_dep
from vbench.guest.kernel import missing_input as _missing
from vbench.packages import (
    AGENT_MODULES,
    DEVICE_MODULES,
    MICROGUEST_PROGRAMS,
    PASSTHROUGH_MODULES,
    XEN_MODULES,
)

BUILDER_VERSION = "4"
MAX_INITRD_BYTES = 30 * 1024 * 1024

# Why each option: `quiet loglevel=3` keeps the serial console (slow under TCG) nearly silent;
# `tsc=reliable no_timer_check` skip clocksource calibration/watchdog work that TCG makes slow;
# `i8042.*` skip probing a PS/2 controller the guest never uses; `panic=-1` turns a broken /init
# into a reboot, which the domain maps to destroy, instead of a hung guest; `rdinit=/init` runs the
# initramfs init directly; `mitigations=off` and `nokaslr` save work nobody benchmarks here.
DEFAULT_CMDLINE = (
    "console=ttyS0 quiet loglevel=3 panic=-1 rdinit=/init tsc=reliable no_timer_check "
    "i8042.noaux i8042.nokbd i8042.nopnp i8042.dumbkbd mitigations=off nokaslr "
    "random.trust_cpu=on"
)

# Libraries that fio (and stress-ng) link only for engines vbench never uses (Ceph RBD,
# GlusterFS, NBD, RDMA, PMEM, IPsec).  They pull in ~70 MB (ceph-common, boost, ICU data...), so
# the image ships small stubs in their place: same soname and versioned symbols, each function
# exits with a message if ever called.
STUB_LIBS: tuple[str, ...] = (
    "libgfapi.so.0",
    "libnbd.so.0",
    "libibverbs.so.1",
    "librdmacm.so.1",
    "librados.so.2",
    "librbd.so.1",
    "libpmemblk.so.1",
    "libpmem.so.1",
    # stress-ng's ipsec-mb stressor only (12.7 MB); the CPU/VM/IO stressors never touch it.
    "libIPSec_MB.so.1",
)
# qemu-ga's guest-shutdown runs /sbin/shutdown; busybox has no such applet.
_SHUTDOWN_SCRIPT = b"#!/bin/sh\nsync\nexec poweroff -f\n"
# Merged /usr, like the host: a library found at /lib/x is stored at /usr/lib/x.
_MERGED_DIRS = ("bin", "sbin", "lib", "lib64")


@dataclass(frozen=True)
class Microguest:
    kernel: Path
    initrd: Path
    cmdline: str
    digest: str
    size_bytes: int  # of the compressed initramfs
    kernel_release: str

    def domain_spec(
        self,
        name: str,
        workdir: Path,
        *,
        run_id: str,
        case: str,
        disk_bus: str | None = "virtio",
        disk_mib: int = 64,
        nic_model: str | None = None,
        cmdline: str | None = None,
        agent: AgentChannel | None = None,
    ) -> DomainSpec:
        """A small domain of this guest for a test or a benchmark (a run builds its own from the
        scenario): 1 vCPU, 512 MiB, TCG, its console log in `workdir` and, with a `disk_bus`, a
        sparse `disk_mib` MiB scratch disk it makes there.  `workdir` must be one QEMU reaches."""
        disk: Path | None = None
        if disk_bus is not None:
            disk = workdir / "disk.raw"
            with disk.open("wb") as fh:
                fh.truncate(disk_mib * 2**20)
        return DomainSpec(
            name=name,
            run_id=run_id,
            case=case,
            domain_type="qemu",  # TCG: KVM guests hang on the machines these run on
            vcpus=1,
            memory_mib=512,
            kernel=str(self.kernel),
            initrd=str(self.initrd),
            cmdline=self.cmdline if cmdline is None else cmdline,
            console_log=str(workdir / "console.log"),
            disk_path=None if disk is None else str(disk),
            disk_bus=disk_bus,
            nic_model=nic_model,
            agent=agent or AgentChannel(),
        )


@dataclass(frozen=True)
class HostSources:
    """Where the builder takes its inputs from (the host by default; tests point it elsewhere)."""

    kernel: Path
    modules_dir: Path  # /lib/modules/<release>
    kernel_release: str
    programs: tuple[tuple[str, Path], ...]  # (name in the guest, host binary); busybox first
    init_script: str
    compression: tuple[str, ...] = ("lz4", "-l", "-9", "-q")
    extra_files: tuple[tuple[str, Path], ...] = field(default_factory=tuple)


def default_cache_root() -> Path:
    """`/var/cache/vbench` for root (qemu runs as libvirt-qemu, which cannot enter /root);
    `$XDG_CACHE_HOME/vbench` (default `~/.cache/vbench`) for other users."""
    if os.geteuid() == 0:
        return Path("/var/cache/vbench")
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".cache"
    return base / "vbench"


# --- pure helpers -------------------------------------------------------------------------------


def resolve_modules(dep_text: str, wanted: Iterable[str]) -> list[str]:
    """Paths of `wanted` modules and everything they depend on, each after its dependencies.

    Raises KeyError naming a module that modules.dep does not know (built in or absent).
    """
    table = parse_modules_dep(dep_text)
    by_path = {path: name for name, (path, _) in table.items()}
    order: list[str] = []
    seen: set[str] = set()
    visiting: set[str] = set()

    def visit(name: str) -> None:
        if name in seen:
            return
        if name in visiting:
            raise ValueError(f"modules.dep has a dependency cycle through {name}")
        visiting.add(name)
        path, deps = table[name]
        for dep in deps:
            visit(by_path.get(dep, module_name(dep)))
        visiting.discard(name)
        seen.add(name)
        order.append(path)

    for name in wanted:
        visit(name.replace("-", "_"))
    return order


def passthrough_aliases(alias_text: str, modules: Iterable[str]) -> list[tuple[str, str]]:
    """(PCI modalias pattern, module) lines of modules.alias for `modules`, in file order."""
    wanted = {m.replace("-", "_") for m in modules}
    out = []
    for line in alias_text.splitlines():
        parts = line.split()
        if len(parts) != 3 or parts[0] != "alias" or not parts[1].startswith("pci:"):
            continue
        name = parts[2].replace("-", "_")
        if name in wanted:
            out.append((parts[1], name))
    return out


def parse_ldd(output: str) -> list[Path]:
    """The files `ldd` says a binary loads (the loader included, the vDSO left out)."""
    found: list[Path] = []
    for line in output.splitlines():
        line = line.strip()
        if "=>" in line:
            target = line.split("=>", 1)[1].strip().split(" (")[0].strip()
        else:
            target = line.split(" (")[0].strip()
        if target.startswith("/"):
            found.append(Path(target))
        elif target == "not found" or line.endswith("not found"):
            raise HostError(f"a shared library is missing on the host: {line}")
    return found


def image_path(host_path: str) -> str:
    """Where a host file lives in the image (merged /usr): `/lib/x` -> `usr/lib/x`."""
    rel = host_path.lstrip("/")
    top = rel.split("/", 1)[0]
    return f"usr/{rel}" if top in _MERGED_DIRS else rel


# --- host discovery -----------------------------------------------------------------------------


def host_sources() -> HostSources:
    """The inputs on this host, or HostError naming the package that supplies a missing one."""
    kernel = find_kernel()
    release = kernel.name.removeprefix("vmlinuz-")
    programs: list[tuple[str, Path]] = []
    for name, path in MICROGUEST_PROGRAMS:
        p = Path(path)
        if not p.is_file():
            raise _missing(f"{name} ({path})", name)
        programs.append((name, p))
    return HostSources(
        kernel=kernel,
        modules_dir=Path("/lib/modules") / release,
        kernel_release=release,
        programs=tuple(programs),
        init_script=default_init_script(),
        compression=_compressor(kernel.parent / f"config-{release}"),
    )


# Measured under TCG on a 45 MB cpio (first userspace line, plain QEMU): uncompressed 1.6 s,
# lz4 -l 1.75 s (16 MB), zstd -19 1.9 s (10 MB), gzip 2.0 s (14 MB), zstd -10 2.0 s (11 MB).
# lz4 decompresses fastest in the guest; the kernel wants its legacy frame format (-l).
_COMPRESSORS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("CONFIG_RD_LZ4", ("lz4", "-l", "-9", "-q")),
    ("CONFIG_RD_ZSTD", ("zstd", "-q", "-19", "-T0")),
    ("CONFIG_RD_GZIP", ("gzip", "-6", "-n")),
)


def _compressor(config: Path) -> tuple[str, ...]:
    """The fastest-booting compressor that both the kernel and the host support."""
    try:
        text = config.read_text(encoding="utf-8", errors="replace")
    except OSError:
        text = "CONFIG_RD_GZIP=y"  # every distribution kernel has it
    for option, argv in _COMPRESSORS:
        if f"{option}=y" in text and shutil.which(argv[0]) is not None:
            return argv
    raise _missing("an initramfs compressor (lz4, zstd or gzip)", "lz4")


def default_init_script() -> str:
    return resources.files("vbench.guest").joinpath("init/init.sh").read_text(encoding="utf-8")


def _ldd(binary: Path, stub_dir: Path | None = None) -> list[Path]:
    env = dict(os.environ)
    env.pop("LD_PRELOAD", None)
    if stub_dir is not None:
        env["LD_LIBRARY_PATH"] = str(stub_dir)  # the stubs win over the real libraries
    else:
        env.pop("LD_LIBRARY_PATH", None)
    proc = run(["ldd", str(binary)], timeout_s=60, check=False, env=env)
    if proc.exitcode != 0:
        if "not a dynamic executable" in proc.out + proc.err:
            return []
        raise HostError(f"`ldd {binary}` failed: {proc.err.strip() or proc.out.strip()}")
    return parse_ldd(proc.out)


def _busybox_applets(busybox: Path) -> list[str]:
    proc = run([str(busybox), "--list-full"], timeout_s=30, check=False)
    if proc.exitcode != 0:
        raise _missing("a busybox with --list-full", "busybox")
    return [line.strip() for line in proc.out.splitlines() if line.strip()]


# --- the kernel: boot the uncompressed ELF through PVH when the kernel supports it -------------


def kernel_supports_pvh(config_text: str) -> bool:
    return re.search(r"^CONFIG_PVH=y$", config_text, re.MULTILINE) is not None


def extract_vmlinux(bzimage: bytes) -> bytes | None:
    """The ELF kernel inside a bzImage (xz, gzip or zstd payload), or None if none is found.

    Under TCG a bzImage spends ~2 s decompressing itself; QEMU boots the ELF directly via its
    PVH entry point, so we decompress once on the host instead.
    """
    import gzip
    import lzma
    import zlib

    def try_xz(off: int) -> bytes:
        return lzma.LZMADecompressor(format=lzma.FORMAT_XZ).decompress(bzimage[off:])

    def try_gzip(off: int) -> bytes:
        return zlib.decompressobj(wbits=31).decompress(bzimage[off:])

    def try_zstd(off: int) -> bytes:
        return run(["zstd", "-dcq"], input=bzimage[off:], timeout_s=120, check=False).stdout

    attempts: tuple[tuple[bytes, Callable[[int], bytes]], ...] = (
        (b"\xfd7zXZ\x00", try_xz),
        (b"\x1f\x8b\x08", try_gzip),
        (b"\x28\xb5\x2f\xfd", try_zstd),
    )
    for magic, decompress in attempts:
        off = bzimage.find(magic)
        if off < 0:
            continue
        try:
            out = decompress(off)
        except (lzma.LZMAError, zlib.error, gzip.BadGzipFile, OSError, CommandFailed):
            continue
        if out[:4] == b"\x7fELF":
            return out
    return None


def _install_kernel(src: HostSources, dest: Path) -> str:
    """Put the kernel at `dest`; returns how it boots ('pvh-elf' or 'bzimage')."""
    config = src.kernel.parent / f"config-{src.kernel_release}"
    try:
        pvh = kernel_supports_pvh(config.read_text(encoding="utf-8", errors="replace"))
    except OSError:
        pvh = False
    if pvh:
        elf = extract_vmlinux(src.kernel.read_bytes())
        if elf is not None:
            dest.write_bytes(elf)
            return "pvh-elf"
    shutil.copyfile(src.kernel, dest)
    return "bzimage"


# --- stub libraries -----------------------------------------------------------------------------

_OBJDUMP_SYM = re.compile(
    r"^[0-9a-f]+\s+(?P<flags>.{7})\s+(?P<section>\S+)\s+[0-9a-f]+\s+"
    r"(?:\((?P<hidden>[^)]+)\)|(?P<version>\S+))\s+(?P<name>\S+)$"
)


def parse_dynamic_symbols(objdump_t: str) -> list[tuple[str, str | None, bool, str]]:
    """`objdump -T` rows as (name, version or None for Base, defined?, kind 'F'|'O'|'')."""
    rows: list[tuple[str, str | None, bool, str]] = []
    for line in objdump_t.splitlines():
        m = _OBJDUMP_SYM.match(line.strip())
        if m is None:
            continue
        version = m["hidden"] or m["version"]
        if version in ("Base", "*local*", "*global*"):
            version = None
        flags = m["flags"]
        kind = "F" if "F" in flags else ("O" if "O" in flags else "")
        rows.append((m["name"], version, m["section"] != "*UND*", kind))
    return rows


def stub_source(soname: str, symbols: dict[str, tuple[str | None, str]]) -> tuple[str, str]:
    """C source and a version script for a stub of `soname` defining `symbols`."""
    lines = [
        "#include <unistd.h>",
        "#include <string.h>",
        "static void vbench_stub(const char *s) {",
        f'    const char m[] = "vbench microguest: {soname} is a stub; called ";',
        "    (void)!write(2, m, sizeof m - 1); (void)!write(2, s, strlen(s));",
        '    (void)!write(2, "\\n", 1); _exit(127);',
        "}",
    ]
    nodes: dict[str, list[str]] = {}
    for name in sorted(symbols):
        version, kind = symbols[name]
        if kind == "O":
            lines.append(f"char {name}[64];")
        else:
            lines.append(f'void {name}(void) {{ vbench_stub("{name}"); }}')
        if version is not None:
            nodes.setdefault(version, []).append(name)
    script = "".join(
        f"{v} {{ global: {' '.join(f'{n};' for n in names)} }};\n" for v, names in nodes.items()
    )
    return "\n".join(lines) + "\n", script


def _objdump(path: Path) -> str:
    proc = run(["objdump", "-T", str(path)], timeout_s=120, check=False)
    if proc.exitcode != 0:
        raise HostError(f"`objdump -T {path}` failed: install binutils")
    return proc.out


def make_stubs(binaries: Sequence[Path], out_dir: Path) -> list[str]:
    """Build stubs of STUB_LIBS for what `binaries` import from them; returns the sonames made."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        raise _missing("a C compiler (cc or gcc) to build the microguest's stubs", "gcc")
    if shutil.which("objdump") is None:
        raise _missing("objdump", "objdump")
    wanted: dict[str, tuple[str | None, str]] = {}
    for binary in binaries:
        for name, version, defined, kind in parse_dynamic_symbols(_objdump(binary)):
            if not defined:
                wanted[name] = (version, kind)
    made: list[str] = []
    real_libs = {p.name: p for b in binaries for p in _ldd(b)}
    for soname in STUB_LIBS:
        real = real_libs.get(soname)
        if real is None:
            continue
        provides = {
            name: (version, kind)
            for name, version, defined, kind in parse_dynamic_symbols(_objdump(real))
            if defined and kind
        }
        symbols: dict[str, tuple[str | None, str]] = {}
        for name, (ref_version, kind) in wanted.items():
            if name in provides:
                symbols[name] = (ref_version or provides[name][0], kind or provides[name][1])
        source, script = stub_source(soname, symbols)
        c_file = out_dir / f"{soname}.c"
        c_file.write_text(source, encoding="utf-8")
        argv = [cc, "-shared", "-fPIC", "-O1", "-w", f"-Wl,-soname,{soname}"]
        if script:
            (out_dir / f"{soname}.map").write_text(script, encoding="utf-8")
            argv.append(f"-Wl,--version-script,{out_dir / f'{soname}.map'}")
        argv += ["-o", str(out_dir / soname), str(c_file)]
        proc = run(argv, timeout_s=300, check=False, need="gcc")
        if proc.exitcode != 0:
            raise HostError(f"building the {soname} stub failed: {proc.err.strip()[-300:]}")
        made.append(soname)
    return made


# --- the image plan -----------------------------------------------------------------------------


@dataclass
class _Plan:
    """What goes into the cpio: files copied from the host, generated files, links, dirs."""

    files: dict[str, tuple[Path, int]] = field(default_factory=dict)  # image path -> (src, mode)
    data: dict[str, tuple[bytes, int]] = field(default_factory=dict)
    links: dict[str, str] = field(default_factory=dict)
    dirs: set[str] = field(default_factory=set)
    modules: list[str] = field(default_factory=list)

    def add_file(self, dest: str, src: Path, mode: int = 0o755) -> None:
        self.links.pop(dest, None)  # a real file wins over a busybox applet link of that name
        self.files[dest] = (src, mode)

    def all_dirs(self) -> list[str]:
        out = set(self.dirs)
        for p in [*self.files, *self.data, *self.links]:
            parts = p.split("/")[:-1]
            for i in range(1, len(parts) + 1):
                out.add("/".join(parts[:i]))
        return sorted(out)


def _plan(src: HostSources, stub_dir: Path | None = None) -> _Plan:
    plan = _Plan()
    plan.dirs.update(["dev", "proc", "sys", "run", "tmp", "var", "etc", "root", "usr/lib64"])
    for top in _MERGED_DIRS:
        plan.links[top] = f"usr/{top}"
    plan.links["var/run"] = "../run"

    busybox = src.programs[0][1]
    for applet in _busybox_applets(busybox):
        plan.links[image_path("/" + applet)] = "/usr/bin/busybox"
    plan.add_file("usr/bin/busybox", busybox)
    for lib in _ldd(busybox):  # none for Debian's static busybox; a dynamic one needs its libc
        plan.add_file(image_path(str(lib)), lib.resolve())
    for name, binary in src.programs[1:]:
        in_bin = binary.parent.name in ("bin", "sbin")
        dest = image_path(str(binary)) if in_bin else f"usr/bin/{name}"
        plan.add_file(dest, binary)
        for lib in _ldd(binary, stub_dir):
            if stub_dir is not None and lib.parent == stub_dir:
                # a stub takes the real library's place (found the usual way by the loader)
                plan.add_file(f"usr/lib/x86_64-linux-gnu/{lib.name}", lib, 0o755)
            else:
                plan.add_file(image_path(str(lib)), lib.resolve())
    for dest, path in src.extra_files:
        plan.add_file(dest, path, 0o644)

    dep_path = src.modules_dir / "modules.dep"
    try:
        dep_text = dep_path.read_text(encoding="utf-8")
    except OSError as exc:
        raise HostError(f"cannot read {dep_path}: {exc.strerror}") from None
    try:
        agent = resolve_modules(dep_text, AGENT_MODULES)
        devices = [m for m in resolve_modules(dep_text, DEVICE_MODULES) if m not in agent]
    except KeyError as exc:
        raise _missing(f"kernel module {exc.args[0]} in {dep_path}", "kernel") from None
    # each pass-through driver the kernel has, with the dependencies the image lacks so far
    present = set(parse_modules_dep(dep_text))
    loaded_early = set(agent) | set(devices)
    passthrough: dict[str, list[str]] = {}
    for name in PASSTHROUGH_MODULES:
        if name in present:
            paths = [m for m in resolve_modules(dep_text, [name]) if m not in loaded_early]
            passthrough[name] = paths
    extra = list(dict.fromkeys(p for paths in passthrough.values() for p in paths))
    # Xen's frontends the kernel has (Debian's: modules), with what the image lacks so far
    have_xen = [name for name in XEN_MODULES if name in present]
    xen = [m for m in resolve_modules(dep_text, have_xen) if m not in loaded_early]
    extra += [m for m in xen if m not in extra]
    for rel in [*agent, *devices, *extra]:
        plan.add_file(f"usr/lib/modules/{rel}", src.modules_dir / rel, 0o644)
    plan.modules = [*agent, *devices, *extra]
    plan.data["etc/vbench/modules.agent"] = ("\n".join(agent) + "\n").encode(), 0o644
    plan.data["etc/vbench/modules.devices"] = ("\n".join(devices) + "\n").encode(), 0o644
    plan.data["etc/vbench/modules.xen"] = "".join(f"{m}\n" for m in xen).encode(), 0o644
    alias_path = src.modules_dir / "modules.alias"
    try:
        alias_text = alias_path.read_text(encoding="utf-8")
    except OSError as exc:
        raise HostError(f"cannot read {alias_path}: {exc.strerror}") from None
    aliases = passthrough_aliases(alias_text, passthrough)
    plan.data["etc/vbench/modules.passthrough"] = (
        "".join(f"{name} {' '.join(paths)}\n" for name, paths in passthrough.items()).encode(),
        0o644,
    )
    plan.data["etc/vbench/modules.passthrough.alias"] = (
        "".join(f"{pattern} {name}\n" for pattern, name in aliases).encode(),
        0o644,
    )
    plan.data["init"] = src.init_script.encode(), 0o755
    plan.data["usr/sbin/shutdown"] = _SHUTDOWN_SCRIPT, 0o755
    plan.links.pop("usr/sbin/shutdown", None)
    plan.data["etc/passwd"] = b"root:x:0:0:root:/root:/bin/sh\n", 0o644
    plan.data["etc/group"] = b"root:x:0:\n", 0o644
    plan.data["etc/hostname"] = b"vbench-microguest\n", 0o644
    return plan


def _digest(src: HostSources, plan: _Plan) -> str:
    h = hashlib.sha256()
    h.update(f"builder={BUILDER_VERSION}\ncompression={src.compression}\n".encode())
    h.update(f"cmdline={DEFAULT_CMDLINE}\n".encode())
    st = src.kernel.stat()
    h.update(f"kernel={src.kernel}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    for dest in sorted(plan.files):
        path, mode = plan.files[dest]
        st = path.stat()
        h.update(f"f {dest} {path} {st.st_size} {st.st_mtime_ns} {mode:o}\n".encode())
    for dest in sorted(plan.data):
        body, mode = plan.data[dest]
        h.update(f"d {dest} {mode:o} {hashlib.sha256(body).hexdigest()}\n".encode())
    for dest in sorted(plan.links):
        h.update(f"l {dest} {plan.links[dest]}\n".encode())
    return h.hexdigest()


# --- cpio (newc) writer: no dependency on the cpio tool, owner root, stable timestamps ---------


class _CpioWriter:
    def __init__(self, out: Callable[[bytes], object]) -> None:
        self._out = out
        self._ino = 1
        self.size = 0

    def _emit(self, name: str, mode: int, body: bytes = b"", nlink: int = 1) -> None:
        name_b = name.encode() + b"\0"
        header = "070701" + "".join(
            f"{v:08x}"
            for v in (self._ino, mode, 0, 0, nlink, 0, len(body), 0, 0, 0, 0, len(name_b), 0)
        )
        self._ino += 1
        chunk = header.encode() + name_b
        chunk += b"\0" * (-len(chunk) % 4)
        chunk += body + b"\0" * (-len(body) % 4)
        self._out(chunk)
        self.size += len(chunk)

    def directory(self, name: str) -> None:
        self._emit(name, 0o040755, nlink=2)

    def file(self, name: str, body: bytes, perm: int) -> None:
        self._emit(name, 0o100000 | perm, body)

    def symlink(self, name: str, target: str) -> None:
        self._emit(name, 0o120777, target.encode())

    def trailer(self) -> None:
        self._emit("TRAILER!!!", 0)


def _write_initrd(plan: _Plan, compression: Sequence[str], dest: Path) -> int:
    """Write the compressed cpio to `dest`; returns the uncompressed size."""
    # Built in memory (tens of MB) and compressed by one `run`: the one way vbench runs programs.
    buf = io.BytesIO()
    cpio = _CpioWriter(buf.write)
    for d in plan.all_dirs():
        if d not in plan.links:
            cpio.directory(d)
    for name in sorted(plan.links):
        cpio.symlink(name, plan.links[name])
    for name in sorted(plan.data):
        body, mode = plan.data[name]
        cpio.file(name, body, mode)
    for name in sorted(plan.files):
        path, mode = plan.files[name]
        cpio.file(name, path.read_bytes(), mode)
    cpio.trailer()
    proc = run(list(compression), input=buf.getvalue(), timeout_s=600, check=False)
    if proc.exitcode != 0:
        raise HostError(f"`{' '.join(compression)}` failed compressing the initramfs")
    dest.write_bytes(proc.stdout)
    return cpio.size


# --- the build ----------------------------------------------------------------------------------


def _load(entry: Path) -> Microguest | None:
    try:
        meta = json.loads((entry / "microguest.json").read_text(encoding="utf-8"))
        initrd = entry / "initrd.img"
        return Microguest(
            kernel=entry / "kernel",
            initrd=initrd,
            cmdline=str(meta["cmdline"]),
            digest=str(meta["digest"]),
            size_bytes=initrd.stat().st_size,
            kernel_release=str(meta["kernel_release"]),
        )
    except (OSError, ValueError, KeyError):
        return None


def build_microguest(
    cache_root: Path | None = None,
    *,
    force: bool = False,
    progress: Callable[[str], None] | None = None,
) -> Microguest:
    """The microguest for this host, from the cache when its inputs have not changed."""
    return build_from_sources(host_sources(), cache_root, force=force, progress=progress)


def build_from_sources(
    src: HostSources,
    cache_root: Path | None = None,
    *,
    force: bool = False,
    progress: Callable[[str], None] | None = None,
) -> Microguest:
    say = progress or (lambda _msg: None)
    root = (cache_root or default_cache_root()) / "microguest"
    plan = _plan(src)
    digest = _digest(src, plan)
    entry = root / digest[:20]
    if not force:
        cached = _load(entry)
        if cached is not None and cached.digest == digest:
            say(f"cache hit: {entry}")
            return cached

    say(f"building the microguest for kernel {src.kernel_release} into {entry}")
    started = time.monotonic()
    try:
        root.mkdir(parents=True, exist_ok=True)
        # Everyone (libvirt-qemu in particular) must be able to reach the files.
        for p in [root, *root.parents]:
            if p == Path("/") or p.stat().st_mode & 0o005 == 0o005:
                break
            if p.stat().st_uid == os.geteuid():
                p.chmod(p.stat().st_mode | 0o005)
        tmp = Path(tempfile.mkdtemp(prefix=".build-", dir=root))
    except OSError as exc:
        raise HostError(f"cannot write the microguest cache {root}: {exc.strerror}") from None
    try:
        tmp.chmod(0o755)
        kernel_format = _install_kernel(src, tmp / "kernel")
        say(f"kernel: {kernel_format}")
        with tempfile.TemporaryDirectory(prefix="vbench-stubs-") as stub_tmp:
            stub_dir = Path(stub_tmp)
            stubs = make_stubs([b for _, b in src.programs[1:]], stub_dir)
            say(f"stubbed {len(stubs)} libraries of unused fio engines")
            plan = _plan(src, stub_dir)
            raw = _write_initrd(plan, src.compression, tmp / "initrd.img")
        meta = {
            "digest": digest,
            "builder_version": BUILDER_VERSION,
            "kernel_release": src.kernel_release,
            "cmdline": DEFAULT_CMDLINE,
            "modules": plan.modules,
            "stubs": stubs,
            "kernel_format": kernel_format,
            "files": sorted(plan.files),
            "uncompressed_bytes": raw,
            "compression": list(src.compression),
        }
        (tmp / "microguest.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
        for f in tmp.iterdir():
            f.chmod(0o644)
        size = (tmp / "initrd.img").stat().st_size
        if size > MAX_INITRD_BYTES:
            raise HostError(
                f"the microguest initramfs is {size / 2**20:.1f} MiB, over the "
                f"{MAX_INITRD_BYTES // 2**20} MiB limit"
            )
        if force and entry.exists():
            shutil.rmtree(entry, ignore_errors=True)
        try:
            tmp.rename(entry)
        except OSError:
            # Another builder won the race with the same inputs: use its result.
            shutil.rmtree(tmp, ignore_errors=True)
        _prune(root, keep=entry)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    built = _load(entry)
    if built is None:
        raise HostError(f"the microguest in {entry} is unreadable after building it")
    say(
        f"built {built.initrd} ({built.size_bytes / 2**20:.1f} MiB) "
        f"in {time.monotonic() - started:.1f} s"
    )
    return built


def _prune(root: Path, keep: Path, max_entries: int = 3) -> None:
    """Drop the oldest cached images beyond `max_entries` (never the one just built)."""
    entries = sorted(
        (p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")),
        key=lambda p: p.stat().st_mtime,
        reverse=True,
    )
    for old in entries[max_entries:]:
        if old != keep:
            shutil.rmtree(old, ignore_errors=True)
