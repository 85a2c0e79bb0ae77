"""``gan-colorize data inspect PATH [--json]``: what a dataset holds and what training would use.

Exit status: 0 training would use the data; 1 training would refuse it (too many unreadable
files: the summary says so); 2 no such path.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

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
    add_shard_arguments(sub)


def run(args: argparse.Namespace) -> int:
    if getattr(args, "data_handler", None) is not None:  # a subcommand with its own function
        return args.data_handler(args)
    from gan_colorize.data.inspect import render, summarize

    try:
        summary = summarize(
            args.path, args.min_chroma, args.eval_fraction, not args.json, args.max_bad_fraction
        )
    except FileNotFoundError as exc:
        print(
            f"error: {exc} (give an image folder, a file list, an image file or builtin:skimage)",
            file=sys.stderr,
        )
        return EXIT_MISSING
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_MISSING
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        render(summary)
    # a script checking its data before a long run must not read "refused" as success
    return EXIT_TRAINING_WOULD_STOP if "training_would_stop" in summary else 0


# ---------------------------------------------------------------- data shard
def add_shard_arguments(sub) -> None:
    shard = sub.add_parser(
        "shard",
        help="write WebDataset tar shards from an image folder or a file list",
        description="Decode every image once (in parallel), skip unreadable ones, optionally downscale "
        "large ones, and write tar shards plus OUT/index.json (sample counts, what was skipped and why).",
    )
    shard.add_argument("src", help="an image folder (searched recursively) or a .txt file list")
    shard.add_argument("out", help="folder for the shards (shard-000000.tar, ...) and index.json")
    shard.add_argument("--shard-size", type=int, default=1000, help="samples per shard (default %(default)s)")
    shard.add_argument(
        "--max-side",
        type=int,
        default=None,
        help="downscale images whose longer side is above this (pixels; re-encoded as JPEG); "
        "smaller ones keep their bytes (default: keep all)",
    )
    shard.add_argument("--workers", type=int, default=0, help="decoding processes (0: one per CPU)")
    shard.set_defaults(data_handler=run_shard)


def run_shard(args: argparse.Namespace) -> int:
    from rich.progress import Progress

    from gan_colorize.data.dataset import source_files
    from gan_colorize.data.lists import is_file_list, list_root
    from gan_colorize.data.shard_writer import write_shards

    if args.shard_size < 1 or (args.max_side is not None and args.max_side < 1):
        print("error: --shard-size and --max-side must be positive", file=sys.stderr)
        return EXIT_MISSING
    if Path(args.out).exists() and not Path(args.out).is_dir():
        print(f"error: {args.out} is a file; give the folder to write the shards into", file=sys.stderr)
        return EXIT_MISSING
    try:
        files = source_files(args.src)
    except FileNotFoundError as exc:
        print(f"error: {exc} (give an image folder or a .txt file list)", file=sys.stderr)
        return EXIT_MISSING
    root = list_root(args.src) if is_file_list(args.src) else Path(args.src)
    with Progress(transient=True) as bar:
        task = bar.add_task(f"sharding {args.src}", total=len(files))
        index = write_shards(
            files, root, Path(args.out), args.shard_size, args.max_side, args.workers,
            lambda n: bar.advance(task, n),
        )  # fmt: skip
    _print_shard_summary(index, len(files))
    return 0


def _print_shard_summary(index: dict, total: int) -> None:
    print(
        f"{index['samples']} of {total} images in {len(index['shards'])} shards "
        f"({index['resized']} downscaled to a longer side of {index['max_side']} px)"
        if index["max_side"]
        else f"{index['samples']} of {total} images in {len(index['shards'])} shards"
    )
    skipped = index["skipped"]
    if skipped:
        kinds = ", ".join(f"{n} {kind}" for kind, n in index["skipped_by_reason"].items())
        print(f"skipped {len(skipped)}: {kinds}")
        for s in skipped[:10]:
            print(f"  {s['file']}: {s['reason']}")
        if len(skipped) > 10:
            print(f"  ... and {len(skipped) - 10} more (index.json lists them all)")
    print(f"data.train: {index['pattern']}")
