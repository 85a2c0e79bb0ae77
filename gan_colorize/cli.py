"""The ``gan-colorize`` command line. Each subcommand is a module of ``gan_colorize.commands``
with ``NAME``, ``HELP``, ``add_arguments(parser)`` and ``run(args) -> exit code``; adding one is
adding its module name below.
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
from typing import NoReturn

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


def main(argv: list[str] | None = None, die_of_signal: bool = False) -> int:
    args = build_parser().parse_args(argv)
    return run_handler(args.handler, args, die_of_signal)


def run_handler(handler, args: argparse.Namespace, die_of_signal: bool = False) -> int:
    """A command's exit code. A command stopped by a signal (training's checkpoint-and-stop, or a
    KeyboardInterrupt, printed as one line, not a traceback) returns the shell's code for it (130
    Ctrl-C, 143 SIGTERM); with ``die_of_signal`` (the console commands) the process dies of the
    signal instead, as Python itself does on Ctrl-C, so that a shell loop or make running it stops."""
    try:
        code = int(handler(args) or 0)
    except KeyboardInterrupt as stop:
        print(f"interrupted{': ' + str(stop) if str(stop) else ''}", file=sys.stderr)
        code = 128 + getattr(stop, "signum", signal.SIGINT)
    if die_of_signal and code - 128 in (signal.SIGINT, signal.SIGTERM):
        signal.signal(code - 128, signal.SIG_DFL)
        os.kill(os.getpid(), code - 128)
    return code


def entry() -> NoReturn:
    """The ``gan-colorize`` console script."""
    sys.exit(main(die_of_signal=True))


if __name__ == "__main__":
    entry()
