"""The one training loop: any objective, on the CPU, one GPU or many. It knows no GAN.

Built on accelerate (``Accelerator`` + ``prepare``). An objective (:mod:`gan_colorize.training.objectives`)
names the networks it trains besides the generator and the phases of a step; the loop, after
stylegan2-ada's training loop, runs each phase: it switches off the gradients of the networks the
phase does not update and keeps DDP from synchronising them (``no_sync``), sums the phase's loss
terms, backpropagates, clips and steps that network's optimizer. A network whose phase does not run
at a step (a lazy regularizer, a warm-up) simply is not stepped; every schedule steps every step.

Gradient accumulation (``train.grad_accum``) runs each phase over that many micro-batches (objectives
may refuse it: the GAN does).

Only logging steps synchronise with the host: loss terms and a non-finite flag stay on the
device in between.

Checkpoints (:mod:`gan_colorize.training.checkpoint`) load without unpickling anything; a run
folder is held by one process at a time (``RUN/.lock``).
"""

from __future__ import annotations

import contextlib
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
from gan_colorize.config import Config, ConfigError, encoder_schedule, read_yaml, save_config
from gan_colorize.models.io import save_generator
from gan_colorize.registry import GENERATORS, OBJECTIVES
from gan_colorize.rundir import RunDir, atomic_write_text
from gan_colorize.training import checkpoint, samples, tracking
from gan_colorize.training.ema import EMA
from gan_colorize.training.objectives import Batch, TrainingContext, check_generator_fits
from gan_colorize.training.stream import train_batches

log = logging.getLogger("gan_colorize.train")

GENERATOR = "G"  # the loop's own network; an objective's networks have other names
# settings a resumed run cannot take (the saved weights and optimizer states would not fit them),
# besides those its objective names (Objective.fixed_on_resume)
FIXED_ON_RESUME = ("model.generator", "loss.objective")
# the settings that decide whether the generator's encoder is an optimizer group of its own
ENCODER_SCHEDULE = ("model.freeze_encoder_steps", "model.encoder_lr_scale")


class NonFiniteLossError(RuntimeError):
    pass


