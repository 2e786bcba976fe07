"""The evidence bundle: one .tar.gz of a run that anyone can verify later.

    <run-id>/manifest.json        the manifest (scenario text and its sha256 inside)
    <run-id>/checks.json          the host-check document (as `vbench check --json` writes it)
    <run-id>/scenario.toml        the scenario text the run used
    <run-id>/samples.csv          tidy samples; series*.csv (time series) when the run has them
    <run-id>/host-changes.json    the run's host changes and their undoing, when it made any
    <run-id>/raw/...              domain XML, console logs, tool outputs (fio.json, ...)
    <run-id>/report.html, report.pdf
    <run-id>/SHA256SUMS           `sha256sum -c` format, paths relative to <run-id>/

`verify_bundle` reads the archive without extracting it: every listed file is present with its
hash, nothing unlisted rides along, and the manifest's scenario hash matches its scenario text.
`extract_bundle` verifies, then unpacks the run directory for readers (`vbench fleet report`).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from vbench.errors import RunDirError, VbenchError
from vbench.results import MANIFEST, RAW, SAMPLES, RunDir, load_manifest

SUMS = "SHA256SUMS"
CHECKS = "checks.json"
SCENARIO = "scenario.toml"
REPORT_FILES = ("report.html", "report.pdf")
# the run's host-change journal: vbench.host.changes.JOURNAL (a sibling layer, not imported here)
HOST_CHANGES = "host-changes.json"


class BundleError(VbenchError):
    """A bundle cannot be written or read at all (not: a failed verification)."""


@dataclass(frozen=True)
class BundleResult:
    path: Path
    files: int  # files listed in SHA256SUMS


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _run_files(run_path: Path) -> list[tuple[str, Path]]:
    """(name in the bundle, file on disk) for everything of the run a bundle carries."""
    files = [(MANIFEST, run_path / MANIFEST)]
    for name in (SAMPLES, HOST_CHANGES, *REPORT_FILES):
        if (run_path / name).is_file():
            files.append((name, run_path / name))
    files += [(p.name, p) for p in sorted(run_path.glob("series*.csv")) if p.is_file()]
    raw = run_path / RAW
    if raw.is_dir():
        files += [
            (p.relative_to(run_path).as_posix(), p) for p in sorted(raw.rglob("*")) if p.is_file()
        ]
    return files


def _add(tar: tarfile.TarFile, name: str, data: bytes, mtime: float) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = int(mtime)
    info.mode = 0o644
    info.uname = info.gname = "root"
    tar.addfile(info, io.BytesIO(data))


def write_bundle(run_path: Path, output: Path | None = None) -> BundleResult:
    """Write the bundle of the run at `run_path` (checked first: a damaged run is refused)."""
    run = RunDir.open(run_path).load()
    manifest = run.manifest
    if not (run_path / "report.html").is_file():
        raise RunDirError(
            f"{run_path}: no report.html to bundle; write it first: vbench report {run_path}"
        )
    top = manifest.run_id
    target = output or run_path.parent / f"{top}.bundle.tar.gz"
    entries: list[tuple[str, bytes, float]] = []
    for name, path in _run_files(run_path):
        try:
            entries.append((name, path.read_bytes(), path.stat().st_mtime))
        except OSError as exc:
            raise RunDirError(f"{path}: unreadable: {exc.strerror}") from None
    mtime = (run_path / MANIFEST).stat().st_mtime
    if manifest.checks is not None:
        doc = manifest.checks.model_dump_json(indent=2) + "\n"
        entries.append((CHECKS, doc.encode(), mtime))
    entries.append((SCENARIO, manifest.scenario.text.encode(), mtime))
    entries.sort()
    sums = "".join(f"{_sha256(data)}  {name}\n" for name, data, _ in entries)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    except OSError as exc:
        raise BundleError(f"{target}: cannot write the bundle: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as f, tarfile.open(fileobj=f, mode="w:gz") as tar:
            for name, data, when in entries:
                _add(tar, f"{top}/{name}", data, when)
            _add(tar, f"{top}/{SUMS}", sums.encode(), mtime)
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return BundleResult(path=target, files=len(entries))


def _read_members(path: Path) -> tuple[str, dict[str, bytes]]:
    """The bundle's top directory and its files (name below the top -> bytes)."""
    files: dict[str, bytes] = {}
    tops: set[str] = set()
    try:
        with tarfile.open(path, mode="r:gz") as tar:
            for member in tar:
                name = PurePosixPath(member.name)
                if name.is_absolute() or ".." in name.parts:
                    raise BundleError(f"{path}: unexpected member {member.name!r}")
                if member.isdir():
                    continue
                if len(name.parts) < 2:
                    raise BundleError(f"{path}: {member.name} is outside the run directory")
                handle = tar.extractfile(member) if member.isfile() else None
                if handle is None:
                    raise BundleError(f"{path}: {member.name} is not a regular file")
                tops.add(name.parts[0])
                files[PurePosixPath(*name.parts[1:]).as_posix()] = handle.read()
    except (OSError, tarfile.TarError, EOFError, zlib.error) as exc:
        raise BundleError(f"{path}: not a readable .tar.gz: {exc}") from None
    if len(tops) != 1:
        raise BundleError(f"{path}: want one top directory (the run id), found {sorted(tops)}")
    return tops.pop(), files


