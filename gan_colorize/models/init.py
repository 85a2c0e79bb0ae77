"""Weight initialisation and loading weights by name: shared by every generator.

* :func:`init_pix2pix` is pix2pix's ``init_weights(net, 'normal', 0.02)``
  (junyanz/pytorch-CycleGAN-and-pix2pix, ``models/networks.py``): every convolution (transposed
  included) and linear layer gets weights from N(0, 0.02) and zero biases; every BatchNorm gets
  weights from N(1, 0.02) and zero biases.
* :func:`load_by_name` is the one place that copies a state dict into a module by key: it reports
  the missing and unexpected keys and refuses a tensor whose shape differs, naming the key and
  both shapes. ``ZhangECCV16.load_released`` and ``UNetZhang.init_from`` both go through it.
* :func:`read_state_dict` reads what those two accept: a plain state dict file (the released
  ``colorization_release_v2-9b330a0b.pth``), a gan-colorize ``generator.pt``, a checkpoint folder
  or a run folder (its latest checkpoint).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from gan_colorize.models.io import FORMAT, read_safetensors_generator, resolve_generator_file
from gan_colorize.rundir import absent
from gan_colorize.weights import RefusedFileError, first_non_finite, load_tensors

log = logging.getLogger(__name__)

INIT_STD = 0.02  # pix2pix's init_gain for init_type='normal' (DCGAN, Radford et al. 2016)

# BatchNorm's step counter: not a weight, absent from files saved before torch 0.4.1 (the released
# eccv16 file was converted from Caffe), and harmless to leave at 0.
COUNTER_SUFFIX = "num_batches_tracked"


def init_pix2pix(module: nn.Module, std: float = INIT_STD) -> nn.Module:
    """pix2pix's 'normal' init, in place: conv/linear N(0, std), BatchNorm weight N(1, std), biases 0."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d | nn.ConvTranspose2d | nn.Linear):
            nn.init.normal_(m.weight, 0.0, std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d) and m.affine:
            nn.init.normal_(m.weight, 1.0, std)
            nn.init.zeros_(m.bias)
    return module


class ShapeMismatchError(ValueError):
    """A tensor in the file has another shape than the module's tensor of the same name."""


@dataclass
class LoadReport:
    """What :func:`load_by_name` did. Names are the target module's (with ``prefix``)."""

    source: str
    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # in the module, not in the file
    unexpected: list[str] = field(default_factory=list)  # in the file, not in the module (file's names)
    mismatched: list[tuple[str, tuple, tuple]] = field(default_factory=list)  # (name, file, module)

    def summary(self) -> str:
        text = f"{self.source}: loaded {len(self.loaded)} tensors"
        if self.missing:
            text += f"; missing {len(self.missing)}: {', '.join(self.missing)}"
        if self.unexpected:
            text += f"; unexpected {len(self.unexpected)}: {', '.join(self.unexpected)}"
        if self.mismatched:
            text += "; skipped for shape: " + ", ".join(f"{k} {s} vs {t}" for k, s, t in self.mismatched)
        return text


