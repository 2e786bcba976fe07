"""Parsers for the /proc files the inventory needs: mounts, swaps, net/route.

The parsers take the file's text (pure, tested on small strings); the `read_*` helpers read it
below an injectable `HostPaths` root and treat a missing file as empty.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from vbench.host.paths import HostPaths

_OCTAL_ESCAPE = re.compile(r"\\([0-7]{3})")


def unescape_octal(field: str) -> str:
    r"""Undo the kernel's octal escapes in /proc/mounts and /proc/swaps (`\040` is a space)."""
    return _OCTAL_ESCAPE.sub(lambda m: chr(int(m.group(1), 8)), field)


@dataclass(frozen=True)
class Mount:
    source: str  # "/dev/vda1", "tmpfs", "UUID=..." never appears here (the kernel resolves it)
    target: str  # "/", "/mnt/my disk"
    fstype: str
    options: tuple[str, ...] = ()


@dataclass(frozen=True)
class Swap:
    filename: str  # "/dev/nvme0n1p2" or "/swapfile"
    kind: str  # "partition" | "file"
    size_kib: int | None = None


@dataclass(frozen=True)
class Route:
    iface: str
    destination: str  # dotted quad, "0.0.0.0" for the default route
    gateway: str
    mask: str
    flags: int
    metric: int

    @property
    def is_default(self) -> bool:
        return self.destination == "0.0.0.0" and self.mask == "0.0.0.0"

    @property
    def is_up(self) -> bool:
        return bool(self.flags & 0x1)  # RTF_UP


def parse_mounts(text: str) -> list[Mount]:
    """Parse /proc/mounts (or /proc/self/mounts); malformed lines are skipped."""
    mounts: list[Mount] = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 3:
            continue
        options = tuple(fields[3].split(",")) if len(fields) > 3 else ()
        mounts.append(
            Mount(
                source=unescape_octal(fields[0]),
                target=unescape_octal(fields[1]),
                fstype=fields[2],
                options=options,
            )
        )
    return mounts


def parse_swaps(text: str) -> list[Swap]:
    """Parse /proc/swaps: a header ("Filename Type Size Used Priority"), then one line per area."""
    swaps: list[Swap] = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 2 or fields[0] == "Filename":
            continue
        size = int(fields[2]) if len(fields) > 2 and fields[2].isdigit() else None
        swaps.append(Swap(filename=unescape_octal(fields[0]), kind=fields[1], size_kib=size))
    return swaps


def hex_to_ipv4(value: str) -> str:
    """Convert /proc/net/route's little-endian hex ("0102A8C0") to a dotted quad ("192.168.2.1")."""
    raw = int(value, 16).to_bytes(4, "little")
    return ".".join(str(b) for b in raw)


def parse_route(text: str) -> list[Route]:
    """Parse /proc/net/route (IPv4 routing table; header line first)."""
    routes: list[Route] = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 8 or fields[0] == "Iface":
            continue
        try:
            routes.append(
                Route(
                    iface=fields[0],
                    destination=hex_to_ipv4(fields[1]),
                    gateway=hex_to_ipv4(fields[2]),
                    flags=int(fields[3], 16),
                    metric=int(fields[6]),
                    mask=hex_to_ipv4(fields[7]),
                )
            )
        except ValueError:
            continue
    return routes


def default_route_ifaces(routes: list[Route]) -> list[str]:
    """Interfaces that carry an IPv4 default route (in table order, no duplicates)."""
    seen: list[str] = []
    for r in routes:
        if r.is_default and r.is_up and r.iface not in seen:
            seen.append(r.iface)
    return seen


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        return ""


def read_mounts(paths: HostPaths) -> list[Mount]:
    return parse_mounts(_read(paths.proc("mounts")))


def read_swaps(paths: HostPaths) -> list[Swap]:
    return parse_swaps(_read(paths.proc("swaps")))


def read_routes(paths: HostPaths) -> list[Route]:
    return parse_route(_read(paths.proc("net/route")))
