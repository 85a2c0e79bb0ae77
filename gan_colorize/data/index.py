"""The index of a dataset: which files are usable colour images, which are greyscale, which are
unreadable, built once by a pool of processes and kept in a cache that later runs (and the other
ranks of this run) read instead of screening again.

``data.screening`` chooses how much is read per file:

- ``headers`` (the default): the file's header only (size and mode, about 0.1 ms a JPEG; a million
  files in minutes). Files whose mode holds no colour (``L``, ``I;16``, ...) are greyscale; an RGB
  file that only looks grey, or one damaged past its header, is found when loaded and replaced by
  another one chosen from the step (``ImageFolderDataset.__getitem__``), so resume stays exact.
- ``full``: every file is decoded once (small: JPEG DCT scaling) and its colour measured
  (:func:`~gan_colorize.data.decode.chroma_level`), 9-17 ms a file: hours for ImageNet on one
  core, but the set of training images is known before step 1.

The cache (``data.file_list_cache``, in ``data.index_dir``): one JSON file per source, keyed by the
source's absolute path (``gan_colorize.data.files.default_cache_path``), written atomically. A
file's entry is trusted while its size, mtime, inode and ctime are unchanged (ctime cannot be set
back, as ``rsync -t`` sets an mtime back). What a full decode learnt (the chroma) is kept with what
the header said, so switching modes re-reads nothing it already knows; the threshold is applied
afterwards, so changing ``data.min_chroma`` needs no new decode.
"""

from __future__ import annotations

import concurrent.futures
import json
import logging
import multiprocessing
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from gan_colorize.config import SCREENING_MODES
from gan_colorize.data.decode import GREY_MODES, BadImageError, probe_file, probe_header
from gan_colorize.data.files import save_cache

log = logging.getLogger(__name__)

# Below this many files to read, a pool costs more to start than it saves.
POOL_MIN_FILES = 64


class DatasetError(ValueError):
    """A dataset that cannot be used (too many unreadable files, no usable image)."""


@dataclass
class Screening:
    """What a scan of the files found: usable colour images, greyscale ones, unreadable ones."""

    usable: list[Path] = field(default_factory=list)
    greyscale: list[Path] = field(default_factory=list)
    skipped: list[tuple[Path, str]] = field(default_factory=list)
    mode: str = "full"  # headers: greyscale RGB files are among ``usable``, found when loaded

    @property
    def total(self) -> int:
        return len(self.usable) + len(self.greyscale) + len(self.skipped)


@dataclass
class FileFacts:
    """One file's entry in the index: its header (size, mode), its chroma once decoded, or why it
    cannot be read."""

    width: int = 0
    height: int = 0
    mode: str = ""
    chroma: float | None = None  # None: not decoded (headers mode)
    reason: str | None = None  # set: unreadable

    def knows(self, mode: str) -> bool:
        return self.reason is not None or mode == "headers" or self.chroma is not None


class IndexCache:
    """The index of a source kept in a JSON file: ``{abspath: [size, mtime_ns, inode, ctime_ns,
    width, height, mode, chroma, reason]}``."""

    VERSION = 3

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.entries: dict[str, list] = {}
        self.changed = False
        try:
            data = json.loads(self.path.read_text())
            if data.get("version") == self.VERSION and isinstance(data.get("files"), dict):
                self.entries = data["files"]
        except (OSError, ValueError, AttributeError):
            pass  # missing or damaged: rebuilt

    @staticmethod
    def signature(path: Path) -> list[int] | None:
        try:
            stat = path.stat()
        except OSError:
            return None
        return [stat.st_size, stat.st_mtime_ns, stat.st_ino, stat.st_ctime_ns]

    def get(self, path: Path, signature: list[int] | None) -> FileFacts | None:
        """What is known of ``path`` (None: nothing, or its signature changed)."""
        entry = self.entries.get(os.path.abspath(path))
        if entry is None or signature is None or entry[:4] != signature or len(entry) != 9:
            return None
        return FileFacts(*entry[4:])

    def put(self, path: Path, signature: list[int] | None, facts: FileFacts) -> None:
        """``signature``: taken BEFORE the file was read, so a change during the read is seen."""
        if signature is not None:  # None: gone, nothing to remember
            entry = [facts.width, facts.height, facts.mode, facts.chroma, facts.reason]
            self.entries[os.path.abspath(path)] = [*signature, *entry]
            self.changed = True

    def save(self) -> None:
        if self.changed:
            save_cache(self.path, {"version": self.VERSION, "files": self.entries})
            self.changed = False


def read_facts(path: str, mode: str) -> FileFacts:
    """One file, read as ``mode`` asks (the pool's task: a top-level function, picklable)."""
    try:
        if mode == "full":
            probe = probe_file(path)
            return FileFacts(*probe.size, probe.mode, probe.chroma)
        header = probe_header(path)
        return FileFacts(*header.size, header.mode)
    except BadImageError as exc:
        return FileFacts(reason=exc.reason)


