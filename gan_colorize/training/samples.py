"""Sample grids written during training: one row per image, L | prediction | ground truth.

The prediction and the greyscale column are made exactly as evaluation makes them
(``gan_colorize.evaluation.protocol``), so a sample grid shows what the scores measure.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from gan_colorize.evaluation.protocol import colorize_batch, greyscale_batch
from gan_colorize.rundir import atomic_write

SAMPLE_IMAGES = 8


def fixed_images(eval_set, count: int = SAMPLE_IMAGES) -> torch.Tensor:
    """The first ``count`` evaluation images as a uint8 batch (the same ones at every step)."""
    items = [eval_set[i] for i in range(min(count, len(eval_set)))]
    return torch.stack([item["rgb"] if isinstance(item, dict) else item for item in items])


@contextmanager
def eval_mode(module: torch.nn.Module):
    """``module.eval()`` for the block, then its train/eval mode as it was (training goes on)."""
    was_training = module.training
    module.eval()
    try:
        yield module
    finally:
        module.train(was_training)


def write_grid(generator, eval_set, path: str | Path, device, temperature: float) -> Path:
    """Write the grid of the fixed evaluation images to ``path`` (PNG, atomically).

    ``device`` (the training loop's) is where the generator already is; ``colorize_batch`` sends
    the images to the generator's own device and brings the prediction back to the CPU.
    """
    gt = fixed_images(eval_set)
    with eval_mode(generator):
        prediction = colorize_batch(generator, gt, temperature)
    rows = torch.cat([greyscale_batch(gt), prediction, gt], dim=3)  # side by side
    grid = torch.cat(list(rows), dim=1)  # images stacked vertically: (3, N*H, 3*W)
    array = np.ascontiguousarray(grid.permute(1, 2, 0).numpy())
    return atomic_write(path, lambda tmp: Image.fromarray(array).save(tmp, format="PNG"))
