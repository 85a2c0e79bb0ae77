"""LPIPS (Zhang et al. 2018), version 0.1 with the AlexNet trunk: the variant the lpips package
recommends as a forward metric and the one colourisation papers report.

The network is :func:`gan_colorize.models.pretrained.build_lpips` (shared with the LPIPS loss): the
lpips package's linear calibration layers (``lpips/weights/v0.1/alex.pth``) on torchvision's ImageNet
AlexNet trunk ``alexnet-owt-7be5be79.pth`` (gan_colorize.weights.ALEXNET), read from ``weights=PATH``
or the torch hub cache and loaded strictly: every trunk parameter comes from the file, never from a
random initialisation, and nothing is downloaded. A missing file is a MissingWeightsError before
anything is built.

Inputs: uint8 / 127.5 - 1, the [-1, 1] range LPIPS expects; the value is the mean over images of
the per-image distance (0 = identical, lower is better). Images smaller than :data:`MIN_SIZE` on a
side are too small for the AlexNet trunk: ``update`` raises ``MetricNotApplicableError`` and the
evaluation reports "n/a (needs >= 31 px)" while the other metrics are computed.
"""

from __future__ import annotations

from pathlib import Path

import torch

from gan_colorize.metrics import Display, Metric, MetricNotApplicableError
from gan_colorize.models.pretrained import build_lpips
from gan_colorize.registry import METRICS

# AlexNet's smallest input side: conv1 (11x11, stride 4, pad 2) gives (S - 7) // 4 + 1 and each of
# the two 3x3 stride-2 max-pools needs >= 3 in, so (S - 7) // 4 + 1 >= 7, i.e. S >= 31
MIN_SIZE = 31


@METRICS.register("lpips")
class LPIPS(Metric):
    name = "lpips"
    primary = "lpips"
    higher_is_better = False
    needs_weights = True
    description = (
        "LPIPS v0.1, AlexNet trunk (lpips package, Zhang et al. 2018), inputs in [-1, 1], mean over images; "
        "0 = identical, lower is better"
    )
    display = (Display("lpips", "LPIPS", digits=3, better="lower", order=30, axis="distortion", axis_rank=1),)

    def __init__(self, device: str | torch.device = "cpu", weights: str | Path | None = None):
        super().__init__(device)
        self.model = build_lpips("alex", weights, version="0.1").to(self.device)
        self.total = 0.0
        self.n = 0

    def to_signed(self, images_u8: torch.Tensor) -> torch.Tensor:
        """uint8 0..255 -> float [-1, 1] on the metric's device."""
        return images_u8.to(self.device, torch.float32) / 127.5 - 1.0

    @torch.no_grad()
    def update(self, pred: torch.Tensor, gt: torch.Tensor) -> None:
        self.check_pair(pred, gt)
        if min(pred.shape[-2:]) < MIN_SIZE:
            height, width = pred.shape[-2:]
            raise MetricNotApplicableError(
                self.name,
                f">= {MIN_SIZE} px",
                f"the AlexNet trunk needs images of at least {MIN_SIZE}x{MIN_SIZE} px, "
                f"got {width}x{height} (WxH)",
            )
        distances = self.model(self.to_signed(pred), self.to_signed(gt))  # (N, 1, 1, 1)
        self.total += distances.double().sum().item()
        self.n += pred.shape[0]

    def compute(self) -> dict[str, float | int]:
        if self.n == 0:
            raise ValueError("lpips: no images were given")
        return {"lpips": self.total / self.n}
