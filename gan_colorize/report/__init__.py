"""Reports: evaluation results (metrics.json) -> report.md, a self-contained report.html, curves."""

from gan_colorize.report.report import (  # noqa: F401
    Report,
    ReportError,
    Results,
    build_report,
    collect_results,
    print_summary,
)
