"""Training from WebDataset tar shards: local files with brace patterns
(``/data/in/train-{000000..001023}.tar``) or ``pipe:`` URLs (``pipe:aws s3 cp
s3://bucket/train-{000000..001023}.tar -``), read as streams, never copied.

A sample is the group of consecutive tar members sharing a key (``n01440764/x.jpg`` and
``n01440764/x.json``: key ``n01440764/x``); only its image member (``jpg``, ``jpeg``, ``png``,
``webp``) is read, as raw bytes decoded by :mod:`gan_colorize.data.decode`. Nothing else is ever
decoded: webdataset's own decoders can unpickle ``.pyd``/``.pth`` members, so they are not used.

The stream (:meth:`ShardDataset.batches`) is a pure function of (seed, global batch number, number
of processes, number of loader workers):

- every (rank, worker) pair is a *slot*; slot ``s`` of ``S = world_size * workers`` reads, in epoch
  ``e``, the shards ``perm(seed, e)[s::S]`` (when there are fewer shards than slots, every slot reads
  every shard and keeps the samples ``s, s + S, ...`` of the epoch's sample order). So the slots of
  one epoch read disjoint samples whose union is the epoch;
- a slot's batch ``j`` is its samples ``j * B .. (j + 1) * B``; the process's loader worker ``w``
  serves global batches ``start + w, start + w + workers, ...``;
- a sample that is unreadable or greyscale is replaced by the next usable sample of the same shard
  (wrapping to its start), cropped with the position's own random draw: positions never shift.

Resume is therefore exact when the number of processes and of loader workers is unchanged: the
stream skips whole shards by their sample counts (the shard index) without reading them, and reads
without decoding up to the position inside the current shard. With other numbers, the run goes on
from the same global batch in the new layout's stream: each slot skips the same number of its own
samples, so an epoch in progress may see some samples twice and miss others; later epochs are whole.
"""

from __future__ import annotations

import json
import logging
import re
import tarfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from braceexpand import braceexpand
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from gan_colorize.config import DataConfig
from gan_colorize.data.dataset import GreyscaleImageError, TrainCrop, _check_crop_args, _log_replaced
from gan_colorize.data.decode import BadImageError, ImageReader
from gan_colorize.data.index import DatasetError

log = logging.getLogger(__name__)

IMAGE_MEMBERS = ("jpg", "jpeg", "png", "webp")  # the only members ever decoded
INDEX_NAME = "index.json"  # written by `gan-colorize data shard` next to its shards
INDEX_VERSION = 1
_SHARD_NAME = re.compile(r"([^/\s]+\.tar)\b")


def is_shard_spec(spec: str) -> bool:
    return spec.startswith("pipe:") or str(spec).endswith(".tar") or ".tar " in spec


def shard_urls(spec: str) -> list[str]:
    """A brace pattern expanded (``x-{000..002}.tar``: three URLs); ``::`` joins several."""
    return [url for part in spec.split("::") for url in braceexpand(part.strip())]


def shard_name(url: str) -> str:
    """The shard's file name (``train-000001.tar``) in a path or a ``pipe:`` command."""
    found = _SHARD_NAME.findall(url)
    return found[-1] if found else url


def split_member(name: str) -> tuple[str, str]:
    """(key, extension) as WebDataset groups members: the extension starts at the first dot of
    the file name (``a/b.c.jpg``: key ``a/b``, extension ``c.jpg``)."""
    folder, _, base = name.rpartition("/")
    stem, dot, ext = base.partition(".")
    return (f"{folder}/{stem}" if folder else stem), ext.lower() if dot else ""


# ---------------------------------------------------------------- reading a shard
def _open(url: str):
    from webdataset import gopen  # pipe:, http(s):, local paths; a read error names the command

    return gopen(url, "rb")


def shard_samples(url: str) -> Iterator[tuple[str, str | None, bytes | None]]:
    """(key, image member name, its bytes) of each sample in order; member name None: the sample
    has no image member. A damaged tar stream raises ``tarfile.TarError`` or ``OSError``."""
    stream = _open(url)
    try:
        key, image = None, None
        with tarfile.open(fileobj=stream, mode="r|*") as tar:
            for member in tar:
                if not member.isreg():
                    continue
                k, ext = split_member(member.name)
                if k != key:
                    if key is not None:
                        yield key, *(image or (None, None))
                    key, image = k, None
                if ext in IMAGE_MEMBERS and image is None:
                    image = (member.name, tar.extractfile(member).read())
                tar.members = []  # a streamed tar keeps every header otherwise
        if key is not None:
            yield key, *(image or (None, None))
    finally:
        stream.close()


