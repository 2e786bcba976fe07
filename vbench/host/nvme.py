"""NVMe controllers through nvme-cli: secondary controllers (SR-IOV VFs) and namespace attachment.

Every nvme-cli call goes through `NvmeCli.run`, which uses vbench's one command runner
(`vbench.command.run`: argv lists, CommandFailed with the output tail).  Reads
(`list-secondary`, `primary-ctrl-caps`, `list-ns -a`, `list-ctrl`) are Identify commands and
change nothing; the writes (`virt-mgmt`, `attach-ns`, `detach-ns`) are called only by
`vbench.host.changes`, which records each one before making it.

`NvmeQuery` is what the planner reads through: `NvmeCli` asks the device; `NvmeRecording` replays
the JSON that nvme-cli printed for a recorded testbed (no NVMe device exists on the machines that
run the tests, so a recording of the real tool on the lab host stands in for it).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from vbench.command import run
from vbench.errors import CommandFailed, HostError
from vbench.host.paths import HostPaths

NVME_TIMEOUT_S = 60.0

# nvme virt-mgmt: resource types (-r) and actions (-a), NVMe base spec "Virtualization Management"
RT_VQ, RT_VI = 0, 1
ACT_PRIMARY_FLEXIBLE, ACT_OFFLINE, ACT_ASSIGN, ACT_ONLINE = 1, 7, 8, 9
RESOURCE_TYPES = {"VQ": RT_VQ, "VI": RT_VI}


@dataclass(frozen=True)
class SecondaryController:
    cntlid: int  # secondary controller identifier
    primary: int  # its primary controller's identifier
    online: bool
    vf_number: int  # 1-based: VF index + 1
    vq: int  # flexible queue resources assigned
    vi: int  # flexible interrupt resources assigned

    def describe(self) -> str:
        state = "online" if self.online else "offline"
        return f"ctrl {self.cntlid} {state}, VQ {self.vq}, VI {self.vi}"


@dataclass(frozen=True)
class PrimaryCaps:
    cntlid: int
    vq_total: int  # VQFRT: flexible queue resources in all
    vq_secondary: int  # VQRFA: assigned to secondary controllers
    vq_primary: int  # VQRFAP: allocated to the primary
    vq_max_per_vf: int  # VQFRSM
    vi_total: int
    vi_secondary: int
    vi_primary: int
    vi_max_per_vf: int

    @property
    def vq_free(self) -> int:
        return self.vq_total - self.vq_secondary - self.vq_primary

    @property
    def vi_free(self) -> int:
        return self.vi_total - self.vi_secondary - self.vi_primary


def _int(value: Any) -> int:
    """nvme-cli prints numbers as JSON numbers, some versions as "0x…" strings."""
    if isinstance(value, int):
        return value
    return int(str(value), 0)


def parse_secondary(doc: Any) -> list[SecondaryController]:
    out = []
    for c in doc.get("secondary-controllers", []):
        out.append(
            SecondaryController(
                cntlid=_int(c["secondary-controller-identifier"]),
                primary=_int(c["primary-controller-identifier"]),
                online=bool(_int(c["secondary-controller-state"]) & 1),
                vf_number=_int(c["virtual-function-number"]),
                vq=_int(c["num-virtual-queues"]),
                vi=_int(c["num-virtual-interrupts"]),
            )
        )
    return out


def parse_primary_caps(doc: Any) -> PrimaryCaps:
    return PrimaryCaps(
        cntlid=_int(doc["cntlid"]),
        vq_total=_int(doc["vqfrt"]),
        vq_secondary=_int(doc["vqrfa"]),
        vq_primary=_int(doc["vqrfap"]),
        vq_max_per_vf=_int(doc["vqfrsm"]),
        vi_total=_int(doc["vifrt"]),
        vi_secondary=_int(doc["virfa"]),
        vi_primary=_int(doc["virfap"]),
        vi_max_per_vf=_int(doc["vifrsm"]),
    )


def parse_ns_list(doc: Any) -> list[int]:
    return sorted(_int(n["nsid"]) for n in doc.get("nsid_list", []))


def parse_ctrl_list(doc: Any) -> list[int]:
    return sorted(_int(c["ctrl_id"]) for c in doc.get("ctrl_list", []))


class NvmeQuery(Protocol):
    """Read-only questions the planner and the checks ask about an NVMe controller."""

    def secondary_controllers(self, dev: Path) -> list[SecondaryController]: ...
    def primary_caps(self, dev: Path) -> PrimaryCaps: ...
    def namespaces(self, dev: Path) -> list[int]: ...
    def attached_controllers(self, dev: Path, nsid: int) -> list[int]: ...


class NvmeCli:
    """nvme-cli on this host: the one way vbench reads and changes NVMe controllers."""

    def __init__(self, exe: str = "nvme") -> None:
        self.exe = exe

    def run(self, args: list[str]) -> str:
        """nvme-cli's stdout; CommandFailed (CommandNotFound names nvme-cli) otherwise."""
        return run([self.exe, *args], timeout_s=NVME_TIMEOUT_S, need="nvme").out

    def _json(self, args: list[str]) -> Any:
        out = self.run([*args, "-o", "json"])
        try:
            return json.loads(out) if out.strip() else {}
        except json.JSONDecodeError:
            raise HostError(f"`nvme {' '.join(args)}` printed no JSON: {out[:200]!r}") from None

    # reads
    def secondary_controllers(self, dev: Path) -> list[SecondaryController]:
        return parse_secondary(self._json(["list-secondary", str(dev)]))

    def primary_caps(self, dev: Path) -> PrimaryCaps:
        return parse_primary_caps(self._json(["primary-ctrl-caps", str(dev)]))

    def namespaces(self, dev: Path) -> list[int]:
        return parse_ns_list(self._json(["list-ns", str(dev), "--all"]))

    def attached_controllers(self, dev: Path, nsid: int) -> list[int]:
        return parse_ctrl_list(self._json(["list-ctrl", str(dev), "--namespace-id", str(nsid)]))

    # writes (called only by vbench.host.changes, after the change is recorded)
    def virt_mgmt(self, dev: Path, cntlid: int, rt: int, act: int, nr: int) -> None:
        self.run(
            ["virt-mgmt", str(dev), "-c", str(cntlid), "-r", str(rt), "-a", str(act), "-n", str(nr)]
        )

    def attach_ns(self, dev: Path, nsid: int, cntlid: int) -> None:
        self.run(["attach-ns", str(dev), "-n", str(nsid), "-c", str(cntlid)])

    def detach_ns(self, dev: Path, nsid: int, cntlid: int) -> None:
        self.run(["detach-ns", str(dev), "-n", str(nsid), "-c", str(cntlid)])


