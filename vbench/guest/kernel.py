"""The microguest's kernel: which /boot/vmlinuz-* it boots, by one rule that `vbench check`
(guest.kernel) and the builder (guest/microguest.py) share, and the modules.dep helpers.

Light on purpose (no subprocess, no build machinery): `vbench check` imports it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path

from vbench.errors import HostError
from vbench.packages import MICROGUEST_MODULES, install_hint


def missing_input(what: str, need: str) -> HostError:
    """A missing host input, naming the package (from vbench.packages) that supplies it."""
    return HostError(install_hint(what, need))


_KO_SUFFIXES = (".ko", ".ko.xz", ".ko.zst", ".ko.gz")


def module_name(path: str) -> str:
    """The kernel's module name for a modules.dep path: `kernel/x/nvme-core.ko.xz` -> nvme_core."""
    base = path.rpartition("/")[2]
    for suffix in _KO_SUFFIXES:  # string tests, not a regex: `vbench check` runs this ~6000 times
        if base.endswith(suffix):
            base = base[: -len(suffix)]
            break
    return base.replace("-", "_")


def modules_in_dep(text: str, names: Iterable[str]) -> set[str]:
    """Which of `names` modules.dep lists.  Substring searches, not a parse of its ~4000 lines
    (which costs `vbench check` ~25 ms): every module has a line of its own, so its file name
    (`/name.ko`, spelled with - or _) appears in the text exactly when it is there."""
    text = "\n" + text
    found: set[str] = set()
    for name in names:
        norm = name.replace("-", "_")
        for spelling in dict.fromkeys((norm, norm.replace("_", "-"))):
            if f"/{spelling}.ko" in text or f"\n{spelling}.ko" in text:
                found.add(norm)
                break  # found: the other spelling need not be searched
    return found


def parse_modules_dep(text: str) -> dict[str, tuple[str, list[str]]]:
    """modules.dep as {module name: (path, [paths of its dependencies])}."""
    table: dict[str, tuple[str, list[str]]] = {}
    for line in text.splitlines():
        if ":" not in line:
            continue
        path, _, deps = line.partition(":")
        path = path.strip()
        table[module_name(path)] = (path, deps.split())
    return table


def _version_key(p: Path) -> list[int]:
    return [int(x) for x in re.findall(r"\d+", p.name)]


def kernel_candidates(
    boot: Path = Path("/boot"), modules_root: Path = Path("/lib/modules")
) -> list[tuple[Path, str | None]]:
    """Every /boot/vmlinuz-*, newest version first, with why it cannot serve the microguest
    (None: it can).  The builder takes the first usable one; `vbench check` reports the list."""
    out: list[tuple[Path, str | None]] = []
    for kernel in sorted(boot.glob("vmlinuz-*"), key=_version_key, reverse=True):
        dep = modules_root / kernel.name.removeprefix("vmlinuz-") / "modules.dep"
        problem: str | None = None
        try:
            have = modules_in_dep(
                dep.read_text(encoding="utf-8", errors="replace"), MICROGUEST_MODULES
            )
        except OSError:
            problem = f"no {dep}"
        else:
            lacking = [m for m in MICROGUEST_MODULES if m not in have]
            if lacking:
                problem = f"lacks {', '.join(lacking)}"
            elif not os.access(kernel, os.R_OK):
                problem = "not readable by this user"
        out.append((kernel, problem))
    return out


def find_kernel(boot: Path = Path("/boot"), modules_root: Path = Path("/lib/modules")) -> Path:
    """The newest /boot/vmlinuz-* with the microguest's modules (the running one may be foreign)."""
    candidates = kernel_candidates(boot, modules_root)
    for kernel, problem in candidates:
        if problem is None:
            return kernel
    tried = "; ".join(f"{k.name}: {p}" for k, p in candidates) or f"no {boot}/vmlinuz-*"
    raise missing_input(f"a readable kernel with the microguest's modules ({tried})", "kernel")
