"""Domain XML built as pure data (no libvirt import).  Which devices a mode adds: vbench.modes."""

from vbench.domxml.builder import (
    METADATA_NS,
    METADATA_PREFIX,
    QEMU_AGENT_NAME,
    VBENCH_AGENT_NAME,
    AgentChannel,
    DomainSpec,
    HostdevNicSpec,
    HostdevSpec,
    NetworkNicSpec,
    build_domain_xml,
    disk_target_dev,
    is_q35,
    pci_parts,
)

__all__ = [
    "METADATA_NS",
    "METADATA_PREFIX",
    "QEMU_AGENT_NAME",
    "VBENCH_AGENT_NAME",
    "AgentChannel",
    "DomainSpec",
    "HostdevNicSpec",
    "HostdevSpec",
    "NetworkNicSpec",
    "build_domain_xml",
    "disk_target_dev",
    "is_q35",
    "pci_parts",
]
