"""``build_report``: evaluation results -> report.md, a self-contained report.html and the SVG files
beside them; the one module that assembles the others (none of them imports it)."""

from __future__ import annotations

import datetime as _dt
from pathlib import Path

from gan_colorize.report.collect import Results, collect_results
from gan_colorize.report.curves import build_curves, earlier_curves
from gan_colorize.report.document import (
    DEFAULT_COMMAND,
    DEFAULT_GRID,
    DEFAULT_THUMB,
    TRADEOFF_PREFIX,
    TRADEOFF_SUFFIX,
    Report,
)
from gan_colorize.report.grid import (
    build_grid,
    earlier_thumbnails,
    no_link_below,
    remove_empty_thumbnail_dirs,
    safe,
)
from gan_colorize.report.html import render_html
from gan_colorize.report.markdown import render_markdown
from gan_colorize.report.table import Section, build_section
from gan_colorize.report.tradeoff import build_tradeoff
from gan_colorize.rundir import atomic_write_text


def build_sections(results: Results, out: Path, grid: int, thumb: int) -> list[Section]:
    """A section per dataset: its table, perception-distortion plot (written beside report.md) and grid."""
    sections = []
    for dataset in results.datasets:
        rows = [r for r in results.rows if r.dataset == dataset]
        section = build_section(dataset, rows, results.references.get(dataset, []))
        section.tradeoff = build_tradeoff(section)
        if section.tradeoff is not None:
            section.tradeoff_file = f"{TRADEOFF_PREFIX}{safe(dataset)}{TRADEOFF_SUFFIX}"
            atomic_write_text(out / section.tradeoff_file, section.tradeoff.svg)
        section.grid = build_grid([t.row for t in section.rows], dataset, out, grid, thumb)
        sections.append(section)
    return sections


def build_report(
    results: Results | list[str | Path],
    out: str | Path,
    grid: int = DEFAULT_GRID,
    title: str | None = None,
    thumb: int = DEFAULT_THUMB,
    command: str = DEFAULT_COMMAND,
    notes: list[str] | None = None,
) -> Report:
    """Write ``out/report.md``, ``out/report.html`` (self-contained), ``out/curves_<run>.svg`` and
    ``out/tradeoff_<dataset>.svg``; ``command`` is what the report says wrote it ("gan-colorize
    experiment STUDY" for a study); ``notes``, warnings shown above everything (a study's runs that
    failed and have no row)."""
    if not isinstance(results, Results):
        results = collect_results(results)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    report = Report(
        title=title or "gan-colorize report",
        created=_dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        sections=build_sections(results, out, grid, thumb),
        curves=build_curves(results.runs, out),
        out=out,
        command=command,
        notes=list(notes or []),
    )
    atomic_write_text(report.md_path, render_markdown(report))
    atomic_write_text(report.html_path, render_html(report))
    remove_stale_outputs(report)  # after the new pages: the old ones link their files until replaced
    return report


def remove_stale_outputs(report: Report) -> None:
    """Delete thumbnails and plots that an earlier report wrote into this folder and this one did not
    (a run or a dataset no longer in it, a smaller grid), then the thumbnail folders left empty."""
    out = report.out
    written = {out / curve.file for curve in report.curves}
    for section in report.sections:
        if section.tradeoff_file:
            written.add(out / section.tradeoff_file)
        if section.grid is not None:
            written |= {out / t.file for line in section.grid.cells for t in line if t is not None}
    plots = earlier_curves(out) + list(out.glob(f"{TRADEOFF_PREFIX}*{TRADEOFF_SUFFIX}"))
    for path in earlier_thumbnails(out) + [p for p in plots if no_link_below(p, out)]:
        if path not in written and path.is_file():
            path.unlink()
    remove_empty_thumbnail_dirs(out)
