#!/bin/bash
# Record the `lab-iommu-sriov` umockdev testbed inside the IOMMU lab: a QEMU q35 TCG VM with an
# emulated Intel IOMMU and an SR-IOV NVMe controller (see docs: ARCHITECTURE.md, Testing item 5).
#
#   scripts/record-lab-testbed.sh [OUTDIR]      (default: tests/data/testbeds/lab-iommu-sriov)
#
# Needs: qemu-system-x86_64, a Debian kernel in /boot with its modules, busybox-static, umockdev,
# systemd's udevd/udevadm (for hwdb names), e2fsprogs (mkfs.ext2 -d), cpio.  Runs as any user.
# The guest: stage 1 (initramfs) mounts the virtio disk vda as "/", stage 2 (scripts/lab/guest-init.sh)
# brings up the NIC with a default route, enables 2 VFs on the NVMe PF, binds VF 0 to vfio-pci, runs
# `umockdev-record --all`, and tars the recording plus /proc and /sys snapshots to the disk vdb.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
out=${1:-$repo/tests/data/testbeds/lab-iommu-sriov}
kernel=${LAB_KERNEL:-$(ls /boot/vmlinuz-*-amd64 | sort -V | tail -n 1)}
kver=${kernel#/boot/vmlinuz-}
moddir=/lib/modules/$kver
timeout_s=${LAB_TIMEOUT:-600}

work=$(mktemp -d /tmp/vbench-lab.XXXXXX)
cleanup() {
    local rc=$?
    if [ "$rc" -ne 0 ] || [ -n "${LAB_KEEP:-}" ]; then echo "lab: kept $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT
echo "lab: kernel $kernel, work dir $work"

# --- helpers ---------------------------------------------------------------------------------
copy_bin() {  # copy a binary and the shared libraries it needs into $1, keeping paths
    local root=$1 bin=$2 lib
    install -D -m 0755 "$bin" "$root$bin"
    for lib in $(ldd "$bin" | grep -o '/[^ ]*'); do
        [ -e "$root$lib" ] || install -D -m 0755 "$lib" "$root$lib"
    done
}
copy_modules() {  # copy modules named $2.. and their dependencies (from modules.dep) into $1
    local root=$1; shift
    local m rel dep
    for m in "$@"; do
        rel=$(grep -E "(^|/)${m//_/[-_]}\.ko(\.[a-z]+)?:" "$moddir/modules.dep" | cut -d: -f1)
        [ -n "$rel" ] || { echo "lab: module $m not found in $moddir/modules.dep" >&2; exit 1; }
        for dep in $rel $(grep -E "^$rel:" "$moddir/modules.dep" | cut -d: -f2); do
            install -D -m 0644 "$moddir/$dep" "$root$moddir/$dep"
        done
    done
    cp "$moddir"/modules.{dep,alias,builtin,order} "$root$moddir/" 2>/dev/null || true
    cp "$moddir"/modules.{dep,alias,builtin}.bin "$root$moddir/" 2>/dev/null || true
}
busybox_root() {  # a skeleton with busybox and its applet links
    local root=$1 a
    mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,proc,sys,dev,run,tmp,etc,newroot}
    install -m 0755 /bin/busybox "$root/bin/busybox"
    for a in $(/bin/busybox --list); do
        [ -e "$root/bin/$a" ] || ln -s busybox "$root/bin/$a"
    done
}

# --- stage 1: initramfs ------------------------------------------------------------------------
busybox_root "$work/initramfs"
copy_modules "$work/initramfs" crc32c_generic virtio_pci virtio_blk ext4
install -m 0755 "$here/lab/initramfs-init.sh" "$work/initramfs/init"
(cd "$work/initramfs" && find . | cpio -o -H newc --quiet | gzip -1) > "$work/initramfs.gz"

# --- stage 2: the root disk (vda) ---------------------------------------------------------------
root=$work/root
busybox_root "$root"
copy_modules "$root" crc32c_generic virtio_pci virtio_blk ext4 virtio_net nvme vfio vfio_iommu_type1 vfio_pci
copy_bin "$root" "$(command -v umockdev-record)"
copy_bin "$root" "$(readlink -f "$(command -v udevadm)")"
copy_bin "$root" /lib/systemd/systemd-udevd
[ -e "$root/usr/bin/udevadm" ] || ln -s /bin/udevadm "$root/usr/bin/udevadm"
install -D -m 0644 /lib/udev/hwdb.bin "$root/lib/udev/hwdb.bin"
mkdir -p "$root/etc/udev/rules.d"
cat > "$root/etc/udev/rules.d/50-vbench-hwdb.rules" <<'RULES'
ENV{MODALIAS}!="", IMPORT{builtin}="hwdb --subsystem=$env{SUBSYSTEM}"
RULES
install -m 0755 "$here/lab/guest-init.sh" "$root/sbin/lab-init"
mkfs.ext2 -q -F -L labroot -d "$root" "$work/root.img" 160M

truncate -s 64M "$work/nvme.img"
truncate -s 32M "$work/out.img"

# --- boot ----------------------------------------------------------------------------------------
echo "lab: booting (TCG); console log in $work/console.log"
start=$(date +%s)
timeout "$timeout_s" qemu-system-x86_64 \
    -machine q35,kernel-irqchip=split -accel tcg -cpu max -smp 1 -m 768 \
    -device intel-iommu,intremap=on,caching-mode=on \
    -nographic -no-reboot \
    -kernel "$kernel" -initrd "$work/initramfs.gz" \
    -append "intel_iommu=on iommu=pt console=ttyS0 panic=-1 ${LAB_APPEND-quiet}" \
    -drive file="$work/root.img",if=none,id=root,format=raw \
    -device virtio-blk-pci,drive=root,serial=labroot \
    -drive file="$work/out.img",if=none,id=out,format=raw \
    -device virtio-blk-pci,drive=out,serial=labout \
    -drive file="$work/nvme.img",if=none,id=nvm,format=raw \
    -device nvme-subsys,id=s0 \
    -device nvme,serial=x,subsys=s0,sriov_max_vfs=2,sriov_vq_flexible=4,sriov_vi_flexible=2,max_ioqpairs=6,msix_qsize=8 \
    -device nvme-ns,drive=nvm,nsid=1,shared=false,detached=true \
    -netdev user,id=n0 -device virtio-net-pci,netdev=n0 \
    > "$work/console.log" 2>&1 || { tail -n 40 "$work/console.log"; echo "lab: QEMU failed" >&2; exit 1; }
end=$(date +%s)
grep -a 'lab-init:' "$work/console.log" | sed 's/.*lab-init:/lab-init:/' || true
echo "lab: guest ran $((end - start)) s"

# --- unpack into the testbed ---------------------------------------------------------------------
mkdir -p "$work/out"
tar -xf "$work/out.img" -C "$work/out"
[ -s "$work/out/devices.umockdev" ] || {
    tail -n 40 "$work/console.log"; echo "lab: no recording came back" >&2; exit 1; }
rm -rf "$out/proc" "$out/sys" "$out/dev"
mkdir -p "$out"
cp -r "$work/out/proc" "$work/out/sys" "$work/out/dev" "$out/"
cp "$work/out/devices.umockdev" "$out/devices.umockdev"
cp "$work/out/uname" "$out/uname.txt"
cp "$work/out/dmesg" "$out/dmesg.txt"
echo "lab: boot+record took $((end - start)) s under TCG" > "$out/recording.log"
grep -a 'lab-init:' "$work/console.log" | sed 's/.*lab-init:/lab-init:/' >> "$out/recording.log" || true
# git keeps no empty directories: mark them (sys/module/<name>/, iommu_groups/<n>/devices/<addr>/)
find "$out/sys" "$out/dev" -type d -empty -exec touch {}/.keep \;
echo "lab: wrote $out ($(du -sh "$out" | cut -f1))"
