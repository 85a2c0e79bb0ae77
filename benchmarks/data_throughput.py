"""Data-pipeline throughput: decode + random-resized crop per worker process, and the batched Lab
conversion. Prints JSON.

    python benchmarks/data_throughput.py                        # ../shared/data/photos, 256 px
    python benchmarks/data_throughput.py --photos DIR --size 128 --workers 1 2 4
    python benchmarks/data_throughput.py --lab-only             # no photo folder needed

Decode + crop is timed three ways on the same ``ImageFolderDataset`` items ``(epoch, index)``:
in this process (one process = one worker: what a worker can deliver), and through the training
loader (``gan_colorize.training.stream``: ``StreamBatchSampler`` + ``make_loader``) with 1 and 2
workers, timed after each worker has delivered a first batch (start-up excluded). The screening
that ``ImageFolderDataset`` does once at construction (one small decode per file) is timed too.

The Lab conversion is ``gan_colorize.color.lab.uint8_to_lab_norm`` on a uint8 (64, 3, 256, 256)
batch, as the training loop calls it on the training device: on CPU, and on CUDA when available
(with and without the host-to-device copy of the uint8 batch).

Wall-clock rates depend on what else runs on the machine. ``images_per_cpu_s`` (images per CPU
second of the process, or of the loader's worker processes) is what one idle core would give.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import PIL
import psutil
import torch

from gan_colorize.color.lab import uint8_to_lab_norm
from gan_colorize.data import ImageFolderDataset
from gan_colorize.training.stream import StreamBatchSampler, make_loader

REPO = Path(__file__).resolve().parents[1]
DEFAULT_PHOTOS = REPO.parent / "shared" / "data" / "photos"


def rate(images: int, seconds: float, cpu_seconds: float | None = None) -> dict:
    out = {"images": images, "seconds": round(seconds, 3), "images_per_s": round(images / seconds, 1)}
    if cpu_seconds is not None:
        out["cpu_seconds"] = round(cpu_seconds, 3)
        out["images_per_cpu_s"] = round(images / cpu_seconds, 1) if cpu_seconds > 0 else None
    return out


def keys(n_files: int, count: int) -> list[tuple[int, int]]:
    """``count`` item keys in epoch order: (0, 0), (0, 1), ..., (1, 0), ..."""
    return [divmod(g, n_files) for g in range(count)]


def time_screening(photos: Path, size: int) -> tuple[ImageFolderDataset, dict]:
    cpu, t = time.process_time(), time.perf_counter()
    ds = ImageFolderDataset(photos, size=size, crop="random_resized", seed=0)
    seconds, cpu = time.perf_counter() - t, time.process_time() - cpu
    result = rate(ds.screening.total, seconds, cpu)
    result.update(usable=len(ds.files), greyscale=len(ds.greyscale), unreadable=len(ds.skipped))
    return ds, result


def time_in_process(ds: ImageFolderDataset, count: int) -> dict:
    items = keys(len(ds), count)
    ds[items[0]]  # imports and first-call set-up out of the timing
    cpu, t = time.process_time(), time.perf_counter()
    for key in items:
        ds[key]
    return rate(len(items), time.perf_counter() - t, time.process_time() - cpu)


def workers_cpu_seconds() -> float:
    total = 0.0
    for child in psutil.Process().children(recursive=True):
        try:
            times = child.cpu_times()
            total += times.user + times.system
        except psutil.NoSuchProcess:
            pass
    return total


def time_loader(ds: ImageFolderDataset, workers: int, batch_size: int, count: int) -> dict:
    sampler = StreamBatchSampler(len(ds), batch_size, rank=0, world_size=1, seed=0, start_batch=0)
    loader = make_loader(ds, sampler, workers=workers, pin_memory=False)
    it = iter(loader)
    for _ in range(max(workers, 1)):  # every worker started and has delivered one batch
        next(it)
    batches = max(1, count // batch_size)
    cpu, t = workers_cpu_seconds(), time.perf_counter()
    for _ in range(batches):
        batch = next(it)
    seconds, cpu = time.perf_counter() - t, workers_cpu_seconds() - cpu
    assert batch.dtype == torch.uint8 and batch.shape == (batch_size, 3, ds.size, ds.size)
    del it, loader  # persistent workers end here
    result = rate(batches * batch_size, seconds, cpu)
    result["workers"] = workers
    result["images_per_s_per_worker"] = round(result["images_per_s"] / workers, 1)
    return result


def time_lab(device: str, batch: int, size: int, repeats: int) -> dict:
    u8 = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (batch, 3, size, size), dtype=np.uint8))
    cuda = device.startswith("cuda")
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    if cuda:
        u8 = u8.pin_memory()
    on_device = u8.to(device)
    uint8_to_lab_norm(on_device)  # warm-up: kernels, allocator
    sync()
    t = time.perf_counter()
    for _ in range(repeats):
        uint8_to_lab_norm(on_device)
    sync()
    seconds = time.perf_counter() - t
    result = {"device": device, "batch": list(u8.shape), **rate(batch * repeats, seconds)}
    if cuda:
        result["name"] = torch.cuda.get_device_name()
        t = time.perf_counter()
        for _ in range(repeats):
            uint8_to_lab_norm(u8.to(device, non_blocking=True))
        sync()
        result["images_per_s_with_copy"] = round(batch * repeats / (time.perf_counter() - t), 1)
    else:
        result["torch_threads"] = torch.get_num_threads()
    return result


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--photos", type=Path, default=DEFAULT_PHOTOS, help="image folder (default: %(default)s)")
    p.add_argument("--size", type=int, default=256, help="crop size in pixels")
    p.add_argument("--images", type=int, default=256, help="items timed per measurement")
    p.add_argument("--batch-size", type=int, default=16, help="loader batch size")
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="loader worker counts")
    p.add_argument("--lab-batch", type=int, default=64)
    p.add_argument("--lab-repeats", type=int, default=5)
    p.add_argument("--lab-only", action="store_true", help="time only the Lab conversion")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    report: dict = {
        "machine": {
            "cpus": os.cpu_count(),
            "load_average_1min": round(os.getloadavg()[0], 2),
            "torch": torch.__version__,
            "pillow": PIL.__version__,
        }
    }
    if not args.lab_only:
        if not args.photos.is_dir():
            print(f"error: {args.photos} does not exist (give --photos DIR, or --lab-only)", file=sys.stderr)
            return 2
        ds, screening = time_screening(args.photos, args.size)
        count = args.images  # items per measurement
        report["data"] = {
            "photos": str(args.photos),
            "size": args.size,
            "crop": "random_resized, scale (0.35, 1), hflip",
            "screening": screening,
            "decode_crop_in_process": time_in_process(ds, count),
        }
        for w in args.workers:
            report["data"][f"decode_crop_loader_{w}_workers"] = time_loader(ds, w, args.batch_size, count)
    report["lab"] = {"cpu": time_lab("cpu", args.lab_batch, 256, args.lab_repeats)}
    cuda = torch.cuda.is_available()
    report["lab"]["cuda"] = (
        time_lab("cuda", args.lab_batch, 256, 4 * args.lab_repeats) if cuda else "unavailable"
    )
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
