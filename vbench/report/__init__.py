"""The report: a run directory in, `report.html` (self-contained) and `report.pdf` out.

    build_report(Path("reports/<run-id>"))  ->  ReportFiles(html=..., pdf=...)

`analysis` turns samples into summaries, `plots` draws inline SVG charts, `render` fills the Jinja2
template and prints it to PDF with WeasyPrint (the same context and template; the PDF's result
tables are condensed, and say where the rest is).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from vbench.report.analysis import (
    cross_check_flags,
    flags_document,
    mode_order,
    summarize_samples,
)
from vbench.report.certification import Certification, certify_run
from vbench.report.render import build_context, render_html, render_pdf
from vbench.results import RunDir, atomic_write, utc_now

REPORT_HTML = "report.html"
REPORT_PDF = "report.pdf"
FLAGS = "flags.json"  # the stability flags of every figure that has one

__all__ = ["FLAGS", "REPORT_HTML", "REPORT_PDF", "Certification", "ReportFiles", "build_report"]


@dataclass(frozen=True)
class ReportFiles:
    html: Path
    pdf: Path | None
    certification: Certification | None = None  # None: the scenario has no [[certify]]


def build_report(run_path: Path, *, pdf: bool = True) -> ReportFiles:
    """Read the run directory at `run_path` and write its report beside the data.

    Raises `vbench.errors.RunDirError` (one line: file and line) when `run_path` is not a readable
    run directory or is damaged.
    """
    run = RunDir.open(run_path).load()
    manifest, samples = run.manifest, run.samples
    modes = mode_order(manifest, samples)
    summary = summarize_samples(samples, modes, case_flags=cross_check_flags(manifest))
    certification = certify_run(manifest, samples)
    atomic_write(run_path / FLAGS, json.dumps(flags_document(summary), indent=2) + "\n")
    context = build_context(manifest, samples, summary, modes, run_path, utc_now())
    context["certification"] = certification
    html = render_html(context)
    html_path = run_path / REPORT_HTML
    atomic_write(html_path, html)
    pdf_path: Path | None = None
    if pdf:
        pdf_path = run_path / REPORT_PDF
        atomic_write(pdf_path, render_pdf(render_html(context, for_pdf=True)))
    return ReportFiles(html=html_path, pdf=pdf_path, certification=certification)
