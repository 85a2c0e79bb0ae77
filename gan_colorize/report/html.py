"""report.html: the :class:`~gan_colorize.report.document.Report` as one self-contained page.

No external URL anywhere: the CSS is inline, the grid images are ``data:`` URIs and the training
curves inline SVG, so the page opens offline and survives being mailed or archived.

A small inline script writes a JSON self-check into ``<pre id="selfcheck">`` once the page has
loaded (images decoded, results rows counted); ``tests/browser_check.py`` reads it back from
headless Chromium's ``--dump-dom``, which prints the DOM after scripts ran.
"""

from __future__ import annotations

from html import escape

from gan_colorize.report.curves import Curve
from gan_colorize.report.document import Report, blocks
from gan_colorize.report.table import PROVENANCE_HEADERS, Section, count_text, format_protocol, provenance

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto; max-width: 1200px;
       padding: 0 1em; color: #222; }
h1 { margin-bottom: 0.2em; }
.meta { color: #666; margin-top: 0; }
table { border-collapse: collapse; margin: 0.8em 0; }
th, td { padding: 0.3em 0.7em; border-bottom: 1px solid #ddd; }
th { background: #f4f4f4; text-align: center; }
table.results td.num { text-align: right; font-variant-numeric: tabular-nums; }
table.results td.best { background: #e8f5e9; }
table.results tr.reference td { font-style: italic; color: #555; background: #fafafa; }
td.missing { color: #a33; }
td.differs { font-size: 0.8em; color: #555; max-width: 24em; }
ul.footnotes { list-style: none; padding-left: 1em; font-size: 0.9em; color: #a33; margin: 0.2em 0; }
figure.tradeoff figcaption { font-size: 0.85em; color: #444; max-width: 620px; }
table.provenance td { font-family: ui-monospace, monospace; font-size: 0.85em; }
.warning { background: #fff4e5; border-left: 4px solid #f0a030; padding: 0.4em 0.8em; }
ul.notes { font-size: 0.9em; color: #444; }
table.grid td, table.grid th { border: none; padding: 2px; text-align: center; font-size: 0.8em; }
table.grid img { display: block; height: auto; image-rendering: pixelated; }
.gridscroll { overflow-x: auto; }
.curves { display: flex; flex-wrap: wrap; gap: 0.5em 1.5em; }
figure { margin: 0.5em 0; }
"""

# Runs on load: by then every <img> has decoded or failed. Writes what browser_check.py reads.
SELFCHECK_SCRIPT = """
function all(selector, root) {
  return Array.prototype.slice.call((root || document).querySelectorAll(selector));
}
function outside(svg) {  // markers of the plot's points not drawn inside the plot
  var box = svg.getBoundingClientRect();
  return all("g.point circle, g.point rect", svg).filter(function (m) {
    var r = m.getBoundingClientRect();
    var inside = r.left >= box.left && r.right <= box.right && r.top >= box.top && r.bottom <= box.bottom;
    return !(r.width > 0 && inside);
  }).length;
}
function footnotes(table) {  // the n/a cells' footnote numbers, and those listed under the table
  var list = table.nextElementSibling;
  var listed = list && list.matches("ul.footnotes") ? all("li", list) : [];
  return {
    dataset: table.getAttribute("data-dataset"),
    used: all("td.missing", table).map(function (td) { return td.getAttribute("data-footnote"); }),
    notes: listed.map(function (li) { return li.getAttribute("data-footnote"); })
  };
}
window.addEventListener("load", function () {
  var images = Array.prototype.slice.call(document.images);
  var failed = images.filter(function (im) { return !(im.complete && im.naturalWidth > 0); });
  document.getElementById("selfcheck").textContent = JSON.stringify({
    loaded: true,
    images: images.length,
    decoded: images.length - failed.length,
    failed: failed.map(function (im) { return im.alt; }),
    approach_rows: document.querySelectorAll("table.results tbody tr.approach").length,
    reference_rows: document.querySelectorAll("table.results tbody tr.reference").length,
    svgs: document.querySelectorAll("svg").length,
    tradeoff_plots: all("svg.tradeoff").length,
    tradeoff_points: all("svg.tradeoff g.point").length,
    tradeoff_outside: all("svg.tradeoff").map(outside).reduce(function (a, b) { return a + b; }, 0),
    footnotes: all("table.results").map(footnotes)
  });
});
"""


def render_html(report: Report) -> str:
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        '<head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{escape(report.title)}</title>",
        f"<style>{CSS}</style>",
        "</head>",
        "<body>",
        f"<h1>{escape(report.title)}</h1>",
        f'<p class="meta">Generated {escape(report.created)} by <code>{escape(report.command)}</code>.</p>',
        *(f'<p class="warning">Warning: {escape(note)}</p>' for note in report.notes),
    ]
    for kind, what in blocks(report):
        parts += RENDER[kind](what)
    parts += [
        '<pre id="selfcheck" hidden>{"loaded": false}</pre>',
        f"<script>{SELFCHECK_SCRIPT}</script>",
        "</body>",
        "</html>",
    ]
    return "\n".join(parts) + "\n"


def _protocol(sections: list[Section]) -> list[str]:
    items = [
        f"<li><strong>{escape(s.dataset)}</strong> ({escape(count_text(s.n_images))}): "
        f"{escape(format_protocol(s.protocol))}</li>"
        for s in sections
    ]
    return ["<h2>Protocol</h2>", "<ul>", *items, "</ul>"]


def _curves(curves: list[Curve]) -> list[str]:
    figures = [f"<figure>{curve.svg}</figure>" for curve in curves]  # the SVG carries its title
    return ['<h2>Training curves and validation</h2>\n<div class="curves">', *figures, "</div>"]


def _results(section: Section) -> list[str]:
    parts = [f"<h2>Results: {escape(section.dataset)} ({escape(count_text(section.n_images))})</h2>"]
    parts += [f'<p class="warning">Warning: {escape(w)}</p>' for w in section.warnings]
    parts.append(f'<table class="results" data-dataset="{escape(section.dataset)}">')
    headers = "".join(f"<th>{escape(c.header)}</th>" for c in section.columns)
    parts.append(f"<thead><tr><th>approach</th>{headers}<th>differs by</th></tr></thead>")
    parts.append("<tbody>")
    for trow in section.rows:
        kind = "reference" if trow.row.reference else "approach"
        cells = []
        for cell in trow.cells:
            classes = "num" + (" best" if cell.best else "") + (" missing" if cell.missing else "")
            text = f"<strong>{escape(cell.text)}</strong>" if cell.best else escape(cell.text)
            # the footnote's number, for the page's self-check (the cell shows it as a superscript)
            number = f' data-footnote="{cell.footnote}"' if cell.missing else ""
            cells.append(f'<td class="{classes}"{number}>{text}</td>')
        cells.append(f'<td class="differs">{escape(trow.differs)}</td>')
        parts.append(f'<tr class="{kind}"><td>{escape(trow.label)}</td>{"".join(cells)}</tr>')
    parts.append("</tbody></table>")
    if section.footnotes:
        items = "".join(
            f'<li data-footnote="{k}">{escape(line)}</li>' for k, line in enumerate(section.footnote_lines, 1)
        )
        parts.append(f'<ul class="footnotes">{items}</ul>')
    parts.append('<ul class="notes">' + "".join(f"<li>{escape(n)}</li>" for n in section.notes) + "</ul>")
    parts.append("<details><summary>Where each row came from</summary>")
    parts.append('<table class="provenance"><thead><tr><th>approach</th>')
    parts.append("".join(f"<th>{escape(h)}</th>" for h in PROVENANCE_HEADERS) + "</tr></thead><tbody>")
    for trow in section.rows:
        if not trow.row.reference:
            cells = "".join(f"<td>{escape(v)}</td>" for v in provenance(trow.row))
            parts.append(f"<tr><td>{escape(trow.label)}</td>{cells}</tr>")
    parts.append("</tbody></table></details>")
    return parts


def _tradeoff(section: Section) -> list[str]:
    return [
        f"<h3>Perception and distortion: {escape(section.dataset)}</h3>",
        f'<figure class="tradeoff">{section.tradeoff.svg}<figcaption>{escape(section.tradeoff.caption)}'
        "</figcaption></figure>",
    ]


def _grid(section: Section) -> list[str]:
    grid = section.grid
    parts = [f"<h3>Images: {escape(section.dataset)} (first {len(grid.names)} by name)</h3>"]
    # many approaches make the grid wider than the page: it scrolls, the page does not
    parts.append('<div class="gridscroll"><table class="grid"><thead><tr><th>image</th>')
    parts.append("".join(f"<th>{escape(h)}</th>" for h in grid.headers) + "</tr></thead><tbody>")
    for name, line in zip(grid.names, grid.cells):
        cells = []
        for t in line:
            if t is None:
                cells.append('<td class="missing">missing</td>')
            else:
                alt = escape(t.alt)
                img = f'<img src="{t.data_uri}" alt="{alt}" title="{alt}" width="{grid.thumb}">'
                cells.append(f"<td>{img}</td>")
        parts.append(f"<tr><th>{escape(name)}</th>{''.join(cells)}</tr>")
    parts.append("</tbody></table></div>")
    return parts


RENDER = {
    "protocol": _protocol,
    "results": _results,
    "tradeoff": _tradeoff,
    "grid": _grid,
    "curves": _curves,
}
