"""``gan-colorize experiment``: train what a study file lists, evaluate every run, write the report."""

from __future__ import annotations

import argparse
import logging
import sys

NAME = "experiment"
HELP = "run a study (experiments/*.yaml): train what is not trained yet, evaluate, write the report"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("study", metavar="FILE", help="study file, e.g. experiments/demo.yaml")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="train and evaluate only these runs")
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="config override applied to every run, e.g. --set train.steps=100 (repeatable)",
    )  # fmt: skip
    parser.add_argument(
        "--device",
        choices=["cpu", "cuda"],
        help="where to train and evaluate (default: a GPU when there is one)",
    )
    parser.add_argument("--out", help="study folder (default: the study file's out, else runs/<name>)")
    parser.add_argument("--dry-run", action="store_true", help="print the runs and their folders, do nothing")


def run(args: argparse.Namespace) -> int:
    from gan_colorize.config import ConfigError
    from gan_colorize.evaluation import EvalSetError, EvaluationError
    from gan_colorize.experiment import (
        EXIT_PARTIAL,
        StudyError,
        StudyInterruptedError,
        check_eval,
        load_study,
        plan_study,
        run_status,
        run_study,
    )
    from gan_colorize.registry import RegistryError
    from gan_colorize.report import ReportError
    from gan_colorize.training import NonFiniteLossError
    from gan_colorize.weights import MissingWeightsError

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        study = load_study(args.study)
        if args.out:
            study.out = args.out
        if args.dry_run:
            check_eval(study)
            for item in plan_study(study, args.only, args.overrides):
                print(f"{item.run.name}: {item.run.config} -> {item.dir} ({run_status(item)})")
            return 0
        html, partial = run_study(study, args.only, args.overrides, args.device)
    except (
        StudyError, ConfigError, RegistryError, EvalSetError, EvaluationError, ReportError,
        MissingWeightsError, FileNotFoundError,
    ) as exc:  # fmt: skip
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except NonFiniteLossError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except StudyInterruptedError as exc:
        print(f"stopped: {exc}", file=sys.stderr)
        return 130  # the shell's code for "ended by Ctrl-C"
    if partial:
        print(
            "warning: some metrics could not be computed (missing or unreadable weights, too few or "
            "too small images): see the n/a cells and their notes",
            file=sys.stderr,
        )
    print(f"report: {html}")
    return EXIT_PARTIAL if partial else 0
