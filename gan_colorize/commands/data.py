"""``gan-colorize data inspect PATH [--json]``: what a dataset holds and what training would use.

Exit status: 0 training would use the data; 1 training would refuse it (too many unreadable
files: the summary says so); 2 no such path.
"""

from __future__ import annotations

import argparse
import json
import sys

from gan_colorize.config import DataConfig

NAME = "data"
HELP = "look at a dataset: image counts, sizes, modes, greyscale and unreadable files"
EXIT_MISSING = 2
EXIT_TRAINING_WOULD_STOP = 1  # the summary is printed, but training would refuse this data


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    inspect = sub.add_parser(
        "inspect",
        help="summarise an image folder (recursive), an image file or builtin:skimage",
        description="Decode every image once and report what training would use of them.",
    )
    inspect.add_argument(
        "path", help="an image folder (searched recursively), an image file, or builtin:skimage"
    )
    inspect.add_argument(
        "--min-chroma",
        type=float,
        default=DataConfig.min_chroma,
        help="99th-percentile chroma (Lab) below which an image is greyscale (data.min_chroma; "
        "default %(default)s)",
    )
    inspect.add_argument(
        "--eval-fraction",
        type=float,
        default=DataConfig.eval_fraction,
        help="share of a folder held out for evaluation by the stable hash split (data.eval_fraction; "
        "default %(default)s)",
    )
    inspect.add_argument(
        "--max-bad-fraction",
        type=float,
        default=DataConfig.max_bad_fraction,
        help="share of unreadable files above which training refuses to start (data.max_bad_fraction; "
        "default %(default)s)",
    )
    inspect.add_argument("--json", action="store_true", help="print a machine-readable summary")


def run(args: argparse.Namespace) -> int:
    from gan_colorize.data.inspect import render, summarize

    try:
        summary = summarize(
            args.path, args.min_chroma, args.eval_fraction, not args.json, args.max_bad_fraction
        )
    except FileNotFoundError as exc:
        print(f"error: {exc} (give an image folder, an image file or builtin:skimage)", file=sys.stderr)
        return EXIT_MISSING
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        render(summary)
    # a script checking its data before a long run must not read "refused" as success
    return EXIT_TRAINING_WOULD_STOP if "training_would_stop" in summary else 0
