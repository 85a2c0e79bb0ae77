"""The 313 quantised ab bins of Zhang, Isola & Efros 2016, "Colorful Image Colorization": one module
for the bin table, soft-encoding (sec. 3.1), class rebalancing (sec. 3.2), the rebalanced loss
(eq. 2-4) and decoding (sec. 3.3).

The bin centres are data, not a derivation: ``resources/pts_in_hull.npy`` (richzhang/colorization,
BSD 2-Clause, see ``resources/NOTICE``), the in-gamut cells of an ab grid of size 10 in the order the
released models' 313 output channels follow. Recomputing them from the sRGB gamut with a standard
Lab conversion gives another set (about 260 cells), so a model compatible with the released
weights must use this table as it is. ``prior_probs.npy`` is the paper's empirical ImageNet
distribution over these bins (already smoothed), from the same place.

All ab values here are in Lab units (about -110..110), not the package's ab_norm
(``gan_colorize.color.lab.denormalize_ab`` converts). Every computation runs in float32 with
autocast switched off, so that the module may be called inside a bf16/fp16 autocast region.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from importlib import resources
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from gan_colorize.rundir import atomic_write

N_BINS = 313  # in-gamut cells of the grid of size 10 (pts_in_hull.npy)
GRID = 10  # ab grid spacing of the bins
SOFT_NEIGHBOURS = 5  # paper sec. 3.1 (the released Caffe NNEncLayer used 10)
SOFT_SIGMA = 5.0  # paper sec. 3.1, in ab units
TEMPERATURE = 0.38  # annealed mean, paper sec. 3.3
REBALANCE_LAMBDA = 0.5  # paper sec. 3.2
REBALANCE_SIGMA = 5.0  # paper sec. 3.2
SUBSAMPLE = 4  # the network predicts at 1/4 resolution (conv8_313 in the released prototxt)

_RESOURCES = resources.files("gan_colorize.color") / "resources"
# pixels per distance computation: three (chunk, 313) float32 tensors, about 40 MB each
_CHUNK = 1 << 15


def load_bin_centers() -> np.ndarray:
    """(313, 2) int64 ab centres, exactly as released (never recomputed), in the released order."""
    with (_RESOURCES / "pts_in_hull.npy").open("rb") as f:
        centers = np.load(f)
    if centers.shape != (N_BINS, 2):
        raise ValueError(f"resources/pts_in_hull.npy: expected ({N_BINS}, 2), got {centers.shape}")
    return centers


def load_imagenet_prior() -> np.ndarray:
    """(313,) float64: the paper's ImageNet bin probabilities (``resources/prior_probs.npy``)."""
    with (_RESOURCES / "prior_probs.npy").open("rb") as f:
        prior = np.load(f).astype(np.float64)
    if prior.shape != (N_BINS,):
        raise ValueError(f"resources/prior_probs.npy: expected ({N_BINS},), got {prior.shape}")
    return prior


def _no_autocast(device: torch.device):
    """Switch autocast off where one can be on (cuda, cpu): our sums and products stay float32."""
    if device.type in ("cuda", "cpu"):
        return torch.autocast(device_type=device.type, enabled=False)
    return contextlib.nullcontext()


def _check_ab(ab: torch.Tensor) -> None:
    if ab.ndim != 4 or ab.shape[1] != 2:
        raise ValueError(f"ab must be (N, 2, H, W) in Lab units, got shape {tuple(ab.shape)}")


def _pixels(ab: torch.Tensor) -> torch.Tensor:
    """(N, 2, H, W) -> (N*H*W, 2) float32."""
    return ab.float().permute(0, 2, 3, 1).reshape(-1, 2)


