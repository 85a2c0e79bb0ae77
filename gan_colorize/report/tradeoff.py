"""The perception-distortion plot: one point per row, distortion on x, realism on y.

Blau & Michaeli (CVPR 2018, "The Perception-Distortion Tradeoff") show that no method can be best
at both: colorizers are compared by where they sit in this plane, not on one column. The axes are
chosen from what the table has, by the metrics' own display facts (``Display.axis`` and
``axis_rank``): x the first distortion metric with values (PSNR, then LPIPS, then SSIM), y the first
perception metric with values and no cell marked † (FID, then an offline Frechet distance, then
ΔCF). The caption says which.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from html import escape

from gan_colorize.evaluation.results import GROUND_TRUTH
from gan_colorize.report.curves import PALETTE, Axis, axes, svg_start
from gan_colorize.report.table import Column, Section, format_number, registered_columns, value_of

WIDTH, HEIGHT = 620, 400
LEFT, RIGHT, TOP, BOTTOM = 64, 170, 30, 52  # margins: y ticks and name, point labels, title, x ticks and name
REFERENCE_COLOUR = "#777777"
PAD = 0.08  # of each axis' range, around the points


@dataclass
class Point:
    label: str
    x: float
    y: float
    reference: bool


@dataclass
class Tradeoff:
    x: Column
    y: Column
    points: list[Point]
    left_out: list[str]  # rows without both values (or with an infinite one): named in the caption
    svg: str
    caption: str


def _usable(section: Section, j: int, column: Column) -> bool:
    """Some approach has a finite value, and (for realism) no approach's cell is marked †: a
    Frechet distance on the features a model trained with would place it falsely well."""
    rows = [(t, t.cells[j]) for t in section.rows if not t.row.reference]
    values = [value_of(t.row, column) for t, _ in rows]
    if not any(v is not None and math.isfinite(v) for v in values):
        return False
    return column.axis != "perception" or not any(cell.self_scored for _, cell in rows)


def choose_axis(section: Section, axis: str) -> Column | None:
    candidates = [
        (c.axis_rank, j, c)
        for j, c in enumerate(section.columns)
        if c.axis == axis and _usable(section, j, c)
    ]
    return min(candidates, key=lambda t: t[:2])[2] if candidates else None


def preference(axis: str) -> str:
    """'FID, then EffNet-L2-FD, then ...': the order the axis is chosen in."""
    columns = sorted((c for c in registered_columns() if c.axis == axis), key=lambda c: (c.axis_rank, c.key))
    return ", then ".join(c.label for c in columns)


def axis_name(column: Column, horizontal: bool) -> str:
    """The axis title with the direction of better as an arrow."""
    if column.better == "zero":
        return f"{column.label} (closer to 0 is better)"
    up = column.better == "higher"
    arrow = ("→" if up else "←") if horizontal else ("↑" if up else "↓")
    return f"{column.label} ({arrow} better)"


def build_tradeoff(section: Section) -> Tradeoff | None:
    x, y = choose_axis(section, "distortion"), choose_axis(section, "perception")
    if x is None or y is None:
        return None
    points, left_out = [], []
    for trow in section.rows:
        vx, vy = value_of(trow.row, x), value_of(trow.row, y)
        drawable = vx is not None and vy is not None and math.isfinite(vx) and math.isfinite(vy)
        # the ground truth is the ideal corner by construction (its PSNR is capped at 100 dB or
        # infinite): drawn, it would squeeze every approach into a corner of the plot
        if not drawable or trow.row.approach == GROUND_TRUTH and trow.row.reference:
            shown = ", ".join(f"{c.label} {_number(v, c)}" for c, v in ((x, vx), (y, vy)))
            left_out.append(f"{trow.label} ({shown})")
            continue
        points.append(Point(trow.label, vx, vy, trow.row.reference))
    if not any(not p.reference for p in points):
        return None
    caption = (
        f"Perception-distortion view (Blau & Michaeli 2018) of {section.dataset}: {y.label} against "
        f"{x.label}, one point per row, reference rows hollow and grey. x is the first distortion "
        f"metric the table has ({preference('distortion')}); y the first realism metric with values and "
        f"no cell marked † ({preference('perception')})."
    )
    if left_out:
        caption += " Not drawn: " + "; ".join(left_out) + " (the ground truth is the ideal corner)."
    return Tradeoff(x, y, points, left_out, tradeoff_svg(section.dataset, x, y, points), caption)


def _number(value: float | None, column: Column) -> str:
    return "n/a" if value is None else format_number(value, column.digits)


CHAR_WIDTH, LINE_HEIGHT = 6.2, 12.0  # of the 11 px sans-serif labels, roughly


def label_positions(points: list[tuple[float, float, str]]) -> list[float]:
    """The y of each point's label (right of the point): moved down, a line at a time, while it would
    overlap a label placed before it (two colorizers often score alike)."""
    placed: list[tuple[float, float, float]] = []  # x from, x to, y of the labels placed
    result = [0.0] * len(points)
    for i in sorted(range(len(points)), key=lambda i: points[i][1]):
        x, y, text = points[i]
        x0, x1 = x + 8, x + 8 + CHAR_WIDTH * len(text)
        while any(a < x1 and x0 < b and abs(y - ly) < LINE_HEIGHT for a, b, ly in placed):
            y += LINE_HEIGHT
        placed.append((x0, x1, y))
        result[i] = y
    return result


def _range(values: list[float]) -> tuple[float, float]:
    lo, hi = min(values), max(values)
    pad = (hi - lo) * PAD or abs(lo) * PAD or 1.0
    return lo - pad, hi + pad


def tradeoff_svg(dataset: str, x: Column, y: Column, points: list[Point]) -> str:
    x_axis = Axis(*_range([p.x for p in points]), LEFT, WIDTH - RIGHT, log=False)
    y_axis = Axis(*_range([p.y for p in points]), HEIGHT - BOTTOM, TOP, log=False)
    x0, x1, y0, y1 = LEFT, WIDTH - RIGHT, HEIGHT - BOTTOM, TOP
    title = f"{dataset}: {y.label} against {x.label}"
    attributes = f'class="tradeoff" data-x="{escape(x.key)}" data-y="{escape(y.key)}" '
    parts = svg_start(title, WIDTH, HEIGHT, LEFT, attributes) + axes(x_axis, y_axis)
    middle_y = (y0 + y1) / 2
    parts.append(
        f'<text x="{(x0 + x1) / 2:.1f}" y="{HEIGHT - 12}" text-anchor="middle" font-weight="bold">'
        f"{escape(axis_name(x, horizontal=True))}</text>"
    )
    parts.append(
        f'<text x="16" y="{middle_y:.1f}" text-anchor="middle" font-weight="bold" '
        f'transform="rotate(-90 16 {middle_y:.1f})">{escape(axis_name(y, horizontal=False))}</text>'
    )
    approach = 0
    label_y = label_positions([(x_axis(p.x), y_axis(p.y), p.label) for p in points])
    for p, ly in zip(points, label_y):
        px, py = x_axis(p.x), y_axis(p.y)
        if p.reference:
            colour = REFERENCE_COLOUR
            marker = (
                f'<rect x="{px - 4:.1f}" y="{py - 4:.1f}" width="8" height="8" fill="white" '
                f'stroke="{colour}" stroke-width="1.5" transform="rotate(45 {px:.1f} {py:.1f})"/>'
            )
        else:
            colour = PALETTE[approach % len(PALETTE)]
            approach += 1
            marker = f'<circle cx="{px:.1f}" cy="{py:.1f}" r="5" fill="{colour}"/>'
        style = ' font-style="italic"' if p.reference else ""
        tooltip = (
            f"{p.label}: {x.label} {format_number(p.x, x.digits)}, {y.label} {format_number(p.y, y.digits)}"
        )
        parts.append(
            f'<g class="point" data-label="{escape(p.label)}" data-x="{p.x!r}" data-y="{p.y!r}" '
            f'data-reference="{str(p.reference).lower()}"><title>{escape(tooltip)}</title>{marker}'
            f'<text x="{px + 8:.1f}" y="{ly + 4:.1f}" fill="{colour}"{style}>{escape(p.label)}</text></g>'
        )
    parts.append("</svg>")
    return "\n".join(parts) + "\n"
