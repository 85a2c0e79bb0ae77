"""The ``gan-colorize`` command line. Each subcommand is a module of ``gan_colorize.commands``
with ``NAME``, ``HELP``, ``add_arguments(parser)`` and ``run(args) -> exit code``; adding one is
adding its module name below.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from gan_colorize import __version__

COMMANDS = [
    "data",
    "train",
    "evaluate",
    "report",
    "experiment",
    "colorize",
    "export",
    "check_discriminator",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gan-colorize", description="GAN image colorization: train, evaluate, colorize."
    )
    parser.add_argument("--version", action="version", version=f"gan-colorize {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module_name in COMMANDS:
        module = importlib.import_module(f"gan_colorize.commands.{module_name}")
        command = sub.add_parser(module.NAME, help=module.HELP, description=module.HELP)
        module.add_arguments(command)
        command.set_defaults(handler=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.handler(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
