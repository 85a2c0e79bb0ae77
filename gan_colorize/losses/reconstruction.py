"""Per-pixel reconstruction losses on ab_norm: L1 (pix2pix's ``lambda_L1 * L1``) and L2 (the
"regression" baseline of Zhang et al. 2016, sec. 2.1, which they show averages colours towards grey).

Both are the mean over every element (batch, channel, pixel), computed in float32 so that the
value and its gradient do not depend on the autocast dtype.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from gan_colorize.registry import LOSSES

KINDS = {"l1": F.l1_loss, "l2": F.mse_loss}


def reconstruction_loss(pred_ab: torch.Tensor, target_ab: torch.Tensor, kind: str = "l1") -> torch.Tensor:
    """Mean absolute (``l1``) or squared (``l2``) error between two ab_norm tensors of equal shape."""
    if kind not in KINDS:
        raise ValueError(f"unknown reconstruction loss {kind!r}; choose one of {', '.join(KINDS)}")
    if pred_ab.shape != target_ab.shape:  # F.l1_loss would broadcast and only warn
        shapes = f"{tuple(pred_ab.shape)} and target {tuple(target_ab.shape)}"
        raise ValueError(f"prediction {shapes} differ in shape")
    return KINDS[kind](pred_ab.float(), target_ab.float())


class PixelLoss(nn.Module):
    """``reconstruction_loss`` of one ``kind`` as a module (what ``LOSSES.build("l1")`` returns)."""

    kind: str

    def forward(self, pred_ab: torch.Tensor, target_ab: torch.Tensor) -> torch.Tensor:
        return reconstruction_loss(pred_ab, target_ab, self.kind)


@LOSSES.register("l1")
class L1Loss(PixelLoss):
    kind = "l1"


@LOSSES.register("l2")
class L2Loss(PixelLoss):
    kind = "l2"
