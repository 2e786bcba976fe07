"""series.csv: appended per batch, survives a killed writer, one-line errors on damaged rows."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from vbench.errors import RunDirError
from vbench.samplers import Reading, Sampling
from vbench.samplers.host import HostSampler
from vbench.series import SERIES, SERIES_COLUMNS, SeriesWriter, load_series, read_series

HEADER = ",".join(SERIES_COLUMNS) + "\n"


def test_append_and_read_back(tmp_path: Path) -> None:
    path = tmp_path / SERIES
    with SeriesWriter(path, "run1") as w:
        w.append("c1", [Reading("libvirt", "cpu.time", 0.0015, 4026206000.0, "ns")])
        w.append("c1", [Reading("libvirt", "cpu.time", 1.0021, 4126206000.0, "ns")])
        # A flush per batch: the rows are in the file before the writer closes.
        assert path.read_text().count("\n") == 3
    # A second writer (the next case, or a resumed run) appends without a second header.
    with SeriesWriter(path, "run1") as w:
        w.sink("c2")([Reading("host", "cpu.busy", 0.5, 12.5, "%")])
    frame = load_series(tmp_path)
    assert list(frame.columns) == list(SERIES_COLUMNS)
    assert frame["case_id"].tolist() == ["c1", "c1", "c2"]
    assert frame["value"].tolist() == [4026206000.0, 4126206000.0, 12.5]
    assert frame["t_s"].tolist() == [0.0015, 1.0021, 0.5]
    assert frame["value"].dtype == float


def test_missing_file_is_an_empty_frame(tmp_path: Path) -> None:
    frame = read_series(tmp_path / SERIES)
    assert frame.empty and list(frame.columns) == list(SERIES_COLUMNS)


@pytest.mark.parametrize(
    ("body", "line", "what"),
    [
        ("r,c,host,cpu.busy,0.1,12.5\n", 2, "6 fields instead of 7"),
        ("r,c,host,cpu.busy,0.1,12.5,%\nr,c,host,cpu.busy,zero,1,%\n", 3, "is not a number"),
        ("r,c,host,cpu.busy,0.1,nan,%\n", 2, "non-finite"),
        ("r,,host,cpu.busy,0.1,1,%\n", 2, "empty run_id, case_id"),
    ],
)
def test_damaged_rows_name_their_line(tmp_path: Path, body: str, line: int, what: str) -> None:
    path = tmp_path / SERIES
    path.write_text(HEADER + body)
    with pytest.raises(RunDirError) as err:
        read_series(path)
    msg = str(err.value)
    assert msg.startswith(f"{path}:{line}: damaged series row")
    assert what in msg and "\n" not in msg


def test_not_a_series_file(tmp_path: Path) -> None:
    path = tmp_path / SERIES
    path.write_text("run_id,case_id,metric,value\n")
    with pytest.raises(RunDirError, match=r":1: not a vbench series file"):
        read_series(path)


def test_a_torn_last_line_is_dropped(tmp_path: Path) -> None:
    path = tmp_path / SERIES
    path.write_text(HEADER + "r,c,host,cpu.busy,0.1,12.5,%\nr,c,host,cpu.bu")
    frame = read_series(path)
    assert frame["metric"].tolist() == ["cpu.busy"]


WRITER = """
import sys, time
from pathlib import Path
from vbench.samplers import Sampling
from vbench.samplers.host import HostSampler
from vbench.series import SeriesWriter
w = SeriesWriter(Path(sys.argv[1]), "killed")
s = Sampling([HostSampler()], w.sink("c1"), interval_s=0.05)
s.start()
print("sampling", flush=True)
time.sleep(60)
"""


def test_a_killed_run_keeps_what_was_sampled(tmp_path: Path) -> None:
    path = tmp_path / SERIES
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, env=env, text=True
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "sampling\n"
        deadline = time.monotonic() + 20
        # Kill it mid-run, once a few ticks are in the file (the host may be loaded).
        while path.read_text().count("cpu.total_s") < 4 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    frame = read_series(path)
    ticks = frame.loc[frame["metric"] == "cpu.total_s", "t_s"]
    assert len(ticks) >= 4 and ticks.is_monotonic_increasing
    assert (frame["run_id"] == "killed").all()


def test_sampling_into_the_series_file(tmp_path: Path) -> None:
    with (
        SeriesWriter(tmp_path / SERIES, "r") as w,
        Sampling([HostSampler()], w.sink("case"), interval_s=0.05),
    ):
        time.sleep(0.3)
    frame = load_series(tmp_path)
    busy = frame[frame["metric"] == "cpu.busy"]
    assert len(busy) >= 2 and busy["t_s"].is_monotonic_increasing
    assert busy["value"].between(0, 100).all()
