#!/bin/bash
# Record a umockdev testbed of THIS machine (default: tests/data/testbeds/nokvm-noiommu).
#
#   scripts/record-host-testbed.sh [OUTDIR]
#
# Writes OUTDIR/devices.umockdev (`umockdev-record --all`) plus snapshots of the /proc files and the
# non-device /sys parts vbench reads, and marker files for the /dev nodes that exist.  Read only on
# the host.  Review the result before committing it (it describes this machine's hardware).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$(cd "$here/.." && pwd)/tests/data/testbeds/nokvm-noiommu}

rm -rf "$out/proc" "$out/sys" "$out/dev"
mkdir -p "$out/proc/net" "$out/sys" "$out/dev"

umockdev-record --all > "$out/devices.umockdev"

# a file missing on the host (e.g. /proc/modules without module support) stays missing here
for f in cmdline cpuinfo modules mounts swaps meminfo; do
    if [ -e "/proc/$f" ]; then cat "/proc/$f" > "$out/proc/$f"; fi
done
cat /proc/net/route > "$out/proc/net/route"

for m in /sys/module/*; do
    n=$(basename "$m")
    mkdir -p "$out/sys/module/$n"
    case "$n" in kvm|kvm_intel|kvm_amd|kvm_pvm|vfio|vfio_pci|vfio_iommu_type1)
        if [ -d "$m/parameters" ]; then
            mkdir -p "$out/sys/module/$n/parameters"
            for p in "$m"/parameters/*; do
                cat "$p" > "$out/sys/module/$n/parameters/$(basename "$p")" 2>/dev/null || true
            done
        fi;;
    esac
done
h=kernel/mm/hugepages/hugepages-2048kB
if [ -d "/sys/$h" ]; then
    mkdir -p "$out/sys/$h"
    for f in nr_hugepages free_hugepages; do cat "/sys/$h/$f" > "$out/sys/$h/$f"; done
fi
mkdir -p "$out/sys/firmware/acpi/tables"
for t in DMAR IVRS; do
    if [ -e "/sys/firmware/acpi/tables/$t" ]; then : > "$out/sys/firmware/acpi/tables/$t"; fi
done
for c in fs/cgroup/cgroup.controllers fs/cgroup/unified/cgroup.controllers; do
    if [ -e "/sys/$c" ]; then mkdir -p "$out/sys/$(dirname "$c")"; cat "/sys/$c" > "$out/sys/$c"; fi
done
mkdir -p "$out/sys/kernel/iommu_groups"
for g in /sys/kernel/iommu_groups/*; do
    [ -d "$g/devices" ] || continue
    for d in "$g"/devices/*; do
        mkdir -p "$out/sys/kernel/iommu_groups/$(basename "$g")/devices/$(basename "$d")"
    done
done
for n in kvm vhost-net net/tun vfio/vfio; do
    if [ -e "/dev/$n" ]; then mkdir -p "$out/dev/$(dirname "$n")"; : > "$out/dev/$n"; fi
done
# git keeps no empty directories: mark them
find "$out/sys" "$out/dev" -type d -empty -exec touch {}/.keep \;
{
    echo "recorded $(date -u +%FT%TZ) on $(uname -srm) by scripts/record-host-testbed.sh"
    echo "umockdev $(umockdev-run --version)"
} > "$out/recording.log"
echo "host: wrote $out ($(du -sh "$out" | cut -f1))"
