"""Colourfulness (Hasler & Suesstrunk 2003) and DDColor's delta CF.

Hasler, D. and Suesstrunk, S. (2003), "Measuring colourfulness in natural images", SPIE 5007,
metric M^(3), computed on sRGB values in 0..255 (float) per image::

    rg = R - G
    yb = (R + G) / 2 - B
    sigma_rgyb = sqrt(std(rg)^2 + std(yb)^2)        (population standard deviations)
    mu_rgyb    = sqrt(mean(rg)^2 + mean(yb)^2)
    M3 = sigma_rgyb + 0.3 * mu_rgyb

The choice of variant. The paper takes the means and deviations of the SIGNED opponent
components. DDColor (basicsr/metrics/colorfulness.py, ``calculate_cf``), like the pyimagesearch
recipe it follows, first takes ``np.absolute`` of rg and yb, which changes both terms (a grey
image is 0 in both; a saturated red/green mix is not). We default to the paper's signed form
because M3 is the quantity whose scale the paper calibrated against human ratings (its
"not colourful = 0 ... extremely colourful = 109" table); ``variant="abs"`` reproduces DDColor's
numbers for comparison with papers that used its code.

``compute`` reports ``cf`` (mean M3 over predictions), ``cf_gt`` (mean M3 over the ground truth)
and ``delta_cf = |cf - cf_gt|`` (DDColor, Kang et al. 2023, Table 1: the gap to the ground
truth's colourfulness, lower is better; a higher cf alone is not better).
"""

from __future__ import annotations

import torch

from gan_colorize.metrics import Display, Metric
from gan_colorize.registry import METRICS

VARIANTS = ("paper", "abs")


def colorfulness(rgb_u8: torch.Tensor, variant: str = "paper") -> torch.Tensor:
    """M3 of each image of a uint8 (N, 3, H, W) batch, in float64 -> (N,)."""
    if variant not in VARIANTS:
        raise ValueError(f"colorfulness variant must be one of {VARIANTS}, got {variant!r}")
    R, G, B = rgb_u8.to(torch.float64).flatten(2).unbind(1)  # each (N, H*W), 0..255
    rg = R - G
    yb = 0.5 * (R + G) - B
    if variant == "abs":  # DDColor / pyimagesearch
        rg, yb = rg.abs(), yb.abs()
    sigma = torch.sqrt(rg.var(dim=1, unbiased=False) + yb.var(dim=1, unbiased=False))
    mu = torch.sqrt(rg.mean(dim=1) ** 2 + yb.mean(dim=1) ** 2)
    return sigma + 0.3 * mu


@METRICS.register("colorfulness")
class Colorfulness(Metric):
    name = "colorfulness"
    primary = "delta_cf"
    higher_is_better = False
    needs_weights = False
    standard = True
    description = (
        "Colourfulness M3 (Hasler & Suesstrunk 2003) on sRGB 0-255, mean over images: cf (predictions), "
        "cf_gt (ground truth), delta_cf = |cf - cf_gt| (DDColor's delta CF; lower is better)"
    )
    display = (
        # CF alone is not ranked: more colour is not better, closeness to the ground truth's is (ΔCF)
        Display(
            "cf", "CF", digits=1, order=10,
            note="CF: the colourfulness M3 of Hasler & Süsstrunk (2003), not ranked itself: ΔCF, its "
            "difference to the ground truth's, is",
        ),
        Display("delta_cf", "ΔCF", digits=1, better="zero", order=11, axis="perception", axis_rank=8),
    )  # fmt: skip

    def __init__(self, device: str | torch.device = "cpu", variant: str = "paper"):
        super().__init__(device)
        if variant not in VARIANTS:
            raise ValueError(f"colorfulness variant must be one of {VARIANTS}, got {variant!r}")
        self.variant = variant
        if variant == "abs":
            self.description += "; variant 'abs' (|rg|, |yb| as DDColor's code)"
        self.sum_pred = 0.0
        self.sum_gt = 0.0
        self.n = 0

    def update(self, pred: torch.Tensor, gt: torch.Tensor) -> None:
        self.check_pair(pred, gt)
        self.sum_pred += colorfulness(pred, self.variant).sum().item()
        self.sum_gt += colorfulness(gt, self.variant).sum().item()
        self.n += pred.shape[0]

    def compute(self) -> dict[str, float | int]:
        if self.n == 0:
            raise ValueError("colorfulness: no images were given")
        cf, cf_gt = self.sum_pred / self.n, self.sum_gt / self.n
        return {"cf": cf, "cf_gt": cf_gt, "delta_cf": abs(cf - cf_gt)}
