"""Discriminators, registered in ``DISCRIMINATORS``, and the contract every one of them keeps.

The contract (checked by ``gan-colorize check-discriminator``, ``gan_colorize/models/contract.py``):

* ``forward(L_norm, ab_norm)`` with L_norm (N, 1, H, W) and ab_norm (N, 2, H, W) in the package's
  normalisation (``gan_colorize.color.lab``); the discriminator is conditional: it sees L as well
  as ab, as pix2pix's D sees the input image beside the output;
* it returns real/fake logits (no sigmoid): a tensor (N, 1, h, w) or (N, 1), or a list of such
  tensors (one per scale); the GAN losses average over the list;
* gradients flow to ab (the generator learns through them) and to every parameter;
* ``receptive_field``: pixels of the input one logit sees, or None where that is not defined.

A new discriminator is a class with that forward, in any module: ``type: my_module:MyDisc`` in a
config. ``template_discriminator.py`` is a copyable starting point.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from gan_colorize.registry import DISCRIMINATORS

NORMS = ("batch", "instance", "spectral", "none")


def receptive_field(modules) -> int:
    """Receptive field of a chain of convolutions/pools: walking back from one output pixel,
    rf <- (rf - 1) * stride + dilation * (kernel - 1) + 1."""
    rf = 1
    for m in reversed([m for m in modules if isinstance(m, (nn.Conv2d, nn.AvgPool2d, nn.MaxPool2d))]):
        k = m.kernel_size[0] if isinstance(m.kernel_size, tuple) else m.kernel_size
        s = m.stride[0] if isinstance(m.stride, tuple) else m.stride
        d = m.dilation[0] if isinstance(getattr(m, "dilation", 1), tuple) else getattr(m, "dilation", 1)
        rf = (rf - 1) * s + d * (k - 1) + 1
    return rf


def _conv(norm: str, *args, bias: bool, **kwargs) -> nn.Conv2d:
    conv = nn.Conv2d(*args, bias=bias, **kwargs)
    return spectral_norm(conv) if norm == "spectral" else conv


def _norm(norm: str, channels: int) -> list[nn.Module]:
    if norm == "batch":
        return [nn.BatchNorm2d(channels)]
    if norm == "instance":
        return [nn.InstanceNorm2d(channels)]
    return []  # spectral (on the conv) and none


def _uses_bias(norm: str) -> bool:
    # pix2pix: no bias before BatchNorm (its shift makes one redundant); InstanceNorm without
    # affine parameters, spectral norm and no norm keep the bias
    return norm != "batch"


def _check_norm(norm: str) -> None:
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")


class Discriminator(nn.Module):
    """Base class: concatenates L and ab and runs ``self.net``."""

    net: nn.Module

    def forward(self, L_norm: torch.Tensor, ab_norm: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([L_norm, ab_norm], dim=1))

    @property
    def receptive_field(self) -> int | None:
        return receptive_field(self.net.modules())


@DISCRIMINATORS.register("patchgan")
class PatchGAN(Discriminator):
    """pix2pix's NLayerDiscriminator: 4x4 convs, LeakyReLU 0.2, one logit per overlapping patch.

    n_layers 3, width 64 is the 70x70 PatchGAN (2,765,633 parameters with 3 input channels and
    batch norm, as in pix2pix). The receptive field grows as 70, 142, 286 for 3, 4, 5 layers.
    """

    def __init__(self, n_layers: int = 3, width: int = 64, norm: str = "batch", in_channels: int = 3):
        super().__init__()
        _check_norm(norm)
        bias = _uses_bias(norm)
        layers = [_conv(norm, in_channels, width, 4, stride=2, padding=1, bias=True), nn.LeakyReLU(0.2, True)]
        mult = 1
        for n in range(1, n_layers + 1):
            prev, mult = mult, min(2**n, 8)
            stride = 2 if n < n_layers else 1  # the last hidden conv keeps the resolution
            layers += [
                _conv(norm, width * prev, width * mult, 4, stride=stride, padding=1, bias=bias),
                *_norm(norm, width * mult),
                nn.LeakyReLU(0.2, True),
            ]
        layers.append(_conv(norm, width * mult, 1, 4, stride=1, padding=1, bias=True))
        self.net = nn.Sequential(*layers)


@DISCRIMINATORS.register("pixelgan")
class PixelGAN(Discriminator):
    """pix2pix's PixelDiscriminator: 1x1 convs, one logit per pixel (receptive field 1): it can
    judge colour statistics only, never structure."""

    def __init__(self, width: int = 64, norm: str = "batch", in_channels: int = 3):
        super().__init__()
        _check_norm(norm)
        self.net = nn.Sequential(
            _conv(norm, in_channels, width, 1, bias=True),
            nn.LeakyReLU(0.2, True),
            _conv(norm, width, width * 2, 1, bias=_uses_bias(norm)),
            *_norm(norm, width * 2),
            nn.LeakyReLU(0.2, True),
            _conv(norm, width * 2, 1, 1, bias=True),
        )


@DISCRIMINATORS.register("multiscale")
class MultiScale(nn.Module):
    """The same PatchGAN applied at ``num_scales`` scales (pix2pixHD): the input is average-pooled
    (3x3, stride 2) between scales; returns a list of logit maps, finest first.

    The coarsest scale must still be at least ~2^(n_layers+1) pixels: 2 scales of a 3-layer
    PatchGAN need 32 px inputs, 3 scales (pix2pixHD's choice at 512-2048 px) need 64 px.
    """

    def __init__(
        self,
        num_scales: int = 2,
        n_layers: int = 3,
        width: int = 64,
        norm: str = "batch",
        in_channels: int = 3,
    ):
        super().__init__()
        if num_scales < 1:
            raise ValueError(f"num_scales must be >= 1, got {num_scales}")
        self.scales = nn.ModuleList(PatchGAN(n_layers, width, norm, in_channels) for _ in range(num_scales))
        self.down = nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False)

    def forward(self, L_norm: torch.Tensor, ab_norm: torch.Tensor) -> list[torch.Tensor]:
        x, outputs = torch.cat([L_norm, ab_norm], dim=1), []
        for i, disc in enumerate(self.scales):
            if i:
                x = self.down(x)
            outputs.append(disc.net(x))
        return outputs

    @property
    def receptive_field(self) -> int:
        """Of the coarsest scale, in input pixels (the finest is the PatchGAN's own)."""
        base = self.scales[0].receptive_field
        k = len(self.scales) - 1
        return base if k == 0 else receptive_field([self.down] * k + list(self.scales[-1].net.modules()))