def count_samples(url: str) -> int:
    """Samples in a shard, from its headers (a local tar is seeked through, not read)."""
    if Path(url).is_file():
        with tarfile.open(url) as tar:
            keys = [split_member(m.name)[0] for m in tar.getmembers() if m.isreg()]
        return sum(1 for i, k in enumerate(keys) if i == 0 or k != keys[i - 1])
    return sum(1 for _ in shard_samples(url))


def read_shard_index(path: str | Path) -> dict[str, int]:
    """{shard file name: samples} from an index written by ``gan-colorize data shard``."""
    data = json.loads(Path(path).read_text())
    if data.get("version") != INDEX_VERSION:
        raise DatasetError(f"{path}: not a shard index of version {INDEX_VERSION}")
    return {s["name"]: int(s["samples"]) for s in data["shards"]}


def shard_counts(urls: list[str], index: str | Path | None) -> list[int]:
    """Samples per shard: from ``index`` (``data.shard_index``), else from ``index.json`` next to
    local shards, else counted from the local shards' headers. ``pipe:`` shards need an index."""
    if index is None and Path(urls[0]).is_file() and (Path(urls[0]).parent / INDEX_NAME).is_file():
        index = Path(urls[0]).parent / INDEX_NAME
    if index is not None:
        counts = read_shard_index(index)
        missing = [shard_name(u) for u in urls if shard_name(u) not in counts]
        if missing:
            raise DatasetError(f"{index}: no sample count for {len(missing)} shards, e.g. {missing[0]}")
        return [counts[shard_name(u)] for u in urls]
    if not all(Path(u).is_file() for u in urls):
        absent = next(u for u in urls if not Path(u).is_file())
        raise DatasetError(
            f"{absent}: not a local shard; give data.shard_index (the {INDEX_NAME} that "
            "`gan-colorize data shard` wrote) so that the stream knows each shard's sample count"
        )
    return [count_samples(u) for u in urls]


