"""Metrics over time: samplers that run beside a case (the model: PerfKit's time-series samples).

A **sampler** reads a set of values at one moment (`sample()`), each a `Value` (source, metric,
value, unit).  `Sampling` runs several samplers in one thread of its own:

  - `start()` takes the first tick (t_s close to 0) before it returns, so the counters' baseline is
    read before the workload starts; `stop()` takes a last tick after it ends and joins the thread.
    A counter's last value minus its first therefore covers the whole case (see vbench.derive).
  - Ticks are every `interval_s` (1 Hz by default) on `time.monotonic()`; a slow tick skips the
    ticks it overran instead of bunching them.  Each reading's t_s is the midpoint of its sampler's
    read, in seconds since the first tick.
  - A sampler with `every = N` reads on every Nth tick only (first and last always).
  - Every tick's readings go to the sink as one batch (the series file appends and flushes them).
  - A failing sampler (a guest that stopped answering) loses that tick, not the case: its first
    error is kept in `SamplingReport.errors`, the thread goes on.

Counters (libvirt's cpu.time, block requests, /proc/stat jiffies) are stored as read; rates are
derived from them afterwards.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Protocol

from vbench.errors import VbenchError

DEFAULT_INTERVAL_S = 1.0


@dataclass(frozen=True)
class Value:
    """One value a sampler read: which source, which metric, how much, in what unit."""

    source: str  # "libvirt", "host", "guest"
    metric: str  # "cpu.time", "block.vda.rd.reqs", "pressure.io.some.avg10"
    value: float
    unit: str  # "ns", "count", "B", "%", "ms", "us", "KiB"


@dataclass(frozen=True)
class Reading:
    """A value with its time: seconds since the case's first tick (monotonic clock)."""

    source: str
    metric: str
    t_s: float
    value: float
    unit: str


class Sampler(Protocol):
    """What `Sampling` needs of a sampler."""

    @property
    def name(self) -> str:
        """Short name for error messages ("libvirt", "host", "guest")."""
        ...

    @property
    def every(self) -> int:
        """Read on every Nth tick only (1 = every tick); the first and last tick always read."""
        ...

    def sample(self) -> list[Value]:
        """The values at this moment.  May raise VbenchError or OSError: that tick is lost."""
        ...


Sink = Callable[[list[Reading]], None]


@dataclass
class SamplingReport:
    """What one sampling window did: ticks, readings, the thread's own CPU time, first errors."""

    ticks: int = 0
    readings: int = 0
    wall_s: float = 0.0
    thread_cpu_s: float = 0.0  # CPU time of the sampler thread (time.thread_time)
    errors: dict[str, str] = field(default_factory=dict)  # sampler name -> first error

    @property
    def cpu_share(self) -> float:
        """The sampler thread's CPU time as a share of one core over the window (0..1)."""
        return self.thread_cpu_s / self.wall_s if self.wall_s > 0 else 0.0


class Sampling:
    """Runs samplers in their own thread from `start()` to `stop()`; usable as a context manager."""

    def __init__(
        self,
        samplers: Sequence[Sampler],
        sink: Sink,
        *,
        interval_s: float = DEFAULT_INTERVAL_S,
    ) -> None:
        if interval_s <= 0:
            raise ValueError(f"sampling interval must be > 0 s, not {interval_s!r}")
        self._samplers = list(samplers)
        self._sink = sink
        self._interval = interval_s
        self._stop = threading.Event()
        self._first = threading.Event()
        self._thread: threading.Thread | None = None
        self._t0 = 0.0
        self.report = SamplingReport()

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("a Sampling runs once; make a new one per case")
        self._thread = threading.Thread(target=self._run, name="vbench-sampler", daemon=True)
        self._thread.start()
        self._first.wait()

    def stop(self) -> SamplingReport:
        """Take the last tick, end the thread and return what it did."""
        if self._thread is None:
            return self.report
        self._stop.set()
        self._thread.join()
        return self.report

    def __enter__(self) -> Sampling:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- the thread ------------------------------------------------------------------------------

    def _run(self) -> None:
        cpu0 = time.thread_time()
        self._t0 = time.monotonic()
        tick = 0
        try:
            self._tick(tick, last=False)
        finally:
            self._first.set()
        while True:
            due = self._t0 + (tick + 1) * self._interval
            stopping = self._stop.wait(max(0.0, due - time.monotonic()))
            # Overran (a slow guest agent): skip to the next tick still ahead.
            tick = max(tick + 1, int((time.monotonic() - self._t0) / self._interval))
            self._tick(tick, last=stopping)
            if stopping:
                break
        self.report.wall_s = time.monotonic() - self._t0
        self.report.thread_cpu_s = time.thread_time() - cpu0

    def _tick(self, tick: int, *, last: bool) -> None:
        batch: list[Reading] = []
        for sampler in self._samplers:
            if not (tick == 0 or last or tick % max(1, sampler.every) == 0):
                continue
            before = time.monotonic()
            try:
                values = sampler.sample()
            except (VbenchError, OSError) as exc:
                self.report.errors.setdefault(sampler.name, str(exc))
                continue
            except Exception as exc:  # a bug in one sampler must not end the case or the others
                self.report.errors.setdefault(sampler.name, f"{type(exc).__name__}: {exc}")
                continue
            t_s = round((before + time.monotonic()) / 2 - self._t0, 6)
            batch += [Reading(v.source, v.metric, t_s, v.value, v.unit) for v in values]
        self.report.ticks += 1
        if not batch:
            return
        try:
            self._sink(batch)
        except (VbenchError, OSError) as exc:
            self.report.errors.setdefault("sink", str(exc))
            return
        self.report.readings += len(batch)
