"""The run directory: manifest, tidy samples and raw tool output, written atomically.

    <output>/<run-id>/
      manifest.json      what ran, where, with what, and how it ended
      samples.csv        one row per measured value (see vbench.model.SAMPLE_COLUMNS), appended
                         as cases finish
      raw/<case-id>/     the workload's output (fio.json, stress-ng.yaml), domain.xml, console.log
      report.html, report.pdf

Every other file is written to a temporary name and renamed, so a reader never sees half a file;
samples.csv grows by whole rows, flushed per case.  An interrupted run stays readable (its
manifest says `interrupted`).
"""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from vbench.errors import RunDirError
from vbench.model import SAMPLE_COLUMNS, Sample

if TYPE_CHECKING:
    import pandas as pd

MANIFEST_FORMAT_VERSION = 1
MANIFEST = "manifest.json"
SAMPLES = "samples.csv"

RunStatus = Literal["running", "complete", "failed", "interrupted"]
CaseStatus = Literal["ok", "failed", "skipped"]


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def atomic_write(path: Path, data: str | bytes) -> None:
    """Write `data` to `path` through a temporary file in the same directory and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CaseRecord(_Record):
    case_id: str
    mode: str
    mode_id: str
    workload: str
    parameters: str
    repetition: int
    status: CaseStatus
    error: str | None = None
    started_at: str | None = None
    ended_at: str | None = None


class TrialRecord(_Record):
    mode: str
    mode_id: str
    repetition: int
    status: CaseStatus
    boot_to_agent_s: float | None = None
    error: str | None = None
    console_tail: str | None = None


class SkippedMode(_Record):
    mode: str
    mode_id: str
    reason: str


class Accel(_Record):
    name: str
    reason: str


class ScenarioRecord(_Record):
    path: str
    name: str
    sha256: str
    text: str


class Manifest(_Record):
    format_version: int = MANIFEST_FORMAT_VERSION
    run_id: str
    status: RunStatus = "running"
    started_at: str = Field(default_factory=utc_now)
    ended_at: str | None = None
    libvirt_uri: str
    scenario: ScenarioRecord
    host: dict[str, Any] = Field(default_factory=dict)
    versions: dict[str, str] = Field(default_factory=dict)
    accelerator: Accel | None = None
    checks: dict[str, Any] | None = None
    trials: list[TrialRecord] = Field(default_factory=list)
    cases: list[CaseRecord] = Field(default_factory=list)
    skipped_modes: list[SkippedMode] = Field(default_factory=list)
    error: str | None = None


class RunDir:
    """A run directory being written (by the runner) or read (by the report)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    # -- writing ---------------------------------------------------------------------------
    @classmethod
    def create(cls, output: Path, run_id: str) -> RunDir:
        path = output / run_id
        try:
            path.mkdir(parents=True, exist_ok=False)
        except FileExistsError:
            raise RunDirError(
                f"{path}: already exists; choose another --output or run id"
            ) from None
        except OSError as exc:
            raise RunDirError(f"{path}: cannot create the run directory: {exc.strerror}") from None
        return cls(path)

    def write_manifest(self, manifest: Manifest) -> None:
        atomic_write(self.path / MANIFEST, manifest.model_dump_json(indent=2) + "\n")

    def append_samples(self, samples: list[Sample]) -> None:
        """Add rows to samples.csv (its header first if the file is new), as cases finish.

        Rows are appended whole and flushed to disk, so an interrupted run keeps every finished
        case's samples; earlier rows are never rewritten.
        """
        if not samples:
            return
        path = self.path / SAMPLES
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=list(SAMPLE_COLUMNS), lineterminator="\n")
        new = not path.exists() or path.stat().st_size == 0
        if new:
            writer.writeheader()
        for s in samples:
            writer.writerow(s.as_row())
        with path.open("a", encoding="utf-8", newline="") as f:
            f.write(buf.getvalue())
            f.flush()
            os.fsync(f.fileno())

    def raw_dir(self, case_id: str) -> Path:
        d = self.path / "raw" / case_id
        d.mkdir(parents=True, exist_ok=True)
        return d

    def write_raw(self, case_id: str, name: str, data: str | bytes) -> Path:
        target = self.raw_dir(case_id) / name
        atomic_write(target, data)
        return target

    # -- reading ---------------------------------------------------------------------------
    @classmethod
    def open(cls, path: Path) -> RunDir:
        if not (path / MANIFEST).is_file():
            raise RunDirError(
                f"{path}: not a vbench run directory (no {MANIFEST}); pass reports/<run-id>"
            )
        return cls(path)

    def read_manifest(self) -> Manifest:
        try:
            data = json.loads((self.path / MANIFEST).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise RunDirError(f"{self.path / MANIFEST}: unreadable: {exc}") from None
        version = data.get("format_version") if isinstance(data, dict) else None
        if version != MANIFEST_FORMAT_VERSION:
            raise RunDirError(
                f"{self.path / MANIFEST}: format_version {version!r} is not one this vbench reads "
                f"({MANIFEST_FORMAT_VERSION})"
            )
        try:
            return Manifest.model_validate(data)
        except ValidationError as exc:
            err = exc.errors()[0]
            loc = ".".join(str(p) for p in err["loc"])
            raise RunDirError(f"{self.path / MANIFEST}: {loc}: {err['msg']}") from None

    def read_samples(self) -> pd.DataFrame:
        """All samples of the run as one DataFrame (columns: vbench.model.SAMPLE_COLUMNS)."""
        import pandas as pd

        path = self.path / SAMPLES
        if not path.is_file():
            return pd.DataFrame({c: pd.Series(dtype="object") for c in SAMPLE_COLUMNS})
        frame = pd.read_csv(path, dtype={"parameters": str, "case_id": str, "run_id": str})
        missing = [c for c in SAMPLE_COLUMNS if c not in frame.columns]
        if missing:
            raise RunDirError(f"{path}: missing columns {missing}")
        return frame


def load_samples(run_path: Path) -> pd.DataFrame:
    """One call to get a run's samples as a pandas DataFrame."""
    return RunDir.open(run_path).read_samples()
