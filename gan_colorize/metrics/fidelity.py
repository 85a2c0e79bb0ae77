"""Fidelity to the ground truth: PSNR and SSIM (scikit-image), and Zhang et al. 2016's AuC.

All three compare each prediction with its own ground truth, per image, and average over images.
Colourisation is multimodal (a red car and a blue car are both right), so these reward the
average, desaturated answer; read them next to colourfulness and FID.

PSNR: ``skimage.metrics.peak_signal_noise_ratio`` on uint8 RGB, ``data_range=255`` (all three
channels in one MSE). Identical images have infinite PSNR; one such image would make the mean
infinite (it happens for a greyscale photo in the test set that a model leaves neutral, and for
the "ground truth" reference row), so a per-image value is capped at ``PSNR_CAP_DB = 100`` dB,
the ceiling IQA-PyTorch's (pyiqa) ``psnr`` has through its MSE epsilon of 1e-10 on a 0-1 scale.
``psnr_n_capped`` counts the capped images so the cap is never hidden.

SSIM: ``skimage.metrics.structural_similarity`` on uint8 RGB with ``channel_axis``,
``data_range=255`` and scikit-image's defaults: a 7x7 uniform window (``win_size=7``,
``gaussian_weights=False``), K1 = 0.01, K2 = 0.03, the mean SSIM over channels. This is NOT
Wang et al.'s 11x11 Gaussian window, so values differ slightly from papers that used it.

AuC (Zhang, Isola & Efros 2016, sec. 3.1 "raw accuracy"): the per-pixel Euclidean distance in ab
between prediction and ground truth (CIELAB units, both converted with gan_colorize.color.lab),
the fraction of pixels with distance <= t for thresholds t = 0, 1, ..., 150, and the area under
that cumulative curve normalised to 1. The discretisation we use: the mean of the 151 fractions,
i.e. a right-closed step function sampled at each integer threshold, reported in percent as in the
paper's Table 1. An error of exactly 10 everywhere gives 141 / 151 = 93.38 %; a perfect prediction
100 %. Pixels of all images are pooled (equal-size images: the same as averaging per image).
"""

from __future__ import annotations

import numpy as np
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from gan_colorize.color.lab import rgb_to_lab
from gan_colorize.metrics import Display, Metric
from gan_colorize.registry import METRICS

PSNR_CAP_DB = 100.0
SSIM_WINDOW = 7  # scikit-image's default win_size
AUC_MAX_THRESHOLD = 150  # Zhang et al. 2016: thresholds 0..150 in ab units


def _hwc(batch_u8: torch.Tensor) -> np.ndarray:
    """uint8 (N, 3, H, W) tensor -> uint8 (N, H, W, 3) array on the CPU."""
    return batch_u8.detach().cpu().permute(0, 2, 3, 1).numpy()


def psnr(pred_u8: np.ndarray, gt_u8: np.ndarray, cap_db: float = PSNR_CAP_DB) -> tuple[float, bool]:
    """PSNR of one uint8 HxWx3 pair in dB and whether it was capped (identical images)."""
    if np.array_equal(pred_u8, gt_u8):
        return cap_db, True
    value = float(peak_signal_noise_ratio(gt_u8, pred_u8, data_range=255))
    return min(value, cap_db), value > cap_db


def ssim(pred_u8: np.ndarray, gt_u8: np.ndarray) -> float:
    """SSIM of one uint8 HxWx3 pair, scikit-image defaults (7x7 uniform window)."""
    return float(structural_similarity(gt_u8, pred_u8, channel_axis=-1, data_range=255, win_size=SSIM_WINDOW))


def ab_error(pred_u8: torch.Tensor, gt_u8: torch.Tensor) -> torch.Tensor:
    """Per-pixel Euclidean ab distance (CIELAB units) of uint8 (N, 3, H, W) batches -> (N, H, W).

    float64, so that an error of exactly t is not counted above the threshold t by rounding.
    """
    lab_pred = rgb_to_lab(pred_u8.to(torch.float64) / 255.0)
    lab_gt = rgb_to_lab(gt_u8.to(torch.float64) / 255.0)
    return torch.linalg.vector_norm(lab_pred[:, 1:] - lab_gt[:, 1:], dim=1)


