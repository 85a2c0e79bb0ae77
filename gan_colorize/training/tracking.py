"""What a run tells the world while it trains: experiment trackers, validation, provenance.

* Trackers go through accelerate (``Accelerator(log_with=...)``): ``run.trackers`` names them
  (``tensorboard``, ``wandb``, or any other tracker accelerate knows). One that was asked for and
  whose package is missing is a warning at start-up naming the package, and the run goes on with
  the others (``metrics.jsonl`` is always written). They receive the scalars of ``metrics.jsonl``
  (losses, learning rates, images/s, validation scores) and the sample grids as images.
* Validation: every ``train.eval_every`` steps the run's own held-out images (the first
  ``train.eval_images`` of its evaluation data, the same at every step) are colorized by the
  generator that would be evaluated (the EMA one when there is one) and scored with the cheap
  metrics: colourfulness (CF, ΔCF) and PSNR, and the offline EfficientNet-Lite0 Fréchet distance
  when its package is installed (non-standard, and on this few images strongly biased: compare it
  between steps of one run only). Logged as ``val/<key>`` with its cost ``val/seconds``.
* Provenance: ``RUN/provenance.json`` lists every launch of the run (a resume is a launch) with
  what actually ran: the effective mixed precision (which ``config.yaml`` may leave to accelerate),
  world size, devices, versions, the command line and the git commit of the code.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from gan_colorize.rundir import atomic_write_text

log = logging.getLogger("gan_colorize.train")

# the package each tracker needs: what the warning tells the user to install
TRACKER_PACKAGES = {
    "tensorboard": "tensorboard",
    "wandb": "wandb",
    "comet_ml": "comet_ml",
    "aim": "aim",
    "mlflow": "mlflow",
    "clearml": "clearml",
    "dvclive": "dvclive",
    "swanlab": "swanlab",
    "trackio": "trackio",
}
VALIDATION_METRICS = ("colorfulness", "psnr", "efficientnet_fd")


def available_trackers(requested: list[str]) -> list[str]:
    """The requested trackers whose packages are installed; a warning names each missing one."""
    usable = []
    for name in requested:
        package = TRACKER_PACKAGES[name]
        if importlib.util.find_spec(package) is None:
            log.warning(
                "run.trackers: %r was asked for, but the package %r is not installed (pip install %s, "
                "or gan-colorize[track]); not logging to it (metrics.jsonl is written all the same)",
                name, package, package,
            )  # fmt: skip
        else:
            usable.append(name)
    return usable


def flat_config(config: dict) -> dict:
    """``{"train.lr_g": 0.0002, ...}`` with lists and specs as strings: what trackers take as hparams."""
    flat = {}
    for section, values in config.items():
        for key, value in (values or {}).items():
            scalar = value is None or isinstance(value, (bool, int, float, str))
            flat[f"{section}.{key}"] = value if scalar and value is not None else str(value)
    return flat


def log_image(accelerator, key: str, path: Path, step: int) -> None:
    """Send an image file (a sample grid) to every tracker that takes images."""
    from PIL import Image

    with Image.open(path) as img:
        image = np.asarray(img.convert("RGB"))
    for tracker in accelerator.trackers:
        if not hasattr(tracker, "log_images"):
            continue
        if tracker.name == "tensorboard":  # SummaryWriter.add_images wants a batch
            tracker.log_images({key: image[None]}, step=step, dataformats="NHWC")
        else:
            tracker.log_images({key: [image]}, step=step)


# ---------------------------------------------------------------- validation
class Validator:
    """The held-out images of a run, scored by the cheap metrics at a training step."""

    def __init__(self, eval_set, count: int, device, temperature: float):
        from gan_colorize.training.samples import fixed_images

        self.images = fixed_images(eval_set, count) if len(eval_set) else None
        self.device, self.temperature = device, temperature
        self.names = list(VALIDATION_METRICS)
        self._told = False

    def __call__(self, generator: torch.nn.Module) -> dict[str, float]:
        from gan_colorize.evaluation.protocol import colorize_batch
        from gan_colorize.metrics import compute_metrics
        from gan_colorize.training.samples import eval_mode

        if self.images is None:
            return {}
        t0 = time.perf_counter()
        with eval_mode(generator), torch.no_grad():
            preds = [colorize_batch(generator, gt, self.temperature) for gt in self.images.split(16)]
        pairs = list(zip(preds, self.images.split(16)))
        results, missing, details = compute_metrics(self.names, pairs, self.device)
        for name in missing:  # not available here (package, weights, too few images): said once
            if not self._told:
                log.info("validation: %s is not computed: %s", name, details[name])
            self.names.remove(name)
        self._told = True
        row = {f"val/{k}": float(v) for k, v in results.items() if isinstance(v, (int, float))}
        row["val/images"] = len(self.images)
        row["val/seconds"] = time.perf_counter() - t0
        return row


# ---------------------------------------------------------------- provenance
def git_commit(path: Path) -> str | None:
    """The commit of the code at ``path`` ("<sha>-dirty" with uncommitted changes), or None."""
    try:
        sha = subprocess.run(
            ["git", "-C", str(path), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10
        )
        if sha.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "-C", str(path), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, timeout=10,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    return sha.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def launch_record(accelerator, resumed_from: Path | None, step: int) -> dict:
    import accelerate

    import gan_colorize

    device = accelerator.device
    names = (
        [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        if device.type == "cuda"
        else [platform.processor() or platform.machine()]
    )
    return {
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": [sys.executable, *sys.argv],
        "cwd": os.getcwd(),
        "resumed_from": str(resumed_from) if resumed_from else None,
        "start_step": step,
        "mixed_precision": accelerator.mixed_precision,  # effective: config, launcher or accelerate config
        "world_size": accelerator.num_processes,
        "distributed_type": str(accelerator.distributed_type),
        "device_type": device.type,
        "devices": names,
        "host": platform.node(),
        "versions": {
            "gan_colorize": gan_colorize.__version__,
            "torch": torch.__version__,
            "accelerate": accelerate.__version__,
            "cuda": torch.version.cuda,
            "python": platform.python_version(),
        },
        "git_commit": git_commit(Path(gan_colorize.__file__).resolve().parents[1]),
    }


def record_end(path: Path, step: int, reason: str) -> None:
    """Note on the latest launch why it ended before ``train.steps`` (``max_minutes``)."""
    launches = read_launches(path)
    if launches:
        launches[-1]["ended"] = {"step": step, "reason": reason}
        atomic_write_text(path, json.dumps({"launches": launches}, indent=2))


def ended_by_budget(path: Path, step: int) -> bool:
    """Whether the run's latest launch stopped at its time budget at ``step`` (then a study counts
    it as finished: resuming would spend another budget)."""
    return end_reason(path, step) == "max_minutes"


def end_reason(path: Path, step: int) -> str | None:
    """Why the run's latest launch ended at ``step`` before ``train.steps`` (``max_minutes``,
    ``SIGINT``, ``SIGTERM``), or None."""
    launches = read_launches(path)
    ended = launches[-1].get("ended") if launches and isinstance(launches[-1], dict) else None
    return ended.get("reason") if isinstance(ended, dict) and ended.get("step") == step else None


def read_launches(path: Path) -> list:
    """The launches in ``provenance.json``; [] when there is none or it is unreadable."""
    try:
        launches = json.loads(path.read_text()).get("launches", [])
    except (ValueError, AttributeError, OSError):
        return []
    return launches if isinstance(launches, list) else []


def record_launch(path: Path, record: dict) -> None:
    """Append this launch to ``provenance.json`` (an unreadable file is started anew)."""
    atomic_write_text(path, json.dumps({"launches": [*read_launches(path), record]}, indent=2))
