"""The three training objectives, behind one interface the loop calls.

* ``regression``: L1 or L2 on ab (the regression baseline; Zhang et al. 2016's "L2 regression").
* ``classification``: rebalanced, soft-encoded cross-entropy over the 313 ab bins (Zhang et al. 2016,
  eq. 2-4), targets at the logits' 1/4 resolution.
* ``gan``: pix2pix's conditional GAN: adversarial loss + lambda_L1 * L1 (+ lambda_perc * perceptual),
  with an optional reconstruction-only warm-up of the generator (DeOldify's "NoGAN" idea).

Each objective returns its loss terms as a dict of scalar tensors; the loop logs them as
``loss/<term>`` and never calls ``.item()`` on them outside logging steps.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import numpy as np
import torch

from gan_colorize.color.lab import denormalize_ab, lab_norm_to_rgb
from gan_colorize.config import Config, ConfigError
from gan_colorize.registry import LOSSES


@dataclass
class Batch:
    L: torch.Tensor  # L_norm (N,1,H,W)
    ab: torch.Tensor  # ab_norm (N,2,H,W)
    rgb: torch.Tensor  # float sRGB in [0, 1] (N,3,H,W): the perceptual loss's target


OUTPUT_KIND = {"regression": "ab", "classification": "bins", "gan": "ab"}


def check_generator_fits(objective: str, generator: torch.nn.Module) -> None:
    kind = getattr(generator, "output_kind", "ab")
    if kind != OUTPUT_KIND[objective]:
        name = type(generator).__name__
        raise ConfigError(
            f"loss.objective {objective!r} needs a generator with output_kind {OUTPUT_KIND[objective]!r}, "
            f"but {name} has {kind!r} "
            "(classification: zhang_eccv16; regression/gan: unet, unet_zhang, zhang_regression)"
        )


class RegressionObjective:
    uses_discriminator = False

    def __init__(self, config: Config):
        self.kind = config.loss.regression
        self.recon = LOSSES.build(self.kind)

    def generator_terms(self, out: torch.Tensor, batch: Batch, step: int) -> dict[str, torch.Tensor]:
        return {self.kind: self.recon(out, batch.ab)}


class ClassificationObjective:
    uses_discriminator = False

    def __init__(self, config: Config, weights: torch.Tensor):
        from gan_colorize.color.bins import ABCodec

        self.loss_cfg = config.loss
        self.codec = ABCodec().to(weights.device)
        self.weights = weights

    def generator_terms(self, logits: torch.Tensor, batch: Batch, step: int) -> dict[str, torch.Tensor]:
        from gan_colorize.color.bins import rebalanced_cross_entropy

        factor = batch.ab.shape[-1] // logits.shape[-1]
        ab = self.codec.downsample_ab(denormalize_ab(batch.ab.float()), factor)
        targets = self.codec.soft_encode(ab, self.loss_cfg.soft_neighbours, self.loss_cfg.soft_sigma)
        return {"ce": rebalanced_cross_entropy(logits, targets, self.weights)}


class GANObjective:
    uses_discriminator = True

    def __init__(self, config: Config, perceptual: torch.nn.Module | None, autocast=contextlib.nullcontext):
        self.cfg = config.loss
        self.warmup = config.train.warmup_l1_steps
        self.gan = LOSSES.build({"type": "gan", "mode": self.cfg.gan_mode})
        self.recon = LOSSES.build(self.cfg.regression)
        self.perceptual = perceptual
        # the run's mixed precision for the feature network: accelerate autocasts only the prepared
        # G and D, and a VGG16 in float32 would cost more than the rest of the step
        self.autocast = autocast

    def adversarial(self, step: int) -> bool:
        return step >= self.warmup

    def generator_terms(
        self, fake: torch.Tensor, batch: Batch, step: int, d_fake=None
    ) -> dict[str, torch.Tensor]:
        terms = {
            "l1" if self.cfg.regression == "l1" else "l2": self.cfg.lambda_l1 * self.recon(fake, batch.ab)
        }
        if self.perceptual is not None and self.cfg.lambda_perc > 0:
            fake_rgb = lab_norm_to_rgb(batch.L, fake)  # float32: the colour conversion stays exact
            with self.autocast():
                terms["perceptual"] = self.cfg.lambda_perc * self.perceptual(fake_rgb, batch.rgb)
        if d_fake is not None:
            terms["g_adv"] = self.cfg.lambda_adv * self.gan.g_loss(d_fake)
        return terms

    def discriminator_terms(self, d_real, d_fake) -> dict[str, torch.Tensor]:
        return {"d": self.gan.d_loss(d_real, d_fake)}


def split_logits(logits, n: int):
    """Split a concatenated [real; fake] discriminator output (a tensor or a list of them)."""
    if isinstance(logits, (list, tuple)):
        pairs = [split_logits(x, n) for x in logits]
        return [p[0] for p in pairs], [p[1] for p in pairs]
    return logits[:n], logits[n:]


def class_weights(config: Config, prior_path, train_dataset, device, is_main: bool, wait) -> torch.Tensor:
    """Rebalancing weights (sec. 3.2) from the training-set prior (computed once, saved with the
    run, reused on resume) or from the paper's ImageNet prior."""
    from gan_colorize.color import bins

    if config.loss.prior == "imagenet":
        # the released prior is used as given (already smoothed), as the released training code does
        prior, sigma = bins.load_imagenet_prior(), 0.0
    else:
        sigma = config.loss.rebalance_sigma
        if is_main and not prior_path.is_file():
            bins.save_prior(prior_path, estimate_prior(train_dataset, config.loss.prior_samples))
        wait()  # every process reads the one file the main process wrote
        prior = bins.load_prior(prior_path)
    weights = bins.rebalance_weights(prior, lam=config.loss.rebalance_lambda, sigma=sigma)
    return torch.as_tensor(np.asarray(weights), dtype=torch.float32, device=device)


def estimate_prior(train_dataset, samples: int) -> np.ndarray:
    """Empirical distribution of ab over the 313 bins from ``samples`` training crops (epoch 0)."""
    from gan_colorize.color import bins
    from gan_colorize.color.lab import uint8_to_lab_norm

    codec = bins.ABCodec()
    counts = torch.zeros(313, dtype=torch.float64)
    for i in range(min(samples, len(train_dataset))):
        rgb = train_dataset[(0, i)].unsqueeze(0)
        _, ab = uint8_to_lab_norm(rgb)
        bins.accumulate_counts(codec, denormalize_ab(ab), counts)
    return bins.empirical_prior(counts.numpy())
