"""Helpers shared by the tests: the umockdev testbeds and the marker for not-applicable skips."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

# A skip whose reason contains this stays a skip under VBENCH_TESTS_STRICT=1 (see conftest.py).
NOT_APPLICABLE = "n/a on this host:"

TESTBEDS = Path(__file__).parent / "data" / "testbeds"
ALL_TESTBEDS = (
    "lab-iommu-sriov",
    "nokvm-noiommu",
    "nic-sriov",
    "gpu-audio-group",
    "no-acs-group",
    "rootfs-device",
)
NO_UMOCKDEV = "umockdev-run is not installed (apt-get install umockdev): testbeds cannot be loaded"

needs_umockdev = pytest.mark.skipif(shutil.which("umockdev-run") is None, reason=NO_UMOCKDEV)


def bed(name: str) -> Path:
    """The testbed directory NAME; skips when umockdev or the recording is missing."""
    if shutil.which("umockdev-run") is None:
        pytest.skip(NO_UMOCKDEV)
    path = TESTBEDS / name
    if not (path / "devices.umockdev").is_file():
        pytest.skip(f"testbed {name} not recorded yet ({path}/devices.umockdev missing)")
    return path


@contextmanager
def qemu_reachable_dir(prefix: str) -> Iterator[Path]:
    """A temporary directory QEMU (user libvirt-qemu) can reach, unlike pytest's 0700 tmp_path."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir="/var/tmp"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def toml_value(value: Any) -> str:
    """`value` as a TOML value (tables inline): what the tests' scenarios hold."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a TOML basic string escapes as JSON does
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + " }"
    if isinstance(value, Sequence):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    raise TypeError(f"no TOML for {value!r}")


def fio_job(runtime_s: int, **more: Any) -> dict[str, Any]:
    """A short fio workload of a test scenario: 4k random reads at depth 4 unless `more` says."""
    return {"kind": "fio", "rw": ["randread"], "bs": ["4k"], "iodepth": [4], **more,
            "runtime_s": runtime_s}  # fmt: skip


def scenario_toml(
    name: str,
    *workloads: Mapping[str, Any],
    guest: Mapping[str, Any] | None = None,
    disk_mib: int | None = 32,
    modes: Sequence[str | Mapping[str, Any]] = ("pv",),
    run: Mapping[str, Any] | None = None,
    description: str | None = None,
) -> str:
    """A scenario file's text for an e2e test: `name` (unique per test session: other runs go on
    at the same time), its [guest] keys, a [disk] of `disk_mib` (None: no [disk] table), each mode
    (an id, or its table), each workload, and [run] (default: one repetition)."""

    def table(header: str, keys: Mapping[str, Any]) -> str:
        return header + "\n" + "".join(f"{k} = {toml_value(v)}\n" for k, v in keys.items())

    head: dict[str, Any] = {"format_version": 1, "name": name}
    if description is not None:
        head["description"] = description
    parts = [table("", head).lstrip("\n")]
    if guest is not None:
        parts.append(table("[guest]", guest))
    if disk_mib is not None:
        parts.append(table("[disk]", {"size_mib": disk_mib}))
    parts += [table("[[modes]]", {"id": m} if isinstance(m, str) else m) for m in modes]
    parts += [table("[[workloads]]", w) for w in workloads]
    parts.append(table("[run]", {"repetitions": 1} if run is None else run))
    return "".join(parts)


def guests_named(*prefixes: str) -> list[str]:
    """The libvirt guests (qemu:///system, any state) whose names start with one of `prefixes`:
    a test looks for its own only, as other runs go on at the same time."""
    out = subprocess.run(
        ["virsh", "-c", "qemu:///system", "list", "--all", "--name"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [n for n in out.split() if n.startswith(prefixes)]


def vbench_cli(
    *args: str, env: Mapping[str, str] | None = None, timeout: float = 1200
) -> subprocess.CompletedProcess[str]:
    """`vbench ARGS...` as a process of its own (this checkout on PYTHONPATH unless `env` is
    given), its output captured; the caller judges the exit code."""
    root = Path(__file__).resolve().parent.parent
    return subprocess.run(
        [sys.executable, "-m", "vbench", *args],
        capture_output=True,
        text=True,
        env=dict(env) if env is not None else {**os.environ, "PYTHONPATH": str(root)},
        timeout=timeout,
        check=False,
    )


def e2e_env(tmp: Path) -> dict[str, str]:
    """The environment of a test's `vbench run`: this checkout, and a scratch directory of the
    test's own (named after its temporary directory) so its leftovers are told apart."""
    root = Path(__file__).resolve().parent.parent
    scratch = Path("/var/lib/vbench/test-scratch") / tmp.name
    return {**os.environ, "PYTHONPATH": str(root), "VBENCH_SCRATCH": str(scratch)}


def vbench_run(
    scenario: Path, out: Path, env: dict[str, str], *, report: bool = False, timeout: float = 900
) -> tuple[subprocess.CompletedProcess[str], Path]:
    """`vbench run SCENARIO --output OUT` (`--no-report` unless `report`), which must succeed,
    and the one run directory it wrote."""
    proc = vbench_cli(
        "run",
        str(scenario),
        "--output",
        str(out),
        *([] if report else ["--no-report"]),
        env=env,
        timeout=timeout,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run_dir,) = [p for p in out.iterdir() if p.is_dir()]
    return proc, run_dir


def run_taps(run_id: str) -> list[str]:
    """A run's taps, in the root namespace or (while it exists) in the run's namespace."""
    from vbench.host.netns import run_hash

    prefix = f"vbt{run_hash(run_id)}"
    found = []
    for where in ([], ["-n", f"vbench-{run_id}"]):
        out = subprocess.run(["ip", *where, "-o", "link", "show"], capture_output=True, text=True)
        found += [w.rstrip(":").split("@")[0] for w in out.stdout.split() if w.startswith(prefix)]
    return found


def rewrite_samples(run: Any, samples: list[Any]) -> None:
    """Replace a run directory's samples.csv (the runner only appends; tests also rewrite)."""
    (run.path / "samples.csv").unlink(missing_ok=True)
    run.append_samples(samples)


def run_peer_case_in_namespace(workload: Any, case: Any, prefix: str) -> bytes:
    """Run a network workload's server and client for real inside a namespace of the test's own
    (over its loopback); return the client's stdout.  Fails the test on a non-zero exit."""
    import uuid

    from vbench.host.changes import ChangeJournal
    from vbench.host.netns import RunNetwork
    from vbench.workloads import Target

    with (
        tempfile.TemporaryDirectory(prefix="vbench-journal-") as journal_dir,
        RunNetwork(f"{prefix}-{uuid.uuid4().hex[:8]}", ChangeJournal(Path(journal_dir))) as net,
        net.server(workload.server_argv(case, "127.0.0.1")),
    ):
        argv = workload.argv(case, Target("host", peer_address="127.0.0.1"))
        proc = subprocess.run(
            ["ip", "netns", "exec", net.namespace, *argv],
            capture_output=True,
            timeout=workload.timeout(case),
            check=False,
        )
    assert proc.returncode == 0, proc.stdout[-300:]
    out: bytes = proc.stdout
    return out
