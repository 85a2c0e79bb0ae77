"""The Frechet distance between feature distributions, their streamed statistics, and a cache of
the ground truth's features.

Frechet distance between N(mu1, S1) and N(mu2, S2) (Dowson & Landau 1982; FID, Heusel et al.
2017)::

    d^2 = ||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2))

pytorch-fid computes (S1 S2)^(1/2) with ``scipy.linalg.sqrtm``, retries with eps * I added to both
covariances when the product is singular, and drops a small imaginary part. Only its trace is
needed, and for symmetric PSD S1, S2 that trace is the nuclear norm (sum of singular values) of
sqrt(S1) sqrt(S2): (sqrt(S1) sqrt(S2)) (sqrt(S1) sqrt(S2))^T = sqrt(S1) S2 sqrt(S1), whose
eigenvalues are those of S1 S2. We compute it so (``numpy.linalg.eigh`` for the symmetric square
roots, negative round-off eigenvalues clipped to 0, then singular values; all float64): real by
construction, valid for singular covariances (fewer images than dimensions) without an eps
offset, and on such rank-deficient inputs within ~1e-9 relative where sqrtm is off by ~1e-8-1e-7.
When both sets have fewer vectors than dimensions, the same trace is the nuclear norm of the
small matrix A1 A2^T (A: centred features / sqrt(n - 1), so S = A^T A): exact to round-off
(~1e-13) and fast, used by :func:`frechet_distance_between`. ``tests/test_metrics.py`` checks
both against the sqrtm formula.

Statistics are streamed (:class:`FeatureStats`: count, sum and sum of outer products in float64,
shifted by the first batch's mean so that the covariance does not lose digits to a large mean);
the covariance is the unbiased one (``np.cov``, as pytorch-fid).

The ground truth of an evaluation set is the same for every model evaluated on it, so its
features are cached (:class:`FeatureCache`): one ``.npz`` per ground-truth batch, keyed by the
sha256 of the batch's uint8 bytes and shape together with the feature network's identity (metric
name, preprocessing, package version where the network comes from a package, weights file name and
content hash) and the numerics it ran with (:func:`numerics_tag`: the device type and, on CUDA, the
TF32 flags: TF32 keeps 10 mantissa bits, so its features differ from float32 ones at ~1e-3
relative). A cached batch skips the
network; a different image, order, batch size, weights file, package version, device type or TF32
setting is a different key. The cache lives in
``$GAN_COLORIZE_CACHE/fid_stats`` (``~/.cache/gan_colorize/fid_stats`` by default) or the folder
given as ``cache_dir``.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from gan_colorize.metrics import Metric, MetricNotApplicableError
from gan_colorize.rundir import atomic_write

log = logging.getLogger(__name__)

CACHE_ENV = "GAN_COLORIZE_CACHE"
CACHE_SUBDIR = "fid_stats"
CACHE_FORMAT = "gan_colorize-features-v1"
# pytorch-fid's README: fewer samples than the 2048 feature dimensions leave the covariance
# rank-deficient; Chong & Forsyth 2020: FID is biased upward at small n. Compare only at equal n.
FID_RELIABLE_N = 2048


# ---------------------------------------------------------------- the distance
def _sqrt_psd(matrix: np.ndarray) -> np.ndarray:
    """Symmetric square root of a symmetric PSD matrix (negative round-off eigenvalues -> 0)."""
    eigenvalues, vectors = np.linalg.eigh(matrix)
    return (vectors * np.sqrt(np.clip(eigenvalues, 0.0, None))) @ vectors.T


def trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
    """Tr((S1 S2)^(1/2)) for symmetric PSD S1, S2: the nuclear norm of sqrt(S1) sqrt(S2)."""
    return float(np.linalg.svd(_sqrt_psd(sigma1) @ _sqrt_psd(sigma2), compute_uv=False).sum())


def _as_gaussian(mu, sigma) -> tuple[np.ndarray, np.ndarray]:
    return np.atleast_1d(np.asarray(mu, np.float64)), np.atleast_2d(np.asarray(sigma, np.float64))


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """Squared Frechet distance between N(mu1, sigma1) and N(mu2, sigma2), in float64."""
    (mu1, sigma1), (mu2, sigma2) = _as_gaussian(mu1, sigma1), _as_gaussian(mu2, sigma2)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != (mu1.size, mu1.size):
        raise ValueError(
            f"frechet_distance: shapes do not match: mu {mu1.shape} / {mu2.shape}, "
            f"sigma {sigma1.shape} / {sigma2.shape}"
        )
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * trace_sqrt_product(sigma1, sigma2))


def frechet_distance_between(a: FeatureStats, b: FeatureStats) -> float:
    """The Frechet distance of two accumulated feature sets (the low-rank route when both allow it)."""
    if a.dim != b.dim:
        raise ValueError(f"frechet_distance_between: {a.dim}-d and {b.dim}-d features")
    factor_a, factor_b = a.low_rank_factor(), b.low_rank_factor()
    if factor_a is None or factor_b is None:
        return frechet_distance(a.mean(), a.cov(), b.mean(), b.cov())
    diff = a.mean() - b.mean()
    trace_a, trace_b = np.sum(factor_a**2), np.sum(factor_b**2)  # Tr(A^T A) = ||A||_F^2
    cross = np.linalg.svd(factor_a @ factor_b.T, compute_uv=False).sum()
    return float(diff @ diff + trace_a + trace_b - 2.0 * cross)


# ---------------------------------------------------------------- streamed statistics
class FeatureStats:
    """Running mean and covariance of feature vectors, in float64.

    While there are at most ``dim`` vectors they are also kept (at most dim x dim numbers, the size
    of the sum of outer products) for :meth:`low_rank_factor`.
    """

    def __init__(self, dim: int):
        self.dim = dim
        self.n = 0
        self.shift: np.ndarray | None = None
        self.sum = np.zeros(dim, np.float64)
        self.sum_outer = np.zeros((dim, dim), np.float64)
        self._kept: list[np.ndarray] | None = []

    def update(self, features: np.ndarray | torch.Tensor) -> None:
        if isinstance(features, torch.Tensor):
            features = features.detach().cpu().numpy()
        x = np.asarray(features, np.float64).reshape(len(features), -1)
        if x.shape[1] != self.dim:
            raise ValueError(f"FeatureStats: expected {self.dim}-d features, got {x.shape[1]}")
        if len(x) == 0:
            return
        if self._kept is not None:
            self._kept = self._kept + [x.copy()] if self.n + len(x) <= self.dim else None
        if self.shift is None:
            self.shift = x.mean(axis=0)
        x = x - self.shift
        self.n += len(x)
        self.sum += x.sum(axis=0)
        self.sum_outer += x.T @ x

    def mean(self) -> np.ndarray:
        if self.n == 0:
            raise ValueError("FeatureStats: no features")
        return self.shift + self.sum / self.n

    def cov(self) -> np.ndarray:
        """Unbiased covariance (divides by n - 1, as np.cov)."""
        self._check_cov()
        centred_mean = self.sum / self.n
        return (self.sum_outer - self.n * np.outer(centred_mean, centred_mean)) / (self.n - 1)

    def low_rank_factor(self) -> np.ndarray | None:
        """A (n, dim) with A^T A = cov(), when the vectors were kept; else None."""
        self._check_cov()
        if self._kept is None:
            return None
        x = np.concatenate(self._kept)
        return (x - x.mean(axis=0)) / np.sqrt(self.n - 1)

    def _check_cov(self) -> None:
        if self.n < 2:
            raise ValueError(f"FeatureStats: a covariance needs at least 2 feature vectors, got {self.n}")


# ---------------------------------------------------------------- the cache
def default_cache_dir() -> Path:
    root = os.environ.get(CACHE_ENV)
    base = Path(root).expanduser() if root else Path.home() / ".cache" / "gan_colorize"
    return base / CACHE_SUBDIR


@functools.lru_cache(maxsize=16)
def _file_sha256(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def file_sha256(path: str | Path) -> str:
    """sha256 of a file's content, remembered per (path, size, mtime) within the process."""
    stat = Path(path).stat()
    return _file_sha256(str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns)


