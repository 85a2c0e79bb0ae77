"""The ``gan`` objective: pix2pix's conditional GAN as phases the loop runs, with the adversarial game
built from components.

Loss of G: ``lambda_adv * adversarial.g_loss(real, fake) + lambda_l1 * L1 (+ lambda_perc * perceptual)``;
loss of D: ``adversarial.d_loss(real, fake)`` plus its regularizers. ``loss.adversarial`` picks the
loss (``ADVERSARIAL_LOSSES``: vanilla, lsgan, hinge, wgan, relativistic_average, or ``module:Class``),
``loss.regularizers`` the penalties (``REGULARIZERS``: r1, gradient_penalty), ``model.discriminator``
the network (``DISCRIMINATORS``).

Phases of one step, in pix2pix's order, D before G:

* ``D`` x ``train.d_steps_per_g_step`` (each on its own batch, so the loop draws that many batches per
  step), with every regularizer of interval 1 added to its loss;
* ``Dreg_<type>`` every ``interval`` steps for each lazy regularizer (stylegan2-ada's ``Dreg``);
* ``G`` on the last D phase's batch, reusing that phase's fake (one generator forward per step).

During the ``train.warmup_l1_steps`` reconstruction-only warm-up (DeOldify's "NoGAN" idea) the D
phases do nothing and G gets no adversarial term.

Real and fake go through D in ONE concatenated forward, in D's phase and in G's phase alike (G's
terms use the fake half, relativistic losses the real half too), so a BatchNorm discriminator
normalises G's fakes with the statistics it was trained on, and DDP broadcasts its buffers once per
forward. While G's phase runs the loop keeps D's gradients off and unsynchronised (``no_sync``).
Regularizers see D in float32 without autocast, on their own images (see
:mod:`gan_colorize.losses.regularizers`).
"""

from __future__ import annotations

import contextlib

import torch

from gan_colorize.color.lab import lab_norm_to_rgb
from gan_colorize.config import Config, ConfigError
from gan_colorize.registry import ADVERSARIAL_LOSSES, DISCRIMINATORS, LOSSES, OBJECTIVES, REGULARIZERS
from gan_colorize.training.objectives import Batch, Objective, Phase, TrainingContext


def split_logits(logits, n: int):
    """Split a concatenated [real; fake] discriminator output (a tensor or a list of them)."""
    if isinstance(logits, (list, tuple)):
        pairs = [split_logits(x, n) for x in logits]
        return [p[0] for p in pairs], [p[1] for p in pairs]
    return logits[:n], logits[n:]


@contextlib.contextmanager
def float32_forward(module: torch.nn.Module):
    """Call ``module`` (a prepared one, maybe inside DDP) without the autocast accelerate wraps its
    forward in under mixed precision: a double backward in bf16 loses the gradient norm's precision."""
    inner = getattr(module, "module", module)  # DDP keeps the module it wraps here
    patched = inner.__dict__.get("forward")  # accelerate's autocast wrapper is an instance attribute
    if patched is not None and "_original_forward" in inner.__dict__:
        inner.forward = inner._original_forward
    try:
        with torch.autocast(inner_device_type(inner), enabled=False):
            yield module
    finally:
        if patched is not None:
            inner.forward = patched


def reg_name(regularizer) -> str:
    """A regularizer's name in phases and loss terms: its registry name, else its class name."""
    return getattr(regularizer, "registry_name", type(regularizer).__name__)


def inner_device_type(module: torch.nn.Module) -> str:
    param = next(module.parameters(), None)
    return param.device.type if param is not None else "cpu"