def threshold_counts(error: torch.Tensor, max_threshold: int = AUC_MAX_THRESHOLD) -> torch.Tensor:
    """How many errors are <= t for each integer t = 0..max_threshold -> int64 (max_threshold + 1,)."""
    # ceil(e) is the smallest integer threshold that counts e; errors above the last threshold
    # go to one extra bin that is dropped
    bins = torch.ceil(error.flatten()).clamp(0, max_threshold + 1).to(torch.int64)
    per_bin = torch.bincount(bins, minlength=max_threshold + 2)[: max_threshold + 1]
    return per_bin.cumsum(0).cpu()


def auc_from_counts(counts: torch.Tensor, n_pixels: int) -> float:
    """Area under the cumulative accuracy curve in percent: mean over thresholds of counts / n."""
    return float(100.0 * counts.to(torch.float64).mean() / n_pixels)


@METRICS.register("psnr")
class PSNR(Metric):
    name = "psnr"
    primary = "psnr"
    higher_is_better = True
    description = (
        f"PSNR in dB on sRGB uint8 (skimage, data_range=255), mean over images; identical pairs capped "
        f"at {PSNR_CAP_DB:g} dB (count in psnr_n_capped)"
    )
    display = (Display("psnr", "PSNR", digits=2, better="higher", order=40, axis="distortion", axis_rank=0),)

    def __init__(self, device: str | torch.device = "cpu", cap_db: float = PSNR_CAP_DB):
        super().__init__(device)
        self.cap_db = float(cap_db)
        self.total = 0.0
        self.n = 0
        self.n_capped = 0

    def update(self, pred: torch.Tensor, gt: torch.Tensor) -> None:
        self.check_pair(pred, gt)
        for p, g in zip(_hwc(pred), _hwc(gt)):
            value, capped = psnr(p, g, self.cap_db)
            self.total += value
            self.n_capped += int(capped)
            self.n += 1

    def compute(self) -> dict[str, float | int]:
        if self.n == 0:
            raise ValueError("psnr: no images were given")
        return {"psnr": self.total / self.n, "psnr_n_capped": self.n_capped}


@METRICS.register("ssim")
class SSIM(Metric):
    name = "ssim"
    primary = "ssim"
    higher_is_better = True
    description = (
        "SSIM on sRGB uint8 (skimage structural_similarity, data_range=255, 7x7 uniform window, "
        "mean over channels), mean over images; 1 = identical"
    )
    display = (Display("ssim", "SSIM", digits=3, better="higher", order=50, axis="distortion", axis_rank=2),)

    def __init__(self, device: str | torch.device = "cpu"):
        super().__init__(device)
        self.total = 0.0
        self.n = 0

    def update(self, pred: torch.Tensor, gt: torch.Tensor) -> None:
        self.check_pair(pred, gt)
        if min(pred.shape[-2:]) < SSIM_WINDOW:
            raise ValueError(
                f"ssim: images must be at least {SSIM_WINDOW}x{SSIM_WINDOW}, got {tuple(pred.shape[-2:])}"
            )
        for p, g in zip(_hwc(pred), _hwc(gt)):
            self.total += ssim(p, g)
            self.n += 1

    def compute(self) -> dict[str, float | int]:
        if self.n == 0:
            raise ValueError("ssim: no images were given")
        return {"ssim": self.total / self.n}


@METRICS.register("auc")
class AuC(Metric):
    name = "auc"
    primary = "auc"
    higher_is_better = True
    description = (
        "AuC (Zhang et al. 2016 raw accuracy): area under the fraction of pixels with ab error <= t, "
        f"t = 0..{AUC_MAX_THRESHOLD}, in % (mean over the integer thresholds; pixels pooled)"
    )
    # in % as in Zhang et al. 2016's table
    display = (Display("auc", "AuC (%)", digits=2, better="higher", order=60),)

    def __init__(self, device: str | torch.device = "cpu"):
        super().__init__(device)
        self.counts = torch.zeros(AUC_MAX_THRESHOLD + 1, dtype=torch.int64)
        self.n_pixels = 0

    def update(self, pred: torch.Tensor, gt: torch.Tensor) -> None:
        self.check_pair(pred, gt)
        error = ab_error(pred.to(self.device), gt.to(self.device))
        self.counts += threshold_counts(error)
        self.n_pixels += error.numel()

    def compute(self) -> dict[str, float | int]:
        if self.n_pixels == 0:
            raise ValueError("auc: no images were given")
        return {"auc": auc_from_counts(self.counts, self.n_pixels)}
