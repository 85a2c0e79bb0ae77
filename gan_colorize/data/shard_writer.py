"""``gan-colorize data shard SRC OUT``: WebDataset tar shards from a folder or a file list.

Every file is decoded once (by a pool of processes) so that no unreadable image reaches a shard;
one whose longer side is above ``max_side`` is resized (bicubic, antialiased) to that side and
re-encoded as JPEG (quality :data:`JPEG_QUALITY`, upright, alpha composited on white); the others
keep their own bytes (JPEG, PNG, WebP; other formats become PNG). ``OUT/index.json`` lists each
shard's sample count (what the training stream needs to skip shards on resume) and what was
skipped and why.
"""

from __future__ import annotations

import concurrent.futures
import io
import json
import multiprocessing
import re
import tarfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from gan_colorize.data.decode import BadImageError, ImageReader, to_rgb_uint8
from gan_colorize.data.files import relative_name
from gan_colorize.data.index import pool_size
from gan_colorize.data.shards import INDEX_NAME, INDEX_VERSION
from gan_colorize.rundir import atomic_write_text

JPEG_QUALITY = 95  # re-encoded members: far below the crop's own resampling error
KEPT_FORMATS = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp"}  # bytes kept as they are
SHARD_PATTERN = "shard-{:06d}.tar"


@dataclass
class Member:
    """One sample ready for a shard (``data``), or why its file was skipped (``reason``)."""

    source: str
    key: str = ""
    ext: str = ""
    data: bytes = b""
    reason: str | None = None
    resized: bool = False


def sample_key(relative: str) -> str:
    """A WebDataset key from a relative path: extension dropped, other dots (which would start
    the member's extension) made ``_``."""
    stem = relative.rsplit(".", 1)[0]
    return re.sub(r"[.\s]", "_", stem)


def prepare(path: str, relative: str, max_side: int | None) -> Member:
    """The member for one file (a pool task: top-level, picklable)."""
    member = Member(relative, sample_key(relative))
    try:
        raw = Path(path).read_bytes()
        with ImageReader(path, raw) as reader:
            fmt = reader.format
            img = reader.decode()  # the whole file: a truncated one fails here, not in training
        too_big = max_side is not None and max(img.size) > max_side
        if not too_big and fmt in KEPT_FORMATS:
            member.ext, member.data = KEPT_FORMATS[fmt], raw
            return member
        rgb = Image.fromarray(to_rgb_uint8(img, path))
        if too_big:
            scale = max_side / max(rgb.size)
            size = (max(1, round(rgb.width * scale)), max(1, round(rgb.height * scale)))
            rgb = rgb.resize(size, Image.Resampling.BICUBIC)
            member.resized = True
        out = io.BytesIO()
        if too_big:
            rgb.save(out, "JPEG", quality=JPEG_QUALITY)
            member.ext = "jpg"
        else:
            rgb.save(out, "PNG")
            member.ext = "png"
        member.data = out.getvalue()
    except BadImageError as exc:
        member.reason = exc.reason
    except OSError as exc:
        member.reason = f"cannot read ({exc.strerror or exc})"
    return member


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), 0o644, 0  # reproducible: no owner, no date
    tar.addfile(info, io.BytesIO(data))


class ShardWriter:
    """Tar shards of ``shard_size`` samples in ``out``, and their index."""

    def __init__(self, out: Path, shard_size: int):
        self.out, self.shard_size = out, shard_size
        self.shards: list[dict] = []
        self.keys: set[str] = set()
        self._tar: tarfile.TarFile | None = None

    def add(self, member: Member) -> None:
        if self._tar is None or self.shards[-1]["samples"] == self.shard_size:
            self._next_shard()
        key, n = member.key, 1
        while key in self.keys:  # x.jpg and x.png: both kept
            n += 1
            key = f"{member.key}_{n}"
        self.keys.add(key)
        _add(self._tar, f"{key}.{member.ext}", member.data)
        self.shards[-1]["samples"] += 1

    def _next_shard(self) -> None:
        self.close()
        name = SHARD_PATTERN.format(len(self.shards))
        self._tar = tarfile.open(self.out / name, "w")  # noqa: SIM115 (closed by close())
        self.shards.append({"name": name, "samples": 0})

    def close(self) -> None:
        if self._tar is not None:
            self._tar.close()
            self._tar = None

    def pattern(self) -> str:
        last = len(self.shards) - 1
        if last <= 0:
            return str(self.out / SHARD_PATTERN.format(0))
        return str(self.out / f"shard-{{000000..{last:06d}}}.tar")


def _members(files: list[Path], root: Path, max_side: int | None, workers: int):
    tasks = [(str(f), relative_name(f, root), max_side) for f in files]
    workers = min(pool_size(workers), max(1, len(tasks) // 16))
    if workers <= 1:
        yield from (prepare(*t) for t in tasks)
        return
    forking = "fork" in multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if forking else None)
    with concurrent.futures.ProcessPoolExecutor(workers, context) as pool:
        yield from pool.map(prepare, *zip(*tasks), chunksize=16)


def write_shards(
    files: list[Path], root: Path, out: Path, shard_size: int, max_side: int | None, workers: int, progress
) -> dict:
    """Write the shards and ``OUT/index.json``; returns the index (with the summary).
    ``progress(advance)`` is called once per file."""
    out.mkdir(parents=True, exist_ok=True)
    writer = ShardWriter(out, shard_size)
    skipped, resized = [], 0
    try:
        for member in _members(files, root, max_side, workers):
            progress(1)
            if member.reason is not None:
                skipped.append({"file": member.source, "reason": member.reason})
                continue
            resized += member.resized
            writer.add(member)
    finally:
        writer.close()
    index = {
        "version": INDEX_VERSION,
        "source": str(root),
        "max_side": max_side,
        "pattern": writer.pattern(),
        "samples": sum(s["samples"] for s in writer.shards),
        "resized": resized,
        "shards": writer.shards,
        "skipped": skipped,
        "skipped_by_reason": dict(Counter(_reason_kind(s["reason"]) for s in skipped)),
    }
    atomic_write_text(out / INDEX_NAME, json.dumps(index, indent=1))
    return index


def _reason_kind(reason: str) -> str:
    """``truncated file (...)`` -> ``truncated file``: the summary counts kinds, not messages."""
    return reason.split(" (", 1)[0]
