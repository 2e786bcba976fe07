"""Domain XML for each I/O mode, built as pure data (no libvirt import)."""

from vbench.domxml.builder import (
    METADATA_NS,
    METADATA_PREFIX,
    DomainSpec,
    HostdevSpec,
    build_domain_xml,
    disk_target_dev,
    is_q35,
)
from vbench.domxml.modes import ModeDevices, mode_devices

__all__ = [
    "METADATA_NS",
    "METADATA_PREFIX",
    "DomainSpec",
    "HostdevSpec",
    "ModeDevices",
    "build_domain_xml",
    "disk_target_dev",
    "is_q35",
    "mode_devices",
]
