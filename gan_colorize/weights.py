"""Where pretrained weights are found, and the one error raised when they are not.

Weights are read from a path given in the config, else from the standard torch hub cache
``$TORCH_HOME/hub/checkpoints/`` (``~/.cache/torch/hub/checkpoints`` by default), under the file
name that torchvision, pytorch-fid or lpips would download. gan-colorize never downloads and
never falls back to random weights: a missing file is a :class:`MissingWeightsError` that names
the file, where it was looked for, and where to get it; a file that is there but cannot be read (a
truncated download, an HTML page saved as .pth) is its subclass :class:`UnreadableWeightsError`.
"""

from __future__ import annotations

import pickle
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

from gan_colorize.rundir import absent


@dataclass(frozen=True)
class KnownWeights:
    filename: str
    what: str
    url: str


# The files the standard packages would fetch into the hub cache.
INCEPTION_FID = KnownWeights(
    "pt_inception-2015-12-05-6726825d.pth",
    "FID Inception-v3 (pytorch-fid)",
    "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth",
)
ALEXNET = KnownWeights(
    "alexnet-owt-7be5be79.pth",
    "AlexNet ImageNet (torchvision; LPIPS backbone)",
    "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
)
VGG16 = KnownWeights(
    "vgg16-397923af.pth",
    "VGG16 ImageNet (torchvision; perceptual loss)",
    "https://download.pytorch.org/models/vgg16-397923af.pth",
)
ZHANG_ECCV16 = KnownWeights(
    "colorization_release_v2-9b330a0b.pth",
    "Zhang et al. 2016 released colorization model (eccv16)",
    "https://colorizers.s3.us-east-2.amazonaws.com/colorization_release_v2-9b330a0b.pth",
)

# ImageNet encoders of the unet_backbone generator: torchvision's IMAGENET1K_V1 files (the names its
# download would write into the hub cache). RESNET50_V2 (IMAGENET1K_V2) is accepted via an explicit
# path only: the hub-cache default stays V1, the file DeOldify and most colorization work started from.
RESNET18 = KnownWeights(
    "resnet18-f37072fd.pth",
    "ResNet-18 ImageNet (torchvision IMAGENET1K_V1; unet_backbone encoder)",
    "https://download.pytorch.org/models/resnet18-f37072fd.pth",
)
RESNET34 = KnownWeights(
    "resnet34-b627a593.pth",
    "ResNet-34 ImageNet (torchvision IMAGENET1K_V1; unet_backbone encoder)",
    "https://download.pytorch.org/models/resnet34-b627a593.pth",
)
RESNET50 = KnownWeights(
    "resnet50-0676ba61.pth",
    "ResNet-50 ImageNet (torchvision IMAGENET1K_V1; unet_backbone encoder)",
    "https://download.pytorch.org/models/resnet50-0676ba61.pth",
)
RESNET50_V2 = KnownWeights(
    "resnet50-11ad3fa6.pth",
    "ResNet-50 ImageNet (torchvision IMAGENET1K_V2; unet_backbone encoder, via weights: PATH)",
    "https://download.pytorch.org/models/resnet50-11ad3fa6.pth",
)


class MissingWeightsError(FileNotFoundError):
    """Pretrained weights that are not on this machine."""

    def __init__(self, weights: KnownWeights | None, path: Path, hint: str = ""):
        self.weights = weights
        self.path = Path(path)
        what = weights.what if weights else "weights"
        where = f" Download {weights.url} and put it there" if weights else ""
        # TORCH_HOME moves only the hub cache: for a path from the config it is no remedy
        others = "set TORCH_HOME, or give" if self.path.parent == hub_checkpoints_dir() else "correct"
        super().__init__(
            f"missing {what}: {self.path} {absent(self.path)}.{where} "
            f"(or {others} the file's path in the config).{(' ' + hint) if hint else ''}"
        )

    @property
    def short(self) -> str:
        """The text a report cell shows: 'n/a (missing FILE, see README)'."""
        return f"n/a (missing {self.path.name}, see README)"


class UnreadableWeightsError(MissingWeightsError):
    """Pretrained weights whose file exists but cannot be loaded (a MissingWeightsError all the same:
    the metric or loss cannot run, and every caller that handles a missing file handles this one)."""

    def __init__(self, weights: KnownWeights | None, path: Path, reason: str):
        self.weights = weights
        self.path = Path(path)
        what = weights.what if weights else "weights"
        where = f" Download {weights.url} again and replace it" if weights else " Replace it"
        FileNotFoundError.__init__(
            self, f"unreadable {what}: {self.path} exists but cannot be read: {reason}.{where}."
        )

    @property
    def short(self) -> str:
        """The text a report cell shows: 'n/a (unreadable FILE, see README)' (the full message says why)."""
        return f"n/a (unreadable {self.path.name}, see README)"


