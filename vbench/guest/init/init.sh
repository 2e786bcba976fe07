#!/bin/sh
# vbench microguest /init: PID 1 of a throw-away benchmark guest.  Keep it short: every line
# costs boot time under TCG.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /run /tmp /var/run/qemu-ga
mount -t devpts devpts /dev/pts
# The first userspace line on the console (benchmarks/boot_to_agent.py times it).
echo "vbench: init started" >/dev/console

# The agent's path first (virtio_pci + virtio_console) so it can answer as early as possible;
# the disk and NIC drivers follow, listed in dependency order by the builder.
while read -r m; do insmod "/lib/modules/$m" 2>/dev/null; done </etc/vbench/modules.agent

# The agent's port: vbench.agent=DEV on the kernel command line (a Xen channel is a PV console,
# /dev/hvc1; vbench's own virtio channel /dev/virtio-ports/NAME), else libvirt's virtio port.
start_agent() {
    mkdir -p /dev/virtio-ports
    for p in /sys/class/virtio-ports/*; do
        [ -r "$p/name" ] || continue
        n=$(cat "$p/name")
        [ -n "$n" ] && ln -sf "../${p##*/}" "/dev/virtio-ports/$n"
    done
    port=/dev/virtio-ports/org.qemu.guest_agent.0
    for arg in $(cat /proc/cmdline); do
        case "$arg" in vbench.agent=*) port=${arg#vbench.agent=} ;; esac
    done
    case "$port" in
        /dev/virtio-ports/*) method=virtio-serial ;;
        *) method=isa-serial ;; # a tty: qemu-ga sets it raw
    esac
    [ -e "$port" ] || { echo "vbench: no guest agent port $port" >/dev/console; return; }
    # Respawn: a crashed agent would leave the host waiting for nothing.
    while :; do
        qemu-ga -m "$method" -p "$port" -f /run/qemu-ga.pid -t /var/run/qemu-ga
        sleep 0.2
    done
}
start_agent </dev/null >/dev/console 2>&1 &

while read -r m; do insmod "/lib/modules/$m" 2>/dev/null; done </etc/vbench/modules.devices
# A Xen guest's frontends (blkfront, netfront, pcifront): only on Xen, where xenbus exists.
if [ -d /sys/bus/xen/devices ]; then
    while read -r m; do insmod "/lib/modules/$m" 2>/dev/null; done </etc/vbench/modules.xen
fi

# Drivers of assigned devices (VFIO / SR-IOV: NVMe, NIC VFs) only for an unclaimed NVMe or network
# PCI device, matched against the drivers' modalias patterns: emulated/virtio guests skip this.
loaded=" "
load_passthrough() {
    case "$loaded" in *" $1 "*) return ;; esac
    loaded="$loaded$1 "
    while read -r name paths; do
        [ "$name" = "$1" ] || continue
        for p in $paths; do insmod "/lib/modules/$p" 2>/dev/null; done
    done </etc/vbench/modules.passthrough
}
for d in /sys/bus/pci/devices/*; do
    [ -e "$d/driver" ] && continue
    read -r cls <"$d/class"
    case "$cls" in 0x0108* | 0x02*) ;; *) continue ;; esac
    read -r alias <"$d/modalias"
    while read -r pattern name; do
        # shellcheck disable=SC2254 # the pattern is a glob on purpose (modules.alias syntax)
        case "$alias" in $pattern) load_passthrough "$name"; break ;; esac
    done </etc/vbench/modules.passthrough.alias
done
[ "$loaded" = " " ] || echo "vbench: drivers for assigned devices:${loaded% }" >/dev/console

ip link set lo up
# The test NIC: vbench.ip=ADDR/PREFIX goes on the NIC whose MAC is vbench.mac (without it, the
# first one); its peer is the tap vbench moved into the run's network namespace.
vip= vmac=
for arg in $(cat /proc/cmdline); do
    case "$arg" in
        vbench.ip=*) vip=${arg#vbench.ip=} ;;
        vbench.mac=*) vmac=${arg#vbench.mac=} ;;
    esac
done
if [ -n "$vip" ]; then
    dev=
    for n in /sys/class/net/*; do
        [ "${n##*/}" = lo ] && continue
        [ -z "$vmac" ] || [ "$(cat "$n/address")" = "$vmac" ] || continue
        dev=${n##*/} && break
    done
    { [ -n "$dev" ] && ip addr add "$vip" dev "$dev" && ip link set "$dev" up; } ||
        echo "vbench: no NIC for vbench.ip=$vip vbench.mac=$vmac" >/dev/console
    # Ready means usable: e1000's link comes up on its 2 s watchdog, virtio's at once.
    i=0
    while [ -n "$dev" ] && [ "$(cat "/sys/class/net/$dev/carrier" 2>/dev/null)" != 1 ] &&
        [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
fi
# Let the host know the devices are probed (GuestAgent.test_disk waits for this file).
: >/run/vbench-ready
echo "vbench: microguest ready" >/dev/console

# PID 1 must never exit; reap orphans while waiting.
while :; do wait; sleep 3600; done
