"""The one training loop: regression, classification and GAN objectives, on the CPU, one GPU or many.

Built on accelerate (``Accelerator`` + ``prepare`` + ``save_state``/``load_state``). GAN specifics
follow stylegan2-ada's handling of G and D under DDP:

* in the generator step D runs inside ``accelerator.no_sync(D)`` with ``requires_grad`` off, so
  its forward neither computes nor all-reduces D gradients;
* real and fake go through D in ONE concatenated forward in the discriminator step, so BatchNorm
  sees one batch per step and DDP's buffer broadcast happens once (two forwards before one
  backward break BatchNorm buffers under DDP); the generator step feeds D the same concatenation
  and takes the fake half, so a BatchNorm D judges G's fakes as it was trained to (fakes alone
  would be normalised by other statistics);
* gradient accumulation is supported for the single-network objectives and rejected for the GAN
  objective (accumulating two alternating optimizers correctly is not worth its subtlety).

Only logging steps synchronise with the host: loss terms and a non-finite flag stay on the
device in between.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import shutil
import signal
import sys
import threading
import time
import warnings
from contextlib import contextmanager
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.state import AcceleratorState
from accelerate.utils import DistributedDataParallelKwargs, set_seed

from gan_colorize.color.lab import uint8_to_lab_norm
from gan_colorize.config import Config, ConfigError, read_yaml, save_config
from gan_colorize.models.io import save_generator
from gan_colorize.registry import DISCRIMINATORS, GENERATORS, LOSSES
from gan_colorize.rundir import RunDir, atomic_write_text
from gan_colorize.training import samples
from gan_colorize.training.ema import EMA
from gan_colorize.training.objectives import (
    Batch,
    ClassificationObjective,
    GANObjective,
    RegressionObjective,
    check_generator_fits,
    class_weights,
    split_logits,
)
from gan_colorize.training.stream import StreamBatchSampler, make_loader

log = logging.getLogger("gan_colorize.train")


class NonFiniteLossError(RuntimeError):
    pass


class TrainState:
    """The loop's own counters, saved with every checkpoint."""

    def __init__(self):
        self.step = 0

    def state_dict(self) -> dict:
        return {"step": self.step}

    def load_state_dict(self, state: dict) -> None:
        self.step = int(state["step"])


def train(config: Config, resume: str | None = None) -> RunDir:
    """Train ``config`` into ``config.run.dir``; ``resume``: None, "latest" or a checkpoint folder.

    A run whose last checkpoint is at ``train.steps`` returns at once; ``resume="latest"`` on a
    folder without checkpoints starts from scratch.
    """
    try:
        return Trainer(config, resume).fit()
    finally:
        # accelerate keeps one state per process: forget this run's precision so that a next run in
        # the same process (an experiment, a test) may choose its own, after success or failure
        AcceleratorState._reset_state()


def _tensorboard_available() -> bool:
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        return False
    return True


def _has_accelerator_device() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return torch.cuda.is_available() or bool(mps and mps.is_available())


def lr_lambda(schedule: str, total_steps: int):
    """pix2pix's 'linear' policy: constant for the first half, then linearly to 0."""
    if schedule == "constant":
        return lambda step: 1.0
    half = total_steps // 2

    def linear_decay(step: int) -> float:
        return 1.0 if step < half else max(0.0, 1.0 - (step - half) / max(1, total_steps - half))

    return linear_decay


