#!/bin/sh
# Stage 1 of the L1 lab host (runs from a small initramfs): mount this host's root, shared
# read-only over 9p, under a tmpfs overlay, mount the lab's writable share at /lab, and hand over
# to scripts/lab/l1-init.sh inside it.
export PATH=/bin:/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
for m in virtio_pci 9pnet_virtio 9p overlay; do modprobe "$m" || echo "stage1: modprobe $m failed"; done
mkdir -p /ro /rw /newroot
fail() { echo "stage1: $*"; sleep 1; poweroff -f; }
mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=512000,cache=loose hostroot /ro ||
    fail "cannot mount the host root (9p tag hostroot)"
mount -t tmpfs -o size=2g,mode=0755 rw /rw
mkdir -p /rw/upper /rw/work
mount -t overlay -o lowerdir=/ro,upperdir=/rw/upper,workdir=/rw/work overlay /newroot ||
    fail "cannot mount the overlay"
mkdir -p /newroot/lab
mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000 lab /newroot/lab ||
    fail "cannot mount the lab share (9p tag lab)"
for d in proc sys dev; do mount --move "/$d" "/newroot/$d"; done
exec switch_root /newroot /bin/sh /lab/l1-init.sh
