"""Colorization throughput and memory: a 12 MP photo and a folder of small images. Prints JSON.

    python benchmarks/colorize_throughput.py                 # CPU, and CUDA when available
    python benchmarks/colorize_throughput.py --devices cpu --images 16

The generator is pix2pix's full U-Net (depth 8, width 64, 54.4 M parameters) with UNTRAINED
(randomly initialised) weights: the time and memory of inference do not depend on the weights.
The 12 MP photo is skimage's ``coffee`` upscaled to 4000 x 3000. Targets (the issue
"Colorize real photographs"): 12 MP in under 20 s on a 2-core CPU, without running out of memory.

Wall-clock seconds depend on what else runs on the machine; ``process_cpu_seconds`` (CPU time of
this process, all threads) divided by the cores is what an idle machine would take at best.
Peak memory: CPU, the largest resident set size seen (psutil, sampled every 5 ms) minus the size
before the call, else the ``ru_maxrss`` increase; CUDA, ``torch.cuda.max_memory_allocated``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from skimage import data as skdata

from gan_colorize.inference.colorizer import Colorizer
from gan_colorize.registry import GENERATORS

TARGET_12MP_CPU_S = 20.0
PHOTO_SHAPE = (3000, 4000)  # H, W: 12 MP


class PeakRSS:
    """Peak resident set size during a ``with`` block, in MB above the size at its start."""

    def __init__(self, interval: float = 0.005):
        self.interval = interval
        self.peak_mb: float | None = None

    def __enter__(self):
        try:
            import psutil
        except ImportError:
            self.process = None
            self.start_maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            return self
        self.process = psutil.Process()
        self.start = self.peak = self.process.memory_info().rss
        self.running = True
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()
        return self

    def _sample(self):
        while self.running:
            self.peak = max(self.peak, self.process.memory_info().rss)
            time.sleep(self.interval)

    def __exit__(self, *exc):
        if self.process is None:  # ru_maxrss is in KiB on Linux
            self.method = "ru_maxrss delta"
            self.peak_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - self.start_maxrss) / 1024
        else:
            self.running = False
            self.thread.join()
            self.peak = max(self.peak, self.process.memory_info().rss)
            self.method = "psutil rss sampled"
            self.peak_mb = (self.peak - self.start) / 2**20
        return False


class SaturatedAB(torch.nn.Module):
    """A constant, strongly saturated prediction: most pixels leave the sRGB gamut, the worst case
    for the chroma reduction that keeps L (an untrained U-Net predicts almost grey)."""

    output_kind = "ab"

    def forward(self, L_norm: torch.Tensor) -> torch.Tensor:
        ab = torch.tensor([0.9, -0.9], device=L_norm.device).view(1, 2, 1, 1)
        return ab.expand(L_norm.shape[0], 2, *L_norm.shape[2:])


def twelve_megapixel_photo() -> np.ndarray:
    return np.asarray(Image.fromarray(skdata.coffee()).resize(PHOTO_SHAPE[::-1], Image.BICUBIC))


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_photo(colorizer: Colorizer, photo: np.ndarray) -> dict:
    device = colorizer.device
    colorizer.colorize_array(photo[:300, :400])  # warm-up: allocator, kernels, first-call costs
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    stages = {}
    with PeakRSS() as memory, torch.inference_mode():
        start, cpu_start = time.perf_counter(), time.process_time()
        prepared = colorizer.prepare(photo)
        sync(device)
        stages["full_resolution_L_s"] = time.perf_counter() - start
        t = time.perf_counter()
        ab = colorizer.predict(prepared.L_work[None])[0]
        sync(device)
        stages["network_s"] = time.perf_counter() - t
        t = time.perf_counter()
        out = colorizer.finish(prepared, ab)
        sync(device)
        stages["compose_rgb_s"] = time.perf_counter() - t
        seconds = time.perf_counter() - start
        cpu_seconds = time.process_time() - cpu_start
    assert out.shape == photo.shape
    result = {
        "seconds": round(seconds, 3),
        "process_cpu_seconds": round(cpu_seconds, 3),
        "stages": {k: round(v, 3) for k, v in stages.items()},
        "working_shape": list(prepared.L_work.shape[-2:]),
        "peak_host_mb_above_start": round(memory.peak_mb, 1),
        "host_memory_method": memory.method,
    }
    if device.type == "cuda":
        result["cuda_max_memory_allocated_mb"] = round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
    else:
        result["meets_target"] = seconds < TARGET_12MP_CPU_S
    return result


def time_folder(colorizer: Colorizer, n_images: int, size: int, batch_size: int) -> dict:
    from gan_colorize.inference.batch import colorize_jobs, plan_jobs

    rng = np.random.default_rng(0)
    sources = [skdata.astronaut(), skdata.coffee(), skdata.chelsea(), skdata.rocket()]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "in"
        folder.mkdir()
        for i in range(n_images):
            photo = sources[i % len(sources)]
            top, left = rng.integers(0, photo.shape[0] - size), rng.integers(0, photo.shape[1] - size)
            Image.fromarray(photo[top : top + size, left : left + size]).save(folder / f"{i:04d}.png")
        warm, _ = plan_jobs([folder], Path(tmp) / "warm", "png")
        colorize_jobs(colorizer, warm[:batch_size], batch_size=batch_size, progress=False)
        jobs, _ = plan_jobs([folder], Path(tmp) / "out", "png")
        start = time.perf_counter()
        summary = colorize_jobs(colorizer, jobs, batch_size=batch_size, progress=False)
        seconds = time.perf_counter() - start
    return {
        "images": n_images,
        "image_size": size,
        "batch_size": batch_size,
        "done": len(summary.done),
        "seconds": round(seconds, 3),
        "images_per_s": round(len(summary.done) / seconds, 2),
        "includes": "PNG decode, full-resolution L, network, Lab->sRGB, PNG encode and atomic write",
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", default="cpu,cuda", help="comma-separated; cuda is skipped when absent")
    parser.add_argument("--size", type=int, default=256, help="working resolution (shorter side)")
    parser.add_argument("--images", type=int, default=64, help="images in the folder benchmark")
    parser.add_argument("--batch-size", type=int, default=16, help="folder benchmark batch size")
    parser.add_argument(
        "--folder-devices", default=None, help="devices for the folder run (default: the last)"
    )
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    args = parser.parse_args(argv)
    if args.threads:
        # on a shared machine, threads waiting at each op's barrier for a core another process holds
        # can cost more than they gain: one thread gives the steadier figure there
        torch.set_num_threads(args.threads)

    devices = [d for d in args.devices.split(",") if d != "cuda" or torch.cuda.is_available()]
    torch.manual_seed(0)
    generator = GENERATORS.build({"type": "unet", "depth": 8, "width": 64})
    photo = twelve_megapixel_photo()
    result = {
        "weights": "untrained (random init): timing and memory only",
        "generator": {
            "type": "unet",
            "depth": 8,
            "width": 64,
            "parameters": sum(p.numel() for p in generator.parameters()),
        },
        "working_size": args.size,
        "photo": {"shape": list(photo.shape), "megapixels": round(photo.shape[0] * photo.shape[1] / 1e6, 1)},
        "torch": torch.__version__,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "load_average_1min_at_start": round(os.getloadavg()[0], 2),
        "target_12mp_cpu_s": TARGET_12MP_CPU_S,
        "photo_12mp": {},
        "photo_12mp_saturated_prediction": {},
        "folder": {},
    }
    folder_devices = (args.folder_devices or devices[-1]).split(",")
    for name in devices:
        colorizer = Colorizer(generator, size=args.size, device=name)
        result["photo_12mp"][name] = time_photo(colorizer, photo)
        worst = time_photo(Colorizer(SaturatedAB(), size=args.size, device=name), photo)
        keep = ("seconds", "process_cpu_seconds", "stages")
        result["photo_12mp_saturated_prediction"][name] = {k: worst[k] for k in keep}
        if name in folder_devices:
            result["folder"][name] = time_folder(colorizer, args.images, args.size, args.batch_size)
        if name == "cuda":
            result["device_name"] = torch.cuda.get_device_name()
    json.dump(result, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
