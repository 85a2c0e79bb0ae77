"""``gan-colorize report``: evaluation results -> report.md and a self-contained report.html."""

from __future__ import annotations

import argparse
import sys

NAME = "report"
HELP = "write report.md and a self-contained report.html from evaluation results"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "results", nargs="+", metavar="RESULTS",
        help="metrics.json files, run folders (RUN/eval/*/metrics.json) or folders containing runs",
    )  # fmt: skip
    parser.add_argument("--out", required=True, help="report folder (report.md, report.html, curves_*.svg)")
    parser.add_argument("--grid", type=int, default=6, help="eval images in the image grid (first N by name)")
    parser.add_argument("--title", help="report title")
    parser.add_argument("--thumb", type=int, default=128, help="grid thumbnail size, pixels")


def run(args: argparse.Namespace) -> int:
    from gan_colorize.report import ReportError, build_report, print_summary

    try:
        report = build_report(args.results, args.out, grid=args.grid, title=args.title, thumb=args.thumb)
    except ReportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print_summary(report)
    print(f"report: {report.html_path} (and {report.md_path})")
    return 0
