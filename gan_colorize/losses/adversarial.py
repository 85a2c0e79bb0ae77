"""Adversarial losses: registered in ``ADVERSARIAL_LOSSES``, chosen by ``loss.adversarial: {type: ...}``.

Every loss sees the discriminator's logits for the real and the fake images on both sides, as a
relativistic loss needs them: ``d_loss(real, fake)`` for D's phase and ``g_loss(real, fake)`` for
G's (the real logits there come from the same concatenated real+fake forward, computed without
gradients to D; a loss that ignores them pays nothing for them).

* ``vanilla``: binary cross-entropy on logits (Goodfellow et al. 2014), as pix2pix's
  ``GANLoss('vanilla')``. G minimises ``-log D(G(x))``, the "non-saturating" loss of Goodfellow et
  al. 2014, sec. 3, rather than ``log(1 - D(G(x)))``, whose gradient vanishes while D still rejects
  the fakes.
* ``lsgan``: least squares to the targets 1 (real) and 0 (fake) (Mao et al. 2017), pix2pix's ``'lsgan'``.
* ``hinge``: ``relu(1 - D(real)) + relu(1 + D(fake))`` for D and ``-D(fake)`` for G (Lim & Ye 2017;
  SAGAN, Zhang et al. 2019; BigGAN, Brock et al. 2019).
* ``wgan``: the critic's ``D(fake) - D(real)`` and G's ``-D(fake)`` (Arjovsky et al. 2017). Without a
  Lipschitz constraint it diverges: pair it with the ``gradient_penalty`` regularizer (WGAN-GP,
  Gulrajani et al. 2017) or a spectral-norm discriminator.
* ``relativistic_average``: RaGAN (Jolicoeur-Martineau 2019) in ESRGAN's form (Wang et al. 2018,
  eq. 1-2): ``D_Ra(a, b) = sigmoid(C(a) - mean C(b))``, D maximises ``log D_Ra(real, fake) +
  log(1 - D_Ra(fake, real))`` and G the same with real and fake swapped; both halves averaged, as
  ESRGAN's code does. The mean is over the whole logit tensor (batch and patches).

pix2pix halves D's loss, ``(loss_real + loss_fake) * 0.5``, "so that D learns slower relative to
G"; ``vanilla`` and ``lsgan`` do the same so their numbers match pix2pix's logs. ``hinge`` and
``wgan`` are not halved, as in their papers' code.

Logits may be one tensor or a list of tensors (one per scale of a multi-scale discriminator, as in
pix2pixHD); the loss is then the mean of the per-scale losses. Every loss is computed in float32
(logits are cast first) so that bf16/fp16 autocast does not degrade the log/sigmoid or the squares.

A new loss is a class with ``d_loss_scale(real, fake)`` and ``g_loss_scale(real, fake)`` on single
tensors (subclass :class:`AdversarialLoss`, which adds the multi-scale handling), named in a config
by ``type: my_module:MyLoss`` or registered with ``@ADVERSARIAL_LOSSES.register("name")``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from gan_colorize.registry import ADVERSARIAL_LOSSES

Logits = torch.Tensor | Sequence[torch.Tensor]


def as_scales(logits: Logits, what: str) -> list[torch.Tensor]:
    """One tensor or a list of per-scale tensors -> a non-empty list of float32 tensors."""
    scales = list(logits) if isinstance(logits, (list, tuple)) else [logits]
    if not scales:
        raise ValueError(f"{what} is an empty list of discriminator outputs")
    return [x.float() for x in scales]


def _bce(logits: torch.Tensor, target: float) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))


def _mse(logits: torch.Tensor, target: float) -> torch.Tensor:
    return F.mse_loss(logits, torch.full_like(logits, target))


class AdversarialLoss:
    """The multi-scale, float32 frame around a loss written for single logit tensors."""

    def d_loss_scale(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def g_loss_scale(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _per_scale(self, loss, real_logits: Logits, fake_logits: Logits) -> torch.Tensor:
        real = as_scales(real_logits, "real_logits")
        fake = as_scales(fake_logits, "fake_logits")
        if len(real) != len(fake):
            raise ValueError(f"real_logits has {len(real)} scales but fake_logits has {len(fake)}")
        return torch.stack([loss(r, f) for r, f in zip(real, fake)]).mean()

    def d_loss(self, real_logits: Logits, fake_logits: Logits) -> torch.Tensor:
        return self._per_scale(self.d_loss_scale, real_logits, fake_logits)

    def g_loss(self, real_logits: Logits, fake_logits: Logits) -> torch.Tensor:
        return self._per_scale(self.g_loss_scale, real_logits, fake_logits)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


@ADVERSARIAL_LOSSES.register("vanilla")
class VanillaLoss(AdversarialLoss):
    def d_loss_scale(self, real, fake):
        return 0.5 * (_bce(real, 1.0) + _bce(fake, 0.0))

    def g_loss_scale(self, real, fake):
        return _bce(fake, 1.0)  # non-saturating: -log sigmoid(fake)


@ADVERSARIAL_LOSSES.register("lsgan")
class LSGANLoss(AdversarialLoss):
    def d_loss_scale(self, real, fake):
        return 0.5 * (_mse(real, 1.0) + _mse(fake, 0.0))

    def g_loss_scale(self, real, fake):
        return _mse(fake, 1.0)


@ADVERSARIAL_LOSSES.register("hinge")
class HingeLoss(AdversarialLoss):
    def d_loss_scale(self, real, fake):
        return F.relu(1.0 - real).mean() + F.relu(1.0 + fake).mean()

    def g_loss_scale(self, real, fake):
        return -fake.mean()


@ADVERSARIAL_LOSSES.register("wgan")
class WassersteinLoss(AdversarialLoss):
    def d_loss_scale(self, real, fake):
        return fake.mean() - real.mean()

    def g_loss_scale(self, real, fake):
        return -fake.mean()


@ADVERSARIAL_LOSSES.register("relativistic_average")
class RelativisticAverageLoss(AdversarialLoss):
    def d_loss_scale(self, real, fake):
        return 0.5 * (_bce(real - fake.mean(), 1.0) + _bce(fake - real.mean(), 0.0))

    def g_loss_scale(self, real, fake):
        # real logits carry no gradient to G; D's weights are not being trained in this phase
        return 0.5 * (_bce(real - fake.mean(), 0.0) + _bce(fake - real.mean(), 1.0))