class NvmeRecording:
    """nvme-cli's JSON output recorded on a lab host, for the controllers of a testbed.

    Files: `<dir>/<controller>/list-secondary.json`, `primary-ctrl-caps.json`, `list-ns.json`,
    `list-ctrl-<nsid>.json` (what `scripts/lab/run_lab.py --record-nvme` writes).
    """

    def __init__(self, root: Path) -> None:
        self.root = root

    def _load(self, dev: Path, name: str) -> Any:
        path = self.root / dev.name / name
        try:
            return json.loads(path.read_text())
        except OSError:
            raise HostError(f"no recorded nvme-cli output {path}") from None

    def secondary_controllers(self, dev: Path) -> list[SecondaryController]:
        return parse_secondary(self._load(dev, "list-secondary.json"))

    def primary_caps(self, dev: Path) -> PrimaryCaps:
        return parse_primary_caps(self._load(dev, "primary-ctrl-caps.json"))

    def namespaces(self, dev: Path) -> list[int]:
        return parse_ns_list(self._load(dev, "list-ns.json"))

    def attached_controllers(self, dev: Path, nsid: int) -> list[int]:
        return parse_ctrl_list(self._load(dev, f"list-ctrl-{nsid}.json"))


def nvme_for(paths: HostPaths) -> NvmeQuery:
    """nvme-cli on the live host; the recorded answers (`<testbed>/nvme/`) on a testbed."""
    if paths.dev_root == Path("/dev"):
        return NvmeCli()
    return NvmeRecording(paths.dev_root.parent / "nvme")


def describe_failure(exc: Exception) -> str:
    """One line for an nvme-cli failure (CommandFailed carries the tool's last output line)."""
    if isinstance(exc, CommandFailed):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"
