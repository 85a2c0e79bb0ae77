"""pix2pix's U-Net generator (Isola et al. 2017), built from nested skip-connection blocks.

The structure follows ``UnetGenerator`` / ``UnetSkipConnectionBlock`` of
junyanz/pytorch-CycleGAN-and-pix2pix (``models/networks.py``)::

    x ---------------------------- identity --------------------------- cat -> (to the outer block)
    |-- LeakyReLU(0.2) - conv 4x4/2 - norm -- |inner block| -- ReLU - up x2 - norm --|

* ``depth`` blocks, each halving the resolution; inner channels ``width * min(2**level, 8)``.
* The outermost block has no LeakyReLU or norm before its conv and ends with ``tanh``; the innermost
  block has no norm on its way down (at 256 px with depth 8 its feature map is 1x1, where batch norm
  over a batch of one is undefined).
* Dropout 0.5 after the up path of the ``depth - 5`` blocks with ``8 * width`` channels on both sides
  just outside the innermost (3 for pix2pix's ``unet_256``, "use_dropout").
* Bias only where no affine norm follows: pix2pix sets ``bias`` for convs followed by InstanceNorm
  (affine=False) and not for those followed by BatchNorm. With ``norm="none"`` pix2pix keeps
  ``bias=False`` (its Identity norm is not InstanceNorm); we set ``bias=True`` there, since without
  a norm nothing else can shift the activations.

``depth=8, width=64, norm="batch", upsample="convtranspose"`` with 1 input and 2 output channels is
pix2pix's ``unet_256`` for colorization: 54,409,858 parameters (``tests/test_models_generators.py``).
"""

from __future__ import annotations

import torch
from torch import nn

from gan_colorize.models.init import init_pix2pix
from gan_colorize.models.io import pad_to_multiple
from gan_colorize.registry import GENERATORS

NORMS = ("batch", "instance", "none")
UPSAMPLES = ("convtranspose", "bilinear")


def norm_layer(kind: str, channels: int) -> nn.Module:
    """pix2pix's ``get_norm_layer``: BatchNorm (affine, running stats), InstanceNorm (neither), none."""
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=False, track_running_stats=False)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"unknown norm {kind!r}; choose one of {', '.join(NORMS)}")


def conv_bias(norm: str) -> bool:
    """Whether a conv needs its own bias: not when a BatchNorm (with its own shift) follows it."""
    return norm != "batch"


def upsampling_conv(in_ch: int, out_ch: int, mode: str, bias: bool) -> nn.Module:
    """x2 upsampling: pix2pix's 4x4 stride-2 transposed conv, or bilinear + 3x3 conv.

    The bilinear variant avoids the checkerboard artefacts of transposed convolutions
    (Odena et al. 2016, "Deconvolution and Checkerboard Artifacts", Distill).
    """
    if mode == "convtranspose":
        return nn.ConvTranspose2d(in_ch, out_ch, kernel_size=4, stride=2, padding=1, bias=bias)
    if mode == "bilinear":
        return nn.Sequential(
            nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
            nn.Conv2d(in_ch, out_ch, kernel_size=3, stride=1, padding=1, bias=bias),
        )
    raise ValueError(f"unknown upsample {mode!r}; choose one of {', '.join(UPSAMPLES)}")


class UnetSkipBlock(nn.Module):
    """One level of the U-Net: down, the inner block, up; its input concatenated to its output.

    ``outer_ch``: channels this block returns (before the concatenation) and, unless ``in_ch`` is
    given, receives; ``inner_ch``: channels of its downsampled features.
    """

    def __init__(
        self,
        outer_ch: int,
        inner_ch: int,
        *,
        in_ch: int | None = None,
        inner: nn.Module | None = None,
        outermost: bool = False,
        norm: str = "batch",
        dropout: bool = False,
        upsample: str = "convtranspose",
    ):
        super().__init__()
        self.outermost = outermost
        innermost = inner is None
        in_ch = outer_ch if in_ch is None else in_ch
        bias = conv_bias(norm)
        downconv = nn.Conv2d(in_ch, inner_ch, kernel_size=4, stride=2, padding=1, bias=bias)
        # the inner block returns its input and its output concatenated: twice the channels
        up_in = inner_ch if innermost else inner_ch * 2

        if outermost:
            down = [downconv]
            up = [nn.ReLU(True), upsampling_conv(up_in, outer_ch, upsample, bias=True), nn.Tanh()]
        elif innermost:
            down = [nn.LeakyReLU(0.2, True), downconv]  # no norm: see the module docstring
            up = [nn.ReLU(True), upsampling_conv(up_in, outer_ch, upsample, bias), norm_layer(norm, outer_ch)]
        else:
            down = [nn.LeakyReLU(0.2, True), downconv, norm_layer(norm, inner_ch)]
            up = [nn.ReLU(True), upsampling_conv(up_in, outer_ch, upsample, bias), norm_layer(norm, outer_ch)]
            if dropout:
                up.append(nn.Dropout(0.5))
        self.down = nn.Sequential(*down)
        self.inner = inner if inner is not None else nn.Identity()
        self.up = nn.Sequential(*up)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.up(self.inner(self.down(x)))
        return y if self.outermost else torch.cat([x, y], dim=1)


@GENERATORS.register("unet")
class UNet(nn.Module):
    """pix2pix U-Net: L_norm (N,1,H,W) -> ab_norm (N,2,H,W) through tanh.

    Any H and W work: sizes that are not a multiple of ``2**depth`` (:attr:`input_multiple`) are
    reflect-padded at the bottom and right up to the next multiple (replicate-padded where the image
    is smaller than the padding, as ``gan_colorize.models.io.pad_to_multiple`` does) and the output
    is cropped back to H x W. Multiples go through the network unchanged.
    """

    output_kind = "ab"

    def __init__(
        self,
        depth: int = 8,
        width: int = 64,
        norm: str = "batch",
        dropout: bool = True,
        upsample: str = "convtranspose",
        in_channels: int = 1,
        out_channels: int = 2,
    ):
        super().__init__()
        if depth < 2:
            raise ValueError(f"unet depth must be at least 2, got {depth}")
        norm_layer(norm, 1)  # validate the names before building anything
        upsampling_conv(1, 1, upsample, True)
        self.depth = depth

        def channels(level: int) -> int:  # pix2pix: ngf, 2 ngf, 4 ngf, then 8 ngf down to the bottleneck
            return width * min(2**level, 8)

        block = UnetSkipBlock(channels(depth - 2), channels(depth - 1), norm=norm, upsample=upsample)
        for level in range(depth - 2, 0, -1):
            # pix2pix's use_dropout blocks: 8 ngf on both sides, outside the innermost (levels >= 4)
            block = UnetSkipBlock(
                channels(level - 1),
                channels(level),
                inner=block,
                norm=norm,
                dropout=dropout and level >= 4,
                upsample=upsample,
            )
        self.model = UnetSkipBlock(
            out_channels, width, in_ch=in_channels, inner=block, outermost=True, norm=norm, upsample=upsample
        )
        init_pix2pix(self)

    @property
    def input_multiple(self) -> int:
        return 2**self.depth

    def forward(self, L_norm: torch.Tensor) -> torch.Tensor:
        padded, (h, w) = pad_to_multiple(L_norm, self.input_multiple)
        return self.model(padded)[..., :h, :w]
