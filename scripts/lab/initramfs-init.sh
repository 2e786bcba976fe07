#!/bin/sh
# Stage 1 of the IOMMU lab guest (runs from the initramfs): mount the virtio root disk and switch to it.
# The real work happens in /sbin/lab-init on that disk, so that /proc/mounts shows a PCI-backed "/".
export PATH=/bin:/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
for m in crc32c_generic virtio_pci virtio_blk ext4; do modprobe "$m" || echo "stage1: modprobe $m failed"; done
i=0
while [ ! -b /dev/vda ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
mkdir -p /newroot
if ! mount -t ext4 /dev/vda /newroot; then
    echo "stage1: cannot mount /dev/vda"; sleep 1; poweroff -f
fi
umount /proc /sys
mount --move /dev /newroot/dev 2>/dev/null || umount /dev
exec switch_root /newroot /sbin/lab-init
