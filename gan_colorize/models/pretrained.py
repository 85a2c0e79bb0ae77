"""Frozen pretrained networks shared by the losses and the metrics, built from local files only.

* :func:`load_exact` copies a weights file into a module under a key mapping, strictly: every
  parameter and buffer of the module comes from the file (never from a random initialisation), and
  a file that lacks some or holds other shapes is an :class:`IncompatibleWeightsError` naming them.
  The VGG16 perceptual features, the LPIPS trunks and EfficientNet-Lite0
  (:mod:`gan_colorize.models.efficientnet_lite`) are all loaded through it.
* :func:`build_lpips` is LPIPS (Zhang et al. 2018) for both the LPIPS loss
  (``gan_colorize.losses.perceptual``) and the LPIPS metric (``gan_colorize.metrics.lpips_metric``).

LPIPS has two sets of weights: its linear calibration heads, shipped inside the lpips package
(``lpips/weights/v<version>/<net>.pth``), and the ImageNet trunk, torchvision's AlexNet or VGG16
file (``alexnet-owt-7be5be79.pth`` / ``vgg16-397923af.pth``), which lpips would fetch through
torchvision's download. So the trunk's file is found by :mod:`gan_colorize.weights` (``weights=PATH``
or the torch hub cache) and read first, ``lpips.LPIPS`` is built with ``pnet_rand=True`` (its trunk
constructed without asking torchvision for weights), and the file is loaded into the trunk.

This module sits in ``models`` rather than in ``losses`` because the metrics use it too, and a
metric should not depend on the training losses.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from gan_colorize.weights import ALEXNET, VGG16, find_weights, load_state_dict

if TYPE_CHECKING:
    import lpips


# torchvision's ImageNet normalisation, the one its VGG, AlexNet and ResNet weights were trained with
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class IncompatibleWeightsError(ValueError):
    """A weights file that exists but does not hold the tensors the network needs."""


def uninitialised(build: Callable[[], nn.Module]) -> nn.Module:
    """``build()`` on the meta device, then given CPU storage: skips a random initialisation that
    :func:`load_exact` overwrites in full anyway (seconds for VGG16)."""
    with torch.device("meta"):
        module = build()
    return module.to_empty(device="cpu")


def load_exact(
    module: nn.Module, state: dict, key_in_file: Callable[[str], str], file: Path, what: str
) -> None:
    """Load every parameter and buffer of ``module`` from ``state``, where ``key_in_file`` maps the
    module's key to the file's; keys the module does not have are ignored (a truncated network needs
    only some of the file), keys it has and the file lacks are an error that names them."""
    wanted = {key: key_in_file(key) for key in module.state_dict()}
    missing = [source for source in wanted.values() if source not in state]
    if missing:
        shown = ", ".join(missing[:6]) + (f" and {len(missing) - 6} more" if len(missing) > 6 else "")
        raise IncompatibleWeightsError(f"{file} lacks {len(missing)} tensors that {what} needs: {shown}")
    try:
        module.load_state_dict({key: state[source] for key, source in wanted.items()}, strict=True)
    except RuntimeError as exc:  # shape mismatches: a file for another architecture
        raise IncompatibleWeightsError(f"{file} does not fit {what}: {exc}") from None


# --------------------------------------------------------------------------- LPIPS (lpips package)

LPIPS_TRUNKS = {"alex": ALEXNET, "vgg": VGG16}


def lpips_trunk_key(key: str) -> str:
    """lpips splits torchvision's ``features`` into slices that keep the original indices:
    ``slice<k>.<index>.weight`` is the file's ``features.<index>.weight``."""
    return "features." + key.split(".", 1)[1]


def build_lpips(net: str = "alex", weights: str | Path | None = None, version: str = "0.1") -> lpips.LPIPS:
    """``lpips.LPIPS(net, version)``, frozen and in eval mode, its trunk read from ``weights`` or the
    hub cache. A missing trunk file is a ``MissingWeightsError`` before lpips builds anything, so
    nothing can try to download it. Call it on two RGB batches in [-1, 1]: (N, 1, 1, 1) distances."""
    if net not in LPIPS_TRUNKS:
        raise ValueError(f"lpips net {net!r} is not supported; choose one of {list(LPIPS_TRUNKS)}")
    known = LPIPS_TRUNKS[net]
    file = find_weights(known, weights)
    state = load_state_dict(known, file)
    import lpips

    with warnings.catch_warnings():
        # lpips calls torchvision's alexnet / vgg16 with the deprecated `pretrained=False`
        warnings.filterwarnings("ignore", message=".*(pretrained|weights).*", category=UserWarning)
        model = lpips.LPIPS(net=net, version=version, pnet_rand=True, verbose=False)
    load_exact(model.net, state, lpips_trunk_key, file, f"LPIPS {net} trunk")
    model.requires_grad_(False)
    return model.eval()