def verify_bundle(path: Path) -> tuple[int, list[str]]:
    """(files checked, problems): one line per problem; no problems means it verified.

    Raises BundleError when the archive cannot be read at all.
    """
    top, files = _read_members(path)
    where = f"{path}:{top}"
    if SUMS not in files:
        return 0, [f"{where}/{SUMS}: missing; nothing can be verified"]
    problems: list[str] = []
    listed: dict[str, str] = {}
    for number, line in enumerate(files[SUMS].decode(errors="replace").splitlines(), 1):
        digest, sep, name = line.partition("  ")
        if not sep or len(digest) != 64 or not name:
            problems.append(f"{where}/{SUMS}:{number}: not '<sha256>  <file>'")
            continue
        listed[name] = digest.lower()
    for name, digest in listed.items():
        if name not in files:
            problems.append(f"{where}/{name}: listed in {SUMS} but missing from the bundle")
        elif _sha256(files[name]) != digest:
            problems.append(f"{where}/{name}: sha256 differs from {SUMS}: the file was changed")
    for name in sorted(set(files) - set(listed) - {SUMS}):
        problems.append(f"{where}/{name}: not listed in {SUMS}")
    if MANIFEST in files:
        try:
            manifest = load_manifest(json.loads(files[MANIFEST]), f"{where}/{MANIFEST}")
        except (ValueError, RunDirError) as exc:  # JSONDecodeError is a ValueError
            problems.append(f"{where}/{MANIFEST}: unreadable: {exc}")
        else:
            text = manifest.scenario.text.encode()
            if _sha256(text) != manifest.scenario.sha256:
                problems.append(
                    f"{where}/{MANIFEST}: scenario.sha256 does not match the scenario text"
                )
            if SCENARIO in files and files[SCENARIO] != text:
                problems.append(f"{where}/{SCENARIO}: differs from the manifest's scenario text")
    else:
        problems.append(f"{where}/{MANIFEST}: missing")
    return len(listed), problems


def extract_bundle(path: Path, dest: Path) -> Path:
    """Verify the bundle at `path`, unpack it into `dest` and return its run directory.

    Raises BundleError naming the first problem when it does not verify (nothing is unpacked).
    """
    _, problems = verify_bundle(path)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise BundleError(f"does not verify: {problems[0]}{more}")
    top, files = _read_members(path)
    run_path = dest / top
    try:
        for name, data in files.items():
            target = run_path / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
    except OSError as exc:
        raise BundleError(f"{path}: cannot unpack into {dest}: {exc.strerror}") from None
    return run_path
