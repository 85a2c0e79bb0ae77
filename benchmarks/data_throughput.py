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

``--scale`` adds the issue #11 measurements on a generated folder of ImageNet-like JPEGs
(``--scale-files``, default 20,000, written once into ``--scale-dir`` under /tmp; each is a shared
photo resized, bicubic, so that its longer side is one of 400, 500 (x3), 640, 800, 1000 px times
U(0.9, 1.1), the mix of ImageNet's common sizes, saved as JPEG quality 90 in 20 class folders):
time from nothing to the first batch (index build + first batch through ``train_batches``), first
run (empty index cache) and second run, with ``data.screening`` ``headers`` on all files and
``full`` on a 2,000-file list (extrapolated, said so in the JSON); loader images per CPU-second
from the folder and from shards written by ``data shard`` of the same 2,000 files.

Always measured too: decode + random-resized crop of a 4000x3000 JPEG with and without reduced-
scale (DCT) decoding, and, side by side, pix2pix's colorization data path (``pix2pix_sample``:
PIL open, resize 286, crop 256, flip, ``skimage.color.rgb2lab``, ToTensor, per sample) against
ours on the same photos, in images per CPU-second.

The Lab conversion is ``gan_colorize.color.lab.uint8_to_lab_norm`` on a uint8 (64, 3, 256, 256)
batch, as the training loop calls it on the training device: on CPU, and on CUDA when available
(with and without the host-to-device copy of the uint8 batch).

