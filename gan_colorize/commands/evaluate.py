"""``gan-colorize evaluate``: score runs (or an outside method's images) under the evaluation protocol.

    gan-colorize evaluate --run runs/demo/unet_gan --set skimage_holdout
    gan-colorize evaluate --run RUN_A --run RUN_B --data /data/val --size 256 --metrics psnr,ssim,fid
    gan-colorize evaluate --pred outside/predictions --gt RUN/eval/photos_holdout/gt

Exit status: 0 complete; 3 written but partial (a metric is n/a: its pretrained weights are missing
or unreadable, or the images do not allow it); 2 a usage or data error (the message says which file
or option).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gan_colorize.commands.export import TRUST_CODE_HELP

NAME = "evaluate"
HELP = "score runs (RUN/eval/<dataset>/metrics.json) or a folder of outputs against ground truth"
EXIT_USAGE = 2
EXIT_PARTIAL = 3  # results written, but some metric is n/a (missing weights, too few or too small images)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    runs = parser.add_argument_group("runs")
    runs.add_argument(
        "--run",
        dest="runs",
        action="append",
        default=[],
        metavar="RUN_DIR",
        help="run folder to evaluate (repeatable); its latest checkpoint, EMA weights when kept",
    )
    runs.add_argument(
        "--set",
        dest="eval_sets",
        action="append",
        default=[],
        metavar="NAME",
        help="evaluation set: eval/sets/NAME.yaml or a .yaml path (repeatable)",
    )
    runs.add_argument("--data", help="image folder or builtin:skimage (default: the run's evaluation data)")
    runs.add_argument("--trust-code", action="store_true", help=TRUST_CODE_HELP)
    runs.add_argument(
        "--size",
        type=int,
        help="protocol size S: shorter side to S, centre crop SxS (default: the run's data.size)",
    )
    folders = parser.add_argument_group("an outside method's images")
    folders.add_argument("--pred", help="folder of predictions, matched to --gt by file name")
    folders.add_argument("--gt", help="folder of ground truth (e.g. RUN/eval/<dataset>/gt)")
    folders.add_argument(
        "--out", help="metrics file to write (default: <pred parent>/metrics_<pred name>.json)"
    )
    folders.add_argument("--approach", help="the row's name in reports (default: the --pred folder name)")
    parser.add_argument(
        "--metrics",
        help="comma-separated metric names (default: the set's, else colorfulness,psnr,ssim,auc,lpips,fid)",
    )
    parser.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: a GPU when there is one)")
    parser.add_argument("--batch-size", type=int, help="images per batch (default: the set's, else 16)")


def usage_problem(args: argparse.Namespace) -> str | None:
    """Which options do not go together (None: fine)."""
    folders = args.pred is not None or args.gt is not None
    if args.runs and folders:
        return "give --run RUN_DIR or --pred DIR --gt DIR, not both"
    if not args.runs and not folders:
        return "nothing to evaluate: give --run RUN_DIR (repeatable) or --pred DIR --gt DIR"
    if folders and (args.pred is None or args.gt is None):
        return "--pred and --gt go together"
    if folders and (args.eval_sets or args.data or args.size):
        return "--set, --data and --size apply to --run; --pred/--gt images are scored as they are"
    if args.runs and (args.out or args.approach):
        return "--out and --approach apply to --pred/--gt; a run writes RUN/eval/<dataset>/metrics.json"
    if args.eval_sets and (args.data or args.size):
        return "--set fixes the data and the size: give --set or --data/--size, not both"
    if args.batch_size is not None and args.batch_size < 1:
        return "--batch-size must be at least 1"
    if args.size is not None and args.size < 8:
        return "--size must be at least 8"
    return None


def evaluate_all(args: argparse.Namespace) -> list[dict]:
    from gan_colorize.evaluation import evaluate_folders, evaluate_run

    if args.pred is not None:
        result = evaluate_folders(
            args.pred, args.gt, args.metrics, args.device, out=args.out,
            batch_size=args.batch_size or 16, approach=args.approach,
        )  # fmt: skip
        print(f"wrote {result['metrics_file']}")
        return [result]
    results = []
    for run_dir in args.runs:
        for eval_set in args.eval_sets or [None]:
            result = evaluate_run(
                run_dir, data=args.data, size=args.size, metrics=args.metrics, device=args.device,
                eval_set=eval_set, batch_size=args.batch_size, trust_code=args.trust_code,
            )  # fmt: skip
            print(f"wrote {result['metrics_file']} ({result['n_images']} images)")
            results.append(result)
    return results


def print_results(results: list[dict]) -> None:
    """The results as the report's terminal table (same columns, same formatting)."""
    from gan_colorize.report import Report, collect_results, print_summary
    from gan_colorize.report.table import build_section, format_protocol

    collected = collect_results([r["metrics_file"] for r in results])
    sections = []
    for dataset in collected.datasets:
        rows = [r for r in collected.rows if r.dataset == dataset]
        sections.append(build_section(dataset, rows, collected.references.get(dataset, [])))
    print_summary(Report(title="evaluation", created="", sections=sections, curves=[], out=Path(".")))
    for section in sections:
        print(f"protocol ({section.dataset}): {format_protocol(section.protocol)}")


def run(args: argparse.Namespace) -> int:
    from gan_colorize.data import BadImageError

    problem = usage_problem(args)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return EXIT_USAGE
    try:
        results = evaluate_all(args)
    except (ValueError, OSError, BadImageError) as exc:
        # EvaluationError, EvalSetError, ConfigError, RegistryError (unknown metric) are ValueErrors;
        # OSError: a file or folder that cannot be read (missing, a permission, not a folder)
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print_results(results)
    partial = [r for r in results if r["partial"]]
    for r in partial:
        print(
            f"partial: {r['approach']} on {r['dataset']}: "
            + "; ".join(f"{k} {v}" for k, v in r["missing"].items())
        )
    if partial:
        print(
            "some metrics are n/a (pretrained weights missing or unreadable, or too few or too small "
            f"images; see eval/README.md); exit status {EXIT_PARTIAL}"
        )
        return EXIT_PARTIAL
    return 0
