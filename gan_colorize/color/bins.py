"""The 313 quantised ab bins of Zhang, Isola & Efros 2016, "Colorful Image Colorization": one module
for the bin table, soft-encoding (sec. 3.1), class rebalancing (sec. 3.2) and decoding (sec. 3.3).

The bin centres are data, not a derivation: ``resources/pts_in_hull.npy`` (richzhang/colorization,
BSD 2-Clause, see ``resources/NOTICE``), the in-gamut cells of a grid of size 10 in the order the
released models' 313 output channels follow. Recomputing them from the sRGB gamut with a standard
Lab conversion gives about 260 cells, so a model compatible with the released weights must use this
table as it is. ``prior_probs.npy`` is the paper's empirical ImageNet distribution over the bins.

All ab values here are in Lab units (about -110..110), not the package's ab_norm.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from gan_colorize.rundir import atomic_write

N_BINS = 313
_RESOURCES = resources.files("gan_colorize.color") / "resources"
_CHUNK = 1 << 18  # pixels per distance computation: 2^18 x 313 floats = 330 MB at most


def load_bin_centers() -> np.ndarray:
    """(313, 2) ab centres, in the released order."""
    with (_RESOURCES / "pts_in_hull.npy").open("rb") as f:
        return np.load(f).astype(np.float64)


def load_imagenet_prior() -> np.ndarray:
    """(313,) the paper's ImageNet bin probabilities (``prior_probs.npy``)."""
    with (_RESOURCES / "prior_probs.npy").open("rb") as f:
        return np.load(f).astype(np.float64)


def _pixels(ab: torch.Tensor) -> torch.Tensor:
    """(N, 2, H, W) -> (N*H*W, 2) float32."""
    return ab.float().permute(0, 2, 3, 1).reshape(-1, 2)


class ABCodec(torch.nn.Module):
    """Maps ab to bins and back; a module so that the centres follow ``.to(device)``."""

    def __init__(self):
        super().__init__()
        self.register_buffer("centers", torch.from_numpy(load_bin_centers()).float(), persistent=False)

    def _sq_distances(self, pixels: torch.Tensor) -> torch.Tensor:
        return torch.cdist(pixels, self.centers).square()

    def nearest_bin(self, ab: torch.Tensor) -> torch.Tensor:
        """(N, 2, H, W) ab -> (N, H, W) index of the nearest bin centre."""
        n, _, h, w = ab.shape
        pix = _pixels(ab)
        idx = torch.cat([self._sq_distances(c).argmin(1) for c in pix.split(_CHUNK)])
        return idx.view(n, h, w)

    def soft_encode(self, ab: torch.Tensor, neighbours: int = 5, sigma: float = 5.0) -> torch.Tensor:
        """(N, 2, H, W) ab -> (N, 313, H, W) soft targets (sec. 3.1).

        Each pixel's ab is spread over its ``neighbours`` nearest bin centres with Gaussian weights
        exp(-d^2 / 2 sigma^2), normalised to sum 1. The paper uses 5 neighbours and sigma 5; the
        released Caffe layer (NNEncLayer) used 10 neighbours. We follow the paper.
        """
        n, _, h, w = ab.shape
        out = []
        for pix in _pixels(ab).split(_CHUNK):
            d2, idx = self._sq_distances(pix).topk(neighbours, dim=1, largest=False)
            weights = torch.softmax(-d2 / (2 * sigma**2), dim=1)  # = exp(-d^2/2s^2) normalised, stably
            out.append(torch.zeros(pix.shape[0], N_BINS, device=ab.device).scatter_(1, idx, weights))
        return torch.cat(out).view(n, h, w, N_BINS).permute(0, 3, 1, 2)

    @staticmethod
    def downsample_ab(ab: torch.Tensor, factor: int = 4) -> torch.Tensor:
        """Targets at the logits' resolution: every ``factor``-th pixel, as the released training
        net's stride-4 subsampling of the ab input did. Averaging instead would invent desaturated
        colours along edges that no pixel has."""
        return ab[..., ::factor, ::factor] if factor > 1 else ab

    def decode(self, logits: torch.Tensor, temperature: float = 0.38, mode: str = "annealed") -> torch.Tensor:
        """(N, 313, h, w) logits -> (N, 2, h, w) ab (sec. 3.3), computed in float32.

        ``annealed``: the mean under softmax(log p / T) = softmax(logits / T), T = 0.38 in the paper;
        ``mean``: T = 1; ``mode``: the centre of the most probable bin (T -> 0).
        """
        logits = logits.float()
        if mode == "mode":
            return self.centers[logits.argmax(1)].permute(0, 3, 1, 2)
        if mode == "mean":
            temperature = 1.0
        elif mode != "annealed":
            raise ValueError(f"decode mode must be annealed, mean or mode, got {mode!r}")
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        probs = torch.softmax(logits / temperature, dim=1)
        return torch.einsum("nqhw,qc->nchw", probs, self.centers)


