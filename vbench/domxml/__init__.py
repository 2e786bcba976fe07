"""Domain XML for each I/O mode, built as pure data (no libvirt import)."""

from vbench.domxml.builder import (
    METADATA_NS,
    DomainSpec,
    HostdevSpec,
    build_domain_xml,
    disk_target_dev,
)

__all__ = ["METADATA_NS", "DomainSpec", "HostdevSpec", "build_domain_xml", "disk_target_dev"]
