"""``gan-colorize check-discriminator``: does a discriminator (registered or your own) keep the contract?

    gan-colorize check-discriminator patchgan --arg n_layers=4 --arg norm=spectral
    PYTHONPATH=. gan-colorize check-discriminator my_discriminators:MyDiscriminator --size 64 128

It prints the receptive field it measures (the input pixels that change the centre logit, per
scale; "whole image" for one logit per image): a ``receptive_field`` attribute is optional, and one
that disagrees with the measurement is a warning on stderr, not a failure.

Exit status 0 when it passes (warnings or not), 1 when it breaks the contract (the reasons are
printed, each with its likely cause), 2 when it cannot be built (an unknown name or module, an
argument it does not take, a constructor that raises) or the command line is malformed.
"""

from __future__ import annotations

import argparse
import sys

NAME = "check-discriminator"
HELP = (
    "check a discriminator against the drop-in contract (forward, backward, bf16, conditioning) "
    "and measure its receptive field"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "discriminator",
        metavar="NAME_OR_MODULE:CLASS",
        help="a registered name (patchgan) or my_module:MyClass",
    )
    parser.add_argument(
        "--size",
        type=int,
        nargs="+",
        default=[64, 96],
        metavar="PX",
        help="square input sizes (default 64 96)",
    )
    parser.add_argument("--batch", type=int, default=2, help="batch size (default 2)")
    parser.add_argument(
        "--arg",
        dest="args",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="constructor argument, YAML-typed: --arg n_layers=2 --arg widths=[32,64] (repeatable)",
    )
    parser.add_argument("--device", default="cpu", help="torch device (default cpu)")


def parse_args_list(pairs: list[str]) -> dict:
    """``["n_layers=2", "norm=instance"]`` -> ``{"n_layers": 2, "norm": "instance"}`` (values as YAML)."""
    import yaml

    kwargs = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--arg {pair!r} is not KEY=VALUE")
        try:
            kwargs[key.strip()] = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError as exc:
            raise ValueError(f"--arg {pair!r}: the value is not valid YAML ({exc})") from None
    return kwargs


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from gan_colorize.models.contract import check_discriminator

    console = Console()
    try:
        kwargs = parse_args_list(args.args)
        report = check_discriminator(
            args.discriminator,
            sizes=tuple(args.size),
            batch=args.batch,
            device=args.device,
            args=kwargs,
            raise_on_failure=False,
        )
    except ValueError as exc:  # a malformed --arg or size, or DiscriminatorBuildError: nothing to check
        print(f"error: {exc}", file=sys.stderr)
        return 2
    console.print(report.render())
    for warning in report.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if not report.passed:
        print(f"{report.name} breaks the discriminator contract:", file=sys.stderr)
        for failure in report.failures:
            print(f"  - {failure}", file=sys.stderr)
        return 1
    return 0