def train(config: Config, resume: str | None = None) -> RunDir:
    """Train ``config`` into ``config.run.dir``; ``resume``: None, "latest" or a checkpoint folder.

    A run whose last checkpoint is at ``train.steps`` returns at once; ``resume="latest"`` on a
    folder without checkpoints starts from scratch.
    """
    trainer = None
    try:
        trainer = Trainer(config, resume)
        return trainer.fit()
    finally:
        if trainer is not None:
            trainer.close()
        # accelerate keeps one state per process: forget this run's precision so that a next run in
        # the same process (an experiment, a test) may choose its own, after success or failure
        AcceleratorState._reset_state()


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
        self._lock = None
        tcfg = config.train
        trackers = tracking.available_trackers(config.run.trackers)
        self.accelerator = Accelerator(
            # without an accelerator, torchrun's processes are multi-CPU (gloo) only if cpu=True
            cpu=not _has_accelerator_device(),
            mixed_precision=tcfg.mixed_precision,
            gradient_accumulation_steps=tcfg.grad_accum,
            log_with=trackers or None,
            project_dir=str(self.run.logs),
            step_scheduler_with_optimizer=False,  # our schedules count optimizer steps, not samples
            kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=False)],
        )
        try:
            self._set_up(resume)
        except BaseException:
            # a failed start leaves the folder free for the next attempt, or no folder if it made it
            self.close(failed_start=True)
            raise

    def _set_up(self, resume: str | None) -> None:
        acc, config = self.accelerator, self.cfg
        if acc.is_main_process:
            self._lock = self.run.lock()  # before anything in the folder is touched
            self.run.sweep_checkpoints()  # what a killed run left half-written
        acc.wait_for_everyone()
        self.resume_from = self._resume_checkpoint(resume)
        self.device = acc.device
        self._configure_torch()
        set_seed(config.train.seed)  # same seed on every rank: identical initial weights

        # The objective and the generator first: missing pretrained weights (a perceptual network,
        # an encoder) fail before any data is read.
        self.context = TrainingContext(
            config, self.device, self.run, acc.autocast, acc.is_main_process, acc.wait_for_everyone
        )
        self.objective = OBJECTIVES.get(config.loss.objective)(self.context)
        G = GENERATORS.build(config.model.generator)
        if self.resume_from is not None:
            self._refuse_fixed_changes(G)
        check_generator_fits(self.objective, G)
        self._init_generator(G)

        from gan_colorize.data import build_datasets

        with acc.main_process_first():  # the main process screens (and caches); the others reuse it
            self.train_set, self.eval_set = build_datasets(config.data, seed=config.train.seed)
        self._prepare_networks({GENERATOR: G, **self.objective.networks()})
        self.step = 0
        if self.resume_from is not None:
            self._load_checkpoint(self.resume_from)
            if acc.is_main_process:
                self._truncate_metrics(self.step)
        if acc.is_main_process:
            self._warn_of_a_frozen_run()
            self.run.root.mkdir(parents=True, exist_ok=True)
            self._record_config()
            launch = tracking.launch_record(acc, self.resume_from, self.step)
            tracking.record_launch(self.run.provenance, launch)
        acc.wait_for_everyone()
        tcfg = config.train
        self.validator = (
            tracking.Validator(self.eval_set, tcfg.eval_images, self.device, config.loss.temperature)
            if tcfg.eval_every > 0 and acc.is_main_process
            else None
        )
        self.objective.bind(self.train_set)
        self.phases = self.objective.phases()
        # the first stop signal's number; SIGINT stands for one that reached another rank only
        self._interrupted, self._stop_signal = False, signal.SIGINT
        self.budget_spent = False  # stopped by train.max_minutes

    def close(self, failed_start: bool = False) -> None:
        """Let go of the run folder (the lock); the trainer is not used after this."""
        if self._lock is not None:
            self._lock.release(discard_unused_folder=failed_start)
            self._lock = None

    @property
    def G_raw(self) -> torch.nn.Module:
        return self.raw[GENERATOR]

    # ------------------------------------------------------------------ set-up
    def _record_config(self) -> None:
        """Write config.yaml, the config the run's weights are trained with. A finished run keeps
        the one it has (a re-run with other settings trains nothing, so they describe nothing);
        a resumed run whose settings changed keeps the previous file as config_until_step_N.yaml
        and says what changed (the changes are applied: see _apply_settings)."""
        path, step = self.run.config, self.step
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
        path = latest if resume == "latest" else Path(resume)
        if path is None:
            return None  # nothing to resume: start fresh
        if resume != "latest" and not (path / "generator.pt").is_file():
            raise FileNotFoundError(f"--resume {resume}: not a complete checkpoint folder (no generator.pt)")
        checkpoint.check_resumable(path)
        return path

    def _refuse_fixed_changes(self, G: torch.nn.Module) -> None:
        """A resumed run may change its learning rates, schedule, logging ... but not what its saved
        networks are, nor whether G's encoder is an optimizer group of its own (the saved optimizer
        has one layout; torch would say only 'different number of parameter groups')."""
        changes = _config_changes(self.run.config, self.cfg)
        fixed = FIXED_ON_RESUME + tuple(self.objective.fixed_on_resume)
        changed = [c for c in changes if c.startswith(fixed)]
        if changed:
            raise ConfigError(
                f"cannot resume {self.run.root} with a different {'; '.join(changed)}: its weights were "
                "trained for the saved setting; start a new run (model.init_from can start from its weights)"
            )
        schedule = [c for c in changes if c.startswith(ENCODER_SCHEDULE)]
        if (
            schedule
            and hasattr(G, "encoder_parameters")
            and _own_encoder_group(read_yaml(self.run.config)) != _own_encoder_group(self.cfg.to_dict())
        ):
            raise ConfigError(
                f"cannot resume {self.run.root} with {'; '.join(schedule)}: the encoder has a parameter "
                "group of its own only when model.freeze_encoder_steps > 0 or model.encoder_lr_scale != 1, "
                "and the saved optimizer has the other layout; change these only within one layout "
                "(e.g. freeze_encoder_steps 2 -> 6), or start a new run from its weights (model.init_from)"
            )

    def _warn_of_a_frozen_run(self) -> None:
        """A freeze that outlasts the run is allowed (a first stage may keep the encoder fixed), and said."""
        freeze, steps = self.cfg.model.freeze_encoder_steps, self.cfg.train.steps
        if self.step < steps <= freeze and hasattr(self.G_raw, "encoder_parameters"):
            log.warning(
                "model.freeze_encoder_steps=%d >= train.steps=%d: the encoder stays frozen for the whole run",
                freeze, steps,
            )  # fmt: skip

    def _configure_torch(self) -> None:
        if self.cfg.train.deterministic:
            torch.use_deterministic_algorithms(True, warn_only=True)
            torch.backends.cudnn.benchmark = False
        elif self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True

    def _init_generator(self, G: torch.nn.Module) -> None:
        """A fresh run's starting weights: ``model.init_from``, else the generator's own pretrained
        weights (``load_pretrained``, e.g. an ImageNet encoder); a resumed run loads its own."""
        if self.resume_from is not None:
            return
        path = self.cfg.model.init_from
        if not path:
            if hasattr(G, "load_pretrained"):
                G.load_pretrained()
            return
        load = getattr(G, "init_from", None) or getattr(G, "load_released", None)
        if load is None:
            raise ConfigError(
                f"model.init_from is set but generator {type(G).__name__} cannot be initialised from a file"
            )
        try:
            load(path)
        except (FileNotFoundError, ValueError) as exc:
            if type(exc) not in (FileNotFoundError, ValueError):
                raise  # a subclass carries its own fields and message
            # the message names the file; the setting that named it is what the user edits
            raise type(exc)(f"model.init_from: {exc}") from None

    def _optimizer(self, params, lr: float) -> torch.optim.Optimizer:
        tcfg = self.cfg.train
        fast = {"fused": True} if self.device.type == "cuda" else {"foreach": True}
        return torch.optim.Adam(
            params, lr=lr, betas=tuple(tcfg.betas), weight_decay=tcfg.weight_decay, **fast
        )

    def _generator_param_groups(self, G: torch.nn.Module) -> list[dict]:
        """[rest, encoder] when the encoder has a schedule of its own (frozen first, or a lower
        learning rate), else one group. A frozen encoder is a group at lr 0 rather than
        requires_grad=False: DDP's reducer expects every parameter it registered to receive a
        gradient each step. The groups never change; their learning rates follow the schedule."""
        if not (_own_encoder_group(self.cfg.to_dict()) and hasattr(G, "encoder_parameters")):
            return [{"params": list(G.parameters())}]
        enc = {id(p) for p in G.encoder_parameters()}
        return [
            {"params": [p for p in G.parameters() if id(p) not in enc]},
            {"params": [p for p in G.parameters() if id(p) in enc]},
        ]

    def _lr_lambdas(self, name: str, groups: int) -> list:
        decay = lr_lambda(self.cfg.train.lr_schedule, self.cfg.train.steps)
        if name != GENERATOR or groups == 1:
            return [decay] * groups
        freeze_until, scale = self.cfg.model.freeze_encoder_steps, self.cfg.model.encoder_lr_scale
        return [decay, lambda s: decay(s) * scale if s >= freeze_until else 0.0]

    def _base_lr(self, name: str) -> float:
        return self.cfg.train.lr_g if name == GENERATOR else self.objective.learning_rate(name)

    def _prepare_networks(self, nets: dict[str, torch.nn.Module]) -> None:
        acc, tcfg = self.accelerator, self.cfg.train
        multi = acc.num_processes > 1
        if tcfg.sync_bn and multi and self.device.type == "cpu":
            raise ConfigError(
                "train.sync_bn needs GPUs: torch's SyncBatchNorm has no CPU (gloo) implementation"
            )
        if tcfg.sync_bn and multi:
            nets = {k: torch.nn.SyncBatchNorm.convert_sync_batchnorm(n) for k, n in nets.items()}
        if tcfg.channels_last and self.device.type == "cuda":
            nets = {k: n.to(memory_format=torch.channels_last) for k, n in nets.items()}
        self.raw = nets
        # which parameters each network trains at all (restored when its phase runs)
        self._trainable = {k: [p.requires_grad for p in n.parameters()] for k, n in nets.items()}
        self.ema = EMA(nets[GENERATOR], tcfg.ema_decay, tcfg.ema_start) if tcfg.ema_decay > 0 else None
        if self.ema is not None:
            self.ema.model.to(self.device)

        names = list(nets)
        optimizers, schedulers = [], []
        for name in names:
            groups = (
                self._generator_param_groups(nets[name])
                if name == GENERATOR
                else [{"params": list(nets[name].parameters())}]
            )
            opt = self._optimizer(groups, self._base_lr(name))
            optimizers.append(opt)
            schedulers.append(torch.optim.lr_scheduler.LambdaLR(opt, self._lr_lambdas(name, len(groups))))
        prepared = acc.prepare(*nets.values(), *optimizers, *schedulers)
        k = len(names)
        self.models = dict(zip(names, prepared[:k]))
        self.optimizers = dict(zip(names, prepared[k : 2 * k]))
        self.schedulers = dict(zip(names, prepared[2 * k :]))
        # Compiled after prepare (accelerate does the same for its dynamo backend): the prepared,
        # uncompiled modules are what checkpoints hold, so they carry no "_orig_mod." prefix and a
        # run may be resumed with compile switched on or off. The compiled ones are what steps call.
        self._cuda_graphs = tcfg.compile and tcfg.compile_mode != "default" and self.device.type == "cuda"
        self.call = dict(self.models)
        if tcfg.compile:
            # static shapes: batch and crop never change; a size change would otherwise make dynamo
            # recompile with dynamic shapes, which is slower
            self.call = {
                k: torch.compile(m, mode=tcfg.compile_mode, dynamic=False) for k, m in self.models.items()
            }
        self.context.call, self.context.modules = self.call, self.models

    # ------------------------------------------------------------------ checkpoints
    def _checkpoint_state(self, step: int) -> dict:
        scaler = self.accelerator.scaler
        return {
            "step": step,
            "world_size": self.accelerator.num_processes,
            "networks": {k: n.state_dict() for k, n in self.raw.items()},
            "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
            "schedulers": {k: s.state_dict() for k, s in self.schedulers.items()},
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "scaler": scaler.state_dict() if scaler is not None else None,
        }

    def _load_checkpoint(self, folder: Path) -> None:
        state = checkpoint.load_training_state(folder)
        file = folder / checkpoint.STATE_FILE
        try:
            for group, targets in (
                ("networks", self.raw), ("optimizers", self.optimizers), ("schedulers", self.schedulers)
            ):  # fmt: skip
                for name, target in targets.items():
                    target.load_state_dict(state[group][name])
            if self.ema is not None:
                self.ema.load_state_dict(
                    state["ema"] if state.get("ema") else {"model": state["networks"][GENERATOR]}
                )
            if self.accelerator.scaler is not None and state.get("scaler"):
                self.accelerator.scaler.load_state_dict(state["scaler"])
        except Exception as exc:  # noqa: BLE001 (a file from elsewhere: any mismatch names the file)
            raise checkpoint.CheckpointError(
                f"{file}: does not fit this run's networks ({type(exc).__name__}: {str(exc).splitlines()[0]})"
            ) from None
        checkpoint.restore_rng_state(folder, self.accelerator.process_index)
        self.step = state["step"]
        self._apply_settings()
        log.info("resumed from %s at step %d", folder, self.step)

    def _apply_settings(self) -> None:
        """After a resume: the config's learning rates, betas and weight decay replace the saved
        optimizer settings (a resumed run trains with what config.yaml says)."""
        tcfg = self.cfg.train
        for name, opt in self.optimizers.items():
            sched = self.schedulers[name].scheduler  # accelerate's wrapper keeps the LambdaLR here
            base = self._base_lr(name)
            sched.base_lrs = [base] * len(opt.param_groups)
            for group, lam in zip(opt.param_groups, sched.lr_lambdas):
                group.update(initial_lr=base, lr=base * lam(sched.last_epoch), betas=tuple(tcfg.betas))
                group["weight_decay"] = tcfg.weight_decay
            sched._last_lr = [g["lr"] for g in opt.param_groups]

    def _checkpoint(self, window: LossWindow, step: int) -> None:
        acc = self.accelerator
        _, bad = window.flush(acc, keep=True)  # never write a checkpoint of a diverged model
        if bad is not None and self.cfg.train.stop_on_nonfinite:
            self._raise_nonfinite(*bad)
        final = self.run.checkpoint_dir(step)
        tmp = self.run.staging_dir(step)
        if acc.is_main_process:
            if tmp.exists():
                shutil.rmtree(tmp)
            tmp.mkdir(parents=True)
        acc.wait_for_everyone()
        checkpoint.save_rng_state(tmp, acc.process_index)  # every rank its own
        replicas = self._replica_hashes()  # every rank gets every rank's digests
        diverged = any(r != replicas[0] for r in replicas)
        if acc.is_main_process:
            atomic_write_text(tmp / "replicas.json", json.dumps(replicas))
        if diverged:  # raised on every rank: one raising alone would leave the others at a barrier
            raise RuntimeError(f"the processes' weights diverged at step {step}: {replicas}")
        if acc.is_main_process:
            checkpoint.save_training_state(tmp, self._checkpoint_state(step))
            save_generator(
                tmp / "generator.pt", self.evaluated_generator, self.cfg, step, ema=self.ema is not None
            )
        acc.wait_for_everyone()  # every rank's files are in before the folder gets its name
        if acc.is_main_process:
            self.run.install_checkpoint(tmp, final)  # the folder appears complete or not at all
            self.run.prune_checkpoints(self.cfg.train.keep_checkpoints)
        acc.wait_for_everyone()

    def _replica_hashes(self) -> list[dict[str, str]]:
        """Each process's digest of every network's parameters: DDP must keep them bit-identical."""
        from accelerate.utils import gather_object

        digests = {}
        for name, net in self.raw.items():
            h = hashlib.sha256()
            for p in net.parameters():
                h.update(p.detach().float().cpu().numpy().tobytes())
            digests[name] = h.hexdigest()[:16]
        return gather_object([digests]) if self.accelerator.num_processes > 1 else [digests]

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

    @property
    def batches_per_step(self) -> int:
        """Batches the loop draws per step: the objective's, each as grad_accum micro-batches."""
        return self.objective.batches_per_step * self.cfg.train.grad_accum

    def train_step(self, batches: list[torch.Tensor], step: int) -> dict[str, torch.Tensor]:
        """One training step from :attr:`batches_per_step` uint8 RGB batches: the objective's
        phases, the EMA, the schedules and the step counter. The loss terms come back on the device.

        This is everything the loop does per step apart from logging, sampling and checkpoints,
        and what ``benchmarks/train_throughput.py`` times.
        """
        if self._cuda_graphs:
            # compiled modes with CUDA graphs reuse their output memory between replays: mark the
            # iteration boundary so that last step's outputs are known to be dead (torch docs,
            # "CUDAGraph Trees")
            torch.compiler.cudagraph_mark_step_begin()
        self._set_encoder_mode(step)
        for model in self.models.values():
            model.train()
        accum = self.cfg.train.grad_accum
        prepared = [self._to_batch(b) for b in batches]
        terms = {}
        for phase in self.phases:
            if step % phase.interval == 0:
                micro = prepared[phase.batch * accum : (phase.batch + 1) * accum]
                terms.update(self._run_phase(phase, micro, step))
        if self.ema is not None:
            self.ema.update(self.G_raw, step)
        with warnings.catch_warnings():  # a network whose phases did not run (a warm-up) still schedules
            warnings.filterwarnings("ignore", re.escape("Detected call of `lr_scheduler.step()`"))
            for sched in self.schedulers.values():
                sched.step()
        self.step = step + 1
        return terms

    def _set_trainable(self, name: str, on: bool) -> None:
        for p, trainable in zip(self.raw[name].parameters(), self._trainable[name]):
            p.requires_grad_(on and trainable)

    def _run_phase(self, phase, micro_batches: list[Batch], step: int) -> dict[str, torch.Tensor]:
        """One phase: the objective's terms, backward, clip, and the phase network's optimizer step.
        The objective's other networks get no gradients and no DDP synchronisation meanwhile; the
        generator is the objective's to detach where a phase must not train it."""
        acc, target = self.accelerator, self.models[phase.network]
        opt = self.optimizers[phase.network]
        others = [k for k in self.models if k not in (phase.network, GENERATOR)]
        sums: dict[str, torch.Tensor] = {}
        with contextlib.ExitStack() as stack:
            for name in others:
                self._set_trainable(name, False)
                stack.enter_context(acc.no_sync(self.models[name]))
            if phase.network != GENERATOR:
                self._set_trainable(phase.network, True)
            for batch in micro_batches:
                with acc.accumulate(target):
                    terms = self.objective.accumulate(phase, batch, step)
                    if not terms:
                        return {}
                    acc.backward(sum(terms.values()))
                    self._clip(target)
                    opt.step()
                    opt.zero_grad(set_to_none=True)
                for k, v in terms.items():
                    sums[k] = sums[k] + v.detach() if k in sums else v.detach()
        n = len(micro_batches)
        return sums if n == 1 else {k: v / n for k, v in sums.items()}

    def _clip(self, model) -> None:
        if self.cfg.train.grad_clip > 0 and self.accelerator.sync_gradients:
            self.accelerator.clip_grad_norm_(model.parameters(), self.cfg.train.grad_clip)

    # ------------------------------------------------------------------ the loop
    def fit(self) -> RunDir:
        acc, tcfg = self.accelerator, self.cfg.train
        start = self.step
        if start >= tcfg.steps:
            log.info("run %s is already at step %d of %d", self.run.root, start, tcfg.steps)
            return self.run
        if acc.is_main_process and acc.log_with:
            acc.init_trackers(self.run.name, config=tracking.flat_config(self.cfg.to_dict()))
        per_step = self.batches_per_step
        loader = train_batches(
            self.train_set,
            self.cfg.data.batch_size,
            acc.process_index,
            acc.num_processes,
            tcfg.seed,
            start_batch=start * per_step,
            workers=self.cfg.data.workers,
            pin_memory=self.device.type == "cuda",
        )
        images_per_step = self.cfg.data.batch_size * acc.num_processes * per_step
        window = LossWindow()
        progress = _Progress(acc.is_main_process, start, tcfg.steps)
        deadline = time.monotonic() + 60 * tcfg.max_minutes if tcfg.max_minutes else None
        with self._signals(), progress:
            for step in range(start, tcfg.steps):
                terms = self.train_step([next(loader) for _ in range(per_step)], step)
                done = self.step
                if deadline is not None and time.monotonic() >= deadline and not self._interrupted:
                    self._interrupted = self.budget_spent = True  # stops like Ctrl-C, synchronised
                window.add(terms, done)  # steps are counted as checkpoints are: step N = N updates done
                last = done == tcfg.steps
                stop = self._stop_requested(done)  # the same decision on every rank
                due = last or stop
                scores = self._validate() if tcfg.eval_every and (done % tcfg.eval_every == 0 or due) else {}
                if done % tcfg.log_every == 0 or due:
                    row = self._log(window, done, images_per_step, scores)
                    progress.update(done, row)
                else:
                    if scores:  # a validation step that is no logging step: a row of its own
                        self._write_row({"step": done, **scores})
                    progress.update(done, None)
                if done % tcfg.sample_every == 0 or due:  # a stopped run shows where it got to
                    self._write_samples(done)
                if done % tcfg.checkpoint_every == 0 or last or stop:
                    self._checkpoint(window, done)
                if stop and self.budget_spent:
                    log.warning("time budget of %g minutes reached: checkpoint written at step %d of %d; "
                                "the run ends here", tcfg.max_minutes, done, tcfg.steps)  # fmt: skip
                    if acc.is_main_process:
                        tracking.record_end(self.run.provenance, done, "max_minutes")
                    break
                if stop:
                    log.warning(
                        "interrupted: checkpoint written at step %d; resume with --resume latest", done
                    )
                    if acc.is_main_process:  # the command exits as the signal would have (cli)
                        name = signal.Signals(self._stop_signal).name
                        tracking.record_end(self.run.provenance, done, name)
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

    def _log(self, window: LossWindow, step: int, images_per_step: int, scores: dict) -> dict:
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
        for name, opt in self.optimizers.items():
            row[f"lr/{name.lower()}"] = opt.param_groups[0]["lr"]
        if len(self.optimizers[GENERATOR].param_groups) > 1:
            row["lr/g_encoder"] = self.optimizers[GENERATOR].param_groups[1]["lr"]
        if self.device.type == "cuda":
            row["gpu_mem_gb"] = torch.cuda.max_memory_allocated(self.device) / 2**30
        row.update(scores)
        self._write_row(row)
        return row

    def _write_row(self, row: dict) -> None:
        """One row of metrics.jsonl, and the same values to the trackers (main process)."""
        acc = self.accelerator
        if acc.is_main_process:
            with open(self.run.metrics, "a") as f:
                f.write(json.dumps(row) + "\n")
            if acc.log_with:
                acc.log({k: v for k, v in row.items() if k != "step"}, step=row["step"])

    def _raise_nonfinite(self, step: int, term: str) -> None:
        latest = self.run.latest_checkpoint()
        kept = f"the last good checkpoint is {latest}" if latest else "no checkpoint had been written yet"
        raise NonFiniteLossError(
            f"loss term {term!r} became non-finite at step {step}; the run stopped and no checkpoint "
            f"was written after it ({kept}; sample grids of later steps, if any, show the diverged "
            "model). Lower the learning rate, use bf16 instead of fp16, or set train.grad_clip."
        )

    @property
    def evaluated_generator(self) -> torch.nn.Module:
        """The generator a checkpoint's generator.pt holds: the EMA one when there is one."""
        return self.ema.model if self.ema is not None else self.G_raw

    def _write_samples(self, step: int) -> None:
        if not self.accelerator.is_main_process or len(self.eval_set) == 0:
            return
        path = self.run.sample_path(step)
        samples.write_grid(
            self.evaluated_generator, self.eval_set, path, self.device, self.cfg.loss.temperature
        )
        tracking.log_image(self.accelerator, "samples", path, step)

    def _validate(self) -> dict[str, float]:
        """The held-out images scored now (main process; the others go on to the next step)."""
        return self.validator(self.evaluated_generator) if self.validator is not None else {}

    @contextmanager
    def _signals(self):
        def request_stop(signum, frame):
            if self._interrupted:  # a second Ctrl-C: stop now
                stop = KeyboardInterrupt(
                    "a second signal stopped training at once, without writing a checkpoint "
                    "(--resume latest continues from the last one written, if any)"
                )
                stop.signum = signum  # the command dies of it (cli.run_handler)
                raise stop
            self._interrupted, self._stop_signal = True, signum
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
        saved_config = read_yaml(saved)
    except ConfigError:
        return [f"{saved} is unreadable"]
    if not isinstance(saved_config, dict) or not all(isinstance(v, dict) for v in saved_config.values()):
        return [f"{saved} is unreadable (not a config)"]
    old = _settings(saved_config)
    new = _settings(config.to_dict())
    # runs/x and ./runs/x/ name one folder: not a change
    old.pop("run.dir", None)
    new.pop("run.dir", None)
    return [
        f"{k}: {old.get(k)!r} -> {new.get(k)!r}"
        for k in sorted(old.keys() | new.keys())
        if old.get(k) != new.get(k)
    ]


