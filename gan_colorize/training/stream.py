"""The training sample stream: a pure function of (seed, global batch number).

Sample ``g`` of the run (counting over all processes) is item ``perm(seed, epoch)[g % N]`` of
epoch ``g // N``, and the dataset draws its crop and flip from ``(seed, epoch, index)``. So the
batch a process sees at optimizer step ``s`` depends on nothing but ``s``: resuming at step ``s``
restarts the stream there, with any number of loader workers, and gives the same batches as an
uninterrupted run. This is why the loader is not handed to ``accelerator.prepare``: its sharding
and ``skip_first_batches`` would have to re-read the skipped batches, while here each rank takes
its own slice of every global batch directly.

Datasets that stream (WebDataset shards, ``gan_colorize.data.shards``) bring their own stream,
with the resume semantics their module states; :func:`train_batches` is the one entry for both.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler

# mixed into every epoch's permutation seed; the shard stream (data/shards.py) shuffles its shards alike
PERMUTATION_SALT = 0x5EED


class StreamBatchSampler(Sampler):
    """Yields, forever, this rank's list of ``(epoch, index)`` keys for each global batch."""

    def __init__(
        self, dataset_len: int, batch_size: int, rank: int, world_size: int, seed: int, start_batch: int
    ):
        if dataset_len <= 0:
            raise ValueError("the training set is empty")
        self.n = dataset_len
        self.batch_size = batch_size  # per process
        self.rank = rank
        self.world_size = world_size
        self.seed = seed
        self.start_batch = start_batch
        self._perm_epoch = -1
        self._perm: np.ndarray | None = None

    def _permutation(self, epoch: int) -> np.ndarray:
        if epoch != self._perm_epoch:
            self._perm = np.random.default_rng([self.seed, epoch, PERMUTATION_SALT]).permutation(self.n)
            self._perm_epoch = epoch
        return self._perm

    def keys_for_batch(self, batch: int) -> list[tuple[int, int]]:
        global_batch = self.batch_size * self.world_size
        first = batch * global_batch + self.rank * self.batch_size
        keys = []
        for g in range(first, first + self.batch_size):
            epoch, pos = divmod(g, self.n)
            keys.append((epoch, int(self._permutation(epoch)[pos])))
        return keys

    def __iter__(self):
        batch = self.start_batch
        while True:
            yield self.keys_for_batch(batch)
            batch += 1

    def __len__(self) -> int:  # infinite; DataLoader only needs this for len(), which we never call
        return 2**62


def ignore_stop_signals(worker_id: int) -> None:
    """Loader workers leave SIGINT and SIGTERM to the training process. A scheduler's SIGTERM (or
    `kill -- -PGID`) reaches the whole process group: a worker it killed would make torch raise in
    the main process while it writes the interrupt checkpoint. Workers still end with the loader,
    or when the main process dies (torch's watchdog)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def loader_options(workers: int, pin_memory: bool) -> dict:
    """The DataLoader settings of every training stream (indexed or shards)."""
    # A private generator: creating the iterator must not draw from the global torch RNG, or a
    # resumed run's dropout masks would differ from the uninterrupted run's.
    return {
        "num_workers": workers,
        "pin_memory": pin_memory,
        "persistent_workers": workers > 0,
        "prefetch_factor": 4 if workers > 0 else None,
        "generator": torch.Generator(),
        "worker_init_fn": ignore_stop_signals if workers > 0 else None,
    }


def make_loader(dataset, sampler: StreamBatchSampler, workers: int, pin_memory: bool) -> DataLoader:
    return DataLoader(dataset, batch_sampler=sampler, **loader_options(workers, pin_memory))


def train_batches(
    dataset,
    batch_size: int,
    rank: int,
    world_size: int,
    seed: int,
    start_batch: int,
    workers: int,
    pin_memory: bool,
) -> Iterator[torch.Tensor]:
    """This rank's uint8 (N, 3, H, W) RGB training batches, forever, from global batch
    ``start_batch`` on: a map-style dataset through :class:`StreamBatchSampler` and
    :func:`make_loader` (exact resume), a streaming dataset (one with a ``batches`` method of
    this signature) through its own stream."""
    own_stream = getattr(dataset, "batches", None)
    if own_stream is not None:
        return own_stream(batch_size, rank, world_size, seed, start_batch, workers, pin_memory)
    sampler = StreamBatchSampler(len(dataset), batch_size, rank, world_size, seed, start_batch)
    return iter(make_loader(dataset, sampler, workers, pin_memory))
