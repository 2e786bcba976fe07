"""A run's certification: its scenario's `[[certify]]` thresholds judged on its samples.

The judging is `vbench.certify` (pure); this module picks each threshold's values out of the
samples (mode, metric, workload case), has the verdicts quote their figures in the tables' formats
(`TABLE_STYLE`) and writes the JUnit XML (one testcase per threshold).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass

import pandas as pd

from vbench.certify import (
    CertifySpec,
    FigureStyle,
    Status,
    Verdict,
    evaluate_metric,
    evaluate_ready,
    overall,
    specs_from_scenario_text,
)
from vbench.model import ModeId
from vbench.report.analysis import parse_parameters, unit_label
from vbench.report.render import fmt, fmt_ratio
from vbench.results import MANIFEST, Manifest

# `vbench report --check` exit codes
EXIT_CODES = {Status.PASS: 0, Status.FAIL: 2, Status.INCONCLUSIVE: 2, Status.ERROR: 1}

# A verdict's figures as the tables print them (`render.summary_cell`): the same digits, the same
# units, so the verdict and the table never show the same figure two ways.
TABLE_STYLE = FigureStyle(number=fmt, ratio=fmt_ratio, unit=unit_label)


@dataclass(frozen=True)
class Certification:
    verdicts: list[Verdict]
    status: Status

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.status]

    def counts(self) -> dict[Status, int]:
        return {s: sum(1 for v in self.verdicts if v.status is s) for s in Status}


def _mode_id(label: str, manifest: Manifest) -> str:
    """The mode id behind a scenario label (`fv-2` -> `fv`); the label itself when unknown."""
    if label in {m.value for m in ModeId}:
        return label
    ids = [c.mode_id for c in manifest.cases if c.mode == label]
    ids += [t.mode_id for t in manifest.trials if t.mode == label]
    return ids[0] if ids else label


def _matches(parameters: str, wanted: dict[str, str]) -> bool:
    have = dict(parse_parameters(parameters))
    return all(have.get(k) == v for k, v in wanted.items())


def _evaluate(spec: CertifySpec, manifest: Manifest, samples: pd.DataFrame) -> Verdict:
    if spec.ready:
        return evaluate_ready(spec, _mode_id(spec.mode, manifest), manifest.checks)
    modes = sorted(set(samples["mode"].astype(str))) if not samples.empty else []
    for label in (spec.mode, spec.reference):
        if label is not None and label not in modes:
            return Verdict(
                name=spec.describe(),
                status=Status.ERROR,
                observed="-",
                threshold="-",
                detail=f"mode {label!r} has no samples in this run (modes: {', '.join(modes)})",
            )
    rows = samples[samples["metric"] == spec.metric]
    if spec.workload:
        rows = rows[rows["workload"] == spec.workload]
    wanted = {k: str(v) for k, v in spec.case.items()}
    # a boolean Series: a plain empty list would select no columns instead of no rows
    rows = rows[rows["parameters"].map(lambda p: _matches(str(p), wanted)).astype(bool)]
    cases = sorted(set(zip(rows["workload"], rows["parameters"], strict=True)))
    if len(cases) != 1:
        found = "; ".join(f"{w}[{p}]" for w, p in cases[:3]) or "none"
        why = (
            f"no case has metric {spec.metric}"
            if not cases
            else f"{len(cases)} cases match ({found}); narrow it with case = {{...}}"
        )
        return Verdict(
            name=spec.describe(), status=Status.ERROR, observed="-", threshold="-", detail=why
        )
    workload, parameters = cases[0]
    case = rows[(rows["workload"] == workload) & (rows["parameters"] == parameters)]

    def values(mode: str) -> list[float]:
        picked = case[case["mode"] == mode].sort_values("repetition")
        return [float(v) for v in picked["value"]]

    units = sorted(set(case["unit"].astype(str)))
    reference = values(spec.reference) if spec.reference else None
    return evaluate_metric(spec, values(spec.mode), "/".join(units), reference, style=TABLE_STYLE)


def certify_run(manifest: Manifest, samples: pd.DataFrame) -> Certification | None:
    """The verdicts of the run's thresholds; None when its scenario has none.

    Raises `vbench.errors.RecordError` when a `[[certify]]` entry of the stored scenario is invalid.
    """
    specs = specs_from_scenario_text(manifest.scenario.text, f"{MANIFEST}: scenario")
    if not specs:
        return None
    frame = samples.copy()
    if not frame.empty:
        frame["parameters"] = frame["parameters"].fillna("").astype(str)
        frame["mode"] = frame["mode"].astype(str)
    verdicts = [_evaluate(spec, manifest, frame) for spec in specs]
    return Certification(verdicts=verdicts, status=overall(verdicts))


def junit_xml(cert: Certification, run_id: str) -> str:
    """JUnit XML, one testcase per threshold: fail -> <failure>, inconclusive ->
    <failure type="inconclusive">, error -> <error>; pass carries what was observed."""
    counts = cert.counts()
    suites = ET.Element("testsuites", name="vbench certify")
    suite = ET.SubElement(
        suites,
        "testsuite",
        name="vbench.certify",
        tests=str(len(cert.verdicts)),
        failures=str(counts[Status.FAIL] + counts[Status.INCONCLUSIVE]),
        errors=str(counts[Status.ERROR]),
        skipped="0",
    )
    props = ET.SubElement(suite, "properties")
    ET.SubElement(props, "property", name="run_id", value=run_id)
    ET.SubElement(props, "property", name="verdict", value=cert.status.value)
    for v in cert.verdicts:
        case = ET.SubElement(suite, "testcase", classname="vbench.certify", name=v.name)
        body = f"{v.observed}; threshold {v.threshold}" + (f"\n{v.detail}" if v.detail else "")
        if v.status is Status.FAIL:
            ET.SubElement(case, "failure", message=v.detail or v.observed, type="fail").text = body
        elif v.status is Status.INCONCLUSIVE:
            el = ET.SubElement(case, "failure", message=v.detail, type="inconclusive")
            el.text = body
        elif v.status is Status.ERROR:
            ET.SubElement(case, "error", message=v.detail, type="error").text = body
        else:
            ET.SubElement(case, "system-out").text = f"PASS: {body}"
    ET.indent(suites)
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"
    )
