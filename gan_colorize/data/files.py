"""Finding image files: recursive, sorted, deterministic; a cached list for large trees; and a
stable train / evaluation split by a hash of each file's relative path (adding files never moves
an existing file from one side to the other)."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

from gan_colorize.rundir import absent, atomic_write_text

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif")
CACHE_VERSION = 1

log = logging.getLogger(__name__)


def is_image_name(path: str | Path) -> bool:
    """An image by its extension (case-insensitive); hidden files (``.name``) are not."""
    path = Path(path)
    return path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".")


def relative_name(path: Path, root: Path) -> str:
    """``path`` relative to ``root`` with ``/`` separators (the file's name when ``root`` is a file)."""
    if not root.is_dir():
        return path.name
    try:
        return path.relative_to(root).as_posix()
    except ValueError:  # a file list may name files outside its folder ("../x.jpg", "/data/x.jpg")
        return Path(os.path.relpath(path, root)).as_posix()


class UnlistableFolderError(FileNotFoundError):
    """A folder of the tree could not be listed: its files would silently be missing. (A
    FileNotFoundError, as a missing root is, so that every command reports it the same way.)"""


def _walk(root: Path) -> tuple[list[Path], dict[str, int]]:
    """(image files sorted by relative path, {relative folder: mtime_ns} of every folder visited).

    Folders are visited in name order, real folders before symbolic links to folders, and each
    folder once: a link back up the tree does not loop, and a link that aliases a real folder
    never decides the files' paths (which the evaluation split hashes). Hidden folders (``.git``,
    ``.cache``, ...) are not entered. A folder that cannot be listed is an error, not a gap.
    """
    files: list[Path] = []
    folders: dict[str, int] = {}
    seen: set[tuple[int, int]] = set()
    real, links = [root], []  # stacks: every real folder is visited before any link
    while real or links:
        folder = real.pop() if real else links.pop()
        try:
            # stat before listing: an entry added in between then changes the mtime after the one
            # recorded, and the cached list is rebuilt next time rather than trusted without it
            stat = os.stat(folder)
            if (stat.st_dev, stat.st_ino) in seen:
                continue
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            raise UnlistableFolderError(f"cannot list folder {folder}: {exc.strerror or exc}") from None
        seen.add((stat.st_dev, stat.st_ino))
        folders[folder.relative_to(root).as_posix()] = stat.st_mtime_ns
        subfolders = [e for e in entries if not e.name.startswith(".") and _is_folder(e)]
        real.extend(Path(e.path) for e in reversed(subfolders) if not e.is_symlink())
        links.extend(Path(e.path) for e in reversed(subfolders) if e.is_symlink())
        files.extend(Path(e.path) for e in entries if is_image_name(e.name) and _is_readable_kind(e))
    files.sort(key=lambda p: p.relative_to(root).as_posix())
    return files, folders


def _is_folder(entry: os.DirEntry) -> bool:
    """A folder to descend into; an entry whose type cannot even be read (a link into /proc that
    may not be followed) is not one, and is left out with a warning rather than ending the walk."""
    try:
        return entry.is_dir()
    except OSError as exc:
        log.warning("skipping %s: %s", entry.path, exc.strerror or exc)
        return False


def _is_readable_kind(entry: os.DirEntry) -> bool:
    """Regular files and dangling links (which screening reports as unreadable) are listed; a
    FIFO, socket or device with an image name is not: opening it would block or read forever."""
    if entry.is_file():
        return True
    if entry.is_dir():  # a folder named like an image
        return False
    try:
        os.stat(entry.path)
    except OSError:
        return True  # a dangling link: listed, so that screening names it
    log.warning("skipping %s: not a regular file", entry.path)
    return False


def _cache_still_valid(root: Path, folders: dict[str, int]) -> bool:
    """A folder's mtime changes whenever an entry is added, removed or renamed in it (a new
    subfolder changes its parent's), so stat-ing the folders of the cached walk, without listing
    them, tells whether the file list is still right. Editing a file in place keeps the list."""
    try:
        return all(os.stat(root / rel).st_mtime_ns == mtime for rel, mtime in folders.items())
    except OSError:
        return False


def _read_cache(cache: Path, root: Path) -> list[Path] | None:
    try:
        data = json.loads(cache.read_text())
        if data["version"] != CACHE_VERSION or data["root"] != str(root.resolve()):
            return None
        if not _cache_still_valid(root, data["folders"]):
            return None
        return [root / rel for rel in data["files"]]
    except (OSError, json.JSONDecodeError, KeyError, TypeError, AttributeError):
        return None  # missing or damaged: rebuilt


def list_image_files(root: str | Path, cache: str | Path | None = None) -> list[Path]:
    """All image files under ``root`` (recursive; a single image file gives itself), sorted by
    relative path so that every process and every run sees the same order.

    ``cache``: a JSON file holding the list together with the mtime of every folder walked; it is
    reused while none of them changed (see :func:`_cache_still_valid`), and rewritten otherwise.
    """
    root = Path(root)
    if root.is_file():
        return [root] if is_image_name(root) else []
    if not root.is_dir():
        raise FileNotFoundError(missing_folder_message(root))
    if cache is not None:
        cached = _read_cache(Path(cache), root)
        if cached is not None:
            return cached
    files, folders = _walk(root)
    if cache is not None:
        payload = {
            "version": CACHE_VERSION,
            "root": str(root.resolve()),
            "folders": folders,
            "files": [f.relative_to(root).as_posix() for f in files],
        }
        save_cache(Path(cache), payload)
    return files


# where the shipped configs and eval sets look for the user's photos (README, "Data")
SHIPPED_DATA = "data/train"


def missing_folder_message(folder: str | Path) -> str:
    """What a missing image folder means, where it was looked for and what to do about it."""
    path = Path(folder).expanduser()
    where = ""
    if not path.is_absolute():  # the repository's convention, stated where it bites
        where = (
            f" (looked for in {Path.cwd()}: relative paths in eval sets and configs are read from "
            "the current directory; run from the repository root or give an absolute path)"
        )
    todo = "put the images there or name another folder"
    if path == Path(SHIPPED_DATA):
        todo = (
            f"the shipped configs and eval sets read your photos from {SHIPPED_DATA}: put them there "
            "(any folder of images, searched recursively) or give another folder with "
            "--set data.train=PATH (README, Data); configs/tiny/ and builtin:skimage train on "
            "scikit-image's photos"
        )
    return f"image folder {folder} {absent(path, want='folder')}{where}; {todo}"


def save_cache(path: Path, payload: dict) -> None:
    """Write a cache file; one that cannot be written (a folder in its place, a read-only disk) is a
    warning and the run goes on without it: a cache only saves time."""
    try:
        atomic_write_text(path, json.dumps(payload))
    except OSError as exc:
        log.warning("cache %s cannot be written (%s); going on without it", path, exc.strerror or exc)


def default_cache_path(root: str | Path, kind: str = "filelists", base: str | Path | None = None) -> Path:
    """Where ``data.file_list_cache`` keeps what it knows of a source (``kind``: ``filelists`` or
    ``index``): ``<base>/<kind>/<hash of the absolute path of the folder or list>.json``, ``base``
    being ``data.index_dir``, by default ``$XDG_CACHE_HOME`` (or ``~/.cache``) ``/gan_colorize``.
    Outside the tree on purpose: writing inside it would change the folder mtimes that validate
    the list."""
    if base is None:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "gan_colorize"
    key = hashlib.sha1(str(Path(root).resolve()).encode()).hexdigest()[:16]
    return Path(base).expanduser() / kind / f"{key}.json"


# ---------------------------------------------------------------- the evaluation split
def in_eval_split(relative_path: str, fraction: float) -> bool:
    """True for about ``fraction`` of paths, chosen by a hash of the relative path alone, so a
    file's side never changes when other files are added or removed."""
    digest = hashlib.sha1(relative_path.encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < fraction


def split_files(root: str | Path, files: list[Path], fraction: float) -> tuple[list[Path], list[Path]]:
    """(train, eval) by :func:`in_eval_split` on paths relative to ``root``; order is kept."""
    root = Path(root)
    train: list[Path] = []
    evaluation: list[Path] = []
    for f in files:
        (evaluation if in_eval_split(relative_name(f, root), fraction) else train).append(f)
    return train, evaluation
