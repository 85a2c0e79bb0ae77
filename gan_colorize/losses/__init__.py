"""Training losses: per-pixel reconstruction (``l1``, ``l2``) and perceptual (``perceptual``, over the
feature networks in ``FEATURE_NETS``), registered in ``LOSSES``; adversarial losses
(``ADVERSARIAL_LOSSES``) and discriminator regularizers (``REGULARIZERS``) in their own registries.

The rebalanced classification cross-entropy of Zhang et al. 2016 lives with the ab bins it is
defined over, in :mod:`gan_colorize.color.bins`.
"""

from gan_colorize.losses.adversarial import AdversarialLoss
from gan_colorize.losses.perceptual import (
    EfficientNetLite0Features,
    IncompatibleWeightsError,
    LPIPSDistance,
    MissingPackageError,
    PerceptualLoss,
    VGG16Features,
)
from gan_colorize.losses.reconstruction import L1Loss, L2Loss, reconstruction_loss
from gan_colorize.losses.regularizers import GradientPenalty, R1Penalty

__all__ = [
    "EfficientNetLite0Features",
    "GradientPenalty",
    "R1Penalty",
    "AdversarialLoss",
    "IncompatibleWeightsError",
    "L1Loss",
    "L2Loss",
    "LPIPSDistance",
    "MissingPackageError",
    "PerceptualLoss",
    "VGG16Features",
    "reconstruction_loss",
]