def _one_thread_per_worker() -> None:
    # a forked worker must not start torch's thread pool (inherited in a broken state, and
    # N workers x M threads on M cores only fight); the chroma of a preview is tiny work
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(1)


def pool_size(workers: int) -> int:
    """``data.index_workers``: 0 means one per CPU this process may run on."""
    if workers > 0:
        return workers
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def read_all(paths: list[str], mode: str, workers: int) -> list[FileFacts]:
    """:func:`read_facts` of every path, in order, by a pool of ``workers`` processes (forked:
    no re-import per worker) or in this process when few."""
    workers = min(pool_size(workers), max(1, len(paths) // POOL_MIN_FILES))
    if workers <= 1:
        return [read_facts(p, mode) for p in paths]
    chunk = max(1, min(512, len(paths) // (8 * workers)))
    forking = "fork" in multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if forking else None)
    with concurrent.futures.ProcessPoolExecutor(workers, context, initializer=_one_thread_per_worker) as pool:
        return list(pool.map(read_facts, paths, [mode] * len(paths), chunksize=chunk))


def require_usable(screening: Screening, where: str) -> None:
    if not screening.usable:
        raise DatasetError(
            f"{where}: no usable colour image among {screening.total} files "
            f"({len(screening.greyscale)} greyscale, {len(screening.skipped)} unreadable)"
        )


def screen(
    files: list[Path],
    min_chroma: float,
    max_bad_fraction: float,
    where: str,
    cache: str | Path | None = None,
    mode: str = "full",
    workers: int = 0,
) -> Screening:
    """Sort ``files`` into usable, greyscale and unreadable by ``mode`` (module docstring), with
    ``workers`` processes (0: one per CPU) for the files the ``cache`` file does not know.

    Unreadable files are skipped with a warning naming them; greyscale images are left out (Zhang
    et al. 2016 removed ImageNet's greyscale images too: a greyscale target teaches the model to
    give no colour); more than ``max_bad_fraction`` unreadable stops here, before any training.
    """
    if mode not in SCREENING_MODES:
        raise ValueError(f"screening mode {mode!r} is not one of {SCREENING_MODES}")
    facts = _facts(files, mode, cache, workers, where)
    result = Screening(mode=mode)
    for path, fact in zip(files, facts):
        if fact.reason is not None:
            log.warning("skipping unreadable image %s: %s", path, fact.reason)
            result.skipped.append((path, fact.reason))
        elif _is_greyscale(fact, mode, min_chroma):
            result.greyscale.append(path)
        else:
            result.usable.append(path)
    _report(result, where, max_bad_fraction)
    return result


def _is_greyscale(fact: FileFacts, mode: str, min_chroma: float) -> bool:
    if mode == "headers":  # the header alone decides, so that the index never depends on history
        return fact.mode in GREY_MODES
    return fact.chroma < min_chroma


def _facts(files: list[Path], mode: str, cache, workers: int, where: str) -> list[FileFacts]:
    memo = IndexCache(cache) if cache is not None else None
    signatures = [IndexCache.signature(Path(p)) if memo else None for p in files]
    known = [memo.get(Path(p), s) if memo else None for p, s in zip(files, signatures)]
    todo = [i for i, k in enumerate(known) if k is None or not k.knows(mode)]
    if todo:
        started = time.perf_counter()
        log.info("%s: reading %d of %d files (%s) with %d processes", where, len(todo), len(files), mode,
                 min(pool_size(workers), max(1, len(todo) // POOL_MIN_FILES)))  # fmt: skip
        for i, fact in zip(todo, read_all([str(files[i]) for i in todo], mode, workers)):
            known[i] = fact
            if memo is not None:
                memo.put(Path(files[i]), signatures[i], fact)
        log.info("%s: index built in %.1f s", where, time.perf_counter() - started)
    if memo is not None:
        memo.save()
    return known


def _report(result: Screening, where: str, max_bad_fraction: float) -> None:
    if result.skipped:
        log.warning("%s: %d of %d files unreadable", where, len(result.skipped), result.total)
    if result.greyscale:
        log.info("%s: %d greyscale images left out", where, len(result.greyscale))
    if result.total and len(result.skipped) / result.total > max_bad_fraction:
        first = "; ".join(f"{p}: {r}" for p, r in result.skipped[:5])
        more = f" (and {len(result.skipped) - 5} more)" if len(result.skipped) > 5 else ""
        raise DatasetError(
            f"{where}: {len(result.skipped)} of {result.total} files are unreadable, more than "
            f"data.max_bad_fraction={max_bad_fraction}: {first}{more}"
        )
