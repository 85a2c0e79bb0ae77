"""``gan-colorize train`` (and the root ``train.py``, which ``accelerate launch`` runs)."""

from __future__ import annotations

import argparse
import logging
import signal
import sys

NAME = "train"
HELP = "train a generator (regression, classification or GAN objective) from a YAML config"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, help="YAML config, e.g. configs/unet_gan.yaml")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="extend",
        nargs="+",
        default=[],
        metavar="KEY=VALUE",
        help="override config values, e.g. --set train.lr_g=1e-4 train.steps=500 (repeatable)",
    )
    parser.add_argument("--run-dir", help="run folder (default: the config's run.dir)")
    parser.add_argument("--resume", help="'latest' or a checkpoint folder: continue an interrupted run")


def run(args: argparse.Namespace) -> int:
    from gan_colorize.config import ConfigError, load_config
    from gan_colorize.data import DatasetError
    from gan_colorize.rundir import RunLockedError
    from gan_colorize.training import NonFiniteLossError, train
    from gan_colorize.training.tracking import end_reason, ended_by_budget
    from gan_colorize.weights import MissingWeightsError

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    overrides = list(args.overrides) + ([f"run.dir={args.run_dir}"] if args.run_dir else [])
    try:
        config = load_config(args.config, overrides)
        run_dir = train(config, resume=args.resume)
    except (
        ConfigError,
        DatasetError,
        MissingWeightsError,
        FileNotFoundError,
        ValueError,
        RunLockedError,
    ) as exc:
        # ValueError: a file the config names that cannot be used (model.init_from unreadable, a
        # pickle with code, tensors of other shapes), a checkpoint that cannot be resumed; the
        # message names it, a traceback adds nothing. RunLockedError: another process trains the folder
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except NonFiniteLossError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    done = run_dir.list_checkpoints()[-1][0] if run_dir.list_checkpoints() else 0
    if done < config.train.steps and ended_by_budget(run_dir.provenance, done):
        print(f"run folder: {run_dir.root} (stopped at its time budget, step {done} of {config.train.steps})")
        return 0
    if done < config.train.steps:
        print(
            f"stopped at step {done} of {config.train.steps}; continue with --resume latest", file=sys.stderr
        )
        # the shell's code for the signal that stopped it (130 Ctrl-C, 143 SIGTERM): the console
        # command then dies of that signal (cli.run_handler), so a shell loop running it stops
        reason = end_reason(run_dir.provenance, done)
        return 128 + (signal.Signals[reason] if reason in ("SIGINT", "SIGTERM") else signal.SIGINT)
    print(f"run folder: {run_dir.root}")
    return 0