Wall-clock rates depend on what else runs on the machine. ``images_per_cpu_s`` (images per CPU
second of the process, or of the loader's worker processes) is what one idle core would give.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import PIL
import psutil
import torch
from PIL import Image

from gan_colorize.color.lab import uint8_to_lab_norm
from gan_colorize.config import DataConfig
from gan_colorize.data import ImageFolderDataset, build_datasets, list_image_files, screen
from gan_colorize.data.dataset import TrainCrop, draw_crop
from gan_colorize.data.decode import ImageReader
from gan_colorize.data.shard_writer import write_shards
from gan_colorize.data.shards import ShardDataset
from gan_colorize.training.stream import StreamBatchSampler, make_loader, train_batches

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


# ---------------------------------------------------------------- issue #11: scale
LONG_SIDES = (400, 500, 500, 500, 640, 800, 1000)


def _make_one(args) -> None:
    src, dst, seed = args
    rng = np.random.default_rng(seed)
    img = Image.open(src).convert("RGB")
    side = round(float(rng.choice(LONG_SIDES)) * rng.uniform(0.9, 1.1))
    scale = side / max(img.size)
    img.resize((round(img.width * scale), round(img.height * scale)), Image.Resampling.BICUBIC).save(
        dst, quality=90
    )


def generate_folder(photos: Path, out: Path, n: int) -> dict:
    """``n`` ImageNet-like JPEGs in ``out`` (kept: generated once)."""
    sources = sorted(p for p in photos.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    marker = out / f".complete-{n}"
    if marker.exists():
        return {"folder": str(out), "files": n, "generated_now": False}
    tasks = []
    for i in range(n):
        folder = out / f"class{i % 20:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        tasks.append((str(sources[i % len(sources)]), str(folder / f"img{i:06d}.jpg"), i))
    t = time.perf_counter()
    with multiprocessing.get_context("fork").Pool(os.cpu_count()) as pool:
        pool.map(_make_one, tasks, chunksize=64)
    marker.touch()
    return {
        "folder": str(out),
        "files": n,
        "generated_now": True,
        "seconds": round(time.perf_counter() - t, 1),
    }


def time_to_first_batch(train: str, mode: str, index_dir: Path, size: int, workers: int) -> dict:
    """build_datasets (the index) + the first batch of train_batches, as the loop's start does."""
    cfg = DataConfig(
        train=train, size=size, screening=mode, index_dir=str(index_dir), workers=workers, batch_size=16
    )
    t = time.perf_counter()
    train_set, eval_set = build_datasets(cfg, seed=0)
    indexed = time.perf_counter() - t
    stream = train_batches(train_set, cfg.batch_size, 0, 1, 0, 0, workers, False)
    next(stream)
    total = time.perf_counter() - t
    del stream
    files = train_set.screening.total + len(eval_set)
    return {
        "mode": mode, "files": files, "index_seconds": round(indexed, 2),
        "to_first_batch_seconds": round(total, 2), "files_per_s": round(files / total, 1),
    }  # fmt: skip


def time_stream(train_set, workers: int, batch_size: int, count: int) -> dict:
    """Loader images per CPU-second of the workers, through train_batches, after start-up."""
    stream = train_batches(train_set, batch_size, 0, 1, 0, 0, workers, False)
    for _ in range(max(workers, 1)):
        next(stream)
    batches = max(1, count // batch_size)
    cpu, t = workers_cpu_seconds(), time.perf_counter()
    for _ in range(batches):
        next(stream)
    seconds, cpu = time.perf_counter() - t, workers_cpu_seconds() - cpu
    del stream
    return {"workers": workers, **rate(batches * batch_size, seconds, cpu)}


def scale_report(args) -> dict:
    folder = generate_folder(
        args.photos, args.scale_dir / f"imagenet_like_{args.scale_files}", args.scale_files
    )
    root = Path(folder["folder"])
    files = list_image_files(root)
    subset = args.scale_dir / "subset_2000.txt"
    subset.write_text(
        "".join(f"{f.relative_to(args.scale_dir).as_posix()}\n" for f in files[:: len(files) // 2000][:2000])
    )
    caches = args.scale_dir / f"caches-{os.getpid()}"
    shutil.rmtree(caches, ignore_errors=True)
    report = {"generated": folder, "note": "files just generated or read before sit in the page cache"}
    startup = {}
    for run in ("first_run", "second_run"):
        startup[f"headers_{run}"] = time_to_first_batch(str(root), "headers", caches / "a", args.size, 2)
        startup[f"full_2000_{run}"] = time_to_first_batch(str(subset), "full", caches / "b", args.size, 2)
    full = startup["full_2000_first_run"]
    startup["full_first_run_extrapolated_to_all"] = {
        "files": len(files), "seconds": round(full["to_first_batch_seconds"] * len(files) / full["files"], 1),
        "how": "full screening measured on 2,000 of the files (a list), scaled linearly",
    }  # fmt: skip
    report["time_to_first_batch"] = startup
    cfg = DataConfig(train=str(root), size=args.size, index_dir=str(caches / "a"))
    folder_set = build_datasets(cfg)[0]
    t = time.perf_counter()
    index = write_shards(
        files[:2000], root, args.scale_dir / "shards", 500, None, 0, lambda n: None
    )  # fmt: skip
    report["data_shard_2000_files_seconds"] = round(time.perf_counter() - t, 1)
    shard_set = ShardDataset(index["pattern"], args.size)
    report["loader_images_per_cpu_s"] = {
        "folder": time_stream(folder_set, 2, args.batch_size, args.images),
        "shards": time_stream(shard_set, 2, args.batch_size, args.images),
    }
    shutil.rmtree(caches, ignore_errors=True)
    return report


# ---------------------------------------------------------------- reduced-scale decoding
def time_large_jpeg(photos: Path, tmp: Path, size: int, repeats: int) -> dict:
    source = sorted(photos.glob("*.jpg"))[0]
    path = tmp / "large_4000x3000.jpg"
    Image.open(source).convert("RGB").resize((4000, 3000), Image.Resampling.BICUBIC).save(path, quality=90)
    crop = TrainCrop(size, "random_resized", (0.35, 1.0), True)
    result = {"file": "4000x3000 JPEG q90", "crop": f"random_resized {size} px, scale (0.35, 1)"}
    for name, reduced in (("full_decode", False), ("reduced_decode", True)):
        cpu, t = time.process_time(), time.perf_counter()
        for i in range(repeats):
            rng = np.random.default_rng(i)
            with ImageReader(path) as reader:
                plan = draw_crop(reader.size, size, rng, crop.crop, crop.scale, crop.hflip)
                img = reader.decode(plan.decode_size() if reduced else None)
                plan.apply(img, reader.scale)
        result[name] = rate(repeats, time.perf_counter() - t, time.process_time() - cpu)
    result["speed_up_cpu"] = round(
        result["reduced_decode"]["images_per_cpu_s"] / result["full_decode"]["images_per_cpu_s"], 1
    )
    return result


# ---------------------------------------------------------------- pix2pix's data path, for reference
def pix2pix_sample(path: Path, rng: np.random.Generator, load: int = 286, crop: int = 256) -> torch.Tensor:
    """pytorch-CycleGAN-and-pix2pix's colorization dataset (``data/colorization_dataset.py`` with
    ``--preprocess resize_and_crop``): PIL open, RGB, resize to ``load`` square (bicubic), random
    ``crop`` square, random flip, ``skimage.color.rgb2lab``, ToTensor; one sample at a time."""
    from skimage import color

    img = Image.open(path).convert("RGB").resize((load, load), Image.Resampling.BICUBIC)
    x, y = (int(v) for v in rng.integers(0, load - crop + 1, 2))
    img = img.crop((x, y, x + crop, y + crop))
    if rng.random() < 0.5:
        img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    lab = color.rgb2lab(np.asarray(img)).astype(np.float32)
    return torch.from_numpy(lab.transpose(2, 0, 1).copy())


def time_pix2pix(photos: Path, count: int) -> dict:
    files = list_image_files(photos)
    pix2pix_sample(files[0], np.random.default_rng(0))
    cpu, t = time.process_time(), time.perf_counter()
    for i in range(count):
        pix2pix_sample(files[i % len(files)], np.random.default_rng(i))
    return rate(count, time.perf_counter() - t, time.process_time() - cpu)


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
    p.add_argument("--scale", action="store_true", help="issue #11: start-up and loader on a large folder")
    p.add_argument("--scale-files", type=int, default=20000, help="files of the generated folder")
    p.add_argument("--scale-dir", type=Path, default=Path(tempfile.gettempdir()) / "gan_colorize_bench")
    p.add_argument("--large-repeats", type=int, default=24, help="decodes of the 4000x3000 JPEG per way")
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
        ours = report["data"]["decode_crop_in_process"]
        headers = ImageFolderDataset(
            args.photos,
            args.size,
            screening=screen(list_image_files(args.photos), 4.0, 0.05, "", mode="headers"),
        )  # greyscale decided at load: the chroma of each decoded image is measured too
        ours_headers = time_in_process(headers, count)
        reference = time_pix2pix(args.photos, count)
        report["pix2pix_reference"] = {
            "pix2pix_per_sample": reference,
            "ours_screened_in_full": ours,
            "ours_headers_mode": ours_headers,
            "ratio_images_per_cpu_s_full": round(ours["images_per_cpu_s"] / reference["images_per_cpu_s"], 2),
            "ratio_images_per_cpu_s_headers": round(
                ours_headers["images_per_cpu_s"] / reference["images_per_cpu_s"], 2
            ),
        }
        with tempfile.TemporaryDirectory() as tmp:
            report["large_jpeg"] = time_large_jpeg(args.photos, Path(tmp), args.size, args.large_repeats)
        if args.scale:
            report["scale"] = scale_report(args)
    report["lab"] = {"cpu": time_lab("cpu", args.lab_batch, 256, args.lab_repeats)}
    cuda = torch.cuda.is_available()
    report["lab"]["cuda"] = (
        time_lab("cuda", args.lab_batch, 256, 4 * args.lab_repeats) if cuda else "unavailable"
    )
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