# ---------------------------------------------------------------- class rebalancing (sec. 3.2)
def accumulate_counts(codec: ABCodec, ab: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """Add the hard nearest-bin counts of an ab batch (Lab units) to ``counts`` (313,), in place."""
    idx = codec.nearest_bin(ab.to(codec.centers.device)).flatten().cpu()
    counts += torch.bincount(idx, minlength=N_BINS).to(counts.dtype)
    return counts


def empirical_prior(counts) -> np.ndarray:
    counts = np.asarray(counts, dtype=np.float64)
    if counts.sum() <= 0:
        raise ValueError("no pixel was counted: the prior needs at least one colour image")
    return counts / counts.sum()


def smooth_prior(prior: np.ndarray, sigma: float = 5.0) -> np.ndarray:
    """Gaussian smoothing of the distribution over the ab plane (kernel on centre distances)."""
    if sigma <= 0:
        return np.asarray(prior, dtype=np.float64)
    centers = load_bin_centers()
    d2 = ((centers[:, None, :] - centers[None, :, :]) ** 2).sum(-1)
    smoothed = np.exp(-d2 / (2 * sigma**2)) @ np.asarray(prior, dtype=np.float64)
    return smoothed / smoothed.sum()


def rebalance_weights(prior: np.ndarray, lam: float = 0.5, sigma: float = 5.0) -> np.ndarray:
    """w ∝ ((1 - λ) p̃ + λ / Q)^-1 with p̃ the smoothed prior, normalised so that E_p̃[w] = 1 (eq. 4).

    λ = 0.5 and σ = 5 are the paper's values. ``sigma=0`` skips smoothing (the released ImageNet
    prior is used as given, as the released training code does).
    """
    p = smooth_prior(prior, sigma)
    w = 1.0 / ((1.0 - lam) * p + lam / N_BINS)
    return w / (p * w).sum()


def rebalanced_cross_entropy(
    logits: torch.Tensor, soft_targets: torch.Tensor, weights: torch.Tensor
) -> torch.Tensor:
    """Eq. 2: -sum_pixels v(Z_hw) sum_q Z_hwq log Ẑ_hwq, with v(Z) = w[argmax_q Z_q] (eq. 3),
    averaged over pixels (so the scale does not depend on the image size). Float32."""
    log_probs = F.log_softmax(logits.float(), dim=1)
    ce = -(soft_targets * log_probs).sum(1)
    v = weights[soft_targets.argmax(1)]
    return (v * ce).mean()


def save_prior(path: str | Path, prior: np.ndarray) -> Path:
    def write(tmp: Path) -> None:
        with tmp.open("wb") as f:
            np.save(f, np.asarray(prior, dtype=np.float64))

    return atomic_write(path, write)


def load_prior(path: str | Path) -> np.ndarray:
    prior = np.load(path)
    if prior.shape != (N_BINS,) or not np.isfinite(prior).all() or abs(prior.sum() - 1) > 1e-6:
        raise ValueError(
            f"{path}: not a prior over the {N_BINS} bins (shape {prior.shape}, sum {prior.sum()})"
        )
    return prior
