"""Template: your own discriminator in one file, used from a config without touching the package.

This file is deliberately NOT registered by name: it is used exactly as a file of yours would be,

    model:
      discriminator: {type: gan_colorize.models.template_discriminator:MyDiscriminator, widths: [32, 64, 128]}

To make your own:

1. Copy this file next to your configs (or anywhere Python can import from)::

       cp gan_colorize/models/template_discriminator.py my_discriminators.py

2. Rename ``MyDiscriminator`` and change the layers. Keep the contract (it is short):
   ``forward(L_norm, ab_norm)`` takes L_norm (N, 1, H, W) and ab_norm (N, 2, H, W) and returns
   logits (no sigmoid) as (N, 1, h, w), (N, 1) or a list of those; it uses L (it is conditional)
   and every parameter gets a gradient. ``receptive_field`` is optional: the check measures it.
3. Check it, with the arguments you will train with::

       PYTHONPATH=. gan-colorize check-discriminator my_discriminators:MyDiscriminator --arg widths=[32,64]

   It runs forward and backward at two sizes in float32 and bfloat16, names what breaks (and why:
   an unused layer, a ReLU dead zone, a bias cancelled by the norm after it ...) and measures the
   receptive field: the input pixels that change the centre logit.
4. Put it in the config's ``model.discriminator``: ``type: my_discriminators:MyDiscriminator`` and
   its arguments beside it. Every key besides ``type`` is passed to ``__init__``; a misspelt key
   is an error naming the arguments ``__init__`` takes. Train with the same ``PYTHONPATH=.`` (or
   any path that makes ``my_discriminators`` importable).

The example: a PatchGAN whose widths are given as a list (pix2pix's doubles 64 -> 512), with
instance norm and a 3x3 head; with the default widths [32, 64, 128] it has 166,561 parameters
and each logit sees 38 x 38 pixels.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

# Optional helpers from the package; a file of yours may use them too, or not.
from gan_colorize.models.discriminators import receptive_field
from gan_colorize.models.init import init_pix2pix


class MyDiscriminator(nn.Module):
    """A conditional PatchGAN with a free width schedule.

    Args (every one of them may be set from the config):
        widths: output channels of the 4x4 stride-2 convs, one entry per downsampling.
        leak: LeakyReLU slope (0.2 in pix2pix and DCGAN).
    """

    def __init__(self, widths: Sequence[int] = (32, 64, 128), leak: float = 0.2):
        super().__init__()
        if not widths:
            raise ValueError("widths must name at least one layer")
        layers: list[nn.Module] = []
        channels = 3  # the input is L and ab concatenated: 1 + 2 channels
        for i, width in enumerate(widths):
            normalised = (
                i > 0
            )  # no norm on the first layer, as pix2pix: it would erase the input's statistics
            # No bias before a norm: InstanceNorm subtracts the channel mean, which cancels a bias
            # exactly; it would be a parameter without gradient, and check-discriminator says so.
            layers.append(nn.Conv2d(channels, width, kernel_size=4, stride=2, padding=1, bias=not normalised))
            if normalised:
                # affine=False and no running statistics, so every parameter is a conv's
                layers.append(nn.InstanceNorm2d(width))
            layers.append(nn.LeakyReLU(leak, inplace=True))
            channels = width
        # the head: one logit per patch; no sigmoid, the GAN losses take logits
        layers.append(nn.Conv2d(channels, 1, kernel_size=3, stride=1, padding=1))
        self.net = nn.Sequential(*layers)
        init_pix2pix(self)  # N(0, 0.02), as every discriminator of the package

    def forward(self, L_norm: torch.Tensor, ab_norm: torch.Tensor) -> torch.Tensor:
        # Conditional: judge the colours given the lightness. Build a new tensor (torch.cat does):
        # never modify L_norm or ab_norm in place, the training loop reuses them.
        x = torch.cat([L_norm, ab_norm], dim=1)
        return self.net(x)  # (N, 1, H / 2^len(widths), W / 2^len(widths))

    @property
    def receptive_field(self) -> int | None:
        # Optional: check-discriminator measures the receptive field and warns when this disagrees.
        # Input pixels one logit sees; None if your network pools globally or attends. The helper
        # only walks plain chains of convolutions: for a branching network, delete this property.
        return receptive_field(self.net.modules())
