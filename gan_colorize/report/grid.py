"""Image grids (input | each approach | ground truth) and the report folder's own files.

The thumbnails are written beside report.md (``images/<dataset>/<NN>_<column>/<stem>.jpg``) and
embedded in report.html as data URIs; a later report removes the ones it did not write again (runs
or datasets no longer in it), and nothing else.
"""

from __future__ import annotations

import base64
import io
import re
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from gan_colorize.data.files import is_image_name
from gan_colorize.evaluation.results import ResultRow

IMAGES_DIR = "images"  # IMAGES_DIR/<dataset>/<NN>_<column>/<image stem>.jpg
THUMB_SUFFIX = ".jpg"
THUMB_COLUMN_DIR = re.compile(r"\d\d_[A-Za-z0-9_.-]+")
THUMB_JPEG_QUALITY = 92  # thumbnails are for looking at colours, not for measuring them
# 4:4:4: PIL's default 4:2:0 would halve the colour resolution, the very thing the grid compares
THUMB_JPEG_SUBSAMPLING = 0


@dataclass
class Thumb:
    file: str  # relative to the report folder (report.md links it)
    data_uri: str  # report.html embeds it
    alt: str


@dataclass
class Grid:
    names: list[str]  # one grid row per eval image (the ground truth's file names)
    headers: list[str]  # input | approaches ... | ground truth
    cells: list[list[Thumb | None]]
    thumb: int  # display width of the images, pixels


def safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "x"


def _thumbnail(path: Path, size: int) -> bytes:
    with Image.open(path) as image:
        image.load()
        mode = "L" if image.mode in ("L", "I;16", "I") else "RGB"
        image = image.convert(mode)
        if max(image.size) > size:  # never upscale: the page scales small crops up, pixelated
            image.thumbnail((size, size), Image.Resampling.LANCZOS)
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=THUMB_JPEG_QUALITY, subsampling=THUMB_JPEG_SUBSAMPLING)
    return buffer.getvalue()


def _first_dir(rows: list[ResultRow], attr: str) -> Path | None:
    for row in rows:
        path = getattr(row, attr)
        if path is not None and path.is_dir():
            return path
    return None


def images_by_stem(directory: Path | None) -> dict[str, Path]:
    """The images of a folder by file stem, whatever their extension: an outside method's .jpg or
    .webp stands beside the evaluation's .png of the same name (evaluation matches them so too)."""
    if directory is None or not directory.is_dir():
        return {}
    found: dict[str, Path] = {}
    for path in sorted(directory.iterdir()):
        if is_image_name(path) and path.is_file():
            found.setdefault(path.stem, path)
    return found


def build_grid(rows: list[ResultRow], dataset: str, out: Path, n: int, thumb: int) -> Grid | None:
    """input | each approach | ground truth for the first ``n`` eval images (sorted by name)."""
    approaches = [r for r in rows if not r.reference]
    gt_dir = _first_dir(rows, "gt_dir")
    if n <= 0 or gt_dir is None:
        return None
    gt_images = images_by_stem(gt_dir)
    names = sorted(gt_images)[:n]
    if not names:
        return None
    sources = [("input", _first_dir(rows, "input_dir"))] + [
        (r.label or r.approach, r.pred_dir) for r in approaches
    ]
    sources.append(("ground truth", gt_dir))
    folders = [images_by_stem(directory) for _, directory in sources]
    cells = []
    for name in names:
        line = []
        for j, ((header, _), images) in enumerate(zip(sources, folders)):
            path = images.get(name)
            if path is None:
                line.append(None)
                continue
            data = _thumbnail(path, thumb)
            file = Path(IMAGES_DIR) / safe(dataset) / f"{j:02d}_{safe(header)}" / f"{name}{THUMB_SUFFIX}"
            (out / file).parent.mkdir(parents=True, exist_ok=True)
            (out / file).write_bytes(data)
            uri = "data:image/jpeg;base64," + base64.b64encode(data).decode("ascii")
            line.append(Thumb(file.as_posix(), uri, f"{header}: {gt_images[name].name}"))
        cells.append(line)
    return Grid([gt_images[s].name for s in names], [h for h, _ in sources], cells, thumb)


# ---------------------------------------------------------------- stale outputs
def earlier_thumbnails(out: Path) -> list[Path]:
    """The files in ``out`` named as this module names its thumbnails."""
    thumbs = out.glob(f"{IMAGES_DIR}/*/*/*{THUMB_SUFFIX}")
    return [p for p in thumbs if _is_thumb_column_dir(p.parent) and no_link_below(p, out)]


def no_link_below(path: Path, out: Path) -> bool:
    """No symbolic link between ``out`` and ``path``: glob follows them, and what they point at (a
    folder of someone's images linked in) was never the report's to delete."""
    return path.resolve() == out.resolve() / path.relative_to(out)


def remove_empty_thumbnail_dirs(out: Path) -> None:
    for column_dir in out.glob(f"{IMAGES_DIR}/*/*/"):
        if _is_thumb_column_dir(column_dir) and _is_empty_own_dir(column_dir, out):
            column_dir.rmdir()
    for dataset_dir in out.glob(f"{IMAGES_DIR}/*/"):
        if safe(dataset_dir.name) == dataset_dir.name and _is_empty_own_dir(dataset_dir, out):
            dataset_dir.rmdir()


def _is_empty_own_dir(path: Path, out: Path) -> bool:
    return no_link_below(path, out) and not any(path.iterdir())


def _is_thumb_column_dir(path: Path) -> bool:
    """IMAGES_DIR/<dataset>/<NN>_<column>, named as build_grid names it."""
    return THUMB_COLUMN_DIR.fullmatch(path.name) is not None and safe(path.parent.name) == path.parent.name
