"""``gan-colorize data inspect PATH``."""

from __future__ import annotations

import argparse
import json
import sys

NAME = "data"
HELP = "look at a dataset: image counts, sizes, greyscale and unreadable files"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    inspect = sub.add_parser("inspect", help="summarise an image folder or builtin:skimage")
    inspect.add_argument("path", help="an image folder (searched recursively) or builtin:skimage")
    inspect.add_argument(
        "--min-chroma", type=float, default=4.0, help="99th-percentile chroma below which an image is greyscale"
    )
    inspect.add_argument("--json", action="store_true", help="print a machine-readable summary")


def run(args: argparse.Namespace) -> int:
    from gan_colorize.data.inspect import render, summarize

    try:
        summary = summarize(args.path, args.min_chroma)
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        render(summary)
    return 0