def downsample_ab(ab: torch.Tensor, factor: int = SUBSAMPLE) -> torch.Tensor:
    """ab at the logits' resolution: every ``factor``-th pixel, starting at the first.

    This is what the released training net did: ``data_ab_ss`` in colorization_train_val_v2.prototxt
    is a fixed 1x1 convolution of stride 4 with weight 1 (an average-pooling variant stands commented
    out beside it). Averaging would also blend the two sides of an edge into a desaturated colour
    that no pixel has, and teach the network that colour.
    """
    _check_ab(ab)
    if factor < 1:
        raise ValueError(f"factor must be >= 1, got {factor}")
    return ab[..., ::factor, ::factor] if factor > 1 else ab


class ABCodec(torch.nn.Module):
    """Maps ab to the 313 bins and back; a module so that the centres follow ``.to(device)``.

    ``centers`` is a non-persistent buffer: it is data of the package, never of a checkpoint.
    """

    centers: torch.Tensor

    def __init__(self):
        super().__init__()
        self.register_buffer("centers", torch.from_numpy(load_bin_centers()).float(), persistent=False)

    downsample_ab = staticmethod(downsample_ab)

    def _sq_distances(self, pixels: torch.Tensor) -> torch.Tensor:
        """(P, 2) -> (P, 313) squared distances, by differences: exact, unlike cdist's matmul form
        (|x|^2 + |c|^2 - 2xc loses ~1e-3 of d^2 at |ab| ~ 100 in float32), and cheap in 2-D."""
        da = pixels[:, :1] - self.centers[:, 0]
        db = pixels[:, 1:] - self.centers[:, 1]
        return da * da + db * db

    def nearest_bin(self, ab: torch.Tensor) -> torch.Tensor:
        """(N, 2, H, W) ab -> (N, H, W) int64 index of the nearest bin centre (hard encoding)."""
        _check_ab(ab)
        n, _, h, w = ab.shape
        with _no_autocast(ab.device):
            pix = _pixels(ab.to(self.centers.device))
            idx = [self._sq_distances(chunk).argmin(1) for chunk in pix.split(_CHUNK)]
        return torch.cat(idx).view(n, h, w)

    def soft_encode(
        self, ab: torch.Tensor, neighbours: int = SOFT_NEIGHBOURS, sigma: float = SOFT_SIGMA
    ) -> torch.Tensor:
        """(N, 2, H, W) ab -> (N, 313, H, W) float32 soft targets Z (sec. 3.1).

        Each pixel's ab is spread over its ``neighbours`` nearest bin centres with Gaussian weights
        exp(-d^2 / 2 sigma^2), normalised to sum 1. The paper's text says 5 neighbours and sigma 5,
        and we follow it; the released Caffe layer (``NNEncLayer`` in caffe_traininglayers.py) used
        10 neighbours with the same sigma. Give ``neighbours=10`` to train as that code did.

        Memory: the result has N*313*H*W floats (80 MB for 16 targets of 64x64, the logits of
        256 px crops); the distances are computed in chunks of 32768 pixels.
        """
        _check_ab(ab)
        if not 1 <= neighbours <= N_BINS:
            raise ValueError(f"neighbours must be in 1..{N_BINS}, got {neighbours}")
        if sigma <= 0:
            raise ValueError(f"sigma must be > 0, got {sigma}")
        n, _, h, w = ab.shape
        device = self.centers.device
        out = torch.zeros(n * h * w, N_BINS, device=device)
        with _no_autocast(device):
            for start, chunk in zip(range(0, n * h * w, _CHUNK), _pixels(ab.to(device)).split(_CHUNK)):
                d2, idx = self._sq_distances(chunk).topk(neighbours, dim=1, largest=False)
                # softmax(-d^2 / 2 sigma^2) is exp(-d^2 / 2 sigma^2) normalised, without underflow
                weights = torch.softmax(-d2 / (2.0 * sigma**2), dim=1)
                out[start : start + chunk.shape[0]].scatter_(1, idx, weights)
        return out.view(n, h, w, N_BINS).permute(0, 3, 1, 2)

    def decode(
        self, logits: torch.Tensor, temperature: float = TEMPERATURE, mode: str = "annealed"
    ) -> torch.Tensor:
        """(N, 313, h, w) logits -> (N, 2, h, w) ab in Lab units (sec. 3.3), computed in float32.

        * ``annealed``: the mean under f_T(z) = exp(log z / T) / sum exp(log z / T), z the softmax of
          the logits; since log z = logits - const, f_T(z) = softmax(logits / T). T = 0.38 is the
          paper's choice between the vivid but patchy mode and the desaturated mean;
        * ``mean``: T = 1, the expectation under the predicted distribution (``temperature`` unused);
        * ``mode``: the centre of the most probable bin (the limit T -> 0).
        """
        if logits.ndim != 4 or logits.shape[1] != N_BINS:
            raise ValueError(f"logits must be (N, {N_BINS}, h, w), got shape {tuple(logits.shape)}")
        with _no_autocast(logits.device):
            logits = logits.float().to(self.centers.device)
            if mode == "mode":
                return self.centers[logits.argmax(1)].permute(0, 3, 1, 2).contiguous()
            if mode == "mean":
                temperature = 1.0
            elif mode != "annealed":
                raise ValueError(f"decode mode must be 'annealed', 'mean' or 'mode', got {mode!r}")
            if temperature <= 0:
                raise ValueError(f"temperature must be > 0, got {temperature}")
            probs = torch.softmax(logits / temperature, dim=1)
            return torch.einsum("nqhw,qc->nchw", probs, self.centers)

    def accumulate_counts(self, ab: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
        """Add the hard nearest-bin counts of an ab batch to ``counts`` (313,), in place."""
        if counts.shape != (N_BINS,):
            raise ValueError(f"counts must have shape ({N_BINS},), got {tuple(counts.shape)}")
        idx = self.nearest_bin(ab).flatten()
        counts += torch.bincount(idx, minlength=N_BINS).to(device=counts.device, dtype=counts.dtype)
        return counts


# ---------------------------------------------------------------- class rebalancing (sec. 3.2)
def accumulate_counts(codec: ABCodec, ab: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """Stream a training set into bin counts: ``counts`` (313,) += hard nearest-bin counts of ``ab``
    (N, 2, H, W, Lab units), in place; ``empirical_prior(counts)`` then gives the prior."""
    return codec.accumulate_counts(ab, counts)


def empirical_prior(counts_or_batches) -> np.ndarray:
    """(313,) float64 probabilities from hard nearest-bin counts, or from an iterable of ab batches
    (N, 2, H, W, Lab units) that are counted here."""
    if isinstance(counts_or_batches, np.ndarray | torch.Tensor) and counts_or_batches.ndim == 1:
        counts = np.asarray(torch.as_tensor(counts_or_batches).cpu(), dtype=np.float64)
    elif isinstance(counts_or_batches, Iterable):
        codec, total = ABCodec(), torch.zeros(N_BINS, dtype=torch.float64)
        for ab in counts_or_batches:
            codec.accumulate_counts(torch.as_tensor(ab).cpu(), total)
        counts = total.numpy()
    else:
        raise TypeError(f"expected counts (313,) or an iterable of ab batches, got {type(counts_or_batches)}")
    if counts.shape != (N_BINS,):
        raise ValueError(f"counts must have shape ({N_BINS},), got {counts.shape}")
    if counts.sum() <= 0:
        raise ValueError("no pixel was counted: the prior needs at least one colour pixel")
    return counts / counts.sum()


def smooth_prior(prior: np.ndarray, sigma: float = REBALANCE_SIGMA) -> np.ndarray:
    """p~: the bin distribution convolved with a Gaussian G_sigma over the ab plane (sec. 3.2).

    The kernel is evaluated on the distances between bin centres, i.e. the histogram on the grid
    (zero outside the 313 cells) is convolved and read back at the cells; the mass that spills out
    of the gamut is dropped by renormalising. ``sigma <= 0`` returns the prior unchanged.
    """
    prior = _as_prior(prior)
    if sigma <= 0:
        return prior
    centers = load_bin_centers().astype(np.float64)
    d2 = ((centers[:, None, :] - centers[None, :, :]) ** 2).sum(-1)
    smoothed = np.exp(-d2 / (2.0 * sigma**2)) @ prior
    return smoothed / smoothed.sum()


def rebalance_weights(
    prior: np.ndarray, lam: float = REBALANCE_LAMBDA, sigma: float = REBALANCE_SIGMA
) -> np.ndarray:
    """(313,) w ∝ ((1 - λ) p~ + λ / Q)^-1 with p~ the smoothed prior, normalised so that
    E_p~[w] = sum_q p~_q w_q = 1 (eq. 4).

    λ = 0.5 and σ = 5 are the paper's values. The released ImageNet prior is already smoothed: use
    it with ``sigma=0``, as the released training code (``PriorFactor``, gamma = 0.5, alpha = 1) did.
    With it the commonest (grey) bin gets w ≈ 0.10 and the rarest ≈ 6.2.
    """
    if not 0.0 <= lam <= 1.0:
        raise ValueError(f"lam must be in [0, 1], got {lam}")
    p = smooth_prior(prior, sigma)
    w = 1.0 / ((1.0 - lam) * p + lam / N_BINS)  # finite for lam > 0; lam = 0 needs every p > 0
    if not np.isfinite(w).all():
        raise ValueError("lam = 0 with a bin of zero probability gives it an infinite weight")
    return w / (p * w).sum()


def rebalanced_cross_entropy(
    logits: torch.Tensor, soft_targets: torch.Tensor, weights: torch.Tensor
) -> torch.Tensor:
    """The classification loss of eq. 2-3, averaged over pixels (so its scale does not depend on
    the image size or batch):

        L = mean_{n,h,w} v(Z_nhw) * ( -sum_q Z_nhwq log softmax(logits)_nhwq ),
        v(Z) = w[argmax_q Z_q]

    ``logits`` (N, 313, h, w), ``soft_targets`` Z (N, 313, h, w) from :meth:`ABCodec.soft_encode`,
    ``weights`` w (313,) from :func:`rebalance_weights`. Computed in float32.
    """
    if logits.shape != soft_targets.shape or logits.ndim != 4 or logits.shape[1] != N_BINS:
        raise ValueError(
            f"logits {tuple(logits.shape)} and soft targets {tuple(soft_targets.shape)} must both be "
            f"(N, {N_BINS}, h, w)"
        )
    if weights.shape != (N_BINS,):
        raise ValueError(f"weights must have shape ({N_BINS},), got {tuple(weights.shape)}")
    with _no_autocast(logits.device):
        log_probs = F.log_softmax(logits.float(), dim=1)
        targets = soft_targets.float()
        ce = -(targets * log_probs).sum(1)
        v = weights.float().to(logits.device)[targets.argmax(1)]
        return (v * ce).mean()


# ---------------------------------------------------------------- prior files
def _as_prior(prior) -> np.ndarray:
    prior = np.asarray(prior, dtype=np.float64)
    if prior.shape != (N_BINS,) or not np.isfinite(prior).all() or (prior < 0).any():
        raise ValueError(f"a prior must be {N_BINS} finite non-negative numbers, got shape {prior.shape}")
    if abs(prior.sum() - 1.0) > 1e-6:
        raise ValueError(f"a prior must sum to 1, this one sums to {prior.sum()}")
    return prior


def save_prior(path: str | Path, prior: np.ndarray) -> Path:
    """Write a (313,) prior as .npy, atomically (readers never see half a file)."""
    prior = _as_prior(prior)

    def write(tmp: Path) -> None:
        with tmp.open("wb") as f:
            np.save(f, prior)

    return atomic_write(path, write)


def load_prior(path: str | Path) -> np.ndarray:
    """Read a prior written by :func:`save_prior`, checking it is a distribution over the bins."""
    try:
        return _as_prior(np.load(path))
    except ValueError as exc:
        raise ValueError(f"{path}: not a prior over the {N_BINS} bins: {exc}") from None
