"""report.md: the :class:`~gan_colorize.report.document.Report` as markdown (images and plots linked
as the files beside it)."""

from __future__ import annotations

import re

from gan_colorize.report.curves import Curve
from gan_colorize.report.document import Report, blocks
from gan_colorize.report.table import (
    PROVENANCE_HEADERS,
    Cell,
    Section,
    count_text,
    format_protocol,
    provenance,
)

# backslash escapes for markdown's own syntax; &, <, > as entities (a renderer takes '<b>' as HTML and
# '&lt;' as the character) since some renderers show a backslash before them
_MD_ENTITIES = (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"))
_MD_SPECIAL = re.compile(r"([\\|*_`\[\]])")


def md_escape(text: str) -> str:
    """Table cells and notes: '|' would end the cell; '*', '_', '`', '[' ']' start emphasis, code or
    links; '<' '>' '&' HTML (a label 'a<b>' would make the rest bold)."""
    text = _MD_SPECIAL.sub(r"\\\1", text)
    for char, entity in _MD_ENTITIES:
        text = text.replace(char, entity)
    return text


def _md_cell(cell: Cell) -> str:
    text = md_escape(cell.text)
    return f"**{text}**" if cell.best else text


def render_markdown(report: Report) -> str:
    lines = [f"# {report.title}", "", f"Generated {report.created} by `{report.command}`.", ""]
    lines += [line for note in report.notes for line in (f"> **Warning:** {md_escape(note)}", "")]
    for kind, what in blocks(report):
        lines += RENDER[kind](what)
    return "\n".join(lines)


def _protocol(sections: list[Section]) -> list[str]:
    items = [
        f"- **{md_escape(s.dataset)}** ({count_text(s.n_images)}): {md_escape(format_protocol(s.protocol))}"
        for s in sections
    ]
    return ["## Protocol", "", *items, ""]


def _curves(curves: list[Curve]) -> list[str]:
    lines = ["## Training curves and validation", ""]
    for curve in curves:
        run = md_escape(curve.run)
        lines += [f"### {run}", "", f"![{run} training losses and validation]({curve.file})", ""]
    return lines


def _results(section: Section) -> list[str]:
    lines = [f"## Results: {md_escape(section.dataset)} ({count_text(section.n_images)})", ""]
    for warning in section.warnings:
        lines += [f"> **Warning:** {md_escape(warning)}", ""]
    headers = ["approach"] + [md_escape(c.header) for c in section.columns] + ["differs by"]
    lines.append("| " + " | ".join(headers) + " |")
    lines.append("|" + "---|" + "".join("---:|" for _ in section.columns) + "---|")
    for trow in section.rows:
        label = f"*{md_escape(trow.label)}*" if trow.row.reference else md_escape(trow.label)
        cells = [label] + [_md_cell(c) for c in trow.cells] + [md_escape(trow.differs)]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    for line in section.footnote_lines:
        lines.append(f"{md_escape(line)}  ")  # two spaces: a line break, one footnote a line
    if section.footnotes:
        lines.append("")
    for note in section.notes:
        lines.append(f"- {md_escape(note)}")
    lines.append("")
    lines += ["Where each row came from:", ""]
    lines.append("| approach | " + " | ".join(PROVENANCE_HEADERS) + " |")
    lines.append("|---|" + "---|" * len(PROVENANCE_HEADERS))
    for trow in section.rows:
        if not trow.row.reference:
            cells = [md_escape(v) for v in provenance(trow.row)]
            lines.append(f"| {md_escape(trow.label)} | " + " | ".join(cells) + " |")
    lines.append("")
    return lines


def _tradeoff(section: Section) -> list[str]:
    alt = md_escape(f"{section.tradeoff.y.label} against {section.tradeoff.x.label}")
    return [
        f"### Perception and distortion: {md_escape(section.dataset)}",
        "",
        f"![{alt}]({section.tradeoff_file})",
        "",
        md_escape(section.tradeoff.caption),
        "",
    ]


def _markdown_grid(section: Section) -> list[str]:
    grid = section.grid
    lines = [f"### Images: {md_escape(section.dataset)} (first {len(grid.names)} by name)", ""]
    lines.append("| image | " + " | ".join(md_escape(h) for h in grid.headers) + " |")
    lines.append("|---|" + "---|" * len(grid.headers))
    for name, line in zip(grid.names, grid.cells):
        cells = [f"![{md_escape(t.alt)}]({t.file})" if t else "missing" for t in line]
        lines.append(f"| {md_escape(name)} | " + " | ".join(cells) + " |")
    lines.append("")
    return lines


RENDER = {
    "protocol": _protocol,
    "results": _results,
    "tradeoff": _tradeoff,
    "grid": _markdown_grid,
    "curves": _curves,
}
