"""``gan-colorize export``: a run's generator as one inference file.

    gan-colorize export runs/unet_gan --out model.pt                       # latest checkpoint
    gan-colorize export runs/unet_gan --out model.safetensors --half       # float16 weights
    gan-colorize export runs/unet_gan --checkpoint 20000 --out model.pt --format safetensors

The file loads with ``Colorizer.from_checkpoint`` and ``gan-colorize colorize --checkpoint``;
neither container can carry code (see ``gan_colorize/inference/export.py``).

Exit status: 0 written; 2 a usage error (``--out`` a folder or an existing file without
``--overwrite``, no such checkpoint, an unreadable file).
"""

from __future__ import annotations

import argparse
import sys

NAME = "export"
HELP = "write a run's generator as one inference file (.pt or .safetensors)"
# shared with ``gan-colorize colorize`` and ``evaluate``: one wording for what the flag allows
TRUST_CODE_HELP = (
    "allow a checkpoint whose generator type is an unregistered 'module:Class': importing it runs "
    "that module's code, so give this only for files you trust (registered generators, and a class "
    "registered by importing its module first, need no flag)"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", metavar="RUN_DIR", help="run folder (or a checkpoint folder or generator.pt)")
    parser.add_argument("--out", required=True, help="file to write, e.g. model.pt or model.safetensors")
    parser.add_argument(
        "--checkpoint", type=int, metavar="STEP", help="checkpoint step (default: the latest)"
    )
    parser.add_argument(
        "--format", dest="fmt", choices=("pt", "safetensors"),
        help="container (default: from the --out suffix; safetensors files always end in .safetensors)",
    )  # fmt: skip
    parser.add_argument(
        "--half", action="store_true",
        help="store parameters as float16 (BatchNorm statistics stay float32); half the file size",
    )  # fmt: skip
    parser.add_argument("--overwrite", action="store_true", help="replace the --out file when it exists")
    parser.add_argument("--trust-code", action="store_true", help=TRUST_CODE_HELP)


def run(args: argparse.Namespace) -> int:
    from gan_colorize.inference.export import export_generator

    try:
        path = export_generator(
            args.run,
            args.out,
            step=args.checkpoint,
            half=args.half,
            fmt=args.fmt,
            overwrite=args.overwrite,
            trust_code=args.trust_code,
        )
    except (FileNotFoundError, FileExistsError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {path}")
    return 0
