"""The run's time series: `series.csv` in the run directory, long format, appended as sampled.

    run_id,case_id,source,metric,t_s,value,unit
    20261201-1040-ab12,r0-pv-fio-randread-4k-qd16-j1,libvirt,cpu.time,0.004,4026206000.0,ns

One row per reading (see vbench.samplers): t_s is seconds since the case's first tick on the
monotonic clock.  The writer appends each tick's batch and flushes it, so a run that is killed
keeps everything sampled up to its last tick; the only damage a kill can do is a last line cut
short, which the reader drops (it has no line end).  Any other damaged row is an error naming the
file and line.
"""

from __future__ import annotations

import csv
import math
import threading
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, TextIO

from vbench.errors import RunDirError
from vbench.samplers import Reading, Sink

if TYPE_CHECKING:
    import pandas as pd

SERIES = "series.csv"
SERIES_COLUMNS: tuple[str, ...] = ("run_id", "case_id", "source", "metric", "t_s", "value", "unit")


class SeriesWriter:
    """Appends readings to a series file; safe to call from the sampler thread."""

    def __init__(self, path: Path, run_id: str) -> None:
        self.path = path
        self._run_id = run_id
        self._lock = threading.Lock()
        try:
            self._file: TextIO | None = path.open("a", encoding="utf-8", newline="")
        except OSError as exc:
            raise RunDirError(f"{path}: cannot open the series file: {exc.strerror}") from None
        self._csv = csv.writer(self._file, lineterminator="\n")
        if self._file.tell() == 0:
            self._csv.writerow(SERIES_COLUMNS)
            self._file.flush()

    def append(self, case_id: str, readings: Iterable[Reading]) -> None:
        """Write one batch and flush it to the kernel (a killed process keeps it)."""
        rows = [
            (self._run_id, case_id, r.source, r.metric, repr(r.t_s), repr(float(r.value)), r.unit)
            for r in readings
            if math.isfinite(r.value)
        ]
        with self._lock:
            if self._file is None:
                raise RunDirError(f"{self.path}: the series file is closed")
            self._csv.writerows(rows)
            self._file.flush()

    def sink(self, case_id: str) -> Sink:
        """The sink a case's `Sampling` writes to."""
        return lambda batch: self.append(case_id, batch)

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None

    def __enter__(self) -> SeriesWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _damaged(path: Path, line: int, what: str) -> RunDirError:
    return RunDirError(
        f"{path}:{line}: damaged series row ({what}); remove or repair that line "
        "(every row is run_id,case_id,source,metric,t_s,value,unit)"
    )


def read_series(path: Path) -> pd.DataFrame:
    """The series file as a DataFrame (columns SERIES_COLUMNS; t_s and value are floats).

    A missing file is an empty frame (a run without samplers).  A last line without its line end
    (a run killed while writing) is dropped; any other bad row raises RunDirError naming its line.
    """
    import pandas as pd

    empty = pd.DataFrame({c: pd.Series(dtype="object") for c in SERIES_COLUMNS}).astype(
        {"t_s": float, "value": float}
    )
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return empty
    except (OSError, UnicodeDecodeError) as exc:
        raise RunDirError(f"{path}: unreadable series file: {exc}") from None
    lines = text.split("\n")
    # The text after the last "\n": "" for a complete file, a torn row for a killed writer.
    lines = lines[:-1]
    if not lines:
        return empty
    header = next(csv.reader([lines[0]]))
    if tuple(header) != SERIES_COLUMNS:
        raise RunDirError(
            f"{path}:1: not a vbench series file (header {','.join(header)!r}, "
            f"expected {','.join(SERIES_COLUMNS)!r})"
        )
    fast = _read_fast(text[: text.rfind("\n") + 1])
    if fast is not None:
        return fast
    cols: dict[str, list[object]] = {c: [] for c in SERIES_COLUMNS}
    for lineno, row in enumerate(csv.reader(lines[1:]), start=2):
        if len(row) != len(SERIES_COLUMNS):
            raise _damaged(path, lineno, f"{len(row)} fields instead of {len(SERIES_COLUMNS)}")
        try:
            t_s, value = float(row[4]), float(row[5])
        except ValueError:
            raise _damaged(
                path, lineno, f"t_s {row[4]!r} or value {row[5]!r} is not a number"
            ) from None
        if not (math.isfinite(t_s) and math.isfinite(value)):
            raise _damaged(path, lineno, "a non-finite number")
        if not all(row[i] for i in (0, 1, 2, 3)):
            raise _damaged(path, lineno, "an empty run_id, case_id, source or metric")
        for c, v in zip(SERIES_COLUMNS, (*row[:4], t_s, value, row[6]), strict=True):
            cols[c].append(v)
    return pd.DataFrame(cols).astype({"t_s": float, "value": float})


def _read_fast(text: str) -> pd.DataFrame | None:
    """The whole rows of a series file through pandas' C parser (a big run has a million rows;
    the checking loop below takes seconds), or None when any row is not clean, so that the loop
    names the first bad line."""
    import io

    import numpy as np
    import pandas as pd

    try:
        frame = pd.read_csv(
            io.StringIO(text),
            dtype={c: str for c in SERIES_COLUMNS if c not in ("t_s", "value")},
            engine="c",  # a missing or empty field is NaN: the loop below decides about it
        )
    except (ValueError, pd.errors.ParserError):
        return None
    if tuple(frame.columns) != SERIES_COLUMNS or frame.isna().to_numpy().any():
        return None
    if frame.empty:
        return None
    numbers = frame[["t_s", "value"]]
    if not all(pd.api.types.is_numeric_dtype(t) for t in numbers.dtypes):
        return None
    if not np.isfinite(numbers.to_numpy(dtype=float)).all():
        return None
    return frame.astype({"t_s": float, "value": float})


def load_series(run_path: Path) -> pd.DataFrame:
    """A run directory's time series in one call."""
    return read_series(run_path / SERIES)