def hub_checkpoints_dir() -> Path:
    """``$TORCH_HOME/hub/checkpoints`` as torch itself resolves it (read at call time)."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def find_weights(weights: KnownWeights, path: str | Path | None = None) -> Path:
    """The file for ``weights``: ``path`` when given, else the hub cache; raises when absent."""
    candidate = Path(path).expanduser() if path else hub_checkpoints_dir() / weights.filename
    if not candidate.is_file():
        raise MissingWeightsError(weights, candidate)
    return candidate


class RefusedFileError(ValueError):
    """``torch.load(weights_only=True)`` refused a file; ``reason`` says why, in one line."""

    def __init__(self, reason: str):
        self.reason = reason
        super().__init__(reason)


def load_tensors(file: str | Path) -> object:
    """How gan-colorize reads every ``.pt``/``.pth`` file a user can hand it (weights, checkpoints,
    generators; lpips alone reads the heads inside its own package): ``torch.load(weights_only=True)``,
    whose unpickler refuses anything but tensors and plain containers, so such a file runs no code.

    A refusal is a :class:`RefusedFileError` with the reason alone: torch's own text advises retrying
    with weights_only=False, which would run the file's code. Torch's warning about a pickle protocol
    other than its own is silenced: such a file is refused or read all the same, and the warning
    would print before our error line.
    """
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            return torch.load(file, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 (a file from elsewhere: any failure is "not loadable")
        raise RefusedFileError(_refusal(exc)) from None


def _refusal(exc: Exception) -> str:
    """Why ``torch.load`` refused a file, without torch's advice to retry with weights_only=False:
    a weights, generator or checkpoint file has no reason to hold anything but tensors and plain
    containers."""
    text = str(exc)
    # torch says "Unsupported global: GLOBAL x" for a class, "unsupported GLOBAL x whose module y is
    # blocked" for a function such as os.system
    found = re.search(r"unsupported global(?:: GLOBAL)? ([\w.]+)", text, re.IGNORECASE)
    if found or "Unsupported class" in text:
        what = f" ({found.group(1)})" if found else ""
        return f"it holds a pickled object{what} besides tensors and plain containers, which is never loaded"
    if isinstance(exc, EOFError):  # torch's is message-less
        return "the file is empty or cut short"
    if "PytorchStreamReader failed" in text:  # torch's text goes on with three sentences of advice
        return "a damaged or cut-short torch file (its zip archive cannot be read)"
    if "Invalid magic number" in text:  # a pickle, but not one torch.save wrote
        return "not a torch file of tensors (invalid magic number)"
    if isinstance(exc, pickle.UnpicklingError) or "weights_only" in text:
        # the restricted unpickler met something that is no pickle of tensors at all
        operand = re.search(r"Unsupported operand \d+|invalid load key[^\n]*", text)
        return f"not a torch file of tensors (unreadable: {operand.group(0) if operand else 'damaged'})"
    return text.splitlines()[0] if text.strip() else type(exc).__name__


def load_state_dict(weights: KnownWeights, path: str | Path | None = None) -> dict:
    """Find and load a plain state dict (tensors only: ``weights_only=True``)."""
    file = find_weights(weights, path)
    try:  # a truncated download, an HTML page saved as .pth, a pickle with code ...
        state = load_tensors(file)
    except RefusedFileError as refused:
        raise UnreadableWeightsError(weights, file, refused.reason) from None
    if not isinstance(state, dict):
        raise UnreadableWeightsError(weights, file, f"it holds a {type(state).__name__}, not a state dict")
    damaged = first_non_finite(state)
    if damaged:
        raise UnreadableWeightsError(weights, file, f"tensor {damaged} holds NaN or infinite values")
    return state


def first_non_finite(state: dict | list | tuple, prefix: str = "") -> str | None:
    """The name (``a.b.0.c`` for nested containers, as in an optimizer's state) of the first
    floating-point tensor of ``state`` holding a NaN or an infinity: a damaged file that would
    otherwise load and stop training at step 1 as a "non-finite loss"."""
    items = state.items() if isinstance(state, dict) else enumerate(state)
    for key, value in items:
        name = f"{prefix}{key}"
        if isinstance(value, torch.Tensor):
            if value.is_floating_point() and not value.isfinite().all():
                return name
        elif isinstance(value, (dict, list, tuple)):
            found = first_non_finite(value, name + ".")
            if found:
                return found
    return None
