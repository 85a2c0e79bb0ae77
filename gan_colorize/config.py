"""Configs are data: YAML files read into typed dataclasses.

* An unknown or misspelt key is an error naming the key and the closest valid one.
* Values are type-checked (``int`` where a float is expected is accepted and converted).
* ``--set section.key=value`` overrides any field; the value is parsed as YAML (``1e-4``, ``true``,
  ``[0.5, 0.999]``, ``{type: patchgan, n_layers: 4}``).
* The resolved config is saved in every run folder (``config.yaml``) and reproduces the run.

Component specs (``model.generator``, ``model.discriminator``, ``loss.perceptual``,
``loss.adversarial``, ``loss.regularizers``) are dicts with a ``type:``; their other keys are
checked against the component's own signature by :func:`check_components` when a config is loaded
to be trained (configs read from checkpoint files are validated without importing anything).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from gan_colorize.registry import closest
from gan_colorize.rundir import absent
from gan_colorize.schema import read_dataclass


class ConfigError(ValueError):
    """A config file or override that does not fit the schema."""


# keys that were renamed: reading an old config says what to write instead
RENAMED = {
    "loss.gan_mode": "loss.adversarial: {type: vanilla|lsgan|hinge|wgan|relativistic_average} "
    "(e.g. --set 'loss.adversarial={type: hinge}')",
    "run.tensorboard": "run.trackers: [tensorboard] (or [] for none; wandb and others too)",
}


SCREENING_MODES = ("headers", "full")  # data.screening; what each does: gan_colorize.data.index


@dataclass
class DataConfig:
    # an image folder, a file list (.txt: one path a line, relative to the list's folder), WebDataset
    # shards (a brace pattern ``train-{000000..000099}.tar`` or ``pipe:`` URLs), or builtin:skimage
    train: str = "builtin:skimage"
    # None: the held-out part of ``train`` (builtin:skimage holds out one photo; shards need one)
    eval: str | None = None
    size: int = 256  # training crop size (pixels, square)
    crop: str = "random_resized"  # random_resized | random
    scale: list[float] = field(default_factory=lambda: [0.35, 1.0])  # area range of random_resized
    hflip: bool = True
    batch_size: int = 16
    workers: int = 4  # decode-and-crop worker processes per training process
    crops_per_epoch: int = 1024  # builtin:skimage: random crops that make one epoch
    min_chroma: float = 4.0  # images whose 99th-percentile chroma (Lab) is below this are greyscale: left out
    max_bad_fraction: float = 0.05  # stop before training if more of the files are unreadable
    # headers: the index reads sizes and modes from file headers only, and a greyscale photo is
    # replaced when loaded (a million files in minutes); full: decode every file once before step 1
    screening: str = "headers"
    file_list_cache: bool = True  # keep the file list and index of a folder or list, and reuse them
    index_dir: str | None = None  # where they are kept; None: $XDG_CACHE_HOME (~/.cache)/gan_colorize
    index_workers: int = 0  # processes that build the index (0: one per CPU)
    shard_index: str | None = None  # shards: sample counts (data shard's index.json); None: next to them
    eval_fraction: float = 0.05  # folders: share of files (hash-chosen, stable) held out for evaluation


@dataclass
class ModelConfig:
    # component specs: {type: NAME, ...arguments}, or a bare NAME for the defaults (read as {type: NAME})
    generator: dict | str = field(default_factory=lambda: {"type": "unet"})
    discriminator: dict | str | None = field(default_factory=lambda: {"type": "patchgan"})  # gan only
    init_from: str | None = None  # generator init: a released eccv16 file or a run's checkpoint
    freeze_encoder_steps: int = 0  # keep the initialised encoder frozen for the first N steps
    encoder_lr_scale: float = (
        1.0  # after that the encoder learns at lr_g x this (discriminative learning rates)
    )


@dataclass
class LossConfig:
    objective: str = "gan"  # regression | classification | gan (OBJECTIVES), or module:Class
    regression: str = "l1"  # l1 | l2 (regression objective, and the reconstruction term of gan)
    # gan: the adversarial loss (ADVERSARIAL_LOSSES: vanilla | lsgan | hinge | wgan |
    # relativistic_average, or module:Class) and D's regularizers (REGULARIZERS: r1, gradient_penalty)
    adversarial: dict | str = field(default_factory=lambda: {"type": "vanilla"})
    regularizers: list[dict | str] = field(default_factory=list)  # e.g. [{type: r1, gamma: 1, interval: 16}]
    lambda_l1: float = 100.0  # pix2pix's default
    lambda_adv: float = 1.0
    lambda_perc: float = 0.0
    perceptual: dict | str | None = None  # e.g. {type: vgg16, layers: [...], weights: path}
    # classification objective (Zhang et al. 2016, sec. 3.1-3.2)
    prior: str = "train"  # train: computed from the training set; imagenet: the paper's prior
    prior_samples: int = 512  # crops read to estimate the training-set prior
    rebalance_lambda: float = 0.5
    rebalance_sigma: float = 5.0
    soft_neighbours: int = 5
    soft_sigma: float = 5.0
    temperature: float = 0.38  # annealed-mean decoding (sec. 3.3)


@dataclass
class TrainConfig:
    steps: int = 20000
    # a time budget: at max_minutes the run checkpoints and stops as finished (0: none). Counted
    # per launch; a study does not resume a run that ended at its budget
    max_minutes: float = 0.0
    lr_g: float = 2e-4
    lr_d: float = 2e-4
    betas: list[float] = field(default_factory=lambda: [0.5, 0.999])
    weight_decay: float = 0.0
    lr_schedule: str = "constant"  # constant | linear_decay (pix2pix: linear to 0 over the 2nd half)
    warmup_l1_steps: int = 0  # gan: generator-only reconstruction steps before the adversarial phase
    d_steps_per_g_step: int = 1  # gan: discriminator updates (each on its own batch) per generator update
    ema_decay: float = 0.999  # 0 disables the EMA generator
    ema_start: int = 0
    grad_accum: int = 1
    grad_clip: float = 0.0  # 0: off
    # no | bf16 | fp16 (accelerate's names); null: what `accelerate launch --mixed_precision` or the
    # accelerate config says (else no). Quote "no" in YAML: a bare no is read as false.
    mixed_precision: str | None = None
    channels_last: bool = True
    compile: bool = False
    compile_mode: str = "default"  # default | reduce-overhead | max-autotune
    sync_bn: bool = False
    seed: int = 0
    deterministic: bool = False
    log_every: int = 50
    eval_every: int = 1000  # validation on the run's held-out images (cheap metrics); 0: never
    eval_images: int = 64  # how many held-out images validation scores
    sample_every: int = 1000
    checkpoint_every: int = 1000
    keep_checkpoints: int = 3  # 0 keeps every checkpoint
    stop_on_nonfinite: bool = True


@dataclass
class RunConfig:
    dir: str = "runs/default"
    name: str | None = None  # a label for reports; default: the folder name
    # experiment trackers through accelerate: tensorboard, wandb, ... (a missing package is a warning)
    trackers: list[str] = field(default_factory=list)


@dataclass
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    run: RunConfig = field(default_factory=RunConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def validate(self) -> Config:
        """The schema's own checks (values, ranges); no component is looked up, nothing imported:
        also run on configs read from checkpoints. :func:`check_components` does the rest."""
        self._expand_bare_names()
        _one_of("loss.regression", self.loss.regression, ("l1", "l2"))
        _one_of("loss.prior", self.loss.prior, ("train", "imagenet"))
        _one_of("data.crop", self.data.crop, ("random_resized", "random"))
        if self.train.mixed_precision is not None:
            _one_of("train.mixed_precision", self.train.mixed_precision, ("no", "bf16", "fp16"))
        _one_of("train.lr_schedule", self.train.lr_schedule, ("constant", "linear_decay"))
        _one_of("train.compile_mode", self.train.compile_mode, ("default", "reduce-overhead", "max-autotune"))
        for where, spec in self.component_specs():
            if not isinstance(spec, dict) or "type" not in spec:
                raise ConfigError(f"{where} needs a 'type:' key, got {spec!r}")
        if self.loss.lambda_perc > 0 and not self.loss.perceptual:
            raise ConfigError("loss.lambda_perc > 0 needs loss.perceptual: {type: vgg16|lpips|...}")
        self._check_ranges()
        from gan_colorize.training.tracking import TRACKER_PACKAGES

        for name in self.run.trackers:
            _one_of("run.trackers", name, tuple(TRACKER_PACKAGES))
        return self

    def _check_ranges(self) -> None:
        """Values that would crash late (a division by zero at step 1) or silently do nothing."""
        d, t, lo = self.data, self.train, self.loss
        at_least = {
            "data.size": (d.size, 8), "data.batch_size": (d.batch_size, 1), "data.workers": (d.workers, 0),
            "data.index_workers": (d.index_workers, 0),
            "data.crops_per_epoch": (d.crops_per_epoch, 1), "train.steps": (t.steps, 0),
            "train.grad_accum": (t.grad_accum, 1), "train.log_every": (t.log_every, 1),
            "train.sample_every": (t.sample_every, 1), "train.checkpoint_every": (t.checkpoint_every, 1),
            "train.keep_checkpoints": (t.keep_checkpoints, 0), "train.seed": (t.seed, 0),
            "train.warmup_l1_steps": (t.warmup_l1_steps, 0), "train.ema_start": (t.ema_start, 0),
            "train.d_steps_per_g_step": (t.d_steps_per_g_step, 1),
            "train.eval_every": (t.eval_every, 0), "train.eval_images": (t.eval_images, 1),
            "model.freeze_encoder_steps": (self.model.freeze_encoder_steps, 0),
            "loss.prior_samples": (lo.prior_samples, 1), "loss.soft_neighbours": (lo.soft_neighbours, 1),
        }  # fmt: skip
        for name, (value, minimum) in at_least.items():
            if value < minimum:
                raise ConfigError(f"{name}: {value} is below its minimum {minimum}")
        _in_range("data.eval_fraction", d.eval_fraction, 0.0, 1.0)
        _in_range("data.max_bad_fraction", d.max_bad_fraction, 0.0, 1.0)
        _in_range("data.min_chroma", d.min_chroma, 0.0, math.inf)
        _one_of("data.screening", d.screening, SCREENING_MODES)
        _in_range("train.ema_decay", t.ema_decay, 0.0, 1.0, open_high=True)
        if len(d.scale) != 2 or not 0 < d.scale[0] <= d.scale[1] <= 1:
            raise ConfigError(f"data.scale: {d.scale} must be [low, high] with 0 < low <= high <= 1")
        if len(t.betas) != 2 or not all(0 <= b < 1 for b in t.betas):
            raise ConfigError(f"train.betas: {t.betas} must be two values in [0, 1)")
        for name in ("lr_g", "lr_d", "weight_decay", "grad_clip", "max_minutes"):
            _in_range(f"train.{name}", getattr(t, name), 0.0, math.inf)
        _in_range("model.encoder_lr_scale", self.model.encoder_lr_scale, 0.0, math.inf)
        for name in ("lambda_l1", "lambda_adv", "lambda_perc", "soft_sigma", "temperature"):
            _in_range(f"loss.{name}", getattr(lo, name), 0.0, math.inf)
        if lo.temperature == 0 or lo.soft_sigma == 0:
            raise ConfigError("loss.temperature and loss.soft_sigma must be positive")

    def _expand_bare_names(self) -> None:
        """``hinge`` for ``{type: hinge}``: every spec is a dict from here on (and in config.yaml)."""
        spec = lambda value: {"type": value} if isinstance(value, str) else value  # noqa: E731
        m, lo = self.model, self.loss
        m.generator, m.discriminator = spec(m.generator), spec(m.discriminator)
        lo.perceptual, lo.adversarial = spec(lo.perceptual), spec(lo.adversarial)
        lo.regularizers = [spec(r) for r in lo.regularizers]

    def component_specs(self) -> list[tuple[str, dict]]:
        """(config key, spec) of every component spec that is set (not the objective, a bare name)."""
        specs = [("model.generator", self.model.generator), ("model.discriminator", self.model.discriminator)]
        specs += [("loss.perceptual", self.loss.perceptual), ("loss.adversarial", self.loss.adversarial)]
        specs += [(f"loss.regularizers[{i}]", spec) for i, spec in enumerate(self.loss.regularizers)]
        return [(where, spec) for where, spec in specs if spec is not None]


def check_components(config: Config, allow_import: bool = True) -> Config:
    """Every component the config names exists and takes the arguments given (registered name or
    importable ``module:Class``, arguments against its constructor), and the objective accepts the
    settings: a typo fails when the config is read, not after the data was screened or, in a
    study, after the runs before it trained. Imports ``module:Class`` names (``allow_import``):
    for configs the user runs, not for ones read from files."""
    from gan_colorize.losses.perceptual import LOSS_OPTIONS
    from gan_colorize.registry import (
        ADVERSARIAL_LOSSES,
        DISCRIMINATORS,
        FEATURE_NETS,
        GENERATORS,
        OBJECTIVES,
        REGULARIZERS,
        RegistryError,
    )

    registries = {
        "model.generator": GENERATORS, "model.discriminator": DISCRIMINATORS,
        "loss.perceptual": FEATURE_NETS, "loss.adversarial": ADVERSARIAL_LOSSES,
    }  # fmt: skip
    try:
        objective = OBJECTIVES.check(
            config.loss.objective, "loss.objective", allow_import=allow_import, given={"context"}
        )
        for where, spec in config.component_specs():
            if where == "loss.perceptual":  # the loss's own options sit beside the network's arguments
                spec = {k: v for k, v in spec.items() if k not in LOSS_OPTIONS}
            registry = REGULARIZERS if where.startswith("loss.regularizers") else registries[where]
            factory = registry.check(spec, where, allow_import=allow_import)
            if where == "model.generator":
                _check_encoder_schedule(config.model, factory, GENERATORS)
            if registry in (REGULARIZERS, ADVERSARIAL_LOSSES):
                # small and weight-free: built now, so a value out of range names its key at once
                _build_to_check(factory, spec, where)
    except RegistryError as exc:
        raise ConfigError(str(exc)) from None
    check = getattr(objective, "check_config", None)
    if check is not None:
        check(config)
    return config


def encoder_schedule(model: dict) -> list[str]:
    """The settings that give a generator's encoder a schedule, and so an optimizer group, of its
    own (``model.freeze_encoder_steps=N`` > 0, ``model.encoder_lr_scale=S`` != 1); [] when both are
    at their defaults. ``model``: a config's model section as a dict (a saved config.yaml's too)."""
    freeze, scale = model.get("freeze_encoder_steps", 0), model.get("encoder_lr_scale", 1.0)
    settings = [f"model.freeze_encoder_steps={freeze}"] if freeze > 0 else []
    return settings + ([f"model.encoder_lr_scale={scale}"] if scale != 1.0 else [])


def _check_encoder_schedule(model: ModelConfig, generator: type, registry) -> None:
    """model.freeze_encoder_steps and model.encoder_lr_scale schedule a pretrained encoder: on a
    generator without one (no ``encoder_parameters``) they would do nothing, in silence."""
    settings = encoder_schedule(dataclasses.asdict(model))
    if settings and not hasattr(generator, "encoder_parameters"):
        with_one = [name for name in registry.names() if hasattr(registry.get(name), "encoder_parameters")]
        raise ConfigError(
            f"{', '.join(settings)}: generator {model.generator['type']!r} has no pretrained encoder to "
            f"schedule ({', '.join(with_one)} have one); remove the setting"
        )


def _build_to_check(factory, spec: dict, where: str) -> None:
    try:
        factory(**{k: v for k, v in spec.items() if k != "type"})
    except Exception as exc:  # noqa: BLE001 (the component's own check, whatever it raises)
        raise ConfigError(f"{where}: {exc}") from None


def _in_range(name: str, value: float, low: float, high: float, open_high: bool = False) -> None:
    # written so that NaN fails too
    if not (low <= value and (value < high if open_high else value <= high)):
        bracket = ")" if open_high else "]"
        raise ConfigError(f"{name}: {value} is outside [{low:g}, {high:g}{bracket}")


def _one_of(name: str, value: str, options: tuple[str, ...]) -> None:
    if value not in options:
        raise ConfigError(f"{name}: {value!r} is not one of {options}{closest(str(value), options)}")


# ---------------------------------------------------------------- dict <-> dataclass
def _unknown_config_key(where: str, key: str, names: list[str], path: str) -> str:
    if path in RENAMED:
        return f"config key {path!r} was replaced by {RENAMED[path]}"
    return f"unknown config key {path!r}{closest(str(key), names)}; valid: {', '.join(names)}"


def _from_dict(cls: type, data: Any, where: str) -> Any:
    """A config section from its dict (``gan_colorize.schema``: keys, suggestions, types)."""
    prefix = f"{where}." if where else ""
    return read_dataclass(
        cls, data, "", ConfigError, prefix, _unknown_config_key, skip=(), default_where="config"
    )


def from_dict(data: dict) -> Config:
    return _from_dict(Config, data or {}, "").validate()


# ---------------------------------------------------------------- files and overrides
def parse_override(text: str) -> tuple[list[str], Any]:
    """``"train.lr_g=1e-4"`` -> (["train", "lr_g"], 0.0001)."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"override {text!r} is not of the form section.key=value")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as exc:
        raise ConfigError(f"override {text!r}: the value is not valid YAML ({exc})") from None
    return key.strip().split("."), value


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    """Apply ``--set`` overrides to a raw config dict (before validation)."""
    for text in overrides or []:
        path, value = parse_override(text)
        node = data
        for part in path[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise ConfigError(f"override {text!r}: {part!r} is not a section")
            node = child
        node[path[-1]] = value
    return data


def read_yaml(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} {absent(path)}")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not a text file ({exc})") from None
    except OSError as exc:  # unreadable (permissions), or gone since the check above
        raise ConfigError(f"config file {path} cannot be read ({exc.strerror})") from None
    return data or {}


