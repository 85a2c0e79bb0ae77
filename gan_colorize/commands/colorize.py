"""``gan-colorize colorize``: colorize photographs (files and folders) with a trained generator.

    gan-colorize colorize old_photos/ scan.tif --checkpoint runs/unet_gan --out colorized/
    gan-colorize colorize photos/ --checkpoint model.safetensors --out out/ --size 384 --format jpg

Exit status: 0 every image done or skipped (output exists); 1 some image failed (the summary
names each with its reason); 2 a usage error (bad option, unreadable checkpoint, --out a file,
outputs that would overwrite inputs, a checkpoint whose generator predicts NaN or inf).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gan_colorize.commands.export import TRUST_CODE_HELP

NAME = "colorize"
HELP = "colorize photographs of any size (files and folders) with a run's generator"
EXIT_USAGE = 2


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "paths", nargs="+", metavar="PATH", help="image files and folders (searched recursively)"
    )
    parser.add_argument(
        "--checkpoint", required=True,
        help="run folder (its latest checkpoint), checkpoint folder, generator.pt, exported .pt/.safetensors",
    )  # fmt: skip
    parser.add_argument(
        "--out", required=True, help="output folder; names relative to each input folder are kept"
    )
    parser.add_argument(
        "--size", type=int, help="working resolution, shorter side (default: the run's data.size)"
    )
    parser.add_argument(
        "--temperature", type=float,
        help="annealed-mean temperature of classification generators (default: the run's loss.temperature)",
    )  # fmt: skip
    parser.add_argument("--format", dest="fmt", choices=("png", "jpg"), default="png", help="output format")
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs (inputs never)")
    parser.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: cuda when available)")
    parser.add_argument(
        "--batch-size", type=int, default=1, help="images per network batch (same shape only)"
    )
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    parser.add_argument("--trust-code", action="store_true", help=TRUST_CODE_HELP)
    parser.add_argument(
        "--sheet",
        metavar="PNG",
        help="also write a contact sheet: each photo's grey input beside its colorization, one row each",
    )


def usage_problem(args: argparse.Namespace) -> str | None:
    if args.size is not None and args.size < 8:
        return "--size must be at least 8"
    if args.temperature is not None and args.temperature <= 0:
        return "--temperature must be positive"
    if args.batch_size < 1:
        return "--batch-size must be at least 1"
    if Path(args.out).exists() and not Path(args.out).is_dir():
        # caught here, before the network runs: every image would fail writing into it
        return f"--out {args.out} is a file; give the folder to write the colorized images into"
    return None


def check_sheet_path(sheet: str | None, jobs, overwrite: bool) -> None:
    """The sheet is an output like the others: never an input, never one of the colorized images
    (it would replace one this call writes), an existing file only with --overwrite."""
    from gan_colorize.inference.batch import InputOverwriteError

    if not sheet:
        return
    path = Path(sheet).resolve()
    if any(path == job.source.resolve() for job in jobs):
        raise InputOverwriteError(f"--sheet {sheet} is one of the inputs; inputs are never overwritten")
    if any(path == job.output.resolve() for job in jobs):
        raise InputOverwriteError(f"--sheet {sheet} is one of the colorized outputs; choose another file")
    if path.is_dir():
        raise InputOverwriteError(f"--sheet {sheet} is a folder; give the PNG file to write")
    if path.exists() and not overwrite:
        raise InputOverwriteError(f"--sheet {sheet} exists; choose another file or pass --overwrite")


def run(args: argparse.Namespace) -> int:
    from gan_colorize.evaluation.protocol import NonFiniteOutputError
    from gan_colorize.inference.batch import InputOverwriteError, colorize_jobs, format_summary, plan_jobs
    from gan_colorize.inference.colorizer import Colorizer

    problem = usage_problem(args)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return EXIT_USAGE
    try:
        jobs, failed = plan_jobs(args.paths, args.out, args.fmt)
        check_sheet_path(args.sheet, jobs, args.overwrite)
        colorizer = Colorizer.from_checkpoint(
            args.checkpoint,
            device=args.device,
            size=args.size,
            temperature=args.temperature,
            trust_code=args.trust_code,
        )
    except (InputOverwriteError, FileNotFoundError, ValueError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        summary = colorize_jobs(
            colorizer,
            jobs,
            fmt=args.fmt,
            overwrite=args.overwrite,
            batch_size=args.batch_size,
            progress=args.progress,
        )
    except NonFiniteOutputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    summary.outcomes[:0] = failed
    print(format_summary(summary))
    if args.sheet:
        from gan_colorize.inference.sheet import write_sheet

        pairs = [
            (o.source, o.output) for o in summary.outcomes if o.status in ("done", "skipped") and o.output
        ]
        try:
            print(f"sheet: {write_sheet(pairs, args.sheet)}")
        except (ValueError, OSError) as exc:
            print(f"error: --sheet {args.sheet}: {exc}", file=sys.stderr)
            return EXIT_USAGE
    return summary.exit_code
