"""Finding image files: recursive, sorted, deterministic; a cached list for large trees; and a
stable train / evaluation split by a hash of each file's relative path (adding files never moves
an existing file from one side to the other)."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from gan_colorize.rundir import atomic_write_text

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif")


def is_image_name(path: str | Path) -> bool:
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


def _walk(root: Path) -> list[Path]:
    found = []
    for folder, dirs, files in os.walk(root, followlinks=True):
        dirs[:] = [d for d in dirs if not d.startswith(".")]  # .git, .cache, ...
        found.extend(Path(folder) / f for f in files if is_image_name(f) and not f.startswith("."))
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())


def _signature(root: Path) -> str:
    """Changes when a folder in the tree gains, loses or renames an entry (folder mtimes)."""
    h = hashlib.sha256()
    for folder, dirs, _ in os.walk(root, followlinks=True):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        h.update(f"{folder}:{os.stat(folder).st_mtime_ns}\n".encode())
    return h.hexdigest()


def list_image_files(root: str | Path, cache: str | Path | None = None) -> list[Path]:
    """All image files under ``root`` (a single image file gives itself), sorted by relative path.

    ``cache``: a JSON file holding the list, reused while no folder of the tree has changed.
    """
    root = Path(root)
    if root.is_file():
        return [root] if is_image_name(root) else []
    if not root.is_dir():
        raise FileNotFoundError(f"image folder {root} does not exist")
    if cache is None:
        return _walk(root)
    cache = Path(cache)
    signature = _signature(root)
    if cache.is_file():
        try:
            data = json.loads(cache.read_text())
            if data.get("root") == str(root.resolve()) and data.get("signature") == signature:
                return [root / rel for rel in data["files"]]
        except (json.JSONDecodeError, KeyError, TypeError):
            pass  # a damaged cache is rebuilt
    files = _walk(root)
    payload = {
        "root": str(root.resolve()),
        "signature": signature,
        "files": [f.relative_to(root).as_posix() for f in files],
    }
    atomic_write_text(cache, json.dumps(payload))
    return files


def in_eval_split(relative_path: str, fraction: float) -> bool:
    """True for about ``fraction`` of paths, chosen by a hash of the path (stable forever)."""
    digest = hashlib.sha1(relative_path.encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < fraction


def split_files(root: Path, files: list[Path], fraction: float) -> tuple[list[Path], list[Path]]:
    """(train, eval) by :func:`in_eval_split` on paths relative to ``root``."""
    train, evaluation = [], []
    for f in files:
        rel = f.relative_to(root).as_posix() if root.is_dir() else f.name
        (evaluation if in_eval_split(rel, fraction) else train).append(f)
    return train, evaluation
