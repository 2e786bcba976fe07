#!/usr/bin/env python3
"""The lab: prove the VFIO / SR-IOV path on a machine without IOMMU or SR-IOV hardware.

Boots an L1 "lab host" under TCG: q35 with an emulated Intel IOMMU (interrupt remapping, caching
mode) and an SR-IOV NVMe controller (2 VFs, flexible queue/interrupt resources, a detached
namespace), kernel `intel_iommu=on iommu=pt`.  L1's root is THIS host's root filesystem, shared
read-only over 9p under a tmpfs overlay: the same kernel modules, QEMU, libvirt, nvme-cli, fio,
Python and vbench checkout.  Inside it, scripts/lab/l1-init.sh starts virtlogd + libvirtd and runs
scripts/lab/l1_steps.py: (a) `vbench check` says vfio and sriov are ready; (b) vbench's plan_vf +
ChangeJournal prepare a VF, fio runs on it, the journal restores, and L1's sysfs and nvme-cli show
the first state; (c) `vbench run --prepare-host scenarios/lab.toml`, plain and with a SIGTERM
mid-run, when that scenario exists.

    python scripts/lab/run_lab.py [--skip-run] [--keep] [--timeout S] [--out D] [--record-nvme D]

Prints every step's duration; exits 0 only when every step passed.  Needs root (QEMU reads the
whole root filesystem to share it), qemu-system-x86_64, a Debian kernel in /boot with its modules,
busybox-static, nvme-cli, fio, libvirt.  --record-nvme writes the nvme-cli answers of L1's fresh
NVMe PF (the recording tests/data/testbeds/lab-iommu-sriov/nvme/ holds).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
STAGE1_MODULES = ("virtio_pci", "9pnet_virtio", "9p", "overlay")
L1_MEMORY_MIB = 3072
NVME_IMAGE_MIB = 64


def say(msg: str) -> None:
    print(f"lab: {msg}", flush=True)


def find_kernel() -> tuple[Path, Path]:
    def key(p: Path) -> list[int]:
        return [int(x) for x in re.findall(r"\d+", p.name)]

    for k in sorted(Path("/boot").glob("vmlinuz-*"), key=key, reverse=True):
        moddir = Path("/lib/modules") / k.name.removeprefix("vmlinuz-")
        if (moddir / "modules.dep").is_file():
            return k, moddir
    sys.exit(
        "lab: no /boot/vmlinuz-* with modules in /lib/modules (apt-get install linux-image-amd64)"
    )


def module_paths(moddir: Path, names: tuple[str, ...]) -> list[str]:
    """modules.dep paths of `names` and their dependencies, dependencies first."""
    table: dict[str, tuple[str, list[str]]] = {}
    for line in (moddir / "modules.dep").read_text().splitlines():
        path, _, deps = line.partition(":")
        name = re.sub(r"\.ko(\.\w+)?$", "", path.rsplit("/", 1)[-1]).replace("-", "_")
        table[name] = (path.strip(), deps.split())
    by_path = {p: n for n, (p, _) in table.items()}
    order: list[str] = []

    def visit(name: str) -> None:
        path, deps = table[name]
        for d in deps:
            visit(by_path[d])
        if path not in order:
            order.append(path)

    for n in names:
        visit(n)
    return order


def build_initramfs(work: Path, moddir: Path) -> Path:
    root = work / "initramfs"
    for d in ("bin", "sbin", "proc", "sys", "dev", "run", "tmp", "etc"):
        (root / d).mkdir(parents=True, exist_ok=True)
    busybox = Path("/bin/busybox")
    shutil.copy2(busybox, root / "bin/busybox")
    applets = subprocess.run(
        [str(busybox), "--list"], capture_output=True, text=True, check=True
    ).stdout.split()
    for a in applets:
        if not (root / "bin" / a).exists():
            (root / "bin" / a).symlink_to("busybox")
    for rel in module_paths(moddir, STAGE1_MODULES):
        dest = root / moddir.relative_to("/") / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(moddir / rel, dest)
    for f in (
        "modules.dep",
        "modules.dep.bin",
        "modules.alias",
        "modules.alias.bin",
        "modules.builtin",
        "modules.builtin.bin",
        "modules.order",
    ):
        if (moddir / f).exists():
            shutil.copy2(moddir / f, root / moddir.relative_to("/") / f)
    shutil.copy2(HERE / "initramfs-9p-init.sh", root / "init")
    (root / "init").chmod(0o755)
    out = work / "initramfs.gz"
    with out.open("wb") as fh:
        find = subprocess.Popen(["find", "."], cwd=root, stdout=subprocess.PIPE)
        cpio = subprocess.Popen(
            ["cpio", "-o", "-H", "newc", "--quiet"],
            cwd=root,
            stdin=find.stdout,
            stdout=subprocess.PIPE,
        )
        subprocess.run(["gzip", "-1"], stdin=cpio.stdout, stdout=fh, check=True)
        if cpio.wait() or find.wait():
            sys.exit("lab: building the initramfs failed")
    return out


def qemu_argv(kernel: Path, initrd: Path, share: Path, nvme_img: Path, vfio_img: Path) -> list[str]:
    return [
        "qemu-system-x86_64",
        "-machine", "q35,kernel-irqchip=split",
        "-accel", "tcg",
        "-cpu", "max",
        "-smp", "2",
        "-m", str(L1_MEMORY_MIB),
        "-device", "intel-iommu,intremap=on,caching-mode=on",
        "-nodefaults", "-display", "none", "-serial", "stdio", "-no-reboot",
        "-kernel", str(kernel),
        "-initrd", str(initrd),
        # nvme_core.multipath=0: each controller's namespace is its own block device, found by
        # the controller's PCI address (no hidden nvmeXcYnZ paths).  no_timer_check: on a busy
        # host TCG is too slow for the IO-APIC timer test, which then panics ("timer doesn't
        # work through Interrupt-remapped IO-APIC"; seen here at load 11)
        "-append",
        "intel_iommu=on iommu=pt console=ttyS0 panic=-1 quiet nvme_core.multipath=0 "
        "no_timer_check tsc=reliable",
        # this host's root (read-only) and the lab's share, at fixed slots 02.0 and 03.0
        "-fsdev", "local,id=root,path=/,security_model=none,readonly=on,multidevs=remap",
        "-device", "virtio-9p-pci,fsdev=root,mount_tag=hostroot,addr=02.0",
        "-fsdev", f"local,id=lab,path={share},security_model=none,multidevs=remap",
        "-device", "virtio-9p-pci,fsdev=lab,mount_tag=lab,addr=03.0",
        # the SR-IOV NVMe PF at 0000:00:04.0 (as in tests/data/testbeds/lab-iommu-sriov)
        "-drive", f"file={nvme_img},if=none,id=nvm,format=raw",
        "-device", "nvme-subsys,id=subsys0",
        "-device",
        "nvme,serial=deadbeef,subsys=subsys0,sriov_max_vfs=2,sriov_vq_flexible=4,"
        "sriov_vi_flexible=2,max_ioqpairs=6,msix_qsize=8,addr=04.0",
        "-device", "nvme-ns,drive=nvm,nsid=1,shared=false,detached=true",
        # a plain NVMe controller at 0000:00:06.0 for the vfio mode (a whole function)
        "-drive", f"file={vfio_img},if=none,id=nvm2,format=raw",
        "-device", "nvme,serial=vfio0,drive=nvm2,addr=06.0",
    ]  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument("--timeout", type=float, default=2400, help="L1's time limit (s)")
    parser.add_argument(
        "--python", default=sys.executable, help="Python (with vbench's deps) for L1"
    )
    parser.add_argument("--record-nvme", type=Path, help="also record nvme-cli answers into DIR")
    parser.add_argument("--out", type=Path, help="copy results.json and the console log here")
    parser.add_argument(
        "--skip-run", action="store_true", help="leave out step (c), the nested guests (minutes)"
    )
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("lab: run as root (QEMU shares the root filesystem with the lab host)")
    for tool in ("qemu-system-x86_64", "nvme", "fio", "cpio", "libvirtd", "virtlogd"):
        if shutil.which(tool) is None:
            sys.exit(f"lab: {tool} is missing: run scripts/setup-host.sh")

    times: dict[str, float] = {}
    t0 = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="vbench-lab-", dir="/var/tmp"))
    share = work / "share"
    share.mkdir()
    kernel, moddir = find_kernel()
    initrd = build_initramfs(work, moddir)
    nvme_img, vfio_img = work / "nvme.img", work / "vfio.img"
    for img in (nvme_img, vfio_img):
        with img.open("wb") as f:  # real data: an unwritten file reads as zeros without I/O
            for _ in range(NVME_IMAGE_MIB):
                f.write(os.urandom(1 << 20))
    shutil.copy2(HERE / "l1-init.sh", share / "l1-init.sh")
    (share / "config.env").write_text(
        f"LAB_REPO={REPO}\nLAB_PYTHON={args.python}\n"
        + ("LAB_RECORD_NVME=1\n" if args.record_nvme else "")
        + ("LAB_SKIP_RUN=1\n" if args.skip_run else "")
    )
    times["build"] = time.monotonic() - t0
    # The microguest L1 boots for step (c), built here: L1 sees this host's cache through its root
    # and finds it there (building it under TCG would take minutes)
    t_mg = time.monotonic()
    subprocess.run(
        [args.python, "-m", "vbench", "guest", "build"],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        check=True,
        stdout=subprocess.DEVNULL,
    )
    times["microguest"] = time.monotonic() - t_mg
    say(f"microguest ready for L1's guests in {times['microguest']:.1f} s (cache: this host's)")
    say(
        f"built the L1 initramfs and two {NVME_IMAGE_MIB} MiB NVMe images in {times['build']:.1f} s"
    )

    console = work / "console.log"
    t1 = time.monotonic()
    say(f"work directory {work}; booting L1 under TCG")
    rc = 0
    with console.open("wb") as log:
        proc = subprocess.Popen(
            qemu_argv(kernel, initrd, share, nvme_img, vfio_img),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        assert proc.stdout is not None
        timed_out = threading.Event()

        def watchdog() -> None:
            timed_out.set()
            proc.kill()

        timer = threading.Timer(args.timeout, watchdog)
        timer.start()
        try:
            for line in proc.stdout:
                log.write(line)
                text = line.decode(errors="replace").rstrip()
                at = text.find("lab-l1:") if "lab-l1:" in text else text.find("stage1:")
                if at >= 0:
                    print(f"  [{time.monotonic() - t1:6.1f} s] {text[at:]}", flush=True)
        finally:
            timer.cancel()
            if proc.poll() is None:
                proc.kill()
            proc.wait()
        if timed_out.is_set():
            say(f"L1 did not finish within {args.timeout:g} s: stopped it")
            rc = 1
    times["l1"] = time.monotonic() - t1

    results_path = share / "results.json"
    if not results_path.is_file():
        say("L1 wrote no results; the end of its console:")
        print("\n".join(console.read_text(errors="replace").splitlines()[-30:]))
        rc = 1
        results: dict = {"ok": False, "steps": []}
    else:
        results = json.loads(results_path.read_text())
    marks = {}
    if (share / "l1-times.txt").is_file():
        for line in (share / "l1-times.txt").read_text().splitlines():
            k, _, v = line.partition(" ")
            marks[k] = v
    results["l1_marks_uptime_s"] = marks
    results["host_times_s"] = {k: round(v, 1) for k, v in times.items()}
    results["host_times_s"]["total"] = round(time.monotonic() - t0, 1)

    say("timings")
    print(f"  build initramfs + NVMe images       {times['build']:7.1f} s")
    print(f"  microguest (host build or cache)    {times['microguest']:7.1f} s")
    for k in ("userspace", "modules", "libvirtd"):
        if k in marks:
            print(f"  L1 {k:<32} {float(marks[k]):7.1f} s after L1's kernel start")
    for s in results.get("steps", []):
        state = "ok" if s.get("ok") else f"FAILED ({s.get('error')})"
        print(f"  {s['name']:<52} {s['duration_s']:7.1f} s  {state}")
    for a in results.get("apply", []):
        print(f"    {a['change']:<70} {a['duration_s']:5.2f} s")
    print(f"  L1 boot to power-off (wall)          {times['l1']:7.1f} s")
    print(f"  whole lab                            {results['host_times_s']['total']:7.1f} s")
    for s in results.get("steps", []):
        for mode, figs in s.get("figures", {}).items():
            text = ", ".join(f"{k} {v:g}" for k, v in sorted(figs.items()))
            say(f"{s['name']}: {mode}: {text}")
    fio = next((s for s in results.get("steps", []) if "iops_4k_randread_qd16" in s), None)
    if fio:
        say(f"fio 4k randread QD16 on the VF in L1: {fio['iops_4k_randread_qd16']} IOPS")
    if "c" in results:
        say(results["c"])
    if args.record_nvme and (share / "nvme").is_dir():
        shutil.copytree(share / "nvme", args.record_nvme, dirs_exist_ok=True)
        say(f"recorded nvme-cli answers into {args.record_nvme}")
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
        shutil.copy2(console, args.out / "console.log")
    ok = rc == 0 and bool(results.get("ok")) and marks.get("steps-rc") == "0"
    if ok and not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    else:
        say(f"kept {work}")
    say("PASSED" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