def _own_encoder_group(config: dict) -> bool:
    """Whether a generator's encoder gets an optimizer group of its own under ``config`` (a dict):
    when it has a schedule of its own, frozen first or a learning rate of its own."""
    return bool(encoder_schedule(config.get("model") or {}))


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
        self.counts: dict[str, int] = {}  # per term: a lazy regularizer's term comes every k steps
        self.first_bad: dict[str, torch.Tensor] = {}
        self.t0 = time.perf_counter()
        self.steps = 0

    def add(self, terms: dict[str, torch.Tensor], step: int) -> None:
        for k, v in terms.items():
            v = v.float()
            self.sums[k] = self.sums[k] + v if k in self.sums else v.clone()
            self.counts[k] = self.counts.get(k, 0) + 1
            bad = ~torch.isfinite(v)
            # the first step at which this term was non-finite, kept on the device: torch.full is a
            # fill kernel, where torch.tensor(step, device=cuda) would be a blocking host copy
            big = torch.full((), 2**62, dtype=torch.int64, device=v.device)
            now = torch.full((), step, dtype=torch.int64, device=v.device)
            self.first_bad[k] = torch.minimum(self.first_bad.get(k, big), torch.where(bad, now, big))
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
            means[k] = float(v.item()) / self.counts[k]
        self.sums, self.counts = {}, {}
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
