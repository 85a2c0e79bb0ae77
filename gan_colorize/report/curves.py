"""Training curves as inline SVG: a run's ``metrics.jsonl`` against the step, one panel per term.

Each loss term (``loss/*``) gets its own panel and y axis (100 x L1 beside an adversarial term near
0.7 on one axis would flatten the latter), and so does each validation metric (``val/*``, written
every ``train.val_every`` steps) beside them: the numbers a metric displays (``Metric.display``:
``val/psnr``, ``val/delta_cf``, ...), not what validation cost (``val/seconds``) or counted
(``val/images``, ``val/fid_n``) nor the ground truth's own values (``val/cf_gt``).
Drawn by hand (polylines, axes, a legend) because matplotlib is not a dependency; the same SVG
text is inlined in report.html and written beside report.md as ``curves_<run>.svg``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from html import escape
from pathlib import Path

from gan_colorize.report.grid import safe
from gan_colorize.report.table import registered_columns
from gan_colorize.rundir import RunDir, atomic_write_text

MAX_POINTS = 500  # per series: enough for a 480 px wide plot, small enough for an inline page
LOSS_PREFIX = "loss/"
VAL_PREFIX = "val/"
CURVES_PREFIX, CURVES_SUFFIX = "curves_", ".svg"  # the files beside report.md
PANEL_WIDTH, PANEL_HEIGHT, PANELS_PER_ROW = 300, 190, 3
# Tableau 10: distinguishable colours, also for the common colour-vision deficiencies
PALETTE = (
    "#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f",
    "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac",
)  # fmt: skip
# log scale when the positive values of a plot span more than this ratio (an L1 term at 100x
# next to an adversarial term near 0.7 would otherwise flatten the latter)
LOG_SCALE_RATIO = 100.0
# series this short get a dot on every point: a polyline of one point renders nothing, and on a
# few points the dots show where the measurements are (a longer series is a line: 500 dots would hide it)
MARKER_MAX_POINTS = 20
MARKER_RADIUS = 2.5


@dataclass
class Series:
    name: str
    steps: list[float]
    values: list[float]


def read_series(run: RunDir, prefix: str) -> list[Series]:
    """One series per ``<prefix>...`` key of the run's metrics.jsonl (non-finite values left out),
    named without the prefix."""
    by_name: dict[str, Series] = {}
    for row in run.read_metrics():
        step = row.get("step")
        if not isinstance(step, int | float):
            continue
        for key, value in row.items():
            if not key.startswith(prefix) or not isinstance(value, int | float):
                continue
            if not math.isfinite(value):
                continue
            series = by_name.setdefault(key, Series(key[len(prefix) :], [], []))
            series.steps.append(float(step))
            series.values.append(float(value))
    return [by_name[k] for k in sorted(by_name)]


def read_loss_series(run: RunDir) -> list[Series]:
    return read_series(run, LOSS_PREFIX)


def downsample(series: Series, max_points: int = MAX_POINTS) -> Series:
    """Evenly spaced points (first and last kept) when the series is longer than ``max_points``."""
    n = len(series.steps)
    if n <= max_points:
        return series
    picks = sorted({round(i * (n - 1) / (max_points - 1)) for i in range(max_points)})
    return Series(series.name, [series.steps[i] for i in picks], [series.values[i] for i in picks])


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round tick values (1, 2, 2.5 or 5 times a power of ten) within [lo, hi]."""
    if hi <= lo:
        return [lo]
    raw = (hi - lo) / max(1, count - 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    # integer multiples of the step, rounded so that 0.1 * 3 prints as 0.3
    decimals = max(0, 2 - math.floor(math.log10(step)))
    k_lo, k_hi = math.ceil(lo / step - 1e-9), math.floor(hi / step + 1e-9)
    return [round(k * step, decimals) + 0.0 for k in range(k_lo, k_hi + 1)]


def format_tick(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 1e4 or abs(value) < 1e-3:
        return f"{value:.0e}"
    return f"{value:g}"


def svg_start(title: str, width: int, height: int, left: int, attributes: str = "") -> list[str]:
    """An SVG's opening tag (``attributes`` added to it), its title as tooltip and as text, a white ground."""
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" {attributes}width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">',
        f"<title>{escape(title)}</title>",
        '<rect width="100%" height="100%" fill="white"/>',
        f'<text x="{left}" y="16" font-size="13" font-weight="bold">{escape(title)}</text>',
    ]


def axes(x_axis: Axis, y_axis: Axis) -> list[str]:
    """Tick marks and labels on x, grid lines and labels on y, the two axis lines."""
    x0, x1, y0, y1 = x_axis.pixel_lo, x_axis.pixel_hi, y_axis.pixel_lo, y_axis.pixel_hi
    parts = []
    for tick in x_axis.ticks():
        x = x_axis(tick)
        if x0 - 0.5 <= x <= x1 + 0.5:
            parts.append(f'<line x1="{x:.1f}" y1="{y0}" x2="{x:.1f}" y2="{y0 + 4}" stroke="#333"/>')
            parts.append(f'<text x="{x:.1f}" y="{y0 + 16}" text-anchor="middle">{format_tick(tick)}</text>')
    for tick in y_axis.ticks():
        y = y_axis(tick)
        if y1 - 0.5 <= y <= y0 + 0.5:
            parts.append(f'<line x1="{x0}" y1="{y:.1f}" x2="{x1}" y2="{y:.1f}" stroke="#e4e4e4"/>')
            parts.append(f'<text x="{x0 - 6}" y="{y + 4:.1f}" text-anchor="end">{format_tick(tick)}</text>')
    parts.append(f'<polyline points="{x0},{y1} {x0},{y0} {x1},{y0}" fill="none" stroke="#333"/>')
    return parts


class Axis:
    """Maps data values to pixels, linear or log10."""

    def __init__(self, lo: float, hi: float, pixel_lo: float, pixel_hi: float, log: bool):
        self.log = log
        f = math.log10 if log else float
        self.lo, self.hi = f(lo), f(hi)
        if self.hi == self.lo:  # a constant series: give it a band to sit in
            pad = abs(self.lo) * 0.1 or 1.0
            self.lo, self.hi = self.lo - pad, self.hi + pad
        self.pixel_lo, self.pixel_hi = pixel_lo, pixel_hi

    def __call__(self, value: float) -> float:
        v = math.log10(value) if self.log else value
        return self.pixel_lo + (v - self.lo) / (self.hi - self.lo) * (self.pixel_hi - self.pixel_lo)

    def ticks(self) -> list[float]:
        if self.log:
            return [10.0**e for e in range(math.ceil(self.lo), math.floor(self.hi) + 1)]
        return nice_ticks(self.lo, self.hi)


def curves_svg(
    title: str, series: list[Series], width: int = 560, height: int = 260, y_name: str = "loss", at: str = ""
) -> str:
    """A standalone SVG document: one polyline per series, axes with ticks, a legend on the right
    (none for a single series: the title names it). ``at``: ``x=".." y=".."`` when nested in a figure."""
    series = [downsample(s) for s in series if s.steps]
    if not series:
        raise ValueError(f"{title}: no loss values to plot")
    legend = len(series) > 1
    left, right, top, bottom = 56, 150 if legend else 16, 28, 40  # margins: y labels, legend, title, x labels
    all_steps = [x for s in series for x in s.steps]
    all_values = [v for s in series for v in s.values]
    positive = all(v > 0 for v in all_values)
    log = positive and max(all_values) / min(all_values) > LOG_SCALE_RATIO
    x_axis = Axis(min(all_steps), max(all_steps), left, width - right, log=False)
    y_axis = Axis(min(all_values), max(all_values), height - bottom, top, log=log)

    parts = svg_start(title, width, height, left, at)
    x0, x1, y0, y1 = left, width - right, height - bottom, top
    parts += axes(x_axis, y_axis)
    parts.append(f'<text x="{(x0 + x1) / 2:.1f}" y="{height - 6}" text-anchor="middle">step</text>')
    y_label = f"{y_name} (log scale)" if log else y_name
    parts.append(
        f'<text x="14" y="{(y0 + y1) / 2:.1f}" text-anchor="middle" '
        f'transform="rotate(-90 14 {(y0 + y1) / 2:.1f})">{y_label}</text>'
    )
    for i, s in enumerate(series):
        colour = PALETTE[i % len(PALETTE)]
        xy = [(x_axis(x), y_axis(v)) for x, v in zip(s.steps, s.values)]
        points = " ".join(f"{x:.1f},{y:.1f}" for x, y in xy)
        parts.append(f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="1.5"/>')
        if len(xy) <= MARKER_MAX_POINTS:
            for x, y in xy:
                parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{MARKER_RADIUS}" fill="{colour}"/>')
        if not legend:
            continue
        legend_y = top + 6 + 16 * i
        parts.append(
            f'<line x1="{x1 + 12}" y1="{legend_y}" x2="{x1 + 30}" y2="{legend_y}" '
            f'stroke="{colour}" stroke-width="2"/>'
        )
        parts.append(f'<text x="{x1 + 35}" y="{legend_y + 4}">{escape(s.name)}</text>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def panels_svg(title: str, panels: list[tuple[str, str, Series]]) -> str:
    """One SVG of small plots, ``(panel title, y axis name, series)`` each with its own y axis, in rows
    of :data:`PANELS_PER_ROW` under the figure's title."""
    if not panels:
        raise ValueError(f"{title}: no values to plot")
    title_height = 24
    rows = math.ceil(len(panels) / PANELS_PER_ROW)
    width = PANEL_WIDTH * min(len(panels), PANELS_PER_ROW)
    height = title_height + PANEL_HEIGHT * rows
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">',
        f"<title>{escape(title)}</title>",
        '<rect width="100%" height="100%" fill="white"/>',
        f'<text x="8" y="17" font-size="14" font-weight="bold">{escape(title)}</text>',
    ]
    for i, (panel_title, y_name, series) in enumerate(panels):
        x, y = PANEL_WIDTH * (i % PANELS_PER_ROW), title_height + PANEL_HEIGHT * (i // PANELS_PER_ROW)
        nested = curves_svg(panel_title, [series], PANEL_WIDTH, PANEL_HEIGHT, y_name, at=f'x="{x}" y="{y}" ')
        parts.append(nested.strip())
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def run_panels(run: RunDir) -> list[tuple[str, str, Series]]:
    """A panel per loss term, then one per validation number a metric displays (as the table heads it)."""
    columns = {c.key: c for c in registered_columns()}
    losses = [(f"loss: {s.name}", "loss", s) for s in read_series(run, LOSS_PREFIX)]
    metrics = [s for s in read_series(run, VAL_PREFIX) if s.name in columns]
    return losses + [(f"validation: {columns[s.name].header}", columns[s.name].label, s) for s in metrics]


@dataclass
class Curve:
    run: str
    file: str  # relative to the report folder
    svg: str


def build_curves(runs: list[RunDir], out: Path) -> list[Curve]:
    """``out/curves_<run>.svg`` for each run that logged losses or validation metrics."""
    found = []
    used: set[str] = set()
    for run in runs:
        panels = run_panels(run)
        if not panels:
            continue
        name = safe(run.name)
        stem, k = name, 2
        while name in used:
            name, k = f"{stem}_{k}", k + 1
        used.add(name)
        svg = panels_svg(f"{run.name}: training losses and validation", panels)
        file = f"{CURVES_PREFIX}{name}{CURVES_SUFFIX}"
        atomic_write_text(out / file, svg)
        found.append(Curve(run.name, file, svg))
    return found


def earlier_curves(out: Path) -> list[Path]:
    """The files in ``out`` named as this module names its curves."""
    return list(out.glob(f"{CURVES_PREFIX}*{CURVES_SUFFIX}"))
