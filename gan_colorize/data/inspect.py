"""``gan-colorize data inspect PATH``: what a folder of images (or ``builtin:skimage``) holds and
what training would use of it, by the same screening the datasets apply (``dataset.screen``)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from gan_colorize.config import DataConfig
from gan_colorize.data.dataset import BUILTIN, BUILTIN_EVAL, BUILTIN_TRAIN, _skimage_photo
from gan_colorize.data.decode import BadImageError, ImageProbe, probe_array, probe_file
from gan_colorize.data.files import in_eval_split, relative_name
from gan_colorize.rundir import absent


def summarize(
    spec: str,
    min_chroma: float = DataConfig.min_chroma,
    eval_fraction: float = DataConfig.eval_fraction,
    progress: bool = False,
    max_bad_fraction: float = DataConfig.max_bad_fraction,
) -> dict:
    """Counts, sizes, modes, greyscale and unreadable files (with reasons) of a folder, a file list,
    a single image file or ``builtin:skimage``, as a JSON-ready dict, and what ``build_datasets``
    would do with them (the split, its fallback for tiny folders, a stop for too many unreadable
    files). Raises FileNotFoundError for a missing path, ValueError for shards (their index.json,
    which ``data shard`` writes and prints, is their summary)."""
    from gan_colorize.data.dataset import source_files
    from gan_colorize.data.lists import is_file_list, list_root
    from gan_colorize.data.shards import is_shard_spec

    if spec == BUILTIN:
        return _summarize_builtin(min_chroma)
    if is_shard_spec(str(spec)):
        raise ValueError(f"{spec}: shards are summarised by the index.json that 'data shard' wrote")
    root = Path(spec)
    if not root.exists():
        raise FileNotFoundError(f"{root} {absent(root)}")
    probes: list[tuple[str, ImageProbe]] = []
    unreadable = []
    files = source_files(spec)
    root = list_root(spec) if is_file_list(spec) else root
    for path in _maybe_progress(files, progress, f"reading {root}"):
        name = relative_name(path, root)
        try:
            probes.append((name, probe_file(path)))
        except BadImageError as exc:
            unreadable.append({"file": name, "reason": exc.reason})
    summary = _summary(str(spec), probes, unreadable, min_chroma)
    usable = [n for n, p in probes if p.chroma >= min_chroma]
    held_out = [n for n in usable if in_eval_split(n, eval_fraction)]
    training = len(usable) - len(held_out)
    split_rule = f"hash of the relative path (data.eval_fraction={eval_fraction})"
    if usable and not (training and held_out):  # build_datasets' fallback for a tiny folder
        training, held_out = training or len(usable), held_out or usable[:1]
        split_rule += "; too few files for it: training and evaluation share images"
    summary.update(eval_fraction=eval_fraction, held_out=held_out, training=training, split_rule=split_rule)
    total = summary["images"]
    if total and len(unreadable) / total > max_bad_fraction:
        summary["training_would_stop"] = (
            f"{len(unreadable)} of {total} files are unreadable, more than "
            f"data.max_bad_fraction={max_bad_fraction}: training refuses to start"
        )
    return summary


def _summarize_builtin(min_chroma: float) -> dict:
    probes = [(name, probe_array(_skimage_photo(name))) for name in BUILTIN_TRAIN + BUILTIN_EVAL]
    summary = _summary(BUILTIN, probes, [], min_chroma)
    held_out = [n for n in BUILTIN_EVAL if n not in {g["file"] for g in summary["greyscale"]}]
    summary.update(
        eval_fraction=None,
        held_out=held_out,
        training=summary["usable"] - len(held_out),
        split_rule="one photo held out (gan_colorize.data.dataset.BUILTIN_EVAL)",
    )
    return summary


def _maybe_progress(items: list, show: bool, label: str) -> Iterable:
    if not show or len(items) < 50:
        return items
    from rich.console import Console
    from rich.progress import track

    return track(items, description=label, console=Console(stderr=True), transient=True)


def _stats(values: np.ndarray, digits: int = 0) -> dict:
    if values.size == 0:
        return {"min": None, "median": None, "max": None}
    out = {"min": float(values.min()), "median": float(np.median(values)), "max": float(values.max())}
    return {
        k: (int(v) if digits == 0 and float(v).is_integer() else round(v, digits or 1))
        for k, v in out.items()
    }


def _summary(
    spec: str, probes: list[tuple[str, ImageProbe]], unreadable: list[dict], min_chroma: float
) -> dict:
    widths = np.array([p.size[0] for _, p in probes], dtype=np.float64)
    heights = np.array([p.size[1] for _, p in probes], dtype=np.float64)
    greyscale = [
        {"file": n, "chroma": round(p.chroma, 3), "chroma_std": round(p.chroma_std, 3)}
        for n, p in probes
        if p.chroma < min_chroma
    ]
    return {
        "path": spec,
        "images": len(probes) + len(unreadable),
        "readable": len(probes),
        "usable": len(probes) - len(greyscale),
        "greyscale": greyscale,
        "unreadable": unreadable,
        "min_chroma": min_chroma,
        "modes": dict(sorted(Counter(p.mode for _, p in probes).items())),
        "bits": {str(k): v for k, v in sorted(Counter(p.bits for _, p in probes).items())},
        "width": _stats(widths),
        "height": _stats(heights),
        "megapixels": _stats(widths * heights / 1e6, digits=3),
    }


def render(summary: dict) -> None:
    """Print ``summary`` as a table and lists (rich)."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console()
    table = Table(title=f"data inspect {escape(summary['path'])}", show_header=False)
    table.add_row("image files", str(summary["images"]))
    table.add_row("readable", str(summary["readable"]))
    table.add_row("unreadable (skipped)", str(len(summary["unreadable"])))
    table.add_row(
        f"greyscale (chroma p99 < {summary['min_chroma']:g}, left out)", str(len(summary["greyscale"]))
    )
    table.add_row("usable colour images", str(summary["usable"]))
    table.add_row("held out for evaluation", str(len(summary["held_out"])))
    table.add_row("used for training", f"[bold]{summary['training']}[/bold]")
    for key in ("width", "height", "megapixels"):
        s = summary[key]
        table.add_row(f"{key} min / median / max", f"{s['min']} / {s['median']} / {s['max']}")
    table.add_row("modes", ", ".join(f"{m}: {n}" for m, n in summary["modes"].items()))
    table.add_row("bits per sample", ", ".join(f"{b}: {n}" for b, n in summary["bits"].items()))
    table.add_row("evaluation split", escape(summary["split_rule"]))
    console.print(table)
    if "training_would_stop" in summary:
        console.print(f"[bold red]{escape(summary['training_would_stop'])}[/bold red]")
    for item in summary["greyscale"]:
        console.print(
            f"  greyscale: {escape(item['file'])} "
            f"(chroma p99 {item['chroma']:.3f}, std {item['chroma_std']:.3f})"
        )
    for item in summary["unreadable"]:
        console.print(f"  [red]unreadable[/red]: {escape(item['file'])}: {escape(item['reason'])}")
    if summary["held_out"] and len(summary["held_out"]) <= 20:
        console.print(f"  held out: {escape(', '.join(summary['held_out']))}")