class Trainer:
    def __init__(self, config: Config, resume: str | None = None):
        self.cfg = config
        self.run = RunDir(config.run.dir)
        tcfg = config.train
        if config.loss.objective == "gan" and tcfg.grad_accum > 1:
            raise ConfigError(
                "train.grad_accum > 1 is not supported with the gan objective: raise data.batch_size or "
                "use more processes instead"
            )
        use_tb = config.run.tensorboard and _tensorboard_available()
        self.accelerator = Accelerator(
            # without an accelerator, torchrun's processes are multi-CPU (gloo) only if cpu=True
            cpu=not _has_accelerator_device(),
            mixed_precision=tcfg.mixed_precision,
            gradient_accumulation_steps=tcfg.grad_accum,
            log_with="tensorboard" if use_tb else None,
            project_dir=str(self.run.logs),
            step_scheduler_with_optimizer=False,  # our schedules count optimizer steps, not samples
            kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=False)],
        )
        acc = self.accelerator
        if acc.is_main_process:
            self.run.sweep_checkpoints()  # what a killed run left half-written
        acc.wait_for_everyone()
        self.resume_from = self._resume_checkpoint(resume)
        self.device = acc.device
        self._configure_torch()
        set_seed(tcfg.seed)  # same seed on every rank: identical initial weights

        # Built first so that missing pretrained weights fail before any data or model work.
        self.perceptual = self._build_perceptual()

        from gan_colorize.data import build_datasets

        self.train_set, self.eval_set = build_datasets(config.data, seed=tcfg.seed)
        self.G = GENERATORS.build(config.model.generator)
        check_generator_fits(config.loss.objective, self.G)
        self._init_generator()
        self.D = DISCRIMINATORS.build(config.model.discriminator) if config.loss.objective == "gan" else None
        self._prepare_networks()
        self.state = TrainState()
        acc.register_for_checkpointing(self.state)
        if self.ema is not None:
            acc.register_for_checkpointing(self.ema)
        if self.resume_from is not None:
            acc.load_state(str(self.resume_from))
            log.info("resumed from %s at step %d", self.resume_from, self.state.step)
            if acc.is_main_process:
                self._truncate_metrics(self.state.step)
        if acc.is_main_process:
            self.run.root.mkdir(parents=True, exist_ok=True)
            self._record_config()
        acc.wait_for_everyone()
        self.objective = self._build_objective()
        self._interrupted = False

    # ------------------------------------------------------------------ set-up
    def _record_config(self) -> None:
        """Write config.yaml, the config the run's weights are trained with. A finished run keeps
        the one it has (a re-run with other settings trains nothing, so they describe nothing);
        a resumed run whose settings changed keeps the previous file as config_until_step_N.yaml
        and says what changed."""
        path, step = self.run.config, self.state.step
        changed = _config_changes(path, self.cfg) if self.resume_from is not None else []
        if changed and step >= self.cfg.train.steps:
            log.warning(
                "run %s is finished: keeping the config it was trained with; ignored changes: %s",
                self.run.root, "; ".join(changed),
            )  # fmt: skip
            return
        if changed:
            kept = path.with_name(f"config_until_step_{step:08d}.yaml")
            if not kept.exists():  # an earlier resume from this step kept the one that trained it
                shutil.copyfile(path, kept)
            log.warning("resuming at step %d with changed settings (%s); the config that trained "
                        "the steps before is %s", step, "; ".join(changed), kept)  # fmt: skip
        save_config(self.cfg, path)

    def _truncate_metrics(self, step: int) -> None:
        """Rows logged after the checkpoint being resumed will be logged again: drop them."""
        rows = [r for r in self.run.read_metrics() if r.get("step", 0) <= step]
        atomic_write_text(self.run.metrics, "".join(json.dumps(r) + "\n" for r in rows))

    def _resume_checkpoint(self, resume: str | None):
        latest = self.run.latest_checkpoint()
        if resume is None:
            if latest is not None:
                raise ConfigError(
                    f"run folder {self.run.root} already has checkpoints (latest {latest.name}); "
                    "pass --resume latest to continue it, or choose another --run-dir"
                )
            return None
        if resume == "latest":
            return latest  # None: nothing to resume, start fresh
        path = Path(resume)
        if not (path / "generator.pt").is_file():
            raise FileNotFoundError(f"--resume {resume}: not a complete checkpoint folder (no generator.pt)")
        return path

    def _configure_torch(self) -> None:
        if self.cfg.train.deterministic:
            torch.use_deterministic_algorithms(True, warn_only=True)
            torch.backends.cudnn.benchmark = False
        elif self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True

    def _build_perceptual(self):
        lcfg = self.cfg.loss
        if self.cfg.loss.objective != "gan" or lcfg.lambda_perc <= 0:
            return None
        return LOSSES.build({"type": "perceptual", "net": lcfg.perceptual}).to(self.device).eval()

    def _init_generator(self) -> None:
        path = self.cfg.model.init_from
        if not path or self.resume_from is not None:  # a resumed run loads its own weights
            return
        if hasattr(self.G, "init_from"):
            self.G.init_from(path)
        elif hasattr(self.G, "load_released"):
            self.G.load_released(path)
        else:
            raise ConfigError(
                f"model.init_from is set but generator {type(self.G).__name__} "
                "cannot be initialised from a file"
            )

    def _optimizer(self, params, lr: float) -> torch.optim.Optimizer:
        tcfg = self.cfg.train
        fast = {"fused": True} if self.device.type == "cuda" else {"foreach": True}
        return torch.optim.Adam(
            params, lr=lr, betas=tuple(tcfg.betas), weight_decay=tcfg.weight_decay, **fast
        )

    def _generator_param_groups(self) -> list[dict]:
        # A frozen encoder is a parameter group at lr 0 rather than requires_grad=False: DDP's
        # reducer expects every parameter it registered to receive a gradient each step.
        frozen = self.cfg.model.freeze_encoder_steps > 0 and hasattr(self.G, "encoder_parameters")
        if not frozen:
            return [{"params": list(self.G.parameters())}]
        enc = {id(p) for p in self.G.encoder_parameters()}
        return [
            {"params": [p for p in self.G.parameters() if id(p) not in enc]},
            {"params": [p for p in self.G.parameters() if id(p) in enc]},
        ]

    def _prepare_networks(self) -> None:
        acc, tcfg = self.accelerator, self.cfg.train
        multi = acc.num_processes > 1
        nets = [self.G] + ([self.D] if self.D is not None else [])
        if tcfg.sync_bn and multi and self.device.type == "cpu":
            raise ConfigError(
                "train.sync_bn needs GPUs: torch's SyncBatchNorm has no CPU (gloo) implementation"
            )
        if tcfg.sync_bn and multi:
            nets = [torch.nn.SyncBatchNorm.convert_sync_batchnorm(n) for n in nets]
        if tcfg.channels_last and self.device.type == "cuda":
            nets = [n.to(memory_format=torch.channels_last) for n in nets]
        self.G_raw = nets[0]
        self.D_raw = nets[1] if self.D is not None else None
        self.G = self.G_raw  # param groups refer to the same tensors
        self.ema = EMA(self.G_raw, tcfg.ema_decay, tcfg.ema_start) if tcfg.ema_decay > 0 else None
        if self.ema is not None:
            self.ema.model.to(self.device)

        groups = self._generator_param_groups()
        opt_g = self._optimizer(groups, tcfg.lr_g)
        decay = lr_lambda(tcfg.lr_schedule, tcfg.steps)
        freeze_until = self.cfg.model.freeze_encoder_steps
        lambdas = [decay] + ([lambda s: decay(s) if s >= freeze_until else 0.0] if len(groups) > 1 else [])
        sched_g = torch.optim.lr_scheduler.LambdaLR(opt_g, lambdas)
        G, D = self.G_raw, self.D_raw
        if D is not None:
            opt_d = self._optimizer(D.parameters(), tcfg.lr_d)
            sched_d = torch.optim.lr_scheduler.LambdaLR(opt_d, decay)
            self.G_model, self.D_model, self.opt_g, self.opt_d, self.sched_g, self.sched_d = acc.prepare(
                G, D, opt_g, opt_d, sched_g, sched_d
            )
        else:
            self.G_model, self.opt_g, self.sched_g = acc.prepare(G, opt_g, sched_g)
            self.D_model = self.opt_d = self.sched_d = None
        # Compiled after prepare (accelerate does the same for its dynamo backend): the prepared,
        # uncompiled modules are what save_state writes, so checkpoints carry no "_orig_mod." prefix
        # and a run may be resumed with compile switched on or off. G and D are what the steps call.
        self.G, self.D = self.G_model, self.D_model
        self._cuda_graphs = tcfg.compile and tcfg.compile_mode != "default" and self.device.type == "cuda"
        if tcfg.compile:
            # static shapes: batch and crop never change; a size change would otherwise make dynamo
            # recompile with dynamic shapes, which is slower
            self.G = torch.compile(self.G_model, mode=tcfg.compile_mode, dynamic=False)
            if D is not None:
                self.D = torch.compile(self.D_model, mode=tcfg.compile_mode, dynamic=False)

    def _build_objective(self):
        cfg, acc = self.cfg, self.accelerator
        if cfg.loss.objective == "regression":
            return RegressionObjective(cfg)
        if cfg.loss.objective == "classification":
            weights = class_weights(
                cfg, self.run.prior, self.train_set, self.device, acc.is_main_process, acc.wait_for_everyone
            )
            return ClassificationObjective(cfg, weights)
        return GANObjective(cfg, self.perceptual, acc.autocast)

    # ------------------------------------------------------------------ the steps
    def _to_batch(self, rgb_u8: torch.Tensor) -> Batch:
        rgb_u8 = rgb_u8.to(self.device, non_blocking=True)
        L, ab = uint8_to_lab_norm(rgb_u8)  # on the training device: the workers only decode and crop
        rgb = rgb_u8.float() / 255.0
        if self.cfg.train.channels_last and self.device.type == "cuda":
            L, ab, rgb = (t.contiguous(memory_format=torch.channels_last) for t in (L, ab, rgb))
        return Batch(L=L, ab=ab, rgb=rgb)

    def _set_encoder_mode(self, step: int) -> None:
        freeze_until = self.cfg.model.freeze_encoder_steps
        if freeze_until > 0 and hasattr(self.G_raw, "set_encoder_frozen"):
            frozen = step < freeze_until
            if getattr(self, "_encoder_frozen", None) != frozen:
                # under DDP the lr-0 parameter group keeps the encoder fixed: its reducer expects a
                # gradient for every parameter, so requires_grad must not change after wrapping
                self.G_raw.set_encoder_frozen(frozen, stop_gradients=self.accelerator.num_processes == 1)
                self._encoder_frozen = frozen

    def train_step(self, batches: list[torch.Tensor], step: int) -> dict[str, torch.Tensor]:
        """One optimisation step from ``grad_accum`` uint8 RGB batches: the objective's update(s),
        the EMA, the schedules and the step counter. The loss terms come back on the device.

        This is everything the loop does per step apart from logging, sampling and checkpoints,
        and what ``benchmarks/train_throughput.py`` times.
        """
        if self._cuda_graphs:
            # compiled modes with CUDA graphs reuse their output memory between replays: mark the
            # iteration boundary so that last step's outputs are known to be dead (torch docs,
            # "CUDAGraph Trees")
            torch.compiler.cudagraph_mark_step_begin()
        self._set_encoder_mode(step)
        self.G_model.train()
        if self.objective.uses_discriminator:
            terms = self._gan_step(batches[0], step)
        else:
            terms = self._single_network_step(batches, step)
        if self.ema is not None:
            self.ema.update(self.G_raw, step)
        self.sched_g.step()
        if self.sched_d is not None:
            with warnings.catch_warnings():  # D's optimizer does not step during the warm-up
                warnings.filterwarnings("ignore", re.escape("Detected call of `lr_scheduler.step()`"))
                self.sched_d.step()
        self.state.step = step + 1
        return terms

    def _single_network_step(self, batches, step: int) -> dict[str, torch.Tensor]:
        acc, terms_sum = self.accelerator, {}
        for rgb_u8 in batches:
            batch = self._to_batch(rgb_u8)
            with acc.accumulate(self.G_model):
                out = self.G(batch.L)
                terms = self.objective.generator_terms(out, batch, step)
                loss = sum(terms.values())
                acc.backward(loss)
                self._clip(self.G)
                self.opt_g.step()
                self.opt_g.zero_grad(set_to_none=True)
            for k, v in terms.items():
                terms_sum[k] = terms_sum.get(k, 0.0) + v.detach() / len(batches)
        return terms_sum

    def _gan_step(self, rgb_u8: torch.Tensor, step: int) -> dict[str, torch.Tensor]:
        acc, obj = self.accelerator, self.objective
        batch = self._to_batch(rgb_u8)
        fake = self.G(batch.L)
        terms = {}
        adversarial = obj.adversarial(step)
        if adversarial:  # pix2pix order: D on (real, fake.detach()), then G
            self.D_model.requires_grad_(True)
            n = batch.L.shape[0]
            both = self.D(torch.cat([batch.L, batch.L]), torch.cat([batch.ab, fake.detach()]))
            d_terms = obj.discriminator_terms(*split_logits(both, n))
            acc.backward(sum(d_terms.values()))
            self._clip(self.D)
            self.opt_d.step()
            self.opt_d.zero_grad(set_to_none=True)
            terms.update(d_terms)
        d_fake = None
        if adversarial:
            self.D_model.requires_grad_(False)
            with acc.no_sync(self.D_model):
                # the same real+fake batch as D's own step: with BatchNorm in D, fakes alone would be
                # normalised by fake-only statistics, and G would learn from a function D never was
                both = self.D(torch.cat([batch.L, batch.L]), torch.cat([batch.ab, fake]))
                d_fake = split_logits(both, batch.L.shape[0])[1]
        g_terms = obj.generator_terms(fake, batch, step, d_fake)
        acc.backward(sum(g_terms.values()))
        self._clip(self.G)
        self.opt_g.step()
        self.opt_g.zero_grad(set_to_none=True)
        terms.update(g_terms)
        return {k: v.detach() for k, v in terms.items()}

    def _clip(self, model) -> None:
        if self.cfg.train.grad_clip > 0 and self.accelerator.sync_gradients:
            self.accelerator.clip_grad_norm_(model.parameters(), self.cfg.train.grad_clip)

    # ------------------------------------------------------------------ the loop
    def fit(self) -> RunDir:
        acc, tcfg = self.accelerator, self.cfg.train
        start = self.state.step
        if start >= tcfg.steps:
            log.info("run %s is already at step %d of %d", self.run.root, start, tcfg.steps)
            return self.run
        if acc.is_main_process and acc.log_with:
            acc.init_trackers(self.run.name)
        sampler = StreamBatchSampler(
            len(self.train_set),
            self.cfg.data.batch_size,
            acc.process_index,
            acc.num_processes,
            tcfg.seed,
            start_batch=start * tcfg.grad_accum,
        )
        loader = iter(make_loader(self.train_set, sampler, self.cfg.data.workers, self.device.type == "cuda"))
        images_per_step = self.cfg.data.batch_size * acc.num_processes * tcfg.grad_accum
        window = LossWindow()
        progress = _Progress(acc.is_main_process, start, tcfg.steps)
        with self._signals(), progress:
            for step in range(start, tcfg.steps):
                terms = self.train_step([next(loader) for _ in range(tcfg.grad_accum)], step)
                done = self.state.step
                window.add(terms, done)  # steps are counted as checkpoints are: step N = N updates done
                last = done == tcfg.steps
                stop = self._stop_requested(done)  # the same decision on every rank
                if done % tcfg.log_every == 0 or last or stop:
                    row = self._log(window, done, images_per_step)
                    progress.update(done, row)
                else:
                    progress.update(done, None)
                if done % tcfg.sample_every == 0 or last or stop:  # a stopped run shows where it got to
                    self._write_samples(done)
                if done % tcfg.checkpoint_every == 0 or last or stop:
                    self._checkpoint(window, done)
                if stop:
                    log.warning(
                        "interrupted: checkpoint written at step %d; resume with --resume latest", done
                    )
                    break
        if acc.is_main_process and acc.log_with:
            acc.end_training()
        return self.run

    def _stop_requested(self, step: int) -> bool:
        if self.accelerator.num_processes == 1 or step % self.cfg.train.log_every == 0:
            return self._sync_interrupt()
        return False

    def _sync_interrupt(self) -> bool:
        # every rank must take the same decision, or the collective save would hang
        if self.accelerator.num_processes > 1:
            flag = torch.tensor([float(self._interrupted)], device=self.device)
            self._interrupted = bool(_all_reduce(flag, "max").item())
        return self._interrupted

    def _log(self, window: LossWindow, step: int, images_per_step: int) -> dict:
        acc = self.accelerator
        means, bad = window.flush(acc)
        if bad is not None and self.cfg.train.stop_on_nonfinite:
            self._raise_nonfinite(*bad)
        row = {
            "step": step,
            "epoch": step * images_per_step / max(1, len(self.train_set)),  # the sampler indexes globally
        }
        row.update({f"loss/{k}": v for k, v in means.items()})
        row["images_per_s"] = window.rate(images_per_step)
        row["lr/g"] = self.opt_g.param_groups[0]["lr"]
        if self.opt_d is not None:
            row["lr/d"] = self.opt_d.param_groups[0]["lr"]
        if self.device.type == "cuda":
            row["gpu_mem_gb"] = torch.cuda.max_memory_allocated(self.device) / 2**30
        if acc.is_main_process:
            with open(self.run.metrics, "a") as f:
                f.write(json.dumps(row) + "\n")
            if acc.log_with:
                acc.log({k: v for k, v in row.items() if k != "step"}, step=step)
        return row

    def _raise_nonfinite(self, step: int, term: str) -> None:
        latest = self.run.latest_checkpoint()
        kept = f"the last good checkpoint is {latest}" if latest else "no checkpoint had been written yet"
        raise NonFiniteLossError(
            f"loss term {term!r} became non-finite at step {step}; the run stopped and wrote "
            f"nothing after it: {kept}. "
            "Lower the learning rate, use bf16 instead of fp16, or set train.grad_clip."
        )

    def _checkpoint(self, window: LossWindow, step: int) -> None:
        acc = self.accelerator
        _, bad = window.flush(acc, keep=True)  # never write a checkpoint of a diverged model
        if bad is not None and self.cfg.train.stop_on_nonfinite:
            self._raise_nonfinite(*bad)
        final = self.run.checkpoint_dir(step)
        tmp = self.run.staging_dir(step)
        if acc.is_main_process and tmp.exists():
            shutil.rmtree(tmp)
        acc.wait_for_everyone()
        acc.save_state(str(tmp))  # every rank writes its RNG state
        replicas = self._replica_hashes()  # every rank gets every rank's digests
        diverged = any(r != replicas[0] for r in replicas)
        if acc.is_main_process:
            atomic_write_text(tmp / "replicas.json", json.dumps(replicas))
        if diverged:  # raised on every rank: one raising alone would leave the others at a barrier
            raise RuntimeError(f"the processes' weights diverged at step {step}: {replicas}")
        acc.wait_for_everyone()
        if acc.is_main_process:
            G = self.ema.model if self.ema is not None else self.G_raw
            save_generator(tmp / "generator.pt", G, self.cfg, step, ema=self.ema is not None)
            self.run.install_checkpoint(tmp, final)  # the folder appears complete or not at all
            self.run.prune_checkpoints(self.cfg.train.keep_checkpoints)
        acc.wait_for_everyone()

    def _replica_hashes(self) -> list[dict[str, str]]:
        """Each process's digest of G's and D's parameters: DDP must keep them bit-identical."""
        from accelerate.utils import gather_object

        digests = {}
        for name, net in (("G", self.G_raw), ("D", self.D_raw)):
            if net is not None:
                h = hashlib.sha256()
                for p in net.parameters():
                    h.update(p.detach().float().cpu().numpy().tobytes())
                digests[name] = h.hexdigest()[:16]
        return gather_object([digests]) if self.accelerator.num_processes > 1 else [digests]

    def _write_samples(self, step: int) -> None:
        if not self.accelerator.is_main_process or len(self.eval_set) == 0:
            return
        G = self.ema.model if self.ema is not None else self.G_raw
        samples.write_grid(
            G, self.eval_set, self.run.sample_path(step), self.device, self.cfg.loss.temperature
        )

    @contextmanager
    def _signals(self):
        def request_stop(signum, frame):
            if self._interrupted:  # a second Ctrl-C: stop now
                raise KeyboardInterrupt
            self._interrupted = True
            log.warning("signal %d: writing a checkpoint at the end of this step, then stopping", signum)

        if threading.current_thread() is not threading.main_thread():
            yield
            return
        old = {s: signal.signal(s, request_stop) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for s, handler in old.items():
                signal.signal(s, handler)


def _config_changes(saved: Path, config: Config) -> list[str]:
    """'key: old -> new' for every setting of ``config`` that differs from the saved file."""
    if not saved.is_file():
        return []
    try:
        old = _settings(read_yaml(saved))
    except ConfigError:
        return [f"{saved} is unreadable"]
    new = _settings(config.to_dict())
    # runs/x and ./runs/x/ name one folder: not a change
    old.pop("run.dir", None)
    new.pop("run.dir", None)
    return [
        f"{k}: {old.get(k)!r} -> {new.get(k)!r}"
        for k in sorted(old.keys() | new.keys())
        if old.get(k) != new.get(k)
    ]


def _settings(config: dict) -> dict:
    """{'section.key': value} of a config dict; component specs (model.generator) stay whole."""
    return {
        f"{section}.{key}": value
        for section, values in config.items()
        if isinstance(values, dict)
        for key, value in values.items()
    }


def _all_reduce(t: torch.Tensor, op: str) -> torch.Tensor:
    """min / max over processes (accelerate's ``reduce`` only sums or averages)."""
    import torch.distributed as dist

    dist.all_reduce(t, op={"min": dist.ReduceOp.MIN, "max": dist.ReduceOp.MAX}[op])
    return t


class LossWindow:
    """Loss terms summed on the device between logging steps, with the first non-finite step."""

    def __init__(self):
        self.sums: dict[str, torch.Tensor] = {}
        self.count = 0
        self.first_bad: dict[str, torch.Tensor] = {}
        self.t0 = time.perf_counter()
        self.steps = 0

    def add(self, terms: dict[str, torch.Tensor], step: int) -> None:
        for k, v in terms.items():
            v = v.float()
            self.sums[k] = self.sums[k] + v if k in self.sums else v.clone()
            bad = ~torch.isfinite(v)
            # the first step at which this term was non-finite, kept on the device: torch.full is a
            # fill kernel, where torch.tensor(step, device=cuda) would be a blocking host copy
            big = torch.full((), 2**62, dtype=torch.int64, device=v.device)
            now = torch.full((), step, dtype=torch.int64, device=v.device)
            self.first_bad[k] = torch.minimum(self.first_bad.get(k, big), torch.where(bad, now, big))
        self.count += 1
        self.steps += 1

    def flush(self, accelerator, keep: bool = False):
        """(mean of each term over the window and processes, (step, term) of the first non-finite or None)."""
        bad = None
        for k, first in self.first_bad.items():
            first = _all_reduce(first.clone(), "min") if accelerator.num_processes > 1 else first
            s = int(first.item())
            if s < 2**62 and (bad is None or s < bad[0]):
                bad = (s, k)
        if keep:
            return {}, bad
        means = {}
        for k, v in self.sums.items():
            v = accelerator.reduce(v.clone(), "mean") if accelerator.num_processes > 1 else v
            means[k] = float(v.item()) / max(1, self.count)
        self.sums, self.count = {}, 0
        return means, bad

    def rate(self, images_per_step: int) -> float:
        now = time.perf_counter()
        rate = self.steps * images_per_step / max(1e-9, now - self.t0)
        self.t0, self.steps = now, 0
        return rate


class _Progress:
    """A rich progress bar on the main process of an interactive terminal; plain lines otherwise."""

    def __init__(self, enabled: bool, start: int, total: int):
        self.enabled = enabled
        self.interactive = enabled and sys.stderr.isatty()
        self.total = total
        self.bar = None
        self.start = start

    def __enter__(self):
        if self.interactive:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.bar = Progress(
                TextColumn("[bold]train"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeRemainingColumn(),
                TextColumn("{task.fields[info]}"),
            )
            self.bar.start()
            self.task = self.bar.add_task("train", total=self.total, completed=self.start, info="")
        return self

    def update(self, step: int, row: dict | None) -> None:
        info = None
        if row is not None:
            losses = " ".join(f"{k[5:]}={v:.4g}" for k, v in row.items() if k.startswith("loss/"))
            info = f"{row['images_per_s']:.1f} img/s {losses}"
        if self.bar is not None:
            self.bar.update(self.task, completed=step, **({"info": info} if info else {}))
        elif self.enabled and info:
            print(f"step {step}/{self.total} {info}", flush=True)

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.stop()
        return False
