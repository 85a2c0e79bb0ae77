"""Training objectives: registered components that own their steps; the loop knows none of them.

An objective (``loss.objective``: a name in ``OBJECTIVES`` or ``module:Class``) tells the loop which
networks besides the generator it trains (:meth:`Objective.networks`), in which phases (:class:`Phase`:
which network's optimizer steps, how often, on which of the step's batches) and computes each
phase's loss terms (:meth:`Objective.accumulate`); the loop prepares the networks, runs the
backward passes and the optimizer steps, and keeps gradients of the networks a phase does not
update switched off and unsynchronised, after stylegan2-ada's ``loss.accumulate_gradients(phase)``.

* ``regression``: L1 or L2 on ab (the regression baseline; Zhang et al. 2016's "L2 regression").
* ``classification``: rebalanced, soft-encoded cross-entropy over the 313 ab bins (Zhang et al. 2016,
  eq. 2-4), targets at the logits' 1/4 resolution.
* ``gan`` (:mod:`gan_colorize.training.gan`): pix2pix's conditional GAN with a pluggable adversarial
  loss and discriminator regularizers.

Loss terms are dicts of scalar tensors; the loop logs them as ``loss/<term>`` and never calls
``.item()`` on them outside logging steps.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from gan_colorize.color.lab import denormalize_ab
from gan_colorize.config import Config, ConfigError
from gan_colorize.registry import LOSSES, OBJECTIVES


@dataclass
class Batch:
    L: torch.Tensor  # L_norm (N,1,H,W)
    ab: torch.Tensor  # ab_norm (N,2,H,W)
    rgb: torch.Tensor  # float sRGB in [0, 1] (N,3,H,W): the perceptual loss's target


@dataclass(frozen=True)
class Phase:
    """One optimizer update of one network within a training step."""

    name: str  # what the log and errors call it: "G", "D", "Dreg"
    network: str  # whose optimizer steps: "G" or a key of Objective.networks()
    interval: int = 1  # runs at steps with step % interval == 0
    batch: int = 0  # which of the step's batches it reads (0 .. batches_per_step - 1)


@dataclass
class TrainingContext:
    """What an objective may use from the trainer: the config, where it runs, and how."""

    config: Config
    device: torch.device
    run: Any  # the RunDir (its prior file, for the classification objective)
    autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext
    is_main_process: bool = True
    wait_for_everyone: Callable[[], None] = lambda: None
    # set by the loop before bind(): network name -> the module to call in a step (prepared, maybe
    # compiled), and -> the prepared module itself (what a float32 pass or no_sync needs)
    call: dict[str, Callable] = field(default_factory=dict)
    modules: dict[str, torch.nn.Module] = field(default_factory=dict)


class Objective:
    """The interface the loop calls. Subclasses set ``output_kind`` (the generator output they
    train: ``"ab"`` or ``"bins"``) and implement :meth:`accumulate`."""

    output_kind = "ab"
    batches_per_step = 1  # batches the loop draws per step (each phase reads one of them)
    fixed_on_resume: tuple[str, ...] = ()  # config keys a resumed run may not change (its networks' specs)

    @classmethod
    def check_config(cls, config: Config) -> None:
        """Raise ConfigError for settings this objective cannot train (called when the config is read)."""

    def __init__(self, context: TrainingContext):
        self.ctx = context
        self.cfg = context.config

    def networks(self) -> dict[str, torch.nn.Module]:
        """Networks trained beside the generator ("G"), by name; built here, prepared by the loop."""
        return {}

    def learning_rate(self, network: str) -> float:
        raise KeyError(network)

    def bind(self, train_set) -> None:
        """Called once the networks are prepared (``self.ctx.call``/``modules``) and the data is built."""

    def phases(self) -> list[Phase]:
        return [Phase("G", "G")]

    def accumulate(self, phase: Phase, batch: Batch, step: int) -> dict[str, torch.Tensor] | None:
        """The loss terms of ``phase`` on ``batch`` (summed and backpropagated by the loop), or None
        when the phase does nothing at this step."""
        raise NotImplementedError


def check_generator_fits(objective: Objective | type, generator: torch.nn.Module) -> None:
    kind, wanted = getattr(generator, "output_kind", "ab"), objective.output_kind
    if kind != wanted:
        name = type(generator).__name__
        raise ConfigError(
            f"loss.objective {getattr(objective, 'registry_name', objective)!r} needs a generator with "
            f"output_kind {wanted!r}, but {name} has {kind!r} "
            "(classification: zhang_eccv16, unet_backbone with output: bins; regression/gan: unet, "
            "unet_zhang, unet_backbone, zhang_regression)"
        )


@OBJECTIVES.register("regression")
class RegressionObjective(Objective):
    def __init__(self, context: TrainingContext):
        super().__init__(context)
        self.kind = self.cfg.loss.regression
        self.recon = LOSSES.build(self.kind)

    def accumulate(self, phase: Phase, batch: Batch, step: int) -> dict[str, torch.Tensor]:
        return self.generator_terms(self.ctx.call["G"](batch.L), batch, step)

    def generator_terms(self, out: torch.Tensor, batch: Batch, step: int) -> dict[str, torch.Tensor]:
        return {self.kind: self.recon(out, batch.ab)}


@OBJECTIVES.register("classification")
class ClassificationObjective(Objective):
    output_kind = "bins"

    def __init__(self, context: TrainingContext):
        super().__init__(context)
        from gan_colorize.color.bins import ABCodec

        self.loss_cfg = self.cfg.loss
        self.codec = ABCodec().to(context.device)
        self.weights = None

    def bind(self, train_set) -> None:
        ctx = self.ctx
        self.weights = class_weights(
            self.cfg, ctx.run.prior, train_set, ctx.device, ctx.is_main_process, ctx.wait_for_everyone
        )

    def accumulate(self, phase: Phase, batch: Batch, step: int) -> dict[str, torch.Tensor]:
        return self.generator_terms(self.ctx.call["G"](batch.L), batch, step)

    def generator_terms(self, logits: torch.Tensor, batch: Batch, step: int) -> dict[str, torch.Tensor]:
        from gan_colorize.color.bins import rebalanced_cross_entropy

        factor = batch.ab.shape[-1] // logits.shape[-1]
        ab = self.codec.downsample_ab(denormalize_ab(batch.ab.float()), factor)
        targets = self.codec.soft_encode(ab, self.loss_cfg.soft_neighbours, self.loss_cfg.soft_sigma)
        return {"ce": rebalanced_cross_entropy(logits, targets, self.weights)}


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
    for rgb in prior_crops(train_dataset, min(samples, len(train_dataset))):
        _, ab = uint8_to_lab_norm(rgb)
        bins.accumulate_counts(codec, denormalize_ab(ab), counts)
    return bins.empirical_prior(counts.numpy())


def prior_crops(train_dataset, samples: int):
    """``samples`` training crops of epoch 0 as uint8 batches: the first items of an indexed
    dataset, the first of the stream of a streaming one (shards cannot be indexed)."""
    if not hasattr(train_dataset, "batches"):
        for i in range(samples):
            yield train_dataset[(0, i)].unsqueeze(0)
        return
    from gan_colorize.training.stream import train_batches

    stream = train_batches(train_dataset, min(samples, 64), 0, 1, 0, 0, workers=0, pin_memory=False)
    taken = 0
    while taken < samples:
        batch = next(stream)[: samples - taken]
        taken += len(batch)
        yield batch