# ---------------------------------------------------------------- the dataset
class ShardDataset:
    """Training crops streamed from shards; ``len()`` is the number of samples (one epoch).

    Not indexable: :meth:`batches` is the stream (see the module docstring), which
    ``gan_colorize.training.stream.train_batches`` returns for it.
    """

    def __init__(
        self,
        spec: str,
        size: int,
        crop: str = DataConfig.crop,
        scale=(0.35, 1.0),  # DataConfig.scale's default
        hflip: bool = DataConfig.hflip,
        seed: int = 0,
        min_chroma: float = DataConfig.min_chroma,
        index: str | Path | None = None,
    ):
        self.spec, self.size, self.seed = spec, size, seed
        self.urls = shard_urls(spec)
        self.counts = shard_counts(self.urls, index)
        if not sum(self.counts):
            raise DatasetError(f"{spec}: the shards hold no sample")
        self.cropper = TrainCrop(size, crop, _check_crop_args(size, crop, scale), hflip, min_chroma)
        self._warned: set[tuple[str, str]] = set()

    def __len__(self) -> int:
        return sum(self.counts)

    def __getitem__(self, key):
        raise TypeError(
            "shards are read as a stream, not by index: take crops from "
            "gan_colorize.training.stream.train_batches(dataset, ...)"
        )

    # ---- one slot's plan: which positions of which shards, epoch by epoch
    def slot_plan(self, epoch: int, slot: int, slots: int) -> list[tuple[int, range]]:
        """[(shard number, positions)] that ``slot`` of ``slots`` reads in ``epoch``, in order."""
        from gan_colorize.training.stream import PERMUTATION_SALT  # as the map-style stream's

        order = np.random.default_rng([self.seed, epoch, PERMUTATION_SALT]).permutation(len(self.urls))
        if len(order) >= slots:
            return [(int(k), range(self.counts[k])) for k in order[slot::slots]]
        plan, offset = [], 0  # fewer shards than slots: every slot reads all, keeps every S-th sample
        for k in order:
            plan.append((int(k), range((slot - offset) % slots, self.counts[k], slots)))
            offset += self.counts[k]
        return plan

    def slot_samples(self, slot: int, slots: int, skip: int) -> Iterator[torch.Tensor]:
        """This slot's crops forever, after its first ``skip`` samples (counted, not read)."""
        epoch = 0
        while True:
            plan = self.slot_plan(epoch, slot, slots)
            length = sum(len(r) for _, r in plan)
            if skip >= length and length:
                skip -= length
                epoch += 1
                continue
            for shard, positions in plan:
                if skip >= len(positions):
                    skip -= len(positions)
                    continue
                yield from self.shard_crops(shard, epoch, positions[skip:])
                skip = 0
            epoch += 1

    # ---- one shard
    def _crop(self, url: str, name: str | None, data: bytes | None, key: str, rng) -> tuple:
        if name is None:
            return None, BadImageError(f"{url}:{key}", "sample has no jpg/png/webp member")
        path = f"{url}:{name}"

        return self.cropper.attempt(path, self._crop_bytes, path, data, rng)

    def _crop_bytes(self, path: str, data: bytes, rng) -> torch.Tensor:
        with ImageReader(path, data) as reader:
            return self.cropper(reader, rng)

    def _warn(self, url: str, member: str, problem: Exception) -> None:
        if (url, member) not in self._warned:
            self._warned.add((url, member))
            if isinstance(problem, GreyscaleImageError):
                _log_replaced(problem)
            else:
                log.warning(
                    "shard %s, member %s skipped, the next usable sample of the shard used instead: %s",
                    url, member, getattr(problem, "reason", problem),
                )  # fmt: skip

    def shard_crops(self, shard: int, epoch: int, positions: range) -> Iterator[torch.Tensor]:
        """The crops at ``positions`` of shard number ``shard`` (ascending), each from the sample
        there or, when it cannot be used, from the next usable one (wrapping to the start)."""
        url, wanted = self.urls[shard], positions
        if not len(wanted):
            return
        pending: list[int] = []  # positions waiting for a usable sample
        reached = 0
        try:
            for pos, (key, name, data) in enumerate(shard_samples(url)):
                reached = pos + 1
                if pos > wanted[-1] and not pending:
                    break
                targets = pending + ([pos] if pos in wanted else [])
                if not targets:
                    continue
                crops = self._crops_of(url, shard, epoch, key, name, data, targets)
                if crops is None:
                    pending = targets
                    continue
                pending = []
                yield from crops
        except (tarfile.TarError, OSError, EOFError) as exc:
            log.warning("shard %s unreadable after %d samples (%s): the rest is replaced", url, reached, exc)
        pending += [p for p in wanted if p >= reached]
        if pending:
            yield from self._wrap_around(shard, epoch, pending)

    def _crops_of(self, url, shard, epoch, key, name, data, targets) -> list[torch.Tensor] | None:
        crops = []
        for target in targets:
            rng = np.random.default_rng([self.seed, epoch, shard, target])
            crop, problem = self._crop(url, name, data, key, rng)
            if crop is None:
                self._warn(url, name or key, problem)
                return None
            crops.append(crop)
        return crops

    def _wrap_around(self, shard: int, epoch: int, pending: list[int]) -> Iterator[torch.Tensor]:
        url = self.urls[shard]
        try:
            for key, name, data in shard_samples(url):
                crops = self._crops_of(url, shard, epoch, key, name, data, pending)
                if crops is not None:
                    yield from crops
                    return
        except (tarfile.TarError, OSError, EOFError):
            pass
        raise DatasetError(f"shard {url}: no usable sample to stand in for {len(pending)} positions")

    # ---- the stream
    def batches(
        self, batch_size: int, rank: int, world_size: int, seed: int, start_batch: int, workers: int,
        pin_memory: bool,
    ) -> Iterator[torch.Tensor]:  # fmt: skip
        """This rank's uint8 (B, 3, S, S) batches forever, from global batch ``start_batch``."""
        if seed != self.seed:
            self.seed = seed  # one seed orders the shards and draws the crops
        stream = _SlotBatches(self, batch_size, rank, world_size, start_batch, workers)
        from gan_colorize.training.stream import loader_options

        # batch_size None: each worker yields whole batches of its own slot
        loader = DataLoader(stream, batch_size=None, **loader_options(workers, pin_memory))
        return iter(loader)


class _SlotBatches(IterableDataset):
    """The batches of one process: its loader worker ``w`` is slot ``(rank, (start + w) % W)``."""

    def __init__(self, shards: ShardDataset, batch_size, rank, world_size, start_batch, workers):
        self.shards, self.batch_size, self.start = shards, batch_size, start_batch
        self.rank, self.world_size, self.per_rank = rank, world_size, max(1, workers)
        if len(shards) < world_size * self.per_rank:
            raise DatasetError(
                f"{shards.spec}: {len(shards)} samples cannot feed {world_size} processes x "
                f"{self.per_rank} loader workers"
            )

    def __iter__(self):
        info = get_worker_info()
        local = (self.start + (info.id if info else 0)) % self.per_rank
        slot, slots = self.rank * self.per_rank + local, self.world_size * self.per_rank
        # batches of this slot before global batch `start`: those b < start with b % W == local
        done = max(0, -(-(self.start - local) // self.per_rank))
        samples = self.shards.slot_samples(slot, slots, done * self.batch_size)
        while True:
            yield torch.stack([next(samples) for _ in range(self.batch_size)])
