"""The report as data: what ``build.py`` assembles and ``markdown.py``, ``html.py`` and
``terminal.py`` render."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from gan_colorize.report.curves import Curve
from gan_colorize.report.table import Section

DEFAULT_GRID = 6
DEFAULT_THUMB = 128  # longest side of a grid thumbnail, pixels
DEFAULT_COMMAND = "gan-colorize report"  # what report.md and report.html say wrote them
TRADEOFF_PREFIX, TRADEOFF_SUFFIX = "tradeoff_", ".svg"  # the plots beside report.md


@dataclass
class Report:
    title: str
    created: str
    sections: list[Section]
    curves: list[Curve]
    out: Path
    command: str = DEFAULT_COMMAND
    notes: list[str] = field(default_factory=list)  # said at the top: e.g. runs of a study that failed

    md_path: Path = field(init=False)  # out/report.md
    html_path: Path = field(init=False)  # out/report.html

    def __post_init__(self) -> None:
        self.md_path, self.html_path = self.out / "report.md", self.out / "report.html"


def blocks(report: Report) -> list[tuple[str, object]]:
    """The report's parts in reading order, ``(kind, what)``: each renderer maps a kind to its own
    function, so markdown and HTML say the same things in the same order."""
    parts: list[tuple[str, object]] = [("protocol", report.sections)]
    for section in report.sections:
        parts.append(("results", section))
        if section.tradeoff is not None:
            parts.append(("tradeoff", section))
        if section.grid is not None:
            parts.append(("grid", section))
    if report.curves:
        parts.append(("curves", report.curves))
    return parts
