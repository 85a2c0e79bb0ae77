"""The report as data: what ``build.py`` assembles and ``markdown.py``, ``html.py`` and
``terminal.py`` render."""

from __future__ import annotations

import json
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
    thumb: int = DEFAULT_THUMB  # display width of the grid images
    command: str = DEFAULT_COMMAND
    notes: list[str] = field(default_factory=list)  # said at the top: e.g. runs of a study that failed

    @property
    def md_path(self) -> Path:
        return self.out / "report.md"

    @property
    def html_path(self) -> Path:
        return self.out / "report.html"

    @property
    def protocols(self) -> list[dict]:
        unique = {json.dumps(s.protocol, sort_keys=True): s.protocol for s in self.sections}
        return list(unique.values())