def numerics_tag(device: torch.device) -> str:
    """How the feature network's arithmetic runs on ``device``, read when a key is made (the flags
    can change between building a metric and using it): the device type, plus on CUDA whether
    cuDNN convolutions and matmuls may use TF32 (``torch.backends.cudnn.allow_tf32``,
    ``torch.backends.cuda.matmul.allow_tf32``)."""
    if device.type != "cuda":
        return device.type
    cudnn, matmul = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    return f"cuda:tf32-cudnn={int(cudnn)}:tf32-matmul={int(matmul)}"


def batch_key(images_u8: torch.Tensor, extractor_id: str) -> str:
    """Cache key of one uint8 batch: sha256 over format, extractor identity, shape and bytes."""
    digest = hashlib.sha256()
    digest.update(f"{CACHE_FORMAT}\n{extractor_id}\n{tuple(images_u8.shape)}\n".encode())
    digest.update(images_u8.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


class FeatureCache:
    """Features of ground-truth batches on disk, one ``KEY.npz`` each; ``folder=None``: the default."""

    def __init__(self, folder: str | Path | None = None):
        self.folder = Path(folder).expanduser() if folder else default_cache_dir()
        self.hits = 0
        self.misses = 0

    def path(self, key: str) -> Path:
        return self.folder / f"{key}.npz"

    def features(self, key: str, compute: Callable[[], np.ndarray]) -> np.ndarray:
        """The cached features for ``key``, else ``compute()``'s, stored for next time."""
        path = self.path(key)
        if path.is_file():
            try:
                with np.load(path) as data:
                    features = data["features"]
                self.hits += 1
                return features
            except Exception as exc:  # a truncated or foreign file: recompute and replace it
                log.warning("feature cache: cannot read %s (%s); recomputing", path, exc)
        features = np.asarray(compute())
        self.misses += 1

        def write(tmp: Path) -> None:
            with open(tmp, "wb") as f:  # np.savez on a path would append ".npz" to the temp name
                np.savez(f, features=features)

        atomic_write(path, write)
        return features


# ---------------------------------------------------------------- the metric base
def small_sample_note(n: int) -> str | None:
    """The caveat a report prints next to a Frechet distance computed on few images."""
    if n >= FID_RELIABLE_N:
        return None
    return f"n={n} < {FID_RELIABLE_N}: biased upward, compare only at equal n"


class FrechetMetric(Metric):
    """A Frechet distance between the features of predictions and of ground truths.

    Subclasses set ``feature_dim`` and ``extractor_id`` (the network, its preprocessing and its
    weights' content hash: what the cache key depends on, with :func:`numerics_tag`) and implement
    :meth:`extract`.
    """

    feature_dim: int = 0
    higher_is_better = False
    needs_weights = True

    def __init__(
        self, device: str | torch.device = "cpu", cache_dir: str | Path | None = None, use_cache: bool = True
    ):
        super().__init__(device)
        self.extractor_id = ""
        self.cache = FeatureCache(cache_dir) if use_cache else None
        self.pred_stats = FeatureStats(self.feature_dim)
        self.gt_stats = FeatureStats(self.feature_dim)

    @torch.no_grad()
    def extract(self, images_u8: torch.Tensor) -> np.ndarray:
        """uint8 (N, 3, H, W) on any device -> float features (N, feature_dim)."""
        raise NotImplementedError

    def gt_features(self, gt: torch.Tensor) -> np.ndarray:
        if self.cache is None:
            return self.extract(gt)
        key = batch_key(gt, f"{self.extractor_id}:{numerics_tag(self.device)}")
        return self.cache.features(key, lambda: self.extract(gt))

    def update(self, pred: torch.Tensor, gt: torch.Tensor) -> None:
        self.check_pair(pred, gt)
        self.pred_stats.update(self.extract(pred))
        self.gt_stats.update(self.gt_features(gt))

    def compute(self) -> dict[str, float | int]:
        n = self.pred_stats.n
        if n < 2:  # a covariance needs two vectors
            raise MetricNotApplicableError(
                self.name, ">= 2 images", f"a Frechet distance needs at least 2 images, got {n}"
            )
        distance = frechet_distance_between(self.pred_stats, self.gt_stats)
        return {self.primary: distance, f"{self.primary}_n": n}


class NetworkFrechetMetric(FrechetMetric):
    """A Frechet distance on a pretrained network's features (FID, the EfficientNet distance).

    Subclasses give :meth:`locate_weights` (raising ``MissingWeightsError`` when the file is absent,
    before anything is built), :meth:`build_network` and ``extractor_tag`` (the network, its
    preprocessing and the version of the package it comes from); the cache key adds the weights
    file's name and content hash.
    """

    extractor_tag: str = ""

    def __init__(
        self,
        device: str | torch.device = "cpu",
        weights: str | Path | None = None,
        cache_dir: str | Path | None = None,
        use_cache: bool = True,
    ):
        weights_file = self.locate_weights(weights)
        super().__init__(device, cache_dir=cache_dir, use_cache=use_cache)
        self.weights_file = weights_file
        self.model = self.build_network(weights_file).to(self.device)
        self.extractor_id = f"{self.extractor_tag}:{weights_file.name}:{file_sha256(weights_file)}"

    def locate_weights(self, weights: str | Path | None) -> Path:
        raise NotImplementedError

    def build_network(self, weights_file: Path) -> torch.nn.Module:
        raise NotImplementedError
