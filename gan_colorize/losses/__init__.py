"""Training losses: adversarial (``gan``), per-pixel reconstruction (``l1``, ``l2``) and perceptual
(``perceptual``, over the feature networks in ``FEATURE_NETS``), all registered in ``LOSSES``.

The rebalanced classification cross-entropy of Zhang et al. 2016 lives with the ab bins it is
defined over, in :mod:`gan_colorize.color.bins`.
"""

from gan_colorize.losses.adversarial import GANLoss
from gan_colorize.losses.perceptual import (
    EfficientNetLite0Features,
    IncompatibleWeightsError,
    LPIPSDistance,
    MissingPackageError,
    PerceptualLoss,
    VGG16Features,
)
from gan_colorize.losses.reconstruction import L1Loss, L2Loss, reconstruction_loss

__all__ = [
    "EfficientNetLite0Features",
    "GANLoss",
    "IncompatibleWeightsError",
    "L1Loss",
    "L2Loss",
    "LPIPSDistance",
    "MissingPackageError",
    "PerceptualLoss",
    "VGG16Features",
    "reconstruction_loss",
]
