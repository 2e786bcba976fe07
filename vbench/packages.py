"""What vbench needs from the host's distribution, and which package supplies it: ONE table.

Read by the readiness remedies (`install_remedy`), the microguest builder's "X not found: install P"
errors and `scripts/setup-host.sh`, whose `need` lines tests/test_packages.py proves equal to
`setup_need_lines()`.  Also the microguest's own needs (its programs, its kernel modules) because
`vbench check` and the builder must agree on them.

Pure: no filesystem, no subprocess.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Need:
    """One thing vbench uses on the host and its package per distribution family."""

    name: str  # the key callers use: a command ("fio") or a role ("kernel")
    debian: str
    suse: str
    redhat: str | None = None  # remedies only (setup-host.sh knows Debian and SUSE); None: `name`
    # setup-host.sh probes: a command, an absolute path (glob allowed) or lib:SONAME; () = not there
    probes: tuple[str, ...] = ()
    test_only: bool = False  # only the test suite uses it: setup-host.sh --test (`need_test`)

    def package(self, family: str) -> str:
        if family == "debian":
            return self.debian
        if family == "suse":
            return self.suse
        if family == "redhat":
            return self.redhat or self.name
        return self.name  # unknown family: name the thing itself


NEEDS: tuple[Need, ...] = (
    Need(
        "libvirtd", "libvirt-daemon-system", "libvirt-daemon-qemu", "libvirt-daemon", ("libvirtd",)
    ),
    Need("virsh", "libvirt-clients", "libvirt-client", "libvirt-client", ("virsh",)),
    Need(
        "virt-host-validate",
        "libvirt-clients",
        "libvirt-client",
        "libvirt-client",
        ("virt-host-validate",),
    ),
    Need("qemu-system-x86_64", "qemu-system-x86", "qemu-x86", "qemu-kvm", ("qemu-system-x86_64",)),
    Need("qemu-img", "qemu-utils", "qemu-tools", "qemu-img", ("qemu-img",)),
    Need("dnsmasq", "dnsmasq-base", "dnsmasq", "dnsmasq", ("/usr/sbin/dnsmasq",)),
    Need("pkg-config", "pkg-config", "pkg-config", "pkgconf-pkg-config", ("pkg-config",)),
    Need("gcc", "gcc", "gcc", "gcc", ("gcc",)),
    Need("objdump", "binutils", "binutils", "binutils", ("objdump",)),
    Need(
        "libvirt-headers",
        "libvirt-dev",
        "libvirt-devel",
        "libvirt-devel",
        ("/usr/include/libvirt/libvirt.h",),
    ),
    Need("xmllint", "libxml2-utils", "libxml2-tools", "libxml2", ("xmllint",)),
    Need("kernel", "linux-image-amd64", "kernel-default", "kernel", ("/boot/vmlinuz-*",)),
    # The microguest needs a busybox it can copy: Debian's `busybox` is dynamic, so the static
    # one; SUSE's `busybox` provides /usr/bin/busybox (a dynamic one gets its libc copied too).
    Need("busybox", "busybox-static", "busybox", "busybox", ("/bin/busybox",)),
    Need("fio", "fio", "fio", "fio", ("fio",)),
    Need("stress-ng", "stress-ng", "stress-ng", "stress-ng", ("stress-ng",)),
    Need("iperf3", "iperf3", "iperf", "iperf3", ("iperf3",)),
    Need("sockperf", "sockperf", "sockperf", "sockperf", ("sockperf",)),
    Need("ip", "iproute2", "iproute2", "iproute2", ("ip",)),
    Need(
        "qemu-ga",
        "qemu-guest-agent",
        "qemu-guest-agent",
        "qemu-guest-agent",
        ("/usr/sbin/qemu-ga", "/usr/bin/qemu-ga"),
    ),
    Need("lz4", "lz4", "lz4", "lz4", ("lz4",)),
    Need("umockdev-run", "umockdev", "umockdev", "umockdev", ("umockdev-run",)),
    # NVMe SR-IOV: secondary controllers (virt-mgmt) and namespace attachment of a VF
    Need("nvme", "nvme-cli", "nvme-cli", "nvme-cli", ("nvme",)),
    # the lab (scripts/lab/run_lab.py) packs its L1 initramfs with cpio
    Need("cpio", "cpio", "cpio", "cpio", ("cpio",)),
    Need("pdftotext", "poppler-utils", "poppler-tools", "poppler-utils", ("pdftotext",)),
    Need("libpango", "libpango-1.0-0", "libpango-1_0-0", "pango", ("lib:libpango-1.0.so.0",)),
    Need(
        "libpangoft2", "libpangoft2-1.0-0", "libpango-1_0-0", "pango", ("lib:libpangoft2-1.0.so.0",)
    ),
    # WeasyPrint subsets fonts with it (without it: a deprecation warning and bigger PDFs)
    Need(
        "libharfbuzz-subset",
        "libharfbuzz-subset0",
        "libharfbuzz-subset0",
        "harfbuzz",
        ("lib:libharfbuzz-subset.so.0",),
    ),
    # Python: headers to build libvirt-python
    Need(
        "python-headers",
        "python3-dev",
        "python3-devel",
        "python3-devel",
        ("/usr/include/python3*/Python.h",),
    ),
    # Tests only: tests/test_fleet_e2e.py starts its own sshd on loopback addresses.
    Need("sshd", "openssh-server", "openssh-server", "openssh-server", ("/usr/sbin/sshd",), True),
    # The test suite only (setup-host.sh --test): headless Chromium renders the HTML report
    Need("chromium", "chromium", "chromium", "chromium", ("chromium",), test_only=True),
)

_BY_NAME: Mapping[str, Need] = {n.name: n for n in NEEDS}

# The programs the microguest copies from the host: (name in the guest, host path), busybox first.
MICROGUEST_PROGRAMS: tuple[tuple[str, str], ...] = (
    ("busybox", "/bin/busybox"),
    ("fio", "/usr/bin/fio"),
    ("stress-ng", "/usr/bin/stress-ng"),
    ("iperf3", "/usr/bin/iperf3"),
    ("sockperf", "/usr/bin/sockperf"),
    ("qemu-ga", "/usr/sbin/qemu-ga"),
)

# The microguest's kernel modules: the agent channel (loaded first), then every emulated and
# virtio disk and NIC model of the modes.
AGENT_MODULES: tuple[str, ...] = ("virtio_pci", "virtio_console")
DEVICE_MODULES: tuple[str, ...] = (
    "virtio_blk",
    "virtio_scsi",
    "sd_mod",
    "virtio_net",
    "ata_piix",
    "ahci",
    "libata",
    "e1000",
    "e1000e",
    "8139cp",
    "8139too",
)
# Drivers of devices a guest gets assigned (VFIO / SR-IOV): NVMe and the common NIC VFs.  Those the
# kernel has go into the image; /init loads one only when an unclaimed PCI device matches its
# modules.alias patterns, so that emulated/virtio guests boot as fast as without them.
PASSTHROUGH_MODULES: tuple[str, ...] = ("nvme", "ixgbevf", "iavf", "igbvf", "mlx5_core", "igb")
# A Xen guest's paravirtual drivers (blkfront disk, netfront NIC, pcifront for PV pass-through):
# those the kernel has go into the image, loaded only on Xen (/init: /sys/bus/xen exists).
XEN_MODULES: tuple[str, ...] = ("xen_blkfront", "xen_netfront", "xen_pcifront")
# `vbench check` (guest.kernel) asks a kernel for exactly these: nvme is the one pass-through
# driver every kernel must have (the NIC VF drivers are taken where present).
MICROGUEST_MODULES: tuple[str, ...] = (*AGENT_MODULES, *DEVICE_MODULES, "nvme")


def need(name: str) -> Need:
    """The table's row for `name`; KeyError for a name nobody put in the table."""
    return _BY_NAME[name]


