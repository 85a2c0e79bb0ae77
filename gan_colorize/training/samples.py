"""Sample grids written during training: one row per image, L | prediction | ground truth."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from gan_colorize.color.lab import lab_norm_to_rgb, to_uint8, uint8_to_lab_norm
from gan_colorize.rundir import atomic_write

SAMPLE_IMAGES = 8


def fixed_images(eval_set, count: int = SAMPLE_IMAGES) -> torch.Tensor:
    """The first ``count`` evaluation images as a uint8 batch (the same ones at every step)."""
    items = [eval_set[i] for i in range(min(count, len(eval_set)))]
    return torch.stack([item["rgb"] if isinstance(item, dict) else item for item in items])


@torch.no_grad()
def colorize(generator: torch.nn.Module, rgb_u8: torch.Tensor, device, temperature: float) -> torch.Tensor:
    """Ground-truth L + predicted ab -> uint8 RGB (N,3,H,W), on the CPU."""
    from gan_colorize.models.io import predict_ab_norm

    was_training = generator.training
    generator.eval()
    L, _ = uint8_to_lab_norm(rgb_u8.to(device))
    ab = predict_ab_norm(generator, L, temperature)
    generator.train(was_training)
    return to_uint8(lab_norm_to_rgb(L, ab)).cpu()


def grey(rgb_u8: torch.Tensor) -> torch.Tensor:
    L, ab = uint8_to_lab_norm(rgb_u8)
    return to_uint8(lab_norm_to_rgb(L, torch.zeros_like(ab)))


def write_grid(generator, eval_set, path: str | Path, device, temperature: float) -> Path:
    gt = fixed_images(eval_set)
    rows = torch.cat([grey(gt), colorize(generator, gt, device, temperature), gt], dim=3)  # side by side
    grid = torch.cat(list(rows), dim=1)  # images stacked vertically: (3, N*H, 3*W)
    array = np.ascontiguousarray(grid.permute(1, 2, 0).numpy())
    return atomic_write(path, lambda tmp: Image.fromarray(array).save(tmp, format="PNG"))