@OBJECTIVES.register("gan")
class GANObjective(Objective):
    fixed_on_resume = ("model.discriminator",)

    @classmethod
    def check_config(cls, config: Config) -> None:
        t = config.train
        if not config.model.discriminator:
            raise ConfigError("loss.objective 'gan' needs model.discriminator: {type: patchgan, ...}")
        if t.grad_accum > 1:
            raise ConfigError(
                "train.grad_accum > 1 is not supported with the gan objective: raise data.batch_size or "
                "use more processes instead"
            )
        if t.warmup_l1_steps >= t.steps > 0:
            raise ConfigError(
                f"train.warmup_l1_steps ({t.warmup_l1_steps}) >= train.steps ({t.steps}): the "
                "discriminator would never train; lower the warm-up or raise the steps"
            )

    def __init__(self, context: TrainingContext):
        super().__init__(context)
        lcfg = self.cfg.loss
        self.warmup = self.cfg.train.warmup_l1_steps
        self.adversarial = ADVERSARIAL_LOSSES.build(lcfg.adversarial)
        self.regularizers = [REGULARIZERS.build(spec) for spec in lcfg.regularizers]
        self.recon = LOSSES.build(lcfg.regression)
        self.recon_name = "l1" if lcfg.regression == "l1" else "l2"
        # built before the data: missing pretrained weights fail before any data or model work
        self.perceptual = None
        if lcfg.lambda_perc > 0:
            self.perceptual = LOSSES.build({"type": "perceptual", "net": lcfg.perceptual})
            self.perceptual.to(context.device).eval()
        self.D = DISCRIMINATORS.build(self.cfg.model.discriminator)
        self.batches_per_step = self.cfg.train.d_steps_per_g_step
        self._fake: tuple[int, torch.Tensor] | None = None  # (batch index, G's output with its graph)

    def networks(self) -> dict[str, torch.nn.Module]:
        return {"D": self.D}

    def learning_rate(self, network: str) -> float:
        return {"D": self.cfg.train.lr_d}[network]

    def phases(self) -> list[Phase]:
        last = self.batches_per_step - 1
        d_phases = [Phase("D", "D", batch=i) for i in range(self.batches_per_step)]
        lazy = [Phase(f"Dreg_{reg_name(r)}", "D", r.interval, last) for r in self.lazy_regularizers]
        return d_phases + lazy + [Phase("G", "G", batch=last)]

    @property
    def lazy_regularizers(self) -> list:
        return [r for r in self.regularizers if r.interval > 1]

    def adversarial_at(self, step: int) -> bool:
        return step >= self.warmup

    # ------------------------------------------------------------------ phases
    def accumulate(self, phase: Phase, batch: Batch, step: int) -> dict[str, torch.Tensor] | None:
        if phase.network == "G":
            return self._generator_terms(phase, batch, step)
        if not self.adversarial_at(step):
            return None
        if phase.name == "D":
            return self._discriminator_terms(phase, batch)
        (reg,) = [r for r in self.lazy_regularizers if phase.name == f"Dreg_{reg_name(r)}"]
        return {f"d_{reg_name(reg)}": self._penalty(reg, batch)}

    def _generate(self, phase: Phase, batch: Batch, keep: bool) -> torch.Tensor:
        """G's output for ``batch``: the one that D's phase computed for the same batch when there is
        one (with its graph: one generator forward per step), else a new forward, whose graph is
        kept (``keep``) when G's phase will train on it."""
        cached, self._fake = self._fake, None
        if cached is not None and cached[0] == phase.batch:
            return cached[1]
        G = self.ctx.call["G"]
        if keep:
            fake = G(batch.L)
            self._fake = (phase.batch, fake)
            return fake
        with torch.no_grad():
            return G(batch.L)

    def _both(self, batch: Batch, fake: torch.Tensor):
        """D on [real; fake] in one forward: (real logits, fake logits)."""
        D = self.ctx.call["D"]
        both = D(torch.cat([batch.L, batch.L]), torch.cat([batch.ab, fake]))
        return split_logits(both, batch.L.shape[0])

    def _discriminator_terms(self, phase: Phase, batch: Batch) -> dict[str, torch.Tensor]:
        g_batch = self.batches_per_step - 1
        fake = self._generate(phase, batch, keep=phase.batch == g_batch).detach()
        real_logits, fake_logits = self._both(batch, fake)
        terms = {"d": self.adversarial.d_loss(real_logits, fake_logits)}
        for reg in self.regularizers:
            if reg.interval == 1:
                terms[f"d_{reg_name(reg)}"] = self._penalty(reg, batch, fake)
        return terms

    def _penalty(self, reg, batch: Batch, fake: torch.Tensor | None = None) -> torch.Tensor:
        if fake is None and reg.needs_fake:
            with torch.no_grad():
                fake = self.ctx.call["G"](batch.L)
        with float32_forward(self.ctx.modules["D"]) as D:
            return reg(D, batch.L, batch.ab, fake)

    def _generator_terms(self, phase: Phase, batch: Batch, step: int) -> dict[str, torch.Tensor]:
        lcfg = self.cfg.loss
        fake = self._generate(phase, batch, keep=True)  # D's phase's forward of this batch, or a new one
        self._fake = None  # used here: never carried into the next step
        terms = {self.recon_name: lcfg.lambda_l1 * self.recon(fake, batch.ab)}
        if self.perceptual is not None:
            fake_rgb = lab_norm_to_rgb(batch.L, fake)  # float32: the colour conversion stays exact
            # the run's mixed precision for the feature network: accelerate autocasts only the
            # prepared G and D, and a VGG16 in float32 would cost more than the rest of the step
            with self.ctx.autocast():
                terms["perceptual"] = lcfg.lambda_perc * self.perceptual(fake_rgb, batch.rgb)
        if self.adversarial_at(step):
            real_logits, fake_logits = self._both(batch, fake)
            terms["g_adv"] = lcfg.lambda_adv * self.adversarial.g_loss(real_logits, fake_logits)
        return terms