def package_for(name: str, family: str) -> str:
    """The package that supplies `name` on a family ('debian', 'suse', 'redhat'); else `name`."""
    row = _BY_NAME.get(name)
    return row.package(family) if row else name


def install_advice(name: str) -> str | None:
    """How to install `name` on both families, as a phrase ("install it (Debian/Ubuntu: ...)"),
    or None for a name the table does not know."""
    row = _BY_NAME.get(name)
    if row is None:
        return None
    return (
        f"install it (Debian/Ubuntu: `apt-get install {row.debian}`, "
        f"openSUSE: `zypper install {row.suse}`)"
    )


def install_hint(what: str, name: str) -> str:
    """The one line for a missing input: what is missing and both families' install commands."""
    need(name)  # KeyError for a name nobody put in the table
    return f"{what} not found: {install_advice(name)}"


def install_command(names: Iterable[str], family: str) -> str:
    """The package manager command that installs these on a family."""
    joined = " ".join(dict.fromkeys(package_for(n, family) for n in names))
    if family == "debian":
        return f"`apt-get install {joined}`"
    if family == "suse":
        return f"`zypper install {joined}`"
    if family == "redhat":
        return f"`dnf install {joined}`"
    return f"install {joined} (apt-get on Debian/Ubuntu, zypper on openSUSE/SLES)"


def setup_need_lines(*, test_only: bool = False) -> list[tuple[str, str, str]]:
    """(probe, Debian package, SUSE package): what setup-host.sh's `need` lines must say (with
    test_only: its `need_test` lines)."""
    return [(p, n.debian, n.suse) for n in NEEDS if n.test_only == test_only for p in n.probes]
