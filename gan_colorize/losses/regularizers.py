"""Discriminator regularizers: registered in ``REGULARIZERS``, listed in ``loss.regularizers``.

A regularizer is called as ``penalty(D, L, real_ab, fake_ab)`` and returns a scalar to add to D's
loss; ``interval`` says how often it runs. The GAN objective runs every regularizer of interval 1
inside D's own phase (one optimizer step, as WGAN-GP does) and each lazy one (interval k > 1) as a
phase of its own every k steps (stylegan2-ada's ``Dreg``), its penalty multiplied by k so that the
regularization's strength per step stays the same (Karras et al. 2020, StyleGAN2, sec. 3.1 "lazy
regularization"; StyleGAN2 also rescales Adam's lr and betas by k/(k+1), which we leave out: the
penalty's own scaling is what makes gamma comparable across intervals).

The objective calls ``D`` here in float32 without autocast: a double backward in bf16 loses most of
the gradient norm's precision. ``D`` sees real (or interpolated) images alone, not the
concatenated real+fake batch of the main phases: a BatchNorm discriminator normalises them with
their own statistics here (the penalties are defined per sample; use an instance-norm or
norm-free D with them to avoid the mismatch).

The gradient is taken with respect to the judged colours (ab), not to the conditioning L.
"""

from __future__ import annotations

import torch

from gan_colorize.registry import REGULARIZERS


def _logit_sum(logits) -> torch.Tensor:
    scales = logits if isinstance(logits, (list, tuple)) else [logits]
    return sum(_full_precision(x).sum() for x in scales)


def _full_precision(x: torch.Tensor) -> torch.Tensor:
    return x if x.dtype in (torch.float32, torch.float64) else x.float()


def input_gradient(D, L: torch.Tensor, ab: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(d(sum of D's logits)/d(ab) per sample, with the graph kept for the double backward; 0 x the
    logit sum). The zero term makes every parameter of D part of the penalty's graph: the last
    layer's bias does not move the input gradient, and DDP's reducer, which waits for a gradient
    of every parameter, would hang or fail without it (stylegan2-ada's ``real_logits * 0 + loss_Dr1``)."""
    ab = _full_precision(ab.detach()).requires_grad_(True)
    total = _logit_sum(D(_full_precision(L), ab))
    (grad,) = torch.autograd.grad(total, ab, create_graph=True)
    return grad, total * 0


@REGULARIZERS.register("r1")
class R1Penalty:
    """R1 (Mescheder et al. 2018, eq. 9): ``gamma / 2 * E_real ||grad_ab D(L, ab)||^2``.

    ``gamma`` 10 and ``interval`` 16 are StyleGAN2's defaults for 256 px FFHQ-like data; the best
    gamma scales with the data (stylegan2-ada's heuristic: 0.0002 * resolution^2 / batch)."""

    needs_fake = False

    def __init__(self, gamma: float = 10.0, interval: int = 16):
        if gamma < 0 or interval < 1:
            raise ValueError(f"r1: gamma must be >= 0 and interval >= 1, got {gamma}, {interval}")
        self.gamma, self.interval = float(gamma), int(interval)

    def __call__(self, D, L, real_ab, fake_ab=None) -> torch.Tensor:
        grad, zero = input_gradient(D, L, real_ab)
        return grad.square().sum(dim=(1, 2, 3)).mean() * (self.gamma / 2) * self.interval + zero


@REGULARIZERS.register("gradient_penalty")
class GradientPenalty:
    """WGAN-GP (Gulrajani et al. 2017, eq. 3): ``weight * E (||grad D(x_hat)|| - target)^2`` at
    random interpolates ``x_hat = e * real + (1 - e) * fake``, ``e ~ U(0, 1)`` per sample; weight 10
    and target 1 are the paper's."""

    needs_fake = True

    def __init__(self, weight: float = 10.0, target: float = 1.0, interval: int = 1):
        if weight < 0 or interval < 1:
            raise ValueError(
                f"gradient_penalty: weight must be >= 0 and interval >= 1, got {weight}, {interval}"
            )
        self.weight, self.target, self.interval = float(weight), float(target), int(interval)

    def __call__(self, D, L, real_ab, fake_ab) -> torch.Tensor:
        e = torch.rand(real_ab.shape[0], 1, 1, 1, device=real_ab.device)
        e = e.to(real_ab.dtype) if real_ab.dtype == torch.float64 else e
        x_hat = e * _full_precision(real_ab.detach()) + (1 - e) * _full_precision(fake_ab.detach())
        grad, zero = input_gradient(D, L, x_hat)
        norm = grad.flatten(1).norm(dim=1)
        return self.weight * (norm - self.target).square().mean() * self.interval + zero
