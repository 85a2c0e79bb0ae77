"""Discriminators, registered in ``DISCRIMINATORS``, and the contract every one of them keeps.

The contract (checked by ``gan-colorize check-discriminator``, see ``contract.py``):

* ``forward(L_norm, ab_norm)``: L_norm (N, 1, H, W) and ab_norm (N, 2, H, W) in the package's
  normalisation (``gan_colorize.color.lab``). The discriminator is conditional: it judges ab
  *given* L, as pix2pix's D sees the input image beside the output (Isola et al. 2017, sec. 3.1);
  without L it could not tell a plausible colouring of this photo from one of another photo;
* it returns real/fake logits, no sigmoid (the losses in ``losses/adversarial.py`` take logits):
  a tensor (N, 1, h, w) (one logit per patch) or (N, 1) (one per image), or a list of such
  tensors, one per scale; the losses average over the list;
* gradients reach ab (the generator learns through them) and every parameter;
* ``receptive_field`` (optional): the input pixels one logit sees, or None where that is not
  defined (global pooling, attention); ``check-discriminator`` measures it either way and warns
  when a declared value disagrees with the measurement.

A new discriminator is a class with that forward in any module, named in a config as
``type: my_module:MyDisc``; ``template_discriminator.py`` is a copyable starting point.

The registered ones, after pix2pix (junyanz/pytorch-CycleGAN-and-pix2pix, ``models/networks.py``)
and pix2pixHD (Wang et al. 2018):

* ``patchgan``: ``NLayerDiscriminator``, the 70x70 PatchGAN at n_layers 3;
* ``pixelgan``: ``PixelDiscriminator``, 1x1 convolutions (receptive field 1);
* ``multiscale``: PatchGANs at several scales of the input (pix2pixHD's ``MultiscaleDiscriminator``).

Weights start from pix2pix's N(0, 0.02) init (``models/init.py``), which pix2pix's ``define_D``
applies to every discriminator.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from gan_colorize.models.init import init_pix2pix
from gan_colorize.registry import DISCRIMINATORS

NORMS = ("batch", "instance", "spectral", "none")
LEAK = 0.2  # LeakyReLU slope of pix2pix's (and DCGAN's) discriminators

# layers that act on each pixel alone: they leave the receptive field as it is
_POINTWISE = (
    nn.Identity,
    nn.LeakyReLU,
    nn.ReLU,
    nn.GELU,
    nn.SiLU,
    nn.Sigmoid,
    nn.Tanh,
    nn.Dropout,
    nn.Dropout2d,
    nn.BatchNorm2d,
    nn.InstanceNorm2d,
    nn.Sequential,
    nn.ModuleList,
    nn.ModuleDict,
)


def _first(value) -> int:
    """Square kernels only: the first entry of a (kh, kw) pair, or the int itself."""
    return int(value[0] if isinstance(value, tuple | list) else value)


def receptive_field(modules) -> int | None:
    """Receptive field, in input pixels, of a plain chain of convolutions and pools.

    Walking back from one output pixel through each layer (kernel k, stride s, dilation d):
    rf <- (rf - 1) * s + d * (k - 1) + 1. The modules are taken in the order given (pass
    ``net.modules()`` of an ``nn.Sequential``); pointwise layers (activations, norms, containers)
    are skipped. Returns None when the chain holds a layer this walk does not know how to
    account for (a linear layer, adaptive or global pooling, attention ...), and for branching
    networks (residual or U-shaped) the walk is not valid at all.
    """
    spatial = []
    for m in modules:
        if isinstance(m, nn.Conv2d | nn.AvgPool2d | nn.MaxPool2d):
            spatial.append(m)
        elif isinstance(m, _POINTWISE) or type(m).__module__.startswith("torch.nn.utils.parametriz"):
            continue  # spectral norm's ParametrizationList and its power-iteration module
        elif not any(True for _ in m.children()):  # an unknown leaf
            return None
    rf = 1
    for m in reversed(spatial):
        k, s = _first(m.kernel_size), _first(m.stride)
        d = _first(getattr(m, "dilation", 1))
        rf = (rf - 1) * s + d * (k - 1) + 1
    return rf


def _check_norm(norm: str) -> None:
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {', '.join(NORMS)}, got {norm!r}")


def _norm_layer(norm: str, channels: int) -> list[nn.Module]:
    if norm == "batch":
        return [nn.BatchNorm2d(channels)]
    if norm == "instance":
        # pix2pix's 'instance': no affine parameters, no running statistics
        return [nn.InstanceNorm2d(channels, affine=False, track_running_stats=False)]
    return []  # "spectral" acts on the weights (see _finish), "none" is none


def _bias_before_norm(norm: str) -> bool:
    # A norm that subtracts the per-channel mean cancels a constant bias before it exactly, so that
    # bias would be a parameter whose gradient is zero (up to rounding): none before BatchNorm (as
    # pix2pix) nor before InstanceNorm (pix2pix keeps one there, use_bias = "norm is InstanceNorm":
    # 896 dead parameters at width 64). pix2pix drops it for norm 'none', which leaves that network
    # without any shift: we keep it there and with spectral norm, which does not centre.
    return norm in ("spectral", "none")


def _finish(module: nn.Module, norm: str) -> None:
    """pix2pix's init, then spectral normalisation (Miyato et al. 2018) of every conv when asked:
    in that order, so that the power iteration starts from the initialised weights."""
    init_pix2pix(module)
    if norm == "spectral":
        for m in list(module.modules()):
            if isinstance(m, nn.Conv2d):
                spectral_norm(m)


class Discriminator(nn.Module):
    """Base class of the package's discriminators (not required of a user's own: the contract is the
    forward's signature and output, see the module docstring).

    Subclasses build ``self.net``, a network over the 3 channels (L, a, b); the base concatenates
    the inputs, and derives ``receptive_field`` from ``self.net`` when it is a plain chain.
    """

    net: nn.Module

    def forward(self, L_norm: torch.Tensor, ab_norm: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        return self.net(torch.cat([L_norm, ab_norm], dim=1))

    @property
    def receptive_field(self) -> int | None:
        net = getattr(self, "net", None)
        return receptive_field(net.modules()) if isinstance(net, nn.Sequential) else None


def patchgan_layers(n_layers: int, width: int, norm: str, in_channels: int) -> nn.Sequential:
    """pix2pix's NLayerDiscriminator: 4x4 convs with padding 1 and LeakyReLU 0.2; the first conv has
    no norm, the channels double per layer up to 8 * width, the last two convs have stride 1."""
    if n_layers < 1:
        raise ValueError(f"n_layers must be >= 1, got {n_layers}")
    bias = _bias_before_norm(norm)
    layers: list[nn.Module] = [
        nn.Conv2d(in_channels, width, 4, stride=2, padding=1),
        nn.LeakyReLU(LEAK, True),
    ]
    mult = 1
    for n in range(1, n_layers + 1):
        prev, mult = mult, min(2**n, 8)
        stride = 2 if n < n_layers else 1
        layers += [
            nn.Conv2d(width * prev, width * mult, 4, stride=stride, padding=1, bias=bias),
            *_norm_layer(norm, width * mult),
            nn.LeakyReLU(LEAK, True),
        ]
    layers.append(nn.Conv2d(width * mult, 1, 4, stride=1, padding=1))  # one logit per patch
    return nn.Sequential(*layers)


@DISCRIMINATORS.register("patchgan")
class PatchGAN(Discriminator):
    """The PatchGAN of pix2pix (Isola et al. 2017): one logit per overlapping patch.

    n_layers 3, width 64 is the 70x70 PatchGAN: 2,765,633 parameters with 3 input channels and
    batch norm, exactly pix2pix's count. Receptive fields: 16, 34, 70, 142, 286 for n_layers 1-5.
    Output: (N, 1, H/2^n - 2, ...) for n_layers = n (the last two 4x4 convs of stride 1 with
    padding 1 each take one pixel off), e.g. 6x6 at 64 px and 30x30 at 256 px for n = 3.
    """

    def __init__(self, n_layers: int = 3, width: int = 64, norm: str = "batch", in_channels: int = 3):
        super().__init__()
        _check_norm(norm)
        self.net = patchgan_layers(n_layers, width, norm, in_channels)
        _finish(self, norm)


@DISCRIMINATORS.register("pixelgan")
class PixelGAN(Discriminator):
    """pix2pix's PixelDiscriminator: 1x1 convs, one logit per pixel (receptive field 1). It judges
    the colour of each pixel given its lightness, never structure.

    pix2pix also drops the bias of the last conv under batch norm (its use_bias flag); we keep it,
    as for every other output conv here: nothing after it could supply the shift.
    """

    def __init__(self, width: int = 64, norm: str = "batch", in_channels: int = 3):
        super().__init__()
        _check_norm(norm)
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, width, 1),
            nn.LeakyReLU(LEAK, True),
            nn.Conv2d(width, width * 2, 1, bias=_bias_before_norm(norm)),
            *_norm_layer(norm, width * 2),
            nn.LeakyReLU(LEAK, True),
            nn.Conv2d(width * 2, 1, 1),
        )
        _finish(self, norm)


@DISCRIMINATORS.register("multiscale")
class MultiScale(Discriminator):
    """pix2pixHD's multi-scale discriminator: ``num_scales`` PatchGANs of the same architecture
    (separate weights), the k-th seeing the input average-pooled k times (3x3, stride 2, padding 1,
    padding not counted, as pix2pixHD). Returns a list of logit maps, finest first.

    The coarsest scale needs enough pixels for its PatchGAN: a 3-layer PatchGAN needs 32 px, so
    2 scales work from 64 px inputs, 3 scales (pix2pixHD's choice at 512-2048 px) from 128 px.
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
        x = torch.cat([L_norm, ab_norm], dim=1)
        outputs = []
        for i, scale in enumerate(self.scales):
            if i:
                x = self.down(x)
            outputs.append(scale.net(x))
        return outputs

    @property
    def receptive_field(self) -> int | None:
        """Of the coarsest scale, in input pixels (the finest scale's is the PatchGAN's own)."""
        chain = [self.down] * (len(self.scales) - 1) + list(self.scales[-1].net.modules())
        return receptive_field(chain)