def deep_merge(base: dict, override: dict) -> dict:
    """``override`` over ``base``: mappings merge key by key, at any depth; anything else (a list,
    a number) replaces, and so does a component spec naming another ``type`` (the old type's
    arguments would not fit it)."""
    merged = dict(base)
    for key, value in override.items():
        old = merged.get(key)
        if (
            isinstance(old, dict)
            and isinstance(value, dict)
            and value.get("type", old.get("type")) == old.get("type")
        ):
            merged[key] = deep_merge(old, value)
        else:
            merged[key] = value
    return merged


def read_config_file(path: str | Path, _seen: tuple[Path, ...] = ()) -> dict:
    """A config file with its ``base:`` chain resolved: ``base: unet_gan.yaml`` (relative to the
    file naming it) is read first and this file's keys are deep-merged over it."""
    path = Path(path)
    data = read_yaml(path)  # first: it names a missing file or a link in a loop, which resolve() raises for
    if path.resolve() in _seen:
        chain = " -> ".join(str(p) for p in (*_seen, path.resolve()))
        raise ConfigError(f"{path}: 'base:' makes a cycle ({chain})")
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    base = data.pop("base", None)
    if base is None:
        return data
    if not isinstance(base, str) or not base:
        raise ConfigError(f"{path}: 'base:' must be the path of another config file, got {base!r}")
    base_path = path.parent / base
    if not base_path.is_file():
        raise ConfigError(f"{path}: base config {base_path} {absent(base_path)} (relative to {path.parent})")
    return deep_merge(read_config_file(base_path, (*_seen, path.resolve())), data)


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    """Read a YAML config (or the defaults when ``path`` is None), its ``base:`` chain, and apply
    ``--set`` overrides."""
    data = read_config_file(path) if path else {}
    try:
        return check_components(from_dict(apply_overrides(data, overrides or [])))
    except ConfigError as exc:
        where = f"{path}{' with the --set overrides' if overrides else ''}"
        raise ConfigError(f"{where}: {exc}" if path else str(exc)) from None


def save_config(config: Config, path: str | Path) -> None:
    from gan_colorize.rundir import atomic_write_text

    atomic_write_text(Path(path), yaml.safe_dump(config.to_dict(), sort_keys=False))
