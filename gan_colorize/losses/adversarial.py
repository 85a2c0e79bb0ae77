"""Adversarial losses for the discriminator and the generator, in three flavours.

* ``vanilla``: binary cross-entropy on logits (Goodfellow et al. 2014), as pix2pix's ``GANLoss('vanilla')``.
  The generator minimises ``-log D(G(x))`` (the "non-saturating" loss of Goodfellow et al. 2014, sec. 3)
  rather than ``log(1 - D(G(x)))``, whose gradient vanishes while D still rejects the fakes.
* ``lsgan``: least squares to the targets 1 (real) and 0 (fake) (Mao et al. 2017), as pix2pix's ``'lsgan'``.
* ``hinge``: ``relu(1 - D(real)) + relu(1 + D(fake))`` for D and ``-D(fake)`` for G
  (Lim & Ye 2017; used by SAGAN, Zhang et al. 2019, and BigGAN, Brock et al. 2019).

pix2pix halves D's loss, ``(loss_real + loss_fake) * 0.5``, "so that D learns slower relative to G";
we do the same for ``vanilla`` and ``lsgan`` so their numbers match pix2pix's logs. ``hinge`` is not
halved, as in SAGAN/BigGAN.

Logits may be one tensor or a list of tensors (one per scale of a multi-scale discriminator, as in
pix2pixHD); the loss is then the mean of the per-scale losses. Every loss is computed in float32
(logits are cast first) so that bf16/fp16 autocast does not degrade the log/sigmoid or the squares.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

from gan_colorize.registry import LOSSES

Logits = torch.Tensor | Sequence[torch.Tensor]


def _bce(logits: torch.Tensor, target: float) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))


def _mse(logits: torch.Tensor, target: float) -> torch.Tensor:
    return F.mse_loss(logits, torch.full_like(logits, target))


def vanilla_d(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    return 0.5 * (_bce(real, 1.0) + _bce(fake, 0.0))


def vanilla_g(fake: torch.Tensor) -> torch.Tensor:
    return _bce(fake, 1.0)  # non-saturating: -log sigmoid(fake)


def lsgan_d(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    return 0.5 * (_mse(real, 1.0) + _mse(fake, 0.0))


def lsgan_g(fake: torch.Tensor) -> torch.Tensor:
    return _mse(fake, 1.0)


def hinge_d(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    return F.relu(1.0 - real).mean() + F.relu(1.0 + fake).mean()


def hinge_g(fake: torch.Tensor) -> torch.Tensor:
    return -fake.mean()


# mode -> (discriminator loss, generator loss)
MODES: dict[str, tuple[Callable, Callable]] = {
    "vanilla": (vanilla_d, vanilla_g),
    "lsgan": (lsgan_d, lsgan_g),
    "hinge": (hinge_d, hinge_g),
}


def as_scales(logits: Logits, what: str) -> list[torch.Tensor]:
    """One tensor or a list of per-scale tensors -> a non-empty list of float32 tensors."""
    scales = list(logits) if isinstance(logits, (list, tuple)) else [logits]
    if not scales:
        raise ValueError(f"{what} is an empty list of discriminator outputs")
    return [x.float() for x in scales]


@LOSSES.register("gan")
class GANLoss:
    """``d_loss(real_logits, fake_logits)`` and ``g_loss(fake_logits)`` for one adversarial ``mode``."""

    def __init__(self, mode: str = "vanilla"):
        if mode not in MODES:
            raise ValueError(f"unknown GAN loss mode {mode!r}; choose one of {', '.join(MODES)}")
        self.mode = mode
        self._d, self._g = MODES[mode]

    def d_loss(self, real_logits: Logits, fake_logits: Logits) -> torch.Tensor:
        real = as_scales(real_logits, "real_logits")
        fake = as_scales(fake_logits, "fake_logits")
        if len(real) != len(fake):
            raise ValueError(f"real_logits has {len(real)} scales but fake_logits has {len(fake)}")
        return torch.stack([self._d(r, f) for r, f in zip(real, fake)]).mean()

    def g_loss(self, fake_logits: Logits) -> torch.Tensor:
        return torch.stack([self._g(f) for f in as_scales(fake_logits, "fake_logits")]).mean()

    def __repr__(self) -> str:
        return f"GANLoss(mode={self.mode!r})"
