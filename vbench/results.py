"""The run directory: manifest, tidy samples and raw tool output, written atomically.

    <output>/<run-id>/
      manifest.json      what ran, where, with what, and how it ended (`Manifest`)
      samples.csv        one row per measured value (see vbench.model.SAMPLE_COLUMNS), appended
                         as cases finish
      raw/<case-id>/     the workload's output (fio.json, stress-ng.yaml), domain.xml, console.log
                         (listed in the manifest)
      host-changes.json  the run's host changes (network namespace, taps, --prepare-host's), each
                         recorded before it was made, and their undoing (vbench.host.changes)
      report.html, report.pdf

Every other file is written to a temporary name and renamed, so a reader never sees half a file;
samples.csv grows by whole rows, flushed per case.  An interrupted run stays readable (its
manifest says `interrupted`).

Reading is strict: `RunDir.load()` gives the manifest and the samples or raises one `RunDirError`
line naming the file and the line (a malformed sample row, a truncated manifest, a raw file the
manifest names but the directory lacks, samples of a case the manifest does not list).

Manifest format history: 1 stored the host-check document as an open mapping; 2 stores the typed
`vbench.checkdoc.CheckDocument` and lists the raw files; 3 drops `host_changes` (the network's
host changes), since every host change of a run is in its journal, `host-changes.json`
(vbench.host.changes).  Older manifests are upgraded on reading: v1's check document through
`load_check_document` (no raw-file list, so none is checked); v1's and v2's `host_changes` are
left out (lines of text for a reader, never what `vbench cleanup` undid from).
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from vbench.checkdoc import CheckDocument, load_check_document
from vbench.errors import RecordError, RunDirError
from vbench.model import SAMPLE_COLUMNS, Sample, trial_id

if TYPE_CHECKING:
    import pandas as pd

MANIFEST_FORMAT_VERSION: Final = 3
MANIFEST = "manifest.json"
SAMPLES = "samples.csv"
RAW = "raw"
# Sample columns that must be non-empty in every row (`parameters` may be empty: boot samples).
REQUIRED_TEXT = ("run_id", "case_id", "mode", "workload", "metric", "unit")

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


class CrossCheckRecord(_Record):
    """A workload's own count against libvirt's (or the tap's) over the case (vbench.derive)."""

    name: str  # block_requests | block_bytes | net_bytes_tx | net_bytes_rx
    workload: float
    sampled: float
    disagreement_pct: float | None  # None: the workload counted nothing and the sampler did
    limit_pct: float
    flagged: bool
    explained_by: str | None = None


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
    workload_s: float | None = None  # wall time of the workload's command alone
    cross_checks: list[CrossCheckRecord] = Field(default_factory=list)
    flags: list[str] = Field(default_factory=list)  # names of the cross-checks that disagree
    sampling_errors: dict[str, str] = Field(default_factory=dict)  # sampler -> its first error
    # density trials: N guests ran the case at once; `guest` is this guest's index, None on the
    # case's aggregate record (its samples: the sums, fairness and host CPU over the N guests)
    density: int | None = None
    guest: int | None = None
    # the aggregate record: how far apart the guests' threads were released to start the case
    start_spread_ms: float | None = None


class TrialRecord(_Record):
    mode: str
    mode_id: str
    repetition: int
    status: CaseStatus
    boot_to_agent_s: float | None = None
    error: str | None = None
    console_tail: str | None = None
    density: int | None = None  # a guest of a density trial: N and its index
    guest: int | None = None

    @property
    def trial_id(self) -> str:
        return trial_id(self.mode, self.repetition, self.density, self.guest)


class RoundRecord(_Record):
    """After one round of an adaptive run: its widest headline CI (None: undefined)."""

    round: int
    widest: str | None
    widest_ci_pct: float | None


class RepetitionsRecord(_Record):
    """How many rounds ran and what stopped them (`vbench.adaptive`)."""

    rule: Literal["fixed", "adaptive"]
    rounds: int  # rounds run
    min: int
    max: int
    target_ci_pct: float | None = None
    # fixed: the count was reached; target / max / no-figures: the adaptive rule's reason;
    # None: the run ended before (failed, interrupted)
    stopped_by: Literal["fixed", "target", "max", "no-figures"] | None = None
    summary: str = ""  # one line, e.g. "target reached after 4 rounds: ..."
    history: list[RoundRecord] = Field(default_factory=list)


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


class RunTiming(_Record):
    """Where the run's time went: workload commands vs everything else (boot, teardown, disk
    fill, servers, sampling, checks)."""

    wall_s: float  # from the run directory's creation to the run's end
    workload_s: float  # the workload commands alone (`of_cases`)
    overhead_ratio: float  # (wall_s - workload_s) / wall_s

    @classmethod
    def of(cls, wall_s: float, workload_s: float) -> RunTiming:
        ratio = max(0.0, wall_s - workload_s) / wall_s if wall_s > 0 else 0.0
        return cls(wall_s=round(wall_s, 3), workload_s=round(workload_s, 3), overhead_ratio=ratio)

    @classmethod
    def of_cases(cls, wall_s: float, cases: Sequence[CaseRecord]) -> RunTiming:
        """The cases' workload time: a density case runs in its N guests at once, and its
        aggregate record (guest None) holds that wall time once, so the per-guest records
        are not added again."""
        return cls.of(wall_s, sum(c.workload_s or 0.0 for c in cases if c.guest is None))


class Manifest(_Record):
    format_version: Literal[3] = MANIFEST_FORMAT_VERSION
    run_id: str
    status: RunStatus = "running"
    started_at: str = Field(default_factory=utc_now)
    ended_at: str | None = None
    libvirt_uri: str
    scenario: ScenarioRecord
    host: dict[str, Any] = Field(default_factory=dict)
    versions: dict[str, str] = Field(default_factory=dict)
    accelerator: Accel | None = None
    checks: CheckDocument | None = None
    trials: list[TrialRecord] = Field(default_factory=list)
    cases: list[CaseRecord] = Field(default_factory=list)
    skipped_modes: list[SkippedMode] = Field(default_factory=list)
    error: str | None = None
    timing: RunTiming | None = None
    repetitions: RepetitionsRecord | None = None
    # Every file this run wrote under raw/, relative to the run directory (RunDir keeps it).
    raw_files: list[str] = Field(default_factory=list)

    def case_ids(self) -> set[str]:
        """The case ids samples may carry: every case, and each trial's boot sample."""
        # The boot sample of a trial is `<trial id>-boot`, e.g. `r0-pv-boot` (runner._boot_sample).
        return {c.case_id for c in self.cases} | {f"{t.trial_id}-boot" for t in self.trials}


def _line_of(text: str, needle: str) -> int:
    """The 1-based line of `text` holding `needle` first (1 when absent)."""
    at = text.find(needle)
    return text.count("\n", 0, at) + 1 if at >= 0 else 1


def load_manifest(data: object, source: str) -> Manifest:
    """The one loader of a manifest (parsed JSON): v3 as is, v1 and v2 upgraded, else
    RunDirError."""
    if not isinstance(data, Mapping):
        raise RunDirError(f"{source}: not a vbench manifest (a JSON object)")
    version = data.get("format_version")
    if version not in (1, 2, MANIFEST_FORMAT_VERSION):
        raise RunDirError(
            f"{source}: format_version {version!r} is not one this vbench reads "
            f"(1 to {MANIFEST_FORMAT_VERSION}); use the vbench version that wrote it"
        )
    fields = dict(data)
    if version != MANIFEST_FORMAT_VERSION:
        fields["format_version"] = MANIFEST_FORMAT_VERSION
        # the network's host changes: in the run's journal since v3 (an undone list here)
        fields.pop("host_changes", None)
    if fields.get("checks") is not None:
        try:
            fields["checks"] = load_check_document(fields["checks"], f"{source}: checks")
        except RecordError as exc:
            raise RunDirError(str(exc)) from None
    try:
        return Manifest.model_validate(fields)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"])
        raise RunDirError(f"{source}: {loc}: {err['msg']}") from None


@dataclass(frozen=True)
class Run:
    """A run directory, read and cross-checked: its manifest and its samples."""

    path: Path
    manifest: Manifest
    samples: pd.DataFrame


class RunDir:
    """A run directory being written (by the runner) or read (by the report)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._raw: set[str] = set()  # raw files written through this object

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
        """Write the manifest, listing every raw file written so far (readers check them)."""
        if self._raw - set(manifest.raw_files):
            manifest.raw_files = sorted(set(manifest.raw_files) | self._raw)
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
        d = self.path / RAW / case_id
        d.mkdir(parents=True, exist_ok=True)
        return d

    def write_raw(self, case_id: str, name: str, data: str | bytes) -> Path:
        target = self.raw_dir(case_id) / name
        atomic_write(target, data)
        self._raw.add(f"{RAW}/{case_id}/{name}")
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
        path = self.path / MANIFEST
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise RunDirError(f"{path}: unreadable: {exc}") from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise RunDirError(
                f"{path}:{exc.lineno}: not valid JSON ({exc.msg}, column {exc.colno}): the file "
                "is truncated or damaged; restore it (e.g. from the run's evidence bundle)"
            ) from None
        return load_manifest(data, str(path))

    def read_samples(self) -> pd.DataFrame:
        """All samples of the run as one DataFrame (columns: vbench.model.SAMPLE_COLUMNS).

        Every row is checked: a malformed one is a RunDirError naming the file and its line.
        """
        import pandas as pd

        path = self.path / SAMPLES
        if not path.is_file():
            return _typed(pd.DataFrame({c: pd.Series(dtype="object") for c in SAMPLE_COLUMNS}))
        try:
            # All as text first, so that a bad field is found and named rather than coerced;
            # blank lines kept as rows so that row i is line i + 2.
            frame = pd.read_csv(
                path, dtype=str, keep_default_na=False, skip_blank_lines=False, engine="c"
            )
        except pd.errors.EmptyDataError:
            raise RunDirError(f"{path}:1: empty (no header line); delete the file") from None
        except pd.errors.ParserError as exc:
            found = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", str(exc))
            if found:
                want, line, saw = found.groups()
                raise RunDirError(
                    f"{path}:{line}: malformed sample row ({saw} fields, want {want}); "
                    "fix or delete that line"
                ) from None
            raise RunDirError(f"{path}: not a samples CSV: {exc}") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise RunDirError(f"{path}: unreadable: {exc}") from None
        missing = [c for c in SAMPLE_COLUMNS if c not in frame.columns]
        if missing:
            raise RunDirError(f"{path}:1: missing columns {missing}")
        frame = frame[list(SAMPLE_COLUMNS)].fillna("")
        value = pd.to_numeric(frame["value"], errors="coerce")
        stamp = pd.to_numeric(frame["timestamp"], errors="coerce")
        rep = pd.to_numeric(frame["repetition"], errors="coerce")
        problems = [
            ("value", ~value.abs().lt(float("inf")), "is not a finite number"),
            ("timestamp", ~stamp.abs().lt(float("inf")), "is not a number"),
            ("repetition", ~(rep.ge(0) & rep.eq(rep.round())), "is not a count >= 0"),
            *((c, frame[c].eq(""), "is empty") for c in REQUIRED_TEXT),
        ]
        # The first bad row; on it, the first bad column in file order.
        bad = [
            (int(mask.to_numpy().argmax()), SAMPLE_COLUMNS.index(col), col, why)
            for col, mask, why in problems
            if mask.any()
        ]
        if bad:
            row, _, col, why = min(bad)
            shown = str(frame.at[row, col])[:40]
            raise RunDirError(
                f"{path}:{row + 2}: malformed sample row ({col} {shown!r} {why}); "
                "fix or delete that line"
            )
        frame["value"] = value.astype(float)
        frame["timestamp"] = stamp.astype(float)
        frame["repetition"] = rep.astype(int)
        return _typed(frame)

    def load(self) -> Run:
        """Manifest and samples, cross-checked: raw files the manifest names exist, and every
        sample's case is one the manifest lists.  One RunDirError line otherwise.

        A run that did not complete may hold samples of the case it was in when it stopped
        (samples are written before the case is recorded): those are left out.
        """
        manifest = self.read_manifest()
        mpath = self.path / MANIFEST
        for rel in manifest.raw_files:
            if not (self.path / rel).is_file():
                line = _line_of(mpath.read_text(encoding="utf-8"), json.dumps(rel))
                raise RunDirError(
                    f"{mpath}:{line}: names {rel}, which is missing from the run directory; "
                    "restore it (e.g. from the run's evidence bundle)"
                )
        samples = self.read_samples()
        if not samples.empty:
            known = samples["case_id"].isin(manifest.case_ids())
            if not known.all():
                if manifest.status == "complete":
                    row = int((~known).to_numpy().argmax())
                    raise RunDirError(
                        f"{self.path / SAMPLES}:{row + 2}: case {samples.at[row, 'case_id']!r} "
                        f"is not one {MANIFEST} lists; the samples belong to another run or the "
                        "manifest is damaged"
                    )
                samples = samples[known].reset_index(drop=True)
        return Run(path=self.path, manifest=manifest, samples=samples)


def _typed(frame: pd.DataFrame) -> pd.DataFrame:
    """Sample columns with their types (text columns as str, even when empty)."""
    return frame.astype({"value": float, "timestamp": float, "repetition": int})


def load_samples(run_path: Path) -> pd.DataFrame:
    """One call to get a run's samples (checked against its manifest) as a pandas DataFrame."""
    return RunDir.open(run_path).load().samples
