"""``gan-colorize experiment``: train what a study file lists, evaluate every run, write the report.

Exit status: 0 all done; 1 some run failed (the others were trained, evaluated and reported); 2 the
study file, a config or the eval settings are wrong (nothing trained); 3 the report was written but
some metric could not be computed (n/a cells); 130 stopped by Ctrl-C (run the command again to resume).
"""

from __future__ import annotations

import argparse
import logging
import sys

NAME = "experiment"
HELP = "run a study (experiments/*.yaml): train what is not trained yet, evaluate, write the report"
EXIT_STATUS = (
    "exit status: 0 done; 1 some run failed (the others went on and are in the report); 2 a bad study "
    "file, config or eval setting (nothing trained); 3 some metric is n/a; 130 stopped by Ctrl-C"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("study", metavar="FILE", help="study file, e.g. experiments/demo.yaml")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="train and evaluate only these runs")
    parser.add_argument(
        "--set", dest="overrides", action="extend", nargs="+", default=[], metavar="KEY=VALUE",
        help="config overrides applied to every run, e.g. --set train.steps=100 data.size=64 (repeatable)",
    )  # fmt: skip
    parser.add_argument(
        "--device",
        choices=["cpu", "cuda"],
        help="where to train and evaluate (default: a GPU when there is one)",
    )
    parser.add_argument("--out", help="study folder (default: the study file's out, else runs/<name>)")
    parser.add_argument("--dry-run", action="store_true", help="print the runs and their folders, do nothing")
    parser.add_argument(
        "--reevaluate",
        action="store_true",
        help="evaluate every run again, also those whose results are for their latest checkpoint "
        "already (e.g. after installing a metric's weights, or when the evaluated images changed)",
    )
    parser.add_argument(
        "--trust-code",
        action="store_true",
        help="also import the unregistered 'module:Class' generator of a run found already trained in "
        "the study's folder (runs trained by this call are trusted anyway); importing runs that "
        "module's code, so give this only for run folders you trust",
    )
    parser.epilog = EXIT_STATUS  # cli.py builds the parser; the exit codes belong in --help


def run(args: argparse.Namespace) -> int:
    from gan_colorize.config import ConfigError
    from gan_colorize.evaluation import EvalSetError, EvaluationError
    from gan_colorize.experiment import (
        EXIT_PARTIAL,
        StudyError,
        StudyInterruptedError,
        check_eval,
        check_outside,
        check_run_data,
        load_study,
        plan_study,
        run_status,
        run_study,
    )
    from gan_colorize.registry import RegistryError
    from gan_colorize.report import ReportError, print_summary
    from gan_colorize.training import NonFiniteLossError
    from gan_colorize.weights import MissingWeightsError

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        study = load_study(args.study)
        if args.out:
            study.out = args.out
        if args.dry_run:
            check_eval(study)
            selected = plan_study(study, args.only, args.overrides)
            check_run_data(study, selected)
            check_outside(study)
            for item in selected:
                print(f"{item.run.name}: {item.run.config} -> {item.dir} ({run_status(item)})")
            for outside in study.outside:
                print(f"{outside.name}: outside method, images in {outside.pred} (scored, not trained)")
            return 0
        result = run_study(study, args.only, args.overrides, args.device, args.reevaluate, args.trust_code)
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
    if result.report is not None:
        print_summary(result.report)  # the same tables as gan-colorize report
    if result.partial:
        print(
            "warning: some metrics could not be computed (missing or unreadable weights, too few or "
            "too small images): see the n/a cells and their notes; after installing weights, run "
            "again with --reevaluate",
            file=sys.stderr,
        )
    for name, reason in result.failed.items():
        print(f"warning: run {name!r} {reason}", file=sys.stderr)
    if result.report is not None:
        print(f"report: {result.report.html_path}")
    if result.failed:
        return 1
    return EXIT_PARTIAL if result.partial else 0
