#!/bin/sh
# Stage 2 of the IOMMU lab guest: runs as PID 1 with the virtio disk (vda) as "/".
# Sets up the state we want recorded (default route, SR-IOV VFs, one VF on vfio-pci), records the
# device tree with umockdev-record and writes it plus /proc and /sys snapshots as a tar to /dev/vdb.
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
[ -e /proc/self ] || mount -t proc proc /proc
[ -d /sys/kernel ] || mount -t sysfs sysfs /sys
[ -e /dev/null ] || mount -t devtmpfs devtmpfs /dev
mount -t tmpfs run /run
mount -t tmpfs tmp /tmp
mount -t cgroup2 cgroup2 /sys/fs/cgroup 2>/dev/null
say() { echo "lab-init: $*"; }

for m in virtio_net nvme vfio vfio_iommu_type1 vfio_pci; do modprobe "$m" || say "modprobe $m failed"; done
sleep 1

# Host use: "/" is on vda (done by stage 1); the NIC carries the default route (QEMU user net).
NIC=$(ls /sys/class/net | grep -v '^lo$' | head -n 1)
ip link set lo up
ip link set "$NIC" up
ip addr add 10.0.2.15/24 dev "$NIC"
ip route add default via 10.0.2.2 dev "$NIC"

# SR-IOV: enable the NVMe PF's two VFs without probing drivers, then bind VF 0 to vfio-pci.
PF=""
for d in /sys/bus/pci/devices/*; do
    [ -e "$d/sriov_totalvfs" ] && PF="$d" && break
done
if [ -n "$PF" ]; then
    say "SR-IOV PF $(basename "$PF"): totalvfs $(cat "$PF/sriov_totalvfs")"
    echo 0 > "$PF/sriov_drivers_autoprobe"
    echo 2 > "$PF/sriov_numvfs" || say "enabling VFs failed"
    sleep 1
    VF=$(basename "$(readlink -f "$PF/virtfn0")")
    echo vfio-pci > "/sys/bus/pci/devices/$VF/driver_override"
    echo "$VF" > /sys/bus/pci/drivers_probe || say "binding $VF to vfio-pci failed"
    say "VF $VF driver: $(basename "$(readlink -f "/sys/bus/pci/devices/$VF/driver")")"
else
    say "no SR-IOV PF found"
fi

# udev database (hwdb names) for the recording.
/lib/systemd/systemd-udevd --daemon
udevadm trigger --action=add
udevadm settle --timeout=60

OUT=/tmp/out
mkdir -p "$OUT/proc/net" "$OUT/sys" "$OUT/dev"
umockdev-record --all > "$OUT/devices.umockdev" 2> "$OUT/umockdev-record.stderr"
for f in cmdline cpuinfo modules mounts swaps meminfo; do cat "/proc/$f" > "$OUT/proc/$f"; done
cat /proc/net/route > "$OUT/proc/net/route"
# /sys parts that are not device trees
for m in /sys/module/*; do
    n=$(basename "$m"); mkdir -p "$OUT/sys/module/$n"
    case "$n" in kvm|kvm_intel|kvm_amd|vfio|vfio_pci|vfio_iommu_type1)
        if [ -d "$m/parameters" ]; then
            mkdir -p "$OUT/sys/module/$n/parameters"
            for p in "$m"/parameters/*; do cat "$p" > "$OUT/sys/module/$n/parameters/$(basename "$p")" 2>/dev/null; done
        fi;;
    esac
done
H=kernel/mm/hugepages/hugepages-2048kB
mkdir -p "$OUT/sys/$H"
for f in nr_hugepages free_hugepages; do cat "/sys/$H/$f" > "$OUT/sys/$H/$f"; done
mkdir -p "$OUT/sys/firmware/acpi/tables"
for t in DMAR IVRS; do [ -e "/sys/firmware/acpi/tables/$t" ] && : > "$OUT/sys/firmware/acpi/tables/$t"; done
mkdir -p "$OUT/sys/fs/cgroup"
cat /sys/fs/cgroup/cgroup.controllers > "$OUT/sys/fs/cgroup/cgroup.controllers" 2>/dev/null
for g in /sys/kernel/iommu_groups/*; do
    [ -d "$g/devices" ] || continue
    for dev in "$g"/devices/*; do mkdir -p "$OUT/sys/kernel/iommu_groups/$(basename "$g")/devices/$(basename "$dev")"; done
done
for n in kvm vhost-net net/tun vfio/vfio; do
    [ -e "/dev/$n" ] && mkdir -p "$OUT/dev/$(dirname "$n")" && : > "$OUT/dev/$n"
done
for n in /dev/vfio/*; do [ -e "$n" ] && : > "$OUT/dev/vfio/$(basename "$n")"; done
uname -a > "$OUT/uname"
dmesg > "$OUT/dmesg"
say "writing $(du -s "$OUT" | cut -f1) KiB to /dev/vdb"
tar -cf /dev/vdb -C "$OUT" .
sync
say "done"
poweroff -f
