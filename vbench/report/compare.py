"""`vbench compare RUN_A RUN_B [...]`: runs side by side (two hosts, two hardware generations,
before/after a BIOS or kernel change).

    build_compare([Path("reports/a"), Path("reports/b")], Path("reports/compare-a-vs-b"))

A case is the same in two runs when its workload, job parameters and mode are the same.  Every
later run is compared with the first: per common case and metric, the ratio of the medians (B / A)
with its bootstrap interval and the Mann-Whitney U test, Holm-corrected over every comparison of
the page (the statistics of `vbench.stats`, as in the report).  Cases whose job parameters differ
are not compared and are listed with the differing parameters; cases found in one run only are
listed too.  Host, kernel, versions and accelerator are what a comparison is about: they are shown
side by side, differences marked.  A TCG run against a KVM run is compared, with a warning in the
margin of every PDF page and above every results table.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from vbench import __version__
from vbench.errors import VbenchError
from vbench.report.analysis import (
    metric_label,
    metric_sort_key,
    mode_order,
    mode_title,
    parameter_rank,
    parse_parameters,
    unit_label,
)
from vbench.report.render import (
    DASH,
    TCG_WARNING,
    _flatten,
    base_css,
    render_pdf,
    summary_cell,
    template,
)
from vbench.results import Manifest, RunDir, atomic_write, utc_now
from vbench.stats import (
    DEFAULT_ALPHA,
    Summary,
    holm,
    relative_changes,
    stability_flags,
    summarize_many,
)

COMPARE_HTML = "compare.html"
COMPARE_PDF = "compare.pdf"
ACCEL_WARNING = (
    "These runs used different accelerators ({accels}): under TCG QEMU emulates the CPU in "
    "software, so the ratios below measure mostly the accelerator, not the hosts or their settings."
)
ACCEL_HEADER = (
    "Warning: a TCG run compared with accelerated ones; the ratios measure mostly the accelerator"
)
COLUMNS = (
    "run",
    "workload",
    "parameters",
    "mode",
    "metric",
    "unit",
    "n",
    "median",
    "mean",
    "stdev",
    "cv",
    "min",
    "max",
    "median_ci_low",
    "median_ci_high",
    "reference",  # the run label this row is compared with (the first run)
    "ratio",  # median / the first run's median
    "ratio_low",
    "ratio_high",
    "p_value",
    "p_holm",
    "significant",
    "min_p",
    "flags",
)


class CompareError(VbenchError):
    """The runs given to `vbench compare` cannot be compared (fewer than two, one given twice)."""


@dataclass(frozen=True, eq=False)
class Run:
    label: str  # A, B, C, ...
    path: Path
    manifest: Manifest
    samples: pd.DataFrame


@dataclass(frozen=True, order=True)
class CaseKey:
    workload: str
    parameters: str
    mode: str


@dataclass(frozen=True)
class NotCompared:
    workload: str
    mode: str
    runs: str  # "A, B"
    parameters: str  # the first run's (or the only run's) job parameters
    reason: str


@dataclass(frozen=True)
class EnvRow:
    key: str
    values: tuple[str, ...]  # one per run

    @property
    def differs(self) -> bool:
        return len(set(self.values)) > 1


@dataclass(frozen=True, eq=False)
class Comparison:
    runs: tuple[Run, ...]
    rows: pd.DataFrame  # COLUMNS: one row per (run, case, metric)
    not_compared: tuple[NotCompared, ...]
    environment: tuple[EnvRow, ...]
    accel_warning: str | None

    @property
    def compared(self) -> pd.DataFrame:
        """The rows of the later runs (those with a ratio and a test)."""
        return self.rows[self.rows["run"] != self.runs[0].label]


def _labels(count: int) -> list[str]:
    return [chr(ord("A") + i) if i < 26 else f"R{i + 1}" for i in range(count)]


def load_runs(paths: Sequence[Path]) -> list[Run]:
    """Open each run directory (`RunDirError` names a bad one); labels A, B, ... in order."""
    if len(paths) < 2:
        raise CompareError("vbench compare needs at least two run directories (RUN_A RUN_B ...)")
    seen: dict[Path, Path] = {}
    for path in paths:
        resolved = path.resolve()
        if resolved in seen:
            raise CompareError(f"{path}: given twice; compare different run directories")
        seen[resolved] = path
    runs: list[Run] = []
    for label, path in zip(_labels(len(paths)), paths, strict=True):
        rundir = RunDir.open(path)
        runs.append(run_of(label, path, rundir.read_manifest(), rundir.read_samples()))
    return runs


def run_of(label: str, path: Path, manifest: Manifest, samples: pd.DataFrame) -> Run:
    """A run as `compare_runs` takes it (`vbench fleet report` labels runs by host)."""
    if not samples.empty:
        samples = samples.copy()
        samples["parameters"] = samples["parameters"].fillna("").astype(str)
        samples["mode"] = samples["mode"].astype(str)
    return Run(label, path, manifest, samples)


def _cases(run: Run) -> dict[CaseKey, dict[str, list[float]]]:
    """Case -> metric -> values, cases and metrics in the order the run recorded them."""
    out: dict[CaseKey, dict[str, list[float]]] = {}
    if run.samples.empty:
        return out
    for (workload, parameters, mode, metric), group in run.samples.groupby(
        ["workload", "parameters", "mode", "metric"], sort=False
    ):
        key = CaseKey(str(workload), str(parameters), str(mode))
        out.setdefault(key, {})[str(metric)] = [float(v) for v in group["value"].tolist()]
    return out


def parameter_differences(a: str, b: str) -> list[str]:
    """`runtime_s: 5 / 2` for each job parameter that differs (a missing one shows as a dash)."""
    pa, pb = dict(parse_parameters(a)), dict(parse_parameters(b))
    return [
        f"{k}: {pa.get(k, DASH)} / {pb.get(k, DASH)}"
        for k in sorted(set(pa) | set(pb))
        if pa.get(k) != pb.get(k)
    ]


def _pair_unmatched(
    only_a: list[CaseKey], only_b: list[CaseKey], a: str, b: str
) -> list[NotCompared]:
    """Cases of one run without an identical case in the other: a case of the same workload and
    mode differing in the fewest job parameters is its counterpart ("parameters differ"); the rest
    are in one run only."""
    out: list[NotCompared] = []
    left = list(only_b)
    for case in only_a:
        candidates = [c for c in left if (c.workload, c.mode) == (case.workload, case.mode)]
        if candidates:
            other = min(
                candidates,
                key=lambda c: (len(parameter_differences(case.parameters, c.parameters)), c),
            )
            left.remove(other)
            diffs = "; ".join(parameter_differences(case.parameters, other.parameters))
            out.append(
                NotCompared(
                    case.workload,
                    case.mode,
                    f"{a}, {b}",
                    case.parameters,
                    f"job parameters differ ({a} / {b}): {diffs}",
                )
            )
        else:
            out.append(
                NotCompared(case.workload, case.mode, a, case.parameters, f"only in run {a}")
            )
    out.extend(NotCompared(c.workload, c.mode, b, c.parameters, f"only in run {b}") for c in left)
    return out


def _row(
    run: str, case: CaseKey, metric: str, unit: str, values: list[float], s: Summary
) -> dict[str, Any]:
    return {
        "run": run,
        "workload": case.workload,
        "parameters": case.parameters,
        "mode": case.mode,
        "metric": metric,
        "unit": unit,
        "n": s.n,
        "median": s.median,
        "mean": s.mean,
        "stdev": s.stdev,
        "cv": s.cv,
        "min": s.min,
        "max": s.max,
        "median_ci_low": s.median_ci_low,
        "median_ci_high": s.median_ci_high,
        "reference": None,
        "ratio": None,
        "ratio_low": None,
        "ratio_high": None,
        "p_value": None,
        "p_holm": None,
        "significant": None,
        "min_p": None,
        "flags": stability_flags(values),
    }


def _units(run: Run) -> dict[tuple[str, str], str]:
    if run.samples.empty:
        return {}
    first = run.samples.drop_duplicates(["workload", "metric"])
    return {
        (str(w), str(m)): str(u)
        for w, m, u in zip(first["workload"], first["metric"], first["unit"], strict=True)
    }


def _environment(runs: Sequence[Run]) -> list[EnvRow]:
    def facts(m: Manifest) -> dict[str, str]:
        out = {
            "run id": m.run_id,
            "scenario": f"{m.scenario.name} (sha256 {m.scenario.sha256[:12]})",
            "status": m.status,
            "started": m.started_at,
            "accelerator": m.accelerator.name.upper() if m.accelerator else DASH,
            "accelerator: why": m.accelerator.reason if m.accelerator else DASH,
        }
        out.update((f"host: {k}", v) for k, v in _flatten(m.host))
        out.update((f"version: {k}", v) for k, v in sorted(m.versions.items()))
        return out

    per_run = [facts(r.manifest) for r in runs]
    keys: list[str] = []
    for f in per_run:
        keys += [k for k in f if k not in keys]
    # run facts, then host facts, then versions (a fact only one run has stays in its group)
    group = {"host": 1, "version": 2}
    keys.sort(key=lambda k: group.get(k.partition(":")[0], 0) if ": " in k else 0)
    return [EnvRow(k, tuple(f.get(k, DASH) for f in per_run)) for k in keys]


def _accel_warning(runs: Sequence[Run]) -> str | None:
    names = {r.manifest.accelerator.name.lower() for r in runs if r.manifest.accelerator}
    if "tcg" in names and len(names) > 1:
        return ACCEL_WARNING.format(
            accels=", ".join(
                f"{r.label}: {r.manifest.accelerator.name.upper()}"
                for r in runs
                if r.manifest.accelerator
            )
        )
    return None


def compare_runs(runs: Sequence[Run], *, alpha: float = DEFAULT_ALPHA) -> Comparison:
    """Compare every run after the first with the first (see the module docstring)."""
    first, *others = runs
    cases_a = _cases(first)
    units = _units(first)
    rows: list[dict[str, Any]] = []
    not_compared: list[NotCompared] = []
    ref_items: dict[tuple[CaseKey, str], list[float]] = {}
    # (run label, case, metric, values, the first run's values)
    later_items: list[tuple[str, CaseKey, str, list[float], list[float]]] = []
    for other in others:
        cases_b = _cases(other)
        common = [c for c in cases_a if c in cases_b]
        not_compared += _pair_unmatched(
            [c for c in cases_a if c not in cases_b],
            [c for c in cases_b if c not in cases_a],
            first.label,
            other.label,
        )
        for case in common:
            metrics_a, metrics_b = cases_a[case], cases_b[case]
            lonely = [
                f"{m} only in run {first.label if m in metrics_a else other.label}"
                for m in [*metrics_a, *(m for m in metrics_b if m not in metrics_a)]
                if (m in metrics_a) != (m in metrics_b)
            ]
            if lonely:
                not_compared.append(
                    NotCompared(
                        case.workload,
                        case.mode,
                        f"{first.label}, {other.label}",
                        case.parameters,
                        "metrics not in both runs: " + "; ".join(lonely),
                    )
                )
            for metric in (m for m in metrics_a if m in metrics_b):
                ref_items.setdefault((case, metric), metrics_a[metric])
                later_items.append(
                    (other.label, case, metric, metrics_b[metric], metrics_a[metric])
                )
    # Every summary and comparison of the page computed together (batched SciPy calls).
    summaries = summarize_many([*ref_items.values(), *(item[3] for item in later_items)])
    changes = relative_changes([(item[3], item[4]) for item in later_items])
    ref_rows = {
        key: _row(first.label, key[0], key[1], units.get((key[0].workload, key[1]), ""), v, s)
        for (key, v), s in zip(ref_items.items(), summaries, strict=False)
    }
    later: list[dict[str, Any]] = []
    for (label, case, metric, values, _), s, rel in zip(
        later_items, summaries[len(ref_items) :], changes, strict=True
    ):
        row = _row(label, case, metric, units.get((case.workload, metric), ""), values, s)
        row["reference"] = first.label
        if rel is not None:
            row.update(
                ratio=rel.ratio,
                ratio_low=rel.ratio_low,
                ratio_high=rel.ratio_high,
                p_value=rel.p_value,
                min_p=rel.test.min_p,
            )
        later.append(row)
    tested = [r for r in later if r["p_value"] is not None]
    for r, p in zip(tested, holm([float(r["p_value"]) for r in tested]), strict=True):
        r["p_holm"] = p
        r["significant"] = p <= alpha
    # Reference rows first, each followed by the rows compared with it.
    by_key: dict[tuple[CaseKey, str], list[dict[str, Any]]] = {}
    for r in later:
        by_key.setdefault((_key(r), str(r["metric"])), []).append(r)
    for key, ref in ref_rows.items():
        rows += [ref, *by_key.get(key, [])]
    return Comparison(
        runs=tuple(runs),
        rows=pd.DataFrame(rows, columns=list(COLUMNS)),
        not_compared=tuple(not_compared),
        environment=tuple(_environment(runs)),
        accel_warning=_accel_warning(runs),
    )


def _key(row: Mapping[str, Any]) -> CaseKey:
    return CaseKey(str(row["workload"]), str(row["parameters"]), str(row["mode"]))


# -- the page ------------------------------------------------------------------------------------


def _sections(comparison: Comparison) -> list[dict[str, Any]]:
    runs = comparison.runs
    labels = [r.label for r in runs]
    frame = comparison.rows
    if frame.empty:
        return []
    modes = mode_order(runs[0].manifest, frame)
    rank = {m: i for i, m in enumerate(modes)}
    sections: list[dict[str, Any]] = []
    for index, ((workload, parameters), group) in enumerate(
        frame.groupby(["workload", "parameters"], sort=False)
    ):
        table: list[dict[str, Any]] = []
        keys = group[["mode", "metric"]].drop_duplicates().itertuples(index=False)
        ordered = sorted(
            ((str(mode), str(metric)) for mode, metric in keys),
            key=lambda mm: (rank.get(mm[0], len(rank)), mm[0], metric_sort_key(mm[1])),
        )
        last_mode = None
        for mode, metric in ordered:
            rows = group[(group["mode"] == mode) & (group["metric"] == metric)]
            by_run = {
                str(r["run"]): {str(k): v for k, v in r.items()} for r in rows.to_dict("records")
            }
            table.append(
                {
                    "mode": mode_title(mode, runs[0].manifest),
                    "first_of_mode": mode != last_mode,
                    "metric": metric_label(metric),
                    "unit": unit_label(str(rows["unit"].iloc[0])),
                    "cells": [
                        summary_cell(by_run[lb], metric, lb == labels[0]) if lb in by_run else None
                        for lb in labels
                    ],
                }
            )
            last_mode = mode
        params = parse_parameters(str(parameters))
        order = parameter_rank(str(workload))
        params.sort(key=lambda kv: (order.get(kv[0], len(order)), kv[0]))
        sections.append(
            {
                "anchor": f"c{index}",
                "workload": str(workload),
                "parameters": params,
                "rows": table,
            }
        )
    return sections


def build_context(comparison: Comparison, generated_at: str) -> dict[str, Any]:
    runs = comparison.runs
    ids = [r.manifest.run_id for r in runs]
    footer = "compare " + " vs ".join(ids)
    compared = comparison.compared
    return {
        "title": " vs ".join(ids),
        "css": base_css(footer),
        "runs": [
            {
                "label": r.label,
                "run_id": r.manifest.run_id,
                "scenario": r.manifest.scenario.name,
                "status": r.manifest.status,
                "accel": r.manifest.accelerator.name.upper() if r.manifest.accelerator else DASH,
                "path": str(r.path.resolve()),
            }
            for r in runs
        ],
        "labels": [r.label for r in runs],
        "environment": comparison.environment,
        "accel_warning": comparison.accel_warning,
        "accel_header": ACCEL_HEADER,
        "any_tcg": any(
            r.manifest.accelerator is not None and r.manifest.accelerator.name.lower() == "tcg"
            for r in runs
        ),
        "tcg_warning": TCG_WARNING,
        "sections": _sections(comparison),
        "not_compared": comparison.not_compared,
        "n_compared": len(compared),
        "n_significant": int((compared["significant"] == True).sum()),  # noqa: E712
        "vbench_version": __version__,
        "generated_at": generated_at,
    }


@dataclass(frozen=True)
class CompareFiles:
    html: Path
    pdf: Path | None
    comparison: Comparison


def default_output(paths: Sequence[Path]) -> Path:
    """reports/compare-<A>-vs-<B>[-vs-...] from the run directories' names, beside the first run."""
    return paths[0].resolve().parent / ("compare-" + "-vs-".join(p.resolve().name for p in paths))


def build_compare(paths: Sequence[Path], output: Path, *, pdf: bool = True) -> CompareFiles:
    """Compare the run directories `paths` and write compare.html (and compare.pdf) in `output`.

    Raises `RunDirError` for an unreadable run directory, `CompareError` for fewer than two runs
    or an output directory that cannot be written.
    """
    comparison = compare_runs(load_runs(paths))
    html = template("compare.html.j2").render(**build_context(comparison, utc_now()))
    html_path = output / COMPARE_HTML
    pdf_path = output / COMPARE_PDF if pdf else None
    try:
        atomic_write(html_path, html)
        if pdf_path is not None:
            atomic_write(pdf_path, render_pdf(html))
    except OSError as exc:
        raise CompareError(
            f"{output}: cannot write the comparison there ({exc.strerror}); pass another --output"
        ) from None
    return CompareFiles(html=html_path, pdf=pdf_path, comparison=comparison)