def load_by_name(
    module: nn.Module,
    state_dict: Mapping[str, torch.Tensor],
    source: str,
    *,
    strict_shapes: bool = True,
    require_complete: bool = False,
    prefix: str = "",
) -> LoadReport:
    """Copy every tensor of ``state_dict`` whose key names a tensor of ``module``.

    A key present on both sides with different shapes raises :class:`ShapeMismatchError` naming
    the key and both shapes (``strict_shapes=False``: skipped and listed in ``mismatched``).
    Missing keys keep the module's values; BatchNorm's ``num_batches_tracked`` counters are never
    reported missing; with ``require_complete`` a missing key is a ``ValueError`` instead. A file
    with no key of ``module`` at all is always a ``ValueError``. ``prefix`` is prepended to the
    names in the report (e.g. ``"encoder."`` when ``module`` is a generator's sub-module). Nothing
    is copied when any of these checks fails.
    """
    own = module.state_dict()
    report = LoadReport(source)
    matched = {}
    for key, tensor in state_dict.items():
        if key not in own:
            report.unexpected.append(key)
            continue
        if not isinstance(tensor, torch.Tensor):
            raise TypeError(f"{source}: {key} is a {type(tensor).__name__}, not a tensor")
        if tuple(tensor.shape) != tuple(own[key].shape):
            mismatch = (prefix + key, tuple(tensor.shape), tuple(own[key].shape))
            if strict_shapes:
                raise ShapeMismatchError(
                    f"{source}: tensor {prefix + key} has shape {mismatch[1]} in the file "
                    f"but {mismatch[2]} in {type(module).__name__}"
                )
            report.mismatched.append(mismatch)
            continue
        matched[key] = tensor
    report.missing = [prefix + k for k in own if k not in matched and not k.endswith(COUNTER_SUFFIX)]
    report.loaded = [prefix + k for k in own if k in matched]
    if not matched:
        raise ValueError(
            f"{source}: no tensor matches {type(module).__name__} (its keys look like "
            f"{prefix + next(iter(own), '')!r}, the file's like {next(iter(state_dict), None)!r})"
        )
    if require_complete and report.missing:
        raise ValueError(f"{source}: has no tensor for {', '.join(report.missing)}")
    damaged = first_non_finite(matched)
    if damaged:
        raise ValueError(f"{source}: tensor {prefix + damaged} holds NaN or infinite values (a damaged file)")
    # the filtered dict holds only keys with matching shapes, so strict=False only skips the missing
    module.load_state_dict(matched, strict=False)
    return report


def read_state_dict(path: str | Path) -> tuple[dict[str, torch.Tensor], Path]:
    """The state dict in ``path`` and the file it came from.

    ``path`` is a plain state dict file (``.pth``), a gan-colorize generator file (its
    ``state_dict``), a checkpoint folder holding ``generator.pt``, or a run folder (the
    ``generator.pt`` of its latest checkpoint, as ``RunDir.latest_checkpoint`` finds it), or an
    exported ``.safetensors`` generator.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"weights file or run folder {path} {absent(path)}")
    file = resolve_generator_file(path)
    if file.suffix == ".safetensors":  # an exported generator (gan-colorize export --format safetensors)
        return read_safetensors_generator(file)["state_dict"], file
    try:  # truncated download, HTML saved as .pth, a pickle of arbitrary objects
        payload = load_tensors(file)
    except RefusedFileError as refused:  # no chained traceback: the file is the problem, not this code
        reason = refused.reason
        raise ValueError(f"{file}: cannot be read as a state dict or generator file: {reason}") from None
    if isinstance(payload, dict) and "format" in payload:
        if payload["format"] != FORMAT:
            raise ValueError(
                f"{file}: unknown generator file format {payload['format']!r} (expected {FORMAT!r})"
            )
        payload = payload.get("state_dict")  # checked below with a state dict's own shape
    if not isinstance(payload, dict) or not all(isinstance(v, torch.Tensor) for v in payload.values()):
        raise ValueError(f"{file}: not a state dict (a mapping of names to tensors)")
    return payload, file


class FrozenEncoderMixin:
    """For a generator whose ``self.encoder`` starts from pretrained weights: what the training loop
    calls to keep it frozen for ``model.freeze_encoder_steps`` and give it a learning rate of its
    own (``encoder_parameters``)."""

    encoder: nn.Module
    encoder_frozen: bool = False

    def encoder_parameters(self) -> list[nn.Parameter]:
        return list(self.encoder.parameters())

    def set_encoder_frozen(self, frozen: bool, stop_gradients: bool = True) -> None:
        """Freeze (or release) the encoder: its BatchNorms use their running statistics.

        ``stop_gradients`` also sets ``requires_grad=False`` on its parameters (saves the backward
        through them). Under DistributedDataParallel pass ``False``: its reducer expects a gradient
        for every parameter it registered, so keep them at learning rate 0 instead.
        """
        self.encoder_frozen = frozen
        if stop_gradients:
            for p in self.encoder.parameters():
                p.requires_grad_(not frozen)
        self._set_encoder_norm_mode()

    def train(self, mode: bool = True):
        super().train(mode)
        self._set_encoder_norm_mode()  # model.train() must not wake a frozen encoder's BatchNorms
        return self

    def _set_encoder_norm_mode(self) -> None:
        for m in self.encoder.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.train(self.training and not self.encoder_frozen)
