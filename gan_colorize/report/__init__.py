"""Reports: evaluation results (``evaluation/results.py``) -> report.md, a self-contained report.html,
curves and the perception-distortion plot.

One module a job, none importing one that imports it back:

- ``collect``   which results a report shows (RESULTS arguments -> rows, references, runs)
- ``table``     the results table: columns from the metrics' display facts, n/a footnotes, best values
- ``configs``   each run's config and the "differs by" column
- ``tradeoff``  the perception-distortion plot (SVG)
- ``curves``    training curves and validation metrics (SVG, one panel per term)
- ``grid``      image grids (thumbnails) and the report folder's own files
- ``document``  the Report as data; ``markdown``, ``html``, ``terminal`` render it
- ``build``     ``build_report``: assembles all of the above
"""

from gan_colorize.report.build import build_report  # noqa: F401
from gan_colorize.report.collect import ReportError, Results, collect_results  # noqa: F401
from gan_colorize.report.document import Report  # noqa: F401
from gan_colorize.report.terminal import print_summary  # noqa: F401
