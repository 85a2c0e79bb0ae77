"""Training-step throughput of the real training loop, printed as JSON.

Cases (the issue's targets are for an H100):
  gan_b16, gan_b64   unet depth 8 width 64 + patchgan n_layers 3, 256x256, GAN objective
  eccv16_b16         zhang_eccv16, classification objective, 256x256
  e2e (optional)     the whole `train()` on a folder of real JPEGs (--e2e-data): images/s,
                     data path included

Each case builds the package's own ``Trainer`` (same networks, optimizers, autocast, channels_last,
compile options as `train.py`) and times what ``fit()`` runs per step: ``Trainer.train_step`` (G
and D updates, EMA, schedules) and the on-device loss bookkeeping, on uint8 batches already on the
device, so the figure is the step rate without the data path. FLOPs come from torch's
FlopCounterMode on one step (forward + backward of G and D).

    python benchmarks/train_throughput.py                     # GPU: full size; CPU: --size 64 --steps 3
    python benchmarks/train_throughput.py --compile --compile-mode max-autotune \
        --e2e-data ../shared/data/photos
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gan_colorize.config import load_config  # noqa: E402
from gan_colorize.training.loop import LossWindow, Trainer, train  # noqa: E402

REPO = Path(__file__).resolve().parents[1]

CASES = {
    "gan_b16": ("configs/unet_gan.yaml", 16),
    "gan_b64": ("configs/unet_gan.yaml", 64),
    "eccv16_b16": ("configs/classification.yaml", 16),
}


def build(config_file: str, batch: int, args, run_dir: Path) -> Trainer:
    overrides = [
        "data.train=builtin:skimage",
        f"data.size={args.size}",
        f"data.batch_size={batch}",
        "data.workers=0",
        f"train.mixed_precision={'bf16' if torch.cuda.is_available() else 'null'}",
        f"train.compile={str(args.compile).lower()}",
        f"train.compile_mode={args.compile_mode}",
        "loss.prior_samples=16",
        "run.trackers=[]",
        f"run.dir={run_dir}",
    ]
    return Trainer(load_config(REPO / config_file, overrides))


def step_fn(trainer: Trainer):
    """The loop's per-step work: the update(s), EMA, schedules and the on-device loss window."""
    window = LossWindow()

    def step(batch, i):
        window.add(trainer.train_step([batch], i), i + 1)

    return step


def sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def count_flops(step, batch) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        step(batch, 10**9)  # a step past any warm-up: the adversarial phase
    return float(counter.get_total_flops())


def bench_case(name: str, args) -> dict:
    config_file, batch = CASES[name]
    batch = args.batch or batch
    with tempfile.TemporaryDirectory() as tmp:
        trainer = build(config_file, batch, args, Path(tmp) / name)
        device = trainer.device
        step = step_fn(trainer)
        data = torch.randint(0, 256, (batch, 3, args.size, args.size), dtype=torch.uint8, device=device)
        for i in range(args.warmup):
            step(data, 10**9 + i)
        flops = count_flops(step, data) if not args.compile else None
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        sync()
        t0 = time.perf_counter()
        for i in range(args.steps):
            step(data, 10**9 + i)
        sync()
        seconds = time.perf_counter() - t0
        result = {
            "images_per_s": round(batch * args.steps / seconds, 1),
            "step_ms": round(1000 * seconds / args.steps, 2),
            "batch": batch,
            "size": args.size,
        }
        if flops is not None:
            result["tflop_per_image"] = round(flops / batch / 1e12, 4)
            result["tflop_per_s"] = round(flops * args.steps / seconds / 1e12, 1)
        if device.type == "cuda":
            result["peak_gpu_memory_gb"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
        return result


def bench_e2e(args) -> dict:
    """The whole loop from JPEG files: its images/s against the step rate shows whether data keeps up."""
    with tempfile.TemporaryDirectory() as tmp:
        overrides = [
            f"data.train={args.e2e_data}",
            f"data.size={args.size}",
            f"data.batch_size={args.batch or 16}",  # the gan_b16 case's batch
            f"data.workers={args.workers}",
            f"train.steps={args.e2e_steps}",
            f"train.log_every={max(1, args.e2e_steps // 4)}",
            "train.sample_every=1000000",
            "train.checkpoint_every=1000000",
            f"train.mixed_precision={'bf16' if torch.cuda.is_available() else 'null'}",
            f"train.compile={str(args.compile).lower()}",
            f"train.compile_mode={args.compile_mode}",
            "run.trackers=[]",
            f"run.dir={Path(tmp) / 'e2e'}",
        ]
        with contextlib.redirect_stdout(sys.stderr):  # progress lines: stdout is the JSON
            run = train(load_config(REPO / "configs/unet_gan.yaml", overrides))
        rows = run.read_metrics()
        steady = [r["images_per_s"] for r in rows[1:]] or [rows[-1]["images_per_s"]]  # skip the first window
        return {
            "images_per_s": round(sum(steady) / len(steady), 1),
            "steps": args.e2e_steps,
            "workers": args.workers,
        }


def main() -> None:
    cuda = torch.cuda.is_available()
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--size", type=int, default=256 if cuda else 64)
    parser.add_argument("--batch", type=int, help="override every case's batch size")
    parser.add_argument("--steps", type=int, default=50 if cuda else 3)
    parser.add_argument("--warmup", type=int, default=10 if cuda else 1)
    parser.add_argument("--compile", action="store_true")
    parser.add_argument(
        "--compile-mode", default="default", choices=["default", "reduce-overhead", "max-autotune"]
    )
    parser.add_argument("--e2e-data", help="an image folder: also time the whole loop from files")
    parser.add_argument("--e2e-steps", type=int, default=400 if cuda else 8)
    parser.add_argument("--workers", type=int, default=8 if cuda else 2)
    args = parser.parse_args()
    out = {
        "device": torch.cuda.get_device_name() if cuda else "cpu",
        "torch": torch.__version__,
        "compile": args.compile and args.compile_mode,
        "cases": {name: bench_case(name, args) for name in args.cases},
    }
    if args.e2e_data:
        out["e2e_unet_gan_b16"] = bench_e2e(args)
        step_rate = out["cases"].get("gan_b16", {}).get("images_per_s")
        if step_rate:
            out["e2e_unet_gan_b16"]["fraction_of_step_rate"] = round(
                out["e2e_unet_gan_b16"]["images_per_s"] / step_rate, 2
            )
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
