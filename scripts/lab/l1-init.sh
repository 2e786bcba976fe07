#!/bin/sh
# PID 1 of the L1 lab host, after the initramfs switched to "/" = this host's root (9p, read-only)
# under a tmpfs overlay.  Mounts what systemd would, starts virtlogd + libvirtd, runs the lab steps
# (scripts/lab/l1_steps.py, with the Python and the checkout the driver named in /lab/config.env)
# and powers off.  Everything the steps find goes to /lab (a writable 9p share of the driver's
# work directory); the console shows progress.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root LANG=C.UTF-8
say() { echo "lab-l1: $*"; }
uptime_s() { cut -d' ' -f1 /proc/uptime; }

# /run afresh: the host's pid files and sockets there would fool L1's daemons.  /tmp and
# /var/tmp stay (writable through the overlay): the checkout may live there.
mount -t tmpfs -o mode=0755 run /run
mkdir -p /dev/pts /dev/shm /dev/hugepages
mount -t devpts devpts /dev/pts
mount -t tmpfs shm /dev/shm
mount -t cgroup2 cgroup2 /sys/fs/cgroup 2>/dev/null
mount -t hugetlbfs hugetlbfs /dev/hugepages 2>/dev/null
# the host's /etc/mtab may be a link into its /proc; tools read ours
ln -sf /proc/self/mounts /etc/mtab 2>/dev/null
hostname lab-l1
ip link set lo up
echo "userspace $(uptime_s)" > /lab/l1-times.txt
say "userspace at $(uptime_s) s"

set -a; . /lab/config.env; set +a

# the modules the lab needs (the host's own, from the shared root)
for m in nvme vfio vfio_iommu_type1 vfio_pci tun vhost_net; do modprobe "$m" 2>/dev/null || say "modprobe $m failed"; done
echo "modules $(uptime_s)" >> /lab/l1-times.txt

# libvirt: virtlogd + libvirtd as daemons (no systemd here); QEMU runs as libvirt-qemu
mkdir -p /run/libvirt /var/lib/libvirt/qemu /var/log/libvirt/qemu /var/cache/libvirt
virtlogd -d && libvirtd -d || say "libvirt failed to start"
i=0
while ! virsh -c qemu:///system version >/dev/null 2>&1 && [ $i -lt 300 ]; do sleep 0.2; i=$((i + 1)); done
echo "libvirtd $(uptime_s)" >> /lab/l1-times.txt
say "libvirtd answers at $(uptime_s) s"

cd "$LAB_REPO" || say "no checkout at $LAB_REPO"
PYTHONPATH="$LAB_REPO" "$LAB_PYTHON" "$LAB_REPO/scripts/lab/l1_steps.py" /lab
echo "steps-rc $?" >> /lab/l1-times.txt
echo "done $(uptime_s)" >> /lab/l1-times.txt
sync
poweroff -f
