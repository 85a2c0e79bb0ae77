"""``gan-colorize data inspect PATH``: what a folder of images holds and what training would use."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

from gan_colorize.data.dataset import BUILTIN, BuiltinSkimage
from gan_colorize.data.decode import BadImageError, chroma_level, open_image, pil_to_array
from gan_colorize.data.files import list_image_files


def summarize(spec: str, min_chroma: float = 4.0) -> dict:
    """Counts, sizes, modes, greyscale and unreadable files (with reasons) of a folder or builtin."""
    if spec == BUILTIN:
        images = [
            (n, np.asarray(p))
            for n, p in zip(BuiltinSkimage("train", 64).names, BuiltinSkimage("train", 64).photos)
        ]
        modes = Counter({"RGB": len(images)})
        return _summary(spec, [(n, a, "RGB") for n, a in images], [], min_chroma, modes, held_out=["chelsea"])
    root = Path(spec)
    if not root.exists():
        raise FileNotFoundError(f"{root} does not exist")
    decoded, unreadable, modes = [], [], Counter()
    for path in list_image_files(root):
        name = path.relative_to(root).as_posix() if root.is_dir() else path.name
        try:
            img = open_image(path)
            rgb, _ = pil_to_array(img)
        except BadImageError as exc:
            unreadable.append({"file": name, "reason": exc.reason})
            continue
        modes[img.mode] += 1
        decoded.append((name, rgb, img.mode))
    return _summary(str(root), decoded, unreadable, min_chroma, modes)


def _summary(spec, decoded, unreadable, min_chroma, modes, held_out=()) -> dict:
    widths = np.array([a.shape[1] for _, a, _ in decoded]) if decoded else np.zeros(1)
    heights = np.array([a.shape[0] for _, a, _ in decoded]) if decoded else np.zeros(1)
    greyscale = [
        {"file": n, "chroma": round(chroma_level(a), 2)}
        for n, a, _ in decoded
        if chroma_level(a) < min_chroma
    ]
    return {
        "path": spec,
        "images": len(decoded) + len(unreadable),
        "readable": len(decoded),
        "unreadable": unreadable,
        "greyscale": greyscale,
        "usable_for_training": len(decoded) - len(greyscale),
        "held_out": list(held_out),
        "min_chroma": min_chroma,
        "modes": dict(modes),
        "width": {"min": int(widths.min()), "median": float(np.median(widths)), "max": int(widths.max())},
        "height": {"min": int(heights.min()), "median": float(np.median(heights)), "max": int(heights.max())},
        "megapixels": {"median": round(float(np.median(widths * heights)) / 1e6, 3)},
    }


def render(summary: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(title=f"data inspect {summary['path']}", show_header=False)
    table.add_row("images", str(summary["images"]))
    table.add_row("readable", str(summary["readable"]))
    table.add_row("usable for colour training", str(summary["usable_for_training"]))
    table.add_row("greyscale (left out)", str(len(summary["greyscale"])))
    table.add_row("unreadable (skipped)", str(len(summary["unreadable"])))
    w, h = summary["width"], summary["height"]
    table.add_row("width min/median/max", f"{w['min']} / {w['median']:.0f} / {w['max']}")
    table.add_row("height min/median/max", f"{h['min']} / {h['median']:.0f} / {h['max']}")
    table.add_row("median megapixels", str(summary["megapixels"]["median"]))
    table.add_row("modes", ", ".join(f"{m}: {n}" for m, n in sorted(summary["modes"].items())))
    if summary["held_out"]:
        table.add_row("held out for evaluation", ", ".join(summary["held_out"]))
    console.print(table)
    for item in summary["greyscale"]:
        console.print(f"  greyscale: {item['file']} (chroma p99 {item['chroma']} < {summary['min_chroma']})")
    for item in summary["unreadable"]:
        console.print(f"  [red]unreadable[/red]: {item['file']}: {item['reason']}")
